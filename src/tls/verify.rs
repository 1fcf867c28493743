//! How much of a server's certificate is checked, as libpq's `sslmode`
//! levels it: nothing (encrypted with whoever answered), the chain to a
//! trusted CA, or the chain and the host name.

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;

use super::{TlsError, Trust};

/// The checks made on the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// None (libpq `prefer`/`require` without a root certificate): the
    /// session is encrypted, but a man in the middle is not detected.
    EncryptOnly,
    /// Signed by a trusted CA, any host name (libpq `verify-ca`).
    Chain,
    /// Signed by a trusted CA and issued for the host connected to (libpq
    /// `verify-full`, and what amqps and Kafka do).
    ChainAndHostName,
}

/// The verifier for `verification` against `trust`.
pub(super) fn verifier(
    verification: Verification,
    trust: Option<&Trust>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    let roots = match (verification, trust) {
        (Verification::EncryptOnly, _) => {
            return Ok(Arc::new(Lenient {
                roots: None,
                provider,
            }));
        }
        (_, Some(trust)) => Arc::new(trust.roots()?),
        (_, None) => Arc::new(Trust::System.roots()?),
    };
    Ok(match verification {
        Verification::Chain => Arc::new(Lenient {
            roots: Some(roots),
            provider,
        }),
        _ => WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?,
    })
}

/// The two checks webpki's verifier has no setting for. Without `roots`
/// it accepts any server certificate (encrypted end to end with whoever
/// answered); with them it checks the chain to a trusted CA and the
/// validity dates, but not the host name. Either way the handshake
/// signatures are checked.
#[derive(Debug)]
struct Lenient {
    roots: Option<Arc<rustls::RootCertStore>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
