//! TLS as the relay's clients use it: which certificates a server must
//! chain to ([`Trust`]), how much of the server certificate is checked
//! ([`Verification`]), an optional client certificate ([`Identity`]), the
//! rustls client configuration made from those, a person's reading of a
//! verification failure ([`reason`]), and what a handshake found, for
//! `check` ([`probe`]).

mod files;
pub mod probe;
pub mod reason;
mod verify;

pub use files::{Identity, TlsError, Trust};
pub use probe::TlsReport;
pub use verify::Verification;

use std::sync::Arc;

/// Everything a client needs to make its TLS configuration.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub verification: Verification,
    /// The CAs to chain to; `None` only with [`Verification::EncryptOnly`].
    pub trust: Option<Trust>,
    pub identity: Option<Identity>,
    /// Send the host name in the handshake (SNI); never sent for IP addresses.
    pub sni: bool,
}

impl ClientTls {
    /// TLS that encrypts but checks no certificate (libpq's `require`).
    pub fn encrypt_only() -> Self {
        ClientTls {
            verification: Verification::EncryptOnly,
            trust: None,
            identity: None,
            sni: true,
        }
    }

    /// The rustls configuration: TLS 1.2 and 1.3 with the ring provider.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let verifier = verify::verifier(self.verification, self.trust.as_ref(), provider)?;
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some(identity) => {
                let (chain, key) = identity.load()?;
                builder.with_client_auth_cert(chain, key)?
            }
        };
        config.enable_sni = self.sni;
        Ok(config)
    }

    /// What is checked, in words: `check` prints it.
    pub fn verification_summary(&self) -> String {
        let against = self
            .trust
            .as_ref()
            .map(Trust::describe)
            .unwrap_or_else(|| "nothing".into());
        match self.verification {
            Verification::EncryptOnly => "none: the server's certificate is not checked".into(),
            Verification::Chain => {
                format!("certificate chain to {against}; host name not checked")
            }
            Verification::ChainAndHostName => {
                format!("certificate chain to {against} and host name")
            }
        }
    }
}
