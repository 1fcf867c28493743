//! The Kafka baseline: a minimal rdkafka producer with the relay's producer
//! settings (idempotent, acks=all, 5 in flight, lz4, 5 ms linger) sending
//! the relay's records (key = aggregate, same payloads and headers),
//! awaiting the delivery reports `batch` at a time like the relay's batch.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::Baseline;
use crate::Result;
use crate::workload::{AGGREGATE_TYPE, EVENT_TYPE, aggregate, payload};

/// Produces events `1..=events` to `topic`.
pub async fn kafka_publish(
    brokers: &str,
    topic: &str,
    events: u64,
    batch: usize,
) -> Result<Baseline> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "5")
        .create()?;
    let started = Instant::now();
    for window in super::windows(events, batch) {
        let mut pending = Vec::with_capacity(batch);
        for seq in window {
            let (id, key, body) = (seq.to_string(), aggregate(seq), payload(seq));
            let headers = OwnedHeaders::new_with_capacity(5)
                .insert(header("event_id", &id))
                .insert(header("event_type", EVENT_TYPE))
                .insert(header("aggregate_type", AGGREGATE_TYPE))
                .insert(header("aggregate_id", &key))
                .insert(header("tenant", "bench"));
            loop {
                let record = FutureRecord::to(topic)
                    .key(&key)
                    .payload(&body)
                    .headers(headers.clone());
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => return Err(e.into()),
                }
            }
        }
        for delivery in pending {
            delivery
                .await?
                .map_err(|(e, _)| format!("delivery failed: {e}"))?;
        }
    }
    Ok(Baseline::new(
        "kafka_publish",
        events,
        started.elapsed(),
        format!("rdkafka, idempotent, acks=all, lz4, linger 5 ms, {batch} in flight"),
    ))
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a [u8]> {
    Header {
        key,
        value: Some(value.as_bytes()),
    }
}
