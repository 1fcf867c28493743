//! A tiny RabbitMQ consumer for the quick start: binds a temporary queue to
//! the relay's exchange and prints each event as it arrives.
//!
//! cargo run --example consume -- [--url AMQP_URL] [--exchange NAME] [--count N] [--quiet true]

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, ExchangeKind};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned();
    let mut exchange = "outbox".to_owned();
    let mut count: Option<usize> = None;
    let mut quiet = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--url" => url = value,
            "--exchange" => exchange = value,
            "--count" => count = Some(value.parse()?),
            "--quiet" => quiet = value.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }

    let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            queue.name().clone(),
            exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            "quickstart".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    eprintln!("consume: waiting for events on exchange `{exchange}`");

    let mut seen = 0;
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        seen += 1;
        if quiet {
            if count.is_some_and(|n| seen >= n) {
                break;
            }
            continue;
        }
        let p = &delivery.properties;
        let mut headers = Vec::new();
        if let Some(table) = p.headers() {
            for (k, v) in table.inner() {
                let v = match v {
                    AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                    other => format!("{other:?}"),
                };
                headers.push(format!("{k}={v}"));
            }
        }
        println!(
            "received {} message_id={} type={} headers[{}] body={}",
            delivery.routing_key,
            p.message_id().as_ref().map(|s| s.as_str()).unwrap_or("-"),
            p.kind().as_ref().map(|s| s.as_str()).unwrap_or("-"),
            headers.join(" "),
            String::from_utf8_lossy(&delivery.data)
        );
        if count.is_some_and(|n| seen >= n) {
            break;
        }
    }
    conn.close(0, "done".into()).await?;
    Ok(())
}
