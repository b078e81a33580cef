//! Notifications: likes and comments on the user's posts and follows of the user, made by
//! someone else. Each has a deterministic id (a hash of kind, actor and target), so
//! receiving the same change twice, re-syncing or reconnecting never notifies twice.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;
use sha2::{Digest, Sha256};
use social_sync_protocol::{CommentId, PostId, UserId};

use super::blocks::not_blocked;
use crate::{Error, Result};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationKind {
    /// Someone liked one of the user's posts.
    Like,
    /// Someone commented on one of the user's posts.
    Comment,
    /// Someone followed the user.
    Follow,
}

impl NotificationKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Like => "like",
            Self::Comment => "comment",
            Self::Follow => "follow",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "like" => Some(Self::Like),
            "comment" => Some(Self::Comment),
            "follow" => Some(Self::Follow),
            _ => None,
        }
    }
}

/// An event aimed at the user, as derived from a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: NotificationKind,
    /// Who did it.
    pub actor: UserId,
    /// The post liked or commented on.
    pub post_id: Option<PostId>,
    /// The comment, for comments.
    pub comment_id: Option<CommentId>,
    /// When it happened (the actor's clock), ms since the Unix epoch.
    pub created_at: i64,
}

impl Event {
    /// The deterministic id: the same event always gets the same id.
    pub fn id(&self) -> String {
        let target = match (&self.comment_id, &self.post_id) {
            (Some(c), _) => c.to_string(),
            (None, Some(p)) => p.to_string(),
            (None, None) => String::new(),
        };
        let digest = Sha256::digest(format!(
            "{}\n{}\n{}",
            self.kind.as_str(),
            self.actor,
            target
        ));
        data_encoding::HEXLOWER.encode(&digest[..16])
    }
}

/// A stored notification, as the UI and the CLI show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// Deterministic id (see [`Event::id`]).
    pub id: String,
    /// What happened.
    pub kind: NotificationKind,
    /// Who did it.
    pub actor: UserId,
    /// Their display name, if their profile has arrived.
    pub actor_name: Option<String>,
    /// The post concerned (likes and comments).
    pub post_id: Option<PostId>,
    /// The comment (comments only).
    pub comment_id: Option<CommentId>,
    /// When it happened, ms since the Unix epoch.
    pub created_at: i64,
    /// Whether the user has read it.
    pub read: bool,
}

/// Stores the notification for `event` unless it exists already; returns it only if new.
/// Nothing is stored for a blocked actor, nor for a like or comment on a muted post or on
/// a deleted one (see [`super::deletes`]): one this profile saw deleted, or one missing
/// from its author's document held here.
pub fn record(conn: &Connection, event: &Event) -> Result<Option<Notification>> {
    if super::blocks::is_blocked(conn, event.actor)? {
        return Ok(None);
    }
    if let Some(post) = &event.post_id
        && (super::mutes::is_muted(conn, post)? || post_is_gone(conn, post)?)
    {
        return Ok(None);
    }
    let id = event.id();
    let inserted = conn.execute(
        "INSERT OR IGNORE INTO notifications (id, kind, actor, post_id, comment_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            id,
            event.kind.as_str(),
            event.actor.to_string(),
            event.post_id.as_ref().map(PostId::as_str),
            event.comment_id.as_ref().map(CommentId::as_str),
            event.created_at
        ],
    )?;
    if inserted == 0 {
        return Ok(None);
    }
    get(conn, &id)
}

/// Whether `post` was deleted, as far as this profile can tell: it saw it deleted, or it
/// holds the author's document and the post is not indexed. (A thread may arrive before
/// its author's document: then the post is given the benefit of the doubt.)
fn post_is_gone(conn: &Connection, post: &PostId) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM deleted_posts WHERE post_id = ?1)
                 OR (NOT EXISTS (SELECT 1 FROM posts WHERE post_id = ?1)
                     AND EXISTS (SELECT 1 FROM documents WHERE doc_id = 'user/' || ?2))",
        )?
        .query_row(params![post.as_str(), post.author().to_string()], |r| {
            r.get(0)
        })?)
}

