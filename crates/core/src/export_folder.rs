//! Documents and images as plain files in a folder: the offline way to exchange data (a
//! USB stick), and a way to seed a new device.
//!
//! ```text
//! DIR/
//!   manifest.json            format, version, who exported, and every file with its SHA-256
//!   documents/NNNNNN.automerge   one document's changes: uncompressed change chunks, end to end
//!   documents/NNNNNN.sig         their authors' signatures: 64 bytes per change, same order
//!   blobs/<sha-256>          one file per image
//! ```
//!
//! The manifest is written last, so a folder whose export was interrupted has none and is
//! refused. Reading checks the whole folder (manifest, checksums, sizes, every change
//! vetted as if it came from the network, images sniffed) before anything is merged.
//!
//! Version 2 holds change chunks, not `Automerge::save` documents (version 1): a document's
//! columns may be DEFLATE-compressed, and a few hostile kilobytes then inflate to
//! gigabytes inside Automerge before any check can run. Version 1 folders are refused with
//! a message to export again.
//!
//! Version 3 adds the signatures: every change is checked against its author's key before
//! anything is merged, as from the network, so a folder handed over cannot put words in
//! anyone's mouth. A document holding changes from before signatures (another user's,
//! which this profile cannot prove) is left out of an export and listed as skipped.

use std::fs;
use std::path::{Path, PathBuf};

use automerge::Change;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use social_sync_protocol::signing::SIGNATURE_LEN;
use social_sync_protocol::{BlobHash, DocId, UserId};

use crate::model::vetting::{self, ChangeSig};
use crate::store::{blobs, documents, signatures};
use crate::{Error, Notification, Result};

/// The `format` field of every manifest.
pub const FORMAT: &str = "social-sync-export";
/// The newest manifest version this build writes and reads.
pub const VERSION: u32 = 3;
/// The oldest manifest version this build reads.
pub const OLDEST_VERSION: u32 = 3;
const MANIFEST: &str = "manifest.json";
/// The largest manifest read.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;
/// The largest document file read.
pub const MAX_DOCUMENT_BYTES: u64 = 256 * 1024 * 1024;

