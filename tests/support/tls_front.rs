//! A TLS terminator in front of a broker that has no TLS listener of its
//! own (tansu 0.6): socat accepts TLS on a loopback port with a server
//! certificate from [`super::certs::Pki`] (optionally requiring a client
//! certificate signed by a CA) and forwards the plain bytes to the broker.
//! With no certificate it forwards plain TCP, to measure what the extra
//! hop alone costs. Killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::certs::CertFiles;
use super::free_port;
use super::tansu::{PrivateTansu, ScramUser};

/// What the front speaks to clients.
pub enum Front<'a> {
    /// Plain TCP forwarding.
    Plain,
    /// TLS with `server`'s certificate; with `client_ca`, a client
    /// certificate signed by that CA is required.
    Tls {
        server: &'a CertFiles,
        client_ca: Option<&'a Path>,
    },
}

/// A socat process listening on `127.0.0.1:port`.
pub struct TlsFront {
    pub port: u16,
    child: Child,
    log: tempfile::NamedTempFile,
}

impl TlsFront {
    /// A free port for a front started later, so a broker can advertise it
    /// before the front exists.
    pub fn reserve_port() -> u16 {
        free_port()
    }

    /// Starts socat on `port`, forwarding to `target` (`HOST:PORT`), and
    /// waits until it listens.
    pub fn start(port: u16, front: Front<'_>, target: &str) -> Self {
        let listen = match front {
            Front::Plain => format!("TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr"),
            Front::Tls { server, client_ca } => {
                let mut address = format!(
                    "OPENSSL-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr,cert={},key={}",
                    server.cert.display(),
                    server.key.display()
                );
                match client_ca {
                    Some(ca) => address.push_str(&format!(",verify=1,cafile={}", ca.display())),
                    None => address.push_str(",verify=0"),
                }
                address
            }
        };
        let log = tempfile::NamedTempFile::new().expect("socat log");
        let child = Command::new("socat")
            .args(["-d", &listen, &format!("TCP:{target}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("socat log"))
            .spawn()
            .expect("starting socat (Debian package socat; scripts/servers.sh installs it)");
        let mut front = TlsFront { port, child, log };
        front.wait_listening();
        front
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("socat exited ({status}): {}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "socat did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What socat logged (refused handshakes, with `-d`).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private tansu behind a TLS front that it advertises as
/// `localhost:PORT` (the name the good test certificate is for), so every
/// connection a client makes, bootstrap or not, goes through TLS.
pub struct TlsTansu {
    /// `localhost:PORT` of the front, for `bootstrap.servers`.
    pub brokers: String,
    pub front: TlsFront,
    pub tansu: PrivateTansu,
}

impl TlsTansu {
    /// tansu behind `front`, without a login.
    pub fn start(front: Front<'_>) -> Self {
        Self::with_users(front, &[])
    }

    /// tansu requiring a SASL login (when `users` is not empty) behind `front`.
    pub fn with_users(front: Front<'_>, users: &[ScramUser<'_>]) -> Self {
        let port = TlsFront::reserve_port();
        let brokers = format!("localhost:{port}");
        let tansu = if users.is_empty() {
            PrivateTansu::advertising(Some(&brokers))
        } else {
            PrivateTansu::with_users(Some(&brokers), users)
        };
        let front = TlsFront::start(port, front, &tansu.address);
        TlsTansu {
            brokers,
            front,
            tansu,
        }
    }
}

/// What the test's own clients set to reach a TLS front: TLS verified
/// against `ca`, with `client`'s certificate when the front requires one.
pub fn client_props(ca: &Path, client: Option<&CertFiles>) -> Vec<(String, String)> {
    let mut props = vec![
        ("security.protocol".to_owned(), "ssl".to_owned()),
        ("ssl.ca.location".to_owned(), ca.display().to_string()),
    ];
    if let Some(client) = client {
        props.push((
            "ssl.certificate.location".to_owned(),
            client.cert.display().to_string(),
        ));
        props.push((
            "ssl.key.location".to_owned(),
            client.key.display().to_string(),
        ));
    }
    props
}