const SELECT: &str =
    "SELECT n.id, n.kind, n.actor, p.name, n.post_id, n.comment_id, n.created_at, n.read
     FROM notifications n LEFT JOIN profiles p ON p.uid = n.actor";

fn get(conn: &Connection, id: &str) -> Result<Option<Notification>> {
    Ok(conn
        .query_row(&format!("{SELECT} WHERE n.id = ?1"), [id], from_row)
        .optional()?)
}

/// SQL condition: the notification's post (if any) is one this profile shows. A like or
/// comment whose thread arrived before its post is shown once the post arrives; one on a
/// post deleted since is not shown (the delete also removes it, see [`super::deletes`]).
macro_rules! post_shown {
    ($col:literal) => {
        concat!(
            "(",
            $col,
            " IS NULL OR ",
            $col,
            " IN (SELECT post_id FROM posts))"
        )
    };
}

/// Notifications, newest first; only unread ones if `unread_only`. Those of people
/// blocked since, and those about a post this profile does not show, are left out.
pub fn list(conn: &Connection, unread_only: bool, limit: usize) -> Result<Vec<Notification>> {
    list_of_kinds(conn, unread_only, &[], limit)
}

/// Newest first, only of the given kinds (every kind when `kinds` is empty), at most
/// `limit`.
pub fn list_of_kinds(
    conn: &Connection,
    unread_only: bool,
    kinds: &[NotificationKind],
    limit: usize,
) -> Result<Vec<Notification>> {
    // The kinds are this enum's own fixed words, never user text: safe to inline.
    let of_kinds = if kinds.is_empty() {
        String::new()
    } else {
        let words: Vec<String> = kinds.iter().map(|k| format!("'{}'", k.as_str())).collect();
        format!(" AND n.kind IN ({})", words.join(","))
    };
    let sql = format!(
        "{SELECT} WHERE (?1 = 0 OR n.read = 0) AND {} AND {}{of_kinds} ORDER BY n.created_at DESC, n.id DESC LIMIT ?2",
        not_blocked!("n.actor"),
        post_shown!("n.post_id")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![unread_only, limit], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The row number of the newest stored notification (0 when there is none): where
/// [`stored_after`] starts.
pub fn last_row(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT COALESCE(MAX(rowid), 0) FROM notifications",
        [],
        |r| r.get(0),
    )?)
}

/// Notifications stored after row `after` (by this process or another one on the same
/// profile), in the order they were stored, with the row number to ask after next time.
/// Those of people blocked are left out.
pub fn stored_after(conn: &Connection, after: i64) -> Result<(Vec<Notification>, i64)> {
    let sql = format!(
        "{SELECT} WHERE n.rowid > ?1 AND {} ORDER BY n.rowid",
        not_blocked!("n.actor")
    );
    // Both reads in one snapshot. Regression (CI, `a_watch_keeps_running_while_sync_
    // online_and_follow_run_on_its_profile`): read one after the other, another process's
    // commit landing between them was counted as seen (in `last`) but never returned, so
    // the running client never showed that notification.
    let snapshot = conn
        .is_autocommit()
        .then(|| conn.unchecked_transaction())
        .transpose()?;
    let notes = {
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![after], from_row)?;
        rows.collect::<Result<_, _>>()?
    };
    let last = last_row(conn)?.max(after);
    if let Some(snapshot) = snapshot {
        snapshot.finish()?;
    }
    Ok((notes, last))
}

/// How many are unread (of those [`list`] shows).
pub fn unread_count(conn: &Connection) -> Result<u64> {
    Ok(conn.query_row(
        concat!(
            "SELECT COUNT(*) FROM notifications WHERE read = 0 AND ",
            not_blocked!("actor"),
            " AND ",
            post_shown!("post_id")
        ),
        [],
        |r| r.get(0),
    )?)
}

/// Marks one as read.
pub fn mark_read(conn: &Connection, id: &str) -> Result<()> {
    if conn.execute("UPDATE notifications SET read = 1 WHERE id = ?1", [id])? == 0 {
        return Err(Error::UnknownNotification(id.to_owned()));
    }
    Ok(())
}

