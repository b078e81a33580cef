//! Documents and change signatures in PostgreSQL: the same snapshot + change rows, the same
//! compaction and the same signature keys as `social_sync_model::{documents, signatures}`,
//! whose functions take a SQLite connection. What does not touch SQL is reused from there
//! (`COMPACT_AFTER`, the chunk hash, `vetting::max_op_in`); the rest mirrors it statement
//! for statement.

use automerge::{AutoCommit, Change, ChangeHash, SaveOptions};
use postgres::GenericClient;
use social_sync_model::ModelError;
use social_sync_model::documents::COMPACT_AFTER;
use social_sync_model::signatures::hash_of_chunk;
use social_sync_model::vetting::{self, ChangeSig};
use social_sync_protocol::DocId;

use super::Fail;

/// Loads a document; `None` if never stored (`documents::load`).
pub(super) fn load(conn: &mut impl GenericClient, doc: &DocId) -> Result<Option<AutoCommit>, Fail> {
    let key = doc.to_string();
    let Some(row) = conn.query_opt("SELECT snapshot FROM documents WHERE doc_id = $1", &[&key])?
    else {
        return Ok(None);
    };
    let snapshot: Vec<u8> = row.get(0);
    let damaged = |detail: String| ModelError::DamagedDocument {
        doc: doc.clone(),
        detail,
    };
    let mut am = if snapshot.is_empty() {
        AutoCommit::new()
    } else {
        AutoCommit::load(&snapshot).map_err(|e| damaged(format!("snapshot: {e}")))?
    };
    let changes = conn
        .query(
            "SELECT bytes FROM document_changes WHERE doc_id = $1 ORDER BY seq",
            &[&key],
        )?
        .iter()
        .map(|row| {
            let bytes: &[u8] = row.get(0);
            Change::try_from(bytes).map_err(|e| damaged(format!("stored change: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    am.apply_changes(changes)
        .map_err(|e| damaged(format!("applying stored changes: {e}")))?;
    Ok(Some(am))
}

/// Appends changes (creating the document's row if needed); stored ones are skipped.
pub(super) fn append(
    conn: &mut impl GenericClient,
    doc: &DocId,
    changes: &[Change],
) -> Result<(), Fail> {
    let key = doc.to_string();
    conn.execute(
        "INSERT INTO documents (doc_id) VALUES ($1) ON CONFLICT DO NOTHING",
        &[&key],
    )?;
    let stmt = conn.prepare(
        "INSERT INTO document_changes (doc_id, hash, bytes) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )?;
    for change in changes {
        conn.execute(
            &stmt,
            &[&key, &change.hash().0.as_slice(), &change.raw_bytes()],
        )?;
    }
    Ok(())
}

/// Folds the applied changes into a new snapshot once there are [`COMPACT_AFTER`] rows;
/// a snapshot that does not load back is never written (`documents::compact`).
pub(super) fn compact_if_due(
    conn: &mut impl GenericClient,
    doc: &DocId,
    am: &mut AutoCommit,
) -> Result<bool, Fail> {
    let key = doc.to_string();
    let rows: i64 = conn
        .query_one(
            "SELECT COUNT(*) FROM document_changes WHERE doc_id = $1",
            &[&key],
        )?
        .get(0);
    if usize::try_from(rows).unwrap_or(usize::MAX) < COMPACT_AFTER {
        return Ok(false);
    }
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
        return Ok(false);
    }
    conn.execute(
        "UPDATE documents SET snapshot = $2 WHERE doc_id = $1",
        &[&key, &snapshot],
    )?;
    let hashes: Vec<Vec<u8>> = conn
        .query(
            "SELECT hash FROM document_changes WHERE doc_id = $1",
            &[&key],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let delete = conn.prepare("DELETE FROM document_changes WHERE doc_id = $1 AND hash = $2")?;
    for hash in hashes {
        let Ok(h) = ChangeHash::try_from(&hash[..]) else {
            continue;
        };
        // A change still waiting for a dependency is not in the snapshot: keep its row.
        if vetting::max_op_in(am, &h).is_some() {
            conn.execute(&delete, &[&key, &hash])?;
        }
    }
    Ok(true)
}

/// Keeps verified signatures; ones already kept stay (`signatures::put`).
pub(super) fn put_signatures(
    conn: &mut impl GenericClient,
    doc: &DocId,
    signed: &[(ChangeHash, ChangeSig)],
) -> Result<(), Fail> {
    let key = doc.to_string();
    let stmt = conn.prepare(
        "INSERT INTO change_signatures (doc_id, hash, signature) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )?;
    for (hash, sig) in signed {
        conn.execute(&stmt, &[&key, &hash.0.as_slice(), &sig.as_slice()])?;
    }
    Ok(())
}

/// The signatures of encoded changes, one per change, empty where none is kept
/// (`signatures::for_encoded`).
pub(super) fn signatures_for(
    conn: &mut impl GenericClient,
    doc: &DocId,
    changes: &[Vec<u8>],
) -> Result<Vec<Vec<u8>>, Fail> {
    let key = doc.to_string();
    let stmt =
        conn.prepare("SELECT signature FROM change_signatures WHERE doc_id = $1 AND hash = $2")?;
    changes
        .iter()
        .map(|bytes| {
            let Some(hash) = hash_of_chunk(bytes) else {
                return Ok(Vec::new());
            };
            let sig: Option<Vec<u8>> = conn
                .query_opt(&stmt, &[&key, &hash.0.as_slice()])?
                .map(|r| r.get(0));
            // Only a well-formed signature counts, as `signatures::get` reads it.
            Ok(sig
                .and_then(|s| ChangeSig::try_from(s).ok())
                .map(|s| s.to_vec())
                .unwrap_or_default())
        })
        .collect()
}
