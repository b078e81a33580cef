//! The relay's side of the Automerge sync protocol: documents held in a bounded cache over
//! the store, incoming changes checked (signatures, authors, write rules) before anything is
//! stored, and the routing of what was accepted.
//!
//! # Layout
//!
//! - [`cache`]: documents in memory, within a count and a byte budget.
//! - [`locks`]: one lock per document, so documents never wait on each other.
//! - [`receive`]: a client's sync message, vetted, applied, stored and answered.
//! - [`refusal`]: [`Refusal`], why a message was refused, and the authorship check.

use std::sync::{Mutex, MutexGuard, PoisonError};

use automerge::ChangeHash;
use automerge::sync::{State, SyncDoc};
use social_sync_model::UserDoc;
use social_sync_model::vetting::{self, ChangeSig, Unvetted};
use social_sync_protocol::{ChangeSignature, DocId, PostId, UserId};

use crate::store::{RelayStore, StoreError};

mod cache;
mod locks;
mod receive;
mod refusal;

use cache::{DocCache, Held};
use locks::DocLocks;
pub use receive::{MAX_ORPHANS, Received};
pub use refusal::Refusal;
use refusal::check_author;

/// A document's latest changes (its heads), encoded, with their signatures in order.
#[derive(Debug)]
pub struct Latest {
    /// The changes.
    pub changes: Vec<Vec<u8>>,
    /// One signature per change (empty where the relay holds none).
    pub signatures: Vec<Vec<u8>>,
}

/// A sync message for a peer, with the signature of each change it carries.
#[derive(Debug)]
pub struct Outgoing {
    /// The encoded `automerge::sync::Message`.
    pub message: Vec<u8>,
    /// One signature per change of the message, in order (empty where the relay holds none).
    pub signatures: Vec<Vec<u8>>,
}

/// Documents, their cache and their store. Three locks, never held across Automerge work
/// on a document: one per document (work on a document waits only for work on the same
/// document), the cache's (to take or put a document), and the store's (SQLite calls).
pub struct Documents {
    store: Mutex<Box<dyn RelayStore>>,
    /// Other relay nodes write to the store too: a cached copy is used only while it is
    /// the store's version.
    shared: bool,
    cache: Mutex<DocCache>,
    locks: DocLocks,
}

