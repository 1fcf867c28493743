//! A durable test queue bound to the relay's exchange, read after the fact.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};

use super::{server_env, unique};

/// The broker most tests share: the run's private RabbitMQ node
/// (`OUTBOX_TEST_AMQP_URL`, guest/guest on 127.0.0.1).
pub fn url() -> String {
    server_env("OUTBOX_TEST_AMQP_URL")
}

/// One message as the consumer saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub routing_key: String,
    pub body: Vec<u8>,
    pub properties: BasicProperties,
}

impl Received {
    pub fn message_id(&self) -> String {
        self.properties
            .message_id()
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default()
    }

    /// A header as text (long strings, numbers, booleans).
    pub fn header(&self, name: &str) -> Option<String> {
        let headers = self.properties.headers().as_ref()?;
        let value = headers.inner().get(name)?;
        Some(match value {
            AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            AMQPValue::ShortString(s) => s.to_string(),
            AMQPValue::LongLongInt(i) => i.to_string(),
            AMQPValue::Boolean(b) => b.to_string(),
            other => format!("{other:?}"),
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

/// A topic exchange and a durable queue bound to it with `#`.
pub struct TestQueue {
    pub exchange: String,
    pub queue: String,
    /// The broker both live on.
    pub url: String,
}

impl TestQueue {
    /// Declares both on the shared broker (the relay's own declaration of
    /// the exchange matches).
    pub async fn new() -> Self {
        Self::on(&url()).await
    }

    /// Declares both on another broker, e.g. a test's own [`super::rabbit_node::RabbitNode`].
    pub async fn on(url: &str) -> Self {
        let test = TestQueue {
            exchange: unique("outbox_test_x"),
            queue: unique("outbox_test_q"),
            url: url.to_owned(),
        };
        test.declare().await;
        test
    }

    /// Declares the exchange and the queue (again) and binds them.
    pub async fn declare(&self) {
        let conn = connect_to(&self.url).await;
        let channel = conn.create_channel().await.expect("channel");
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("exchange");
        channel
            .queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("queue");
        channel
            .queue_bind(
                self.queue.as_str().into(),
                self.exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
        let _ = conn.close(0, "done".into()).await;
    }

    /// Deletes the exchange only: publishing to it then fails with NOT_FOUND.
    #[allow(dead_code)]
    pub async fn delete_exchange(&self) {
        let conn = connect_to(&self.url).await;
        let channel = conn.create_channel().await.expect("channel");
        channel
            .exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await
            .expect("exchange delete");
        let _ = conn.close(0, "done".into()).await;
    }

    /// Reads until at least `expected` messages arrived, then one more quiet
    /// second to catch late duplicates. Panics after `timeout`.
    pub async fn drain(&self, expected: usize, timeout: Duration) -> Vec<Received> {
        let conn = connect_to(&self.url).await;
        let channel = conn.create_channel().await.expect("channel");
        let mut consumer = channel
            .basic_consume(
                self.queue.as_str().into(),
                "test".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume");
        let deadline = Instant::now() + timeout;
        let mut received = Vec::new();
        loop {
            let wait = if received.len() >= expected {
                Duration::from_secs(1)
            } else {
                deadline.saturating_duration_since(Instant::now())
            };
            match tokio::time::timeout(wait, consumer.next()).await {
                Ok(Some(Ok(delivery))) => received.push(Received {
                    routing_key: delivery.routing_key.to_string(),
                    body: delivery.data.clone(),
                    properties: delivery.properties.clone(),
                }),
                Ok(Some(Err(e))) => panic!("consuming: {e}"),
                Ok(None) => panic!("consumer ended"),
                Err(_) if received.len() >= expected => break,
                Err(_) => panic!(
                    "only {} of {expected} messages arrived within {timeout:?}",
                    received.len()
                ),
            }
        }
        let _ = conn.close(0, "done".into()).await;
        received
    }

    /// Deletes the queue and exchange.
    pub async fn delete(&self) {
        let conn = connect_to(&self.url).await;
        let channel = conn.create_channel().await.expect("channel");
        let _ = channel
            .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
            .await;
        let _ = channel
            .exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await;
        let _ = conn.close(0, "done".into()).await;
    }
}

/// Connects to the shared broker, retrying for a while.
pub async fn connect() -> Connection {
    connect_to(&url()).await
}

/// Connects to `url`, retrying for a while (the broker may be restarting).
pub async fn connect_to(url: &str) -> Connection {
    let mut last = None;
    for _ in 0..150 {
        match Connection::connect(url, ConnectionProperties::default()).await {
            Ok(c) => return c,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("connecting to rabbitmq at {url}: {last:?}");
}

/// Deletes a test queue and its exchange when dropped, even by a panic (a
/// large queue must not outlive a failed test).
pub struct QueueCleanup(TestQueue);

impl QueueCleanup {
    pub fn of(queue: &TestQueue) -> Self {
        Self(TestQueue {
            exchange: queue.exchange.clone(),
            queue: queue.queue.clone(),
            url: queue.url.clone(),
        })
    }
}

impl Drop for QueueCleanup {
    fn drop(&mut self) {
        let queue = TestQueue {
            exchange: std::mem::take(&mut self.0.exchange),
            queue: std::mem::take(&mut self.0.queue),
            url: std::mem::take(&mut self.0.url),
        };
        // Drop may run inside a runtime, which cannot block on another task.
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(queue.delete());
            }
        })
        .join();
    }
}
