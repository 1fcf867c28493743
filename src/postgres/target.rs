//! `target_session_attrs`: which of the servers of a multi-host connection
//! string (`host=a,b`, `postgres://a,b/db`) a session settles on. The relay
//! writes (marks, dead letters, its slot record), so only the values that
//! find a writable server are accepted; after a promotion every session
//! reconnects through the same list and lands on the new primary.

use tokio_postgres::config::Host;

/// The accepted values of libpq's `target_session_attrs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetSession {
    /// The first server that accepts the login (libpq's default).
    #[default]
    Any,
    /// A server whose sessions are not read-only.
    ReadWrite,
    /// A server not in recovery (a primary, also one whose
    /// `default_transaction_read_only` is on).
    Primary,
}

impl TargetSession {
    /// Reads a value as libpq spells it.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "any" => Ok(TargetSession::Any),
            "read-write" => Ok(TargetSession::ReadWrite),
            "primary" => Ok(TargetSession::Primary),
            "read-only" | "standby" | "prefer-standby" => Err(format!(
                "target_session_attrs={value} would pick a server the relay cannot write its \
                 marks to; use read-write or primary"
            )),
            other => Err(format!(
                "target_session_attrs={other} is not one of any, read-write, primary"
            )),
        }
    }

    /// libpq's name for it.
    pub fn name(self) -> &'static str {
        match self {
            TargetSession::Any => "any",
            TargetSession::ReadWrite => "read-write",
            TargetSession::Primary => "primary",
        }
    }

    /// What tokio-postgres is told: it knows `any` and `read-write`, and
    /// `read-write` also turns a standby away (its sessions are read-only).
    pub fn for_tokio_postgres(self) -> &'static str {
        match self {
            TargetSession::Any => "any",
            TargetSession::ReadWrite | TargetSession::Primary => "read-write",
        }
    }

    /// The query whose single text answer tells whether a server fits, and
    /// the answer that turns it away; `None` when any server does.
    pub fn probe(self) -> Option<(&'static str, &'static str)> {
        match self {
            TargetSession::Any => None,
            TargetSession::ReadWrite => Some(("SHOW transaction_read_only", "on")),
            TargetSession::Primary => Some(("SELECT pg_catalog.pg_is_in_recovery()", "t")),
        }
    }
}

/// Every `(host, port)` of a parsed connection string, in the order libpq
/// tries them: one port for all hosts, or one port per host.
pub fn candidates(config: &tokio_postgres::Config) -> Result<Vec<(Host, u16)>, String> {
    let hosts = config.get_hosts();
    let ports = config.get_ports();
    let hosts: Vec<Host> = if hosts.is_empty() {
        vec![Host::Tcp("localhost".to_owned())]
    } else {
        hosts.to_vec()
    };
    let count = hosts.len();
    let port_of = |i: usize| match ports.len() {
        0 => Ok(5432),
        1 => Ok(ports[0]),
        n if n == count => Ok(ports[i]),
        n => Err(format!(
            "{count} hosts but {n} ports: give one port, or one per host"
        )),
    };
    hosts
        .into_iter()
        .enumerate()
        .map(|(i, host)| Ok((host, port_of(i)?)))
        .collect()
}

/// `config` with only `host` and `port`, and no target check: a session to
/// that one server, whatever its role. Copies what a login needs (user,
/// password, database, options, TLS mode, timeouts).
pub fn single_host(
    config: &tokio_postgres::Config,
    host: Host,
    port: u16,
) -> tokio_postgres::Config {
    let mut one = tokio_postgres::Config::new();
    match host {
        Host::Tcp(name) => one.host(&name),
        #[cfg(unix)]
        Host::Unix(path) => one.host_path(path),
    };
    one.port(port);
    if let Some(user) = config.get_user() {
        one.user(user);
    }
    if let Some(password) = config.get_password() {
        one.password(password);
    }
    if let Some(dbname) = config.get_dbname() {
        one.dbname(dbname);
    }
    if let Some(options) = config.get_options() {
        one.options(options);
    }
    if let Some(name) = config.get_application_name() {
        one.application_name(name);
    }
    if let Some(timeout) = config.get_connect_timeout() {
        one.connect_timeout(*timeout);
    }
    one.ssl_mode(config.get_ssl_mode());
    one.channel_binding(config.get_channel_binding());
    one.keepalives(config.get_keepalives());
    one
}

/// `host:port` for messages.
pub fn describe_host(host: &Host, port: u16) -> String {
    match host {
        Host::Tcp(name) if name.contains(':') => format!("[{name}]:{port}"),
        Host::Tcp(name) => format!("{name}:{port}"),
        #[cfg(unix)]
        Host::Unix(path) => format!("{}:{port}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn refuses_what_cannot_write() {
        assert_eq!(TargetSession::parse("primary"), Ok(TargetSession::Primary));
        let refused = TargetSession::parse("prefer-standby").expect_err("refused");
        assert!(refused.contains("read-write or primary"), "{refused}");
        assert!(TargetSession::parse("sometimes").is_err());
    }

    #[test]
    fn pairs_hosts_with_ports_as_libpq_does() {
        let one = tokio_postgres::Config::from_str("host=a,b port=6000").expect("parses");
        let pairs: Vec<String> = candidates(&one)
            .expect("pairs")
            .iter()
            .map(|(h, p)| describe_host(h, *p))
            .collect();
        assert_eq!(pairs, ["a:6000", "b:6000"]);
        let each = tokio_postgres::Config::from_str("postgres://u@a:1,b:2/db").expect("parses");
        let pairs: Vec<String> = candidates(&each)
            .expect("pairs")
            .iter()
            .map(|(h, p)| describe_host(h, *p))
            .collect();
        assert_eq!(pairs, ["a:1", "b:2"]);
        let odd = tokio_postgres::Config::from_str("host=a,b,c port=1,2").expect("parses");
        assert!(candidates(&odd).is_err());
    }
}
