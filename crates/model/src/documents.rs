//! Automerge documents on disk: a snapshot (`Automerge::save`) plus the changes received or
//! made since, appended one row each. Once a document has gathered [`COMPACT_AFTER`]
//! changes, they are folded into a new snapshot in the same transaction.
//!
//! Changes that wait for a missing dependency stay as rows until the dependency arrives, so
//! nothing received is lost to compaction.

use automerge::{AutoCommit, Change, ChangeHash, SaveOptions};
use rusqlite::{Connection, OptionalExtension, params};
use social_sync_protocol::DocId;

use crate::{ModelError as Error, Result};

/// The SQL that creates the two tables this module keeps documents in. Every store that
/// keeps documents through this module (the client's profile, the relay) creates them with
/// this, in its first migration.
#[macro_export]
macro_rules! document_tables_sql {
    () => {
        "CREATE TABLE documents (
            doc_id     TEXT PRIMARY KEY,
            snapshot   BLOB NOT NULL DEFAULT x''
        );
        CREATE TABLE document_changes (
            seq        INTEGER PRIMARY KEY,
            doc_id     TEXT NOT NULL REFERENCES documents(doc_id),
            hash       BLOB NOT NULL,
            bytes      BLOB NOT NULL,
            UNIQUE (doc_id, hash)
        );"
    };
}

/// How many change rows a document may gather before it is compacted.
pub const COMPACT_AFTER: usize = 64;

