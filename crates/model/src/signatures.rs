//! The authors' signatures of a store's changes, kept for as long as the changes: a
//! snapshot folds changes away, but every change handed on (to the relay, to another
//! client, into an export folder) goes with its signature, so none is ever dropped. Keyed
//! by document and change hash: the same change bytes can be the first change of two
//! documents, signed once for each.

use automerge::{Change, ChangeHash};
use rusqlite::{Connection, OptionalExtension, params};
use social_sync_protocol::DocId;

use crate::Result;
use crate::vetting::ChangeSig;

/// The SQL that creates the signature table; every store that keeps documents through
/// [`super::documents`] creates it in a migration of its own.
#[macro_export]
macro_rules! change_signatures_sql {
    () => {
        "CREATE TABLE change_signatures (
            doc_id     TEXT NOT NULL,
            hash       BLOB NOT NULL,
            signature  BLOB NOT NULL,
            PRIMARY KEY (doc_id, hash)
        ) WITHOUT ROWID;"
    };
}

/// Keeps verified (or own) signatures of `doc`'s changes; ones already kept stay.
pub fn put<'a>(
    conn: &Connection,
    doc: &DocId,
    signed: impl IntoIterator<Item = (&'a ChangeHash, &'a ChangeSig)>,
) -> Result<()> {
    let key = doc.to_string();
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO change_signatures (doc_id, hash, signature) VALUES (?1, ?2, ?3)",
    )?;
    for (hash, sig) in signed {
        stmt.execute(params![key, hash.0.as_slice(), sig.as_slice()])?;
    }
    Ok(())
}

/// The signature of one change of `doc`, if kept.
pub fn get(conn: &Connection, doc: &DocId, hash: &ChangeHash) -> Result<Option<ChangeSig>> {
    let sig: Option<Vec<u8>> = conn
        .prepare_cached("SELECT signature FROM change_signatures WHERE doc_id = ?1 AND hash = ?2")?
        .query_row(params![doc.to_string(), hash.0.as_slice()], |r| r.get(0))
        .optional()?;
    Ok(sig.and_then(|s| s.try_into().ok()))
}

/// The signatures of encoded changes of `doc`, one per change in order; an empty one
/// where none is kept (the receiver then refuses the change as unsigned: only changes
/// stored before signatures existed lack one).
pub fn for_encoded(conn: &Connection, doc: &DocId, changes: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
    changes
        .iter()
        .map(|bytes| {
            let Some(hash) = hash_of_chunk(bytes) else {
                return Ok(Vec::new());
            };
            Ok(get(conn, doc, &hash)?
                .map(|s| s.to_vec())
                .unwrap_or_default())
        })
        .collect()
}

/// The signatures of decoded changes of `doc`, as [`for_encoded`].
pub fn for_changes(conn: &Connection, doc: &DocId, changes: &[Change]) -> Result<Vec<Vec<u8>>> {
    changes
        .iter()
        .map(|c| {
            Ok(get(conn, doc, &c.hash())?
                .map(|s| s.to_vec())
                .unwrap_or_default())
        })
        .collect()
}

/// The hash of an encoded change chunk without decoding its columns: Automerge hashes the
/// chunk's type, length and body (everything after the 4 magic and 4 checksum bytes).
pub fn hash_of_chunk(bytes: &[u8]) -> Option<ChangeHash> {
    use sha2::{Digest, Sha256};
    let body = bytes.get(8..)?;
    let digest: [u8; 32] = Sha256::digest(body).into();
    Some(ChangeHash(digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ThreadDoc, actor_id};
    use automerge::AutoCommit;
    use social_sync_protocol::UserId;

    #[test]
    fn the_chunk_hash_is_automerges() {
        let mut am = AutoCommit::new().with_actor(actor_id(UserId::from_bytes([2; 32]), [0; 8]));
        for i in 0..3 {
            ThreadDoc::like(&mut am, UserId::from_bytes([i; 32]), 1).unwrap();
            am.commit();
        }
        for change in am.get_changes(&[]) {
            assert_eq!(hash_of_chunk(change.raw_bytes()), Some(change.hash()));
        }
    }
}
