//! Every change carries its author's Ed25519 signature of
//! [`change_payload`](social_sync_protocol::signing::change_payload) (its document and its
//! hash), made with the key whose public half opens the change's actor id. A receiver
//! verifies it before the change touches a document: a relay (or an export folder) can
//! withhold changes, never forge, alter or move them to another document.

use automerge::Change;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use social_sync_protocol::DocId;
use social_sync_protocol::signing::{SIGNATURE_LEN, change_payload};

use super::Unvetted;
use crate::user_of_actor;

/// An Ed25519 signature.
pub type ChangeSig = [u8; SIGNATURE_LEN];

/// Signs `change` of `doc` with `key`, the key of the user who made it.
pub fn sign(key: &SigningKey, doc: &DocId, change: &Change) -> ChangeSig {
    use ed25519_dalek::Signer;
    key.sign(&change_payload(doc, &change.hash().0)).to_bytes()
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
    use crate::{ThreadDoc, actor_id};
    use automerge::AutoCommit;
    use social_sync_protocol::{PostId, UserId};

    fn user(key: &SigningKey) -> UserId {
        UserId::from_bytes(key.verifying_key().to_bytes())
    }

    fn liked(key: &SigningKey) -> Change {
        let mut am = AutoCommit::new().with_actor(actor_id(user(key), [0; 8]));
        ThreadDoc::like(&mut am, user(key), 1).unwrap();
        am.commit();
        am.get_changes(&[]).remove(0)
    }

    #[test]
    fn a_signature_proves_author_document_and_bytes() {
        let ana = SigningKey::from_bytes(&[1; 32]);
        let eve = SigningKey::from_bytes(&[2; 32]);
        let post = DocId::Thread(PostId::new(user(&ana), b"p"));
        let other = DocId::Thread(PostId::new(user(&ana), b"q"));
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
