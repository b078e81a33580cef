//! Group commit: accepted changes from many connections share one SQLite transaction, and
//! so one sync of the log to disk (`synchronous=FULL`), without anything being acknowledged
//! before it is durable.
//!
//! A connection's accepted changes are *staged* into the open transaction (its own
//! savepoint, so a failing one leaves nothing behind), the store's lock is let go, then the
//! connection asks for its group to be *committed*. Whoever asks first commits everything
//! staged so far; those staged meanwhile find their group committed already and go on. While
//! one commit syncs the disk, others stage into the next group. Every other kind of write
//! (an image, an inbox position, signatures handed in) commits the open group first and then
//! commits itself, so it is durable when it returns.
//!
//! Reads on the same connection see staged changes before they are durable; the relay only
//! serves a document's changes once its own work on it (which waits for the commit) is done,
//! so no client receives a change that a crash could take back.

use std::collections::HashSet;

use rusqlite::Connection;

use crate::store::StoreError;

/// The state of the group transactions on one connection.
#[derive(Debug, Default)]
pub(super) struct Group {
    /// The open group, if any.
    open: Option<u64>,
    /// The last group number handed out.
    last: u64,
    /// Every group up to this one is committed (or failed).
    committed_upto: u64,
    /// Groups whose commit failed (rare: a full or failing disk).
    failed: HashSet<u64>,
}

impl Group {
    /// Runs `job` inside the open group (opening one if needed), in a savepoint of its own;
    /// returns its result and the group to commit.
    pub(super) fn stage<T>(
        &mut self,
        conn: &Connection,
        job: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<(T, u64), StoreError> {
        let group = match self.open {
            Some(group) => group,
            None => {
                conn.execute_batch("BEGIN IMMEDIATE")?;
                self.last += 1;
                self.open = Some(self.last);
                self.last
            }
        };
        conn.execute_batch("SAVEPOINT staged")?;
        match job(conn) {
            Ok(out) => {
                conn.execute_batch("RELEASE staged")?;
                Ok((out, group))
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK TO staged; RELEASE staged");
                Err(e)
            }
        }
    }

    /// Makes `group` durable: commits it unless someone did already.
    pub(super) fn commit(&mut self, conn: &Connection, group: u64) -> Result<(), StoreError> {
        if self.failed.contains(&group) {
            return Err(StoreError::Uncommitted { group });
        }
        if group <= self.committed_upto && self.open != Some(group) {
            return Ok(());
        }
        self.open = None;
        match conn.execute_batch("COMMIT") {
            Ok(()) => {
                self.committed_upto = group;
                Ok(())
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                self.failed.insert(group);
                self.committed_upto = group;
                Err(e.into())
            }
        }
    }

    /// Commits the open group, if any (before a write of another kind).
    pub(super) fn flush(&mut self, conn: &Connection) -> Result<(), StoreError> {
        match self.open {
            Some(group) => self.commit(conn, group),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER)").unwrap();
        conn
    }

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    fn insert(conn: &Connection, v: i64) -> Result<(), StoreError> {
        conn.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
        Ok(())
    }

    #[test]
    fn jobs_staged_together_commit_once_and_a_failed_job_leaves_nothing() {
        let conn = db();
        let mut group = Group::default();
        let ((), a) = group.stage(&conn, |c| insert(c, 1)).unwrap();
        let ((), b) = group.stage(&conn, |c| insert(c, 2)).unwrap();
        assert_eq!(a, b, "staged into one group");
        let failed = group.stage(&conn, |c| {
            insert(c, 3)?;
            Err::<(), _>(StoreError::Task("boom".into()))
        });
        assert!(failed.is_err());
        group.commit(&conn, a).unwrap();
        group.commit(&conn, b).unwrap(); // already committed: nothing to do
        assert_eq!(count(&conn), 2, "the failed job's row was rolled back");
        assert!(conn.is_autocommit(), "no transaction left open");
        let ((), c) = group.stage(&conn, |c| insert(c, 4)).unwrap();
        assert!(c > b, "a new group");
        group.flush(&conn).unwrap();
        assert!(conn.is_autocommit());
        assert_eq!(count(&conn), 3);
    }
}
