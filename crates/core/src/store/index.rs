//! The derived index: plain tables for fast queries, always rebuildable from the documents.
//!
//! After a document changes (a local edit or a merge), [`update`] asks Automerge which root
//! keys the new changes touched and brings exactly those rows up to date, so the cost
//! follows the size of the change, not of the document. While doing so it records the
//! notifications the change causes for the local user. [`rebuild`] throws the index away
//! and derives it again from every stored document.

use std::collections::BTreeSet;

use automerge::{AutoCommit, ChangeHash, PatchAction, Prop};
use rusqlite::{Connection, params};
use social_sync_protocol::{DocId, PostId, UserId};

use super::{documents, notifications};
use crate::model::thread::ThreadKey;
use crate::model::user::UserKey;
use crate::model::{ThreadDoc, UserDoc};
use crate::store::notifications::{Event, Notification, NotificationKind};
use crate::{Error, Result};

/// Brings the index up to date with what changed in `doc` between `before` and its current
/// heads, and returns the notifications this causes for `me`, each at most once ever.
pub fn update(
    conn: &Connection,
    me: UserId,
    doc: &DocId,
    am: &mut AutoCommit,
    before: &[ChangeHash],
) -> Result<Vec<Notification>> {
    let after = am.get_heads();
    if before == after.as_slice() {
        return Ok(Vec::new());
    }
    let keys = touched_root_keys(am.diff(before, &after));
    let mut new = Vec::new();
    for key in keys {
        if let Some(event) = sync_key(conn, doc, am, &key, me)?
            && let Some(n) = notifications::record(conn, &event)?
        {
            new.push(n);
        }
    }
    Ok(new)
}

/// What a full rebuild found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    /// Documents indexed.
    pub documents: usize,
    /// Documents that could not be loaded, with the reason; the rest are indexed.
    pub damaged: Vec<(DocId, String)>,
}

