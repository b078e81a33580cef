//! People the user blocked: their likes, comments and follows never notify, and are left
//! out of every view (feed, threads, counts, search, notifications). A block is this
//! profile's private choice: it stays in this database and is never synced.

use rusqlite::{Connection, params};
use social_sync_protocol::UserId;

use crate::Result;

/// SQL condition: `col` is not a blocked user.
macro_rules! not_blocked {
    ($col:literal) => {
        concat!($col, " NOT IN (SELECT uid FROM blocked)")
    };
}
pub(crate) use not_blocked;

/// Blocks `uid` (again: no change). Returns whether it is new.
pub fn block(conn: &Connection, uid: UserId, now: i64) -> Result<bool> {
    Ok(conn.execute(
        "INSERT OR IGNORE INTO blocked (uid, since) VALUES (?1, ?2)",
        params![uid.to_string(), now],
    )? > 0)
}

/// Unblocks `uid`. Returns whether it was blocked.
pub fn unblock(conn: &Connection, uid: UserId) -> Result<bool> {
    Ok(conn.execute("DELETE FROM blocked WHERE uid = ?1", [uid.to_string()])? > 0)
}

/// Whether `uid` is blocked.
pub fn is_blocked(conn: &Connection, uid: UserId) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM blocked WHERE uid = ?1)")?
        .query_row([uid.to_string()], |r| r.get(0))?)
}

/// Blocked users, with their display names when known, most recent first.
pub fn list(conn: &Connection) -> Result<Vec<(UserId, Option<String>)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT b.uid, p.name FROM blocked b LEFT JOIN profiles p ON p.uid = b.uid
         ORDER BY b.since DESC, b.uid",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (uid, name) = row?;
        // Only well-formed ids are ever inserted; a damaged row is skipped, not fatal.
        if let Ok(uid) = uid.parse() {
            out.push((uid, name));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn blocking_is_idempotent_and_reversible() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), true).unwrap();
        let c = store.conn();
        let u = UserId::from_bytes([3; 32]);
        assert!(!is_blocked(c, u).unwrap());
        assert!(block(c, u, 1).unwrap());
        assert!(!block(c, u, 2).unwrap());
        assert!(is_blocked(c, u).unwrap());
        assert_eq!(list(c).unwrap(), vec![(u, None)]);
        assert!(unblock(c, u).unwrap());
        assert!(!unblock(c, u).unwrap());
        assert!(list(c).unwrap().is_empty());
    }
}
