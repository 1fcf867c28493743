//! The HTTP listener: `/metrics` for Prometheus, `/healthz` (the process is
//! alive), `/readyz` (the role, and whether this relay can do its part) and
//! `/status` (what the relay and its outbox are doing, as an HTML page).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::metrics::{Component, metrics};
use crate::shutdown::Shutdown;

/// Binds `addr` now (so a taken port fails startup) and serves until
/// shutdown; `/status` reads the Postgres and outbox of `config`.
pub async fn serve(
    addr: SocketAddr,
    config: Config,
    shutdown: Shutdown,
) -> std::io::Result<impl Future<Output = ()>> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz and /status");
    let config = Arc::new(config);
    Ok(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting an http connection failed");
                        continue;
                    }
                },
                _ = shutdown.requested() => return,
            };
            let config = config.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request| handle(request, config.clone()));
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(error = %e, "http connection ended with an error");
                }
            });
        }
    })
}

/// A leader is ready when it reaches Postgres and the broker. A standby is
/// ready when its election session is up and it could take over: it is
/// healthy, and a sidecar's readiness must not take its application out of
/// service. A standby that cannot even try for the lease (the outbox table
/// is missing, so no relay can lead) is not ready, and says why.
fn readiness() -> Response<Full<Bytes>> {
    let m = metrics();
    let leader = m.leader.get() == 1;
    let postgres = m.is_connected(Component::Postgres);
    let broker = m.is_connected(Component::Broker);
    let election = m.is_connected(Component::Election);
    let cannot_lead = if leader {
        None
    } else {
        crate::leader::cannot_lead()
    };
    let blocked = m.broker_blocked();
    let ready = if leader {
        postgres && broker && blocked.is_none()
    } else {
        election && cannot_lead.is_none()
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let role = if leader { "leader" } else { "standby" };
    reply(
        status,
        "text/plain",
        format!(
            "role: {role}\npostgres: {}\nbroker: {}\nelection: {}\n{}",
            up(postgres),
            match (&blocked, broker) {
                (Some(reason), true) => format!("blocked ({reason})"),
                _ => up(broker).to_owned(),
            },
            up(election),
            cannot_lead
                .map(|why| format!("cannot lead: {why}\n"))
                .unwrap_or_default()
        ),
    )
}

/// The status page: the same [`crate::status::Status`] as `outbox-relay
/// status`, this process's registry standing in for its `/metrics`.
async fn status_page(config: &Config) -> Response<Full<Bytes>> {
    let options = crate::status::Options {
        relay: crate::status::RelayView::Local,
        ..crate::status::Options::for_config(config)
    };
    let status = crate::status::collect(config, &options).await;
    let mut response = reply(
        StatusCode::OK,
        "text/html; charset=utf-8",
        crate::status::html(&status),
    );
    // The page has no script and loads nothing: say so to the browser.
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    response
}

async fn handle(
    request: Request<Incoming>,
    config: Arc<Config>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        ));
    }
    Ok(match request.uri().path() {
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics().render(),
        ),
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => readiness(),
        "/status" => status_page(&config).await,
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    })
}

fn up(connected: bool) -> &'static str {
    if connected {
        "connected"
    } else {
        "disconnected"
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}
