//! A certificate that did not verify, in an operator's words: rustls says
//! `invalid peer certificate: UnknownIssuer`; the operator needs to know
//! whether to fix the CA file, the host name or the server's certificate.

use std::error::Error;

use rustls::CertificateError;

/// The rustls error somewhere in `error`'s chain of causes, looking inside
/// I/O errors too (whose `source` skips the error they wrap).
pub fn find<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = find(inner)
        {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

/// One line naming the reason, ending with the short name in parentheses
/// (`unknown issuer`, `wrong host name`, `expired`) when it is one of those.
pub fn explain(error: &rustls::Error) -> String {
    let rustls::Error::InvalidCertificate(cert) = error else {
        return format!("TLS handshake failed: {error}");
    };
    match cert {
        CertificateError::UnknownIssuer => "the server's certificate is not signed by a \
             trusted CA (unknown issuer): check the CA file or root certificate setting"
            .into(),
        CertificateError::NotValidForName => {
            "the server's certificate is not issued for the host name connected to \
             (wrong host name)"
                .into()
        }
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "the server's certificate is not issued for host name {} (wrong host name); \
             it names {}",
            server_name(expected),
            if presented.is_empty() {
                "no host at all".into()
            } else {
                presented
                    .iter()
                    .map(|name| presented_name(name))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
        CertificateError::Expired => "the server's certificate has expired (expired)".into(),
        CertificateError::ExpiredContext { time, not_after } => format!(
            "the server's certificate expired {} days ago, at {} (expired)",
            time.as_secs().saturating_sub(not_after.as_secs()) / 86_400,
            super::probe::utc_date(not_after.as_secs())
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "the server's certificate is not valid yet (check the clocks)".into()
        }
        CertificateError::Revoked => "the server's certificate is revoked".into(),
        CertificateError::BadSignature => "the server's certificate has a bad signature".into(),
        other => format!("the server's certificate was refused: {other:?}"),
    }
}

/// [`find`] and [`explain`] together: the reason, if `error` is about TLS.
pub fn of(error: &(dyn Error + 'static)) -> Option<String> {
    find(error).map(explain)
}

fn server_name(name: &rustls::pki_types::ServerName<'_>) -> String {
    match name {
        rustls::pki_types::ServerName::DnsName(dns) => dns.as_ref().to_owned(),
        rustls::pki_types::ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

/// `wrong.example` for rustls's `DnsName("wrong.example")`.
fn presented_name(name: &str) -> &str {
    ["DnsName(\"", "IpAddress(\""]
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix)?.strip_suffix("\")"))
        .unwrap_or(name)
}
