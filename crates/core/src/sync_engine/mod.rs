//! The client side of sync: one connection to the relay per running client, which
//! reconnects by itself (exponential backoff with jitter), resumes every document from its
//! saved Automerge sync state, asks for what the user needs (own documents, followed users,
//! the threads of their posts), pushes local edits, and reports what happens as [`Event`]s.
//!
//! # Layout
//!
//! - [`link`]: one authenticated WebSocket.
//! - [`event`]: [`Event`] and [`ConnectionStatus`].
//! - `profile_watch`: what wakes a session besides the relay (local edits, commits by
//!   other processes on the profile).
//! - this module: [`SyncEngine`] and the session loop.
//!
//! A session ends a round when the relay answers a `Ping` sent after everything else: the
//! relay handles a connection's messages in order, so by then every answer is in. A round
//! that sent nothing new means both sides hold the same documents.

pub mod event;
pub mod link;
mod profile_watch;

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use automerge::sync::State as SyncState;
use backon::BackoffBuilder;
use serde::Serialize;
use serde_bytes::ByteBuf;
use social_sync_protocol::{
    BlobHash, ClientMessage, DocId, ErrorCode, FollowGraph, PresenceEntry, ServerMessage, SyncItem,
    UserId,
};
use tokio::sync::{broadcast, mpsc, oneshot};

pub use event::{ConnectionStatus, Event, RefusedBy};
pub use link::Link;

use crate::{Error, Replica};
use futures_util::FutureExt;
use profile_watch::{ProfileWatch, Wake};
use std::panic::AssertUnwindSafe;

/// Why syncing failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// No relay address is set.
    #[error(
        "no relay is set for this profile: give it a relay address (ws://HOST:PORT or wss://HOST)"
    )]
    NoRelay,
    /// The relay could not be reached.
    #[error(
        "cannot reach the relay at {url} ({detail}): check the address and that the relay runs"
    )]
    Unreachable {
        /// The address.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The connection broke (a running engine reconnects by itself; a one-shot sync tries
    /// again a few times, then fails with [`SyncError::GaveUp`]).
    #[error("the connection to the relay was lost ({0})")]
    Lost(String),
    /// A one-shot sync lost its connection (or was cut by the relay) on every try.
    #[error(
        "syncing with {url} failed {attempts} times in a row, the last time because {last}: check that the relay runs, then sync again"
    )]
    GaveUp {
        /// The relay's address.
        url: String,
        /// How many times it was tried.
        attempts: u32,
        /// Why the last try failed.
        last: Box<SyncError>,
    },
    /// The relay sent something this client does not understand.
    #[error(
        "the relay sent something unexpected ({0}): the relay and this client may be of different versions"
    )]
    Protocol(String),
    /// The relay ended the connection with an error.
    #[error("the relay refused this client ({}): {message}", code.as_str())]
    Refused {
        /// Why.
        code: ErrorCode,
        /// The relay's sentence.
        message: String,
    },
    /// A request for the relay was made while the running engine is between connections.
    #[error("not connected to the relay right now ({url}); it is retrying, try again in a moment")]
    NotConnected {
        /// The relay's address.
        url: String,
    },
    /// A local failure.
    #[error(transparent)]
    Local(#[from] Error),
    /// The session panicked (hostile input that got past the checks, or a bug); the
    /// engine drops the connection and starts a new one.
    #[error("the sync session failed unexpectedly ({0}); it restarts by itself")]
    Crashed(String),
}

impl SyncError {
    /// Whether trying again later can help.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Lost(_) => true,
            Self::Refused { code, .. } => matches!(
                code,
                ErrorCode::ShuttingDown
                    | ErrorCode::SlowReader
                    | ErrorCode::TooManyConnections
                    | ErrorCode::Internal
                    // Another connection of this running client took over (a ghost of a
                    // reconnect, or a relay that predates `hello.instance` and replaces any
                    // second connection of the device): connect again.
                    | ErrorCode::Replaced
            ),
            Self::NotConnected { .. } | Self::Crashed(_) | Self::GaveUp { .. } => true,
            _ => false,
        }
    }
}

