//! Automerge documents on disk: a snapshot (`Automerge::save`) plus the changes received or
//! made since, appended one row each. Once a document has gathered [`COMPACT_AFTER`]
//! changes, they are folded into a new snapshot in the same transaction.
//!
//! Changes that wait for a missing dependency stay as rows until the dependency arrives, so
//! nothing received is lost to compaction.

use automerge::{AutoCommit, Change, ChangeHash};
use rusqlite::{Connection, OptionalExtension, params};
use social_sync_protocol::DocId;

use crate::{Error, Result};

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
pub fn compact(conn: &Connection, doc: &DocId, am: &mut AutoCommit) -> Result<()> {
    let key = doc.to_string();
    conn.execute(
        "UPDATE documents SET snapshot = ?2 WHERE doc_id = ?1",
        params![key, am.save()],
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
        if am.get_change_by_hash(&h).is_some() {
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
    use crate::model::{ThreadDoc, actor_id};
    use crate::store::Store;
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