/// What can be wrong with an export folder. Nothing is changed when one of these is
/// reported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Exporting into a folder that has files in it.
    #[error("{path} is not empty: export into a new or empty folder")]
    NotEmpty {
        /// The folder.
        path: PathBuf,
    },
    /// No manifest: not an export, or an interrupted one.
    #[error(
        "{path} has no manifest.json: it is not a Social Sync export folder, or its export was interrupted; export again"
    )]
    NoManifest {
        /// The folder.
        path: PathBuf,
    },
    /// The manifest does not parse.
    #[error("{path} is not a valid Social Sync manifest ({detail}): export again")]
    BadManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Written by a newer version.
    #[error(
        "the export in {path} has format version {found}, newer than this program reads ({known}): update Social Sync"
    )]
    NewerVersion {
        /// The folder.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// The newest known.
        known: u32,
    },
    /// Written by an older version, in a format this one no longer trusts.
    #[error(
        "the export in {path} has format version {found}, which this program no longer reads (it reads {oldest} and newer): export the data again with this version"
    )]
    OlderVersion {
        /// The folder.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// The oldest read.
        oldest: u32,
    },
    /// A file larger than any export writes.
    #[error(
        "{path} is {size} bytes; at most {max} are read: it is not a file this program exported"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The cap.
        max: u64,
    },
    /// An image file that is not an allowed image.
    #[error(
        "{path} is not a PNG, JPEG, GIF or WebP image of at most {max} bytes: the folder was not imported"
    )]
    BadImage {
        /// The file.
        path: PathBuf,
        /// The size cap.
        max: u64,
    },
    /// A listed file is missing or unreadable.
    #[error(
        "{path}, listed in the manifest, cannot be read ({detail}): copy the whole export folder again"
    )]
    MissingFile {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        detail: String,
    },
    /// A file's content does not match its checksum.
    #[error(
        "{path} does not match its checksum in the manifest: the copy is damaged; copy the export folder again"
    )]
    Checksum {
        /// The file.
        path: PathBuf,
    },
    /// A document file holds something else than valid changes.
    #[error("{path} ({doc}) is not a valid export of that document ({detail}): export again")]
    BadDocument {
        /// The file.
        path: PathBuf,
        /// The document it claims to be.
        doc: DocId,
        /// What was wrong.
        detail: String,
    },
    /// A document breaks the write rules.
    #[error("{path} holds a forbidden change: {violation}; the folder was not imported")]
    Forbidden {
        /// The file.
        path: PathBuf,
        /// The rule broken.
        violation: crate::model::rules::RuleViolation,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: String,
    version: u32,
    exported_by: UserId,
    exported_at: i64,
    documents: Vec<DocumentEntry>,
    blobs: Vec<BlobEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocumentEntry {
    id: DocId,
    file: String,
    sha256: String,
    signatures: String,
    signatures_sha256: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlobEntry {
    hash: BlobHash,
    mime: String,
    file: String,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    /// Documents written.
    pub documents: usize,
    /// Images written.
    pub blobs: usize,
    /// Documents left out because they are damaged, with the reason.
    pub skipped: Vec<String>,
}

/// What an import merged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Documents in the folder.
    pub documents: usize,
    /// Changes newly applied.
    pub changes_applied: usize,
    /// Images in the folder.
    pub blobs: usize,
    /// New notifications for the local user.
    pub notifications: Vec<Notification>,
}

/// An export folder read and checked in full, ready to merge.
#[derive(Debug)]
pub struct CheckedFolder {
    /// Every document with all its changes, each checked against the write rules, and
    /// their authors' signatures, verified, in the same order.
    pub documents: Vec<(DocId, Vec<Change>, Vec<ChangeSig>)>,
    /// Every image, checksum verified.
    pub blobs: Vec<blobs::Blob>,
}

/// Writes every stored document and blob into `dir`, which must be new or empty.
pub fn export(conn: &Connection, me: UserId, now: i64, dir: &Path) -> Result<ExportSummary> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    if fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ExportError::NotEmpty {
            path: dir.to_owned(),
        }
        .into());
    }
    fs::create_dir_all(dir.join("documents")).map_err(io(dir))?;
    fs::create_dir_all(dir.join("blobs")).map_err(io(dir))?;
    let mut manifest = Manifest {
        format: FORMAT.to_owned(),
        version: VERSION,
        exported_by: me,
        exported_at: now,
        documents: Vec::new(),
        blobs: Vec::new(),
    };
    let mut skipped = Vec::new();
    for doc in documents::list(conn)? {
        let mut am = match documents::load(conn, &doc) {
            Ok(Some(am)) => am,
            Ok(None) => continue,
            Err(e @ crate::model::ModelError::DamagedDocument { .. }) => {
                skipped.push(e.to_string());
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let changes = am.get_changes(&[]);
        let mut sigs = Vec::with_capacity(changes.len() * 64);
        let mut unsigned = 0;
        for change in &changes {
            match signatures::get(conn, &doc, &change.hash())? {
                Some(sig) => sigs.extend_from_slice(&sig),
                None => unsigned += 1,
            }
        }
        if unsigned > 0 {
            skipped.push(format!(
                "{doc}: {unsigned} changes from before changes were signed cannot be proven; the document was left out"
            ));
            continue;
        }
        let bytes: Vec<u8> = changes
            .iter()
            .flat_map(|c| c.raw_bytes().iter().copied())
            .collect();
        let n = manifest.documents.len();
        let file = format!("documents/{n:06}.automerge");
        let path = dir.join(&file);
        fs::write(&path, &bytes).map_err(io(&path))?;
        let sig_file = format!("documents/{n:06}.sig");
        let sig_path = dir.join(&sig_file);
        fs::write(&sig_path, &sigs).map_err(io(&sig_path))?;
        manifest.documents.push(DocumentEntry {
            id: doc,
            file,
            sha256: sha256_hex(&bytes),
            signatures: sig_file,
            signatures_sha256: sha256_hex(&sigs),
        });
    }
    for hash in blobs::list(conn)? {
        let Some(blob) = blobs::get(conn, &hash)? else {
            continue;
        };
        let file = format!("blobs/{hash}");
        let path = dir.join(&file);
        fs::write(&path, &blob.bytes).map_err(io(&path))?;
        manifest.blobs.push(BlobEntry {
            hash,
            mime: blob.mime,
            file,
        });
    }
    let path = dir.join(MANIFEST);
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    fs::write(&path, json).map_err(io(&path))?;
    Ok(ExportSummary {
        documents: manifest.documents.len(),
        blobs: manifest.blobs.len(),
        skipped,
    })
}

/// Reads and checks an export folder in full.
pub fn read(dir: &Path) -> Result<CheckedFolder, ExportError> {
    let manifest_path = dir.join(MANIFEST);
    if !manifest_path.is_file() {
        return Err(ExportError::NoManifest {
            path: dir.to_owned(),
        });
    }
    let text = read_file(&manifest_path, MAX_MANIFEST_BYTES)?;
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|e| ExportError::BadManifest {
            path: manifest_path.clone(),
            detail: e.to_string(),
        })?;
    if manifest.format != FORMAT {
        return Err(ExportError::BadManifest {
            path: manifest_path,
            detail: format!("format is '{}', expected '{FORMAT}'", manifest.format),
        });
    }
    if manifest.version > VERSION {
        return Err(ExportError::NewerVersion {
            path: dir.to_owned(),
            found: manifest.version,
            known: VERSION,
        });
    }
    if manifest.version < OLDEST_VERSION {
        return Err(ExportError::OlderVersion {
            path: dir.to_owned(),
            found: manifest.version,
            oldest: OLDEST_VERSION,
        });
    }
    let mut documents = Vec::with_capacity(manifest.documents.len());
    for entry in manifest.documents {
        let path = inside(dir, &entry.file, &manifest_path)?;
        let bytes = read_file(&path, MAX_DOCUMENT_BYTES)?;
        if sha256_hex(&bytes) != entry.sha256 {
            return Err(ExportError::Checksum { path });
        }
        let sig_path = inside(dir, &entry.signatures, &manifest_path)?;
        let sig_bytes = read_file(&sig_path, MAX_DOCUMENT_BYTES)?;
        if sha256_hex(&sig_bytes) != entry.signatures_sha256 {
            return Err(ExportError::Checksum { path: sig_path });
        }
        let refused = |e: vetting::Unvetted| match e {
            vetting::Unvetted::Rule(violation) => ExportError::Forbidden {
                path: path.clone(),
                violation,
            },
            other => ExportError::BadDocument {
                path: path.clone(),
                doc: entry.id.clone(),
                detail: other.to_string(),
            },
        };
        let changes = vetting::vet_changes_concatenated(&entry.id, &bytes).map_err(refused)?;
        let sigs: Vec<&[u8]> = sig_bytes.chunks(SIGNATURE_LEN).collect();
        let sigs = vetting::signature::verify_all(&entry.id, &changes, &sigs).map_err(refused)?;
        documents.push((entry.id, changes, sigs));
    }
    let mut blob_list = Vec::with_capacity(manifest.blobs.len());
    for entry in manifest.blobs {
        let path = inside(dir, &entry.file, &manifest_path)?;
        let max = crate::replica::limits::IMAGE_BYTES;
        let bytes = read_file(&path, max)?;
        if blobs::hash_of(&bytes) != entry.hash {
            return Err(ExportError::Checksum { path });
        }
        // The type is sniffed from the bytes; the manifest's word for it is not trusted.
        let mime = blobs::image_type(&bytes).ok_or(ExportError::BadImage { path, max })?;
        blob_list.push(blobs::Blob {
            mime: mime.to_owned(),
            bytes,
        });
    }
    Ok(CheckedFolder {
        documents,
        blobs: blob_list,
    })
}

/// Resolves a manifest path, refusing anything that would leave the folder.
fn inside(dir: &Path, file: &str, manifest: &Path) -> Result<PathBuf, ExportError> {
    let relative = Path::new(file);
    let plain = relative
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !plain {
        return Err(ExportError::BadManifest {
            path: manifest.to_owned(),
            detail: format!("'{file}' points outside the export folder"),
        });
    }
    Ok(dir.join(relative))
}

/// Reads a file of at most `max` bytes (checked before reading, and while reading, in
/// case it grows).
fn read_file(path: &Path, max: u64) -> Result<Vec<u8>, ExportError> {
    use std::io::Read;
    let missing = |e: std::io::Error| ExportError::MissingFile {
        path: path.to_owned(),
        detail: e.to_string(),
    };
    let file = fs::File::open(path).map_err(missing)?;
    let size = file.metadata().map_err(missing)?.len();
    let too_large = |size| ExportError::TooLarge {
        path: path.to_owned(),
        size,
        max,
    };
    if size > max {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(missing)?;
    if bytes.len() as u64 > max {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

fn sha256_hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(bytes))
}
