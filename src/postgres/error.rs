//! What a tokio-postgres error says to a person. Its own `Display` prints
//! only its kind ("db error"); the server's message, SQLSTATE, detail and
//! hint, or the I/O error beneath a lost connection, are what an operator
//! needs to act on, so every error the relay shows goes through [`describe`].

use std::error::Error as _;
use std::fmt;

/// The error as one line: for a server error `message (SQLSTATE)`, then
/// `; detail: ...` and `; hint: ...` when the server sent them; for any
/// other error its kind followed by each underlying cause
/// (`error connecting to server: Connection refused (os error 111)`).
pub fn describe(error: &tokio_postgres::Error) -> Described<'_> {
    Described(error)
}

/// The [`fmt::Display`] of [`describe`].
pub struct Described<'a>(&'a tokio_postgres::Error);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(db) = self.0.as_db_error() {
            write!(f, "{} ({})", db.message(), db.code().code())?;
            if let Some(detail) = db.detail() {
                write!(f, "; detail: {detail}")?;
            }
            if let Some(hint) = db.hint() {
                write!(f, "; hint: {hint}")?;
            }
            return Ok(());
        }
        if let Some(reason) = crate::tls::reason::of(self.0) {
            return write!(f, "TLS: {reason}");
        }
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(inner) = cause {
            write!(f, ": {inner}")?;
            cause = inner.source();
        }
        Ok(())
    }
}

/// A connect error with no server behind it (port 1 on loopback: refused
/// at once), for the tests of what the relay says about one.
#[cfg(test)]
pub(crate) async fn refused_connect() -> tokio_postgres::Error {
    tokio_postgres::connect(
        "host=127.0.0.1 port=1 user=x connect_timeout=5",
        tokio_postgres::NoTls,
    )
    .await
    .err()
    .expect("nothing listens on port 1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_the_underlying_cause_without_a_server() {
        let error = refused_connect().await;
        let text = describe(&error).to_string();
        assert!(
            text.starts_with("error connecting to server: ") && text.len() > 30,
            "{text}"
        );
        assert_ne!(text, error.to_string());
    }

    #[test]
    fn config_errors_keep_their_reason() {
        let error = "host=x port=notanumber"
            .parse::<tokio_postgres::Config>()
            .expect_err("bad port");
        let text = describe(&error).to_string();
        assert!(text.starts_with("invalid connection string: "), "{text}");
    }
}
