//! tokio-postgres errors met while claiming, marking or dead-lettering.

use super::Disposition;

/// Classifies a database error by its SQLSTATE. A lost connection has no
/// SQLSTATE and is retried, as are the classes a restart, failover,
/// overload or concurrent transaction produce. What will not heal by
/// waiting (a missing table or column, missing privileges, a statement the
/// server cannot run on this table, a trigger or constraint that rejects
/// the relay's writes, corruption) stops the relay, naming the error. The
/// table of every class, per place, is docs/errors-postgres.md.
pub fn classify(error: &tokio_postgres::Error) -> Disposition {
    error
        .code()
        .map_or(Disposition::Retry, |code| classify_code(code.code()))
}

/// Classifies a SQLSTATE code.
pub fn classify_code(code: &str) -> Disposition {
    // Corruption of data or of an index: the operator must repair it.
    if matches!(code, "XX001" | "XX002") {
        return Disposition::Stop;
    }
    match code.get(..2).unwrap_or_default() {
        // 0A feature not supported (FOR UPDATE on a view or foreign table);
        // 22 data the statement cannot convert (the claim itself is total
        // over every column value, so this is a column of the wrong type);
        // 42 undefined table or column, insufficient privilege, syntax.
        "0A" | "22" | "42" => Disposition::Stop,
        // The server refuses who we are or where we connect: 28 invalid
        // authorization, 3D no such database, 3F no such schema, 0L/0P
        // grantor or role, 2B dependent privileges.
        "28" | "3D" | "3F" | "0L" | "0P" | "2B" => Disposition::Stop,
        // The table rejects the relay's own writes (a mark, a dead letter):
        // 09 triggered action, 23 constraint, 27 triggered data change,
        // 44 check option, 2F/38/39 routines, P0 a trigger's RAISE,
        // 21 cardinality, HV foreign data wrapper, 54 program limit
        // (an index row too large), F0 configuration file.
        "09" | "23" | "27" | "44" | "2F" | "38" | "39" | "P0" | "21" | "HV" | "54" | "F0" => {
            Disposition::Stop
        }
        // 08 connection, 25 read-only (a failover in progress), 40 rollback,
        // 53 resources, 55 lock not available, 57 operator intervention or
        // a timeout, 58 system I/O, 72 snapshot too old, XX internal; and
        // the relay's own session state (03, 0B, 0F, 0Z, 20, 24, 26, 2D,
        // 34, 3B), which the fresh session after any error resets.
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
            SqlState::FEATURE_NOT_SUPPORTED,
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
            SqlState::DATETIME_FIELD_OVERFLOW,
            SqlState::INVALID_PASSWORD,
            SqlState::INVALID_CATALOG_NAME,
            SqlState::CHECK_VIOLATION,
            SqlState::RAISE_EXCEPTION,
            SqlState::PROGRAM_LIMIT_EXCEEDED,
            SqlState::DATA_CORRUPTED,
            SqlState::INDEX_CORRUPTED,
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
            SqlState::DISK_FULL,
            SqlState::OUT_OF_MEMORY,
            SqlState::SNAPSHOT_TOO_OLD,
            SqlState::INVALID_SQL_STATEMENT_NAME,
            SqlState::IN_FAILED_SQL_TRANSACTION,
            SqlState::IO_ERROR,
        ] {
            assert_eq!(classify_code(code.code()), Disposition::Retry, "{code:?}");
        }
    }
}
