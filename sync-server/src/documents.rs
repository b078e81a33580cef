//! The relay's side of the Automerge sync protocol: documents held in a bounded cache over
//! the store, incoming changes checked against the write rules before anything is stored,
//! and the routing of what was accepted.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use automerge::sync::{State, SyncDoc};
use automerge::{AutoCommit, Change, ChangeHash};
use lru::LruCache;
use social_sync_model::rules::RuleViolation;
use social_sync_model::vetting::{self, ChangeSig, Unvetted};
use social_sync_model::{UserDoc, user_of_actor};
use social_sync_protocol::{ChangeSignature, DocId, ErrorCode, PostId, UserId};

use crate::names::NameRefused;
use crate::routing;
use crate::store::{Accepted, RelayStore, StoreError};

/// Why an incoming sync message was refused. Nothing of it is stored or forwarded.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Not a sync message, or changes that do not apply.
    #[error("the sync message for {doc} is invalid ({detail})")]
    Invalid {
        /// The document.
        doc: DocId,
        /// What Automerge said.
        detail: String,
    },
    /// A change made by another user than the connection's.
    #[error(
        "change {hash} in {doc} was made by {author}, not by you ({user}): a connection may only send its own user's changes"
    )]
    NotYours {
        /// The document.
        doc: DocId,
        /// The change.
        hash: String,
        /// Its author.
        author: String,
        /// The connection's user.
        user: UserId,
    },
    /// A change breaking the write rules.
    #[error("{0}")]
    Rule(#[from] RuleViolation),
    /// Input refused before it reached the document (chunk kind, sizes, empty changes,
    /// a contained panic).
    #[error("{0}")]
    Unvetted(Unvetted),
    /// Reactions to a post the relay has never seen.
    #[error(
        "{doc} holds reactions to post {post}, which this relay has never received: send the post first (sync its author's user document)"
    )]
    NoSuchPost {
        /// The thread document.
        doc: DocId,
        /// The post.
        post: PostId,
    },
    /// Too many changes that wait for dependencies nobody sent.
    #[error(
        "{count} changes for {doc} depend on changes the relay does not have; at most {max} may wait: send their dependencies in the same message"
    )]
    Orphans {
        /// The document.
        doc: DocId,
        /// How many.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Refusal {
    /// The wire code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unvetted(u) => u.code(),
            Self::Invalid { .. } | Self::Orphans { .. } => ErrorCode::InvalidChange,
            Self::NotYours { .. } | Self::Rule(_) => ErrorCode::Forbidden,
            Self::NoSuchPost { .. } => ErrorCode::NotFound,
            Self::Store(_) => ErrorCode::Internal,
        }
    }
}

impl From<Unvetted> for Refusal {
    fn from(e: Unvetted) -> Self {
        match e {
            Unvetted::Rule(violation) => Self::Rule(violation),
            other => Self::Unvetted(other),
        }
    }
}

/// Most changes of one message that may wait for a dependency the relay lacks. An honest
/// peer sends such a change only when a Bloom filter false positive made it skip the
/// dependency (about 1 % of changes); the relay then asks for what is missing.
pub const MAX_ORPHANS: usize = 64;

/// What accepting a sync message produced.
#[derive(Debug, Default)]
pub struct Received {
    /// The relay's answer to the sender, if any.
    pub reply: Option<Vec<u8>>,
    /// The signatures of [`Self::reply`]'s changes, one each, in order.
    pub reply_signatures: Vec<Vec<u8>>,
    /// The new changes, encoded, to push to others.
    pub changes: Vec<Vec<u8>>,
    /// Their authors' signatures, one per change, in order.
    pub signatures: Vec<Vec<u8>>,
    /// Inbox sequence number of the new changes.
    pub seq: u64,
    /// Users the changes concern (their devices get them live, their inboxes keep them).
    pub recipients: Vec<UserId>,
    /// A display name the changes set that was not registered to the sender, and why.
    pub name_refused: Option<NameRefused>,
}

