//! What every task of the relay shares: options, documents and store, live connections,
//! metrics, the addresses a login may name, the TLS acceptor. Its own module, so the accept
//! loop (`server`) and the connections (`connection`) both use it without importing each
//! other.

use std::sync::Arc;

use crate::bus::Bus;
use crate::config::Config;
use crate::documents::Documents;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::origins::Origins;

/// What the relay's tasks share.
pub struct Shared {
    /// The options.
    pub config: Config,
    /// Documents and store.
    pub docs: Documents,
    /// Live connections.
    pub hub: Hub,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The relay addresses a login may name.
    pub origins: Origins,
    /// The TLS acceptor, when the relay has its own certificate.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// The cluster's bus, when this node is one of several (`--bus`).
    pub bus: Option<Bus>,
}
