//! Write rights, checked op by op on a decoded change.
//!
//! - `user/<uid>`: only `uid` writes it, and only keys of the schema (a post key must name a
//!   post of `uid`).
//! - `thread/<post_id>`: an op on the root may only touch `like/<author>` or
//!   `comment/<author>-…`, where `author` is the user the change's actor belongs to; an op on
//!   any other object may only touch an object that same user created.
//!
//! The relay runs the same check on every incoming change; a replica runs it on everything
//! it merges (sync or `import`), so a forged file cannot write in someone else's name
//! through it either.

use automerge::{
    Change, ObjType, ScalarValue,
    legacy::{Key, ObjectId, Op, OpType},
};
use social_sync_protocol::{DocId, UserId};

use super::{thread::ThreadKey, user::UserKey, user_of_actor};

/// Why a change was refused. Each message names the change, its author and what it touched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleViolation {
    /// The actor id is not `<32-byte user key><device id>`.
    #[error(
        "change {hash} in {doc} was made by actor {actor}, which does not start with a user key: it was not made by Social Sync"
    )]
    UnknownActor {
        /// The document.
        doc: DocId,
        /// The change's hash.
        hash: String,
        /// The actor id, in hex.
        actor: String,
    },
    /// Someone other than the owner wrote into a `user/<uid>` document.
    #[error("change {hash} by {author} writes into {doc}, which only its owner may write")]
    NotOwner {
        /// The document.
        doc: DocId,
        /// The change's hash.
        hash: String,
        /// Who made the change.
        author: UserId,
    },
    /// A root key the author does not own, or one outside the schema.
    #[error(
        "change {hash} by {author} writes the key '{key}' of {doc}, which is not theirs to write"
    )]
    ForeignKey {
        /// The document.
        doc: DocId,
        /// The change's hash.
        hash: String,
        /// Who made the change.
        author: UserId,
        /// The offending key.
        key: String,
    },
    /// A string longer than its field allows (the app's own limits, enforced on receipt).
    #[error(
        "change {hash} by {author} writes {len} characters into '{key}' of {doc}; at most {max} are allowed: shorten it"
    )]
    TooLong {
        /// The document.
        doc: DocId,
        /// The change's hash.
        hash: String,
        /// Who made the change.
        author: UserId,
        /// The field.
        key: String,
        /// Characters written.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An operation the schema never makes (text objects, marks, counters).
    #[error(
        "change {hash} by {author} makes a {what} in {doc}, which Social Sync documents never hold"
    )]
    OutsideSchema {
        /// The document.
        doc: DocId,
        /// The change's hash.
        hash: String,
        /// Who made the change.
        author: UserId,
        /// What it made.
        what: &'static str,
    },
    /// An edit inside an object another user created.
    #[error("change {hash} by {author} edits an object of {doc} that another user created")]
    ForeignObject {
        /// The document.
        doc: DocId,
        /// The change's hash.
        hash: String,
        /// Who made the change.
        author: UserId,
    },
}

