//! A durable queue bound to the run's exchange, consumed without acks: the
//! relay and the RabbitMQ baseline publish into the same setup.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use super::Consumer;
use crate::Result;
use crate::checker::Checker;

/// The exchange (topic, durable) and the queue bound to it with `#`.
pub struct RabbitQueue {
    pub exchange: String,
    connection: Connection,
    channel: Channel,
}

impl RabbitQueue {
    /// Declares exchange and queue, both named `name`.
    pub async fn declare(url: &str, name: &str) -> Result<Self> {
        let connection = Connection::connect(url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                name.into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
        let queue = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(name.into(), queue, FieldTable::default())
            .await?;
        channel
            .queue_bind(
                name.into(),
                name.into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(RabbitQueue {
            exchange: name.to_owned(),
            connection,
            channel,
        })
    }

    /// Deletes queue and exchange.
    pub async fn delete(self) -> Result<()> {
        let name = self.exchange.as_str();
        self.channel
            .queue_delete(name.into(), QueueDeleteOptions::default())
            .await?;
        self.channel
            .exchange_delete(name.into(), ExchangeDeleteOptions::default())
            .await?;
        self.connection.close(0, "done".into()).await?;
        Ok(())
    }
}

/// Consumes the queue of `queue` on a connection of its own.
pub async fn consume_rabbitmq(url: &str, queue: &RabbitQueue) -> Result<Consumer> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel.basic_qos(2000, BasicQosOptions::default()).await?;
    let mut deliveries = channel
        .basic_consume(
            queue.exchange.as_str().into(),
            "outbox-bench".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(Consumer::spawn(move |link| async move {
        let mut checker = Checker::new();
        while !link.stopping() {
            let next = tokio::time::timeout(Duration::from_millis(100), deliveries.next()).await;
            let delivery = match next {
                Err(_) => continue,
                Ok(None) => break,
                Ok(Some(delivery)) => delivery?,
            };
            let props = &delivery.properties;
            let id = props
                .message_id()
                .as_ref()
                .and_then(|id| id.as_str().parse().ok())
                .ok_or("a message without a numeric message_id")?;
            let aggregate = props
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get("aggregate_id"))
                .and_then(|v| match v {
                    AMQPValue::LongString(s) => Some(s.to_string()),
                    _ => None,
                })
                .ok_or("a message without an aggregate_id header")?;
            link.record(&mut checker, id, &aggregate);
        }
        let _ = connection.close(0, "done".into()).await;
        Ok(checker)
    }))
}
