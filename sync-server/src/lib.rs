//! # sync-server
//!
//! The Social Sync relay. It authenticates clients by their Ed25519 keys, runs the
//! Automerge sync protocol with each, refuses changes that break the write rules, stores
//! what it accepts before answering, fans new changes out to those they concern, keeps an
//! inbox per user for devices that are offline, and tracks presence. One port serves the
//! WebSocket protocol and HTTP (`/healthz`, `/metrics`), over the relay's own TLS when it
//! is given a certificate (`wss://`, `https://`).
//!
//! # Layout
//!
//! - [`config`]: every option, each with an environment variable.
//! - [`shared`]: what every task shares (options, documents, hub, metrics, TLS).
//! - [`server`]: the accept loop, HTTP-or-WebSocket routing, graceful shutdown.
//! - [`connection`]: one client: the handshake within one deadline and with small frames
//!   until authenticated, limits, message handling, the byte-budgeted outbound queue and
//!   its writer task.
//! - [`documents`]: the sync protocol on the relay's side: every change's signature and
//!   author checked, the write rules, the bounded document cache.
//! - [`routing`]: whom accepted changes concern; what they change in follows and names.
//! - [`hub`]: live connections, presence, subscriptions, fan-out.
//! - [`interest`]: which bus channels this node needs, counted.
//! - [`bus`]: the cluster's bus over Redis (`--bus`): live changes and presence between
//!   relay nodes sharing a PostgreSQL store; catching up from the store after a gap.
//! - [`presence`]: who may see whom online (people a user follows back), never devices.
//! - [`origins`]: the relay addresses a client's login may name (its own).
//! - [`names`]: display names: look-alikes are one name, first come first served.
//! - [`blocking`]: the one way blocking work (store calls, Automerge) leaves the async
//!   workers.
//! - [`blobs`]: images: types read from the bytes, per-user quota.
//! - [`store`]: the durable state behind a trait, opened by [`store::open`] from
//!   `--store`: [`store::sqlite`] is the embedded default (one file in `--data`);
//!   [`store::postgres`] keeps it in PostgreSQL, shareable by several relay nodes
//!   (connection, pool and errors in `store/postgres/mod.rs`, schema and migrations in
//!   `schema.rs`, group commit and the cluster-wide writer lock in `group.rs`, the trait's
//!   calls in `queries.rs`, documents and signatures in `documents.rs`). `store/url.rs`
//!   reads `--store` and keeps its password out of messages.
//! - [`http`]: reading the request head; `/healthz` and `/metrics`.
//! - [`rewind`]: a stream that replays the head it was routed by to the WebSocket upgrade.
//! - [`stream`]: a client's socket, plain TCP or TLS.
//! - [`tls`]: the relay's certificate, reloaded when its files change or on SIGHUP.
//! - [`metrics`]: the Prometheus metrics.

pub mod blobs;
pub mod blocking;
pub mod bus;
pub mod config;
pub mod connection;
pub mod documents;
pub mod http;
pub mod hub;
pub mod interest;
pub mod metrics;
pub mod names;
pub mod origins;
pub mod presence;
pub mod rewind;
pub mod routing;
pub mod server;
pub mod shared;
pub mod store;
pub mod stream;
pub mod tls;

pub use config::Config;
pub use server::{StartError, bind, serve};

/// Runs the relay with `config` until `shutdown` completes. Prints the address it listens
/// on as the first line of standard output (`listening on 127.0.0.1:8787`), so scripts and
/// tests that pass port 0 can find it.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StartError> {
    // A bad certificate stops the relay before it says it listens.
    if let Some(files) = server::cert_files(&config) {
        tls::load(&files, &rustls::crypto::ring::default_provider())?;
    }
    let listener = bind(&config).await?;
    // A store that cannot be opened (PostgreSQL unreachable, a data folder it may not
    // write) stops the relay before it says it listens.
    let store = server::open_store(&config).await?;
    // So does a bus (`--bus`) that does not answer.
    let bus = server::open_bus(&config, store.as_ref(), rand::random()).await?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let scheme = if config.tls_cert.is_some() {
        "wss"
    } else {
        "ws"
    };
    match &config.store {
        Some(store) => tracing::info!(%addr, %store, "listening ({scheme}://)"),
        None => tracing::info!(%addr, data = %config.data.display(), "listening ({scheme}://)"),
    }
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on {addr}");
        let _ = stdout.flush();
    }
    server::serve_store(listener, config, store, bus, shutdown).await
}
