//! libpq's TLS settings with libpq's meaning, for every session the relay
//! opens (normal, replication, the leader's lock session, the commands):
//!
//! | `sslmode`     | TLS                      | certificate checked            |
//! |---------------|--------------------------|--------------------------------|
//! | `disable`     | never                    | -                              |
//! | `prefer` (default) | if the server offers it | no (chain, if a root cert is set) |
//! | `require`     | always                   | no (chain, if a root cert is set) |
//! | `verify-ca`   | always                   | chain to `sslrootcert`         |
//! | `verify-full` | always                   | chain and host name            |
//!
//! `sslrootcert` is a PEM file (default `~/.postgresql/root.crt` when it
//! exists) or `system` for the operating system's CAs, which, as in libpq
//! 16, makes `verify-full` the default and refuses weaker modes.
//! `sslcert`/`sslkey` are the client certificate (default
//! `~/.postgresql/postgresql.crt`/`.key` when both exist); `sslsni=0`
//! stops sending the host name.

use std::path::PathBuf;

use crate::tls::{ClientTls, Identity, Trust, Verification};

/// How a session asks for TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err("sslmode `allow` is not supported; use `prefer` or stronger".into());
            }
            other => {
                return Err(format!(
                    "sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
                ));
            }
        })
    }

    /// The name libpq uses.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// The mode tokio-postgres is given: it negotiates, the TLS
    /// configuration verifies.
    pub fn for_tokio_postgres(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            _ => "require",
        }
    }

    /// Whether a server without TLS is refused.
    pub fn requires_tls(self) -> bool {
        !matches!(self, SslMode::Disable | SslMode::Prefer)
    }
}

/// The TLS of one connection string.
#[derive(Debug, Clone)]
pub struct Ssl {
    pub mode: SslMode,
    /// The client configuration used when TLS is negotiated.
    pub tls: ClientTls,
}

impl Ssl {
    /// Reads the parameters libpq-style (last one wins); checks that the
    /// combination means something, without reading any certificate.
    pub fn from_params(params: &[(String, String)]) -> Result<Self, String> {
        let get = |key: &str| {
            params
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let system = get("sslrootcert") == Some("system");
        let mode = match get("sslmode") {
            Some(text) => SslMode::parse(text)?,
            None if system => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if system && mode != SslMode::VerifyFull {
            return Err(format!(
                "sslmode `{}` may not be used with sslrootcert=system (use verify-full)",
                mode.name()
            ));
        }
        let trust = match get("sslrootcert") {
            Some("system") => Some(Trust::System),
            Some(file) => Some(Trust::File(PathBuf::from(file))),
            None => home_file("root.crt").map(Trust::File),
        };
        let verification = match (mode, &trust) {
            (SslMode::VerifyFull, _) => Verification::ChainAndHostName,
            (SslMode::VerifyCa, _) => Verification::Chain,
            // libpq: with a root certificate, prefer and require check the chain.
            (_, Some(_)) => Verification::Chain,
            (_, None) => Verification::EncryptOnly,
        };
        if verification != Verification::EncryptOnly && trust.is_none() {
            return Err(format!(
                "sslmode `{}` needs a root certificate: set sslrootcert to the CA's PEM \
                 file, or sslrootcert=system for the operating system's CAs \
                 (~/.postgresql/root.crt does not exist)",
                mode.name()
            ));
        }
        let identity = match (get("sslcert"), get("sslkey")) {
            (Some(cert), Some(key)) => Some(Identity {
                cert: cert.into(),
                key: key.into(),
            }),
            (Some(_), None) => return Err("sslcert is set but sslkey is not".into()),
            (None, Some(_)) => return Err("sslkey is set but sslcert is not".into()),
            (None, None) => match (home_file("postgresql.crt"), home_file("postgresql.key")) {
                (Some(cert), Some(key)) => Some(Identity { cert, key }),
                _ => None,
            },
        };
        let sni = get("sslsni") != Some("0");
        Ok(Ssl {
            mode,
            tls: ClientTls {
                verification,
                trust,
                identity,
                sni,
            },
        })
    }

    /// `sslmode=verify-full; verified: certificate chain to ... and host name`.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "sslmode={}; verified: {}",
            self.mode.name(),
            self.tls.verification_summary()
        );
        if let Some(identity) = &self.tls.identity {
            text.push_str(&format!("; client certificate {}", identity.cert.display()));
        }
        text
    }
}

/// `~/.postgresql/NAME` when it exists, libpq's default location.
fn home_file(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("HOME")?)
        .join(".postgresql")
        .join(name);
    path.is_file().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssl(pairs: &[(&str, &str)]) -> Result<Ssl, String> {
        let params: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ssl::from_params(&params)
    }

    #[test]
    fn modes_mean_what_libpq_means() {
        let prefer = ssl(&[]).expect("default");
        assert_eq!(prefer.mode, SslMode::Prefer);
        let require = ssl(&[("sslmode", "require")]).expect("require");
        assert_eq!(require.tls.verification, Verification::EncryptOnly);
        let ca = ssl(&[("sslmode", "require"), ("sslrootcert", "/ca.pem")]).expect("ca");
        assert_eq!(ca.tls.verification, Verification::Chain);
        let full = ssl(&[("sslmode", "verify-full"), ("sslrootcert", "/ca.pem")]).expect("full");
        assert_eq!(full.tls.verification, Verification::ChainAndHostName);
        let system = ssl(&[("sslrootcert", "system")]).expect("system");
        assert_eq!(system.mode, SslMode::VerifyFull);
        assert_eq!(system.tls.trust, Some(Trust::System));
    }

    #[test]
    fn refuses_what_libpq_refuses() {
        let weak = ssl(&[("sslmode", "require"), ("sslrootcert", "system")]);
        assert!(weak.expect_err("weak").contains("use verify-full"));
        assert!(
            ssl(&[("sslmode", "verify-ca")])
                .expect_err("no root")
                .contains("needs a root certificate")
        );
        assert!(ssl(&[("sslcert", "/c.pem")]).is_err());
        assert!(ssl(&[("sslmode", "bogus")]).is_err());
        assert!(ssl(&[("sslsni", "0")]).is_ok_and(|s| !s.tls.sni));
    }
}