/// A poisoned lock is kept in use: a panic while holding one cannot leave a half-written
/// store (SQLite transactions) or a half-changed cached document (documents are taken out
/// of the cache while worked on).
fn hold<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Documents {
    /// Serves documents from `store`, keeping up to `cache_docs` of them, and documents of
    /// at most `cache_bytes` stored bytes in all, in memory.
    pub fn new(store: Box<dyn RelayStore>, cache_docs: usize, cache_bytes: u64) -> Self {
        Self {
            shared: store.shared(),
            store: Mutex::new(store),
            cache: Mutex::new(DocCache::new(cache_docs, cache_bytes)),
            locks: DocLocks::default(),
        }
    }

    /// Whether other relay nodes write to the store too.
    pub fn store_is_shared(&self) -> bool {
        self.shared
    }

    /// Stored bytes of the documents in memory now.
    pub fn cached_bytes(&self) -> u64 {
        hold(&self.cache).bytes()
    }

    /// Runs `f` with the store.
    pub fn with_store<T>(&self, f: impl FnOnce(&mut dyn RelayStore) -> T) -> T {
        let mut store = hold(&self.store);
        f(store.as_mut())
    }

    /// Takes `doc` out of the cache, or loads it (empty if never stored). With a store
    /// shared by several relay nodes, a cached copy of an older version than the store's
    /// (another node accepted changes since) is dropped and the document loaded afresh.
    /// The caller holds the document's lock.
    fn take(&self, doc: &DocId) -> Result<Held, StoreError> {
        let cached = hold(&self.cache).take(doc);
        if !self.shared
            && let Some(found) = cached
        {
            return Ok(found);
        }
        let mut store = hold(&self.store);
        let version = if self.shared { store.version(doc)? } else { 0 };
        if let Some(found) = cached.filter(|c| c.version == version) {
            return Ok(found);
        }
        let am = store.load(doc)?.unwrap_or_default();
        let weight = store.stored_bytes(doc)?;
        Ok(Held {
            am,
            weight,
            version,
        })
    }

    /// Puts `doc` back into the cache. The caller holds the document's lock.
    fn put(&self, doc: &DocId, held: Held) {
        hold(&self.cache).put(doc, held);
    }

    /// Encodes a sync message for a peer, with its changes' signatures from the store.
    fn outgoing(
        &self,
        doc: &DocId,
        message: automerge::sync::Message,
    ) -> Result<Outgoing, StoreError> {
        let chunks: Vec<Vec<u8>> = message.changes.iter().map(<[u8]>::to_vec).collect();
        let signatures = hold(&self.store).signatures_for(doc, &chunks)?;
        Ok(Outgoing {
            message: vetting::encode_outgoing(message),
            signatures,
        })
    }

    /// A thread is accepted only for a post the relay has: in its author's user document,
    /// or a thread it already stores (a post deleted after its first reactions). Reactions
    /// to a post deleted since are accepted on purpose: no client shows or notifies them,
    /// the reacting client reports them undelivered and settles its outbox, and a refusal
    /// would only have them offered again at every sync (see the client's
    /// `store::deletes`). The author's document is only read: from the cache if it is
    /// there, else from the store (and not cached, so no stale copy can replace a newer
    /// one being worked on).
    fn check_post_exists(&self, doc: &DocId, post: &PostId) -> Result<(), Refusal> {
        if hold(&self.cache).contains(doc) || hold(&self.store).stored_bytes(doc)? > 0 {
            return Ok(());
        }
        let author = DocId::User(post.author());
        let cached = hold(&self.cache).peek(&author, |am| UserDoc(am).post(post).is_some());
        let exists = match cached {
            // A copy without the post may be older than the store's (another node took
            // the post): only a copy that has it answers for a shared store.
            Some(exists) if exists || !self.shared => exists,
            _ => hold(&self.store)
                .load(&author)?
                .is_some_and(|am| UserDoc(&am).post(post).is_some()),
        };
        if exists {
            Ok(())
        } else {
            Err(Refusal::NoSuchPost {
                doc: doc.clone(),
                post: post.clone(),
            })
        }
    }

    /// The relay's next sync message for `doc` to a peer in `state` (an unknown document
    /// syncs as an empty one), with the signature of each change it carries.
    pub fn generate(&self, doc: &DocId, state: &mut State) -> Result<Option<Outgoing>, StoreError> {
        let _working = self.locks.lock(doc);
        let mut held = self.take(doc)?;
        match vetting::contained(doc, || held.am.sync().generate_sync_message(state)) {
            Ok(message) => {
                self.put(doc, held);
                message.map(|m| self.outgoing(doc, m)).transpose()
            }
            Err(panic) => {
                // The copy and the state may be half-changed: drop both, start over.
                tracing::error!(%doc, "generating a sync message failed: {panic}");
                *state = State::new();
                Ok(None)
            }
        }
    }
}

impl Documents {
    /// The latest changes of `doc` (its heads) with their signatures: pushed to clients
    /// after a gap in the cluster's bus, so one that lacks earlier changes asks for them.
    pub fn latest(&self, doc: &DocId) -> Result<Latest, StoreError> {
        let _working = self.locks.lock(doc);
        let mut held = self.take(doc)?;
        let changes: Vec<Vec<u8>> = held
            .am
            .get_heads()
            .iter()
            .filter_map(|h| held.am.get_change_by_hash(h))
            .map(|c| c.raw_bytes().to_vec())
            .collect();
        self.put(doc, held);
        let signatures = hold(&self.store).signatures_for(doc, &changes)?;
        Ok(Latest {
            changes,
            signatures,
        })
    }

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
        let _working = self.locks.lock(doc);
        let mut held = self.take(doc)?;
        let checked: Result<Vec<(ChangeHash, ChangeSig)>, Refusal> = signatures
            .iter()
            .enumerate()
            .map(|(index, s)| {
                let unknown = || Refusal::Invalid {
                    doc: doc.clone(),
                    detail: format!("signature #{index} names a change this relay does not hold"),
                };
                let hash = ChangeHash::try_from(s.hash.as_slice()).map_err(|_| unknown())?;
                let change = held.am.get_change_by_hash(&hash).ok_or_else(unknown)?;
                check_author(user, doc, &change)?;
                let sig = vetting::signature::verify(doc, index, &change, &s.signature)?;
                Ok((hash, sig))
            })
            .collect();
        self.put(doc, held);
        let checked = checked?;
        hold(&self.store).put_signatures(doc, &checked)?;
        Ok(checked.len())
    }
}

/// Most signatures one [`Documents::add_signatures`] takes.
pub const MAX_SIGNATURES: usize = 4_096;