/// A one-off question for the relay, asked over the running session's connection.
enum Query {
    LookupName {
        name: String,
        reply: oneshot::Sender<Option<UserId>>,
    },
    Presence {
        users: Vec<UserId>,
        reply: oneshot::Sender<Vec<PresenceEntry>>,
    },
    FollowGraph {
        user: UserId,
        reply: oneshot::Sender<FollowGraph>,
    },
}

/// How long a one-off question waits for its answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(15);
/// How many times a one-shot sync connects before giving up, when the connection is lost
/// (or cut by the relay) after it was made.
const ONE_SHOT_ATTEMPTS: u32 = 4;
/// How long after the profile's files last changed the session looks at it once more (see
/// `Session::run`).
const LOOK_AGAIN: Duration = Duration::from_millis(100);
/// How long to wait before asking again for images the relay did not have.
const BLOB_RETRY: Duration = Duration::from_secs(5);

/// What one `sync` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncSummary {
    /// Documents offered to the relay.
    pub documents: usize,
    /// Changes received and applied.
    pub received: usize,
    /// Local changes the relay still lacks (0 after a complete sync).
    pub waiting: u64,
    /// Images uploaded and downloaded.
    pub images: usize,
    /// New notifications.
    pub notifications: Vec<crate::Notification>,
    /// What the relay refused meanwhile, one sentence each with its code first (e.g.
    /// `name_taken: ...` when the display name set is another user's).
    pub refusals: Vec<String>,
    /// Local likes and comments that were not delivered because the post's author deleted
    /// the post before they were sent (see [`crate::store::deletes`]).
    pub undelivered: Vec<crate::Undelivered>,
}

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
            events,
            live: Mutex::new(Live::default()),
        }
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks over the running session, if `run` is going; `None` when it is not.
    async fn ask<T>(
        &self,
        query: impl FnOnce(oneshot::Sender<T>) -> Query,
    ) -> Option<Result<T, SyncError>> {
        let not_connected = || SyncError::NotConnected {
            url: self.url.clone(),
        };
        let (reply, answer) = oneshot::channel();
        {
            let live = self.live();
            if !live.running {
                return None;
            }
            let sent = live
                .queries
                .as_ref()
                .is_some_and(|q| q.send(query(reply)).is_ok());
            if !sent {
                return Some(Err(not_connected()));
            }
        }
        Some(match tokio::time::timeout(QUERY_TIMEOUT, answer).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) | Err(_) => Err(not_connected()),
        })
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
        let (identity, device) = {
            let r = self.replica();
            (r.identity().clone(), r.device())
        };
        Link::connect_as(&self.url, &identity, &device, Some(self.instance)).await
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

    /// Asks the relay who has the display name `name`.
    pub async fn lookup_name(&self, name: &str) -> Result<Option<UserId>, SyncError> {
        if let Some(answer) = self
            .ask(|reply| Query::LookupName {
                name: name.to_owned(),
                reply,
            })
            .await
        {
            return answer;
        }
        let mut link = self.connect().await?;
        link.send(&ClientMessage::LookupName {
            name: name.to_owned(),
        })
        .await?;
        loop {
            if let ServerMessage::Name { user, .. } = link.recv().await? {
                link.close().await;
                return Ok(user);
            }
        }
    }

    /// `user`'s followers and follows as the relay knows them (the same for everyone
    /// online; the profile's own index knows only the documents it holds).
    pub async fn follow_graph(&self, user: UserId) -> Result<FollowGraph, SyncError> {
        if let Some(answer) = self.ask(|reply| Query::FollowGraph { user, reply }).await {
            return answer;
        }
        let mut link = self.connect().await?;
        link.send(&ClientMessage::FollowGraph { user }).await?;
        loop {
            if let ServerMessage::FollowGraph { graph } = link.recv().await? {
                link.close().await;
                return Ok(graph);
            }
        }
    }

    /// Which of the users the local user follows are online now.
    pub async fn online(&self) -> Result<Vec<PresenceEntry>, SyncError> {
        let users = self.replica().following()?;
        if let Some(answer) = self
            .ask(|reply| Query::Presence {
                users: users.clone(),
                reply,
            })
            .await
        {
            return answer;
        }
        let mut link = self.connect().await?;
        link.send(&ClientMessage::Presence { users }).await?;
        loop {
            if let ServerMessage::Presence { online } = link.recv().await? {
                link.close().await;
                return Ok(online);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Return once both sides hold the same documents.
    UntilSettled,
    /// Keep going: push local edits, take live changes.
    Forever,
}

/// One connected session.
struct Session<'a> {
    engine: &'a SyncEngine,
    link: Link,
    states: HashMap<DocId, SyncState>,
    next_ping: u64,
    awaiting_pong: Option<u64>,
    sent_since_ping: bool,
    inbox_seq: Option<u64>,
    max_seq: u64,
    asked_blobs: HashSet<BlobHash>,
    /// Images asked for on this connection and not received yet: the only ones stored when
    /// they arrive (a relay cannot push images nobody asked for).
    wanted_blobs: HashSet<BlobHash>,
    /// Images sent to the relay and not confirmed yet.
    uploading: HashSet<BlobHash>,
    /// When to ask again for images the relay did not have (their author has not uploaded
    /// them yet).
    blobs_retry: Option<tokio::time::Instant>,
    summary: SyncSummary,
    /// One-off questions from [`SyncEngine::ask`], and who waits for the answers (the
    /// relay answers a connection's messages in order).
    queries: Option<mpsc::UnboundedReceiver<Query>>,
    names_asked: VecDeque<oneshot::Sender<Option<UserId>>>,
    presence_asked: VecDeque<oneshot::Sender<Vec<PresenceEntry>>>,
    graphs_asked: VecDeque<oneshot::Sender<FollowGraph>>,
    /// While the inbox is being caught up: documents that received changes, of how many.
    catch_up: Option<(HashSet<DocId>, u64)>,
    /// Ids of the notifications this session emitted since the last look at those stored
    /// by other processes (not shown twice).
    emitted_notes: HashSet<String>,
    /// Signatures of this profile's changes from before signatures were handed to the
    /// relay on this connection; once a round settles, they are known taken.
    signatures_sent: bool,
    /// Documents whose input from the relay this client refused on this connection: not
    /// offered again until the next one (the relay would only send the same again, and a
    /// round would never settle).
    refused_docs: HashSet<DocId>,
    /// Local edits and commits by other processes on the profile (a running engine only).
    profile: Option<ProfileWatch>,
    /// When to look at the profile once more after its files changed.
    look_again: Option<tokio::time::Instant>,
    /// The highest inbox position acknowledged on this connection.
    acked: u64,
}

impl<'a> Session<'a> {
    fn new(engine: &'a SyncEngine, link: Link) -> Self {
        Self {
            engine,
            link,
            states: HashMap::new(),
            next_ping: 1,
            awaiting_pong: None,
            sent_since_ping: false,
            inbox_seq: None,
            max_seq: 0,
            asked_blobs: HashSet::new(),
            wanted_blobs: HashSet::new(),
            uploading: HashSet::new(),
            blobs_retry: None,
            summary: SyncSummary::default(),
            queries: None,
            names_asked: VecDeque::new(),
            presence_asked: VecDeque::new(),
            graphs_asked: VecDeque::new(),
            catch_up: None,
            emitted_notes: HashSet::new(),
            signatures_sent: false,
            refused_docs: HashSet::new(),
            profile: None,
            look_again: None,
            acked: 0,
        }
    }

    /// From now on, a local edit or another process's commit on the profile wakes this
    /// session at once (see [`profile_watch`]).
    fn watch_profile(&mut self) -> Result<(), SyncError> {
        let r = self.engine.replica();
        self.profile = Some(ProfileWatch::new(r.local_edits(), r.store().path()));
        Ok(())
    }

    /// Offers every stored document and every followed user's document, uploads images
    /// the relay lacks, and pings.
    async fn start(&mut self) -> Result<(), SyncError> {
        let docs = {
            let r = self.engine.replica();
            let mut docs: Vec<DocId> = r.documents()?;
            docs.push(DocId::User(r.user_id()));
            docs.extend(r.following()?.into_iter().map(DocId::User));
            docs.sort();
            docs.dedup();
            docs
        };
        self.summary.documents = docs.len();
        self.publish_signatures().await?;
        self.offer(docs).await?;
        self.ping().await
    }

    /// Hands the relay the signatures of this profile's changes made before signatures
    /// (see `Replica::sign_own_changes`), once.
    async fn publish_signatures(&mut self) -> Result<(), SyncError> {
        let batches = self.engine.replica().signatures_to_publish()?;
        if batches.is_empty() {
            return Ok(());
        }
        for (doc, signatures) in batches {
            self.link
                .send(&ClientMessage::Signatures { doc, signatures })
                .await?;
        }
        self.signatures_sent = true;
        self.sent_since_ping = true;
        Ok(())
    }

    /// Sends sync messages for `docs` (those with something to say), batched.
    async fn offer(&mut self, mut docs: Vec<DocId>) -> Result<(), SyncError> {
        docs.retain(|d| !self.refused_docs.contains(d));
        let (items, names_images) = {
            let mut r = self.engine.replica();
            let names_images = docs.contains(&DocId::User(r.user_id()));
            let mut items = Vec::new();
            for doc in docs {
                let state = match self.states.remove(&doc) {
                    Some(s) => s,
                    None => r.sync_state(&doc)?,
                };
                let mut state = state;
                if let Some(item) = r.generate_sync_message(&doc, &mut state)? {
                    r.save_sync_state(&doc, &state)?;
                    items.push(item);
                }
                self.states.insert(doc, state);
            }
            (items, names_images)
        };
        if names_images {
            // An image is stored with the edit that names it, so every image these messages
            // name is in the cache now. It goes first: the relay then holds it before a
            // follower sees the post and asks for it.
            self.upload_blobs().await?;
        }
        self.send_items(items).await
    }

    async fn send_items(&mut self, items: Vec<SyncItem>) -> Result<(), SyncError> {
        if items.is_empty() {
            return Ok(());
        }
        // Stay well under the relay's frame limit.
        let budget = (self.link.limits.max_message_bytes as usize / 2).max(64 * 1024);
        let mut batch = Vec::new();
        let mut size = 0;
        for item in items {
            size += item.message.len() + 128;
            batch.push(item);
            if size >= budget || batch.len() >= 256 {
                self.link
                    .send(&ClientMessage::Sync {
                        items: std::mem::take(&mut batch),
                    })
                    .await?;
                size = 0;
            }
        }
        if !batch.is_empty() {
            self.link
                .send(&ClientMessage::Sync { items: batch })
                .await?;
        }
        self.sent_since_ping = true;
        Ok(())
    }

    async fn upload_blobs(&mut self) -> Result<(), SyncError> {
        let hashes = self.engine.replica().blobs_to_upload()?;
        for hash in hashes {
            if !self.uploading.insert(hash) {
                continue; // sent; the relay's BlobStored is on its way
            }
            let blob = self.engine.replica().blob(&hash)?;
            if let Some(blob) = blob {
                self.link
                    .send(&ClientMessage::PutBlob {
                        hash,
                        mime: blob.mime,
                        bytes: ByteBuf::from(blob.bytes),
                    })
                    .await?;
                self.sent_since_ping = true;
            }
        }
        Ok(())
    }

    async fn ping(&mut self) -> Result<(), SyncError> {
        let id = self.next_ping;
        self.next_ping += 1;
        self.awaiting_pong = Some(id);
        self.sent_since_ping = false;
        self.link.send(&ClientMessage::Ping { id }).await
    }

    /// Handles messages until settled (or forever), pushing local edits as they are made.
    async fn run(
        &mut self,
        mode: Mode,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), SyncError> {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                message = self.link.recv() => {
                    if self.handle(message?).await? && mode == Mode::UntilSettled {
                        return Ok(());
                    }
                }
                wake = next_wake(&mut self.profile) => {
                    self.send_outbox().await?;
                    if wake == Wake::FilesChanged {
                        // Perhaps another process's commit: its notifications too. The log
                        // is written before the commit shows in SQLite's shared index
                        // (which gives no file event), so look once more a moment after
                        // the last change.
                        self.show_notifications_stored_elsewhere()?;
                        self.look_again = Some(tokio::time::Instant::now() + LOOK_AGAIN);
                    }
                }
                () = until(self.look_again) => {
                    self.look_again = None;
                    self.send_outbox().await?;
                    self.show_notifications_stored_elsewhere()?;
                }
                () = until(self.blobs_retry), if mode == Mode::Forever => {
                    self.blobs_retry = None;
                    self.ask_missing_blobs().await?;
                }
                Some(query) = next_query(&mut self.queries) => self.ask(query).await?,
                () = &mut shutdown => return Ok(()),
            }
        }
    }

    /// Offers the documents with local changes the relay has not confirmed yet.
    async fn send_outbox(&mut self) -> Result<(), SyncError> {
        let pending: Vec<DocId> = self
            .engine
            .replica()
            .outbox()?
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        if !pending.is_empty() {
            self.offer(pending).await?;
            // A follow made while connected: fetch that user's posts now.
            self.after_user_doc_changed().await?;
            if self.awaiting_pong.is_none() {
                self.ping().await?;
            }
        }
        Ok(())
    }

    /// Emits the notifications another process on the profile stored (a one-shot `sync`
    /// beside this running client took the changes first: this session's merge of the
    /// same changes then applied nothing and raised nothing).
    fn show_notifications_stored_elsewhere(&mut self) -> Result<(), SyncError> {
        let seen = self.engine.live().notes_seen;
        let (notes, last) = self.engine.replica().notifications_stored_after(seen)?;
        for notification in notes {
            if !self.emitted_notes.contains(&notification.id) {
                self.engine.emit(Event::Notification { notification });
            }
        }
        // Every notification this session raised is stored at or before `last`: the
        // session is one task, so none was raised between the query and here.
        self.emitted_notes.clear();
        self.engine.live().notes_seen = last;
        Ok(())
    }

    async fn ask(&mut self, query: Query) -> Result<(), SyncError> {
        match query {
            Query::LookupName { name, reply } => {
                self.names_asked.push_back(reply);
                self.link.send(&ClientMessage::LookupName { name }).await
            }
            Query::Presence { users, reply } => {
                self.presence_asked.push_back(reply);
                self.link.send(&ClientMessage::Presence { users }).await
            }
            Query::FollowGraph { user, reply } => {
                self.graphs_asked.push_back(reply);
                self.link.send(&ClientMessage::FollowGraph { user }).await
            }
        }
    }

    /// Handles one message; returns true when a round ends with nothing left to say.
    async fn handle(&mut self, message: ServerMessage) -> Result<bool, SyncError> {
        match message {
            ServerMessage::Sync { items } => self.receive(items).await?,
            ServerMessage::Changes {
                doc,
                changes,
                signatures,
                seq,
            } => {
                self.max_seq = self.max_seq.max(seq);
                let changes: Vec<Vec<u8>> = changes.into_iter().map(ByteBuf::into_vec).collect();
                let merged = self.engine.replica().merge(&doc, &changes, &signatures);
                match merged {
                    Ok(outcome) if outcome.waiting == 0 => {
                        // Applied in full and stored: the push was the whole job. No sync
                        // round for the document (it used to cost the relay about five
                        // messages per follower of every post); only its seq is
                        // acknowledged.
                        self.report(&doc, outcome);
                        self.acknowledge_push().await?;
                    }
                    Ok(outcome) => {
                        // A gap in its dependencies: fetched through sync.
                        self.report(&doc, outcome);
                        self.offer(vec![doc.clone()]).await?;
                        if self.awaiting_pong.is_none() {
                            self.ping().await?;
                        }
                    }
                    Err(e) => self.refused_from_relay(&doc, &e),
                }
                if doc == DocId::User(self.engine.replica().user_id()) {
                    // Perhaps a follow made on another device: fetch that user's posts.
                    self.after_user_doc_changed().await?;
                } else {
                    // The threads of new posts are not asked for here: every change to
                    // them comes to this device anyway (the relay routes a thread's
                    // changes to its author's followers), and the next round or
                    // connection asks. Their images are, at once.
                    self.ask_missing_blobs().await?;
                }
            }
            ServerMessage::InboxSent { seq, docs } => {
                self.inbox_seq = Some(seq);
                if docs > 0 {
                    self.catch_up = Some((HashSet::new(), u64::from(docs)));
                    self.engine.emit(Event::Progress {
                        done: 0,
                        total: u64::from(docs),
                    });
                }
            }
            ServerMessage::Pong { id } => {
                if self.awaiting_pong == Some(id) {
                    self.awaiting_pong = None;
                    if self.sent_since_ping {
                        self.ping().await?;
                    } else {
                        return self.settled().await;
                    }
                }
            }
            ServerMessage::PresenceChanged { user, online } => {
                self.engine.emit(Event::Presence { user, online });
            }
            ServerMessage::Presence { online } => {
                if let Some(reply) = self.presence_asked.pop_front() {
                    let _ = reply.send(online.clone());
                }
                for entry in online {
                    self.engine.emit(Event::Presence {
                        user: entry.user,
                        online: true,
                    });
                }
            }
            ServerMessage::Blob { hash, mime, bytes } => {
                if !self.wanted_blobs.remove(&hash) {
                    tracing::warn!(%hash, "the relay sent an image this client did not ask for; dropped");
                } else if !self.engine.replica().store_blob(&hash, &bytes)? {
                    tracing::warn!(%hash, %mime, size = bytes.len(), "the relay sent an image that is too large, not a PNG, JPEG, GIF or WebP, or not matching its hash; dropped");
                } else {
                    self.summary.images += 1;
                    self.engine.emit(Event::FeedChanged {
                        user: self.engine.replica().user_id(),
                    });
                }
            }
            ServerMessage::BlobStored { hash } => {
                self.uploading.remove(&hash);
                self.engine.replica().blob_uploaded(&hash)?;
                self.summary.images += 1;
            }
            ServerMessage::Rejected {
                code: ErrorCode::NotFound,
                doc: None,
                message,
            } => {
                // An image asked for that its author has not uploaded yet: not the user's
                // concern. Every missing image is asked for again a little later.
                tracing::info!("{message}; asking again in {} s", BLOB_RETRY.as_secs());
                self.asked_blobs.clear();
                self.blobs_retry = Some(tokio::time::Instant::now() + BLOB_RETRY);
            }
            ServerMessage::Rejected { code, doc, message } => {
                tracing::warn!(code = code.as_str(), ?doc, "the relay refused: {message}");
                if let Some(doc) = &doc {
                    // Start that document over from the saved state.
                    self.states.remove(doc);
                }
                self.summary
                    .refusals
                    .push(format!("{}: {message}", code.as_str()));
                self.engine.emit(Event::Rejected {
                    by: RefusedBy::Relay,
                    code,
                    doc,
                    message,
                });
            }
            ServerMessage::Name { user, .. } => {
                if let Some(reply) = self.names_asked.pop_front() {
                    let _ = reply.send(user);
                }
            }
            ServerMessage::FollowGraph { graph } => {
                if let Some(reply) = self.graphs_asked.pop_front() {
                    let _ = reply.send(graph);
                }
            }
            ServerMessage::Challenge { .. } | ServerMessage::Welcome { .. } => {}
            ServerMessage::Error { code, message } => {
                return Err(SyncError::Refused { code, message });
            }
        }
        if self.profile.is_some() && !self.emitted_notes.is_empty() {
            // Moves the engine's mark past the notifications just raised, so that none is
            // raised twice when another process's notifications are shown after a
            // reconnect (and shows any of those stored meanwhile).
            self.show_notifications_stored_elsewhere()?;
        }
        Ok(false)
    }

    /// A push applied in full is stored: acknowledges the inbox up to it, unless a round
    /// is under way (its end acknowledges everything, this push included, once the
    /// documents it brings are stored too).
    async fn acknowledge_push(&mut self) -> Result<(), SyncError> {
        if self.awaiting_pong.is_some() {
            return Ok(());
        }
        if let Some(seq) = self.inbox_seq {
            let seq = seq.max(self.max_seq);
            if seq > self.acked {
                self.acked = seq;
                self.link.send(&ClientMessage::InboxAck { seq }).await?;
            }
        }
        Ok(())
    }

    /// Applies sync messages and answers them.
    async fn receive(&mut self, items: Vec<SyncItem>) -> Result<(), SyncError> {
        let mut touched = Vec::new();
        let mut refused = Vec::new();
        {
            let mut r = self.engine.replica();
            for item in items {
                let mut state = match self.states.remove(&item.doc) {
                    Some(s) => s,
                    None => r.sync_state(&item.doc)?,
                };
                match r.receive_sync_message(&item.doc, &mut state, &item.message, &item.signatures)
                {
                    Ok(outcome) => {
                        self.report(&item.doc, outcome);
                        self.states.insert(item.doc.clone(), state);
                    }
                    Err(e) => {
                        self.states
                            .insert(item.doc.clone(), r.sync_state(&item.doc)?);
                        refused.push((item.doc.clone(), e));
                    }
                }
                touched.push(item.doc);
            }
        }
        for (doc, e) in refused {
            self.refused_from_relay(&doc, &e);
        }
        self.report_progress();
        self.offer(touched).await?;
        self.after_user_doc_changed().await
    }

    /// Asks for the documents of users followed since the session started, the threads of
    /// followed users' posts never asked for, and images missing from the local cache.
    async fn after_user_doc_changed(&mut self) -> Result<(), SyncError> {
        let docs = {
            let r = self.engine.replica();
            let mut docs = Vec::new();
            let mut authors = r.following()?;
            authors.push(r.user_id());
            for author in authors {
                let user_doc = DocId::User(author);
                if !self.states.contains_key(&user_doc) {
                    docs.push(user_doc);
                }
                docs.extend(r.threads_never_asked(author)?);
            }
            docs
        };
        if !docs.is_empty() {
            self.offer(docs).await?;
        }
        self.ask_missing_blobs().await
    }

    /// Asks the relay for the images missing from the local cache (each once a session,
    /// until the relay says it has not got one).
    async fn ask_missing_blobs(&mut self) -> Result<(), SyncError> {
        let missing = self.engine.replica().missing_blobs()?;
        for hash in missing {
            if self.asked_blobs.insert(hash) {
                self.wanted_blobs.insert(hash);
                self.link.send(&ClientMessage::GetBlob { hash }).await?;
                self.sent_since_ping = true;
            }
        }
        Ok(())
    }

    /// Tells how far the inbox catch-up is (documents that received changes, of the
    /// inbox's count; the round's end completes it).
    fn report_progress(&self) {
        if let Some((done, total)) = &self.catch_up {
            self.engine.emit(Event::Progress {
                done: (done.len() as u64).min(total.saturating_sub(1)),
                total: *total,
            });
        }
    }

    /// The relay sent changes this client refuses (unsigned, forged, altered, moved from
    /// another document, or against the write rules): nothing of them was kept, and the
    /// user hears of it as a `rejected` event with the code.
    fn refused_from_relay(&mut self, doc: &DocId, e: &crate::Error) {
        let code = match e {
            crate::Error::Unvetted(u) => u.code(),
            crate::Error::Forbidden(_) => ErrorCode::Forbidden,
            _ => ErrorCode::InvalidChange,
        };
        tracing::warn!(%doc, code = code.as_str(), error = %e, "refused changes from the relay; kept what was here");
        self.refused_docs.insert(doc.clone());
        let message = e.to_string();
        self.summary.refusals.push(format!(
            "{}: refused what the relay sent: {message}",
            code.as_str()
        ));
        self.engine.emit(Event::Rejected {
            by: RefusedBy::Client,
            code,
            doc: Some(doc.clone()),
            message,
        });
    }

    fn report(&mut self, doc: &DocId, outcome: crate::MergeOutcome) {
        if outcome.applied > 0 {
            if let Some((done, _)) = &mut self.catch_up {
                done.insert(doc.clone());
            }
            self.summary.received += outcome.applied;
            self.engine.emit(Event::changed(doc));
        }
        for notification in outcome.notifications {
            self.emitted_notes.insert(notification.id.clone());
            self.engine.emit(Event::Notification {
                notification: notification.clone(),
            });
            self.summary.notifications.push(notification);
        }
    }

    /// A round ended with nothing left to say: confirm what the relay holds, acknowledge
    /// the inbox. Returns true (settled).
    async fn settled(&mut self) -> Result<bool, SyncError> {
        if std::mem::take(&mut self.signatures_sent) {
            self.engine.replica().signatures_published()?;
        }
        // Reactions to posts deleted meanwhile leave the outbox, and the user is told.
        let undelivered = self.engine.replica().settle_deleted()?;
        for u in undelivered {
            self.engine.emit(Event::Undelivered {
                undelivered: u.clone(),
            });
            self.summary.undelivered.push(u);
        }
        let outbox = self.engine.replica().outbox()?;
        for (doc, _) in outbox {
            let their_heads = self.states.get(&doc).and_then(|s| s.their_heads.clone());
            if let Some(heads) = their_heads {
                self.engine.replica().confirm_synced(&doc, &heads)?;
            }
        }
        if let Some(seq) = self.inbox_seq {
            let seq = seq.max(self.max_seq);
            self.acked = self.acked.max(seq);
            self.link.send(&ClientMessage::InboxAck { seq }).await?;
        }
        if let Some((_, total)) = self.catch_up.take() {
            self.engine.emit(Event::Progress { done: total, total });
        }
        let waiting = self.engine.replica().changes_waiting()?;
        self.engine.emit(Event::Connection {
            status: ConnectionStatus::Online,
            waiting,
            reason: None,
        });
        Ok(true)
    }

    async fn finish(mut self) -> Result<SyncSummary, SyncError> {
        self.summary.waiting = self.engine.replica().changes_waiting()?;
        let summary = std::mem::take(&mut self.summary);
        self.link.close().await;
        Ok(summary)
    }
}

