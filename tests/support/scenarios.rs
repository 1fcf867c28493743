//! Disruption scenarios shared by the RabbitMQ and Kafka tests: the same
//! writes, the same kills and outages, the same counting, whatever the sink.

use std::future::Future;
use std::time::{Duration, Instant};

use super::checker::Report;
use super::db::TestDb;
use super::kafka::KafkaSetup;
use super::relay::Relay;
use super::setup::Setup;
use super::writers::{self, Written};

/// A test arrangement with a relay and a way to read back what it sent.
pub trait Harness {
    fn db(&self) -> &TestDb;
    fn start_relay(&self) -> impl Future<Output = Relay>;
    /// Waits for every row to be marked, reads back, verifies, prints.
    fn verify(&self, label: &str, written: &[Written]) -> impl Future<Output = Report>;
}

impl Harness for Setup {
    fn db(&self) -> &TestDb {
        &self.db
    }
    fn start_relay(&self) -> impl Future<Output = Relay> {
        Setup::start_relay(self)
    }
    async fn verify(&self, label: &str, written: &[Written]) -> Report {
        self.settle(label, written).await.0
    }
}

impl Harness for KafkaSetup {
    fn db(&self) -> &TestDb {
        &self.db
    }
    fn start_relay(&self) -> impl Future<Output = Relay> {
        KafkaSetup::start_relay(self)
    }
    async fn verify(&self, label: &str, written: &[Written]) -> Report {
        self.settle(label, written).await.0
    }
}

/// Writes 5000 events from four writers while the relay is SIGKILLed
/// `kills` times and restarted; at most one batch per kill is repeated.
pub async fn crash_and_restart(h: &impl Harness, label: &str, kills: usize, batch: usize) {
    let mut relay = h.start_relay().await;
    let url = h.db().url.clone();
    let writing =
        tokio::spawn(
            async move { writers::write(&url, 4, 1250, 10, Duration::from_millis(1)).await },
        );
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        relay.sigkill();
        tokio::time::sleep(Duration::from_millis(300)).await;
        relay = h.start_relay().await;
    }
    let written = writing.await.expect("writers");
    let report = h.verify(&format!("{label} x{kills}"), &written).await;
    assert!(
        report.duplicates <= kills * batch,
        "too many duplicates: {report}"
    );
    drop(relay);
}

/// Writes 3000 events over about 6 s; two seconds in, `begin_outage`
/// takes a service away for 3 s (until its guard drops). Returns the relay's
/// metrics text at the end.
pub async fn outage<G>(
    h: &impl Harness,
    label: &str,
    batch: usize,
    begin_outage: impl FnOnce() -> G,
) -> String {
    let relay = h.start_relay().await;
    let url = h.db().url.clone();
    let writing =
        tokio::spawn(
            async move { writers::write(&url, 3, 1000, 10, Duration::from_millis(5)).await },
        );
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Rows must be seen waiting at some point of the outage: a stopped
    // broker holds them for the whole window, a Postgres restart only until
    // the relay has reconnected, so the window is sampled.
    let mut waiting = 0;
    {
        let _outage = begin_outage();
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            waiting = waiting.max(h.db().unsent().await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(waiting > 0, "rows wait while the service is away");
    let written = writing.await.expect("writers");
    let report = h.verify(label, &written).await;
    // One outage costs at most the batch in flight when it began and the
    // probing batches after it.
    assert!(
        report.duplicates <= 2 * batch,
        "too many duplicates: {report}"
    );
    relay.metrics().await
}
