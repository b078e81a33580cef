//! Images: the user's own handed to the relay before the posts that name them, and those
//! the profile lacks asked for (again, a little later, when their author has not uploaded
//! them yet).

use serde_bytes::ByteBuf;
use social_sync_protocol::ClientMessage;

use super::Session;
use crate::sync_engine::SyncError;

impl Session<'_> {
    pub(super) async fn upload_blobs(&mut self) -> Result<(), SyncError> {
        let hashes = self.engine.replica().blobs_to_upload()?;
        for hash in hashes {
            if !self.uploading.insert(hash) {
                continue; // sent; the relay's BlobStored is on its way
            }
            let blob = self.engine.replica().blob(&hash)?;
            if let Some(blob) = blob {
                self.link
                    .send(&ClientMessage::PutBlob {
                        hash,
                        mime: blob.mime,
                        bytes: ByteBuf::from(blob.bytes),
                    })
                    .await?;
                self.sent_since_ping = true;
            }
        }
        Ok(())
    }

    /// Asks the relay for the images missing from the local cache (each once a session,
    /// until the relay says it has not got one).
    pub(super) async fn ask_missing_blobs(&mut self) -> Result<(), SyncError> {
        let missing = self.engine.replica().missing_blobs()?;
        for hash in missing {
            if self.asked_blobs.insert(hash) {
                self.wanted_blobs.insert(hash);
                self.link.send(&ClientMessage::GetBlob { hash }).await?;
                self.sent_since_ping = true;
            }
        }
        Ok(())
    }
}
