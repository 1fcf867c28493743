//! Opening a normal (non-replication) Postgres session: the connection task is
//! spawned here, and LISTEN notifications are turned into a wake-up.

use std::str::FromStr;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use crate::config::PostgresConfig;

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error("connecting to postgres timed out after {0:?}")]
    Timeout(std::time::Duration),
}

/// Connects and spawns the task that drives the connection. Each
/// notification received (from LISTEN) wakes `notify`, if given.
pub async fn connect(
    config: &PostgresConfig,
    purpose: &'static str,
    notify: Option<Arc<Notify>>,
) -> Result<Client, ConnectError> {
    let mut pg = tokio_postgres::Config::from_str(config.url.expose())?;
    pg.connect_timeout(config.connect_timeout);
    if pg.get_application_name().is_none() {
        pg.application_name(format!("outbox-relay {purpose}"));
    }
    let (client, mut connection) = tokio::time::timeout(config.connect_timeout, pg.connect(NoTls))
        .await
        .map_err(|_| ConnectError::Timeout(config.connect_timeout))??;
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
                    tracing::warn!(purpose, error = %e, "postgres connection lost");
                    break;
                }
                None => break,
            }
        }
    });
    Ok(client)
}