/// Empties the index and derives it again from every stored document, as seen by `me`.
/// Notifications (the user's own read state) are kept; damaged documents are reported, not
/// fatal.
pub fn rebuild(conn: &Connection, me: UserId) -> Result<RebuildReport> {
    conn.execute_batch(
        "DELETE FROM posts; DELETE FROM likes; DELETE FROM comments;
         DELETE FROM follows; DELETE FROM profiles; DELETE FROM timeline;
         INSERT INTO posts_fts(posts_fts) VALUES ('rebuild');",
    )?;
    let mut report = RebuildReport::default();
    for doc in documents::list(conn)? {
        match documents::load(conn, &doc) {
            Ok(Some(am)) => {
                index_all(conn, me, &doc, &am)?;
                report.documents += 1;
            }
            Ok(None) => {}
            Err(e @ Error::DamagedDocument { .. }) => report.damaged.push((doc, e.to_string())),
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

/// Indexes every key of one document; the events it finds are not notified (a rebuild
/// keeps the notifications there are).
fn index_all(conn: &Connection, me: UserId, doc: &DocId, am: &AutoCommit) -> Result<()> {
    let keys: Vec<String> = automerge::ReadDoc::keys(am, automerge::ROOT).collect();
    for key in keys {
        sync_key(conn, doc, am, &key, me)?;
    }
    Ok(())
}

/// The root keys that the patches touch.
fn touched_root_keys(patches: Vec<automerge::Patch>) -> BTreeSet<String> {
    patches
        .into_iter()
        .filter_map(|p| match p.path.into_iter().next() {
            Some((_, Prop::Map(key))) => Some(key),
            Some((_, Prop::Seq(_))) => None,
            None => match p.action {
                PatchAction::PutMap { key, .. } | PatchAction::DeleteMap { key } => Some(key),
                PatchAction::Increment {
                    prop: Prop::Map(key),
                    ..
                }
                | PatchAction::Conflict {
                    prop: Prop::Map(key),
                } => Some(key),
                _ => None,
            },
        })
        .collect()
}

/// Writes the index rows of one root key from the document's current state. Returns the
/// event it represents for `me`, if it is a like, comment or follow aimed at `me` by
/// someone else.
fn sync_key(
    conn: &Connection,
    doc: &DocId,
    am: &AutoCommit,
    key: &str,
    me: UserId,
) -> Result<Option<Event>> {
    match doc {
        DocId::User(owner) => match UserKey::parse(key) {
            Some(UserKey::Profile) => sync_profile(conn, *owner, am).map(|()| None),
            Some(UserKey::Post(post)) if post.author() == *owner => {
                sync_post(conn, me, *owner, am, &post).map(|()| None)
            }
            Some(UserKey::Follow(followee)) => {
                let at = UserDoc(am).followed_at(followee);
                sync_follow(conn, me, *owner, followee, at)?;
                Ok(at
                    .filter(|_| followee == me && *owner != me)
                    .map(|at| Event {
                        kind: NotificationKind::Follow,
                        actor: *owner,
                        post_id: None,
                        comment_id: None,
                        created_at: at,
                    }))
            }
            _ => Ok(None),
        },
        DocId::Thread(post) => {
            let mine = post.author() == me;
            match ThreadKey::parse(key) {
                Some(ThreadKey::Like(uid)) => {
                    let at = ThreadDoc(am).liked_at(uid);
                    match at {
                        Some(at) => conn.execute(
                            "INSERT INTO likes (post_id, uid, created_at) VALUES (?1, ?2, ?3)
                             ON CONFLICT (post_id, uid) DO UPDATE SET created_at = excluded.created_at",
                            params![post.as_str(), uid.to_string(), at],
                        )?,
                        None => conn.execute(
                            "DELETE FROM likes WHERE post_id = ?1 AND uid = ?2",
                            params![post.as_str(), uid.to_string()],
                        )?,
                    };
                    Ok(at.filter(|_| mine && uid != me).map(|at| Event {
                        kind: NotificationKind::Like,
                        actor: uid,
                        post_id: Some(post.clone()),
                        comment_id: None,
                        created_at: at,
                    }))
                }
                Some(ThreadKey::Comment(id)) => {
                    let entry = ThreadDoc(am).comment(&id);
                    match &entry {
                        Some(c) => conn.execute(
                            "INSERT INTO comments (comment_id, post_id, author, text, created_at)
                             VALUES (?1, ?2, ?3, ?4, ?5)
                             ON CONFLICT (comment_id) DO UPDATE SET
                                text = excluded.text, created_at = excluded.created_at",
                            params![
                                id.as_str(),
                                post.as_str(),
                                id.author().to_string(),
                                c.text,
                                c.created_at
                            ],
                        )?,
                        None => conn.execute(
                            "DELETE FROM comments WHERE comment_id = ?1 AND post_id = ?2",
                            params![id.as_str(), post.as_str()],
                        )?,
                    };
                    Ok(entry.filter(|_| mine && id.author() != me).map(|c| Event {
                        kind: NotificationKind::Comment,
                        actor: id.author(),
                        post_id: Some(post.clone()),
                        comment_id: Some(id),
                        created_at: c.created_at,
                    }))
                }
                None => Ok(None),
            }
        }
    }
}

fn sync_profile(conn: &Connection, owner: UserId, am: &AutoCommit) -> Result<()> {
    let p = UserDoc(am).profile();
    conn.execute(
        "INSERT INTO profiles (uid, name, bio, avatar) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (uid) DO UPDATE SET name = excluded.name, bio = excluded.bio, avatar = excluded.avatar",
        params![owner.to_string(), p.name, p.bio, p.avatar.map(|h| h.to_string())],
    )?;
    Ok(())
}

fn sync_post(conn: &Connection, me: UserId, owner: UserId, am: &AutoCommit, id: &PostId) -> Result<()> {
    match UserDoc(am).post(id) {
        Some(post) => {
            let media: Vec<String> = post.media.iter().map(ToString::to_string).collect();
            conn.execute(
                "INSERT INTO posts (post_id, author, text, media, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (post_id) DO UPDATE SET
                    text = excluded.text, media = excluded.media, created_at = excluded.created_at",
                params![
                    id.as_str(),
                    owner.to_string(),
                    post.text,
                    serde_json::Value::from(media).to_string(),
                    post.created_at
                ],
            )?;
            conn.execute("DELETE FROM timeline WHERE post_id = ?1", [id.as_str()])?;
            conn.execute(
                "INSERT INTO timeline (created_at, post_id, author)
                 SELECT ?1, ?2, ?3 WHERE ?3 = ?4
                    OR EXISTS (SELECT 1 FROM follows WHERE follower = ?4 AND followee = ?3)",
                params![post.created_at, id.as_str(), owner.to_string(), me.to_string()],
            )?;
        }
        None => {
            conn.execute("DELETE FROM posts WHERE post_id = ?1", [id.as_str()])?;
            conn.execute("DELETE FROM timeline WHERE post_id = ?1", [id.as_str()])?;
        }
    }
    Ok(())
}

fn sync_follow(
    conn: &Connection,
    me: UserId,
    follower: UserId,
    followee: UserId,
    at: Option<i64>,
) -> Result<()> {
    if follower == me && followee != me {
        // The local user's timeline gains or loses all of that user's posts.
        conn.execute("DELETE FROM timeline WHERE author = ?1", [followee.to_string()])?;
        if at.is_some() {
            conn.execute(
                "INSERT INTO timeline (created_at, post_id, author)
                 SELECT created_at, post_id, author FROM posts WHERE author = ?1",
                [followee.to_string()],
            )?;
        }
    }
    match at {
        Some(at) => conn.execute(
            "INSERT INTO follows (follower, followee, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (follower, followee) DO UPDATE SET created_at = excluded.created_at",
            params![follower.to_string(), followee.to_string(), at],
        )?,
        None => conn.execute(
            "DELETE FROM follows WHERE follower = ?1 AND followee = ?2",
            params![follower.to_string(), followee.to_string()],
        )?,
    };
    Ok(())
}
