//! `user/<uid>`: a user's profile, posts and follows. Written by its owner only.
//!
//! Root keys: `name`, `bio`, `avatar` (strings); `post/<post_id>` → map `{text, media: [blob
//! hash], created_at}`; `follow/<uid>` → the time of the follow.

use automerge::{
    AutoCommit, AutomergeError, ObjId, ObjType, ROOT, ReadDoc, transaction::Transactable,
};
use social_sync_protocol::{BlobHash, PostId, UserId};

use super::{get_i64, get_str, keys_with_prefix, put_str_if_changed};

const NAME: &str = "name";
const BIO: &str = "bio";
const AVATAR: &str = "avatar";
const POST: &str = "post/";
const FOLLOW: &str = "follow/";
const TEXT: &str = "text";
const MEDIA: &str = "media";
const CREATED_AT: &str = "created_at";

/// The profile part of a user document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileFields {
    /// Display name; empty until the owner sets one.
    pub name: String,
    /// Free text about the user.
    pub bio: String,
    /// The avatar image, if any.
    pub avatar: Option<BlobHash>,
}

/// One post as stored in its author's document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostEntry {
    /// The post's id (its author is part of it).
    pub id: PostId,
    /// The text.
    pub text: String,
    /// Attached images, in order.
    pub media: Vec<BlobHash>,
    /// When it was posted, milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// What one root key of a user document stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserKey {
    /// `name`, `bio` or `avatar`.
    Profile,
    /// `post/<post_id>`.
    Post(PostId),
    /// `follow/<uid>`.
    Follow(UserId),
}

impl UserKey {
    /// Parses a root key; `None` for keys outside the schema.
    pub fn parse(key: &str) -> Option<Self> {
        if matches!(key, NAME | BIO | AVATAR) {
            Some(Self::Profile)
        } else if let Some(id) = key.strip_prefix(POST) {
            id.parse().ok().map(Self::Post)
        } else if let Some(uid) = key.strip_prefix(FOLLOW) {
            uid.parse().ok().map(Self::Follow)
        } else {
            None
        }
    }
}

/// A read-only, typed view of a `user/<uid>` document.
#[derive(Clone, Copy)]
pub struct UserDoc<'a>(pub &'a AutoCommit);

impl<'a> UserDoc<'a> {
    /// The profile fields.
    pub fn profile(&self) -> ProfileFields {
        ProfileFields {
            name: get_str(self.0, &ROOT, NAME).unwrap_or_default(),
            bio: get_str(self.0, &ROOT, BIO).unwrap_or_default(),
            avatar: get_str(self.0, &ROOT, AVATAR).and_then(|h| h.parse().ok()),
        }
    }

    /// One post, if present and well-formed.
    pub fn post(&self, id: &PostId) -> Option<PostEntry> {
        let obj = match self.0.get(ROOT, format!("{POST}{id}")).ok().flatten()? {
            (automerge::Value::Object(ObjType::Map), obj) => obj,
            _ => return None,
        };
        let text = get_str(self.0, &obj, TEXT)?;
        let created_at = get_i64(self.0, &obj, CREATED_AT)?;
        Some(PostEntry {
            id: id.clone(),
            text,
            media: self.media(&obj),
            created_at,
        })
    }

    fn media(&self, post: &ObjId) -> Vec<BlobHash> {
        let Some((automerge::Value::Object(ObjType::List), list)) =
            self.0.get(post, MEDIA).ok().flatten()
        else {
            return Vec::new();
        };
        (0..self.0.length(&list))
            .filter_map(|i| match self.0.get(&list, i).ok().flatten()? {
                (automerge::Value::Scalar(s), _) => s.as_str().and_then(|h| h.parse().ok()),
                _ => None,
            })
            .collect()
    }

