//! Running the baselines in the same setup as the relay runs: a fresh,
//! identically filled database for the source baselines; the same kind of
//! exchange + consumed queue, or topic + consumer, for the broker ones.

use std::time::Duration;

use super::drain::prepared_db;
use super::{Context, Destination};
use crate::Result;
use crate::baseline::{Baseline, claim_and_mark, kafka_publish, pg_recvlogical, rabbitmq_publish};
use crate::relay::{Mode, SinkKind};

/// How fast Postgres hands out a backlog of `events` without the relay.
pub async fn source_baseline(
    ctx: &Context,
    mode: Mode,
    events: u64,
    per_txn: u64,
) -> Result<Baseline> {
    let db = prepared_db(ctx, mode, events, per_txn).await?;
    match mode {
        Mode::Polling => claim_and_mark(&db, ctx.batch_size).await,
        Mode::Replication => pg_recvlogical(&db, events).await,
    }
}

/// How fast the broker of `sink` takes `events` confirmed messages from a
/// minimal client; `None` for stdout.
pub async fn broker_baseline(
    ctx: &Context,
    sink: SinkKind,
    events: u64,
) -> Result<Option<Baseline>> {
    if sink == SinkKind::Stdout {
        return Ok(None);
    }
    let name = ctx.unique_name("baseline");
    let destination = Destination::create(ctx, sink, &name).await?;
    let live = destination.consume(ctx, None).await?;
    let brokers = destination.kafka_brokers().unwrap_or_default();
    let publish = async {
        match sink {
            SinkKind::Rabbitmq => {
                rabbitmq_publish(&ctx.amqp_url, &name, events, ctx.batch_size).await
            }
            SinkKind::Kafka => kafka_publish(brokers, &name, events, ctx.batch_size).await,
            SinkKind::Stdout => Err("stdout has no broker".into()),
        }
    };
    // A broker restarted under the run (the test suite does that) would
    // otherwise keep a publisher retrying for long.
    let limit = Duration::from_secs(60 + events / 1000);
    let published = match tokio::time::timeout(limit, publish).await {
        Ok(result) => result,
        Err(_) => Err(format!("did not finish within {limit:?}").into()),
    };
    // The consumer drains the queue, as in the relay's runs.
    if let Some(consumer) = live {
        if published.is_ok() {
            consumer.wait_for(events, Duration::from_secs(15)).await;
        }
        let _ = consumer.finish().await;
    }
    destination.delete().await;
    published.map(Some)
}
