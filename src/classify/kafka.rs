//! rdkafka errors: which are about the event itself and which about the
//! path to the broker.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::Disposition;

/// Classifies a produce or delivery error. Only codes that can never succeed
/// for this record are dead-lettered; every other code (including ones not
/// listed, and authentication failures an operator may fix) is retried.
pub fn classify(error: &KafkaError) -> Disposition {
    use RDKafkaErrorCode as C;
    match error.rdkafka_error_code() {
        Some(
            C::MessageSizeTooLarge
            | C::MessageBatchTooLarge
            | C::InvalidRecord
            | C::InvalidTopic
            | C::UnknownTopic
            | C::UnknownTopicOrPartition
            | C::TopicAuthorizationFailed
            | C::PolicyViolation
            | C::UnsupportedForMessageFormat
            | C::InvalidArgument,
        ) => Disposition::DeadLetter,
        _ => Disposition::Retry,
    }
}

/// A short label for an event-specific error, for the dead-letter table's
/// `reason` column.
pub fn reason(error: &KafkaError) -> &'static str {
    use RDKafkaErrorCode as C;
    match error.rdkafka_error_code() {
        Some(C::MessageSizeTooLarge | C::MessageBatchTooLarge) => "oversized",
        Some(C::UnknownTopic | C::UnknownTopicOrPartition) => "unknown_topic",
        Some(C::InvalidTopic) => "invalid_topic",
        Some(C::TopicAuthorizationFailed) => "topic_authorization_failed",
        Some(C::PolicyViolation) => "policy_violation",
        _ => "rejected",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(code: RDKafkaErrorCode) -> KafkaError {
        KafkaError::MessageProduction(code)
    }

    #[test]
    fn event_specific_errors_are_dead_lettered() {
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::MessageBatchTooLarge,
            RDKafkaErrorCode::InvalidRecord,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::UnknownTopic,
            RDKafkaErrorCode::InvalidTopic,
            RDKafkaErrorCode::PolicyViolation,
        ] {
            assert_eq!(
                classify(&delivery(code)),
                Disposition::DeadLetter,
                "{code:?}"
            );
        }
    }

    #[test]
    fn path_errors_are_retried() {
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::LeaderNotAvailable,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::QueueFull,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::NotEnoughReplicasAfterAppend,
            RDKafkaErrorCode::SaslAuthenticationFailed,
            RDKafkaErrorCode::ClusterAuthorizationFailed,
            RDKafkaErrorCode::OutOfOrderSequenceNumber,
            RDKafkaErrorCode::Fatal,
        ] {
            assert_eq!(classify(&delivery(code)), Disposition::Retry, "{code:?}");
        }
    }

    #[test]
    fn every_reason_has_a_metric_series() {
        let known = crate::sink::dead_letter_reasons(crate::config::SinkKind::Kafka);
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::MessageBatchTooLarge,
            RDKafkaErrorCode::UnknownTopic,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::InvalidTopic,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::PolicyViolation,
            RDKafkaErrorCode::InvalidRecord,
        ] {
            assert!(known.contains(&reason(&delivery(code))), "{code:?}");
        }
    }

    #[test]
    fn errors_without_a_code_are_retried() {
        assert_eq!(classify(&KafkaError::Canceled), Disposition::Retry);
    }
}