/// Marks all as read (of those about a post, the ones whose post is shown); returns how
/// many were unread.
pub fn mark_all_read(conn: &Connection) -> Result<usize> {
    Ok(conn.execute(
        concat!(
            "UPDATE notifications SET read = 1 WHERE read = 0 AND ",
            post_shown!("post_id")
        ),
        [],
    )?)
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Notification> {
    let bad = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    let kind: String = r.get(1)?;
    let actor: String = r.get(2)?;
    let post: Option<String> = r.get(4)?;
    let comment: Option<String> = r.get(5)?;
    Ok(Notification {
        id: r.get(0)?,
        kind: NotificationKind::parse(&kind)
            .ok_or_else(|| bad(1, format!("unknown kind {kind}")))?,
        actor: actor
            .parse()
            .map_err(|e: social_sync_protocol::IdError| bad(2, e.to_string()))?,
        actor_name: r.get(3)?,
        post_id: post
            .map(|p| p.parse())
            .transpose()
            .map_err(|e: social_sync_protocol::IdError| bad(4, e.to_string()))?,
        comment_id: comment
            .map(|c| c.parse())
            .transpose()
            .map_err(|e: social_sync_protocol::IdError| bad(5, e.to_string()))?,
        created_at: r.get(6)?,
        read: r.get(7)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn like(actor: u8) -> Event {
        Event {
            kind: NotificationKind::Like,
            actor: UserId::from_bytes([actor; 32]),
            post_id: Some(PostId::new(UserId::from_bytes([9; 32]), b"p")),
            comment_id: None,
            created_at: i64::from(actor),
        }
    }

    #[test]
    fn the_same_event_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), true).unwrap();
        let c = store.conn();
        let post = like(1).post_id.unwrap();
        // Until its post arrives, a like is stored but not shown.
        assert!(record(c, &like(1)).unwrap().is_some());
        assert_eq!(unread_count(c).unwrap(), 0);
        c.execute(
            "INSERT INTO posts (post_id, author, text, media, created_at)
             VALUES (?1, ?2, 'p', '[]', 0)",
            params![post.as_str(), post.author().to_string()],
        )
        .unwrap();
        assert!(record(c, &like(1)).unwrap().is_none());
        assert!(record(c, &like(2)).unwrap().is_some());
        assert_eq!(unread_count(c).unwrap(), 2);
        let all = list(c, false, 10).unwrap();
        assert_eq!(all[0].actor, UserId::from_bytes([2; 32]), "newest first");
        mark_read(c, &all[0].id).unwrap();
        assert_eq!(list(c, true, 10).unwrap().len(), 1);
        assert_eq!(mark_all_read(c).unwrap(), 1);
        assert_eq!(unread_count(c).unwrap(), 0);
        assert_eq!(
            mark_read(c, "nope").unwrap_err().code(),
            "unknown_notification"
        );
    }

    #[test]
    fn a_list_of_kinds_keeps_only_those_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), true).unwrap();
        let c = store.conn();
        // The liked post is shown (a like on a post not held is not listed).
        let post = like(1).post_id.unwrap();
        c.execute(
            "INSERT INTO posts (post_id, author, text, media, created_at)
             VALUES (?1, ?2, 'p', '[]', 0)",
            params![post.as_str(), post.author().to_string()],
        )
        .unwrap();
        record(c, &like(1)).unwrap();
        let follow = Event {
            kind: NotificationKind::Follow,
            post_id: None,
            ..like(2)
        };
        record(c, &follow).unwrap();
        let kinds = |of: &[NotificationKind]| -> Vec<NotificationKind> {
            let list = list_of_kinds(c, false, of, 10).unwrap();
            list.iter().map(|n| n.kind).collect()
        };
        use NotificationKind::{Comment, Follow, Like};
        assert_eq!(kinds(&[]), [Follow, Like], "no kinds: every kind");
        assert_eq!(kinds(&[Like]), [Like]);
        assert_eq!(kinds(&[Comment]), []);
        assert_eq!(kinds(&[Follow, Like]), [Follow, Like]);
    }
}
