//! Connection URLs that may carry a password and so must never be logged.

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

/// Masks the password of a URL (`scheme://user:pw@host`) or of a libpq
/// key=value string (`password=pw`). Text that is neither is masked whole if it
/// mentions a password at all, to fail safe.
pub fn redact(text: &str) -> String {
    if text.contains("://") {
        if let Ok(mut url) = url::Url::parse(text) {
            if url.password().is_some() {
                // Only fails for URLs that cannot have a password.
                let _ = url.set_password(Some("***"));
            }
            return url.to_string();
        }
        return "<unparseable url>".into();
    }
    let mut out = Vec::new();
    let mut words = text.split_whitespace();
    while let Some(word) = words.next() {
        match word.split_once('=') {
            Some((key, value)) if key.trim() == "password" => {
                // A quoted password may contain spaces: skip to its closing quote.
                if value.starts_with('\'') && !(value.len() > 1 && value.ends_with('\'')) {
                    for rest in words.by_ref() {
                        if rest.ends_with('\'') {
                            break;
                        }
                    }
                }
                out.push("password=***".to_string());
            }
            _ => out.push(word.to_string()),
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::redact;

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
    }
}
