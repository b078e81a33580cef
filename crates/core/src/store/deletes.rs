//! Deleted posts, and what happens to the likes and comments that race with a delete.
//!
//! # Design
//!
//! A post is deleted by removing `post/<id>` from its author's user document
//! ([`crate::Replica::delete_post`]). Its thread document (`thread/<id>`) is someone
//! else's to write, so nothing stops a like or comment made before the liker heard of the
//! delete: Automerge merges it, and the relay stores and forwards it like any other change.
//! Each side then acts on what it knows:
//!
//! - **Every replica that saw the post go** (the author's own devices, and everyone who held
//!   the post) records a *tombstone* here when the index drops the post. A later `like`,
//!   `comment`, `thread` or `post` on it fails with [`crate::Error::DeletedPost`] ("was
//!   deleted by its author"), not with "not in this profile" (never received). A replica
//!   that receives a post and its delete in one batch never held it and keeps no tombstone:
//!   to it the post was never there.
//! - **The author** is never notified of a reaction to a post their profile does not hold
//!   ([`super::notifications::record`] checks the post is indexed), and the delete removes
//!   the notifications already raised for it, read or not. The list and the unread count
//!   also leave out any notification whose post is not indexed (a device restored from a
//!   backup may get a thread before the user document saying its post is gone), so they
//!   always agree with the posts shown.
//! - **The liker/commenter** whose reaction was still waiting to be sent when the delete
//!   arrived is told: when a sync round settles, every outbox entry for the thread of a
//!   tombstoned post leaves the outbox and is reported as [`Undelivered`] (in the sync
//!   summary, as an event, and in the CLI's `sync` output). The outbox is never stuck on it.
//!
//! The relay does not refuse reactions to a post deleted after its thread was stored: it
//! keeps no index of posts, a refused change would be offered again at every sync (the
//! client would then need the same settling anyway), and a stored reaction to a deleted
//! post is harmless: no replica shows it, none notifies. The relay still refuses a thread
//! for a post it has never received.
//!
//! Tombstones are the profile's memory, kept by `reindex` like notifications: a rebuild
//! from the documents alone cannot tell a deleted post from one never received.

use rusqlite::{Connection, params};
use serde::Serialize;
use social_sync_protocol::{DocId, PostId, UserId};

use crate::Result;

/// Local reactions (likes, comments, their removal) that never reached the post's author
/// because the author deleted the post before they were sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Undelivered {
    /// The deleted post.
    pub post_id: PostId,
    /// Its author.
    pub author: UserId,
    /// How many local changes to its thread were waiting.
    pub changes: u64,
}

impl std::fmt::Display for Undelivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "your like or comment on post {} was not delivered: its author deleted the post ({} change{} dropped)",
            self.post_id,
            self.changes,
            if self.changes == 1 { "" } else { "s" }
        )
    }
}

/// Records that `post` was deleted by its author, and removes the notifications raised
/// for it. Called by the index when a post it held disappears from its author's document.
pub fn record(conn: &Connection, post: &PostId) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO deleted_posts (post_id, author) VALUES (?1, ?2)",
        params![post.as_str(), post.author().to_string()],
    )?;
    conn.execute(
        "DELETE FROM notifications WHERE post_id = ?1",
        [post.as_str()],
    )?;
    Ok(())
}

/// Forgets the tombstone of `post` (its author's document holds it again).
pub fn forget(conn: &Connection, post: &PostId) -> Result<()> {
    conn.execute(
        "DELETE FROM deleted_posts WHERE post_id = ?1",
        [post.as_str()],
    )?;
    Ok(())
}

/// Whether this profile saw `post` deleted.
pub fn is_deleted(conn: &Connection, post: &PostId) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM deleted_posts WHERE post_id = ?1)")?
        .query_row([post.as_str()], |r| r.get(0))?)
}

/// Takes out of the outbox every thread of a deleted post, and returns them: local changes
/// that will never reach anyone.
pub fn settle_outbox(conn: &Connection) -> Result<Vec<Undelivered>> {
    let mut stmt = conn.prepare_cached(
        "SELECT o.doc_id, o.changes FROM outbox o
         JOIN deleted_posts d ON o.doc_id = 'thread/' || d.post_id
         ORDER BY o.doc_id",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (doc, changes) = row?;
        if let DocId::Thread(post_id) = doc.parse()? {
            out.push(Undelivered {
                author: post_id.author(),
                post_id,
                changes,
            });
        }
    }
    for u in &out {
        conn.execute(
            "DELETE FROM outbox WHERE doc_id = ?1",
            [DocId::Thread(u.post_id.clone()).to_string()],
        )?;
    }
    Ok(out)
}
