//! # Social Sync core
//!
//! Everything a Social Sync client does that needs no window and no network: the user's
//! identity, the Automerge documents, the SQLite store with its query index, and the
//! notifications derived from what arrives. The desktop shell and the CLI are thin layers
//! over [`Replica`].
//!
//! # Layout
//!
//! - [`replica`]: [`Replica`], one user's profile folder opened: every operation and query.
//! - [`identity`]: the Ed25519 key pair in the profile folder (mode 0600).
//! - [`model`]: the crate `social-sync-model`, shared with the relay: the Automerge
//!   documents `user/<uid>` and `thread/<post_id>`, typed accessors, the write rules
//!   ([`model::rules`]), display-name keys ([`model::name`]), and the vetting of Automerge
//!   input from elsewhere, signatures included ([`model::vetting`]).
//! - [`store`]: the SQLite file: documents (snapshot + changes), the derived index, blobs,
//!   settings, notifications, and the queries over them.
//! - [`export_folder`]: documents and blobs as files, for offline exchange.
//! - [`sync_engine`]: the connection to the relay: sync, live changes, reconnects, events.
//! - [`env`]: where time and randomness come from ([`Env`]), so tests are deterministic.
//! - [`error`]: [`Error`], with a stable [`Error::code`] for the UI.

pub mod env;
pub mod error;
pub mod export_folder;
pub mod identity;
pub mod replica;
pub mod store;
pub mod sync_engine;

pub use env::{Clock, Env, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use identity::Identity;
pub use replica::{MergeOutcome, Replica};
pub use store::deletes::Undelivered;
pub use store::notifications::{Notification, NotificationKind};
pub use store::queries::{CommentView, FeedCursor, FeedItem, FeedPage, ProfileView, ThreadView};
pub use sync_engine::{
    ConnectionStatus, Event, RefusedBy, RelayList, RelayListError, SyncEngine, SyncError,
    SyncSummary, TlsProblem,
};

/// The document model, shared with the relay (the crate `social-sync-model`).
pub use social_sync_model as model;
pub use social_sync_protocol::{BlobHash, CommentId, DocId, PostId, UserId};
