//! Fault injection beside the real-broker tests: librdkafka's mock cluster
//! answers produce requests with leader changes and timeouts; the relay
//! still delivers everything, in order, and marks every row.

mod support;

use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use support::checker::verify;
use support::db::TestDb;
use support::kafka::read_all;
use support::relay::{Relay, RelayConfig, toml_str};
use support::writers;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transient_produce_errors_are_retried_in_order() {
    let mock = MockCluster::new(3).expect("mock cluster");
    let topic = "mock.order";
    mock.create_topic(topic, 3, 3).expect("topic");
    let brokers = mock.bootstrap_servers();
    use RDKafkaRespErr::*;
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        ],
    );

    let db = TestDb::new();
    let mut config = RelayConfig::new(&db, "unused");
    config
        .set("sink", "kind", "\"kafka\"")
        .set("sink.kafka", "brokers", &toml_str(&brokers))
        .set("sink.kafka", "topic", "\"mock.{aggregate_type}\"")
        .set("source.polling", "batch_size", "50");
    config.migrate();
    let mut relay = Relay::start(&config);
    relay.wait_ready().await;

    let written = writers::write(&db.url, 2, 300, 4, Duration::ZERO).await;
    support::eventually(Duration::from_secs(60), "all rows marked", || async {
        db.unsent().await == 0
    })
    .await;
    let mut records = read_all(&brokers, topic, written.len(), Duration::from_secs(30));
    records.sort_by_key(|r| r.partition);
    let ids: Vec<String> = records.iter().map(|r| r.event_id()).collect();
    let report = verify(&written, &ids);
    println!("kafka mock faults: {report}");
}
