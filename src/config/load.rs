//! Reading the layered configuration, and the error that names the bad key.

use std::fmt;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};

use super::Config;

/// Environment variables that configure the relay start with this.
pub const ENV_PREFIX: &str = "OUTBOX_RELAY_";

/// A configuration problem, phrased for the operator who has to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file given with `--config` or `OUTBOX_RELAY_CONFIG` does not exist.
    #[error("config file {0}: not found")]
    FileNotFound(String),
    /// One or more keys could not be read (unknown key, wrong type, bad syntax).
    #[error("{}", KeyErrors(.0))]
    Parse(Vec<KeyError>),
    /// A key was read but its value is not acceptable.
    #[error("config key `{key}`: {problem}")]
    Invalid { key: String, problem: String },
}

impl ConfigError {
    pub(super) fn invalid(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// One unreadable key: its dotted path, what is wrong, and where it came from.
#[derive(Debug)]
pub struct KeyError {
    pub key: String,
    pub problem: String,
    pub origin: Option<String>,
}

struct KeyErrors<'a>(&'a [KeyError]);

impl fmt::Display for KeyErrors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if e.key.is_empty() {
                write!(f, "config: {}", e.problem)?;
            } else {
                write!(f, "config key `{}`: {}", e.key, e.problem)?;
            }
            if let Some(origin) = &e.origin {
                write!(f, " ({origin})")?;
            }
        }
        Ok(())
    }
}

/// The secret keys that can also be read from a file named by an
/// environment variable, the `*_FILE` convention of Docker and Kubernetes
/// secrets: `OUTBOX_RELAY_POSTGRES__URL_FILE=/run/secrets/pg-url` sets
/// `postgres.url` to that file's contents. (Keys that are themselves
/// files, such as `postgres.password_file`, are set like any other key.
/// `OUTBOX_RELAY_SINK__KAFKA__SASL_PASSWORD_FILE` reads like the rule says,
/// into `sink.kafka.sasl_password`, once at startup; the key
/// `sink.kafka.sasl_password_file` in the file is read at each connection.)
pub const SECRET_FILE_KEYS: [&str; 3] = [
    "postgres.url",
    "sink.rabbitmq.url",
    "sink.kafka.sasl_password",
];

/// `OUTBOX_RELAY_POSTGRES__URL_FILE` for `postgres.url`.
pub fn file_var(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}_FILE",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

pub(super) fn extract(file: Option<&Path>) -> Result<Config, ConfigError> {
    let mut figment = Figment::new();
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError::FileNotFound(path.display().to_string()));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    let file_vars: Vec<String> = SECRET_FILE_KEYS.iter().map(|k| file_var(k)).collect();
    // The environment provider filters keys after splitting them on `__`:
    // `POSTGRES__URL_FILE` is seen as `postgres.url_file`.
    let mut ignored: Vec<String> = SECRET_FILE_KEYS
        .iter()
        .map(|k| format!("{k}_file"))
        .collect();
    ignored.push("config".into());
    let ignored: Vec<&str> = ignored.iter().map(String::as_str).collect();
    figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__").ignore(&ignored));
    for (key, var) in SECRET_FILE_KEYS.iter().zip(&file_vars) {
        if let Some(path) = std::env::var_os(var) {
            let path = path.to_string_lossy();
            let secret = super::read_secret_file(&format!("{key} (from {var})"), &path).map_err(
                |problem| ConfigError::Invalid {
                    key: (*key).to_owned(),
                    problem,
                },
            )?;
            figment = figment.merge(Serialized::default(key, secret));
        }
    }
    figment
        .extract::<Config>()
        .map_err(|e| ConfigError::Parse(e.into_iter().map(key_error).collect()))
}

fn key_error(e: figment::Error) -> KeyError {
    use figment::error::Kind;

    let path = e.path.clone();
    let problem = match &e.kind {
        Kind::UnknownField(_, expected) => {
            format!("unknown key; expected one of: {}", expected.join(", "))
        }
        Kind::UnknownVariant(found, expected) => {
            format!(
                "`{found}` is not allowed; expected one of: {}",
                expected.join(", ")
            )
        }
        other => other.to_string(),
    };
    let origin = e.metadata.as_ref().map(|md| match &md.source {
        Some(source) => format!("in {source}"),
        None if md.name.contains("environment") && !path.is_empty() => format!(
            "from environment variable {ENV_PREFIX}{}",
            path.join("__").to_uppercase()
        ),
        None => format!("from {}", md.name),
    });
    KeyError {
        key: path.join("."),
        problem,
        origin,
    }
}
