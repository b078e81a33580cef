//! The relay's own TLS (`--tls-cert`, `--tls-key`): the certificate and key read from PEM
//! files, served to each new connection through a [`ResolvesServerCert`] whose pair is
//! swapped when the files change (a poll of their modification times every 2 s) or on
//! SIGHUP. A reload that fails keeps the pair being served and logs which file is wrong;
//! connections already open keep the certificate they started with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use social_sync_protocol::pem::problem as pem_problem;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// How often the certificate files' modification times are looked at.
const POLL: Duration = Duration::from_secs(2);

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The certificate file could not be read or holds no certificate.
    #[error(
        "cannot use the TLS certificate {}: {detail}; give --tls-cert a PEM file with the certificate (then its chain)",
        path.display()
    )]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The key file could not be read or holds no private key.
    #[error(
        "cannot use the TLS key {}: {detail}; give --tls-key a PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1)",
        path.display()
    )]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The key is not the certificate's.
    #[error(
        "the TLS key {} does not belong to the certificate {} ({detail}): give the key the certificate was issued for",
        key.display(),
        cert.display()
    )]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        detail: String,
    },
}

/// The certificate and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// PEM: the certificate, then its chain.
    pub cert: PathBuf,
    /// PEM: the private key.
    pub key: PathBuf,
}

/// What the log says about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// The subject, e.g. `CN=relay.example.org`.
    pub subject: String,
    /// The serial number, hex.
    pub serial: String,
    /// The end of its validity, e.g. `2026-03-01T12:00:00Z`.
    pub not_after: String,
    /// Whether it has expired.
    pub expired: bool,
}

/// Reads `files` into a pair rustls can serve, and what to log about it.
pub fn load(
    files: &CertFiles,
    provider: &CryptoProvider,
) -> Result<(CertifiedKey, CertSummary), CertError> {
    let cert_error = |detail: String| CertError::Certificate {
        path: files.cert.clone(),
        detail,
    };
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| cert_error(pem_problem(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(pem_problem(&e)))?;
    let Some(leaf) = chain.first() else {
        return Err(cert_error("no BEGIN CERTIFICATE block in it".into()));
    };
    let summary = summarize(leaf).map_err(cert_error)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| CertError::Key {
        path: files.key.clone(),
        detail: match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no BEGIN PRIVATE KEY block in it".into()
            }
            other => pem_problem(&other),
        },
    })?;
    let pair = CertifiedKey::from_der(chain, key, provider).map_err(|e| CertError::Mismatch {
        cert: files.cert.clone(),
        key: files.key.clone(),
        detail: e.to_string(),
    })?;
    Ok((pair, summary))
}

fn summarize(der: &CertificateDer<'_>) -> Result<CertSummary, String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| format!("not X.509: {e}"))?;
    let tbs = &cert.tbs_certificate;
    let not_after = tbs.validity.not_after;
    Ok(CertSummary {
        subject: tbs.subject.to_string(),
        serial: data_encoding::HEXLOWER.encode(tbs.serial_number.as_bytes()),
        not_after: not_after.to_string(),
        expired: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .is_ok_and(|now| now > not_after.to_unix_duration()),
    })
}

fn log_loaded(files: &CertFiles, summary: &CertSummary, what: &str) {
    if summary.expired {
        tracing::error!(
            cert = %files.cert.display(),
            subject = %summary.subject,
            serial = %summary.serial,
            not_after = %summary.not_after,
            "TLS certificate {what}, but it has EXPIRED: clients will refuse it; renew it"
        );
    } else {
        tracing::info!(
            cert = %files.cert.display(),
            subject = %summary.subject,
            serial = %summary.serial,
            not_after = %summary.not_after,
            "TLS certificate {what}"
        );
    }
}

/// The pair served to new connections, replaced on reload.
#[derive(Debug)]
pub struct Certificates {
    files: CertFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times at the last load (or failed load).
    seen: Mutex<Stamp>,
}

