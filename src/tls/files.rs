//! Certificates and keys from PEM files, and the operating system's roots.

use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file that is missing or holds nothing usable.
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
    /// `system` was asked for and the operating system has no roots.
    #[error("no trusted CA certificates found in the operating system's store{0}")]
    NoSystemRoots(String),
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
}

fn file_error(path: &Path, problem: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

/// The certificate authorities a server certificate must chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The CA certificates in a PEM file.
    File(PathBuf),
    /// The operating system's store (OpenSSL's locations; `SSL_CERT_FILE`
    /// and `SSL_CERT_DIR` override them), as libpq's `sslrootcert=system`.
    System,
}

impl Trust {
    /// Reads the roots.
    pub fn roots(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        match self {
            Trust::File(path) => {
                for cert in read_certs(path)? {
                    roots
                        .add(cert)
                        .map_err(|e| file_error(path, format!("not a CA certificate: {e}")))?;
                }
            }
            Trust::System => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                    let detail = if errors.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", errors.join("; "))
                    };
                    return Err(TlsError::NoSystemRoots(detail));
                }
            }
        }
        Ok(roots)
    }

    /// `CA file PATH` or `the system's CAs`.
    pub fn describe(&self) -> String {
        match self {
            Trust::File(path) => format!("CA file {}", path.display()),
            Trust::System => "the operating system's CAs".into(),
        }
    }
}

/// A client certificate (chain) and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Identity {
    /// Reads both files.
    pub fn load(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        Ok((read_certs(&self.cert)?, read_key(&self.key)?))
    }
}

/// Every certificate of a PEM file; at least one.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, pem_problem(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, pem_problem(e)))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1, unencrypted).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        let encrypted = std::fs::read_to_string(path)
            .map(|text| text.contains("ENCRYPTED"))
            .unwrap_or(false);
        if encrypted {
            file_error(
                path,
                "an encrypted private key, which is not supported: decrypt it \
                 (`openssl pkey -in KEY -out KEY.plain`) and keep the file secret instead",
            )
        } else {
            file_error(path, pem_problem(e))
        }
    })
}

fn pem_problem(e: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => "no PEM item of the expected kind in it".into(),
        other => format!("not valid PEM: {other:?}"),
    }
}
