//! A bad configuration is refused before anything connects, with exit code 2
//! and a message naming the key; passwords never reach the output.

mod support;

use std::process::{Command, Output};

use support::relay::BIN;

fn check_with(toml: &str, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, toml).expect("write config");
    let mut cmd = Command::new(BIN);
    cmd.arg("--config").arg(&path).arg("check");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running outbox-relay")
}

fn assert_names(out: &Output, key: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit code; stderr: {stderr}");
    assert!(
        stderr.contains(&format!("`{key}`")),
        "error should name `{key}`: {stderr}"
    );
}

#[test]
fn unknown_keys_are_named() {
    assert_names(&check_with("[outbox]\ncolums = {}\n", &[]), "outbox.colums");
    assert_names(
        &check_with("[sink.rabbitmq]\nexchnage = \"x\"\n", &[]),
        "sink.rabbitmq.exchnage",
    );
}

#[test]
fn wrong_types_and_values_are_named() {
    assert_names(
        &check_with("[source.polling]\nbatch_size = \"many\"\n", &[]),
        "source.polling.batch_size",
    );
    assert_names(
        &check_with("[source.polling]\nbatch_size = 0\n", &[]),
        "source.polling.batch_size",
    );
    assert_names(
        &check_with("[source.polling]\npoll_interval = \"soon\"\n", &[]),
        "source.polling.poll_interval",
    );
    assert_names(
        &check_with("[sink]\nkind = \"carrier-pigeon\"\n", &[]),
        "sink.kind",
    );
    assert_names(
        &check_with("[sink.rabbitmq]\nrouting_key = \"{aggregate}.x\"\n", &[]),
        "sink.rabbitmq.routing_key",
    );
    assert_names(
        &check_with("[outbox]\ntable = \"a.b.c\"\n", &[]),
        "outbox.table",
    );
    assert_names(
        &check_with("[outbox.columns]\nsent_at = \"\"\n", &[]),
        "outbox.columns.sent_at",
    );
}

#[test]
fn kafka_settings_are_checked() {
    assert_names(
        &check_with(
            "[sink]\nkind = \"kafka\"\n[sink.kafka]\ncompression = \"brotli\"\n",
            &[],
        ),
        "sink.kafka.compression",
    );
    assert_names(
        &check_with(
            "[sink]\nkind = \"kafka\"\n[sink.kafka.librdkafka]\n\"acks\" = \"1\"\n",
            &[],
        ),
        "sink.kafka.librdkafka.\"acks\"",
    );
    assert_names(
        &check_with(
            "[sink]\nkind = \"kafka\"\n[sink.kafka]\ntopic = \"{topic}\"\n",
            &[],
        ),
        "sink.kafka.topic",
    );
    // The record limit the message builder checks is librdkafka's own.
    assert_names(
        &check_with(
            "[sink]\nkind = \"kafka\"\n[sink.kafka.librdkafka]\n\"message.max.bytes\" = \"lots\"\n",
            &[],
        ),
        "sink.kafka.librdkafka.\"message.max.bytes\"",
    );
    // A missing topic must fail as unknown before the message times out.
    assert_names(
        &check_with(
            "[sink]\nkind = \"kafka\"\n[sink.kafka]\nmessage_timeout = \"30s\"\n\
             [sink.kafka.librdkafka]\n\"topic.metadata.propagation.max.ms\" = \"30000\"\n",
            &[],
        ),
        "sink.kafka.librdkafka.\"topic.metadata.propagation.max.ms\"",
    );
}

#[test]
fn rabbitmq_tls_and_login_settings_are_checked() {
    let rabbit = |keys: &str| check_with(&format!("[sink.rabbitmq]\n{keys}"), &[]);
    let amqps = "url = \"amqps://relay@mq.example.com/%2f\"\n";
    let this_file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    assert_names(
        &rabbit("url = \"http://mq.example.com/\"\n"),
        "sink.rabbitmq.url",
    );
    // TLS files with a plain-text URL would be ignored: refused instead.
    assert_names(
        &rabbit(&format!("ca_file = \"{this_file}\"\n")),
        "sink.rabbitmq.ca_file",
    );
    assert_names(
        &rabbit(&format!("{amqps}cert_file = \"{this_file}\"\n")),
        "sink.rabbitmq.cert_file",
    );
    assert_names(
        &rabbit(&format!("{amqps}auth_mechanism = \"external\"\n")),
        "sink.rabbitmq.auth_mechanism",
    );
    assert_names(
        &rabbit(&format!("{amqps}auth_mechanism = \"kerberos\"\n")),
        "sink.rabbitmq.auth_mechanism",
    );
}

#[test]
fn tracing_settings_are_checked() {
    assert_names(
        &check_with(
            "[tracing]\nenabled = true\nendpoint = \"https://collector:4318\"\n",
            &[],
        ),
        "tracing.endpoint",
    );
    assert_names(
        &check_with(
            "[tracing]\nenabled = true\nendpoint = \"collector 4318\"\n",
            &[],
        ),
        "tracing.endpoint",
    );
    assert_names(
        &check_with("[tracing]\nenabled = true\nsample_ratio = 1.5\n", &[]),
        "tracing.sample_ratio",
    );
    let out = check_with(
        "[tracing]\nenabled = true\n",
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{stderr}");
}

#[test]
fn environment_overrides_are_checked_too() {
    let out = check_with("", &[("OUTBOX_RELAY_SOURCE__POLLING__BATCH_SIZE", "abc")]);
    assert_names(&out, "source.polling.batch_size");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("OUTBOX_RELAY_SOURCE__POLLING__BATCH_SIZE"),
        "{stderr}"
    );
}

#[test]
fn missing_file_is_an_error() {
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/relay.toml", "check"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/relay.toml"));
}

#[test]
fn passwords_never_appear() {
    let toml = "[postgres]\nurl = \"postgres://app:s3cr3t-pw@127.0.0.1:1/db\"\nconnect_timeout = \"2s\"\n\
                [sink.rabbitmq]\nurl = \"amqp://app:s3cr3t-pw@127.0.0.1:1/%2f\"\nconfirm_timeout = \"2s\"\n";
    let out = check_with(toml, &[]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "unreachable services fail check: {all}"
    );
    assert!(!all.contains("s3cr3t-pw"), "password leaked: {all}");
    assert!(all.contains("app:***@"), "the redacted URL is shown: {all}");
}

#[test]
fn a_fixed_exchange_past_255_bytes_is_refused() {
    let toml = format!("[sink.rabbitmq]\nexchange = \"{}\"\n", "x".repeat(300));
    let out = check_with(&toml, &[]);
    assert_names(&out, "sink.rabbitmq.exchange");
    assert!(String::from_utf8_lossy(&out.stderr).contains("255"));
    // A template is checked per event instead.
    let toml = format!(
        "[sink.rabbitmq]\nexchange = \"{}{{aggregate_type}}\"\n",
        "x".repeat(200)
    );
    assert_ne!(check_with(&toml, &[]).status.code(), Some(2));
}
