//! The accept loop: one port, HTTP or WebSocket per connection (over the relay's own TLS
//! when it has a certificate), limits per address, and a graceful shutdown that stops
//! accepting, lets connections finish what they are writing, and closes every socket with
//! a close frame.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use social_sync_protocol::ErrorCode;
use social_sync_protocol::signing::BadRelayUrl;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::bus::{Bus, BusError};
use crate::config::Config;
use crate::connection;
use crate::documents::Documents;
use crate::http::{self, Route};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::origins::Origins;
use crate::shared::Shared;
use crate::store::{RelayStore, StoreError};
use crate::stream::Stream;
use crate::tls::{CertError, CertFiles, Certificates};

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The address is taken or not ours.
    #[error("cannot listen on {addr}: {source}; choose another --listen address")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The store did not open.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A `--public-url` that is not a relay address.
    #[error("--public-url: {0}")]
    PublicUrl(#[from] BadRelayUrl),
    /// The TLS certificate or key could not be used.
    #[error(transparent)]
    Tls(#[from] CertError),
    /// The cluster's bus could not be reached.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// The certificate files of `config`, if it has them (clap makes sure of both or neither).
pub fn cert_files(config: &Config) -> Option<CertFiles> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(CertFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    }
}

/// Binds the listening socket of `config`.
pub async fn bind(config: &Config) -> Result<TcpListener, StartError> {
    TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })
}

/// Opens the store of `config` (off the async workers: opening PostgreSQL blocks on the
/// network).
pub async fn open_store(config: &Config) -> Result<Box<dyn RelayStore>, StartError> {
    let config = config.clone();
    Ok(crate::blocking::run(move || crate::store::open(&config)).await??)
}

/// Serves on `listener` until `shutdown` completes, then shuts down gracefully.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StartError> {
    let store = open_store(&config).await?;
    let bus = open_bus(&config, store.as_ref(), rand::random()).await?;
    serve_store(listener, config, store, bus, shutdown).await
}

/// Connects to the cluster's bus of `config`, if it names one, as node `node`: a bus
/// needs a store the nodes share.
pub async fn open_bus(
    config: &Config,
    store: &dyn RelayStore,
    node: u64,
) -> Result<Option<Bus>, StartError> {
    let Some(url) = &config.bus else {
        return Ok(None);
    };
    if !store.shared() {
        return Err(BusError::NoSharedStore.into());
    }
    Ok(Some(
        Bus::connect(url, node, Duration::from_secs(config.presence_ttl_secs)).await?,
    ))
}

