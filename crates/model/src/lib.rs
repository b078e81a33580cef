//! # social-sync-model
//!
//! The Automerge document model shared by the client (`social-sync-core`) and the relay
//! (`sync-server`): what lives in `user/<uid>` and `thread/<post_id>`, read and written
//! through typed accessors (no other module spells a key of a document), the write rules
//! every receiver enforces, the vetting of Automerge input from elsewhere (signatures
//! included), and the tables documents and signatures are stored in. The relay depends on
//! this crate and the protocol, never on the client.
//!
//! # Layout
//!
//! - [`user`], [`thread`]: the two kinds of document, as typed views and edits.
//! - [`rules`]: who may write what; [`limits`]: how long texts may be.
//! - [`name`]: display names: the key under which look-alikes are one name.
//! - [`vetting`]: Automerge input from elsewhere, checked before it touches a document
//!   (chunk kinds, sizes, op order, write rules, authors' signatures).
//! - [`documents`]: documents on disk as snapshot + changes, compacted; [`signatures`]:
//!   every change's signature, kept for as long as the change.
//! - [`images`]: what counts as an image (read from the bytes).
//! - [`error`]: [`ModelError`], what reading stored documents can report.
//!
//! # Shape: flat, prefixed keys at the root
//!
//! DESIGN.md sketches nested maps (`posts: {post_id: ...}`). Here every entry is a key of
//! the root map instead (`post/<post_id>`, `follow/<uid>`, `like/<uid>`,
//! `comment/<comment_id>`), for two reasons:
//!
//! 1. No container is ever created twice. With nested maps, two replicas that each create
//!    `likes` before they first sync make two conflicting maps, and Automerge keeps only one:
//!    the other replica's likes vanish. A root key is created only by the one writer who owns
//!    it, so nothing is lost.
//! 2. Write rights can be checked op by op (see [`rules`]): an op on the root must use a key
//!    the change's author owns, and an op on any other object must target an object its own
//!    author created.
//!
//! # Actors
//!
//! A replica's Automerge actor id is the user's 32-byte public key followed by an 8-byte
//! device id, so every change names the user who made it and two devices of one user never
//! share an actor.

pub mod documents;
pub mod error;
pub mod images;
pub mod limits;
pub mod name;
pub mod rules;
pub mod signatures;
pub mod thread;
pub mod user;
pub mod vetting;

pub use error::{ModelError, Result};

use automerge::{
    ActorId, AutoCommit, ObjId, ReadDoc, ScalarValue, Value, transaction::Transactable,
};
use social_sync_protocol::UserId;

pub use thread::{CommentEntry, ThreadDoc};
pub use user::{PostEntry, ProfileFields, UserDoc};

/// The bytes that tell two devices of one user apart.
pub type DeviceId = [u8; 8];

/// The actor id of `user` on `device`: the public key followed by the device id.
pub fn actor_id(user: UserId, device: DeviceId) -> ActorId {
    let mut bytes = Vec::with_capacity(40);
    bytes.extend_from_slice(user.as_bytes());
    bytes.extend_from_slice(&device);
    ActorId::from(bytes)
}

/// The user an actor id belongs to, if it has the `<key><device>` shape.
pub fn user_of_actor(actor: &ActorId) -> Option<UserId> {
    let bytes = actor.to_bytes();
    let key: [u8; 32] = bytes.get(..32)?.try_into().ok()?;
    Some(UserId::from_bytes(key))
}

/// Reads a string field of a map object; `None` when absent or not a string.
fn get_str(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key).ok().flatten()? {
        (Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::Str(s) => Some(s.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// Reads an integer field (timestamps are milliseconds since the Unix epoch).
fn get_i64(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<i64> {
    match doc.get(obj, key).ok().flatten()? {
        (Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::Int(n) | ScalarValue::Timestamp(n) => Some(*n),
            ScalarValue::Uint(n) => i64::try_from(*n).ok(),
            _ => None,
        },
        _ => None,
    }
}

/// The root keys (with their prefix) that start with `prefix`, in key order.
fn keys_with_prefix<'a>(doc: &'a AutoCommit, prefix: &'a str) -> impl Iterator<Item = String> + 'a {
    doc.map_range(automerge::ROOT, prefix.to_owned()..)
        .map(|item| item.key.into_owned())
        .take_while(move |k| k.starts_with(prefix))
}

/// Puts a string, skipping the write when the value is already there (so no empty change is
/// made).
fn put_str_if_changed(
    doc: &mut AutoCommit,
    obj: &ObjId,
    key: &str,
    value: &str,
) -> Result<(), automerge::AutomergeError> {
    if get_str(doc, obj, key).as_deref() != Some(value) {
        doc.put(obj, key, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_ids_carry_the_user() {
        let uid = UserId::from_bytes([4; 32]);
        let actor = actor_id(uid, [1; 8]);
        assert_eq!(user_of_actor(&actor), Some(uid));
        assert_ne!(actor, actor_id(uid, [2; 8]));
        assert_eq!(user_of_actor(&ActorId::from(vec![1, 2, 3])), None);
    }
}
