//! `outbox-relay check`: validates the configuration, then connects to
//! Postgres and the broker and reports what it found, one line per fact.

use tokio_postgres::config::Host;

use crate::config::{Config, SinkKind};
use crate::migrate::trigger_installed;
use crate::outbox::OutboxSchema;
use crate::postgres;
use crate::sink::kafka::{security, tls_diagnosis};
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
    report(
        true,
        "rate limit",
        crate::rate_limit::describe(&config.sink),
    );

    match postgres::connect(&config.postgres, "check", None).await {
        Err(e) => report(false, "postgres", format!("{}: {e}", config.postgres.url)),
        Ok(client) => {
            let version = client
                .query_one(
                    "SELECT current_setting('server_version') || coalesce(', at ' || \
                     host(inet_server_addr()) || ':' || inet_server_port(), '') || \
                     CASE WHEN pg_is_in_recovery() THEN ', a standby' ELSE ', primary' END",
                    &[],
                )
                .await
                .map(|r| r.get::<_, String>(0))
                .unwrap_or_else(|e| format!("unknown ({})", postgres::describe(&e)));
            report(
                true,
                "postgres",
                format!("connected to {} (server {version})", config.postgres.url),
            );
            report_postgres_session(&config.postgres, &mut report).await;
            if config.source.mode == crate::config::SourceMode::Replication {
                for (ok, what, detail) in
                    crate::source::replication::slot_report::lines(config, &client).await
                {
                    report(ok, what, detail);
                }
            }
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
                    report(
                        true,
                        "retention",
                        crate::retention::check_line(config, &client).await,
                    );
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
            for (ok, what, detail) in crate::grants::check_lines(&client, config).await {
                report(ok, what, detail);
            }
        }
    }

    match config.sink.kind {
        SinkKind::Stdout => report(true, "sink", "stdout (nothing to connect to)".into()),
        SinkKind::Kafka => report_kafka(&config.sink.kafka, &mut report).await,
        SinkKind::Rabbitmq => {
            match RabbitMqSink::new(&config.sink.rabbitmq) {
                Err(e) => report(false, "rabbitmq", e.to_string()),
                Ok(mut sink) => match sink.probe().await {
                    Ok(detail) => report(true, "rabbitmq", detail),
                    Err(e) => report(false, "rabbitmq", e.to_string()),
                },
            }
            report_rabbitmq_session(&config.sink.rabbitmq, &mut report).await;
        }
    }
    problems
}

/// The `postgres tls` and `postgres auth` lines, from a login of its own
/// with the same settings (tokio-postgres does not say what it negotiated).
async fn report_postgres_session(
    config: &crate::config::PostgresConfig,
    report: &mut impl FnMut(bool, &str, String),
) {
    let ssl = match postgres::Conninfo::parse(config.url.expose()) {
        Ok(info) if matches!(info.pg.get_hosts().first(), Some(Host::Unix(_))) => {
            return report(true, "postgres tls", "off (unix socket)".into());
        }
        Ok(info) => info.ssl,
        Err(e) => return report(false, "postgres tls", e),
    };
    match crate::source::replication::connection::ReplicationConnection::probe(config).await {
        Ok(session) => {
            let tls = match &session.tls {
                Some(found) => format!("{}; {}", found.summary(), ssl.summary()),
                None => format!("off (plain text); sslmode={}", ssl.mode.name()),
            };
            report(true, "postgres tls", tls);
            report(true, "postgres auth", session.auth.to_owned());
        }
        Err(e) => report(false, "postgres tls", e.to_string()),
    }
}

/// The `rabbitmq tls` and `rabbitmq auth` lines.
async fn report_rabbitmq_session(
    config: &crate::config::RabbitMqConfig,
    report: &mut impl FnMut(bool, &str, String),
) {
    use crate::sink::rabbitmq::{login_summary, tls_report};
    match tls_report(config).await {
        Ok(Some((found, verified))) => report(
            true,
            "rabbitmq tls",
            format!("{}; verified: {verified}", found.summary()),
        ),
        Ok(None) => report(true, "rabbitmq tls", "off (amqp://, plain text)".into()),
        Err(e) => report(false, "rabbitmq tls", e),
    }
    report(true, "rabbitmq auth", login_summary(config));
}

/// The `kafka tls` line (a handshake of its own with the first bootstrap
/// broker, with librdkafka's CAs, client certificate and checks), the
/// `kafka auth` line, and the producer's own connection.
async fn report_kafka(
    config: &crate::config::KafkaConfig,
    report: &mut impl FnMut(bool, &str, String),
) {
    match tls_diagnosis::probe(config).await {
        Some(Ok(line)) => report(true, "kafka tls", line),
        Some(Err(reason)) => report(false, "kafka tls", reason),
        None => report(
            true,
            "kafka tls",
            format!(
                "off (security_protocol {})",
                security::protocol(config).name()
            ),
        ),
    }
    report(true, "kafka auth", security::auth_summary(config));
    match KafkaSink::new(config) {
        Err(e) => report(false, "kafka", e.to_string()),
        Ok(mut sink) => match sink.connect().await {
            Ok(()) => report(
                true,
                "kafka",
                format!("connected to {}", crate::config::redact(&config.brokers)),
            ),
            Err(e) => report(false, "kafka", e.to_string()),
        },
    }
}
