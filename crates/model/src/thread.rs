//! `thread/<post_id>`: the likes and comments of one post. Each user writes only their own
//! entries.
//!
//! Root keys: `like/<uid>` → the time of the like; `comment/<comment_id>` → map `{text,
//! created_at}`. A comment's author is the user id its id starts with.

use automerge::{AutoCommit, AutomergeError, ObjType, ROOT, ReadDoc, transaction::Transactable};
use social_sync_protocol::{CommentId, UserId};

use super::{get_i64, get_str, keys_with_prefix, user::remove_key};

const LIKE: &str = "like/";
const COMMENT: &str = "comment/";
const TEXT: &str = "text";
const CREATED_AT: &str = "created_at";

/// One comment as stored in its thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentEntry {
    /// The comment's id (its author is part of it).
    pub id: CommentId,
    /// The text.
    pub text: String,
    /// When it was written, milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// What one root key of a thread document stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadKey {
    /// `like/<uid>`.
    Like(UserId),
    /// `comment/<comment_id>`.
    Comment(CommentId),
}

impl ThreadKey {
    /// Parses a root key; `None` for keys outside the schema.
    pub fn parse(key: &str) -> Option<Self> {
        if let Some(uid) = key.strip_prefix(LIKE) {
            uid.parse().ok().map(Self::Like)
        } else if let Some(id) = key.strip_prefix(COMMENT) {
            id.parse().ok().map(Self::Comment)
        } else {
            None
        }
    }

    /// The user who owns this key: only they may write it.
    pub fn owner(&self) -> UserId {
        match self {
            Self::Like(uid) => *uid,
            Self::Comment(id) => id.author(),
        }
    }
}

/// A read-only, typed view of a `thread/<post_id>` document.
#[derive(Clone, Copy)]
pub struct ThreadDoc<'a>(pub &'a AutoCommit);

impl<'a> ThreadDoc<'a> {
    /// When `uid` liked the post, if they do.
    pub fn liked_at(&self, uid: UserId) -> Option<i64> {
        get_i64(self.0, &ROOT, &format!("{LIKE}{uid}"))
    }

    /// Everyone who likes the post.
    pub fn likers(&self) -> impl Iterator<Item = UserId> + 'a {
        keys_with_prefix(self.0, LIKE).filter_map(|k| k[LIKE.len()..].parse().ok())
    }

    /// One comment, if present and well-formed.
    pub fn comment(&self, id: &CommentId) -> Option<CommentEntry> {
        let obj = match self.0.get(ROOT, format!("{COMMENT}{id}")).ok().flatten()? {
            (automerge::Value::Object(ObjType::Map), obj) => obj,
            _ => return None,
        };
        Some(CommentEntry {
            id: id.clone(),
            text: get_str(self.0, &obj, TEXT)?,
            created_at: get_i64(self.0, &obj, CREATED_AT)?,
        })
    }

    /// Ids of all comments, in key order.
    pub fn comment_ids(&self) -> impl Iterator<Item = CommentId> + 'a {
        keys_with_prefix(self.0, COMMENT).filter_map(|k| k[COMMENT.len()..].parse().ok())
    }

    /// Every root key in the schema, for a full reindex.
    pub fn keys(&self) -> impl Iterator<Item = ThreadKey> + 'a {
        self.0.keys(ROOT).filter_map(|k| ThreadKey::parse(&k))
    }

    /// Records `uid`'s like at `at` (keeps the first time if already liked).
    pub fn like(doc: &mut AutoCommit, uid: UserId, at: i64) -> Result<(), AutomergeError> {
        if ThreadDoc(doc).liked_at(uid).is_none() {
            doc.put(ROOT, format!("{LIKE}{uid}"), at)?;
        }
        Ok(())
    }

    /// Removes `uid`'s like; false if there was none.
    pub fn unlike(doc: &mut AutoCommit, uid: UserId) -> Result<bool, AutomergeError> {
        remove_key(doc, &format!("{LIKE}{uid}"))
    }

    /// Adds a comment.
    pub fn add_comment(doc: &mut AutoCommit, comment: &CommentEntry) -> Result<(), AutomergeError> {
        let obj = doc.put_object(ROOT, format!("{COMMENT}{}", comment.id), ObjType::Map)?;
        doc.put(&obj, TEXT, comment.text.as_str())?;
        doc.put(&obj, CREATED_AT, comment.created_at)?;
        Ok(())
    }

    /// Removes a comment; false if it was not there.
    pub fn remove_comment(doc: &mut AutoCommit, id: &CommentId) -> Result<bool, AutomergeError> {
        remove_key(doc, &format!("{COMMENT}{id}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(n: u8) -> UserId {
        UserId::from_bytes([n; 32])
    }

    #[test]
    fn likes_and_comments_round_trip() {
        let mut doc = AutoCommit::new();
        ThreadDoc::like(&mut doc, uid(1), 10).unwrap();
        ThreadDoc::like(&mut doc, uid(2), 11).unwrap();
        let comment = CommentEntry {
            id: CommentId::new(uid(2), b"c1"),
            text: "nice".into(),
            created_at: 12,
        };
        ThreadDoc::add_comment(&mut doc, &comment).unwrap();

        let view = ThreadDoc(&doc);
        assert_eq!(view.likers().collect::<Vec<_>>().len(), 2);
        assert_eq!(view.liked_at(uid(1)), Some(10));
        assert_eq!(view.comment(&comment.id), Some(comment.clone()));
        assert_eq!(view.keys().count(), 3);

        assert!(ThreadDoc::unlike(&mut doc, uid(1)).unwrap());
        assert!(ThreadDoc::remove_comment(&mut doc, &comment.id).unwrap());
        assert_eq!(ThreadDoc(&doc).likers().collect::<Vec<_>>(), vec![uid(2)]);
        assert_eq!(ThreadDoc(&doc).comment_ids().count(), 0);
    }

    #[test]
    fn concurrent_likes_from_two_replicas_both_survive() {
        // The reason for flat keys: two replicas that never synced each add a like; after
        // merging, both likes are there.
        let mut a = AutoCommit::new();
        let mut b = AutoCommit::new();
        ThreadDoc::like(&mut a, uid(1), 1).unwrap();
        ThreadDoc::like(&mut b, uid(2), 2).unwrap();
        a.merge(&mut b).unwrap();
        assert_eq!(ThreadDoc(&a).likers().count(), 2);
    }
}
