//! The RabbitMQ baseline: a minimal lapin publisher sending the relay's
//! messages (same bodies, properties and headers; persistent, mandatory)
//! with publisher confirms, a window of `batch` unconfirmed messages like
//! the relay's batch, into the same exchange and consumed queue.

use std::time::Instant;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};

use super::Baseline;
use crate::Result;
use crate::workload::{AGGREGATE_TYPE, EVENT_TYPE, aggregate, payload};

/// Publishes events `1..=events` to `exchange`, `batch` confirms at a time.
pub async fn rabbitmq_publish(
    url: &str,
    exchange: &str,
    events: u64,
    batch: usize,
) -> Result<Baseline> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let routing_key = format!("{AGGREGATE_TYPE}.{EVENT_TYPE}");
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let started = Instant::now();
    for window in super::windows(events, batch) {
        let mut pending = Vec::with_capacity(batch);
        for seq in window {
            let confirm = channel
                .basic_publish(
                    ShortString::from(exchange),
                    ShortString::from(routing_key.as_str()),
                    options,
                    &payload(seq),
                    properties(seq),
                )
                .await?;
            pending.push(confirm);
        }
        for confirm in pending {
            match confirm.await? {
                Confirmation::Ack(None) => {}
                other => return Err(format!("broker did not take a message: {other:?}").into()),
            }
        }
    }
    let elapsed = started.elapsed();
    connection.close(0, "done".into()).await?;
    Ok(Baseline::new(
        "rabbitmq_publish",
        events,
        elapsed,
        format!("lapin, persistent + mandatory, publisher confirms, {batch} in flight"),
    ))
}

/// The properties the relay sets (see `src/sink/rabbitmq.rs`).
fn properties(seq: u64) -> BasicProperties {
    let id = seq.to_string();
    let mut headers = FieldTable::default();
    headers.insert(
        "tenant".into(),
        AMQPValue::LongString(LongString::from("bench")),
    );
    for (key, value) in [
        ("event_id", id.clone()),
        ("aggregate_type", AGGREGATE_TYPE.to_owned()),
        ("aggregate_id", aggregate(seq)),
        ("event_type", EVENT_TYPE.to_owned()),
    ] {
        headers.insert(key.into(), AMQPValue::LongString(LongString::from(value)));
    }
    BasicProperties::default()
        .with_message_id(id.into())
        .with_type(EVENT_TYPE.into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_app_id("outbox-relay".into())
        .with_timestamp(0)
        .with_headers(headers)
}
