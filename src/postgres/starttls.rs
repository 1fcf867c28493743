//! Asking a Postgres server for TLS on a socket we opened ourselves (the
//! replication session and `check`'s probe; tokio-postgres does this for
//! normal sessions): `SSLRequest`, then the handshake or, under `prefer`,
//! plain text if the server declines.

use std::sync::Arc;

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ssl::{Ssl, SslMode};
use crate::tls::TlsReport;

/// The byte stream of a session: TCP, or TLS over TCP.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StartTlsError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server answered `N` to a mode that requires TLS.
    #[error("sslmode={0} but the server does not accept TLS")]
    Refused(&'static str),
    /// The certificate files could not be read.
    #[error("{0}")]
    Config(#[from] crate::tls::TlsError),
    /// The handshake failed; the text names the reason.
    #[error("{0}")]
    Handshake(String),
}

/// Negotiates TLS as `ssl` says; the stream to speak the protocol on and,
/// when TLS was set up, what its handshake found.
pub async fn start(
    mut tcp: TcpStream,
    host: &str,
    ssl: &Ssl,
) -> Result<(Box<dyn Io>, Option<TlsReport>), StartTlsError> {
    if ssl.mode == SslMode::Disable {
        return Ok((Box::new(tcp), None));
    }
    let mut request = BytesMut::new();
    frontend::ssl_request(&mut request);
    tcp.write_all(&request).await?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await?;
    if answer[0] != b'S' {
        if ssl.mode.requires_tls() {
            return Err(StartTlsError::Refused(ssl.mode.name()));
        }
        return Ok((Box::new(tcp), None));
    }
    let config = Arc::new(ssl.tls.client_config()?);
    let tls = crate::tls::probe::handshake(tcp, host, config)
        .await
        .map_err(|e| {
            StartTlsError::Handshake(crate::tls::reason::of(&e).unwrap_or_else(|| e.to_string()))
        })?;
    let report = TlsReport::of(tls.get_ref().1);
    Ok((Box::new(tls), Some(report)))
}
