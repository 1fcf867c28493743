//! A topic per run on the Kafka-protocol broker, read from the beginning by
//! one consumer assigned every partition (per-aggregate order is a
//! per-partition property, and an aggregate's events share a partition).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::Consumer;
use crate::Result;
use crate::checker::Checker;

/// A topic created for one run. Topics are never deleted: tansu 0.6
/// panics (and stops serving everyone) when a topic is deleted while a
/// consumer still fetches it; the test suite's `scripts/tansu.sh reset`
/// throws them all away.
pub struct KafkaTopic {
    pub name: String,
    pub partitions: i32,
    brokers: String,
}

impl KafkaTopic {
    /// Creates topic `name` with `partitions` partitions.
    pub async fn create(brokers: &str, name: &str, partitions: i32) -> Result<Self> {
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        for result in admin(brokers)?.create_topics([&topic], &options()).await? {
            result.map_err(|(topic, code)| format!("creating topic {topic}: {code}"))?;
        }
        Ok(KafkaTopic {
            name: name.to_owned(),
            partitions,
            brokers: brokers.to_owned(),
        })
    }
}

impl KafkaTopic {
    /// The bootstrap servers of its broker.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }
}

fn admin(brokers: &str) -> Result<AdminClient<DefaultClientContext>> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?)
}

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))
}

/// Reads every partition of `topic` from the beginning (after the run; see
/// `Destination::live_consumer`).
pub fn consume_kafka(topic: &KafkaTopic) -> Result<Consumer> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &topic.brokers)
        .set("group.id", format!("{}-reader", topic.name))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..topic.partitions {
        assignment.add_partition_offset(&topic.name, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    Ok(Consumer::blocking(move |link| {
        let mut checker = Checker::new();
        while !link.stopping() {
            let message = match consumer.poll(Duration::from_millis(100)) {
                None => continue,
                // Transient fetch errors (a broker restart) are retried by
                // librdkafka; what never arrives shows up as missing.
                Some(Err(_)) => continue,
                Some(Ok(message)) => message,
            };
            let mut id = None;
            let mut aggregate = None;
            if let Some(headers) = message.headers() {
                for header in headers.iter() {
                    let value = header.value.and_then(|v| std::str::from_utf8(v).ok());
                    match header.key {
                        "event_id" => id = value.and_then(|v| v.parse::<u64>().ok()),
                        "aggregate_id" => aggregate = value.map(str::to_owned),
                        _ => {}
                    }
                }
            }
            match (id, aggregate) {
                (Some(id), Some(aggregate)) => link.record(&mut checker, id, &aggregate),
                _ => return Err("a record without event_id or aggregate_id headers".into()),
            }
        }
        Ok(checker)
    }))
}
