//! The client side of sync: one connection to a relay per running client, which
//! reconnects by itself (to the next relay of its [`RelayList`] at once; with exponential
//! backoff and jitter once every relay failed), resumes every document from its
//! saved Automerge sync state, asks for what the user needs (own documents, followed users,
//! the threads of their posts), pushes local edits, and reports what happens as [`Event`]s.
//!
//! # Layout
//!
//! - [`link`]: one authenticated WebSocket; [`tls`]: `wss://` trust and its errors.
//! - [`relay_list`]: [`RelayList`], the relays to sync through; `rotation`: which of them
//!   to try next, and when.
//! - [`event`]: [`Event`] and [`ConnectionStatus`]; `summary`: [`SyncSummary`].
//! - `error`: [`SyncError`], and which failures a one-shot sync tries again after.
//! - `session`: one connected session (the rounds, `session::incoming` for what the relay
//!   sends, `session::images` for images).
//! - `query`: one-off questions (a name, who is online, a follow graph).
//! - `profile_watch`: what wakes a session besides the relay (local edits, commits by
//!   other processes on the profile).
//! - `one_shot`: a one-shot sync and a connection of its own for a one-off question,
//!   each trying every relay of the list.
//! - this module: [`SyncEngine`] and its reconnects.
//!
//! A relay list serves one community from several relay nodes sharing one store: moving
//! from one to another loses and repeats nothing, as the inbox position is the device's
//! in the shared store, and notifications come from the documents as this profile stores
//! them (a change already here raises nothing again).
//!
//! A session ends a round when the relay answers a `Ping` sent after everything else: the
//! relay handles a connection's messages in order, so by then every answer is in. A round
//! that sent nothing new means both sides hold the same documents.

mod error;
pub mod event;
pub mod link;
mod one_shot;
mod profile_watch;
mod query;
pub mod relay_list;
mod rotation;
mod session;
mod summary;
pub mod tls;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

pub use error::SyncError;
pub use event::{ConnectionStatus, Event, RefusedBy};
pub use link::Link;
pub use relay_list::{RelayList, RelayListError};
pub use summary::SyncSummary;
pub use tls::TlsProblem;

use error::crashed;
use query::Query;
use rotation::Rotation;
use session::{Mode, Session};

use crate::{Error, Replica};
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;

/// How many rounds (each relay of the list once) a one-shot sync makes before giving up,
/// when a connection is lost (or cut by the relay) after it was made.
const ONE_SHOT_ATTEMPTS: u32 = 4;
/// The longest wait between two rounds of a running engine.
const MAX_DELAY: Duration = Duration::from_secs(30);
/// The longest wait between two rounds of a one-shot sync.
const ONE_SHOT_MAX_DELAY: Duration = Duration::from_secs(4);
/// A connection that lasted this long starts the backoff over.
const LASTED: Duration = Duration::from_secs(30);
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
    relays: RelayList,
    /// The index in `relays` of the last relay that answered: where each round starts.
    good: AtomicUsize,
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
    /// Notifications this engine raised after `notes_seen`: kept across reconnects too, so
    /// that one raised by a session that then lost its connection (before it moved
    /// `notes_seen` past it) is not raised again by the next session.
    emitted: std::collections::HashSet<String>,
}

impl SyncEngine {
    /// An engine syncing `replica` with the one relay at `url` (not checked here: a bad
    /// address fails when connecting, [`SyncError::Unreachable`]).
    pub fn new(replica: Arc<Mutex<Replica>>, url: impl Into<String>) -> Self {
        Self::with_relays(replica, RelayList::one(url))
    }

