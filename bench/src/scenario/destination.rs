//! Where a run's messages go and how the harness reads them back: the
//! relay's stdout pipe, a RabbitMQ exchange with a consumed queue, or a
//! Kafka topic.

use crate::Result;
use crate::consumer::{
    Consumer, KafkaTopic, RabbitQueue, consume_kafka, consume_rabbitmq, consume_stdout,
};
use crate::relay::{RelayProcess, SinkKind};

use super::Context;

/// One run's destination, created before and deleted after it.
pub enum Destination {
    Stdout,
    /// Boxed: a lapin connection and channel are large.
    Rabbitmq(Box<RabbitQueue>),
    Kafka(KafkaTopic),
}

impl Destination {
    /// Creates the exchange and queue, or the topic, named `name`.
    pub async fn create(ctx: &Context, sink: SinkKind, name: &str) -> Result<Self> {
        Ok(match sink {
            SinkKind::Stdout => Destination::Stdout,
            SinkKind::Rabbitmq => {
                Destination::Rabbitmq(Box::new(RabbitQueue::declare(&ctx.amqp_url, name).await?))
            }
            SinkKind::Kafka => Destination::Kafka(
                KafkaTopic::create(&ctx.kafka_brokers, name, ctx.kafka_partitions).await?,
            ),
        })
    }

    /// Starts the consumer; for stdout, on the pipe of `relay`.
    pub async fn consume(
        &self,
        ctx: &Context,
        relay: Option<&mut RelayProcess>,
    ) -> Result<Consumer> {
        match self {
            Destination::Stdout => {
                let pipe = relay
                    .and_then(RelayProcess::take_stdout)
                    .ok_or("the stdout sink needs the relay's stdout pipe")?;
                Ok(consume_stdout(pipe))
            }
            Destination::Rabbitmq(queue) => consume_rabbitmq(&ctx.amqp_url, queue).await,
            Destination::Kafka(topic) => consume_kafka(topic),
        }
    }

    /// Deletes what [`Destination::create`] made (best effort).
    pub async fn delete(self) {
        let result = match self {
            Destination::Stdout => Ok(()),
            Destination::Rabbitmq(queue) => queue.delete().await,
            Destination::Kafka(topic) => topic.delete().await,
        };
        if let Err(e) = result {
            eprintln!("  cleanup: {e}");
        }
    }
}
