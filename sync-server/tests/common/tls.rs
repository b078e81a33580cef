//! TLS in tests: certificates made in the test (rcgen): a CA, certificates it signs (for
//! `127.0.0.1` and `localhost`, for another name, expired), written as PEM files to a
//! temporary folder; and a rustls client that says which certificate a relay serves.
//! Shared with the CLI's tests (`#[path]`), never copied.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SerialNumber, date_time_ymd,
};

/// A certificate authority for tests.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// Its certificate, PEM.
    pub pem: String,
}

/// A certificate and key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertPair {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The certificate, DER: what a client sees.
    pub der: Vec<u8>,
}

/// How a certificate is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// For `127.0.0.1` and `localhost`, valid now.
    Good,
    /// For `relay.other.example` only.
    WrongName,
    /// For `127.0.0.1` and `localhost`, expired in 2021.
    Expired,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    /// Writes the CA's certificate to `dir/ca.pem`.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.pem).unwrap();
        path
    }

    /// A certificate of `kind` with `serial`, signed by this CA, as `dir/NAME.pem` and
    /// `dir/NAME.key` (overwritten: a renewal).
    pub fn issue(&self, dir: &Path, name: &str, kind: Kind, serial: u64) -> CertPair {
        let names: Vec<String> = match kind {
            Kind::WrongName => vec!["relay.other.example".into()],
            Kind::Good | Kind::Expired => vec!["127.0.0.1".into(), "localhost".into()],
        };
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} {serial}"));
        params.serial_number = Some(SerialNumber::from(serial));
        if kind == Kind::Expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let pair = CertPair {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
            der: cert.der().to_vec(),
        };
        std::fs::write(&pair.key, key.serialize_pem()).unwrap();
        std::fs::write(&pair.cert, cert.pem()).unwrap();
        pair
    }
}

/// What a TLS relay answered to one `GET`.
pub struct Answer {
    /// The certificate it served (DER).
    pub served: Vec<u8>,
    /// The HTTP response, as text.
    pub response: String,
}

/// `GET path` over TLS to `addr` (as `127.0.0.1`), trusting `ca_pem` only.
pub async fn https_get(addr: SocketAddr, ca_pem: &str, path: &str) -> Answer {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let served = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    tls.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut bytes = Vec::new();
    // A peer that closes without close_notify ends the read with an error: keep what came.
    let _ = tls.read_to_end(&mut bytes).await;
    Answer {
        served,
        response: String::from_utf8_lossy(&bytes).into_owned(),
    }
}
