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

/// `check_with`'s stderr, asserting the exit code of a config error.
fn config_error(toml: &str, env: &[(&str, &str)]) -> String {
    let out = check_with(toml, env);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "exit code; stderr: {stderr}");
    stderr
}

#[test]
fn a_kafka_key_set_typed_and_in_the_passthrough_table_names_both() {
    let stderr = config_error(
        "[sink]\nkind = \"kafka\"\n[sink.kafka]\nsecurity_protocol = \"ssl\"\n\
         [sink.kafka.librdkafka]\n\"security.protocol\" = \"sasl_ssl\"\n",
        &[],
    );
    assert!(
        stderr.contains("`sink.kafka.security_protocol`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`sink.kafka.librdkafka.\"security.protocol\"`"),
        "{stderr}"
    );
    let stderr = config_error(
        "[sink]\nkind = \"kafka\"\n[sink.kafka]\nsecurity_protocol = \"sasl_ssl\"\n\
         sasl_mechanism = \"PLAIN\"\nsasl_username = \"relay\"\nsasl_password = \"s3cr3t-pw\"\n\
         [sink.kafka.librdkafka]\n\"sasl.password\" = \"other-s3cr3t\"\n",
        &[],
    );
    assert!(stderr.contains("`sink.kafka.sasl_password`"), "{stderr}");
    assert!(
        stderr.contains("`sink.kafka.librdkafka.\"sasl.password\"`"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cr3t"), "password leaked: {stderr}");
}

#[test]
fn kafka_tls_and_sasl_files_must_exist() {
    let kafka = "[sink]\nkind = \"kafka\"\n[sink.kafka]\nsecurity_protocol = \"ssl\"\n";
    for (key, line) in [
        ("ca_file", "ca_file = \"/nonexistent/ca.pem\"\n"),
        (
            "cert_file",
            "cert_file = \"/nonexistent/c.pem\"\nkey_file = \"/nonexistent/c.key\"\n",
        ),
    ] {
        let stderr = config_error(&format!("{kafka}{line}"), &[]);
        assert!(stderr.contains(&format!("`sink.kafka.{key}`")), "{stderr}");
        assert!(stderr.contains("/nonexistent/"), "names the file: {stderr}");
    }
    assert_names(
        &check_with(&format!("{kafka}cert_file = \"/etc/hostname\"\n"), &[]),
        "sink.kafka.key_file",
    );
    let sasl = "[sink]\nkind = \"kafka\"\n[sink.kafka]\nsecurity_protocol = \"sasl_ssl\"\n\
                sasl_mechanism = \"SCRAM-SHA-512\"\nsasl_username = \"relay\"\n";
    let stderr = config_error(
        &format!("{sasl}sasl_password_file = \"/nonexistent/pw\"\n"),
        &[],
    );
    assert!(
        stderr.contains("`sink.kafka.sasl_password_file`"),
        "{stderr}"
    );
    let stderr = config_error(
        sasl,
        &[(
            "OUTBOX_RELAY_SINK__KAFKA__SASL_PASSWORD_FILE",
            "/nonexistent/pw",
        )],
    );
    assert!(stderr.contains("`sink.kafka.sasl_password`"), "{stderr}");
    assert!(
        stderr.contains("OUTBOX_RELAY_SINK__KAFKA__SASL_PASSWORD_FILE"),
        "{stderr}"
    );
    // SASL without a mechanism, or a mechanism on a protocol without SASL.
    assert_names(
        &check_with(
            "[sink]\nkind = \"kafka\"\n[sink.kafka]\nsecurity_protocol = \"sasl_ssl\"\n",
            &[],
        ),
        "sink.kafka.sasl_mechanism",
    );
    assert_names(
        &check_with(
            "[sink]\nkind = \"kafka\"\n[sink.kafka]\nsasl_mechanism = \"PLAIN\"\n\
             sasl_username = \"u\"\nsasl_password = \"p\"\n",
            &[],
        ),
        "sink.kafka.security_protocol",
    );
    assert_names(
        &check_with(
            "[sink]\nkind = \"kafka\"\n[sink.kafka]\nsecurity_protocol = \"tls\"\n",
            &[],
        ),
        "sink.kafka.security_protocol",
    );
}

#[test]
fn secret_file_variables_set_their_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url_file = dir.path().join("pg-url");
    std::fs::write(
        &url_file,
        "postgres://app:s3cr3t-pw@127.0.0.1:1/from_file\n",
    )
    .expect("url file");
    let out = check_with(
        "[postgres]\nconnect_timeout = \"2s\"\n[sink]\nkind = \"stdout\"\n",
        &[(
            "OUTBOX_RELAY_POSTGRES__URL_FILE",
            &url_file.display().to_string(),
        )],
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "read, then unreachable: {all}");
    assert!(all.contains("app:***@127.0.0.1:1/from_file"), "{all}");
    assert!(!all.contains("s3cr3t-pw"), "password leaked: {all}");
}
