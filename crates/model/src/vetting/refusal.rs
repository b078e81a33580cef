//! Why vetted input was refused.

use social_sync_protocol::{DocId, ErrorCode};

use crate::rules::RuleViolation;

/// Why input was refused. Nothing of it was applied or stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unvetted {
    /// Not an Automerge sync message.
    #[error(
        "the sync message for {doc} does not decode ({detail}); the sender must speak Automerge sync"
    )]
    Malformed {
        /// The document.
        doc: DocId,
        /// What was wrong.
        detail: String,
    },
    /// More of something than a sync message may hold.
    #[error("the sync message for {doc} has {count} {what}; at most {max} are accepted: split it")]
    TooMany {
        /// The document.
        doc: DocId,
        /// What was counted.
        what: &'static str,
        /// How many there were.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// A Bloom filter outside what Automerge writes.
    #[error(
        "the sync message for {doc} has a Bloom filter with {detail}; only Automerge's own filters are accepted"
    )]
    BadBloom {
        /// The document.
        doc: DocId,
        /// What was wrong.
        detail: String,
    },
    /// An item that is not exactly one uncompressed change chunk.
    #[error(
        "change #{index} for {doc} {detail}: only uncompressed Automerge change chunks are accepted"
    )]
    NotAChange {
        /// The document.
        doc: DocId,
        /// Position of the change in its batch, from 0.
        index: usize,
        /// What it is instead.
        detail: String,
    },
    /// A change with no operations.
    #[error("change {hash} for {doc} is empty: a change must carry at least one edit")]
    Empty {
        /// The document.
        doc: DocId,
        /// The change.
        hash: String,
    },
    /// A change whose operation counter does not move past its dependencies'.
    #[error(
        "change {hash} for {doc} starts at op {start_op}, not after op {dep_max_op} of the change {dep} it depends on: Automerge never makes such a change"
    )]
    OpOrder {
        /// The document.
        doc: DocId,
        /// The change.
        hash: String,
        /// Its first op.
        start_op: u64,
        /// The dependency.
        dep: String,
        /// The dependency's last op.
        dep_max_op: u64,
    },
    /// A change breaking the write rules.
    #[error(transparent)]
    Rule(#[from] RuleViolation),
    /// A change that came without its author's signature.
    #[error(
        "change #{index} ({hash}) for {doc} carries no signature: every change must travel with its author's signature (from a relay: the author has not signed it yet; from a client: update it); nothing of this message was kept"
    )]
    Unsigned {
        /// The document.
        doc: DocId,
        /// Position of the change in its message, from 0.
        index: usize,
        /// The change.
        hash: String,
    },
    /// A change whose signature is not its author's signature of it in this document:
    /// forged, altered, or replayed from another document.
    #[error(
        "change {hash} for {doc} is not signed by {author}, whose change it claims to be (forged, altered, or moved from another document); nothing of this message was kept: send only changes as their author signed them"
    )]
    BadSignature {
        /// The document.
        doc: DocId,
        /// The change.
        hash: String,
        /// Whom its actor id names.
        author: String,
    },
    /// Not one signature per change.
    #[error(
        "the message for {doc} has {changes} changes but {signatures} signatures: every change needs exactly one; nothing of it was kept"
    )]
    SignatureCount {
        /// The document.
        doc: DocId,
        /// How many changes.
        changes: usize,
        /// How many signatures.
        signatures: usize,
    },
    /// Automerge panicked on the input; the panic was contained.
    #[error(
        "the input for {doc} made Automerge fail ({detail}); it was refused and nothing was kept"
    )]
    Panicked {
        /// The document.
        doc: DocId,
        /// The panic message.
        detail: String,
    },
}

impl Unvetted {
    /// The wire code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Rule(_) => ErrorCode::Forbidden,
            Self::Unsigned { .. } | Self::BadSignature { .. } | Self::SignatureCount { .. } => {
                ErrorCode::BadChangeSignature
            }
            _ => ErrorCode::InvalidChange,
        }
    }
}
