//! The usual arrangement of a delivery test: a fresh database with the
//! default outbox, a test queue, a relay config; and the usual ending: wait
//! until every row is marked, read the queue, verify.

use std::time::Duration;

use super::checker::{Report, verify};
use super::db::TestDb;
use super::rabbit::{Received, TestQueue};
use super::relay::{Relay, RelayConfig, toml_str};
use super::writers::Written;

/// Database, queue and relay config of one test.
pub struct Setup {
    pub config: RelayConfig,
    pub queue: TestQueue,
    pub db: TestDb,
}

impl Setup {
    /// Migrated database, fresh queue, config with the given batch size,
    /// on the shared servers.
    pub async fn new(batch_size: usize) -> Self {
        Self::on(&super::db::server(), &super::rabbit::url(), batch_size).await
    }

    /// The same on other servers (a test's own cluster or node): `pg` the
    /// server's URL without a database, `amqp` the broker's URL.
    pub async fn on(pg: &str, amqp: &str, batch_size: usize) -> Self {
        let db = TestDb::on(pg);
        let queue = TestQueue::on(amqp).await;
        let mut config = RelayConfig::new(&db, &queue.exchange);
        config.set("sink.rabbitmq", "url", &toml_str(amqp)).set(
            "source.polling",
            "batch_size",
            &batch_size.to_string(),
        );
        config.migrate();
        Setup { config, queue, db }
    }

    /// The same as [`Setup::new`], reading by logical replication (slot and
    /// publication named after the database, created by the relay).
    pub async fn replication(batch_size: usize) -> Self {
        Self::replication_on(&super::db::server(), &super::rabbit::url(), batch_size).await
    }

    /// [`Setup::replication`] on other servers, as [`Setup::on`].
    pub async fn replication_on(pg: &str, amqp: &str, batch_size: usize) -> Self {
        let mut setup = Self::on(pg, amqp, batch_size).await;
        let name = setup.db.name.clone();
        setup.config.replication(&name, batch_size);
        setup
    }

    /// Starts a relay and waits until it is ready.
    pub async fn start_relay(&self) -> Relay {
        let mut relay = Relay::start(&self.config);
        relay.wait_ready().await;
        relay
    }

    /// Waits until every row is marked, reads the queue and verifies that
    /// every written event arrived in per-aggregate order; prints the counts.
    pub async fn settle(&self, label: &str, written: &[Written]) -> (Report, Vec<Received>) {
        super::eventually(Duration::from_secs(90), "all rows marked", || async {
            self.db.unsent().await == 0
        })
        .await;
        let received = self
            .queue
            .drain(written.len(), Duration::from_secs(60))
            .await;
        let ids: Vec<String> = received.iter().map(|m| m.message_id()).collect();
        let report = verify(written, &ids);
        println!("{label}: {report}");
        (report, received)
    }
}
