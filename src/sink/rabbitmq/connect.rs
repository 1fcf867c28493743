//! Opening the AMQP connection: the URL with the password of
//! `password_file` and the configured SASL mechanism, over plain TCP for
//! `amqp://` or, for `amqps://`, over a TLS session made with the relay's
//! own rustls configuration (the one `check` probes with): only the CA file
//! is trusted when one is set, the host name is always checked, and a
//! refused certificate is named in the error.

use std::net::SocketAddr;
use std::sync::Arc;

use lapin::tcp::{AsyncTcpStream, RustlsConnector};
use lapin::uri::{AMQPScheme, AMQPUri, SASLMechanism};
use lapin::{Connection, ConnectionProperties};

use crate::config::{AmqpAuth, RabbitMqConfig};

/// The URL the relay connects with: `url`, with the password of
/// `password_file` and the SASL mechanism of `auth_mechanism`.
pub fn uri(config: &RabbitMqConfig) -> Result<AMQPUri, String> {
    let mut uri: AMQPUri = config
        .url
        .expose()
        .parse()
        .map_err(|e| format!("{}: not a valid AMQP URL: {e}", config.url))?;
    if let Some(password) = config.password()? {
        uri.authority.userinfo.password = password;
    }
    if config.auth_mechanism == AmqpAuth::External {
        uri.query.auth_mechanism = Some(SASLMechanism::External);
    }
    Ok(uri)
}

/// Connects and logs in; the error is one line for the operator.
pub async fn open(config: &RabbitMqConfig) -> Result<Connection, String> {
    let uri = uri(config)?;
    let properties = ConnectionProperties::default().with_connection_name("outbox-relay".into());
    let connected = match uri.scheme {
        AMQPScheme::AMQP => Connection::connect_uri(uri, properties).await,
        AMQPScheme::AMQPS => {
            let tls = client_config(config)?;
            let connector = RustlsConnector::from(Arc::new(tls));
            let runtime = lapin::runtime::default_runtime().map_err(|e| e.to_string())?;
            Connection::connector(
                uri,
                runtime,
                move |uri: AMQPUri, runtime| {
                    let connector = connector.clone();
                    async move {
                        let host = uri.authority.host.clone();
                        let port = uri.authority.port;
                        let addresses: Vec<SocketAddr> =
                            tokio::net::lookup_host((host.as_str(), port))
                                .await?
                                .collect();
                        let tcp = AsyncTcpStream::connect(&runtime, addresses).await?;
                        tcp.into_rustls(&connector, &host)
                            .await
                            .map_err(|e| handshake_error(e, &host, port).into())
                    }
                },
                properties,
            )
            .await
        }
    };
    connected.map_err(|e| format!("{}: {e}", config.url))
}

/// The rustls configuration of `amqps://`; a file that cannot be used is
/// named with its key.
fn client_config(config: &RabbitMqConfig) -> Result<rustls::ClientConfig, String> {
    config.tls().client_config().map_err(|e| {
        let key = match &e {
            crate::tls::TlsError::File { path, .. } => [
                ("ca_file", &config.ca_file),
                ("cert_file", &config.cert_file),
                ("key_file", &config.key_file),
            ]
            .into_iter()
            .find(|(_, value)| *value == path)
            .map(|(key, _)| key),
            _ => None,
        };
        format!(
            "config key `sink.rabbitmq.{}`: {e}",
            key.unwrap_or("ca_file")
        )
    })
}

/// A refused certificate in words (unknown issuer, wrong host name,
/// expired), in place of rustls's error name.
fn handshake_error(error: std::io::Error, host: &str, port: u16) -> std::io::Error {
    match crate::tls::reason::of(&error) {
        Some(reason) => {
            std::io::Error::other(format!("TLS handshake with {host}:{port} failed: {reason}"))
        }
        None => error,
    }
}

/// For `check`'s `rabbitmq tls` line: a handshake of its own with the
/// relay's TLS settings; `None` for plain `amqp://`.
pub async fn tls_report(
    config: &RabbitMqConfig,
) -> Result<Option<(crate::tls::TlsReport, String)>, String> {
    let uri = uri(config)?;
    if uri.scheme == AMQPScheme::AMQP {
        return Ok(None);
    }
    let tls = config.tls();
    let client = client_config(config)?;
    let found = crate::tls::probe::direct(
        &uri.authority.host,
        uri.authority.port,
        client,
        config.confirm_timeout,
    )
    .await?;
    let mut verified = tls.verification_summary();
    if let Some(identity) = &tls.identity {
        verified.push_str(&format!("; client certificate {}", identity.cert.display()));
    }
    Ok(Some((found, verified)))
}

/// For `check`'s `rabbitmq auth` line: the mechanism and who logs in.
pub fn login_summary(config: &RabbitMqConfig) -> String {
    match (config.auth_mechanism, uri(config)) {
        (AmqpAuth::External, _) => format!(
            "EXTERNAL (the client certificate {} names the user)",
            config.cert_file
        ),
        (AmqpAuth::Plain, Ok(uri)) => {
            let password = if !config.password_file.is_empty() {
                format!("password from {}", config.password_file)
            } else if uri.authority.userinfo.password.is_empty() {
                "no password".to_owned()
            } else {
                "password from the URL".to_owned()
            };
            format!(
                "PLAIN as user `{}` ({password})",
                uri.authority.userinfo.username
            )
        }
        (AmqpAuth::Plain, Err(e)) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreadable_tls_file_is_named_with_its_key_before_connecting() {
        let config = RabbitMqConfig {
            url: crate::config::SecretUrl::new("amqps://relay@192.0.2.1:5671/%2f"),
            ca_file: "/nonexistent/ca.pem".into(),
            ..RabbitMqConfig::default()
        };
        let Err(error) = open(&config).await else {
            panic!("no CA file, no connection");
        };
        assert!(
            error.contains("`sink.rabbitmq.ca_file`") && error.contains("/nonexistent/ca.pem"),
            "{error}"
        );
    }
}
