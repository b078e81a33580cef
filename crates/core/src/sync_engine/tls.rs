//! TLS for `wss://` relays: which certificates are trusted (the system's roots, which
//! honour `SSL_CERT_FILE` and `SSL_CERT_DIR`, plus an extra root saved with the relay's
//! address for a relay with a private CA), and why a connection failed, in words a person
//! can act on.

use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{CertificateError, ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::error::TlsError;

/// Why a TLS connection to the relay failed (inside [`SyncError::Tls`](super::SyncError)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsProblem {
    /// The relay's certificate is signed by nobody this machine trusts (unknown issuer).
    Untrusted,
    /// The relay's certificate has expired (or is not valid yet).
    Expired,
    /// The relay's certificate is for another host name.
    WrongHost,
    /// A `wss://` address, but the port speaks plain WebSocket.
    NotTls,
    /// A `ws://` address, but the port speaks TLS.
    TlsRequired,
    /// The extra trusted root saved for this relay is not a usable PEM certificate.
    BadRoot(String),
    /// Any other TLS failure, as rustls worded it.
    Other(String),
}

impl TlsProblem {
    /// A stable code for front ends (`tls_untrusted`, `tls_expired`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Untrusted => "tls_untrusted",
            Self::Expired => "tls_expired",
            Self::WrongHost => "tls_wrong_host",
            Self::NotTls => "tls_not_spoken",
            Self::TlsRequired => "tls_required",
            Self::BadRoot(_) => "tls_bad_root",
            Self::Other(_) => "tls_failed",
        }
    }

    /// One sentence about `url`: what is wrong and what to do.
    pub fn sentence(&self, url: &str) -> String {
        match self {
            Self::Untrusted => format!(
                "the relay at {url} shows a certificate this machine does not trust (unknown issuer): \
                 if the relay uses a private CA, trust that CA's certificate (SSL_CERT_FILE names a PEM bundle); \
                 otherwise check the address: someone may be in between"
            ),
            Self::Expired => format!(
                "the relay at {url} shows an expired certificate (or one not valid yet): \
                 its operator must renew it; also check this machine's clock"
            ),
            Self::WrongHost => format!(
                "the relay at {url} shows a certificate for another host name: \
                 use the name the certificate was issued for, or check the address"
            ),
            Self::NotTls => format!(
                "the relay at {url} does not speak TLS on this port: use {} instead, \
                 or ask its operator for the wss:// address",
                url.replacen("wss://", "ws://", 1)
            ),
            Self::TlsRequired => format!(
                "the relay at {url} speaks TLS on this port: use {} instead",
                url.replacen("ws://", "wss://", 1)
            ),
            Self::BadRoot(detail) => format!(
                "the extra trusted certificate saved for the relay at {url} cannot be used ({detail}): \
                 give a PEM file holding the CA's certificate"
            ),
            Self::Other(detail) => format!(
                "TLS with the relay at {url} failed ({detail}): check the address and the relay's certificate"
            ),
        }
    }
}

/// The certificates in `pem` (`-----BEGIN CERTIFICATE-----` blocks), at least one.
pub fn parse_roots(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "not a PEM certificate: {}",
                social_sync_protocol::pem::problem(&e)
            )
        })?;
    if certs.is_empty() {
        return Err("no BEGIN CERTIFICATE block in it".into());
    }
    Ok(certs)
}

/// The system's trusted roots, read once per process (`SSL_CERT_FILE` / `SSL_CERT_DIR`
/// replace the system's store when set).
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!("a trusted root could not be read: {e}");
        }
        if found.certs.is_empty() {
            tracing::warn!(
                "no trusted root certificates found on this machine: wss:// relays will not be trusted \
                 (set SSL_CERT_FILE to a PEM bundle)"
            );
        }
        found.certs
    })
}

/// A TLS client configuration trusting the system's roots and `extra_root` (PEM), with
/// the `ring` provider.
pub(crate) fn client_config(extra_root: Option<&str>) -> Result<Arc<ClientConfig>, TlsProblem> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(system_roots().iter().cloned());
    if let Some(pem) = extra_root {
        for cert in parse_roots(pem).map_err(TlsProblem::BadRoot)? {
            roots
                .add(cert)
                .map_err(|e| TlsProblem::BadRoot(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsProblem::Other(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// What a failed connection to a `secure` (`wss://`) or plain address says about TLS, if
/// anything.
pub(crate) fn problem(secure: bool, e: &WsError) -> Option<TlsProblem> {
    match e {
        WsError::Io(io) if secure => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map(from_rustls),
        WsError::Tls(TlsError::Rustls(e)) => Some(from_rustls(e)),
        WsError::Tls(other) => Some(TlsProblem::Other(other.to_string())),
        WsError::Http(response) if !secure => {
            let upgrade_to_tls = response
                .headers()
                .get("upgrade")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.to_ascii_lowercase().contains("tls"));
            // nginx: "The plain HTTP request was sent to HTTPS port"; Caddy: "Client sent
            // an HTTP request to an HTTPS server."
            let https_said = response.body().as_deref().is_some_and(|body| {
                String::from_utf8_lossy(body)
                    .to_ascii_lowercase()
                    .contains("https")
            });
            let status = response.status().as_u16();
            ((status == 426 && upgrade_to_tls) || (status == 400 && https_said))
                .then_some(TlsProblem::TlsRequired)
        }
        _ => None,
    }
}

fn from_rustls(e: &rustls::Error) -> TlsProblem {
    use CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer | C::BadSignature => TlsProblem::Untrusted,
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => TlsProblem::Expired,
            C::NotValidForName | C::NotValidForNameContext { .. } => TlsProblem::WrongHost,
            other => TlsProblem::Other(format!("the relay's certificate: {other:?}")),
        },
        // The answer was not TLS at all (a plain relay's HTTP error, for one).
        rustls::Error::InvalidMessage(_) => TlsProblem::NotTls,
        other => TlsProblem::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn certificate_failures_get_their_own_problem() {
        let cert = |c| from_rustls(&rustls::Error::InvalidCertificate(c));
        assert_eq!(cert(CertificateError::UnknownIssuer), TlsProblem::Untrusted);
        assert_eq!(cert(CertificateError::Expired), TlsProblem::Expired);
        assert_eq!(
            cert(CertificateError::NotValidForName),
            TlsProblem::WrongHost
        );
        let not_tls = from_rustls(&rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert_eq!(not_tls, TlsProblem::NotTls);
    }

    #[test]
    fn the_sentence_names_the_address_to_use_instead() {
        let said = TlsProblem::NotTls.sentence("wss://relay.example:8787");
        assert!(
            said.contains("use ws://relay.example:8787 instead"),
            "{said}"
        );
        let said = TlsProblem::TlsRequired.sentence("ws://relay.example");
        assert!(said.contains("use wss://relay.example instead"), "{said}");
    }

    #[test]
    fn an_extra_root_must_hold_a_certificate() {
        assert!(
            parse_roots("hello")
                .unwrap_err()
                .contains("no BEGIN CERTIFICATE")
        );
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        assert_eq!(parse_roots(&ca.cert.pem()).unwrap().len(), 1);
        assert!(client_config(Some(&ca.cert.pem())).is_ok());
        assert!(matches!(
            client_config(Some("junk")),
            Err(TlsProblem::BadRoot(_))
        ));
    }
}
