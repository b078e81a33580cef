//! The derived index: plain tables for fast queries, always rebuildable from the documents.
//!
//! After a document changes (a local edit or a merge), [`update`] asks Automerge which root
//! keys the new changes touched and brings exactly those rows up to date, so the cost
//! follows the size of the change, not of the document. While doing so it keeps the local
//! user's timeline (the materialized feed) in step and records the notifications the change
//! causes. [`rebuild`] throws the index away and derives it again from every stored
//! document.

use std::collections::BTreeSet;

use automerge::{AutoCommit, ChangeHash, PatchAction, Prop, ReadDoc};
use rusqlite::{Connection, params};
use social_sync_protocol::{CommentId, DocId, PostId, UserId};

use super::{deletes, documents, notifications};
use crate::Result;
use crate::model::thread::ThreadKey;
use crate::model::user::UserKey;
use crate::model::{ThreadDoc, UserDoc};
use crate::store::notifications::{Event, Notification, NotificationKind};

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
    let indexer = Indexer {
        conn,
        me,
        live: true,
    };
    let mut new = Vec::new();
    for key in keys {
        if let Some(event) = indexer.sync_key(doc, am, &key)?
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
/// Notifications (the user's own read state) are kept, and none are made; damaged
/// documents are reported, not fatal.
pub fn rebuild(conn: &Connection, me: UserId) -> Result<RebuildReport> {
    conn.execute_batch(
        "DELETE FROM posts; DELETE FROM likes; DELETE FROM comments;
         DELETE FROM follows; DELETE FROM profiles; DELETE FROM timeline;
         INSERT INTO posts_fts(posts_fts) VALUES ('rebuild');
         INSERT INTO comments_fts(comments_fts) VALUES ('rebuild');",
    )?;
    let indexer = Indexer {
        conn,
        me,
        live: false,
    };
    let mut report = RebuildReport::default();
    for doc in documents::list(conn)? {
        match documents::load(conn, &doc) {
            Ok(Some(am)) => {
                for key in am.keys(automerge::ROOT) {
                    indexer.sync_key(&doc, &am, &key)?;
                }
                report.documents += 1;
            }
            Ok(None) => {}
            Err(e @ crate::model::ModelError::DamagedDocument { .. }) => {
                report.damaged.push((doc, e.to_string()))
            }
            Err(e) => return Err(e.into()),
        }
    }
    // The timeline in one statement, rather than row by row.
    conn.execute(
        "INSERT INTO timeline (created_at, post_id, author)
         SELECT created_at, post_id, author FROM posts
         WHERE author = ?1 OR author IN (SELECT followee FROM follows WHERE follower = ?1)",
        [me.to_string()],
    )?;
    Ok(report)
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

/// Writes index rows for the local user `me`.
struct Indexer<'a> {
    conn: &'a Connection,
    me: UserId,
    /// Live updates keep the timeline row by row; a rebuild fills it once at the end.
    live: bool,
}

impl Indexer<'_> {
    /// Writes the index rows of one root key from the document's current state. Returns
    /// the event it stands for if it is a like, comment or follow aimed at `me` by someone
    /// else.
    fn sync_key(&self, doc: &DocId, am: &AutoCommit, key: &str) -> Result<Option<Event>> {
        match doc {
            DocId::User(owner) => match UserKey::parse(key) {
                Some(UserKey::Profile) => self.profile(*owner, am).map(|()| None),
                Some(UserKey::Post(post)) if post.author() == *owner => {
                    self.post(*owner, am, &post).map(|()| None)
                }
                Some(UserKey::Follow(followee)) => {
                    let at = UserDoc(am).followed_at(followee);
                    self.follow(*owner, followee, at)?;
                    Ok(at
                        .filter(|_| followee == self.me && *owner != self.me)
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
                let mine = post.author() == self.me;
                match ThreadKey::parse(key) {
                    Some(ThreadKey::Like(uid)) => {
                        let at = ThreadDoc(am).liked_at(uid);
                        self.like(post, uid, at)?;
                        Ok(at.filter(|_| mine && uid != self.me).map(|at| Event {
                            kind: NotificationKind::Like,
                            actor: uid,
                            post_id: Some(post.clone()),
                            comment_id: None,
                            created_at: at,
                        }))
                    }
                    Some(ThreadKey::Comment(id)) => {
                        let entry = ThreadDoc(am).comment(&id);
                        self.comment(
                            post,
                            &id,
                            entry.as_ref().map(|c| (c.text.as_str(), c.created_at)),
                        )?;
                        Ok(entry
                            .filter(|_| mine && id.author() != self.me)
                            .map(|c| Event {
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

    /// Runs one statement, prepared once per connection (indexing 10,000 posts runs the
    /// same few statements 10,000 times).
    fn exec(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
        self.conn.prepare_cached(sql)?.execute(params)
    }

    fn profile(&self, owner: UserId, am: &AutoCommit) -> Result<()> {
        let p = UserDoc(am).profile();
        self.exec(
            "INSERT INTO profiles (uid, name, bio, avatar) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (uid) DO UPDATE SET
                name = excluded.name, bio = excluded.bio, avatar = excluded.avatar",
            params![
                owner.to_string(),
                p.name,
                p.bio,
                p.avatar.map(|h| h.to_string())
            ],
        )?;
        Ok(())
    }

    fn post(&self, owner: UserId, am: &AutoCommit, id: &PostId) -> Result<()> {
        let Some(post) = UserDoc(am).post(id) else {
            let held = self.exec("DELETE FROM posts WHERE post_id = ?1", [id.as_str()])?;
            self.exec("DELETE FROM timeline WHERE post_id = ?1", [id.as_str()])?;
            if held > 0 {
                // Its author deleted a post this profile held.
                deletes::record(self.conn, id)?;
            }
            return Ok(());
        };
        deletes::forget(self.conn, id)?;
        let media: Vec<String> = post.media.iter().map(ToString::to_string).collect();
        self.exec(
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
        if self.live {
            self.exec("DELETE FROM timeline WHERE post_id = ?1", [id.as_str()])?;
            self.exec(
                "INSERT INTO timeline (created_at, post_id, author)
                 SELECT ?1, ?2, ?3 WHERE ?3 = ?4
                    OR EXISTS (SELECT 1 FROM follows WHERE follower = ?4 AND followee = ?3)",
                params![
                    post.created_at,
                    id.as_str(),
                    owner.to_string(),
                    self.me.to_string()
                ],
            )?;
        }
        Ok(())
    }

    fn follow(&self, follower: UserId, followee: UserId, at: Option<i64>) -> Result<()> {
        let (follower_s, followee_s) = (follower.to_string(), followee.to_string());
        match at {
            Some(at) => self.exec(
                "INSERT INTO follows (follower, followee, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (follower, followee) DO UPDATE SET created_at = excluded.created_at",
                params![follower_s, followee_s, at],
            )?,
            None => self.exec(
                "DELETE FROM follows WHERE follower = ?1 AND followee = ?2",
                params![follower_s, followee_s],
            )?,
        };
        if self.live && follower == self.me && followee != self.me {
            // The local user's timeline gains or loses all of that user's posts.
            self.exec("DELETE FROM timeline WHERE author = ?1", [&followee_s])?;
            if at.is_some() {
                self.exec(
                    "INSERT INTO timeline (created_at, post_id, author)
                     SELECT created_at, post_id, author FROM posts WHERE author = ?1",
                    [&followee_s],
                )?;
            }
        }
        Ok(())
    }

    fn like(&self, post: &PostId, uid: UserId, at: Option<i64>) -> Result<()> {
        match at {
            Some(at) => self.exec(
                "INSERT INTO likes (post_id, uid, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (post_id, uid) DO UPDATE SET created_at = excluded.created_at",
                params![post.as_str(), uid.to_string(), at],
            )?,
            None => self.exec(
                "DELETE FROM likes WHERE post_id = ?1 AND uid = ?2",
                params![post.as_str(), uid.to_string()],
            )?,
        };
        Ok(())
    }

    fn comment(&self, post: &PostId, id: &CommentId, entry: Option<(&str, i64)>) -> Result<()> {
        match entry {
            Some((text, created_at)) => self.exec(
                "INSERT INTO comments (comment_id, post_id, author, text, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (comment_id) DO UPDATE SET
                    text = excluded.text, created_at = excluded.created_at",
                params![
                    id.as_str(),
                    post.as_str(),
                    id.author().to_string(),
                    text,
                    created_at
                ],
            )?,
            None => self.exec(
                "DELETE FROM comments WHERE comment_id = ?1 AND post_id = ?2",
                params![id.as_str(), post.as_str()],
            )?,
        };
        Ok(())
    }
}