/// Loads a document; `None` if this profile has never stored it.
pub fn load(conn: &Connection, doc: &DocId) -> Result<Option<AutoCommit>> {
    let key = doc.to_string();
    let snapshot: Option<Vec<u8>> = conn
        .query_row(
            "SELECT snapshot FROM documents WHERE doc_id = ?1",
            [&key],
            |r| r.get(0),
        )
        .optional()?;
    let Some(snapshot) = snapshot else {
        return Ok(None);
    };
    let damaged = |detail: String| Error::DamagedDocument {
        doc: doc.clone(),
        detail,
    };
    let mut am = if snapshot.is_empty() {
        AutoCommit::new()
    } else {
        AutoCommit::load(&snapshot).map_err(|e| damaged(format!("snapshot: {e}")))?
    };
    let mut stmt =
        conn.prepare_cached("SELECT bytes FROM document_changes WHERE doc_id = ?1 ORDER BY seq")?;
    let changes = stmt
        .query_map([&key], |r| r.get::<_, Vec<u8>>(0))?
        .map(|bytes| {
            let bytes = bytes?;
            Change::try_from(&bytes[..]).map_err(|e| damaged(format!("stored change: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    am.apply_changes(changes)
        .map_err(|e| damaged(format!("applying stored changes: {e}")))?;
    Ok(Some(am))
}

/// Appends changes to a document (creating its row if needed); changes already stored are
/// skipped.
pub fn append(conn: &Connection, doc: &DocId, changes: &[Change]) -> Result<()> {
    let key = doc.to_string();
    conn.execute(
        "INSERT OR IGNORE INTO documents (doc_id) VALUES (?1)",
        [&key],
    )?;
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO document_changes (doc_id, hash, bytes) VALUES (?1, ?2, ?3)",
    )?;
    for change in changes {
        stmt.execute(params![key, change.hash().0.as_slice(), change.raw_bytes()])?;
    }
    Ok(())
}

/// Folds the document's applied changes into a new snapshot once there are enough of them.
/// Returns whether it compacted.
pub fn compact_if_due(conn: &Connection, doc: &DocId, am: &mut AutoCommit) -> Result<bool> {
    let key = doc.to_string();
    let rows: usize = conn.query_row(
        "SELECT COUNT(*) FROM document_changes WHERE doc_id = ?1",
        [&key],
        |r| r.get(0),
    )?;
    if rows < COMPACT_AFTER {
        return Ok(false);
    }
    compact(conn, doc, am)?;
    Ok(true)
}

/// Writes a new snapshot and drops the change rows it contains.
///
/// The snapshot holds only applied changes (no orphans waiting for a dependency: their
/// rows stay), and is loaded back before it replaces the old one: a snapshot Automerge
/// cannot load again would brick the document for every reader, so when that happens the
/// rows are kept, the document stays readable from them, and the failure is logged.
pub fn compact(conn: &Connection, doc: &DocId, am: &mut AutoCommit) -> Result<()> {
    let key = doc.to_string();
    let snapshot = am.save_with_options(SaveOptions {
        retain_orphans: false,
        ..SaveOptions::default()
    });
    let heads = am.get_heads();
    let reloads = std::panic::catch_unwind(|| {
        AutoCommit::load(&snapshot).map(|mut back| back.get_heads() == heads)
    });
    if !matches!(reloads, Ok(Ok(true))) {
        tracing::warn!(%doc, "a new snapshot did not load back; keeping the document's change rows instead");
        return Ok(());
    }
    conn.execute(
        "UPDATE documents SET snapshot = ?2 WHERE doc_id = ?1",
        params![key, snapshot],
    )?;
    let hashes: Vec<Vec<u8>> = conn
        .prepare_cached("SELECT hash FROM document_changes WHERE doc_id = ?1")?
        .query_map([&key], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut delete =
        conn.prepare_cached("DELETE FROM document_changes WHERE doc_id = ?1 AND hash = ?2")?;
    for hash in hashes {
        let Ok(h) = ChangeHash::try_from(&hash[..]) else {
            continue;
        };
        // A change still waiting for a dependency is not in the snapshot: keep its row.
        if crate::vetting::max_op_in(am, &h).is_some() {
            delete.execute(params![key, hash])?;
        }
    }
    Ok(())
}

/// Every stored document id, in order. Ids that do not parse are reported as damaged by
/// the caller that needs them; here they are skipped with a warning.
pub fn list(conn: &Connection) -> Result<Vec<DocId>> {
    let mut stmt = conn.prepare("SELECT doc_id FROM documents ORDER BY doc_id")?;
    let ids = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .filter_map(|id| match id {
            Ok(id) => match id.parse() {
                Ok(doc) => Some(Ok(doc)),
                Err(e) => {
                    tracing::warn!(%e, "skipping a document row with an unreadable id");
                    None
                }
            },
            Err(e) => Some(Err(e.into())),
        })
        .collect::<Result<_>>()?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ThreadDoc, actor_id};

    /// A database with the document tables, as the client's and the relay's stores have.
    struct Store(Connection);

    impl Store {
        fn open(_dir: &std::path::Path, _create: bool) -> Result<Self> {
            let conn = Connection::open_in_memory()?;
            conn.execute_batch(crate::document_tables_sql!())?;
            Ok(Self(conn))
        }

        fn conn(&self) -> &Connection {
            &self.0
        }

        fn write<T>(&mut self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
            let tx = self.0.transaction()?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        }
    }
    use social_sync_protocol::{PostId, UserId};

    fn thread() -> DocId {
        DocId::Thread(PostId::new(UserId::from_bytes([1; 32]), b"p"))
    }

    #[test]
    fn changes_survive_reload_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), true).unwrap();
        let doc = thread();
        let mut am = AutoCommit::new().with_actor(actor_id(UserId::from_bytes([2; 32]), [0; 8]));
        for i in 0..(COMPACT_AFTER as u8 + 3) {
            let before = am.get_heads();
            ThreadDoc::like(&mut am, UserId::from_bytes([i; 32]), 1).ok();
            ThreadDoc::unlike(&mut am, UserId::from_bytes([i; 32])).ok();
            ThreadDoc::like(&mut am, UserId::from_bytes([i; 32]), i64::from(i)).unwrap();
            am.commit();
            let new = am.get_changes(&before);
            store
                .write(|c| {
                    append(c, &doc, &new)?;
                    compact_if_due(c, &doc, &mut am)?;
                    Ok(())
                })
                .unwrap();
        }
        let rows: usize = store
            .conn()
            .query_row("SELECT COUNT(*) FROM document_changes", [], |r| r.get(0))
            .unwrap();
        assert!(rows < COMPACT_AFTER, "compaction ran: {rows} rows left");
        let loaded = load(store.conn(), &doc).unwrap().unwrap();
        assert_eq!(ThreadDoc(&loaded).likers().count(), COMPACT_AFTER + 3);
        assert_eq!(list(store.conn()).unwrap(), vec![doc]);
    }

    /// Regression (issue 9, "a thread anyone can brick"): 64 empty changes whose op
    /// counters skip about made a snapshot that Automerge could not load back
    /// (`InvalidMaxOp`), and compaction wrote it over the good state. The network now
    /// refuses such changes (`vetting`); compaction also checks a snapshot loads before it
    /// replaces anything.
    #[test]
    fn compaction_never_writes_a_snapshot_that_does_not_load_back() {
        use automerge::ExpandedChange;
        use std::num::NonZeroU64;
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), true).unwrap();
        let doc = thread();
        let mut am = AutoCommit::new().with_actor(actor_id(UserId::from_bytes([2; 32]), [0; 8]));
        ThreadDoc::like(&mut am, UserId::from_bytes([2; 32]), 1).unwrap();
        am.commit();
        let eve = actor_id(UserId::from_bytes([3; 32]), [0; 8]);
        let mut deps = am.get_heads();
        let mut changes = am.get_changes(&[]);
        for i in 0..COMPACT_AFTER as u64 {
            let change = Change::from(ExpandedChange {
                operations: Vec::new(),
                actor_id: eve.clone(),
                hash: None,
                seq: i + 1,
                // Back and forth: op counters that go back behind the previous change.
                start_op: NonZeroU64::new(2 + (i % 2) * 1_000).unwrap(),
                time: 0,
                message: None,
                deps: deps.clone(),
                extra_bytes: Vec::new(),
                author: None,
            });
            deps = vec![change.hash()];
            changes.push(change);
        }
        am.apply_changes(changes.clone()).unwrap();
        assert!(
            AutoCommit::load(&am.save()).is_err(),
            "the brick: Automerge saves what it cannot load"
        );
        store
            .write(|c| {
                append(c, &doc, &changes)?;
                compact_if_due(c, &doc, &mut am)?;
                Ok(())
            })
            .unwrap();
        let mut loaded = load(store.conn(), &doc).unwrap().unwrap();
        assert_eq!(loaded.get_heads(), am.get_heads());
        assert_eq!(ThreadDoc(&loaded).likers().count(), 1);
    }

    #[test]
    fn a_damaged_snapshot_names_its_document() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), true).unwrap();
        let doc = thread();
        store
            .conn()
            .execute(
                "INSERT INTO documents (doc_id, snapshot) VALUES (?1, x'deadbeef')",
                [doc.to_string()],
            )
            .unwrap();
        let err = load(store.conn(), &doc).unwrap_err();
        assert_eq!(err.code(), "damaged_document");
        assert!(err.to_string().contains(&doc.to_string()), "{err}");
    }
}
