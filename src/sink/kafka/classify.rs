//! Which Kafka delivery errors are about the event itself (retrying cannot
//! help) and which are about the path to the broker (retry, skip nothing).

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// What to do about a failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The broker will never take this event as it is.
    Permanent,
    /// The broker or the network is at fault: retry with backoff.
    Transient,
}

/// Classifies a produce or delivery error.
pub fn classify(error: &KafkaError) -> Class {
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
            | C::UnsupportedForMessageFormat,
        ) => Class::Permanent,
        _ => Class::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(code: RDKafkaErrorCode) -> KafkaError {
        KafkaError::MessageProduction(code)
    }

    #[test]
    fn event_specific_errors_are_permanent() {
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::UnknownTopic,
            RDKafkaErrorCode::InvalidTopic,
        ] {
            assert_eq!(classify(&delivery(code)), Class::Permanent, "{code:?}");
        }
    }

    #[test]
    fn path_errors_are_transient() {
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::LeaderNotAvailable,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::QueueFull,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::SaslAuthenticationFailed,
        ] {
            assert_eq!(classify(&delivery(code)), Class::Transient, "{code:?}");
        }
    }
}
