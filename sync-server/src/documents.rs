//! The relay's side of the Automerge sync protocol: documents held in a bounded cache over
//! the store, incoming changes checked against the write rules before anything is stored,
//! and the routing of what was accepted.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use automerge::sync::{Message, State, SyncDoc};
use automerge::{AutoCommit, Change};
use lru::LruCache;
use social_sync_core::model::rules::{self, RuleViolation};
use social_sync_core::model::user::UserKey;
use social_sync_core::model::{UserDoc, user_of_actor};
use social_sync_protocol::{DocId, ErrorCode, UserId};

use crate::names::{self, NameRefused};
use crate::store::{Accepted, RelayStore, Routing, StoreError};

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
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Refusal {
    /// The wire code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid { .. } => ErrorCode::InvalidChange,
            Self::NotYours { .. } | Self::Rule(_) => ErrorCode::Forbidden,
            Self::Store(_) => ErrorCode::Internal,
        }
    }
}

/// What accepting a sync message produced.
#[derive(Debug, Default)]
pub struct Received {
    /// The relay's answer to the sender, if any.
    pub reply: Option<Vec<u8>>,
    /// The new changes, encoded, to push to others.
    pub changes: Vec<Vec<u8>>,
    /// Inbox sequence number of the new changes.
    pub seq: u64,
    /// Users the changes concern (their devices get them live, their inboxes keep them).
    pub recipients: Vec<UserId>,
    /// A display name the changes set that was not registered to the sender, and why.
    pub name_refused: Option<NameRefused>,
}

/// Documents, their cache and their store.
pub struct Documents {
    inner: Mutex<Inner>,
}

struct Inner {
    store: Box<dyn RelayStore>,
    cache: LruCache<DocId, AutoCommit>,
}

impl Documents {
    /// Serves documents from `store`, keeping up to `cache_docs` of them in memory.
    pub fn new(store: Box<dyn RelayStore>, cache_docs: usize) -> Self {
        let cap = NonZeroUsize::new(cache_docs.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            inner: Mutex::new(Inner {
                store,
                cache: LruCache::new(cap),
            }),
        }
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
    /// syncs as an empty one).
    pub fn generate(&self, doc: &DocId, state: &mut State) -> Result<Option<Vec<u8>>, StoreError> {
        let mut inner = self.lock();
        let mut am = inner.take(doc)?;
        let message = am.sync().generate_sync_message(state).map(Message::encode);
        inner.cache.put(doc.clone(), am);
        Ok(message)
    }

    /// Takes a sync message for `doc` from a connection of `user`: applies it, refuses it
    /// whole if any new change is not the user's own or breaks the write rules, stores and
    /// routes what it accepted, and returns the answer.
    pub fn receive(
        &self,
        user: UserId,
        doc: &DocId,
        state: &mut State,
        message: &[u8],
    ) -> Result<Received, Refusal> {
        let invalid = |detail: String| Refusal::Invalid {
            doc: doc.clone(),
            detail,
        };
        let message = Message::decode(message).map_err(|e| invalid(e.to_string()))?;
        let mut inner = self.lock();
        // Work on the document out of the cache: if the message is refused, the copy that
        // may hold refused changes is dropped, and the store keeps the truth.
        let mut am = inner.take(doc)?;
        let before = am.get_heads();
        am.sync()
            .receive_sync_message(state, message)
            .map_err(|e| invalid(e.to_string()))?;
        let new = am.get_changes(&before);
        for change in &new {
            check(user, doc, change)?;
        }
        let mut received = Received::default();
        if !new.is_empty() {
            let (routing, name_refused) = route(inner.store.as_mut(), doc, &am, &new)?;
            received.name_refused = name_refused;
            let accepted = Accepted {
                doc,
                changes: &new,
                routing,
            };
            received.seq = inner.store.accept(&mut am, &accepted)?;
            received.changes = new.iter().map(|c| c.raw_bytes().to_vec()).collect();
            received.recipients = accepted.routing.recipients;
        }
        received.reply = am.sync().generate_sync_message(state).map(Message::encode);
        inner.cache.put(doc.clone(), am);
        Ok(received)
    }
}

impl Inner {
    /// Takes the document out of the cache, or loads it (empty if never stored).
    fn take(&mut self, doc: &DocId) -> Result<AutoCommit, StoreError> {
        match self.cache.pop(doc) {
            Some(am) => Ok(am),
            None => Ok(self.store.load(doc)?.unwrap_or_default()),
        }
    }
}

fn check(user: UserId, doc: &DocId, change: &Change) -> Result<(), Refusal> {
    rules::check_change(doc, change)?;
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

/// Who accepted changes concern, and what they change in the follow graph and names:
/// the document's owner and the owner's followers; for a follow, the followed user too.
/// A name that cannot be registered to the owner is returned beside, with why.
fn route(
    store: &mut dyn RelayStore,
    doc: &DocId,
    am: &AutoCommit,
    changes: &[Change],
) -> Result<(Routing, Option<NameRefused>), StoreError> {
    let mut name_refused = None;
    let owner = doc.owner();
    let mut recipients = store.followers(owner)?;
    recipients.push(owner);
    let mut follows = Vec::new();
    let mut name = None;
    if let DocId::User(_) = doc {
        let view = UserDoc(am);
        for key in touched_keys(changes) {
            match UserKey::parse(&key) {
                Some(UserKey::Follow(followee)) => {
                    let on = view.followed_at(followee).is_some();
                    follows.push((owner, followee, on));
                    recipients.push(followee);
                }
                Some(UserKey::Profile) if key == "name" => {
                    match names::claim(store, owner, &view.profile().name)? {
                        Ok(key) => name = Some((owner, key)),
                        Err(refused) => name_refused = Some(refused),
                    }
                }
                _ => {}
            }
        }
    }
    recipients.sort();
    recipients.dedup();
    Ok((
        Routing {
            follows,
            name,
            recipients,
        },
        name_refused,
    ))
}

fn touched_keys(changes: &[Change]) -> Vec<String> {
    let mut keys: Vec<String> = changes
        .iter()
        .flat_map(|c| c.decode().operations)
        .filter_map(|op| match (op.obj, op.key) {
            (automerge::legacy::ObjectId::Root, automerge::legacy::Key::Map(k)) => {
                Some(k.to_string())
            }
            _ => None,
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}
