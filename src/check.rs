//! `outbox-relay check`: validates the configuration, then connects to
//! Postgres and the broker and reports what it found, one line per fact.

use crate::config::{Config, SinkKind};
use crate::migrate::trigger_installed;
use crate::outbox::OutboxSchema;
use crate::postgres;
use crate::sink::{KafkaSink, RabbitMqSink, Sink};

/// Prints findings; returns the number of problems.
pub async fn run(config: &Config) -> usize {
    let mut problems = 0;
    let mut report = |ok: bool, what: &str, detail: String| {
        if !ok {
            problems += 1;
        }
        println!("{} {what}: {detail}", if ok { "ok  " } else { "FAIL" });
    };
    report(true, "config", "valid".into());

    match postgres::connect(&config.postgres, "check", None).await {
        Err(e) => report(false, "postgres", format!("{}: {e}", config.postgres.url)),
        Ok(client) => {
            let version = client
                .query_one("SHOW server_version", &[])
                .await
                .map(|r| r.get::<_, String>(0))
                .unwrap_or_else(|e| format!("unknown ({})", postgres::describe(&e)));
            report(
                true,
                "postgres",
                format!("connected to {} (server {version})", config.postgres.url),
            );
            match OutboxSchema::load(&client, &config.outbox).await {
                Err(e) => report(false, "outbox table", e.to_string()),
                Ok(schema) => {
                    let columns: Vec<String> = schema
                        .columns
                        .iter()
                        .map(|(n, t)| format!("{n} {t}"))
                        .collect();
                    report(
                        true,
                        "outbox table",
                        format!("{} ({})", schema.table, columns.join(", ")),
                    );
                    report(
                        true,
                        "payload",
                        format!("published as {}", schema.payload_kind.content_type()),
                    );
                    let channel = &config.source.polling.notify_channel;
                    if !channel.is_empty() {
                        let detail = if trigger_installed(&client, &schema.table).await {
                            format!("trigger installed; listening on `{channel}`")
                        } else {
                            format!(
                                "no outbox_relay_notify trigger: new rows wait up to poll_interval \
                                 (run `outbox-relay migrate` to install it); listening on `{channel}`"
                            )
                        };
                        report(true, "notify", detail);
                    }
                    if let Ok(table) = crate::dead_letters::table_name(config) {
                        let exists = crate::postgres::relation_exists(&client, &table.to_string())
                            .await
                            .unwrap_or(false);
                        report(
                            exists,
                            "dead letters",
                            if exists {
                                format!("{table}")
                            } else {
                                format!("{table} is missing (run `outbox-relay migrate`)")
                            },
                        );
                    }
                }
            }
        }
    }

    match config.sink.kind {
        SinkKind::Stdout => report(true, "sink", "stdout (nothing to connect to)".into()),
        SinkKind::Kafka => match KafkaSink::new(&config.sink.kafka) {
            Err(e) => report(false, "kafka", e.to_string()),
            Ok(mut sink) => match sink.connect().await {
                Ok(()) => report(
                    true,
                    "kafka",
                    format!(
                        "connected to {}",
                        crate::config::redact(&config.sink.kafka.brokers)
                    ),
                ),
                Err(e) => report(false, "kafka", e.to_string()),
            },
        },
        SinkKind::Rabbitmq => match RabbitMqSink::new(&config.sink.rabbitmq) {
            Err(e) => report(false, "rabbitmq", e.to_string()),
            Ok(mut sink) => match sink.probe().await {
                Ok(detail) => report(true, "rabbitmq", detail),
                Err(e) => report(false, "rabbitmq", e.to_string()),
            },
        },
    }
    problems
}
