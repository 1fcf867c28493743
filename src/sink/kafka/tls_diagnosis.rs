//! A TLS handshake of the relay's own with the first bootstrap broker, made
//! with the CAs, client certificate and checks librdkafka was given: its
//! facts are `check`'s `kafka tls` line, and its refusal names the reason
//! (unknown issuer, wrong host name, expired) when librdkafka's own
//! handshake failed, which librdkafka reports only as a transport failure.

use std::time::Duration;

use super::security;
use crate::config::KafkaConfig;
use crate::tls::probe;

/// How long the probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// `HOST:PORT: TLSv1.3; certificate CN=..., expires ... (in N days);
/// verified: ...` when the handshake succeeds, else `HOST:PORT: reason`;
/// `None` when the producer does not use TLS.
pub async fn probe(config: &KafkaConfig) -> Option<Result<String, String>> {
    let tls = security::client_tls(config)?;
    let Some((host, port)) = security::first_broker(config) else {
        return Some(Err("sink.kafka.brokers names no broker".into()));
    };
    let at = format!("{host}:{port}");
    let rustls = match tls.client_config() {
        Ok(rustls) => rustls,
        Err(e) => return Some(Err(format!("{at}: {e}"))),
    };
    Some(
        match probe::direct(&host, port, rustls, PROBE_TIMEOUT).await {
            Ok(report) => {
                let mut line = format!(
                    "{at}: {}; verified: {}",
                    report.summary(),
                    tls.verification_summary()
                );
                if let Some(identity) = &tls.identity {
                    line.push_str(&format!("; client certificate {}", identity.cert.display()));
                }
                Ok(line)
            }
            Err(reason) => Err(format!("{at}: {reason}")),
        },
    )
}

/// Why a TLS connection to the brokers fails, if the probe finds a reason.
pub async fn diagnose(config: &KafkaConfig) -> Option<String> {
    probe(config).await?.err()
}