/// A sync message for a peer, with the signature of each change it carries.
#[derive(Debug)]
pub struct Outgoing {
    /// The encoded `automerge::sync::Message`.
    pub message: Vec<u8>,
    /// One signature per change of the message, in order (empty where the relay holds none).
    pub signatures: Vec<Vec<u8>>,
}

/// Documents, their cache and their store.
pub struct Documents {
    inner: Mutex<Inner>,
}

struct Inner {
    store: Box<dyn RelayStore>,
    /// Documents in memory, each with its weight: the bytes it takes in the store.
    cache: LruCache<DocId, (AutoCommit, u64)>,
    /// Sum of the cached documents' weights.
    cached_bytes: u64,
    /// The most `cached_bytes` may reach before the least recently used are dropped.
    max_cached_bytes: u64,
}

impl Documents {
    /// Serves documents from `store`, keeping up to `cache_docs` of them, and documents of
    /// at most `cache_bytes` stored bytes in all, in memory.
    pub fn new(store: Box<dyn RelayStore>, cache_docs: usize, cache_bytes: u64) -> Self {
        let cap = NonZeroUsize::new(cache_docs.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            inner: Mutex::new(Inner {
                store,
                cache: LruCache::new(cap),
                cached_bytes: 0,
                max_cached_bytes: cache_bytes,
            }),
        }
    }

    /// Stored bytes of the documents in memory now.
    pub fn cached_bytes(&self) -> u64 {
        self.lock().cached_bytes
    }

