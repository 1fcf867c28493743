//! The Kafka sink's TLS and SASL keys: their values, their checks (no
//! network; files only opened), and a `Debug` of the Kafka settings that
//! shows no secret.

use std::fmt;

use serde::Deserialize;

use super::{ConfigError, KafkaConfig};
use crate::sink::kafka::security;

/// How the producer talks to the brokers (librdkafka's `security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    /// Neither TLS nor SASL: librdkafka's default.
    Plaintext,
    /// TLS, no SASL.
    Ssl,
    /// SASL without TLS: the password (PLAIN) crosses the network readable.
    SaslPlaintext,
    /// SASL inside TLS: what hosted Kafka (Confluent Cloud, MSK) asks for.
    SaslSsl,
}

impl SecurityProtocol {
    /// The value librdkafka takes.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    /// librdkafka's spelling, any case (the passthrough table's value).
    pub fn parse(text: &str) -> Option<Self> {
        [
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(text.trim()))
    }

    /// Whether the brokers' certificates are checked (and `check` probes).
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether the producer logs in, so a mechanism is needed.
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// The SASL mechanisms this build of librdkafka has (no GSSAPI: it would
/// need libsasl2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    /// User and password sent as they are (so only inside TLS).
    #[serde(rename = "PLAIN")]
    Plain,
    /// A salted challenge: the password never crosses the network.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// The same with SHA-512 (Amazon MSK's).
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    /// Configured further in the passthrough table (`sasl.oauthbearer.*`).
    #[serde(rename = "OAUTHBEARER")]
    OauthBearer,
}

impl SaslMechanism {
    /// The value librdkafka takes.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OauthBearer => "OAUTHBEARER",
        }
    }

    /// PLAIN and SCRAM log in with a user name and password.
    pub fn needs_password(self) -> bool {
        !matches!(self, SaslMechanism::OauthBearer)
    }
}

const PREFIX: &str = "sink.kafka";

fn key(name: &str) -> String {
    format!("{PREFIX}.{name}")
}

fn passthrough_key(property: &str) -> String {
    format!("{PREFIX}.librdkafka.\"{property}\"")
}

/// The TLS and SASL keys: no typed key repeated in the passthrough table,
/// SASL settings that can log in, TLS files that exist and can be read.
pub(super) fn validate_security(kafka: &KafkaConfig) -> Result<(), ConfigError> {
    for typed in security::TYPED {
        if !typed.is_set(kafka) {
            continue;
        }
        if let Some(property) = typed
            .properties
            .iter()
            .find(|p| kafka.librdkafka.contains_key(**p))
        {
            return Err(ConfigError::invalid(
                key(typed.key),
                format!(
                    "is also set as `{}`; set it in one place only",
                    passthrough_key(property)
                ),
            ));
        }
    }

    let protocol = match kafka.security_protocol {
        Some(protocol) => protocol,
        None => match kafka.librdkafka.get(security::PROTOCOL) {
            None => SecurityProtocol::Plaintext,
            Some(text) => SecurityProtocol::parse(text).ok_or_else(|| {
                ConfigError::invalid(
                    passthrough_key(security::PROTOCOL),
                    format!("`{text}` is not one of plaintext, ssl, sasl_plaintext, sasl_ssl"),
                )
            })?,
        },
    };
    check_sasl(kafka, protocol)?;
    check_tls_files(kafka, protocol)
}

