//! A Postgres connection string split in two: what tokio-postgres reads,
//! and libpq's TLS parameters, which it only partly knows (it has no
//! `verify-ca`/`verify-full`, root or client certificates, or `sslsni`).
//! Both libpq forms are read: `postgres://...?sslmode=verify-full` and
//! `host=db sslmode=verify-full`. `target_session_attrs` is taken out too:
//! tokio-postgres knows only `any` and `read-write`, and the replication
//! session, which it does not open, must choose its server the same way.

use std::str::FromStr;

use super::ssl::Ssl;
use super::target::TargetSession;
use crate::config::PostgresConfig;

/// The keys taken out of the string: TLS, handled by [`Ssl`], and
/// `target_session_attrs`, handled by [`TargetSession`].
const OWN_KEYS: [&str; 7] = [
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslsni",
    "sslpassword",
    "target_session_attrs",
];

/// A parsed connection string.
#[derive(Debug, Clone)]
pub struct Conninfo {
    /// Everything but TLS, with tokio-postgres's `sslmode` set to what
    /// [`Ssl::mode`] needs of it (`disable`, `prefer` or `require`).
    /// Its `target_session_attrs` is [`TargetSession::for_tokio_postgres`].
    pub pg: tokio_postgres::Config,
    pub ssl: Ssl,
    /// Which server of a multi-host string a session settles on.
    pub target: TargetSession,
}

impl Conninfo {
    /// Parses `url` without reading any file.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (rest, params) = take_own_params(url)?;
        let ssl = Ssl::from_params(&params)?;
        let target = match params
            .iter()
            .rev()
            .find(|(k, v)| k == "target_session_attrs" && !v.is_empty())
        {
            Some((_, value)) => TargetSession::parse(value)?,
            None => TargetSession::Any,
        };
        let rest = with_param(&rest, "sslmode", ssl.mode.for_tokio_postgres());
        let rest = with_param(&rest, "target_session_attrs", target.for_tokio_postgres());
        let pg =
            tokio_postgres::Config::from_str(&rest).map_err(|e| super::describe(&e).to_string())?;
        super::target::candidates(&pg)?;
        Ok(Conninfo { pg, ssl, target })
    }

    /// Parses `config.url` and reads `config.password_file`, if set.
    pub fn load(config: &PostgresConfig) -> Result<Self, String> {
        let mut info = Self::parse(config.url.expose())?;
        if let Some(password) = config.password()? {
            info.pg.password(password);
        }
        Ok(info)
    }
}

/// One `key=value` of a key/value connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    /// The value as written, quotes and escapes included.
    pub raw: String,
    /// The value itself.
    pub value: String,
}

/// The pairs of a libpq key/value string; `None` if it does not parse (an
/// unterminated quote, a key without `=`).
pub fn key_values(text: &str) -> Option<Vec<KeyValue>> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return None;
        }
        rest = rest[eq + 1..].trim_start();
        let (raw, value, after) = if let Some(quoted) = rest.strip_prefix('\'') {
            let end = closing_quote(quoted)?;
            (
                &rest[..end + 2],
                unescape(&quoted[..end]),
                &quoted[end + 1..],
            )
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            (&rest[..end], unescape(&rest[..end]), &rest[end..])
        };
        out.push(KeyValue {
            key: key.to_owned(),
            raw: raw.to_owned(),
            value,
        });
        rest = after.trim_start();
    }
    Some(out)
}

/// The index in `quoted` (the text after an opening quote) of the closing
/// quote; a backslash escapes the character after it.
fn closing_quote(quoted: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in quoted.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '\'' => return Some(i),
            _ => {}
        }
    }
    None
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn is_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// The string without the [`OWN_KEYS`], and those keys' values (lowercase
/// keys, last one wins as in libpq).
fn take_own_params(text: &str) -> Result<(String, Vec<(String, String)>), String> {
    let mut taken = Vec::new();
    if is_url(text) {
        let Some((base, query)) = text.split_once('?') else {
            return Ok((text.to_owned(), taken));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = url::form_urlencoded::parse(pair.as_bytes())
                .next()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .unwrap_or_default();
            if OWN_KEYS.contains(&key.as_str()) {
                taken.push((key, value));
            } else {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, taken));
    }
    let pairs = key_values(text)
        .ok_or("not a valid connection string: unterminated quote or a key without `=`")?;
    let mut kept = Vec::new();
    for pair in pairs {
        if OWN_KEYS.contains(&pair.key.as_str()) {
            taken.push((pair.key, pair.value));
        } else {
            kept.push(format!("{}={}", pair.key, pair.raw));
        }
    }
    Ok((kept.join(" "), taken))
}

/// `text` with `key=value` added (the key is known not to be in it).
fn with_param(text: &str, key: &str, value: &str) -> String {
    if is_url(text) {
        let sep = if text.contains('?') { '&' } else { '?' };
        format!("{text}{sep}{key}={value}")
    } else if text.trim().is_empty() {
        format!("{key}={value}")
    } else {
        format!("{text} {key}={value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_tls_keys_out_of_both_forms() {
        let (rest, taken) = take_own_params(
            "postgres://u@db:5432/x?sslmode=verify-full&application_name=a&sslrootcert=%2Fca.pem",
        )
        .expect("parses");
        assert_eq!(rest, "postgres://u@db:5432/x?application_name=a");
        assert_eq!(
            taken,
            vec![
                ("sslmode".to_owned(), "verify-full".to_owned()),
                ("sslrootcert".to_owned(), "/ca.pem".to_owned())
            ]
        );
        let (rest, taken) =
            take_own_params("host=db sslmode = require password='a b' sslcert='/my cert.pem'")
                .expect("parses");
        assert_eq!(rest, "host=db password='a b'");
        assert_eq!(taken[1], ("sslcert".to_owned(), "/my cert.pem".to_owned()));
    }

    #[test]
    fn gives_tokio_postgres_a_mode_it_knows() {
        let info = Conninfo::parse("host=db user=u sslmode=verify-full sslrootcert=/ca.pem")
            .expect("parses");
        assert_eq!(
            info.pg.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        let info = Conninfo::parse("postgres://u@db/x").expect("parses");
        assert_eq!(
            info.pg.get_ssl_mode(),
            tokio_postgres::config::SslMode::Prefer
        );
    }

    #[test]
    fn reads_multi_host_strings_and_their_target() {
        use tokio_postgres::config::TargetSessionAttrs;
        let info = Conninfo::parse(
            "postgres://u@a:5432,b:5433/db?target_session_attrs=primary&sslmode=disable",
        )
        .expect("parses");
        assert_eq!(info.target, TargetSession::Primary);
        assert_eq!(info.pg.get_hosts().len(), 2);
        assert_eq!(info.pg.get_ports(), [5432, 5433]);
        assert_eq!(
            info.pg.get_target_session_attrs(),
            TargetSessionAttrs::ReadWrite
        );
        let info =
            Conninfo::parse("host=a,b port=1 user=u target_session_attrs=read-write").expect("ok");
        assert_eq!(info.target, TargetSession::ReadWrite);
        let refused = Conninfo::parse("host=a,b target_session_attrs=standby").expect_err("no");
        assert!(refused.contains("read-write or primary"), "{refused}");
        assert!(Conninfo::parse("host=a,b,c port=1,2 user=u").is_err());
    }
}
