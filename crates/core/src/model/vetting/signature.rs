//! Every change carries its author's Ed25519 signature of
//! [`change_payload`](social_sync_protocol::signing::change_payload) (its document and its
//! hash), made with the key whose public half opens the change's actor id. A receiver
//! verifies it before the change touches a document: a relay (or an export folder) can
//! withhold changes, never forge, alter or move them to another document.

use automerge::Change;
use ed25519_dalek::{Signature, VerifyingKey};
use social_sync_protocol::DocId;
use social_sync_protocol::signing::{SIGNATURE_LEN, change_payload};

use super::Unvetted;
use crate::Identity;
use crate::model::user_of_actor;

/// An Ed25519 signature.
pub type ChangeSig = [u8; SIGNATURE_LEN];

/// Signs `change` of `doc` as `identity` (the caller made the change).
pub fn sign(identity: &Identity, doc: &DocId, change: &Change) -> ChangeSig {
    identity.sign(&change_payload(doc, &change.hash().0))
}

/// Checks `signature` is the author's signature of `change` in `doc`; `index` names the
/// change in errors. An empty signature is a missing one.
pub fn verify(
    doc: &DocId,
    index: usize,
    change: &Change,
    signature: &[u8],
) -> Result<ChangeSig, Unvetted> {
    let hash = change.hash();
    if signature.is_empty() {
        return Err(Unvetted::Unsigned {
            doc: doc.clone(),
            index,
            hash: hash.to_string(),
        });
    }
    let bad = || Unvetted::BadSignature {
        doc: doc.clone(),
        hash: hash.to_string(),
        author: user_of_actor(change.actor_id())
            .map_or_else(|| change.actor_id().to_hex_string(), |u| u.to_string()),
    };
    let sig: ChangeSig = signature.try_into().map_err(|_| bad())?;
    let author = user_of_actor(change.actor_id()).ok_or_else(bad)?;
    let key = VerifyingKey::from_bytes(author.as_bytes()).map_err(|_| bad())?;
    key.verify_strict(&change_payload(doc, &hash.0), &Signature::from_bytes(&sig))
        .map_err(|_| bad())?;
    Ok(sig)
}

/// Checks one signature per change, in order: the counts must match, and each must verify.
pub fn verify_all<S: AsRef<[u8]>>(
    doc: &DocId,
    changes: &[Change],
    signatures: &[S],
) -> Result<Vec<ChangeSig>, Unvetted> {
    if signatures.len() != changes.len() {
        return Err(Unvetted::SignatureCount {
            doc: doc.clone(),
            changes: changes.len(),
            signatures: signatures.len(),
        });
    }
    changes
        .iter()
        .zip(signatures)
        .enumerate()
        .map(|(index, (change, sig))| verify(doc, index, change, sig.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Env;
    use crate::model::{ThreadDoc, actor_id};
    use automerge::AutoCommit;
    use social_sync_protocol::PostId;

    fn liked(identity: &Identity) -> Change {
        let mut am = AutoCommit::new().with_actor(actor_id(identity.user_id(), [0; 8]));
        ThreadDoc::like(&mut am, identity.user_id(), 1).unwrap();
        am.commit();
        am.get_changes(&[]).remove(0)
    }

    #[test]
    fn a_signature_proves_author_document_and_bytes() {
        let mut env = Env::deterministic(1, 0);
        let ana = Identity::generate(&mut env);
        let eve = Identity::generate(&mut env);
        let post = DocId::Thread(PostId::new(ana.user_id(), b"p"));
        let other = DocId::Thread(PostId::new(ana.user_id(), b"q"));
        let change = liked(&ana);
        let sig = sign(&ana, &post, &change);
        assert_eq!(verify(&post, 0, &change, &sig).unwrap(), sig);
        // Replayed into another thread.
        assert!(matches!(
            verify(&other, 0, &change, &sig),
            Err(Unvetted::BadSignature { .. })
        ));
        // Signed by someone else than the actor's key.
        let forged = sign(&eve, &post, &change);
        assert!(matches!(
            verify(&post, 0, &change, &forged),
            Err(Unvetted::BadSignature { .. })
        ));
        // Missing, or the wrong length.
        assert!(matches!(
            verify(&post, 0, &change, &[]),
            Err(Unvetted::Unsigned { .. })
        ));
        assert!(matches!(
            verify(&post, 0, &change, &sig[..63]),
            Err(Unvetted::BadSignature { .. })
        ));
        assert!(matches!(
            verify_all::<ChangeSig>(&post, std::slice::from_ref(&change), &[]),
            Err(Unvetted::SignatureCount { .. })
        ));
    }
}
