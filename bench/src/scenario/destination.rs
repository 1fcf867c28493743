//! Where a run's messages go and how the harness reads them back: the
//! relay's stdout pipe, a RabbitMQ exchange with a consumed queue, or a
//! Kafka topic (on a private tansu unless an external broker was given).

use super::{Context, KafkaBroker};
use crate::Result;
use crate::consumer::{
    Consumer, KafkaTopic, RabbitQueue, consume_kafka, consume_rabbitmq, consume_stdout,
};
use crate::relay::{RelayProcess, SinkKind};
use crate::tansu::PrivateTansu;

/// One run's destination, created before and deleted after it.
pub enum Destination {
    Stdout,
    /// Boxed: a lapin connection and channel are large.
    Rabbitmq(Box<RabbitQueue>),
    Kafka {
        topic: KafkaTopic,
        /// The private broker holding it, stopped with the destination.
        broker: Option<PrivateTansu>,
    },
}

impl Destination {
    /// Creates the exchange and queue, or the topic, named `name`.
    pub async fn create(ctx: &Context, sink: SinkKind, name: &str) -> Result<Self> {
        Ok(match sink {
            SinkKind::Stdout => Destination::Stdout,
            SinkKind::Rabbitmq => {
                Destination::Rabbitmq(Box::new(RabbitQueue::declare(&ctx.amqp_url, name).await?))
            }
            SinkKind::Kafka => {
                let broker = match &ctx.kafka {
                    KafkaBroker::Private(bin) => {
                        Some(PrivateTansu::start(bin, &ctx.work_dir, name)?)
                    }
                    KafkaBroker::External(_) => None,
                };
                let brokers = match (&broker, &ctx.kafka) {
                    (Some(b), _) => b.address.clone(),
                    (None, KafkaBroker::External(brokers)) => brokers.clone(),
                    (None, KafkaBroker::Private(_)) => return Err("no private broker".into()),
                };
                let topic = KafkaTopic::create(&brokers, name, ctx.kafka_partitions).await?;
                Destination::Kafka { topic, broker }
            }
        })
    }

    /// The Kafka bootstrap servers of a Kafka destination.
    pub fn kafka_brokers(&self) -> Option<&str> {
        match self {
            Destination::Kafka {
                broker: Some(broker),
                ..
            } => Some(&broker.address),
            Destination::Kafka {
                topic,
                broker: None,
            } => Some(topic.brokers()),
            _ => None,
        }
    }

    /// Starts the consumer (for stdout, on the pipe of `relay`); `None`
    /// for Kafka unless `--kafka-consumer` asked for one. tansu 0.6, the
    /// broker here, answers a fetch by summing record sizes from the fetch
    /// offset to the end of the partition: a consumer beside a fast
    /// producer kept it busy enough to stall the runs, and reading 20k
    /// records afterwards returned nothing (and once left it unresponsive).
    pub async fn consume(
        &self,
        ctx: &Context,
        relay: Option<&mut RelayProcess>,
    ) -> Result<Option<Consumer>> {
        match self {
            Destination::Stdout => {
                let pipe = relay
                    .and_then(RelayProcess::take_stdout)
                    .ok_or("the stdout sink needs the relay's stdout pipe")?;
                Ok(Some(consume_stdout(pipe)))
            }
            Destination::Rabbitmq(queue) => Ok(Some(consume_rabbitmq(&ctx.amqp_url, queue).await?)),
            Destination::Kafka { topic, .. } if ctx.kafka_consumer => {
                Ok(Some(consume_kafka(topic)?))
            }
            Destination::Kafka { .. } => Ok(None),
        }
    }

    /// Deletes what [`Destination::create`] made (best effort). A topic on
    /// an external broker stays (see [`KafkaTopic`]); a private broker goes
    /// with its store.
    pub async fn delete(self) {
        if let Destination::Rabbitmq(queue) = self
            && let Err(e) = queue.delete().await
        {
            eprintln!("  cleanup: {e}");
        }
    }
}
