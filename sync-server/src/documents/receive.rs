//! A sync message from a client, taken: every change vetted (signature, author, write
//! rules, dependencies waiting) before anything is applied, then applied, stored in the
//! group commit, and routed; and the relay's answer.

use std::collections::HashMap;

use automerge::sync::{State, SyncDoc};
use automerge::{Change, ChangeHash};
use social_sync_model::vetting::{self, ChangeSig};
use social_sync_protocol::{DocId, UserId};

use super::refusal::check_author;
use super::{Documents, Refusal, hold};
use crate::names::NameRefused;
use crate::routing;
use crate::store::{Accepted, StoreError};

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

impl Documents {
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