    /// Runs `f` with the store.
    pub fn with_store<T>(&self, f: impl FnOnce(&mut dyn RelayStore) -> T) -> T {
        let mut inner = self.lock();
        f(inner.store.as_mut())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written store (SQLite
        // transactions), so a poisoned lock is safe to keep using.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The relay's next sync message for `doc` to a peer in `state` (an unknown document
    /// syncs as an empty one), with the signature of each change it carries.
    pub fn generate(&self, doc: &DocId, state: &mut State) -> Result<Option<Outgoing>, StoreError> {
        let mut inner = self.lock();
        let (mut am, weight) = inner.take(doc)?;
        match vetting::contained(doc, || am.sync().generate_sync_message(state)) {
            Ok(message) => {
                inner.put(doc, am, weight);
                message.map(|m| inner.outgoing(doc, m)).transpose()
            }
            Err(panic) => {
                // The copy and the state may be half-changed: drop both, start over.
                tracing::error!(%doc, "generating a sync message failed: {panic}");
                *state = State::new();
                Ok(None)
            }
        }
    }

    /// Takes a sync message for `doc` from a connection of `user`: vets every change in it
    /// (whether or not it can apply yet) and refuses the message whole if any is not the
    /// user's own, breaks the write rules, is not a plain change, or if too many would wait
    /// for dependencies; then applies it, stores and routes what it accepted, and returns
    /// the answer.
    pub fn receive(
        &self,
        user: UserId,
        doc: &DocId,
        state: &mut State,
        message: &[u8],
        signatures: &[impl AsRef<[u8]>],
    ) -> Result<Received, Refusal> {
        let vetted = vetting::vet_sync_message(doc, message, signatures)?;
        let signed: Vec<(ChangeHash, ChangeSig)> = vetted
            .changes
            .iter()
            .map(Change::hash)
            .zip(vetted.signatures.iter().copied())
            .collect();
        let mut inner = self.lock();
        if let DocId::Thread(post) = doc
            && !vetted.changes.is_empty()
        {
            inner.check_post_exists(doc, post)?;
        }
        // Work on the document out of the cache: if the message is refused, the copy that
        // may hold refused changes is dropped, and the store keeps the truth.
        let (mut am, weight) = inner.take(doc)?;
        // Every change the relay lacks must be the user's own, whether or not it can apply
        // yet; changes it has were checked when they came (an honest peer resends some).
        let unknown: Vec<&Change> = vetted
            .changes
            .iter()
            .filter(|c| vetting::max_op_in(&mut am, &c.hash()).is_none())
            .collect();
        let unknown_hashes: Vec<ChangeHash> = unknown.iter().map(|c| c.hash()).collect();
        if let Some(Err(refusal)) = unknown
            .iter()
            .map(|c| check_author(user, doc, c))
            .find(Result::is_err)
        {
            inner.put(doc, am, weight);
            return Err(refusal);
        }
        let orphans = match vetting::check_op_order_before(doc, &mut am, &vetted.changes) {
            Ok(orphans) => orphans,
            Err(e) => {
                inner.put(doc, am, weight);
                return Err(e.into());
            }
        };
        if orphans > MAX_ORPHANS {
            inner.put(doc, am, weight);
            return Err(Refusal::Orphans {
                doc: doc.clone(),
                count: orphans,
                max: MAX_ORPHANS,
            });
        }
        let before = am.get_heads();
        vetting::contained(doc, || {
            am.sync().receive_sync_message(state, vetted.message)
        })?
        .map_err(|e| Refusal::Invalid {
            doc: doc.clone(),
            detail: e.to_string(),
        })?;
        let new = am.get_changes(&before);
        // Changes that waited for a dependency applied just now too: check all of them.
        vetting::check_op_order_after(doc, &mut am, &new)?;
        let mut received = Received::default();
        let mut weight = weight;
        if !new.is_empty() {
            let (routing, name_refused) = routing::route(inner.store.as_mut(), doc, &am, &new)?;
            received.name_refused = name_refused;
            let accepted = Accepted {
                doc,
                changes: &new,
                routing,
                signatures: &signed,
            };
            received.seq = inner.store.accept(&mut am, &accepted)?;
            received.changes = new.iter().map(|c| c.raw_bytes().to_vec()).collect();
            // A change that waited for a dependency came with an earlier message: its
            // signature is in the store since then.
            received.signatures = inner.store.signatures_for(doc, &received.changes)?;
            received.recipients = accepted.routing.recipients;
            weight += received.changes.iter().map(|c| c.len() as u64).sum::<u64>();
        } else if !unknown_hashes.is_empty() {
            // Changes waiting for a dependency: their signatures are kept now, for when
            // they apply.
            inner.store.put_signatures(doc, &signed)?;
        }
        match vetting::contained(doc, || am.sync().generate_sync_message(state)) {
            Ok(reply) => {
                inner.put(doc, am, weight);
                if let Some(reply) = reply {
                    let out = inner.outgoing(doc, reply)?;
                    received.reply = Some(out.message);
                    received.reply_signatures = out.signatures;
                }
            }
            Err(panic) => {
                tracing::error!(%doc, "answering a sync message failed: {panic}");
                *state = State::new();
            }
        }
        Ok(received)
    }
}

impl Documents {
    /// Takes `user`'s signatures of their own changes of `doc` that the relay stored
    /// before changes were signed (see [`ClientMessage::Signatures`]). Each must be of a
    /// change the relay holds, made by `user`, and verify; the first that does not refuses
    /// the message, and nothing of it is kept.
    ///
    /// [`ClientMessage::Signatures`]: social_sync_protocol::ClientMessage::Signatures
    pub fn add_signatures(
        &self,
        user: UserId,
        doc: &DocId,
        signatures: &[ChangeSignature],
    ) -> Result<usize, Refusal> {
        if signatures.len() > MAX_SIGNATURES {
            return Err(Refusal::Unvetted(Unvetted::TooMany {
                doc: doc.clone(),
                what: "signatures",
                count: signatures.len(),
                max: MAX_SIGNATURES,
            }));
        }
        let mut inner = self.lock();
        let (mut am, weight) = inner.take(doc)?;
        let checked: Result<Vec<(ChangeHash, ChangeSig)>, Refusal> = signatures
            .iter()
            .enumerate()
            .map(|(index, s)| {
                let unknown = || Refusal::Invalid {
                    doc: doc.clone(),
                    detail: format!("signature #{index} names a change this relay does not hold"),
                };
                let hash = ChangeHash::try_from(s.hash.as_slice()).map_err(|_| unknown())?;
                let change = am.get_change_by_hash(&hash).ok_or_else(unknown)?;
                check_author(user, doc, &change)?;
                let sig = vetting::signature::verify(doc, index, &change, &s.signature)?;
                Ok((hash, sig))
            })
            .collect();
        inner.put(doc, am, weight);
        let checked = checked?;
        inner.store.put_signatures(doc, &checked)?;
        Ok(checked.len())
    }
}

/// Most signatures one [`Documents::add_signatures`] takes.
pub const MAX_SIGNATURES: usize = 4_096;

impl Inner {
    /// Encodes a sync message for a peer, with its changes' signatures from the store.
    fn outgoing(
        &mut self,
        doc: &DocId,
        message: automerge::sync::Message,
    ) -> Result<Outgoing, StoreError> {
        let chunks: Vec<Vec<u8>> = message.changes.iter().map(<[u8]>::to_vec).collect();
        let signatures = self.store.signatures_for(doc, &chunks)?;
        Ok(Outgoing {
            message: vetting::encode_outgoing(message),
            signatures,
        })
    }

    /// Takes the document out of the cache, or loads it (empty if never stored), with its
    /// weight.
    fn take(&mut self, doc: &DocId) -> Result<(AutoCommit, u64), StoreError> {
        if let Some((am, weight)) = self.cache.pop(doc) {
            self.cached_bytes = self.cached_bytes.saturating_sub(weight);
            return Ok((am, weight));
        }
        let am = self.store.load(doc)?.unwrap_or_default();
        let weight = self.store.stored_bytes(doc)?;
        Ok((am, weight))
    }

    /// Puts a document back in the cache, dropping the least recently used ones while the
    /// cache holds more than its byte budget (a document larger than the whole budget is
    /// not kept at all).
    fn put(&mut self, doc: &DocId, am: AutoCommit, weight: u64) {
        if weight > self.max_cached_bytes {
            return;
        }
        if let Some((_, (_, old))) = self.cache.push(doc.clone(), (am, weight)) {
            self.cached_bytes = self.cached_bytes.saturating_sub(old);
        }
        self.cached_bytes += weight;
        while self.cached_bytes > self.max_cached_bytes {
            match self.cache.pop_lru() {
                Some((_, (_, w))) => self.cached_bytes = self.cached_bytes.saturating_sub(w),
                None => break,
            }
        }
    }

    /// A thread is accepted only for a post the relay has: in its author's user document,
    /// or a thread it already stores (a post deleted after its first reactions). Reactions
    /// to a post deleted since are accepted on purpose: no client shows or notifies them,
    /// the reacting client reports them undelivered and settles its outbox, and a refusal
    /// would only have them offered again at every sync (see
    /// the client's `store::deletes`).
    fn check_post_exists(&mut self, doc: &DocId, post: &PostId) -> Result<(), Refusal> {
        if self.store.stored_bytes(doc)? > 0 || self.cache.contains(doc) {
            return Ok(());
        }
        let author = DocId::User(post.author());
        let (am, weight) = self.take(&author)?;
        let exists = UserDoc(&am).post(post).is_some();
        self.put(&author, am, weight);
        if exists {
            Ok(())
        } else {
            Err(Refusal::NoSuchPost {
                doc: doc.clone(),
                post: post.clone(),
            })
        }
    }
}

fn check_author(user: UserId, doc: &DocId, change: &Change) -> Result<(), Refusal> {
    let author = user_of_actor(change.actor_id());
    if author != Some(user) {
        return Err(Refusal::NotYours {
            doc: doc.clone(),
            hash: change.hash().to_string(),
            author: author.map_or_else(|| change.actor_id().to_hex_string(), |a| a.to_string()),
            user,
        });
    }
    Ok(())
}
