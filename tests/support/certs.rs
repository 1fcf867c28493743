//! A throwaway public-key infrastructure for the TLS tests, made with rcgen
//! in a directory of the test's own: a CA the relay is told to trust, a
//! second CA it is not, and server certificates signed by the first one:
//! a good one (for `localhost` and `127.0.0.1`), one for the wrong host
//! name, and an expired one; plus client certificates on request.
//!
//! Key files are 0600; when the tests run as root they belong to the
//! `postgres` OS user, which the private clusters run as and which
//! PostgreSQL insists owns its key (root still reads them).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Which server certificate a TLS server under test presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerCert {
    /// Signed by [`Pki::ca`], for `localhost` and `127.0.0.1`, valid now.
    Good,
    /// Signed by [`Pki::ca`] and valid, but only for `wrong.example`.
    WrongHost,
    /// Signed by [`Pki::ca`] for `localhost` and `127.0.0.1`, expired in 2001.
    Expired,
}

/// Days the good certificates stay valid, so a check can report it.
pub const VALID_DAYS: i64 = 90;

/// The CA, the unknown CA and the server certificates, in one directory
/// removed on drop.
pub struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    /// Makes the two CAs and the three server certificates.
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(super::unique("outbox_test_pki"));
        std::fs::create_dir_all(&dir).expect("pki dir");
        // Traversable by the postgres OS user, whose server reads its key here.
        set_mode(&dir, 0o755);
        let (ca_pem, issuer) = certificate_authority("outbox-relay test CA");
        std::fs::write(dir.join("ca.pem"), ca_pem).expect("ca.pem");
        let (unknown_pem, _) = certificate_authority("some other CA");
        std::fs::write(dir.join("unknown-ca.pem"), unknown_pem).expect("unknown-ca.pem");
        let pki = Pki { dir, issuer };
        let now = OffsetDateTime::now_utc();
        let local = ["localhost", "127.0.0.1"];
        pki.leaf("server", "localhost", &local, Server, now, true);
        pki.leaf(
            "wrong-host",
            "wrong.example",
            &["wrong.example"],
            Server,
            now,
            true,
        );
        // 2001-01-01: valid for VALID_DAYS days then, long expired now.
        let expired = OffsetDateTime::from_unix_timestamp(978_307_200).expect("a date");
        pki.leaf("expired", "localhost", &local, Server, expired, true);
        pki
    }

    /// The CA that signed every server and client certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A CA that signed nothing here: trusting only it must fail.
    pub fn unknown_ca(&self) -> PathBuf {
        self.dir.join("unknown-ca.pem")
    }

    /// The files of a server certificate.
    pub fn server(&self, which: ServerCert) -> CertFiles {
        let name = match which {
            ServerCert::Good => "server",
            ServerCert::WrongHost => "wrong-host",
            ServerCert::Expired => "expired",
        };
        self.files(name)
    }

    /// A client certificate whose subject's common name is `cn` (the user
    /// name PostgreSQL's `cert` method and RabbitMQ's EXTERNAL read),
    /// signed by [`Pki::ca`]. Its key belongs to the user running the tests.
    pub fn client(&self, cn: &str) -> CertFiles {
        let name = format!("client-{cn}");
        self.leaf(&name, cn, &[], Client, OffsetDateTime::now_utc(), false);
        self.files(&name)
    }

    /// The directory holding every file.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn files(&self, name: &str) -> CertFiles {
        CertFiles {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}.key")),
        }
    }

    /// Writes `name.pem` and `name.key`, valid from a day before `from` for
    /// [`VALID_DAYS`] (so `from` in the past makes it expired).
    fn leaf(
        &self,
        name: &str,
        cn: &str,
        names: &[&str],
        role: Role,
        from: OffsetDateTime,
        server_key: bool,
    ) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("certificate names");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.not_before = from - Duration::days(1);
        params.not_after = from + Duration::days(VALID_DAYS);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![match role {
            Server => ExtendedKeyUsagePurpose::ServerAuth,
            Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        let key = KeyPair::generate().expect("key pair");
        let cert = params.signed_by(&key, &self.issuer).expect("signing");
        let files = self.files(name);
        std::fs::write(&files.cert, cert.pem()).expect("cert file");
        std::fs::write(&files.key, key.serialize_pem()).expect("key file");
        set_mode(&files.key, 0o600);
        if server_key && running_as_root() {
            super::sh("chown", &["postgres", &files.key.display().to_string()]);
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Clone, Copy)]
enum Role {
    Server,
    Client,
}
use Role::{Client, Server};

/// A self-signed CA certificate (PEM) and the issuer that signs with it.
fn certificate_authority(cn: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(2);
    params.not_after = now + Duration::days(3650);
    let key = KeyPair::generate().expect("ca key");
    let cert = params.self_signed(&key).expect("ca certificate");
    (cert.pem(), Issuer::new(params, key))
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn running_as_root() -> bool {
    super::sh("id", &["-u"]).trim() == "0"
}