/// Checks that `change` keeps the write rules of `doc`.
pub fn check_change(doc: &DocId, change: &Change) -> Result<(), RuleViolation> {
    let hash = change.hash().to_string();
    let Some(author) = user_of_actor(change.actor_id()) else {
        return Err(RuleViolation::UnknownActor {
            doc: doc.clone(),
            hash,
            actor: change.actor_id().to_hex_string(),
        });
    };
    if let DocId::User(owner) = doc
        && *owner != author
    {
        return Err(RuleViolation::NotOwner {
            doc: doc.clone(),
            hash,
            author,
        });
    }
    let foreign_key = |key: String| RuleViolation::ForeignKey {
        doc: doc.clone(),
        hash: hash.clone(),
        author,
        key,
    };
    for op in change.decode().operations {
        check_value(doc, &hash, author, &op)?;
        match (&op.obj, &op.key) {
            (ObjectId::Root, Key::Map(key)) => {
                let allowed = match doc {
                    DocId::User(owner) => match UserKey::parse(key) {
                        Some(UserKey::Post(post)) => post.author() == *owner,
                        Some(_) => true,
                        None => false,
                    },
                    DocId::Thread(_) => ThreadKey::parse(key).is_some_and(|k| k.owner() == author),
                };
                if !allowed {
                    return Err(foreign_key(key.to_string()));
                }
            }
            (ObjectId::Root, Key::Seq(_)) => return Err(foreign_key("<list index>".into())),
            (ObjectId::Id(opid), _) => {
                if user_of_actor(opid.actor()) != Some(author) {
                    return Err(RuleViolation::ForeignObject {
                        doc: doc.clone(),
                        hash,
                        author,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Checks what one op writes: only maps, lists and scalars, strings within their limits.
fn check_value(doc: &DocId, hash: &str, author: UserId, op: &Op) -> Result<(), RuleViolation> {
    let outside = |what| RuleViolation::OutsideSchema {
        doc: doc.clone(),
        hash: hash.to_owned(),
        author,
        what,
    };
    match &op.action {
        OpType::Make(ObjType::Map | ObjType::List) => Ok(()),
        // Automerge's own deletes always name what they delete; one that names nothing
        // panicked inside Automerge when it applied.
        OpType::Delete if op.pred.is_empty() => Err(outside("delete that names nothing")),
        OpType::Delete => Ok(()),
        OpType::Make(_) => Err(outside("text or table object")),
        OpType::MarkBegin(_) | OpType::MarkEnd(_) => Err(outside("mark")),
        OpType::Increment(_) => Err(outside("counter increment")),
        OpType::Put(ScalarValue::Counter(_)) => Err(outside("counter")),
        OpType::Put(ScalarValue::Str(text)) => {
            let key = match &op.key {
                Key::Map(key) => key.as_str(),
                Key::Seq(_) => "<list item>",
            };
            let max = max_chars(doc, matches!(op.obj, ObjectId::Root), key);
            let len = text.chars().count();
            if len > max {
                return Err(RuleViolation::TooLong {
                    doc: doc.clone(),
                    hash: hash.to_owned(),
                    author,
                    key: key.to_owned(),
                    len,
                    max,
                });
            }
            Ok(())
        }
        OpType::Put(_) => Ok(()),
    }
}

/// The longest string a field may hold, in characters: the app's limits
/// ([`crate::limits`]); ids, hashes and other short fields get [`SHORT_FIELD`].
fn max_chars(doc: &DocId, at_root: bool, key: &str) -> usize {
    use crate::limits;
    match (doc, at_root, key) {
        (DocId::User(_), true, "name") => limits::NAME.1,
        (DocId::User(_), true, "bio") => limits::BIO.1,
        (DocId::User(_), false, "text") => limits::POST_TEXT.1,
        (DocId::Thread(_), false, "text") => limits::COMMENT.1,
        _ => SHORT_FIELD,
    }
}

/// The longest value of a field that holds an id, a hash or a media type.
pub const SHORT_FIELD: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CommentEntry, PostEntry, ThreadDoc, UserDoc, actor_id};
    use automerge::{AutoCommit, ROOT, ReadDoc, transaction::Transactable};
    use social_sync_protocol::{CommentId, PostId};

    fn uid(n: u8) -> UserId {
        UserId::from_bytes([n; 32])
    }

    fn doc_of(user: UserId) -> AutoCommit {
        AutoCommit::new().with_actor(actor_id(user, [0; 8]))
    }

    fn last_change(doc: &mut AutoCommit) -> Change {
        doc.commit();
        doc.get_last_local_change().unwrap()
    }

    #[test]
    fn owners_may_write_their_user_document() {
        let ana = uid(1);
        let mut doc = doc_of(ana);
        let post = PostEntry {
            id: PostId::new(ana, b"p"),
            text: "hi".into(),
            media: vec![],
            created_at: 1,
        };
        UserDoc::add_post(&mut doc, &post).unwrap();
        UserDoc::follow(&mut doc, uid(2), 1).unwrap();
        let change = last_change(&mut doc);
        assert_eq!(check_change(&DocId::User(ana), &change), Ok(()));
    }

    #[test]
    fn nobody_else_writes_a_user_document() {
        let mut doc = doc_of(uid(2));
        UserDoc::follow(&mut doc, uid(3), 1).unwrap();
        let change = last_change(&mut doc);
        let err = check_change(&DocId::User(uid(1)), &change).unwrap_err();
        assert!(matches!(err, RuleViolation::NotOwner { author, .. } if author == uid(2)));
    }

    #[test]
    fn a_post_key_must_name_a_post_of_the_owner() {
        let ana = uid(1);
        let mut doc = doc_of(ana);
        let post = PostEntry {
            id: PostId::new(uid(2), b"p"),
            text: "hi".into(),
            media: vec![],
            created_at: 1,
        };
        UserDoc::add_post(&mut doc, &post).unwrap();
        let change = last_change(&mut doc);
        assert!(matches!(
            check_change(&DocId::User(ana), &change),
            Err(RuleViolation::ForeignKey { .. })
        ));
    }

    #[test]
    fn reactions_in_ones_own_name_are_allowed() {
        let ben = uid(2);
        let thread = DocId::Thread(PostId::new(uid(1), b"p"));
        let mut doc = doc_of(ben);
        ThreadDoc::like(&mut doc, ben, 1).unwrap();
        let comment = CommentEntry {
            id: CommentId::new(ben, b"c"),
            text: "hey".into(),
            created_at: 2,
        };
        ThreadDoc::add_comment(&mut doc, &comment).unwrap();
        let change = last_change(&mut doc);
        assert_eq!(check_change(&thread, &change), Ok(()));
    }

    #[test]
    fn a_like_in_someone_elses_name_is_refused() {
        let thread = DocId::Thread(PostId::new(uid(1), b"p"));
        let mut doc = doc_of(uid(2));
        ThreadDoc::like(&mut doc, uid(3), 1).unwrap();
        let change = last_change(&mut doc);
        let err = check_change(&thread, &change).unwrap_err();
        assert!(
            err.to_string().contains(&format!("like/{}", uid(3))),
            "{err}"
        );
    }

    #[test]
    fn editing_another_users_comment_is_refused() {
        let thread = DocId::Thread(PostId::new(uid(1), b"p"));
        let mut ben = doc_of(uid(2));
        let comment = CommentEntry {
            id: CommentId::new(uid(2), b"c"),
            text: "hey".into(),
            created_at: 2,
        };
        ThreadDoc::add_comment(&mut ben, &comment).unwrap();
        ben.commit();
        let mut eve = ben.fork().with_actor(actor_id(uid(3), [0; 8]));
        let (_, obj) = eve
            .get(ROOT, format!("comment/{}", comment.id))
            .unwrap()
            .unwrap();
        eve.put(&obj, "text", "edited by eve").unwrap();
        let change = last_change(&mut eve);
        assert!(matches!(
            check_change(&thread, &change),
            Err(RuleViolation::ForeignObject { .. })
        ));
    }

    #[test]
    fn unknown_root_keys_and_foreign_actors_are_refused() {
        let thread = DocId::Thread(PostId::new(uid(1), b"p"));
        let mut doc = doc_of(uid(2));
        doc.put(ROOT, "likes", 1).unwrap();
        let change = last_change(&mut doc);
        assert!(matches!(
            check_change(&thread, &change),
            Err(RuleViolation::ForeignKey { .. })
        ));

        let mut stranger = AutoCommit::new().with_actor(automerge::ActorId::from(vec![9u8; 4]));
        stranger.put(ROOT, "name", "x").unwrap();
        let change = last_change(&mut stranger);
        assert!(matches!(
            check_change(&thread, &change),
            Err(RuleViolation::UnknownActor { .. })
        ));
    }
}
