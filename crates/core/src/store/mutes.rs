//! Posts whose notifications the user muted: likes and comments on them no longer notify.
//! The post, its likes and its comments still show. Private to this profile, never synced.

use rusqlite::{Connection, params};
use social_sync_protocol::PostId;

use crate::Result;

/// Mutes `post` (again: no change). Returns whether it is new.
pub fn mute(conn: &Connection, post: &PostId, now: i64) -> Result<bool> {
    Ok(conn.execute(
        "INSERT OR IGNORE INTO muted_posts (post_id, since) VALUES (?1, ?2)",
        params![post.as_str(), now],
    )? > 0)
}

/// Unmutes `post`. Returns whether it was muted.
pub fn unmute(conn: &Connection, post: &PostId) -> Result<bool> {
    Ok(conn.execute(
        "DELETE FROM muted_posts WHERE post_id = ?1",
        [post.as_str()],
    )? > 0)
}

/// Whether `post` is muted.
pub fn is_muted(conn: &Connection, post: &PostId) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM muted_posts WHERE post_id = ?1)")?
        .query_row([post.as_str()], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use social_sync_protocol::UserId;

    #[test]
    fn muting_is_idempotent_and_reversible() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), true).unwrap();
        let c = store.conn();
        let p = PostId::new(UserId::from_bytes([9; 32]), b"p");
        assert!(mute(c, &p, 1).unwrap());
        assert!(!mute(c, &p, 2).unwrap());
        assert!(is_muted(c, &p).unwrap());
        assert!(unmute(c, &p).unwrap());
        assert!(!is_muted(c, &p).unwrap());
    }
}
