//! The typed TLS and SASL keys of `[sink.kafka]` as librdkafka properties,
//! and what they come to together with the passthrough table: the
//! protocol, the TLS settings `check` and the diagnosis probe with, the
//! login `check` names, and the secrets no log line may show.

use std::path::PathBuf;

use crate::config::{KafkaConfig, SaslMechanism, SecurityProtocol};
use crate::tls::{ClientTls, Identity, Trust, Verification};

/// librdkafka's `security.protocol`.
pub const PROTOCOL: &str = "security.protocol";
/// `sasl.mechanisms` and its alias.
pub const MECHANISMS: [&str; 2] = ["sasl.mechanisms", "sasl.mechanism"];
/// librdkafka's SASL user, which `sink.kafka.sasl_username` sets.
pub const USERNAME: &str = "sasl.username";
/// librdkafka's SASL password, which `sink.kafka.sasl_password(_file)` sets.
pub const PASSWORD: &str = "sasl.password";
const CA_LOCATION: &str = "ssl.ca.location";
const CERT_LOCATION: &str = "ssl.certificate.location";
const KEY_LOCATION: &str = "ssl.key.location";
/// Host name verification: `https` checks the broker's certificate is for
/// the host connected to (librdkafka's default since 2.0; set anyway).
pub const HOST_NAME_CHECK: &str = "ssl.endpoint.identification.algorithm";
const CERTIFICATE_CHECK: &str = "enable.ssl.certificate.verification";

/// One typed key and the librdkafka properties it sets (or that would set
/// the same thing another way), so the passthrough table cannot repeat it.
pub struct Typed {
    /// The key under `sink.kafka`, for errors.
    pub key: &'static str,
    /// The passthrough properties that would set the same thing.
    pub properties: &'static [&'static str],
    set: fn(&KafkaConfig) -> bool,
}

impl Typed {
    /// Whether the key has a value in `config` (unset keys may be passed through).
    pub fn is_set(&self, config: &KafkaConfig) -> bool {
        (self.set)(config)
    }
}

/// Every typed security key.
pub const TYPED: &[Typed] = &[
    Typed {
        key: "security_protocol",
        properties: &[PROTOCOL],
        set: |c| c.security_protocol.is_some(),
    },
    Typed {
        key: "sasl_mechanism",
        properties: &MECHANISMS,
        set: |c| c.sasl_mechanism.is_some(),
    },
    Typed {
        key: "sasl_username",
        properties: &[USERNAME],
        set: |c| !c.sasl_username.is_empty(),
    },
    Typed {
        key: "sasl_password",
        properties: &[PASSWORD],
        set: |c| !c.sasl_password.is_empty(),
    },
    Typed {
        key: "sasl_password_file",
        properties: &[PASSWORD],
        set: |c| !c.sasl_password_file.is_empty(),
    },
    Typed {
        key: "ca_file",
        properties: &[CA_LOCATION, "ssl.ca.pem"],
        set: |c| !c.ca_file.is_empty(),
    },
    Typed {
        key: "cert_file",
        properties: &[
            CERT_LOCATION,
            "ssl.certificate.pem",
            "ssl.keystore.location",
        ],
        set: |c| !c.cert_file.is_empty(),
    },
    Typed {
        key: "key_file",
        properties: &[KEY_LOCATION, "ssl.key.pem", "ssl.keystore.location"],
        set: |c| !c.key_file.is_empty(),
    },
];

/// The librdkafka properties of the typed keys, the SASL password read
/// now; the error names the key whose file cannot be read.
pub fn properties(config: &KafkaConfig) -> Result<Vec<(&'static str, String)>, String> {
    let mut out = Vec::new();
    if let Some(protocol) = config.security_protocol {
        out.push((PROTOCOL, protocol.name().to_owned()));
    }
    if let Some(mechanism) = config.sasl_mechanism {
        out.push((MECHANISMS[0], mechanism.name().to_owned()));
    }
    for (property, value) in [
        (USERNAME, &config.sasl_username),
        (CA_LOCATION, &config.ca_file),
        (CERT_LOCATION, &config.cert_file),
        (KEY_LOCATION, &config.key_file),
    ] {
        if !value.is_empty() {
            out.push((property, value.clone()));
        }
    }
    if let Some(password) = config.sasl_password()? {
        out.push((PASSWORD, password));
    }
    Ok(out)
}

/// The protocol in effect: the typed key, else the passthrough table's
/// (validated), else plaintext.
pub fn protocol(config: &KafkaConfig) -> SecurityProtocol {
    config
        .security_protocol
        .or_else(|| SecurityProtocol::parse(config.librdkafka.get(PROTOCOL)?))
        .unwrap_or(SecurityProtocol::Plaintext)
}

/// A typed key's value, else the passthrough table's `property`.
fn setting<'a>(config: &'a KafkaConfig, typed: &'a str, property: &str) -> Option<&'a str> {
    if !typed.is_empty() {
        return Some(typed);
    }
    config
        .librdkafka
        .get(property)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// The TLS librdkafka is configured for, as a rustls client would do it:
/// the same CAs, client certificate and checks. `None` without TLS.
pub fn client_tls(config: &KafkaConfig) -> Option<ClientTls> {
    if !protocol(config).tls() {
        return None;
    }
    let off = |property: &str, value: &str| {
        config
            .librdkafka
            .get(property)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(value))
    };
    let verification = if off(CERTIFICATE_CHECK, "false") {
        Verification::EncryptOnly
    } else if off(HOST_NAME_CHECK, "none") {
        Verification::Chain
    } else {
        Verification::ChainAndHostName
    };
    let trust = match setting(config, &config.ca_file, CA_LOCATION) {
        _ if verification == Verification::EncryptOnly => None,
        None | Some("probe") => Some(Trust::System),
        Some(path) => Some(Trust::File(PathBuf::from(path))),
    };
    let identity = match (
        setting(config, &config.cert_file, CERT_LOCATION),
        setting(config, &config.key_file, KEY_LOCATION),
    ) {
        (Some(cert), Some(key)) => Some(Identity {
            cert: cert.into(),
            key: key.into(),
        }),
        _ => None,
    };
    Some(ClientTls {
        verification,
        trust,
        identity,
        sni: true,
    })
}

