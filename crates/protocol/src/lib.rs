//! The shared vocabulary of Social Sync: the identifiers and wire messages every piece (the
//! desktop app, the CLI, the relay) must spell the same way. No I/O lives here.
//!
//! # Layout
//!
//! - [`ids`]: [`UserId`], [`PostId`], [`CommentId`], [`DocId`] and [`BlobHash`], with their
//!   printable encodings, parsing and validation.
//! - [`wire`]: the messages between client and relay ([`ClientMessage`], [`ServerMessage`])
//!   and their CBOR encoding; `README.md` describes the exchange for other implementers.
//! - [`signing`]: the bytes a user signs: the handshake (bound to the relay) and every
//!   Automerge change (bound to its document), and the canonical relay origin.
//! - [`pem`]: what is wrong with a PEM file, in words (client and relay alike).
//! - [`error_code`]: [`ErrorCode`], the stable reasons of refusals on the wire.
//! - [`error`]: [`IdError`], what parsing an identifier can report.

pub mod error;
pub mod error_code;
pub mod ids;
pub mod pem;
pub mod signing;
pub mod wire;

pub use error::IdError;
pub use ids::{AuthoredId, BlobHash, CommentId, DocId, PostId, UserId};
pub use wire::{
    ChangeSignature, ClientMessage, ErrorCode, FOLLOW_GRAPH_PAGE, FollowGraph, Limits,
    PROTOCOL_VERSION, PresenceEntry, ServerMessage, SyncItem,
};
