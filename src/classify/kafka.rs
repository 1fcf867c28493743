//! rdkafka errors: which are about the event itself and which about the
//! path to the broker.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::Disposition;

/// Classifies a produce-time, delivery-report or fatal error (the table
/// in `docs/errors-kafka.md` lists every code and why). Only codes that
/// can never succeed for this record are dead-lettered: its size, its
/// timestamp, its topic (missing, illegal, forbidden, refused by policy or
/// too old a format) or the record itself. Every other code, listed or not,
/// is retried: the path to the broker, the idempotent producer's session,
/// and what an operator fixes for every event at once (credentials, the
/// cluster's ACLs, a broker too old for the relay's settings).
pub fn classify(error: &KafkaError) -> Disposition {
    use RDKafkaErrorCode as C;
    match error.rdkafka_error_code() {
        Some(
            C::MessageSizeTooLarge
            | C::MessageBatchTooLarge
            | C::InvalidRecord
            | C::InvalidTimestamp
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
        Some(C::InvalidTimestamp) => "invalid_timestamp",
        Some(C::InvalidRecord) => "invalid_record",
        _ => "rejected",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(code: RDKafkaErrorCode) -> KafkaError {
        KafkaError::MessageProduction(code)
    }

    /// Every code the table in docs/errors-kafka.md dead-letters, with its reason.
    const DEAD_LETTERED: &[(RDKafkaErrorCode, &str)] = &[
        (RDKafkaErrorCode::MessageSizeTooLarge, "oversized"),
        (RDKafkaErrorCode::MessageBatchTooLarge, "oversized"),
        (RDKafkaErrorCode::InvalidRecord, "invalid_record"),
        (RDKafkaErrorCode::InvalidTimestamp, "invalid_timestamp"),
        (RDKafkaErrorCode::InvalidTopic, "invalid_topic"),
        (RDKafkaErrorCode::UnknownTopic, "unknown_topic"),
        (RDKafkaErrorCode::UnknownTopicOrPartition, "unknown_topic"),
        (
            RDKafkaErrorCode::TopicAuthorizationFailed,
            "topic_authorization_failed",
        ),
        (RDKafkaErrorCode::PolicyViolation, "policy_violation"),
        (RDKafkaErrorCode::UnsupportedForMessageFormat, "rejected"),
        (RDKafkaErrorCode::InvalidArgument, "rejected"),
    ];

    /// Codes the table retries: the path, the producer's session, and what
    /// is wrong for every event at once.
    const RETRIED: &[RDKafkaErrorCode] = &[
        // Path to the broker.
        RDKafkaErrorCode::MessageTimedOut,
        RDKafkaErrorCode::BrokerTransportFailure,
        RDKafkaErrorCode::AllBrokersDown,
        RDKafkaErrorCode::Resolve,
        RDKafkaErrorCode::NetworkException,
        RDKafkaErrorCode::RequestTimedOut,
        RDKafkaErrorCode::OperationTimedOut,
        RDKafkaErrorCode::TimedOutQueue,
        RDKafkaErrorCode::NotLeaderForPartition,
        RDKafkaErrorCode::LeaderNotAvailable,
        RDKafkaErrorCode::BrokerNotAvailable,
        RDKafkaErrorCode::ReplicaNotAvailable,
        RDKafkaErrorCode::FencedLeaderEpoch,
        RDKafkaErrorCode::UnknownLeaderEpoch,
        RDKafkaErrorCode::NotEnoughReplicas,
        RDKafkaErrorCode::NotEnoughReplicasAfterAppend,
        RDKafkaErrorCode::KafkaStorageError,
        RDKafkaErrorCode::InvalidMessage,
        RDKafkaErrorCode::ThrottlingQuotaExceeded,
        RDKafkaErrorCode::RebootstrapRequired,
        RDKafkaErrorCode::UnknownPartition,
        RDKafkaErrorCode::QueueFull,
        // Another record of the same broker batch was refused.
        RDKafkaErrorCode::InvalidDifferentRecord,
        // The relay's own purge after a failure, and its producer session.
        RDKafkaErrorCode::PurgeQueue,
        RDKafkaErrorCode::PurgeInflight,
        RDKafkaErrorCode::Fatal,
        RDKafkaErrorCode::OutOfOrderSequenceNumber,
        RDKafkaErrorCode::DuplicateSequenceNumber,
        RDKafkaErrorCode::UnknownProducerId,
        RDKafkaErrorCode::InvalidProducerEpoch,
        RDKafkaErrorCode::ProducerFenced,
        RDKafkaErrorCode::Inconsistent,
        RDKafkaErrorCode::GaplessGuarantee,
        RDKafkaErrorCode::State,
        // Setup an operator fixes for every event at once.
        RDKafkaErrorCode::InvalidRequiredAcks,
        RDKafkaErrorCode::ClusterAuthorizationFailed,
        RDKafkaErrorCode::TransactionalIdAuthorizationFailed,
        RDKafkaErrorCode::SaslAuthenticationFailed,
        RDKafkaErrorCode::Authentication,
        RDKafkaErrorCode::UnsupportedSASLMechanism,
        RDKafkaErrorCode::IllegalSASLState,
        RDKafkaErrorCode::SSL,
        RDKafkaErrorCode::UnsupportedVersion,
        RDKafkaErrorCode::UnsupportedFeature,
        RDKafkaErrorCode::UnsupportedCompressionType,
        RDKafkaErrorCode::InvalidRequest,
        RDKafkaErrorCode::Unknown,
    ];

    #[test]
    fn event_specific_errors_are_dead_lettered_with_their_reason() {
        for &(code, want) in DEAD_LETTERED {
            assert_eq!(
                classify(&delivery(code)),
                Disposition::DeadLetter,
                "{code:?}"
            );
            assert_eq!(reason(&delivery(code)), want, "{code:?}");
        }
    }

    #[test]
    fn path_session_and_setup_errors_are_retried() {
        for &code in RETRIED {
            assert_eq!(classify(&delivery(code)), Disposition::Retry, "{code:?}");
        }
    }

    #[test]
    fn every_reason_has_a_metric_series() {
        let known = crate::sink::dead_letter_reasons(crate::config::SinkKind::Kafka);
        for &(code, _) in DEAD_LETTERED {
            assert!(known.contains(&reason(&delivery(code))), "{code:?}");
        }
    }

    #[test]
    fn errors_without_a_code_are_retried() {
        assert_eq!(classify(&KafkaError::Canceled), Disposition::Retry);
        assert_eq!(
            classify(&KafkaError::MetadataFetch(RDKafkaErrorCode::AllBrokersDown)),
            Disposition::Retry
        );
    }
}
