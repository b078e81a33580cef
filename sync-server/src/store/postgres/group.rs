//! Group commit on PostgreSQL, as on SQLite (`store::sqlite::group`): accepted changes from
//! many connections of this relay are *staged* into one open transaction (each in its own
//! savepoint, so a failing one leaves nothing behind) and the first connection to ask for
//! its group to be *committed* commits everything staged so far: one round trip and one
//! WAL flush for all of them. Nothing is acknowledged or passed on before its group is
//! committed.
//!
//! Across relay nodes sharing the database, each group transaction starts by taking
//! [`WRITER_LOCK`] (a transaction-scoped advisory lock), so groups commit one at a time,
//! cluster-wide, in the order they took their news sequence numbers: a device that has
//! seen news number `n` committed can never later find a smaller number committed (see
//! the news sequence in `schema.rs`). The lock is taken first, before any row is written,
//! so a node waiting for it holds nothing another node could wait for. It is released by
//! COMMIT or ROLLBACK, or by PostgreSQL when the connection drops.

use std::collections::HashSet;

use postgres::Client;

use super::Fail;
use crate::store::StoreError;

/// The advisory lock key of the writers of accepted changes ("SSWRITE!" in ASCII).
pub(super) const WRITER_LOCK: i64 = 0x5353_5752_4954_4521;

/// The state of the group transactions on one connection.
#[derive(Debug, Default)]
pub(super) struct Group {
    /// The open group, if any.
    open: Option<u64>,
    /// The last group number handed out.
    last: u64,
    /// Every group up to this one is committed (or failed).
    committed_upto: u64,
    /// Groups whose commit failed, or whose connection was lost before it committed.
    failed: HashSet<u64>,
}

impl Group {
    /// Runs `job` inside the open group (opening one, and taking the writer lock, if
    /// needed), in a savepoint of its own; returns its result and the group to commit.
    pub(super) fn stage<T>(
        &mut self,
        conn: &mut Client,
        job: impl FnOnce(&mut Client) -> Result<T, Fail>,
    ) -> Result<(T, u64), Fail> {
        let group = match self.open {
            Some(group) => group,
            None => {
                conn.batch_execute("BEGIN")?;
                if let Err(e) = conn.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITER_LOCK]) {
                    let _ = conn.batch_execute("ROLLBACK");
                    return Err(e.into());
                }
                self.last += 1;
                self.open = Some(self.last);
                self.last
            }
        };
        conn.batch_execute("SAVEPOINT staged")?;
        match job(conn) {
            Ok(out) => {
                conn.batch_execute("RELEASE staged")?;
                Ok((out, group))
            }
            Err(e) => {
                let _ = conn.batch_execute("ROLLBACK TO staged; RELEASE staged");
                Err(e)
            }
        }
    }

    /// Makes `group` durable: commits it unless someone did already.
    pub(super) fn commit(&mut self, conn: &mut Client, group: u64) -> Result<(), Fail> {
        if self.failed.contains(&group) {
            return Err(StoreError::Uncommitted { group }.into());
        }
        if group <= self.committed_upto && self.open != Some(group) {
            return Ok(());
        }
        self.open = None;
        match conn.batch_execute("COMMIT") {
            Ok(()) => {
                self.committed_upto = group;
                Ok(())
            }
            Err(e) => {
                let _ = conn.batch_execute("ROLLBACK");
                self.failed.insert(group);
                self.committed_upto = group;
                Err(e.into())
            }
        }
    }

    /// Commits the open group, if any (before a write of another kind).
    pub(super) fn flush(&mut self, conn: &mut Client) -> Result<(), Fail> {
        match self.open {
            Some(group) => self.commit(conn, group),
            None => Ok(()),
        }
    }

    /// The connection holding the open group is gone (PostgreSQL rolled the transaction
    /// back): the group failed, and those waiting to commit it are told so.
    pub(super) fn lost(&mut self) {
        if let Some(group) = self.open.take() {
            self.failed.insert(group);
            self.committed_upto = group;
        }
    }

    /// Whether a group is open.
    pub(super) fn is_open(&self) -> bool {
        self.open.is_some()
    }
}
