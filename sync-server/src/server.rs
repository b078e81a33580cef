//! The accept loop: one port, HTTP or WebSocket per connection, limits per address, and a
//! graceful shutdown that stops accepting, lets connections finish what they are writing,
//! and closes every socket with a close frame.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use social_sync_protocol::ErrorCode;
use social_sync_protocol::signing::BadRelayUrl;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::Config;
use crate::connection;
use crate::documents::Documents;
use crate::http::{self, Route};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::origins::Origins;
use crate::store::StoreError;
use crate::store::sqlite::SqliteStore;

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
}

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

/// Serves on `listener` until `shutdown` completes, then shuts down gracefully.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StartError> {
    let origins = Origins::new(&config.public_urls)?;
    let store = SqliteStore::open(&config.data)?;
    let metrics = Arc::new(Metrics::new());
    let shared = Arc::new(Shared {
        docs: Documents::new(
            Box::new(store),
            config.document_cache,
            config.document_cache_bytes,
        ),
        hub: Hub::new(metrics.clone()),
        metrics,
        origins,
        config,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
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
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    // One deadline from accept: the HTTP head, the upgrade and the authentication.
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
        http::refuse(stream, "429 Too Many Requests", &body).await;
        return;
    }
    shared.metrics.sockets.inc();
    // The address the client connected to: a login may name it (see `crate::origins`).
    let local = stream.local_addr().unwrap_or_else(|_| shared.config.listen);
    let head = http::read_head(&mut stream, deadline).await;
    match head.route {
        Route::WebSocket => {
            shared.metrics.connections.inc();
            connection::run(stream, head, peer, local, &shared, stop, deadline).await;
            shared.metrics.connections.dec();
        }
        Route::Health => http::respond(stream, "200 OK", "text/plain", "ok\n").await,
        Route::Metrics => {
            // The store's figures wait for the document lock: off the async workers, so a
            // long sync on the relay never stalls other connections through `/metrics`.
            let store = shared.clone();
            let figures = tokio::task::spawn_blocking(move || {
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
        Route::BadRequest => {}
    }
    shared.metrics.sockets.dec();
    shared.hub.release(peer.ip());
}