/// How the producer logs in, for `check`: `SCRAM-SHA-512 as user relay`,
/// `OAUTHBEARER`, or `none`.
pub fn auth_summary(config: &KafkaConfig) -> String {
    if !protocol(config).sasl() {
        return "none".into();
    }
    let mechanism = config
        .sasl_mechanism
        .map(SaslMechanism::name)
        .or_else(|| {
            MECHANISMS
                .iter()
                .find_map(|p| config.librdkafka.get(*p).map(String::as_str))
        })
        .unwrap_or("GSSAPI");
    match setting(config, &config.sasl_username, USERNAME) {
        Some(user) if mechanism != "OAUTHBEARER" => format!("{mechanism} as user {user}"),
        _ => mechanism.to_owned(),
    }
}

/// Whether a librdkafka property holds a secret: passwords, client
/// secrets and tokens, and a private key given inline.
pub fn is_secret_property(key: &str) -> bool {
    crate::config::is_secret(key) || matches!(key, "ssl.key.pem" | "sasl.oauthbearer.config")
}

/// Every secret value in `config` (the SASL password as read now, the
/// passthrough table's secrets): the text librdkafka's log lines are
/// scrubbed of.
pub fn secrets(config: &KafkaConfig) -> Vec<String> {
    let mut out: Vec<String> = config
        .librdkafka
        .iter()
        .filter(|(k, v)| is_secret_property(k) && !v.is_empty())
        .map(|(_, v)| v.clone())
        .collect();
    if let Ok(Some(password)) = config.sasl_password() {
        out.push(password);
    }
    out
}

/// `text` with every secret replaced by `***`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_owned(), |text, secret| {
            text.replace(secret.as_str(), "***")
        })
}

/// Host and port of the first bootstrap broker (`host:port`, `[v6]:port`,
/// optionally `PROTOCOL://` in front, librdkafka's default port 9092).
pub fn first_broker(config: &KafkaConfig) -> Option<(String, u16)> {
    let first = config.brokers.split(',').next()?.trim();
    let address = first.split_once("://").map_or(first, |(_, rest)| rest);
    if address.is_empty() {
        return None;
    }
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            (host, port.parse().ok()?)
        }
        _ => (address, 9092),
    };
    Some((host.trim_matches(['[', ']']).to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn sasl_ssl() -> KafkaConfig {
        KafkaConfig {
            security_protocol: Some(SecurityProtocol::SaslSsl),
            sasl_mechanism: Some(SaslMechanism::ScramSha512),
            sasl_username: "relay".into(),
            sasl_password: Secret::new("pw"),
            ca_file: "/etc/ca.pem".into(),
            ..KafkaConfig::default()
        }
    }

    #[test]
    fn typed_keys_become_librdkafka_properties() {
        let props = properties(&sasl_ssl()).expect("properties");
        let get = |k: &str| props.iter().find(|(p, _)| *p == k).map(|(_, v)| v.as_str());
        assert_eq!(get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(get("sasl.username"), Some("relay"));
        assert_eq!(get("sasl.password"), Some("pw"));
        assert_eq!(get("ssl.ca.location"), Some("/etc/ca.pem"));
        assert_eq!(get("ssl.certificate.location"), None);
        assert!(
            properties(&KafkaConfig::default())
                .expect("none")
                .is_empty()
        );
    }

    #[test]
    fn check_probes_with_the_same_tls_settings() {
        let config = sasl_ssl();
        let tls = client_tls(&config).expect("tls");
        assert_eq!(tls.verification, Verification::ChainAndHostName);
        assert_eq!(tls.trust, Some(Trust::File("/etc/ca.pem".into())));
        assert_eq!(auth_summary(&config), "SCRAM-SHA-512 as user relay");

        let mut plain = KafkaConfig::default();
        assert!(client_tls(&plain).is_none());
        assert_eq!(auth_summary(&plain), "none");
        plain.librdkafka.insert(PROTOCOL.into(), "SSL".into());
        plain
            .librdkafka
            .insert(HOST_NAME_CHECK.into(), "none".into());
        let tls = client_tls(&plain).expect("passthrough tls");
        assert_eq!(tls.verification, Verification::Chain);
        assert_eq!(tls.trust, Some(Trust::System));
    }

    #[test]
    fn secrets_are_scrubbed() {
        let mut config = sasl_ssl();
        config.sasl_password = Secret::new("s3cr3t");
        config
            .librdkafka
            .insert("ssl.key.password".into(), "k3y".into());
        let secrets = secrets(&config);
        assert_eq!(
            scrub("auth s3cr3t with k3y failed", &secrets),
            "auth *** with *** failed"
        );
    }

    #[test]
    fn the_first_broker_is_probed() {
        let with = |brokers: &str| {
            first_broker(&KafkaConfig {
                brokers: brokers.into(),
                ..KafkaConfig::default()
            })
        };
        assert_eq!(with("b1:9093,b2:9093"), Some(("b1".into(), 9093)));
        assert_eq!(with("SASL_SSL://b1:9094"), Some(("b1".into(), 9094)));
        assert_eq!(with("[::1]:9092"), Some(("::1".into(), 9092)));
        assert_eq!(with("broker"), Some(("broker".into(), 9092)));
        assert_eq!(with(""), None);
    }
}
