//! Why a Postgres session could not be opened, as an operator reads it: the
//! server was reached and refused us (the login, the database, a
//! privilege), or it was not reached at all. The two need different words
//! and a different pace: "not reachable" sends people to the network when
//! the fix is a password, a role or a `CREATE DATABASE`.

use std::time::Duration;

/// The cause of a failed connect, by the SQLSTATE the server sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    /// 28P01 invalid_password or 28000 invalid_authorization_specification:
    /// a wrong password, or a role that does not exist (Postgres reports a
    /// missing role as 28P01 under password methods, 28000 otherwise), or
    /// no pg_hba.conf line admits us.
    RefusedLogin,
    /// 3D000 invalid_catalog_name: the database in `postgres.url` does not
    /// exist (yet).
    MissingDatabase,
    /// 42501 insufficient_privilege: the login is valid but may not do
    /// this, e.g. no CONNECT privilege on the database, or no REPLICATION
    /// attribute for a replication session.
    Permission,
    /// TLS could not be set up: the server's certificate did not verify
    /// (unknown CA, wrong host name, expired) or the server refused TLS
    /// that `sslmode` requires. A setting or a certificate must change.
    Tls,
    /// The settings cannot be used as they are: a password or certificate
    /// file they name is missing, unreadable or empty.
    Settings,
    /// The server is older than the oldest version the relay supports
    /// ([`crate::postgres::version::MIN_SERVER_MAJOR`]): no retry can fix
    /// that, so the relay stops ([`ConnectFailure::is_fatal`]).
    UnsupportedServer,
    /// Everything else: no server answered (connection refused, timeout,
    /// DNS, a reset), or it answered that it cannot take us now (starting,
    /// too many connections). Waiting is what fixes these.
    Unreachable,
}

/// The first wait after a refusal; each further refusal doubles it.
pub const REFUSAL_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between attempts after refusals: a rotated secret or a
/// newly created database is picked up within a minute.
pub const REFUSAL_MAX_BACKOFF: Duration = Duration::from_secs(60);

impl ConnectFailure {
    /// Classifies a failed connect by its SQLSTATE (`None`: no server error).
    pub fn of_sqlstate(code: Option<&str>) -> Self {
        match code {
            Some("28P01" | "28000") => ConnectFailure::RefusedLogin,
            Some("3D000") => ConnectFailure::MissingDatabase,
            Some("42501") => ConnectFailure::Permission,
            _ => ConnectFailure::Unreachable,
        }
    }

    /// Classifies a tokio-postgres error met while connecting.
    pub fn of(error: &tokio_postgres::Error) -> Self {
        Self::of_sqlstate(error.code().map(|c| c.code()))
    }

    /// Whether the server was reached and said no: retrying at the
    /// connection pace would only flood its log with failed logins.
    pub fn is_refusal(self) -> bool {
        !matches!(
            self,
            ConnectFailure::Unreachable | ConnectFailure::UnsupportedServer
        )
    }

    /// Whether waiting cannot help and the relay must stop: an unsupported
    /// server version.
    pub fn is_fatal(self) -> bool {
        self == ConnectFailure::UnsupportedServer
    }

    /// What happened, for the start of a log line (`...; retrying in 2s`).
    pub fn summary(self) -> &'static str {
        match self {
            ConnectFailure::RefusedLogin => "postgres refused the login",
            ConnectFailure::MissingDatabase => "postgres has no such database",
            ConnectFailure::Permission => "postgres denied a privilege the relay needs",
            ConnectFailure::Tls => "no trusted TLS session with postgres",
            ConnectFailure::Settings => "the postgres settings cannot be used",
            ConnectFailure::UnsupportedServer => "the postgres server version is not supported",
            ConnectFailure::Unreachable => "postgres not reachable",
        }
    }
}

/// The growing wait between attempts while the server keeps refusing:
/// [`REFUSAL_INITIAL_BACKOFF`] doubling up to [`REFUSAL_MAX_BACKOFF`].
#[derive(Debug, Clone)]
pub struct RefusalBackoff {
    next: Duration,
}

impl Default for RefusalBackoff {
    fn default() -> Self {
        RefusalBackoff {
            next: REFUSAL_INITIAL_BACKOFF,
        }
    }
}

impl RefusalBackoff {
    /// The wait before the next attempt; doubles the one after it.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(REFUSAL_MAX_BACKOFF);
        delay
    }

    /// Back to the first wait, after a connect that got in.
    pub fn reset(&mut self) {
        self.next = REFUSAL_INITIAL_BACKOFF;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_by_sqlstate() {
        assert_eq!(
            ConnectFailure::of_sqlstate(Some("28P01")),
            ConnectFailure::RefusedLogin
        );
        assert_eq!(
            ConnectFailure::of_sqlstate(Some("28000")),
            ConnectFailure::RefusedLogin
        );
        assert_eq!(
            ConnectFailure::of_sqlstate(Some("3D000")),
            ConnectFailure::MissingDatabase
        );
        assert_eq!(
            ConnectFailure::of_sqlstate(Some("42501")),
            ConnectFailure::Permission
        );
    }

    #[test]
    fn everything_else_is_unreachable() {
        // No server error; admin shutdown; starting up; too many clients.
        for code in [
            None,
            Some("57P01"),
            Some("57P03"),
            Some("53300"),
            Some("08006"),
        ] {
            let failure = ConnectFailure::of_sqlstate(code);
            assert_eq!(failure, ConnectFailure::Unreachable, "{code:?}");
            assert!(!failure.is_refusal());
            assert_eq!(failure.summary(), "postgres not reachable");
        }
    }

    #[test]
    fn refusals_never_say_not_reachable() {
        for failure in [
            ConnectFailure::RefusedLogin,
            ConnectFailure::MissingDatabase,
            ConnectFailure::Permission,
        ] {
            assert!(failure.is_refusal());
            assert!(!failure.summary().contains("reachable"), "{failure:?}");
        }
    }

    #[tokio::test]
    async fn a_refused_connect_is_unreachable() {
        let error = crate::postgres::error::refused_connect().await;
        assert_eq!(ConnectFailure::of(&error), ConnectFailure::Unreachable);
    }

    #[test]
    fn backoff_doubles_to_a_minute_and_resets() {
        let mut backoff = RefusalBackoff::default();
        let waits: Vec<u64> = (0..9).map(|_| backoff.next_delay().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), REFUSAL_INITIAL_BACKOFF);
    }
}
