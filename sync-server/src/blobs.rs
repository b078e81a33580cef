//! Images on the relay: what may be stored (bytes that hash to the name, within the size
//! limit, a PNG, JPEG, GIF or WebP read from the bytes, within the uploader's quota) and
//! what is served (only such images, with the type read from their bytes: a client's
//! claimed type is never stored nor echoed).

use std::sync::Arc;

use sha2::{Digest, Sha256};
use social_sync_model::images::{IMAGE_TYPES, image_type};
use social_sync_protocol::{BlobHash, ErrorCode, UserId};

use crate::shared::Shared;
use crate::store::StoreError;

/// Why an image was not stored, or cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum BlobRefused {
    /// Larger than `--max-blob-bytes`.
    #[error("the image is {size} bytes; the limit is {max}: send a smaller image")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes do not hash to the name they were sent under.
    #[error("the bytes do not hash to {0}: send the image under the SHA-256 of its bytes")]
    WrongHash(BlobHash),
    /// Not an image of an allowed type.
    #[error(
        "the bytes sent as {hash} are not an image of an allowed type ({}; the type the client names is ignored): send a PNG, JPEG, GIF or WebP",
        IMAGE_TYPES.join(", ")
    )]
    NotAnImage {
        /// The hash.
        hash: BlobHash,
    },
    /// Storing it would take the uploader over `--max-image-bytes-per-user`.
    #[error(
        "storing this {size}-byte image would take your images on this relay to {} bytes, over your quota of {quota} bytes: nothing was stored; post fewer or smaller images",
        used + *size as u64
    )]
    OverQuota {
        /// Its size.
        size: usize,
        /// Bytes the uploader has stored.
        used: u64,
        /// The quota.
        quota: u64,
    },
    /// No such image (or a stored blob that is not an allowed image).
    #[error("the relay has no image {0}")]
    NotFound(BlobHash),
    /// The store failed.
    #[error("the relay could not store or read the image ({0}); try again")]
    Store(#[from] StoreError),
}

impl BlobRefused {
    /// What the client is told (a store failure's details stay in the relay's log).
    pub fn for_client(&self) -> String {
        match self {
            Self::Store(e) => e.for_client(),
            other => other.to_string(),
        }
    }

    /// The wire code to reject with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TooLarge { .. }
            | Self::WrongHash(_)
            | Self::NotAnImage { .. }
            | Self::OverQuota { .. } => ErrorCode::BadBlob,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Store(_) => ErrorCode::Internal,
        }
    }
}

/// Stores an image `uploader` sent, with the type read from its bytes.
pub async fn put(
    shared: &Arc<Shared>,
    uploader: UserId,
    hash: BlobHash,
    bytes: Vec<u8>,
) -> Result<(), BlobRefused> {
    let max = shared.config.max_blob_bytes as usize;
    if bytes.len() > max {
        return Err(BlobRefused::TooLarge {
            size: bytes.len(),
            max,
        });
    }
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    if digest != *hash.as_bytes() {
        return Err(BlobRefused::WrongHash(hash));
    }
    let mime = image_type(&bytes).ok_or(BlobRefused::NotAnImage { hash })?;
    let quota = shared.config.max_image_bytes_per_user;
    let store = shared.clone();
    // The quota check and the insert run under one hold of the store, so two uploads of one
    // user cannot both pass the check.
    let stored = crate::blocking::run(move || {
        store.docs.with_store(|s| {
            if s.has_blob(&hash)? {
                return Ok(Ok(()));
            }
            let used = s.blob_bytes_of(uploader)?;
            let size = bytes.len();
            if used.saturating_add(size as u64) > quota {
                return Ok(Err(BlobRefused::OverQuota { size, used, quota }));
            }
            s.put_blob(&hash, mime, &bytes, uploader)?;
            Ok::<_, StoreError>(Ok(()))
        })
    })
    .await??;
    if matches!(stored, Err(BlobRefused::OverQuota { .. })) {
        shared.metrics.images_over_quota.inc();
    }
    stored
}

/// An image to serve: its type read from its bytes, and the bytes.
pub async fn get(
    shared: &Arc<Shared>,
    hash: BlobHash,
) -> Result<(&'static str, Vec<u8>), BlobRefused> {
    let store = shared.clone();
    let found =
        crate::blocking::run(move || store.docs.with_store(|s| s.get_blob(&hash))).await??;
    // Blobs stored before types were checked may be anything: only images are served, and
    // with the type their bytes show.
    found
        .and_then(|(_, bytes)| Some((image_type(&bytes)?, bytes)))
        .ok_or(BlobRefused::NotFound(hash))
}
