//! Why the relay refused what a client sent, and the authorship check.

use automerge::Change;
use social_sync_model::rules::RuleViolation;
use social_sync_model::user_of_actor;
use social_sync_model::vetting::Unvetted;
use social_sync_protocol::{DocId, ErrorCode, PostId, UserId};

use crate::store::StoreError;

/// Why an incoming sync message was refused. Nothing of it is stored or forwarded.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Not a sync message, or changes that do not apply.
    #[error("the sync message for {doc} is invalid ({detail})")]
    Invalid {
        /// The document.
        doc: DocId,
        /// What Automerge said.
        detail: String,
    },
    /// A change made by another user than the connection's.
    #[error(
        "change {hash} in {doc} was made by {author}, not by you ({user}): a connection may only send its own user's changes"
    )]
    NotYours {
        /// The document.
        doc: DocId,
        /// The change.
        hash: String,
        /// Its author.
        author: String,
        /// The connection's user.
        user: UserId,
    },
    /// A change breaking the write rules.
    #[error("{0}")]
    Rule(#[from] RuleViolation),
    /// Input refused before it reached the document (chunk kind, sizes, empty changes,
    /// a contained panic).
    #[error("{0}")]
    Unvetted(Unvetted),
    /// Reactions to a post the relay has never seen.
    #[error(
        "{doc} holds reactions to post {post}, which this relay has never received: send the post first (sync its author's user document)"
    )]
    NoSuchPost {
        /// The thread document.
        doc: DocId,
        /// The post.
        post: PostId,
    },
    /// Too many changes that wait for dependencies nobody sent.
    #[error(
        "{count} changes for {doc} depend on changes the relay does not have; at most {max} may wait: send their dependencies in the same message"
    )]
    Orphans {
        /// The document.
        doc: DocId,
        /// How many.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Refusal {
    /// What the client is told: the refusal's own words, except for a store failure,
    /// whose details (the database's address, its errors) are the operator's business and
    /// are logged instead.
    pub fn for_client(&self) -> String {
        match self {
            Self::Store(e) => e.for_client(),
            other => other.to_string(),
        }
    }

    /// The wire code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unvetted(u) => u.code(),
            Self::Invalid { .. } | Self::Orphans { .. } => ErrorCode::InvalidChange,
            Self::NotYours { .. } | Self::Rule(_) => ErrorCode::Forbidden,
            Self::NoSuchPost { .. } => ErrorCode::NotFound,
            Self::Store(_) => ErrorCode::Internal,
        }
    }
}

impl From<Unvetted> for Refusal {
    fn from(e: Unvetted) -> Self {
        match e {
            Unvetted::Rule(violation) => Self::Rule(violation),
            other => Self::Unvetted(other),
        }
    }
}

/// A change the relay lacks must be the connection user's own.
pub(crate) fn check_author(user: UserId, doc: &DocId, change: &Change) -> Result<(), Refusal> {
    let author = user_of_actor(change.actor_id());
    if author != Some(user) {
        return Err(Refusal::NotYours {
            doc: doc.clone(),
            hash: change.hash().to_string(),
            author: author.map_or_else(|| change.actor_id().to_hex_string(), |a| a.to_string()),
            user,
        });
    }
    Ok(())
}
