//! The profile database: one SQLite file (WAL) per profile.
//!
//! # Layout
//!
//! - [`migrations`]: the schema, step by step.
//! - [`documents`]: Automerge documents as snapshot + incremental changes, compacted now
//!   and then.
//! - [`signatures`]: the authors' signatures of every stored change, kept for as long as
//!   the changes (they go wherever the changes go).
//! - [`index`]: the derived tables (posts, likes, comments, follows, profiles, full-text),
//!   updated from what changed in a document, or rebuilt from all of them.
//! - [`notifications`]: events aimed at the user, with deterministic ids and read state.
//! - [`queries`]: feed pages, threads, profiles, search.
//! - [`blobs`]: images by SHA-256.
//! - [`settings`]: small key/value preferences of this profile.
//! - [`blocks`]: people the user blocked (private, never synced).
//! - [`mutes`]: posts whose notifications the user muted (private, never synced).
//! - [`deletes`]: posts this profile saw deleted, and the reactions that raced with a
//!   delete (the design is there).
//!
//! Every function takes a `&Connection`, so a caller can run several of them in one
//! transaction: a merge writes the changes, the index and the notifications atomically.

pub mod blobs;
pub mod blocks;
pub mod deletes;
pub mod index;
mod migrations;
pub mod mutes;
pub mod notifications;
pub mod queries;
pub mod settings;

/// Documents as snapshot + changes (from `social-sync-model`, shared with the relay).
pub use social_sync_model::documents;
/// Every change's author's signature (from `social-sync-model`, shared with the relay).
pub use social_sync_model::signatures;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use crate::{Error, Result};

/// The database file's name inside a profile folder.
pub const DB_FILE: &str = "social-sync.db";

/// An open profile database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if `create`) the database of the profile folder `dir` and brings its
    /// schema up to date.
    pub fn open(dir: &Path, create: bool) -> Result<Self> {
        let path = dir.join(DB_FILE);
        check_not_empty(&path)?;
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let damaged = |e: rusqlite::Error| damaged_or(&path, e);
        let mut conn = Connection::open_with_flags(&path, flags).map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::CannotOpen => {
                Error::NoProfile {
                    path: dir.to_owned(),
                }
            }
            other => damaged(other),
        })?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(damaged)?;
        // WAL: readers never block the writer. synchronous=NORMAL in WAL mode keeps every
        // committed transaction across a crash or kill -9 of the app (only a power loss can
        // drop the last few).
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(damaged)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(damaged)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(damaged)?;
        // A file cut short still opens; catch it here, with a check that reads only the
        // header and the page count, rather than at some later query.
        check_length(&conn, &path)?;
        let migrations = migrations::migrations();
        migrations.to_latest(&mut conn).map_err(|e| match e {
            rusqlite_migration::Error::MigrationDefinition(
                rusqlite_migration::MigrationDefinitionError::DatabaseTooFarAhead,
            ) => Error::NewerDatabase {
                path: path.clone(),
                found: current_version(&conn),
                known: migrations::LATEST,
            },
            rusqlite_migration::Error::RusqliteError { err, .. } => damaged(err),
            other => Error::DamagedDatabase {
                path: path.clone(),
                detail: other.to_string(),
            },
        })?;
        Ok(Self { conn, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read access for queries.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Runs `f` in a write transaction taken at once (so two processes on one profile take
    /// turns rather than interleave), committing if it succeeds.
    pub fn write<T>(&mut self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| damaged_or(&path, e))?;
        let out = f(&tx)?;
        tx.commit().map_err(|e| damaged_or(&path, e))?;
        Ok(out)
    }

    /// SQLite's `PRAGMA data_version` on this connection: it changes whenever another
    /// connection (another process on the profile, such as the CLI beside a running app)
    /// committed since it was last read, and never for this connection's own commits.
    pub fn data_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|e| damaged_or(&self.path, e))
    }

    /// Size of the database file plus its write-ahead log, in bytes.
    pub fn size_on_disk(&self) -> u64 {
        let wal = self.path.with_extension("db-wal");
        [&self.path, &wal]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// Maps "not a database" and "corrupt" to [`Error::DamagedDatabase`] naming the file.
pub(crate) fn damaged_or(path: &Path, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => Error::DamagedDatabase {
            path: path.to_owned(),
            detail: e.to_string(),
        },
        _ => Error::from(e),
    }
}

/// An existing database file of 0 bytes (with no write-ahead log holding its pages) was
/// truncated or replaced: opening it would silently make a new, empty profile over it.
/// A profile being created has no file yet, so it never meets this.
fn check_not_empty(path: &Path) -> Result<()> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let wal_len = std::fs::metadata(path.with_extension("db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    if meta.is_file() && meta.len() == 0 && wal_len == 0 {
        return Err(Error::DamagedDatabase {
            path: path.to_owned(),
            detail: "the file is empty (0 bytes): it was cut short or replaced, and holds none of the profile".into(),
        });
    }
    Ok(())
}

fn check_length(conn: &Connection, path: &Path) -> Result<()> {
    let pages: u64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .map_err(|e| damaged_or(path, e))?;
    let page_size: u64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(|e| damaged_or(path, e))?;
    let on_disk = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    // The WAL may hold pages not yet copied back, so the main file can be shorter than
    // page_count says only when a WAL is present.
    let wal_len = std::fs::metadata(path.with_extension("db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    if wal_len == 0 && on_disk < pages * page_size {
        return Err(Error::DamagedDatabase {
            path: path.to_owned(),
            detail: format!(
                "the file is {on_disk} bytes but its header says {pages} pages of {page_size} bytes: it was cut short"
            ),
        });
    }
    Ok(())
}

fn current_version(conn: &Connection) -> usize {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_byte_database_is_reported_by_path_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        std::fs::write(&path, b"").unwrap();
        let err = Store::open(dir.path(), true).unwrap_err();
        assert_eq!(err.code(), "damaged_database");
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("0 bytes"), "{message}");
        // Not reinitialized: still empty, no schema written over it.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        assert!(Store::open(dir.path(), true).is_err());
    }

    #[test]
    fn data_version_moves_for_another_connections_commit_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut mine = Store::open(dir.path(), true).unwrap();
        let mut other = Store::open(dir.path(), false).unwrap();
        let start = mine.data_version().unwrap();
        mine.write(|c| settings::set(c, "k", "mine")).unwrap();
        assert_eq!(mine.data_version().unwrap(), start, "own commit");
        other.write(|c| settings::set(c, "k", "other")).unwrap();
        assert_ne!(
            mine.data_version().unwrap(),
            start,
            "another connection's commit"
        );
    }

    #[test]
    fn a_new_profile_database_is_still_created() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), true).unwrap();
        assert!(std::fs::metadata(store.path()).unwrap().len() > 0);
        drop(store);
        Store::open(dir.path(), false).unwrap();
    }
}