fn check_sasl(kafka: &KafkaConfig, protocol: SecurityProtocol) -> Result<(), ConfigError> {
    let has = |property: &str| kafka.librdkafka.contains_key(property);
    let mechanism_set =
        kafka.sasl_mechanism.is_some() || security::MECHANISMS.iter().any(|p| has(p));
    let credentials = [
        ("sasl_username", !kafka.sasl_username.is_empty()),
        ("sasl_password", !kafka.sasl_password.is_empty()),
        ("sasl_password_file", !kafka.sasl_password_file.is_empty()),
    ];
    if let Some((name, _)) = credentials.iter().find(|(_, set)| *set)
        && !mechanism_set
    {
        return Err(ConfigError::invalid(
            key("sasl_mechanism"),
            format!(
                "must be set (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER) when `{}` is",
                key(name)
            ),
        ));
    }
    if protocol.sasl() && !mechanism_set {
        return Err(ConfigError::invalid(
            key("sasl_mechanism"),
            format!(
                "must be set with security_protocol = \"{}\" (PLAIN, SCRAM-SHA-256, \
                 SCRAM-SHA-512 or OAUTHBEARER; GSSAPI is not built in)",
                protocol.name()
            ),
        ));
    }
    if mechanism_set && !protocol.sasl() {
        return Err(ConfigError::invalid(
            key("security_protocol"),
            format!(
                "is \"{}\", which does not use SASL: set sasl_plaintext or sasl_ssl \
                 to log in with sink.kafka.sasl_mechanism",
                protocol.name()
            ),
        ));
    }
    if !kafka.sasl_password.is_empty() && !kafka.sasl_password_file.is_empty() {
        return Err(ConfigError::invalid(
            key("sasl_password"),
            format!("and `{}` are both set; keep one", key("sasl_password_file")),
        ));
    }
    if let Some(mechanism) = kafka.sasl_mechanism
        && mechanism.needs_password()
    {
        if kafka.sasl_username.is_empty() && !has(security::USERNAME) {
            return Err(ConfigError::invalid(
                key("sasl_username"),
                format!("is needed to log in with {}", mechanism.name()),
            ));
        }
        if kafka.sasl_password.is_empty()
            && kafka.sasl_password_file.is_empty()
            && !has(security::PASSWORD)
        {
            return Err(ConfigError::invalid(
                key("sasl_password_file"),
                format!(
                    "(or sink.kafka.sasl_password) is needed to log in with {}",
                    mechanism.name()
                ),
            ));
        }
    }
    if !kafka.sasl_password_file.is_empty() {
        super::secret::read_secret(&kafka.sasl_password_file)
            .map_err(|problem| ConfigError::invalid(key("sasl_password_file"), problem))?;
    }
    Ok(())
}

fn check_tls_files(kafka: &KafkaConfig, protocol: SecurityProtocol) -> Result<(), ConfigError> {
    match (kafka.cert_file.is_empty(), kafka.key_file.is_empty()) {
        (false, true) => {
            return Err(ConfigError::invalid(
                key("key_file"),
                "must be set with sink.kafka.cert_file (the client certificate's private key)",
            ));
        }
        (true, false) => {
            return Err(ConfigError::invalid(
                key("cert_file"),
                "must be set with sink.kafka.key_file (the client certificate)",
            ));
        }
        _ => {}
    }
    for (name, path) in [
        ("ca_file", &kafka.ca_file),
        ("cert_file", &kafka.cert_file),
        ("key_file", &kafka.key_file),
    ] {
        if path.is_empty() {
            continue;
        }
        if !protocol.tls() {
            return Err(ConfigError::invalid(
                key(name),
                format!(
                    "is set, but security_protocol is \"{}\", which does not use TLS \
                     (ssl or sasl_ssl do)",
                    protocol.name()
                ),
            ));
        }
        readable(path).map_err(|problem| ConfigError::invalid(key(name), problem))?;
    }
    Ok(())
}

/// Opens and reads `path`: the error says why it cannot be, never what is in it.
fn readable(path: &str) -> Result<(), String> {
    if std::path::Path::new(path).is_dir() {
        return Err(format!("{path} is a directory, not a PEM file"));
    }
    match std::fs::read(path) {
        Ok(bytes) if bytes.is_empty() => Err(format!("{path} is empty")),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("cannot read {path}: {e}")),
    }
}