/// Whether a one-shot sync tries again after `e`: a connection that was made and then
/// lost or cut, not a relay that cannot be reached (the user is told at once) nor a
/// refusal that retrying cannot fix.
fn retry_one_shot(e: &SyncError) -> bool {
    e.is_transient() && !matches!(e, SyncError::Unreachable { .. } | SyncError::GaveUp { .. })
}

/// The error for a session that panicked, logged.
fn crashed(panic: &(dyn std::any::Any + Send)) -> SyncError {
    let detail = crate::model::vetting::panic_message(panic);
    tracing::error!("sync session panicked: {detail}");
    SyncError::Crashed(detail)
}

/// The next reason to look at the profile, or never when it is not watched (a one-shot
/// sync).
async fn next_wake(profile: &mut Option<ProfileWatch>) -> Wake {
    match profile {
        Some(p) => p.next().await,
        None => std::future::pending().await,
    }
}

/// Waits until `at`, or forever when there is no `at`.
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The next one-off question, or never when there is no channel (a one-shot sync).
async fn next_query(queries: &mut Option<mpsc::UnboundedReceiver<Query>>) -> Option<Query> {
    match queries {
        Some(q) => q.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_or_lost_connection_is_retried_an_unreachable_relay_is_told_at_once() {
        let replaced = SyncError::Refused {
            code: ErrorCode::Replaced,
            message: "x".into(),
        };
        assert!(replaced.is_transient(), "a replaced watch comes back");
        assert!(retry_one_shot(&replaced));
        assert!(retry_one_shot(&SyncError::Lost("Broken pipe".into())));
        let unreachable = SyncError::Unreachable {
            url: "ws://127.0.0.1:9".into(),
            detail: "refused".into(),
        };
        assert!(unreachable.is_transient() && !retry_one_shot(&unreachable));
        let gave_up = SyncError::GaveUp {
            url: "ws://relay".into(),
            attempts: ONE_SHOT_ATTEMPTS,
            last: Box::new(SyncError::Lost("Broken pipe".into())),
        };
        assert!(!retry_one_shot(&gave_up));
        let told = gave_up.to_string();
        assert!(!told.contains("will be retried"), "{told}");
        assert!(
            told.contains("4 times") && told.contains("Broken pipe"),
            "{told}"
        );
        let bad = SyncError::Refused {
            code: ErrorCode::BadSignature,
            message: "x".into(),
        };
        assert!(!retry_one_shot(&bad));
    }
}
