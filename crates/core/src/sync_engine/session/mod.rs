//! One connected session: the sync rounds, live pushes, local edits pushed as they are
//! made, images, and the end of a round.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;

use automerge::sync::State as SyncState;
use social_sync_protocol::{
    BlobHash, ClientMessage, DocId, FollowGraph, PresenceEntry, SyncItem, UserId,
};
use tokio::sync::{mpsc, oneshot};

mod images;
mod incoming;

use crate::sync_engine::profile_watch::{ProfileWatch, Wake};
use crate::sync_engine::query::Query;
use crate::sync_engine::{ConnectionStatus, Event, Link, SyncEngine, SyncError, SyncSummary};

/// One connected session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Return once both sides hold the same documents.
    UntilSettled,
    /// Keep going: push local edits, take live changes.
    Forever,
}

/// One connected session.
pub(super) struct Session<'a> {
    engine: &'a SyncEngine,
    pub(super) link: Link,
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
    pub(super) queries: Option<mpsc::UnboundedReceiver<Query>>,
    names_asked: VecDeque<oneshot::Sender<Option<UserId>>>,
    presence_asked: VecDeque<oneshot::Sender<Vec<PresenceEntry>>>,
    graphs_asked: VecDeque<oneshot::Sender<FollowGraph>>,
    /// While the inbox is being caught up: documents that received changes, of how many.
    catch_up: Option<(HashSet<DocId>, u64)>,
    /// Ids of the notifications this session emitted since the last look at those stored
    /// by other processes (not shown twice).
    /// Signatures of this profile's changes from before signatures were handed to the
    /// relay on this connection; once a round settles, they are known taken.
    signatures_sent: bool,
    /// Documents whose input from the relay this client refused on this connection: not
    /// offered again until the next one (the relay would only send the same again, and a
    /// round would never settle).
    refused_docs: HashSet<DocId>,
    /// Local edits and commits by other processes on the profile (a running engine only).
    profile: Option<ProfileWatch>,
    /// The highest inbox position acknowledged on this connection.
    acked: u64,
}

impl<'a> Session<'a> {
    pub(super) fn new(engine: &'a SyncEngine, link: Link) -> Self {
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
            signatures_sent: false,
            refused_docs: HashSet::new(),
            profile: None,
            acked: 0,
        }
    }

    /// From now on, a local edit or another process's commit on the profile wakes this
    /// session at once (see [`profile_watch`]).
    pub(super) fn watch_profile(&mut self) -> Result<(), SyncError> {
        let r = self.engine.replica();
        self.profile = Some(ProfileWatch::new(r.local_edits(), r.store().path()));
        Ok(())
    }

    /// Offers every stored document, every followed user's document and the threads of
    /// their posts and the user's own, uploads images the relay lacks, and pings.
    ///
    /// The threads are offered even when this profile never stored them (asked for while
    /// empty): reactions the relay took while the user did not follow their author (or
    /// while a push was lost) are in no inbox this device will be offered, since its
    /// position in the relay's news passed them.
    pub(super) async fn start(&mut self) -> Result<(), SyncError> {
        let docs = {
            let r = self.engine.replica();
            let mut docs: Vec<DocId> = r.documents()?;
            docs.push(DocId::User(r.user_id()));
            let following = r.following()?;
            docs.extend(following.iter().copied().map(DocId::User));
            for author in following.into_iter().chain([r.user_id()]) {
                docs.extend(r.threads_of(author)?);
            }
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

    async fn ping(&mut self) -> Result<(), SyncError> {
        let id = self.next_ping;
        self.next_ping += 1;
        self.awaiting_pong = Some(id);
        self.sent_since_ping = false;
        self.link.send(&ClientMessage::Ping { id }).await
    }

    /// Handles messages until settled (or forever), pushing local edits as they are made.
    pub(super) async fn run(
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
                        // Perhaps another process's commit: its notifications too (the watch
                        // looks once more a moment after the last change, see
                        // `profile_watch::RECHECKS`).
                        self.show_notifications_stored_elsewhere()?;
                    }
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
            let raised = self.engine.live().emitted.contains(&notification.id);
            if !raised {
                self.engine.emit(Event::Notification { notification });
            }
        }
        // Every notification this engine raised is stored at or before `last`: its one
        // session is one task, so none was raised between the query and here.
        let mut live = self.engine.live();
        live.emitted.clear();
        live.notes_seen = last;
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
                if self.states.contains_key(&user_doc) {
                    docs.extend(r.threads_never_asked(author)?);
                } else {
                    // Followed in this session (perhaps again): every thread of theirs this
                    // profile knows, since reactions made while it did not follow them
                    // reach it through no inbox.
                    docs.push(user_doc);
                    docs.extend(r.threads_of(author)?);
                }
            }
            docs
        };
        if !docs.is_empty() {
            self.offer(docs).await?;
        }
        self.ask_missing_blobs().await
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
            let confirmed = match &their_heads {
                Some(heads) => self.engine.replica().confirm_synced(&doc, heads)?,
                None => false,
            };
            if !confirmed {
                tracing::debug!(%doc, ?their_heads, state = self.states.contains_key(&doc), "a round ended with local changes the relay has not confirmed");
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
            relay: Some(self.link.url().to_owned()),
        });
        Ok(true)
    }

    pub(super) async fn finish(mut self) -> Result<SyncSummary, SyncError> {
        self.summary.waiting = self.engine.replica().changes_waiting()?;
        let summary = std::mem::take(&mut self.summary);
        self.link.close().await;
        Ok(summary)
    }
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
