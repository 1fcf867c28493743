//! Connection URLs that may carry a password, and passwords given on their
//! own, which must never be logged.

use std::fmt;

use serde::Deserialize;

/// A connection URL or libpq key=value string. `Debug` and `Display` show it
/// with any password replaced by `***`; [`SecretUrl::expose`] gives the real
/// text to the one place that connects.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        SecretUrl(url.into())
    }

    /// The URL with its password, for connecting only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password masked, safe for logs and output.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A password written in the configuration itself (`sink.kafka.sasl_password`).
/// `Debug` and `Display` show `***` (or nothing when it is empty), so the
/// configuration can be printed whole; [`Secret::expose`] gives the real
/// text to the one place that authenticates.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password read from somewhere other than the config file.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The password, for authenticating only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Unset: an empty password means none was configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { MASK })
    }
}

/// The secret in the file at `path` (a mounted Kubernetes or Docker
/// secret), without its trailing line break. The error names `key` and the
/// file, never its contents.
pub fn read_secret_file(key: &str, path: &str) -> Result<String, String> {
    read_secret(path).map_err(|problem| format!("config key `{key}`: {problem}"))
}

/// [`read_secret_file`] whose error is only the problem, for a
/// [`super::ConfigError`] that names the key itself.
pub(crate) fn read_secret(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(format!("{path} is empty"));
    }
    Ok(secret.to_owned())
}

/// Masks every secret in a connection string: the password of a URL's
/// user info (`scheme://user:pw@host`), URL query parameters that carry a
/// secret (`?password=pw`, `&sslpassword=pw`), and the same keys of a libpq
/// key=value string (`password=pw`, `password = 'p w'`). Works for any
/// scheme (postgres, amqp, kafka). Text that is neither is masked whole if
/// it mentions a password at all, to fail safe.
pub fn redact(text: &str) -> String {
    if text.contains("://") {
        return match url::Url::parse(text) {
            Ok(url) => redact_url(url),
            // `postgres://u:pw@a:5432,b:5433/db` is no URL to the url crate.
            Err(_) => redact_multi_host(text).unwrap_or_else(|| "<unparseable url>".into()),
        };
    }
    match redact_key_values(text) {
        Some(masked) => masked,
        None if text.to_ascii_lowercase().contains("password") => {
            "<unparseable; has a password>".into()
        }
        None => text.to_owned(),
    }
}

/// Whether a connection parameter named `key` holds a secret: libpq's
/// `password` and `sslpassword`, and anything else named like one.
pub(crate) fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "passwd", "pwd", "secret", "token"]
        .iter()
        .any(|word| key.contains(word))
}

const MASK: &str = "***";

fn redact_url(mut url: url::Url) -> String {
    if url.password().is_some() {
        // Only fails for URLs that cannot have a password.
        let _ = url.set_password(Some(MASK));
    }
    if let Some(query) = url.query() {
        let masked: Vec<String> = query
            .split('&')
            .map(|pair| {
                let key = pair.split_once('=').map_or(pair, |(key, _)| key);
                let decoded = url::form_urlencoded::parse(key.as_bytes())
                    .next()
                    .map(|(k, _)| k.into_owned())
                    .unwrap_or_default();
                if is_secret(&decoded) {
                    format!("{key}={MASK}")
                } else {
                    pair.to_owned()
                }
            })
            .collect();
        url.set_query(Some(&masked.join("&")));
    }
    url.to_string()
}

/// A libpq multi-host URL (`scheme://user:pw@a:1,b:2/db?query`) with the
/// password and secret query values masked: the same URL with one host
/// stands in for the host list while the url crate masks it.
fn redact_multi_host(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((user, hosts)) => (Some(user), hosts),
        None => (None, authority),
    };
    if !hosts.contains(',') {
        return None;
    }
    let stand_in = match userinfo {
        Some(user) => format!("{scheme}://{user}@host{tail}"),
        None => format!("{scheme}://host{tail}"),
    };
    let masked = redact_url(url::Url::parse(&stand_in).ok()?);
    let after_scheme = masked.strip_prefix(&format!("{scheme}://"))?;
    let (user_part, after_host) = match after_scheme.split_once("@host") {
        Some((user, after)) => (format!("{user}@"), after),
        None => (String::new(), after_scheme.strip_prefix("host")?),
    };
    Some(format!("{scheme}://{user_part}{hosts}{after_host}"))
}

