//! Which PostgreSQL servers the relay runs against. Every session reads the
//! `server_version` the server reports when it logs us in (no query), and a
//! server older than [`MIN_SERVER_MAJOR`] is refused at once: the relay
//! would otherwise start and fail later, on a catalog column or a
//! replication option that version lacks.

/// The oldest PostgreSQL major version the relay supports: 13.
/// PostgreSQL 12 is past its end of life (November 2024), and the relay
/// reads what 13 added: `pg_replication_slots.wal_status` (a slot the
/// server invalidated, `max_slot_wal_keep_size`).
pub const MIN_SERVER_MAJOR: u32 = 13;

/// The major version in a `server_version` value: `15` for
/// "15.20 (Debian 15.20-0+deb12u1)", `18` for "18beta1", `9` for
/// "9.6.24". `None` when it does not start with a number.
pub fn server_major(version: &str) -> Option<u32> {
    let digits: &str = version
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap_or_default();
    digits.parse().ok()
}

/// The server's `server_version_num` (`170010` for 17.10): what code that
/// differs by version (catalog columns, replication syntax) compares.
pub async fn server_version_num(
    client: &impl tokio_postgres::GenericClient,
) -> Result<i32, tokio_postgres::Error> {
    client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await?
        .try_get(0)
}

/// A server the relay does not support.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "postgres server version {version} is not supported: the oldest supported is PostgreSQL \
     {MIN_SERVER_MAJOR} (upgrade the server)"
)]
pub struct Unsupported {
    /// What the server reported as `server_version`.
    pub version: String,
}

/// Refuses a server older than [`MIN_SERVER_MAJOR`]. A server that reports
/// no `server_version`, or one that is not a number (a proxy in between),
/// is let through: only a version known to be too old is refused.
pub fn check(server_version: Option<&str>) -> Result<(), Unsupported> {
    let Some(version) = server_version else {
        return Ok(());
    };
    match server_major(version) {
        Some(major) if major < MIN_SERVER_MAJOR => Err(Unsupported {
            version: version.to_owned(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_major_of_every_version_format() {
        assert_eq!(server_major("15.20 (Debian 15.20-0+deb12u1)"), Some(15));
        assert_eq!(server_major("13.23"), Some(13));
        assert_eq!(server_major("18beta1"), Some(18));
        assert_eq!(server_major("9.6.24"), Some(9));
        assert_eq!(server_major("devel"), None);
        assert_eq!(server_major(""), None);
    }

    #[test]
    fn refuses_only_servers_known_to_be_too_old() {
        let error = check(Some("12.22")).expect_err("12 is too old");
        assert_eq!(
            error.to_string(),
            "postgres server version 12.22 is not supported: the oldest supported is PostgreSQL 13 \
             (upgrade the server)"
        );
        assert!(check(Some("9.6.24")).is_err());
        for ok in ["13.0", "13.23", "17.10 (Debian)", "18beta1", "devel"] {
            assert_eq!(check(Some(ok)), Ok(()), "{ok}");
        }
        assert_eq!(check(None), Ok(()));
    }
}