    /// Ids of all posts, in key order.
    pub fn post_ids(&self) -> impl Iterator<Item = PostId> + 'a {
        keys_with_prefix(self.0, POST).filter_map(|k| k[POST.len()..].parse().ok())
    }

    /// When the owner followed `uid`, if they do.
    pub fn followed_at(&self, uid: UserId) -> Option<i64> {
        get_i64(self.0, &ROOT, &format!("{FOLLOW}{uid}"))
    }

    /// Everyone the owner follows.
    pub fn follows(&self) -> impl Iterator<Item = UserId> + 'a {
        keys_with_prefix(self.0, FOLLOW).filter_map(|k| k[FOLLOW.len()..].parse().ok())
    }

    /// Every root key in the schema, for a full reindex.
    pub fn keys(&self) -> impl Iterator<Item = UserKey> + 'a {
        self.0.keys(ROOT).filter_map(|k| UserKey::parse(&k))
    }

    /// Sets the profile fields that differ from what is stored.
    pub fn set_profile(doc: &mut AutoCommit, fields: &ProfileFields) -> Result<(), AutomergeError> {
        put_str_if_changed(doc, &ROOT, NAME, &fields.name)?;
        put_str_if_changed(doc, &ROOT, BIO, &fields.bio)?;
        match &fields.avatar {
            Some(hash) => put_str_if_changed(doc, &ROOT, AVATAR, &hash.to_string())?,
            None if get_str(doc, &ROOT, AVATAR).is_some() => doc.delete(ROOT, AVATAR)?,
            None => {}
        }
        Ok(())
    }

    /// Adds a post.
    pub fn add_post(doc: &mut AutoCommit, post: &PostEntry) -> Result<(), AutomergeError> {
        let obj = doc.put_object(ROOT, format!("{POST}{}", post.id), ObjType::Map)?;
        doc.put(&obj, TEXT, post.text.as_str())?;
        doc.put(&obj, CREATED_AT, post.created_at)?;
        let media = doc.put_object(&obj, MEDIA, ObjType::List)?;
        for (i, hash) in post.media.iter().enumerate() {
            doc.insert(&media, i, hash.to_string())?;
        }
        Ok(())
    }

    /// Removes a post; false if it was not there.
    pub fn remove_post(doc: &mut AutoCommit, id: &PostId) -> Result<bool, AutomergeError> {
        remove_key(doc, &format!("{POST}{id}"))
    }

    /// Records a follow of `uid` at `at` (keeps the first time if already following).
    pub fn follow(doc: &mut AutoCommit, uid: UserId, at: i64) -> Result<(), AutomergeError> {
        if UserDoc(doc).followed_at(uid).is_none() {
            doc.put(ROOT, format!("{FOLLOW}{uid}"), at)?;
        }
        Ok(())
    }

    /// Removes a follow; false if there was none.
    pub fn unfollow(doc: &mut AutoCommit, uid: UserId) -> Result<bool, AutomergeError> {
        remove_key(doc, &format!("{FOLLOW}{uid}"))
    }
}

/// Deletes a root key if present.
pub(super) fn remove_key(doc: &mut AutoCommit, key: &str) -> Result<bool, AutomergeError> {
    if doc.get(ROOT, key)?.is_some() {
        doc.delete(ROOT, key)?;
        Ok(true)
    } else {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(n: u8) -> UserId {
        UserId::from_bytes([n; 32])
    }

    #[test]
    fn posts_profile_and_follows_round_trip() {
        let mut doc = AutoCommit::new();
        let post = PostEntry {
            id: PostId::new(uid(1), b"abcdefghij"),
            text: "hello".into(),
            media: vec![BlobHash::from_digest([7; 32])],
            created_at: 42,
        };
        UserDoc::add_post(&mut doc, &post).unwrap();
        UserDoc::set_profile(
            &mut doc,
            &ProfileFields {
                name: "Ana".into(),
                bio: "hi".into(),
                avatar: None,
            },
        )
        .unwrap();
        UserDoc::follow(&mut doc, uid(2), 5).unwrap();
        UserDoc::follow(&mut doc, uid(2), 9).unwrap();

        let view = UserDoc(&doc);
        assert_eq!(view.post(&post.id), Some(post.clone()));
        assert_eq!(view.post_ids().collect::<Vec<_>>(), vec![post.id.clone()]);
        assert_eq!(view.profile().name, "Ana");
        assert_eq!(
            view.followed_at(uid(2)),
            Some(5),
            "the first follow time is kept"
        );
        assert_eq!(view.follows().collect::<Vec<_>>(), vec![uid(2)]);
        assert_eq!(view.keys().count(), 4, "name, bio, one post, one follow");

        assert!(UserDoc::remove_post(&mut doc, &post.id).unwrap());
        assert!(!UserDoc::remove_post(&mut doc, &post.id).unwrap());
        assert!(UserDoc::unfollow(&mut doc, uid(2)).unwrap());
        assert_eq!(UserDoc(&doc).post(&post.id), None);
        assert_eq!(UserDoc(&doc).follows().count(), 0);
    }

    #[test]
    fn keys_outside_the_schema_are_not_entries() {
        assert_eq!(UserKey::parse("post/nope"), None);
        assert_eq!(UserKey::parse("likes"), None);
        assert_eq!(UserKey::parse("name"), Some(UserKey::Profile));
    }
}
