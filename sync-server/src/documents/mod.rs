//! The relay's side of the Automerge sync protocol: documents held in a bounded cache over
//! the store, incoming changes checked (signatures, authors, write rules) before anything is
//! stored, and the routing of what was accepted.
//!
//! # Layout
//!
//! - [`cache`]: documents in memory, within a count and a byte budget.
//! - [`locks`]: one lock per document, so documents never wait on each other.
//! - [`refusal`]: [`Refusal`], why a message was refused, and the authorship check.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use automerge::sync::{State, SyncDoc};
use automerge::{Change, ChangeHash};
use social_sync_model::UserDoc;
use social_sync_model::vetting::{self, ChangeSig, Unvetted};
use social_sync_protocol::{ChangeSignature, DocId, PostId, UserId};

use crate::names::NameRefused;
use crate::routing;
use crate::store::{Accepted, RelayStore, StoreError};

mod cache;
mod locks;
mod refusal;

use cache::{DocCache, Held};
use locks::DocLocks;
pub use refusal::Refusal;
use refusal::check_author;

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
    /// Follows the changes made or ended: (follower, followee, following now?).
    pub follows: Vec<(UserId, UserId, bool)>,
    /// A display name the changes set that was not registered to the sender, and why.
    pub name_refused: Option<NameRefused>,
}

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
        let _working = self.locks.lock(doc);
        if let DocId::Thread(post) = doc
            && !vetted.changes.is_empty()
        {
            self.check_post_exists(doc, post)?;
        }
        // Work on the document out of the cache: if the message is refused, the copy that
        // may hold refused changes is dropped, and the store keeps the truth.
        let mut held = self.take(doc)?;
        // Every change the relay lacks must be the user's own, whether or not it can apply
        // yet; changes it has were checked when they came (an honest peer resends some).
        let unknown: Vec<&Change> = vetted
            .changes
            .iter()
            .filter(|c| vetting::max_op_in(&mut held.am, &c.hash()).is_none())
            .collect();
        let unknown_hashes: Vec<ChangeHash> = unknown.iter().map(|c| c.hash()).collect();
        if let Some(Err(refusal)) = unknown
            .iter()
            .map(|c| check_author(user, doc, c))
            .find(Result::is_err)
        {
            self.put(doc, held);
            return Err(refusal);
        }
        let orphans = match vetting::check_op_order_before(doc, &mut held.am, &vetted.changes) {
            Ok(orphans) => orphans,
            Err(e) => {
                self.put(doc, held);
                return Err(e.into());
            }
        };
        if orphans > MAX_ORPHANS {
            self.put(doc, held);
            return Err(Refusal::Orphans {
                doc: doc.clone(),
                count: orphans,
                max: MAX_ORPHANS,
            });
        }
        let before = held.am.get_heads();
        let told = state.last_sent_heads.clone();
        vetting::contained(doc, || {
            held.am.sync().receive_sync_message(state, vetted.message)
        })?
        .map_err(|e| Refusal::Invalid {
            doc: doc.clone(),
            detail: e.to_string(),
        })?;
        let new = held.am.get_changes(&before);
        // Automerge takes a peer that announces the relay's own heads as told them, and
        // stays silent. But the relay's copy may have moved since it last told this peer
        // its heads (changes that came through another connection or another node), and a
        // client confirms its outbox only by the heads the relay tells it: it would wait
        // for ever with the older ones (the cluster chaos run caught it). So the relay
        // answers with its heads whenever they differ from the last it sent.
        if state.last_sent_heads != told && told != held.am.get_heads() {
            state.last_sent_heads = told;
        }
        // Changes that waited for a dependency applied just now too: check all of them.
        vetting::check_op_order_after(doc, &mut held.am, &new)?;
        let mut received = Received::default();
        // Whether the copy worked on is the store's latest (see `Staged::previous`).
        let mut current = true;
        if !new.is_empty() {
            let staged = {
                let mut store = hold(&self.store);
                let (routing, name_refused) = routing::route(store.as_mut(), doc, &held.am, &new)?;
                received.name_refused = name_refused;
                let accepted = Accepted {
                    doc,
                    changes: &new,
                    routing,
                    signatures: &signed,
                };
                let staged = store.accept(&mut held.am, &accepted)?;
                received.changes = new.iter().map(|c| c.raw_bytes().to_vec()).collect();
                // Signatures from this message as they were verified; only a change that
                // waited for a dependency (it came with an earlier message) is read back
                // from the store.
                let sent: HashMap<ChangeHash, ChangeSig> = signed.iter().copied().collect();
                received.signatures = new
                    .iter()
                    .map(|c| match sent.get(&c.hash()) {
                        Some(sig) => Ok(sig.to_vec()),
                        None => Ok(store
                            .signatures_for(doc, std::slice::from_ref(&c.raw_bytes().to_vec()))?
                            .pop()
                            .unwrap_or_default()),
                    })
                    .collect::<Result<_, StoreError>>()?;
                received.recipients = accepted.routing.recipients;
                received.follows = accepted.routing.follows;
                staged
            };
            // Group commit: the store's lock is let go between staging and committing, so
            // connections working on other documents stage into the same transaction and
            // one sync of the disk makes all of them durable. Nothing of this message is
            // answered, pushed or cached before it is.
            hold(&self.store).commit(staged.group)?;
            received.seq = staged.seq;
            if self.shared {
                current = staged.previous == held.version;
                held.version = staged.seq;
            }
            held.weight += received.changes.iter().map(|c| c.len() as u64).sum::<u64>();
        } else if !unknown_hashes.is_empty() {
            // Changes waiting for a dependency: their signatures are kept now, for when
            // they apply.
            hold(&self.store).put_signatures(doc, &signed)?;
        }
        match vetting::contained(doc, || held.am.sync().generate_sync_message(state)) {
            Ok(reply) => {
                tracing::debug!(%user, %doc, before = ?before, heads = ?held.am.get_heads(), took = new.len(), answer = ?reply.as_ref().map(|m| (m.changes.len(), &m.need)), "sync message");
                // A copy that missed another node's changes is not kept: the next use
                // loads the store's.
                if current {
                    self.put(doc, held);
                }
                if let Some(reply) = reply {
                    let out = self.outgoing(doc, reply)?;
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
