//! Profiles made before changes were signed: on first start their own changes are signed
//! by their own key, and the signatures are handed to the relay once (it may hold those
//! changes unsigned, and can hand them on to other clients only with signatures).
//!
//! Other users' changes stored before then stay as they are: they passed the relay's
//! authorship check of that time when they came, this profile shows them, and it never
//! hands them on (a relay takes from a client only that client's own changes, and an export
//! leaves out documents that hold them). They are never asked for again, so no relay is
//! trusted for them a second time.

use automerge::ChangeHash;
use serde_bytes::ByteBuf;
use social_sync_protocol::{ChangeSignature, DocId};

use super::Replica;
use crate::Result;
use crate::model::{user_of_actor, vetting};
use crate::store::{documents, settings, signatures};

/// Set once the profile's own changes were all signed.
const OWN_CHANGES_SIGNED: &str = "own_changes_signed";
/// Set while signatures made by [`Replica::sign_own_changes`] wait to be handed to the
/// relay.
const SIGNATURES_TO_PUBLISH: &str = "signatures_to_publish";
/// Most signatures in one `signatures` message.
pub(crate) const SIGNATURES_PER_MESSAGE: usize = 4_096;

impl Replica {
    /// Signs every change of the local user that has no signature yet (a profile from
    /// before signatures), once. Returns how many it signed.
    pub(super) fn sign_own_changes(&mut self) -> Result<usize> {
        if self
            .store
            .write(|c| settings::get(c, OWN_CHANGES_SIGNED))?
            .is_some()
        {
            return Ok(0);
        }
        let (me, identity) = (self.me, &self.identity);
        self.store.write(|conn| {
            let mut signed = 0;
            for doc in documents::list(conn)? {
                let Some(mut am) = documents::load(conn, &doc)? else {
                    continue;
                };
                let mut new: Vec<(ChangeHash, vetting::ChangeSig)> = Vec::new();
                for change in am.get_changes(&[]) {
                    if user_of_actor(change.actor_id()) == Some(me)
                        && signatures::get(conn, &doc, &change.hash())?.is_none()
                    {
                        new.push((change.hash(), identity.sign_change(&doc, &change)));
                    }
                }
                signatures::put(conn, &doc, new.iter().map(|(h, s)| (h, s)))?;
                signed += new.len();
            }
            if signed > 0 {
                settings::set(conn, SIGNATURES_TO_PUBLISH, "1")?;
                tracing::info!(
                    signed,
                    "signed this profile's changes made before signatures"
                );
            }
            settings::set(conn, OWN_CHANGES_SIGNED, "1")?;
            Ok(signed)
        })
    }

    /// The signatures [`Self::sign_own_changes`] made, to hand to the relay once, in
    /// messages of at most [`SIGNATURES_PER_MESSAGE`]; empty when there is nothing to hand.
    pub fn signatures_to_publish(&self) -> Result<Vec<(DocId, Vec<ChangeSignature>)>> {
        let conn = self.store.conn();
        if settings::get(conn, SIGNATURES_TO_PUBLISH)?.is_none() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for doc in documents::list(conn)? {
            let Some(mut am) = documents::load(conn, &doc)? else {
                continue;
            };
            let mut own = Vec::new();
            for change in am.get_changes(&[]) {
                if user_of_actor(change.actor_id()) != Some(self.me) {
                    continue;
                }
                if let Some(sig) = signatures::get(conn, &doc, &change.hash())? {
                    own.push(ChangeSignature {
                        hash: ByteBuf::from(change.hash().0.to_vec()),
                        signature: ByteBuf::from(sig.to_vec()),
                    });
                }
            }
            for chunk in own.chunks(SIGNATURES_PER_MESSAGE) {
                out.push((doc.clone(), chunk.to_vec()));
            }
        }
        Ok(out)
    }

    /// The relay has taken the signatures of [`Self::signatures_to_publish`].
    pub fn signatures_published(&mut self) -> Result<()> {
        self.store
            .write(|c| settings::remove(c, SIGNATURES_TO_PUBLISH))
    }
}
