//! What one `sync` did.

use serde::Serialize;

/// What one `sync` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncSummary {
    /// The relay synced with (of the list, the one that answered).
    pub relay: String,
    /// Documents offered to the relay.
    pub documents: usize,
    /// Changes received and applied.
    pub received: usize,
    /// Local changes the relay still lacks (0 after a complete sync).
    pub waiting: u64,
    /// Images uploaded and downloaded.
    pub images: usize,
    /// New notifications.
    pub notifications: Vec<crate::Notification>,
    /// What the relay refused meanwhile, one sentence each with its code first (e.g.
    /// `name_taken: ...` when the display name set is another user's).
    pub refusals: Vec<String>,
    /// Local likes and comments that were not delivered because the post's author deleted
    /// the post before they were sent (see [`crate::store::deletes`]).
    pub undelivered: Vec<crate::Undelivered>,
}
