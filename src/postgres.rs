//! Opening a normal (non-replication) Postgres session: the connection task is
//! spawned here, and LISTEN notifications are turned into a wake-up.

mod conninfo;
mod error;
mod refusal;
pub mod ssl;
pub mod starttls;
pub mod target;
pub mod version;

pub use conninfo::{Conninfo, KeyValue, key_values};
pub use error::{Described, describe};
pub use refusal::{ConnectFailure, REFUSAL_INITIAL_BACKOFF, REFUSAL_MAX_BACKOFF, RefusalBackoff};

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::PostgresConfig;

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{}", describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("connecting to postgres timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The connection string or a file it names (password, certificates).
    #[error("{0}")]
    Config(String),
    /// The server is older than [`version::MIN_SERVER_MAJOR`].
    #[error("{0}")]
    Unsupported(#[from] version::Unsupported),
}

impl ConnectError {
    /// Whether the server refused us (and how), or was not reached.
    pub fn failure(&self) -> ConnectFailure {
        match self {
            ConnectError::Postgres(e) if crate::tls::reason::find(e).is_some() => {
                ConnectFailure::Tls
            }
            ConnectError::Postgres(e) => ConnectFailure::of(e),
            ConnectError::Config(_) => ConnectFailure::Settings,
            ConnectError::Timeout(_) => ConnectFailure::Unreachable,
            ConnectError::Unsupported(_) => ConnectFailure::UnsupportedServer,
        }
    }
}

/// Connects and spawns the task that drives the connection. Each
/// notification received (from LISTEN) wakes `notify`, if given. A server
/// older than [`version::MIN_SERVER_MAJOR`] is refused
/// ([`ConnectError::Unsupported`]) before the session is used.
pub async fn connect(
    config: &PostgresConfig,
    purpose: &'static str,
    notify: Option<Arc<Notify>>,
) -> Result<Client, ConnectError> {
    let info = Conninfo::load(config).map_err(ConnectError::Config)?;
    open(info.pg, &info.ssl, config, purpose, notify).await
}

/// One session to each server of the connection string, whatever its
/// role (a standby too), for `check`'s report on every server: each
/// `host:port` with its session or why there is none.
pub async fn connect_each(
    config: &PostgresConfig,
    purpose: &'static str,
) -> Result<Vec<(String, Result<Client, ConnectError>)>, ConnectError> {
    let info = Conninfo::load(config).map_err(ConnectError::Config)?;
    let candidates = target::candidates(&info.pg).map_err(ConnectError::Config)?;
    let mut sessions = Vec::new();
    for (host, port) in candidates {
        let at = target::describe_host(&host, port);
        let one = target::single_host(&info.pg, host, port);
        sessions.push((at, open(one, &info.ssl, config, purpose, None).await));
    }
    Ok(sessions)
}

/// Connects with `pg` (TLS as `ssl` says) and spawns the connection task.
async fn open(
    mut pg: tokio_postgres::Config,
    ssl: &ssl::Ssl,
    config: &PostgresConfig,
    purpose: &'static str,
    notify: Option<Arc<Notify>>,
) -> Result<Client, ConnectError> {
    pg.connect_timeout(config.connect_timeout);
    if pg.get_application_name().is_none() {
        pg.application_name(format!("outbox-relay {purpose}"));
    }
    // Per server tried: a multi-host string tries each in turn.
    let limit = config.connect_timeout * u32::try_from(pg.get_hosts().len().max(1)).unwrap_or(1);
    let timeout = |_| ConnectError::Timeout(limit);
    if ssl.mode == ssl::SslMode::Disable {
        let (client, connection) = tokio::time::timeout(limit, pg.connect(NoTls))
            .await
            .map_err(timeout)??;
        version::check(connection.parameter("server_version"))?;
        drive(connection, purpose, notify);
        return Ok(client);
    }
    let tls = ssl
        .tls
        .client_config()
        .map_err(|e| ConnectError::Config(e.to_string()))?;
    let connect = pg.connect(MakeRustlsConnect::new(tls));
    let (client, connection) = tokio::time::timeout(limit, connect)
        .await
        .map_err(timeout)??;
    version::check(connection.parameter("server_version"))?;
    drive(connection, purpose, notify);
    Ok(client)
}

/// Spawns the task that drives a connection and turns notifications into
/// wake-ups.
fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    purpose: &'static str,
    notify: Option<Arc<Notify>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    if let Some(n) = &notify {
                        n.notify_one();
                    }
                }
                Some(Ok(AsyncMessage::Notice(notice))) => {
                    tracing::debug!(purpose, notice = %notice.message(), "postgres notice");
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(purpose, error = %describe(&e), "postgres connection lost");
                    break;
                }
                None => break,
            }
        }
    });
}

/// Whether `relation` (a table name as Postgres reads it, optionally
/// schema-qualified and quoted) exists: for the tables `migrate` creates,
/// which other commands must not assume.
pub async fn relation_exists(
    client: &impl tokio_postgres::GenericClient,
    relation: &str,
) -> Result<bool, tokio_postgres::Error> {
    client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&relation])
        .await?
        .try_get(0)
}
