//! tokio-postgres errors met while claiming, marking or dead-lettering.

use super::Disposition;

/// Classifies a database error by its SQLSTATE class. A lost connection
/// has no SQLSTATE and is retried, as are the classes a restart, failover,
/// overload or concurrent transaction produce. Missing tables or columns,
/// missing privileges and malformed data (class 42, 22) will not heal by
/// waiting: the relay stops and names the statement's error.
pub fn classify(error: &tokio_postgres::Error) -> Disposition {
    error
        .code()
        .map_or(Disposition::Retry, |code| classify_code(code.code()))
}

/// Classifies a SQLSTATE code.
pub fn classify_code(code: &str) -> Disposition {
    match code.get(..2).unwrap_or_default() {
        // 42: undefined table or column, insufficient privilege, syntax;
        // 22: data the statement cannot convert (an id of the wrong type).
        "42" | "22" => Disposition::Stop,
        // 08 connection, 25 read-only (a failover in progress), 40 rollback,
        // 53 resources, 55 lock not available, 57 operator intervention,
        // 58 system I/O, XX internal; and any class not named.
        _ => Disposition::Retry,
    }
}

#[cfg(test)]
mod tests {
    use tokio_postgres::error::SqlState;

    use super::*;

    #[test]
    fn setup_faults_stop() {
        for code in [
            SqlState::UNDEFINED_TABLE,
            SqlState::UNDEFINED_COLUMN,
            SqlState::INSUFFICIENT_PRIVILEGE,
            SqlState::INVALID_TEXT_REPRESENTATION,
            SqlState::SYNTAX_ERROR,
        ] {
            assert_eq!(classify_code(code.code()), Disposition::Stop, "{code:?}");
        }
    }

    #[test]
    fn path_faults_are_retried() {
        for code in [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::CONNECTION_FAILURE,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::QUERY_CANCELED,
            SqlState::IDLE_SESSION_TIMEOUT,
            SqlState::READ_ONLY_SQL_TRANSACTION,
            SqlState::INTERNAL_ERROR,
        ] {
            assert_eq!(classify_code(code.code()), Disposition::Retry, "{code:?}");
        }
    }
}
