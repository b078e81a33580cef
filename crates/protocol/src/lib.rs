//! The shared vocabulary of Social Sync: the identifiers every piece (the desktop app, the
//! CLI, the relay) must spell the same way. No I/O lives here.
//!
//! # Layout
//!
//! - [`ids`]: [`UserId`], [`PostId`], [`CommentId`], [`DocId`] and [`BlobHash`], with their
//!   printable encodings, parsing and validation.
//! - [`error`]: [`IdError`], what parsing an identifier can report.
//!
//! The wire messages between client and relay join this crate with the relay.

pub mod error;
pub mod ids;

pub use error::IdError;
pub use ids::{AuthoredId, BlobHash, CommentId, DocId, PostId, UserId};