/// The modification times of the certificate and key files.
type Stamp = (Option<SystemTime>, Option<SystemTime>);

fn stamp(files: &CertFiles) -> Stamp {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (modified(&files.cert), modified(&files.key))
}

impl Certificates {
    /// Loads `files` (logging the certificate's subject and expiry).
    pub fn load(files: CertFiles) -> Result<Self, CertError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let seen = stamp(&files);
        let (pair, summary) = load(&files, &provider)?;
        log_loaded(&files, &summary, "loaded");
        Ok(Self {
            files,
            provider,
            current: RwLock::new(Arc::new(pair)),
            seen: Mutex::new(seen),
        })
    }

    /// Reads the files again: new connections get the new pair; on failure the old one
    /// stays and the error (naming the file) is logged and returned.
    pub fn reload(&self) -> Result<CertSummary, CertError> {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = stamp(&self.files);
        match load(&self.files, &self.provider) {
            Ok((pair, summary)) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(pair);
                log_loaded(&self.files, &summary, "reloaded");
                Ok(summary)
            }
            Err(e) => {
                tracing::error!(
                    "TLS certificate not reloaded, still serving the previous one: {e}"
                );
                Err(e)
            }
        }
    }

    /// Reloads if either file changed since the last (attempted) load.
    fn reload_if_changed(&self) {
        let now = stamp(&self.files);
        let changed = *self.seen.lock().unwrap_or_else(PoisonError::into_inner) != now;
        if changed {
            let _ = self.reload();
        }
    }

    /// The acceptor of TLS connections, serving the current pair.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, CertError> {
        let config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| CertError::Certificate {
                path: self.files.cert.clone(),
                detail: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        let mut config = config;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Reloads on SIGHUP and when the files change, until `stop` turns true.
    pub async fn watch(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let sighup = async {
                match hangup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let sighup = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = stop.changed() => return,
                _ = sighup => {
                    tracing::info!("SIGHUP: reloading the TLS certificate");
                    let _ = self.reload();
                }
                _ = poll.tick() => self.reload_if_changed(),
            }
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn write_pair(dir: &Path, name: &str) -> CertFiles {
        let made = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let files = CertFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, made.cert.pem()).unwrap();
        std::fs::write(&files.key, made.signing_key.serialize_pem()).unwrap();
        files
    }

    #[test]
    fn a_bad_file_is_named_and_a_failed_reload_keeps_the_old_pair() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_pair(dir.path(), "relay.test");
        let certs = Certificates::load(files.clone()).unwrap();
        let before = certs.current.read().unwrap().cert[0].clone();

        std::fs::write(&files.cert, "not a certificate").unwrap();
        let e = certs.reload().unwrap_err().to_string();
        assert!(e.contains("cert.pem") && e.contains("--tls-cert"), "{e}");
        assert_eq!(certs.current.read().unwrap().cert[0], before);

        let other = rcgen::generate_simple_self_signed(vec!["x.test".into()]).unwrap();
        std::fs::write(&files.cert, other.cert.pem()).unwrap();
        let e = certs.reload().unwrap_err().to_string();
        assert!(e.contains("does not belong"), "{e}");

        let renewed = write_pair(dir.path(), "relay.test");
        let summary = certs.reload().unwrap();
        assert!(summary.subject.contains("rcgen"), "{summary:?}");
        assert!(!summary.expired);
        let after = certs.current.read().unwrap().cert[0].clone();
        assert_ne!(after, before);
        assert_eq!(
            after.as_ref(),
            std::fs::read_to_string(&renewed.cert)
                .map(|pem| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
                .unwrap()
                .as_ref()
        );
    }

    #[test]
    fn a_missing_key_is_a_clear_start_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = write_pair(dir.path(), "relay.test");
        files.key = dir.path().join("nope.pem");
        let e = Certificates::load(files).unwrap_err().to_string();
        assert!(e.contains("nope.pem") && e.contains("--tls-key"), "{e}");
    }
}
