//! Images, stored by the SHA-256 of their bytes. Never inside an Automerge document: a
//! post names its images by hash.

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use social_sync_protocol::BlobHash;

use crate::Result;

pub use social_sync_model::images::{IMAGE_TYPES, image_type};

/// The hash of `bytes`.
pub fn hash_of(bytes: &[u8]) -> BlobHash {
    BlobHash::from_digest(Sha256::digest(bytes).into())
}

/// Stores a blob (a no-op if it is already there) and returns its hash.
pub fn put(conn: &Connection, mime: &str, bytes: &[u8]) -> Result<BlobHash> {
    let hash = hash_of(bytes);
    conn.execute(
        "INSERT OR IGNORE INTO blobs (hash, mime, bytes) VALUES (?1, ?2, ?3)",
        params![hash.to_string(), mime, bytes],
    )?;
    Ok(hash)
}

/// A stored blob: its media type and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Media type, e.g. `image/png`.
    pub mime: String,
    /// The content.
    pub bytes: Vec<u8>,
}

/// Reads a blob, if present.
pub fn get(conn: &Connection, hash: &BlobHash) -> Result<Option<Blob>> {
    Ok(conn
        .query_row(
            "SELECT mime, bytes FROM blobs WHERE hash = ?1",
            [hash.to_string()],
            |r| {
                Ok(Blob {
                    mime: r.get(0)?,
                    bytes: r.get(1)?,
                })
            },
        )
        .optional()?)
}

/// Hashes of every stored blob.
pub fn list(conn: &Connection) -> Result<Vec<BlobHash>> {
    let mut stmt = conn.prepare("SELECT hash FROM blobs ORDER BY hash")?;
    let hashes = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .filter_map(|h| h.ok()?.parse().ok())
        .collect();
    Ok(hashes)
}
