//! The client side of sync: one connection to the relay per running client, which
//! reconnects by itself (exponential backoff with jitter), resumes every document from its
//! saved Automerge sync state, asks for what the user needs (own documents, followed users,
//! the threads of their posts), pushes local edits, and reports what happens as [`Event`]s.
//!
//! # Layout
//!
//! - [`link`]: one authenticated WebSocket; [`tls`]: `wss://` trust and its errors.
//! - [`event`]: [`Event`] and [`ConnectionStatus`]; `summary`: [`SyncSummary`].
//! - `error`: [`SyncError`], and which failures a one-shot sync tries again after.
//! - `session`: one connected session (the rounds, `session::incoming` for what the relay
//!   sends, `session::images` for images).
//! - `query`: one-off questions (a name, who is online, a follow graph).
//! - `profile_watch`: what wakes a session besides the relay (local edits, commits by
//!   other processes on the profile).
//! - this module: [`SyncEngine`] and the reconnect policy (one-shot retries, backoff).
//!
//! A session ends a round when the relay answers a `Ping` sent after everything else: the
//! relay handles a connection's messages in order, so by then every answer is in. A round
//! that sent nothing new means both sides hold the same documents.

mod error;
pub mod event;
pub mod link;
mod profile_watch;
mod query;
mod session;
mod summary;
pub mod tls;

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use tokio::sync::{broadcast, mpsc};

pub use error::SyncError;
pub use event::{ConnectionStatus, Event, RefusedBy};
pub use link::Link;
pub use summary::SyncSummary;
pub use tls::TlsProblem;

use error::{crashed, retry_one_shot};
use query::Query;
use session::{Mode, Session};

use crate::Replica;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;

/// How many times a one-shot sync connects before giving up, when the connection is lost
/// (or cut by the relay) after it was made.
const ONE_SHOT_ATTEMPTS: u32 = 4;
/// How long to wait before asking again for images the relay did not have.
const BLOB_RETRY: Duration = Duration::from_secs(5);

/// The sync engine of one profile.
///
/// While [`SyncEngine::run`] is going, one-off questions ([`SyncEngine::lookup_name`],
/// [`SyncEngine::online`]) travel over its connection: an engine never opens a second
/// connection of its own, which the relay would take as this client reconnecting and close
/// the first (the desktop twin of the seed's duplicate-socket bug). Without a running
/// session (the CLI's one-shot commands) they open a short connection of their own.
///
/// Each engine is its own running client of the profile's device (`hello.instance`, drawn
/// at random in [`SyncEngine::new`]): a one-shot command in another process, beside a
/// running app or `watch` on the same profile, connects side by side with it and replaces
/// nothing. They share the profile's database (SQLite, one write transaction at a time)
/// and the relay's inbox position of the device, which says how far that database holds
/// the inbox; notifications come from the documents as they are stored, whichever
/// process stores them.
pub struct SyncEngine {
    replica: Arc<Mutex<Replica>>,
    url: String,
    /// Which running client of the device this engine is (`hello.instance`): drawn at
    /// random once, kept across reconnects, so a one-shot command beside a running app or
    /// `watch` on the same profile never replaces its connection, while a reconnect of
    /// this engine replaces its own ghost.
    instance: u64,
    /// An extra trusted root (PEM) given for this engine; otherwise the profile's saved
    /// one ([`Replica::relay_ca`]).
    extra_root: Option<String>,
    events: broadcast::Sender<Event>,
    live: Mutex<Live>,
}

/// Whether `run` is going, and the way into its current session if connected.
#[derive(Default)]
struct Live {
    running: bool,
    queries: Option<mpsc::UnboundedSender<Query>>,
    /// The newest notification row shown as an event (see
    /// [`Replica::notifications_stored_after`]): kept across reconnects, so those another
    /// process on the profile stored meanwhile are shown once.
    notes_seen: i64,
}

impl SyncEngine {
    /// An engine syncing `replica` with the relay at `url`.
    pub fn new(replica: Arc<Mutex<Replica>>, url: impl Into<String>) -> Self {
        let (events, _) = broadcast::channel(1024);
        // From the profile's randomness (deterministic in tests), like every other id.
        let instance = u64::from_le_bytes(
            replica
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .random_bytes(),
        );
        Self {
            replica,
            url: url.into(),
            instance,
            extra_root: None,
            events,
            live: Mutex::new(Live::default()),
        }
    }

    /// Also trusts `pem` (a CA certificate) for a `wss://` relay's certificate, instead of
    /// the root saved in the profile (a front end saves it once the relay answered:
    /// [`SyncEngine::extra_root`]).
    #[must_use]
    pub fn with_extra_root(mut self, pem: impl Into<String>) -> Self {
        self.extra_root = Some(pem.into());
        self
    }