/// A libpq key=value string with secret values masked; `None` if it does
/// not parse (an unterminated quote, a key without `=`).
fn redact_key_values(text: &str) -> Option<String> {
    let pairs = crate::postgres::key_values(text)?;
    let masked: Vec<String> = pairs
        .iter()
        .map(|pair| {
            let value = if is_secret(&pair.key) {
                MASK
            } else {
                &pair.raw
            };
            format!("{}={value}", pair.key)
        })
        .collect();
    Some(masked.join(" "))
}

#[cfg(test)]
mod tests {
    use super::{Secret, redact};

    #[test]
    fn a_secret_never_prints() {
        let secret = Secret::new("pw");
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
        assert_eq!(secret.expose(), "pw");
        assert_eq!(format!("{:?}", Secret::default()), "\"\"");
    }

    #[test]
    fn masks_url_password() {
        assert_eq!(
            redact("amqp://guest:s3cret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact("postgres://app:pw@db/outbox?sslmode=require"),
            "postgres://app:***@db/outbox?sslmode=require"
        );
        assert_eq!(
            redact("postgres://app@db/outbox"),
            "postgres://app@db/outbox"
        );
    }

    #[test]
    fn masks_key_value_password() {
        assert_eq!(
            redact("host=db user=app password=pw dbname=x"),
            "host=db user=app password=*** dbname=x"
        );
        assert_eq!(
            redact("host=db password='a b c' dbname=x"),
            "host=db password=*** dbname=x"
        );
        assert_eq!(
            redact("host=db password = pw dbname=x"),
            "host=db password=*** dbname=x"
        );
        assert_eq!(
            redact(r"password='it\'s a secret' host=db sslpassword=k"),
            "password=*** host=db sslpassword=***"
        );
    }

    #[test]
    fn masks_query_parameter_passwords() {
        assert_eq!(
            redact("postgres://app@db/outbox?password=pw&sslmode=require"),
            "postgres://app@db/outbox?password=***&sslmode=require"
        );
        assert_eq!(
            redact("postgresql:///outbox?host=/run/pg&sslpassword=k&PassWord=pw"),
            "postgresql:///outbox?host=/run/pg&sslpassword=***&PassWord=***"
        );
        assert_eq!(
            redact("postgres://db/outbox?pass%77ord=pw"),
            "postgres://db/outbox?pass%77ord=***"
        );
        assert_eq!(
            redact("postgres://app:pw@db/outbox?password=other"),
            "postgres://app:***@db/outbox?password=***"
        );
    }

    #[test]
    fn masks_amqp_and_kafka_urls() {
        assert_eq!(
            redact("amqps://relay:pw@mq/%2f?password=pw&heartbeat=10"),
            "amqps://relay:***@mq/%2f?password=***&heartbeat=10"
        );
        assert_eq!(
            redact("kafka://relay:pw@broker:9092?sasl.password=pw"),
            "kafka://relay:***@broker:9092?sasl.password=***"
        );
        assert_eq!(redact("127.0.0.1:9092,b2:9092"), "127.0.0.1:9092,b2:9092");
    }

    #[test]
    fn fails_safe_on_text_it_cannot_read() {
        assert_eq!(redact("postgres://[bad"), "<unparseable url>");
        assert_eq!(
            redact(
                "postgres://app:s3cret@a:5432,b:5433/db?target_session_attrs=primary&password=x"
            ),
            "postgres://app:***@a:5432,b:5433/db?target_session_attrs=primary&password=***"
        );
        assert_eq!(
            redact("postgresql://a,b/db?password=x"),
            "postgresql://a,b/db?password=***"
        );
        assert_eq!(
            redact("host=db password='unterminated"),
            "<unparseable; has a password>"
        );
    }
}