    /// An engine syncing `replica` through `relays`: the first (then the last that
    /// answered) is dialled; the next is tried when it cannot be reached, refuses, or the
    /// connection is lost.
    pub fn with_relays(replica: Arc<Mutex<Replica>>, relays: RelayList) -> Self {
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
            relays,
            good: AtomicUsize::new(0),
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

    /// The relays this engine syncs through.
    pub fn relays(&self) -> &RelayList {
        &self.relays
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

    /// A walk through the relay list from the last relay that answered, waiting at most
    /// `max_delay` between rounds; its jitter is seeded with the instance (drawn from the
    /// profile's randomness).
    fn rotation(&self, max_delay: Duration) -> Rotation {
        let good = self.good.load(Ordering::Relaxed);
        Rotation::new(self.relays.len(), good, max_delay, self.instance)
    }

    /// The relay `rotation` is at answered: rounds start there from now on.
    fn answered(&self, rotation: &mut Rotation) {
        rotation.connected();
        self.good.store(rotation.current(), Ordering::Relaxed);
    }

    /// Connects to the relay at `url`.
    async fn connect_to(&self, url: &str) -> Result<Link, SyncError> {
        let (identity, device, saved_root) = {
            let r = self.replica();
            (r.identity().clone(), r.device(), r.relay_ca()?)
        };
        let root = self.extra_root.clone().or(saved_root);
        Link::connect_as(
            url,
            &identity,
            &device,
            Some(self.instance),
            root.as_deref(),
        )
        .await
    }

    /// Stays connected until `shutdown`. When the relay cannot be reached, refuses, or the
    /// connection is lost, the next relay of the list is tried at once; once every relay
    /// of a round failed, the engine waits (exponential backoff with jitter) and starts
    /// the next round from the last relay that answered. Returns early only for errors
    /// that retrying cannot fix: local ones, a single relay's refusal, or a round in which
    /// every relay refused.
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

    /// The connection event for `status` of `relay`, with the changes waiting.
    fn status(
        &self,
        status: ConnectionStatus,
        reason: Option<String>,
        relay: &str,
    ) -> Result<Event, SyncError> {
        Ok(Event::Connection {
            status,
            waiting: self.replica().changes_waiting()?,
            reason,
            relay: Some(relay.to_owned()),
        })
    }

    async fn run_sessions(
        &self,
        mut shutdown: impl Future<Output = ()> + Unpin,
    ) -> Result<(), SyncError> {
        let mut rotation = self.rotation(MAX_DELAY);
        // This round's failures: a round of only those retrying cannot fix ends the run.
        let mut failures: Vec<(String, SyncError)> = Vec::new();
        // How long to wait after a session the profile's disk could not store (doubling).
        let mut disk_wait = Duration::ZERO;
        loop {
            let url = self.relays.get(rotation.current()).to_owned();
            self.emit(self.status(ConnectionStatus::Connecting, None, &url)?);
            let started = Instant::now();
            let session = async {
                let link = self.connect_to(&url).await?;
                let mut session = Session::new(self, link);
                // Before the start: an edit made while it offers is sent right after.
                session.watch_profile()?;
                session.start().await?;
                self.answered(&mut rotation);
                failures.clear();
                let (queries, incoming) = mpsc::unbounded_channel();
                session.queries = Some(incoming);
                self.live().queries = Some(queries);
                self.emit(self.status(ConnectionStatus::Online, None, &url)?);
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
            let e = match result {
                Ok(()) => {
                    self.emit(self.status(ConnectionStatus::Offline, None, &url)?);
                    return Ok(());
                }
                Err(e) => e,
            };
            self.emit(self.status(ConnectionStatus::Offline, Some(e.to_string()), &url)?);
            // A local failure ends the run, unless waiting can help (a full disk).
            if (matches!(e, SyncError::Local(_)) && !e.is_transient())
                || (!e.is_transient() && self.relays.len() == 1)
            {
                return Err(e);
            }
            if matches!(e, SyncError::Local(Error::Disk { .. })) {
                // No relay can help a full disk, and every try downloads what cannot be
                // stored: the same relay, after a wait that grows (not the next relay at
                // once: each answers, which would reset the rotation's backoff).
                disk_wait = (disk_wait * 2).clamp(Duration::from_secs(1), MAX_DELAY);
                tracing::warn!(wait = ?disk_wait, error = %e, "the profile's disk cannot take what the relay sends; trying again later");
                self.emit(self.status(ConnectionStatus::Reconnecting, None, &url)?);
                tokio::select! {
                    () = tokio::time::sleep(disk_wait) => {}
                    () = &mut shutdown => return Ok(()),
                }
                continue;
            }
            disk_wait = Duration::ZERO;
            if started.elapsed() > LASTED {
                rotation.reset_backoff();
            }
            tracing::info!(relay = %url, error = %e, "relay connection failed or lost");
            failures.push((url, e));
            let delay = rotation.failed();
            let next = self.relays.get(rotation.current());
            if delay.is_some() && failures.iter().all(|(_, e)| !e.is_transient()) {
                return Err(Self::every_relay_failed(failures));
            }
            self.emit(self.status(ConnectionStatus::Reconnecting, None, next)?);
            if let Some(delay) = delay {
                failures.clear();
                tracing::info!(?delay, next, "no relay answered; retrying");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = &mut shutdown => return Ok(()),
                }
            }
        }
    }
}