    /// The extra trusted root given with [`SyncEngine::with_extra_root`], if any.
    pub fn extra_root(&self) -> Option<&str> {
        self.extra_root.as_deref()
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives the replica back.
    pub fn into_replica(self) -> Arc<Mutex<Replica>> {
        self.replica
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The profile this engine syncs, locked (hold it briefly: the engine waits for it).
    pub fn replica(&self) -> MutexGuard<'_, Replica> {
        self.replica.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    async fn connect(&self) -> Result<Link, SyncError> {
        let (identity, device, saved_root) = {
            let r = self.replica();
            (r.identity().clone(), r.device(), r.relay_ca()?)
        };
        let root = self.extra_root.clone().or(saved_root);
        Link::connect_as(
            &self.url,
            &identity,
            &device,
            Some(self.instance),
            root.as_deref(),
        )
        .await
    }

    /// Connects, syncs until both sides hold the same documents, and disconnects. A
    /// connection lost (or cut by the relay) once made is tried again with backoff, up to
    /// [`ONE_SHOT_ATTEMPTS`] times in all, then [`SyncError::GaveUp`]; a relay that cannot
    /// be reached at all fails at once ([`SyncError::Unreachable`]).
    pub async fn sync_once(&self) -> Result<SyncSummary, SyncError> {
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(250))
            .with_max_delay(Duration::from_secs(4))
            .with_jitter()
            .without_max_times()
            .build();
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.sync_one_try().await {
                Err(e) if retry_one_shot(&e) => {
                    if attempts >= ONE_SHOT_ATTEMPTS {
                        return Err(SyncError::GaveUp {
                            url: self.url.clone(),
                            attempts,
                            last: Box::new(e),
                        });
                    }
                    let delay = backoff.next().unwrap_or(Duration::from_secs(4));
                    tracing::info!(error = %e, ?delay, attempts, "sync interrupted; trying again");
                    tokio::time::sleep(delay).await;
                }
                result => return result,
            }
        }
    }

    async fn sync_one_try(&self) -> Result<SyncSummary, SyncError> {
        let once = async {
            let link = self.connect().await?;
            let mut session = Session::new(self, link);
            session.start().await?;
            session
                .run(Mode::UntilSettled, std::future::pending())
                .await?;
            session.finish().await
        };
        AssertUnwindSafe(once)
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(crashed(panic.as_ref())))
    }

    /// Stays connected until `shutdown`, reconnecting by itself with exponential backoff
    /// and jitter. Returns early only for errors that retrying cannot fix.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<(), SyncError> {
        tokio::pin!(shutdown);
        let notes_seen = self.replica().last_notification_row()?;
        {
            let mut live = self.live();
            live.running = true;
            live.notes_seen = notes_seen;
        }
        let result = self.run_sessions(&mut shutdown).await;
        *self.live() = Live::default();
        result
    }

    async fn run_sessions(
        &self,
        mut shutdown: impl Future<Output = ()> + Unpin,
    ) -> Result<(), SyncError> {
        let new_backoff = || {
            backon::ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(250))
                .with_max_delay(Duration::from_secs(30))
                .with_jitter()
                .without_max_times()
                .build()
        };
        let mut backoff = new_backoff();
        loop {
            let waiting = self.replica().changes_waiting()?;
            self.emit(Event::Connection {
                status: ConnectionStatus::Connecting,
                waiting,
                reason: None,
            });
            let started = Instant::now();
            let session = async {
                let link = self.connect().await?;
                let mut session = Session::new(self, link);
                // Before the start: an edit made while it offers is sent right after.
                session.watch_profile()?;
                session.start().await?;
                let (queries, incoming) = mpsc::unbounded_channel();
                session.queries = Some(incoming);
                self.live().queries = Some(queries);
                let waiting = self.replica().changes_waiting()?;
                self.emit(Event::Connection {
                    status: ConnectionStatus::Online,
                    waiting,
                    reason: None,
                });
                session.run(Mode::Forever, &mut shutdown).await?;
                session.link.close().await;
                Ok::<(), SyncError>(())
            };
            // A panic inside a session (Automerge on input the checks did not foresee) ends
            // that session, not the engine: it reconnects like after a lost connection.
            let result = match AssertUnwindSafe(session).catch_unwind().await {
                Ok(result) => result,
                Err(panic) => Err(crashed(panic.as_ref())),
            };
            // Questions asked from now on wait for the next connection's answer no more.
            self.live().queries = None;
            let waiting = self.replica().changes_waiting()?;
            match result {
                Ok(()) => {
                    self.emit(Event::Connection {
                        status: ConnectionStatus::Offline,
                        waiting,
                        reason: None,
                    });
                    return Ok(());
                }
                Err(e) if e.is_transient() => {
                    self.emit(Event::Connection {
                        status: ConnectionStatus::Offline,
                        waiting,
                        reason: Some(e.to_string()),
                    });
                    if started.elapsed() > Duration::from_secs(30) {
                        backoff = new_backoff();
                    }
                    let delay = backoff.next().unwrap_or(Duration::from_secs(30));
                    tracing::info!(error = %e, ?delay, "relay connection lost; retrying");
                    self.emit(Event::Connection {
                        status: ConnectionStatus::Reconnecting,
                        waiting,
                        reason: None,
                    });
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = &mut shutdown => return Ok(()),
                    }
                }
                Err(e) => {
                    self.emit(Event::Connection {
                        status: ConnectionStatus::Offline,
                        waiting,
                        reason: Some(e.to_string()),
                    });
                    return Err(e);
                }
            }
        }
    }
}