impl KafkaConfig {
    /// The SASL password: `sasl_password_file`'s contents, read now (a
    /// rotated secret is picked up by the next producer), else
    /// `sasl_password`; `None` when neither is set.
    pub fn sasl_password(&self) -> Result<Option<String>, String> {
        if !self.sasl_password_file.is_empty() {
            return super::read_secret_file(&key("sasl_password_file"), &self.sasl_password_file)
                .map(Some);
        }
        Ok((!self.sasl_password.is_empty()).then(|| self.sasl_password.expose().to_owned()))
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let passthrough: std::collections::BTreeMap<&str, &str> = self
            .librdkafka
            .iter()
            .map(|(k, v)| {
                let shown = if security::is_secret_property(k) {
                    "***"
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &super::redact(&self.brokers))
            .field("topic", &self.topic)
            .field("key", &self.key)
            .field("compression", &self.compression)
            .field("message_timeout", &self.message_timeout)
            .field("linger", &self.linger)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password", &self.sasl_password)
            .field("sasl_password_file", &self.sasl_password_file)
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("librdkafka", &passthrough)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka() -> KafkaConfig {
        KafkaConfig::default()
    }

    fn problem(config: &KafkaConfig) -> String {
        validate_security(config).expect_err("refused").to_string()
    }

    #[test]
    fn a_typed_key_repeated_in_the_passthrough_table_names_both() {
        let mut config = kafka();
        config.security_protocol = Some(SecurityProtocol::SaslSsl);
        config.sasl_mechanism = Some(SaslMechanism::ScramSha512);
        config.sasl_username = "relay".into();
        config.sasl_password = super::super::Secret::new("pw");
        config
            .librdkafka
            .insert("sasl.mechanism".into(), "PLAIN".into());
        let text = problem(&config);
        assert!(text.contains("`sink.kafka.sasl_mechanism`"), "{text}");
        assert!(
            text.contains("`sink.kafka.librdkafka.\"sasl.mechanism\"`"),
            "{text}"
        );
        assert!(!text.contains("pw"), "{text}");
    }

    #[test]
    fn sasl_needs_a_mechanism_a_user_and_a_password() {
        let mut config = kafka();
        config.security_protocol = Some(SecurityProtocol::SaslPlaintext);
        assert!(problem(&config).contains("`sink.kafka.sasl_mechanism`"));
        config.sasl_mechanism = Some(SaslMechanism::ScramSha256);
        assert!(problem(&config).contains("`sink.kafka.sasl_username`"));
        config.sasl_username = "relay".into();
        assert!(problem(&config).contains("`sink.kafka.sasl_password_file`"));
        config.sasl_password = super::super::Secret::new("pw");
        validate_security(&config).expect("complete");
        config.security_protocol = Some(SecurityProtocol::Ssl);
        assert!(problem(&config).contains("`sink.kafka.security_protocol`"));
        // OAUTHBEARER takes its settings from the passthrough table.
        let mut config = kafka();
        config.security_protocol = Some(SecurityProtocol::SaslSsl);
        config.sasl_mechanism = Some(SaslMechanism::OauthBearer);
        validate_security(&config).expect("oauthbearer");
    }

    #[test]
    fn certificate_and_key_come_together_and_must_be_readable() {
        let mut config = kafka();
        config.security_protocol = Some(SecurityProtocol::Ssl);
        config.cert_file = "/nonexistent/client.pem".into();
        assert!(problem(&config).contains("`sink.kafka.key_file`"));
        config.key_file = "/nonexistent/client.key".into();
        let text = problem(&config);
        assert!(text.contains("`sink.kafka.cert_file`"), "{text}");
        assert!(
            text.contains("cannot read /nonexistent/client.pem"),
            "{text}"
        );
        let mut config = kafka();
        config.ca_file = "/etc/hostname".into();
        assert!(problem(&config).contains("does not use TLS"));
    }

    #[test]
    fn the_passthrough_protocol_counts_when_the_typed_one_is_unset() {
        let mut config = kafka();
        config
            .librdkafka
            .insert("security.protocol".into(), "SASL_SSL".into());
        assert!(problem(&config).contains("`sink.kafka.sasl_mechanism`"));
        config
            .librdkafka
            .insert("security.protocol".into(), "tls".into());
        assert!(problem(&config).contains("librdkafka.\"security.protocol\""));
    }

    #[test]
    fn debug_shows_no_secret() {
        let mut config = kafka();
        config.sasl_password = super::super::Secret::new("hunter2");
        config
            .librdkafka
            .insert("sasl.oauthbearer.client.secret".into(), "hunter3".into());
        config
            .librdkafka
            .insert("ssl.key.pem".into(), "-----BEGIN PRIVATE KEY-----".into());
        let text = format!("{config:?}");
        assert!(!text.contains("hunter"), "{text}");
        assert!(!text.contains("BEGIN"), "{text}");
    }
}
