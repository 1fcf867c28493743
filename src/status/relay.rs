//! Where `status` reads a relay's counters: over HTTP from the relay at
//! `metrics.listen` (the command), or from this process's own registry
//! (the daemon's `/status` page).

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use super::exposition::Samples;

/// How long one read of a relay's `/metrics` may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// The relay whose counters a status shows.
#[derive(Debug, Clone)]
pub enum RelayView {
    /// Another process, at `host:port` (its `metrics.listen`).
    Http(String),
    /// This process: the daemon serving `/status`.
    Local,
}

impl RelayView {
    /// The relay at `listen` (`metrics.listen`): a wildcard address is read
    /// on loopback, where a relay bound to it also answers.
    pub fn from_listen(listen: &str) -> Self {
        let address = match listen.rsplit_once(':') {
            Some(("0.0.0.0", port)) => format!("127.0.0.1:{port}"),
            Some(("[::]", port)) => format!("[::1]:{port}"),
            _ => listen.to_owned(),
        };
        RelayView::Http(address)
    }

    /// Where the counters come from, for the report.
    pub fn address(&self) -> String {
        match self {
            RelayView::Http(address) => address.clone(),
            RelayView::Local => "this process".into(),
        }
    }

    /// The relay's samples now, or why they cannot be read.
    pub async fn read(&self) -> Result<Samples, String> {
        match self {
            RelayView::Local => Ok(Samples::parse(&crate::metrics::metrics().render())),
            RelayView::Http(address) => match tokio::time::timeout(TIMEOUT, get(address)).await {
                Ok(result) => result.map(|text| Samples::parse(&text)),
                Err(_) => Err(format!("no answer within {TIMEOUT:?}")),
            },
        }
    }
}

/// `GET http://{address}/metrics`, its body as text.
async fn get(address: &str) -> Result<String, String> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "status: relay connection ended with an error");
        }
    });
    let request = hyper::Request::get("/metrics")
        .header(hyper::header::HOST, address)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("/metrics answered {status}"));
    }
    String::from_utf8(body.to_vec()).map_err(|_| "/metrics is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::RelayView;

    #[test]
    fn wildcard_listen_addresses_are_read_on_loopback() {
        for (listen, address) in [
            ("0.0.0.0:9469", "127.0.0.1:9469"),
            ("[::]:9469", "[::1]:9469"),
            ("10.0.0.5:9000", "10.0.0.5:9000"),
        ] {
            assert_eq!(RelayView::from_listen(listen).address(), address);
        }
    }
}
