//! What a TLS handshake found, for `check`: the protocol version and the
//! server certificate's subject and expiry. A probe is a handshake of its
//! own made with the same configuration the relay connects with.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The facts of one TLS session.
#[derive(Debug, Clone)]
pub struct TlsReport {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The server certificate's subject (`CN=db.example.com, O=...`).
    pub subject: String,
    /// The server certificate's `notAfter`, as `YYYY-MM-DD`.
    pub expires: String,
    /// Days until `notAfter` (negative: expired that long ago).
    pub days_left: i64,
}

impl TlsReport {
    /// Reads the facts off an established session.
    pub fn of(connection: &rustls::ClientConnection) -> Self {
        let version = match connection.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
            Some(other) => format!("{other:?}"),
            None => "unknown".to_owned(),
        };
        let leaf = connection.peer_certificates().and_then(|c| c.first());
        let parsed = leaf.and_then(|der| x509_parser::parse_x509_certificate(der).ok());
        let (subject, not_after) = match &parsed {
            Some((_, cert)) => (
                cert.subject().to_string(),
                cert.validity().not_after.timestamp(),
            ),
            None => ("(no certificate)".to_owned(), 0),
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        TlsReport {
            version,
            subject,
            expires: utc_date(not_after.max(0) as u64),
            days_left: (not_after - now).div_euclid(86_400),
        }
    }

    /// `TLSv1.3; certificate CN=x, expires 2027-03-02 (in 90 days)`.
    pub fn summary(&self) -> String {
        let when = if self.days_left >= 0 {
            format!("in {} days", self.days_left)
        } else {
            format!("{} days ago", -self.days_left)
        };
        format!(
            "{}; certificate {}, expires {} ({when})",
            self.version, self.subject, self.expires
        )
    }
}

/// The UTC calendar date of a Unix time, `YYYY-MM-DD`.
pub fn utc_date(unix_seconds: u64) -> String {
    let secs = i64::try_from(unix_seconds).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        Err(_) => format!("{unix_seconds} s after 1970"),
    }
}

/// The TLS handshake over `stream` as `host`; the error is an I/O error
/// whose inner error is the rustls one ([`super::reason::find`]).
pub async fn handshake<S>(
    stream: S,
    host: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("host `{host}` is not a valid TLS server name: {e}"),
        )
    })?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
}

/// Connects to `host:port` and does the handshake at once, as amqps and
/// Kafka's TLS listeners expect; returns what the session found.
pub async fn direct(
    host: &str,
    port: u16,
    config: rustls::ClientConfig,
    timeout: Duration,
) -> Result<TlsReport, String> {
    let attempt = async {
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
        let tls = handshake(tcp, host, Arc::new(config))
            .await
            .map_err(|e| super::reason::of(&e).unwrap_or_else(|| e.to_string()))?;
        Ok(TlsReport::of(tls.get_ref().1))
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("TLS handshake with {host}:{port} timed out after {timeout:?}"))?
}
