//! A Kafka topic per test on the tansu broker, read back from the beginning.
//! Outage tests crash a broker of their own ([`super::tansu::PrivateTansu`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::checker::{Report, verify};
use super::db::TestDb;
use super::relay::{Relay, RelayConfig, toml_str};
use super::writers::Written;
use super::{server_env, unique};

/// The broker most Kafka tests share: the run's private tansu
/// (`OUTBOX_TEST_KAFKA_BROKERS`, `127.0.0.1:PORT`; `scripts/servers.sh
/// run --kafka` starts it).
pub fn brokers() -> String {
    server_env("OUTBOX_TEST_KAFKA_BROKERS")
}

/// One record as read back.
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
    pub timestamp: Option<i64>,
}

impl Record {
    pub fn event_id(&self) -> String {
        self.headers.get("event_id").cloned().unwrap_or_default()
    }
}

/// librdkafka properties the test's own clients add to reach a broker
/// behind TLS or a login (`security.protocol`, `ssl.ca.location`, ...).
pub type ClientProps = [(String, String)];

/// Creates `name` with `partitions` partitions on `brokers`.
pub async fn create_topic(brokers: &str, name: &str, partitions: i32) {
    create_topic_as(brokers, &[], name, partitions).await
}

/// [`create_topic`] with a client configured by `props`.
pub async fn create_topic_as(brokers: &str, props: &ClientProps, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        client(brokers, props).create().expect("admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topics");
    for r in results {
        r.expect("topic created");
    }
}

/// Reads every record of `topic` from the beginning, one partition at a
/// time up to its high watermark (tansu 0.6 does not always serve several
/// partitions in one fetch). `expected` is a floor on the total.
pub fn read_all(brokers: &str, topic: &str, expected: usize, timeout: Duration) -> Vec<Record> {
    read_all_as(brokers, &[], topic, expected, timeout)
}

/// [`read_all`] with consumers configured by `props`.
pub fn read_all_as(
    brokers: &str,
    props: &ClientProps,
    topic: &str,
    expected: usize,
    timeout: Duration,
) -> Vec<Record> {
    let deadline = Instant::now() + timeout;
    let probe: BaseConsumer = consumer(brokers, props);
    let metadata = probe
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut records = Vec::new();
    for partition in partitions {
        let (_, high) = probe
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .expect("watermarks");
        if high <= 0 {
            continue;
        }
        let reader = consumer(brokers, props);
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("partition");
        reader.assign(&assignment).expect("assign");
        let mut next = 0;
        while next < high {
            assert!(
                Instant::now() < deadline,
                "partition {partition}: read {next} of {high} records within {timeout:?}"
            );
            match reader.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    next = m.offset() + 1;
                    records.push(record(&m));
                }
                Some(Err(e)) => eprintln!("consumer: {e}"),
                None => {}
            }
        }
    }
    assert!(
        records.len() >= expected,
        "only {} of {expected} records in {topic}",
        records.len()
    );
    records
}

/// How many records `topic` holds: the sum of its partitions' high
/// watermarks (nothing is deleted from a test topic).
pub fn record_count_as(brokers: &str, props: &ClientProps, topic: &str) -> i64 {
    let probe: BaseConsumer = consumer(brokers, props);
    let metadata = probe
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .map(|partition| {
            probe
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .sum()
}

fn client(brokers: &str, props: &ClientProps) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (key, value) in props {
        config.set(key, value);
    }
    config
}

fn consumer(brokers: &str, props: &ClientProps) -> BaseConsumer {
    client(brokers, props)
        .set("group.id", unique("outbox_test_group"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer")
}

fn record(m: &rdkafka::message::BorrowedMessage<'_>) -> Record {
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Record {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        payload: m.payload().unwrap_or_default().to_vec(),
        headers,
        timestamp: m.timestamp().to_millis(),
    }
}

/// Database, topic and relay config of one Kafka test.
pub struct KafkaSetup {
    pub config: RelayConfig,
    /// Topic prefix; the relay publishes to `<prefix>.order`.
    pub topic: String,
    pub db: TestDb,
    /// The broker the topic lives on.
    pub brokers: String,
    /// What the test's own clients need to reach it.
    pub client: Vec<(String, String)>,
}

impl KafkaSetup {
    /// Migrated database, a 3-partition topic `<prefix>.order` on the
    /// shared broker, config with the Kafka sink and the given batch size.
    pub async fn new(batch_size: usize) -> Self {
        Self::on(&brokers(), batch_size).await
    }

    /// The same on another broker, e.g. a test's own [`super::tansu::PrivateTansu`].
    pub async fn on(brokers: &str, batch_size: usize) -> Self {
        Self::on_as(brokers, Vec::new(), batch_size).await
    }

    /// The same on a broker the test's own clients reach with `client`
    /// (TLS, SASL); the relay's own settings are the test's to add.
    pub async fn on_as(brokers: &str, client: Vec<(String, String)>, batch_size: usize) -> Self {
        let db = TestDb::new();
        let prefix = unique("outbox_test");
        let topic = format!("{prefix}.order");
        create_topic_as(brokers, &client, &topic, 3).await;
        let mut config = RelayConfig::new(&db, "unused");
        config
            .set("sink", "kind", "\"kafka\"")
            .set("sink.kafka", "brokers", &toml_str(brokers))
            .set(
                "sink.kafka",
                "topic",
                &toml_str(&format!("{prefix}.{{aggregate_type}}")),
            )
            // Reconnect quickly once the broker is back.
            .set(
                "sink.kafka.librdkafka",
                "\"reconnect.backoff.max.ms\"",
                "\"500\"",
            )
            .set("source.polling", "batch_size", &batch_size.to_string());
        config.migrate();
        KafkaSetup {
            config,
            topic,
            db,
            brokers: brokers.to_owned(),
            client,
        }
    }

    pub async fn start_relay(&self) -> Relay {
        let mut relay = Relay::start(&self.config);
        relay.wait_ready().await;
        relay
    }

    /// Waits until every row is marked, reads the topic, verifies delivery
    /// and per-aggregate order; prints the counts.
    pub async fn settle(&self, label: &str, written: &[Written]) -> (Report, Vec<Record>) {
        super::eventually(Duration::from_secs(120), "all rows marked", || async {
            self.db.unsent().await == 0
        })
        .await;
        let topic = self.topic.clone();
        let brokers = self.brokers.clone();
        let client = self.client.clone();
        let expected = written.len();
        let records = tokio::task::spawn_blocking(move || {
            read_all_as(&brokers, &client, &topic, expected, Duration::from_secs(60))
        })
        .await
        .expect("reader");
        // Per-aggregate order is a per-partition property: read each
        // partition in order, one after another.
        let mut by_partition = records.clone();
        by_partition.sort_by_key(|r| r.partition);
        let ids: Vec<String> = by_partition.iter().map(Record::event_id).collect();
        let report = verify(written, &ids);
        println!("{label}: {report}");
        (report, records)
    }
}
