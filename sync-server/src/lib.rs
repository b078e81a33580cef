//! # sync-server
//!
//! The Social Sync relay. It authenticates clients by their Ed25519 keys, runs the
//! Automerge sync protocol with each, refuses changes that break the write rules, stores
//! what it accepts before answering, fans new changes out to those they concern, keeps an
//! inbox per user for devices that are offline, and tracks presence. One port serves the
//! WebSocket protocol and plain HTTP (`/healthz`, `/metrics`).
//!
//! # Layout
//!
//! - [`config`]: every option, each with an environment variable.
//! - [`server`]: the accept loop, HTTP-or-WebSocket routing, graceful shutdown.
//! - [`connection`]: one client: the handshake within one deadline and with small frames
//!   until authenticated, limits, message handling, the byte-budgeted outbound queue and
//!   its writer task.
//! - [`documents`]: the sync protocol on the relay's side: every change's signature and
//!   author checked, the write rules, the bounded document cache.
//! - [`routing`]: whom accepted changes concern; what they change in follows and names.
//! - [`hub`]: live connections, presence, subscriptions, fan-out.
//! - [`presence`]: who may see whom online (people a user follows back), never devices.
//! - [`origins`]: the relay addresses a client's login may name (its own).
//! - [`names`]: display names: look-alikes are one name, first come first served.
//! - [`blobs`]: images: types read from the bytes, per-user quota.
//! - [`store`]: the durable state behind a trait; [`store::sqlite`] is the embedded backend.
//! - [`http`]: reading the request head; `/healthz` and `/metrics`.
//! - [`rewind`]: a stream that replays the head it was routed by to the WebSocket upgrade.
//! - [`metrics`]: the Prometheus metrics.

pub mod blobs;
pub mod config;
pub mod connection;
pub mod documents;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod names;
pub mod origins;
pub mod presence;
pub mod rewind;
pub mod routing;
pub mod server;
pub mod store;

pub use config::Config;
pub use server::{StartError, bind, serve};

/// Runs the relay with `config` until `shutdown` completes. Prints the address it listens
/// on as the first line of standard output (`listening on 127.0.0.1:8787`), so scripts and
/// tests that pass port 0 can find it.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StartError> {
    let listener = bind(&config).await?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    tracing::info!(%addr, data = %config.data.display(), "listening");
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on {addr}");
        let _ = stdout.flush();
    }
    serve(listener, config, shutdown).await
}
