//! lapin errors met while publishing or awaiting a confirm.

use lapin::ErrorKind;
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};

use super::Disposition;

/// Classifies an error from `basic_publish` or its confirm. The broker
/// closes the channel with a soft error that names the message's fault
/// (RabbitMQ answers an oversized message with PRECONDITION_FAILED, a
/// missing exchange with NOT_FOUND, a forbidden one with ACCESS_REFUSED);
/// those are about the event. Connection-level and I/O errors, heartbeats,
/// and anything not listed are about the path and are retried.
pub fn classify(error: &lapin::Error) -> Disposition {
    match error.kind() {
        ErrorKind::ProtocolError(amqp) => match amqp.kind() {
            AMQPErrorKind::Soft(soft) => soft_error(soft),
            AMQPErrorKind::Hard(_) => Disposition::Retry,
        },
        _ => Disposition::Retry,
    }
}

/// [`classify`] for an error about the exchange an event went to. An
/// exchange configured without placeholders is every event's: its being
/// missing (NOT_FOUND) or forbidden (ACCESS_REFUSED) is the setup's fault,
/// and dead-lettering would move the whole outbox into the dead-letter
/// table, so it is retried (and logged) until an operator fixes it. A
/// templated exchange names the row's own destination: the event's fault.
pub fn classify_for_exchange(error: &lapin::Error, shared_exchange: bool) -> Disposition {
    match error.kind() {
        ErrorKind::ProtocolError(amqp)
            if shared_exchange
                && matches!(
                    amqp.kind(),
                    AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND | AMQPSoftError::ACCESSREFUSED)
                ) =>
        {
            Disposition::Retry
        }
        _ => classify(error),
    }
}

/// A short label for an event-specific soft error, for the dead-letter
/// table's `reason` column.
pub fn reason(error: &lapin::Error) -> &'static str {
    match error.kind() {
        ErrorKind::ProtocolError(amqp) => match amqp.kind() {
            AMQPErrorKind::Soft(AMQPSoftError::CONTENTTOOLARGE) => "oversized",
            AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) => "precondition_failed",
            AMQPErrorKind::Soft(AMQPSoftError::NOROUTE) => "unroutable",
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) => "access_refused",
            AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) => "exchange_not_found",
            _ => "rejected",
        },
        _ => "rejected",
    }
}

fn soft_error(error: &AMQPSoftError) -> Disposition {
    match error {
        AMQPSoftError::CONTENTTOOLARGE
        | AMQPSoftError::NOROUTE
        | AMQPSoftError::ACCESSREFUSED
        | AMQPSoftError::NOTFOUND
        | AMQPSoftError::PRECONDITIONFAILED => Disposition::DeadLetter,
        AMQPSoftError::NOCONSUMERS | AMQPSoftError::RESOURCELOCKED => Disposition::Retry,
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Arc;

    use lapin::protocol::{AMQPError, AMQPHardError};

    use super::*;

    fn protocol(kind: AMQPErrorKind) -> lapin::Error {
        ErrorKind::ProtocolError(AMQPError::new(kind, "test".into())).into()
    }

    /// The soft errors that are the event's own fault.
    fn message_faults() -> [AMQPSoftError; 5] {
        [
            AMQPSoftError::CONTENTTOOLARGE,
            AMQPSoftError::NOROUTE,
            AMQPSoftError::ACCESSREFUSED,
            AMQPSoftError::NOTFOUND,
            AMQPSoftError::PRECONDITIONFAILED,
        ]
    }

    #[test]
    fn message_faults_are_dead_lettered() {
        for soft in message_faults() {
            let error = protocol(AMQPErrorKind::Soft(soft.clone()));
            assert_eq!(classify(&error), Disposition::DeadLetter, "{soft:?}");
            assert_ne!(reason(&error), "rejected", "{soft:?}");
        }
    }

    #[test]
    fn every_reason_has_a_metric_series() {
        let known = crate::sink::dead_letter_reasons(crate::config::SinkKind::Rabbitmq);
        for soft in message_faults()
            .into_iter()
            .chain([AMQPSoftError::NOCONSUMERS])
        {
            let error = protocol(AMQPErrorKind::Soft(soft.clone()));
            assert!(known.contains(&reason(&error)), "{soft:?}");
        }
        let io: lapin::Error = ErrorKind::MissingHeartbeatError.into();
        assert!(known.contains(&reason(&io)));
    }

    #[test]
    fn a_shared_exchange_missing_or_forbidden_is_retried() {
        for soft in [AMQPSoftError::NOTFOUND, AMQPSoftError::ACCESSREFUSED] {
            let error = protocol(AMQPErrorKind::Soft(soft.clone()));
            assert_eq!(classify_for_exchange(&error, true), Disposition::Retry);
            assert_eq!(
                classify_for_exchange(&error, false),
                Disposition::DeadLetter
            );
        }
        let too_large = protocol(AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED));
        assert_eq!(
            classify_for_exchange(&too_large, true),
            Disposition::DeadLetter
        );
    }

    #[test]
    fn path_faults_are_retried() {
        let mut errors = vec![
            protocol(AMQPErrorKind::Soft(AMQPSoftError::RESOURCELOCKED)),
            protocol(AMQPErrorKind::Soft(AMQPSoftError::NOCONSUMERS)),
            ErrorKind::IOError(Arc::new(io::Error::from(io::ErrorKind::ConnectionReset))).into(),
            ErrorKind::MissingHeartbeatError.into(),
            ErrorKind::ChannelsLimitReached.into(),
        ];
        for hard in [
            AMQPHardError::CONNECTIONFORCED,
            AMQPHardError::RESOURCEERROR,
            AMQPHardError::INTERNALERROR,
            AMQPHardError::NOTALLOWED,
            AMQPHardError::FRAMEERROR,
            AMQPHardError::CHANNELERROR,
        ] {
            errors.push(protocol(AMQPErrorKind::Hard(hard)));
        }
        for error in errors {
            assert_eq!(classify(&error), Disposition::Retry, "{error:?}");
        }
    }
}
