//! Errors from parsing identifiers.

/// An identifier that could not be parsed. Each message names the value and says what a
/// valid one looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// A user id that is not 52 characters of lowercase base32.
    #[error(
        "'{value}' is not a user id: expected 52 characters of lowercase base32 (a-z, 2-7), as printed by `whoami`"
    )]
    UserId {
        /// The rejected text.
        value: String,
    },
    /// A post or comment id that is not `<user id>-<suffix>`.
    #[error(
        "'{value}' is not a {kind} id: expected '<author user id>-<1 to 32 characters a-z, 2-7>', as printed by the command that made it"
    )]
    AuthoredId {
        /// "post" or "comment".
        kind: &'static str,
        /// The rejected text.
        value: String,
    },
    /// A document id that is neither `user/<uid>` nor `thread/<post_id>`.
    #[error("'{value}' is not a document id: expected 'user/<user id>' or 'thread/<post id>'")]
    DocId {
        /// The rejected text.
        value: String,
    },
    /// A blob hash that is not 64 lowercase hex digits.
    #[error("'{value}' is not a blob hash: expected the 64 lowercase hex digits of a SHA-256")]
    BlobHash {
        /// The rejected text.
        value: String,
    },
}