/// [`serve`] with the store already open.
pub async fn serve_store(
    listener: TcpListener,
    config: Config,
    store: Box<dyn RelayStore>,
    bus: Option<Bus>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StartError> {
    let origins = Origins::new(&config.public_urls)?;
    let certificates = cert_files(&config)
        .map(Certificates::load)
        .transpose()?
        .map(Arc::new);
    let tls = certificates
        .as_ref()
        .map(Certificates::acceptor)
        .transpose()?;
    let metrics = Arc::new(Metrics::new());
    let shared = Arc::new(Shared {
        docs: Documents::new(store, config.document_cache, config.document_cache_bytes),
        hub: Hub::new(metrics.clone(), bus.as_ref().map(|b| b.interest.clone())),
        bus,
        metrics,
        origins,
        config,
        tls,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    if let Some(certificates) = certificates {
        tokio::spawn(certificates.watch(stop_rx.clone()));
    }
    Bus::start(&shared, stop_rx.clone()).await;
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tasks.spawn(handle(stream, peer, shared.clone(), stop_rx.clone()));
                }
                Err(e) => {
                    // Out of file descriptors, most likely: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tracing::info!(
        connections = tasks.len(),
        "shutting down: closing connections"
    );
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = tasks.len(),
            "connections still open after 10 s; dropping them"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

async fn handle(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    // One deadline from accept: the TLS handshake, the HTTP head, the upgrade and the
    // authentication.
    let deadline = Instant::now() + Duration::from_secs(shared.config.handshake_timeout_secs);
    let max = shared.config.max_connections_per_ip;
    // Counted from accept, before a byte of the head arrives: half-sent heads hold a slot.
    if !shared.hub.admit(peer.ip(), max) {
        shared.metrics.reject(ErrorCode::TooManyConnections);
        let body = format!(
            "too many connections from {}: at most {max} at once (--max-connections-per-ip); \
             close some, or finish their requests, and try again\n",
            peer.ip(),
        );
        if shared.tls.is_some() {
            // Plain text would read as "this relay does not speak TLS" to the client.
            tracing::debug!(%peer, "{}", body.trim_end());
        } else {
            http::refuse(tcp, "429 Too Many Requests", &body).await;
        }
        return;
    }
    shared.metrics.sockets.inc();
    // The address the client connected to: a login may name it (see `crate::origins`).
    let local = tcp.local_addr().unwrap_or(shared.config.listen);
    if let Some(stream) = secure(tcp, peer, &shared, deadline).await {
        route(stream, peer, local, &shared, stop, deadline).await;
    }
    shared.metrics.sockets.dec();
    shared.hub.release(peer.ip());
}

/// The TLS handshake, within `deadline`, when the relay has a certificate; a plain HTTP
/// request to the TLS port is told to use TLS (`426`, like RFC 2817's upgrade).
async fn secure(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    deadline: Instant,
) -> Option<Stream> {
    let Some(acceptor) = &shared.tls else {
        return Some(Stream::Plain(tcp));
    };
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, tcp.peek(&mut first)).await {
        Ok(Ok(1..)) if first[0] == http::TLS_HANDSHAKE => {}
        Ok(Ok(1..)) => {
            // Lingers to read the request it did not read, so the answer is not reset.
            http::refuse_with(
                tcp,
                "426 Upgrade Required",
                "upgrade: TLS/1.3, TLS/1.2\r\n",
                "this port speaks TLS: use wss:// (https:// for /healthz and /metrics)\n",
            )
            .await;
            return None;
        }
        _ => return None,
    }
    match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(Stream::Tls(Box::new(tls))),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            shared.metrics.reject(ErrorCode::NotAuthenticated);
            tracing::debug!(%peer, "TLS handshake not finished by the deadline");
            None
        }
    }
}

/// Reads the request head and answers it: the WebSocket protocol, `/healthz`, `/metrics`.
async fn route(
    mut stream: Stream,
    peer: SocketAddr,
    local: SocketAddr,
    shared: &Arc<Shared>,
    stop: watch::Receiver<bool>,
    deadline: Instant,
) {
    let head = http::read_head(&mut stream, deadline).await;
    match head.route {
        Route::WebSocket => {
            shared.metrics.connections.inc();
            connection::run(stream, head, peer, local, shared, stop, deadline).await;
            shared.metrics.connections.dec();
        }
        Route::Health => http::respond(stream, "200 OK", "text/plain", "ok\n").await,
        Route::Metrics => {
            // The store's figures wait for the document lock: off the async workers, so a
            // long sync on the relay never stalls other connections through `/metrics`.
            let store = shared.clone();
            let figures = crate::blocking::run(move || {
                (
                    store.docs.with_store(|s| s.counts()),
                    store.docs.cached_bytes(),
                )
            })
            .await;
            if let Ok((counts, cached)) = figures {
                if let Ok((docs, inbox)) = counts {
                    shared.metrics.documents.set(docs as i64);
                    shared.metrics.inbox_entries.set(inbox as i64);
                }
                shared
                    .metrics
                    .document_cache_bytes
                    .set(i64::try_from(cached).unwrap_or(i64::MAX));
            }
            let body = shared.metrics.render();
            http::respond(
                stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            )
            .await;
        }
        Route::NotFound => {
            http::respond(
                stream,
                "404 Not Found",
                "text/plain",
                "not found: try /healthz or /metrics\n",
            )
            .await;
        }
        Route::Tls => {
            // Lingers to read the rest of the client's hello, so the answer is not reset.
            http::refuse(
                stream,
                "400 Bad Request",
                "this port does not speak TLS: use ws:// (http:// for /healthz and /metrics), \
                 or give the relay --tls-cert and --tls-key\n",
            )
            .await;
        }
        Route::BadRequest => {}
    }
}
