//! [`ErrorCode`]: why the relay (or a client) refused something, as clients match on it.

use serde::{Deserialize, Serialize};

/// Why the relay refused something. Clients match on these, never on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// `Hello.version` is not one the relay speaks.
    UnsupportedVersion,
    /// The signature does not verify.
    BadSignature,
    /// Anything but `Hello`/`Auth` before authentication, or a malformed `Hello`.
    NotAuthenticated,
    /// The frame is not a CBOR message of this protocol.
    MalformedFrame,
    /// The frame is larger than `max_message_bytes` (or, before authentication, than the
    /// relay's small pre-authentication limit); as a `Rejected`, a `Sync` with more documents
    /// or a subscription past the relay's per-connection counts.
    TooLarge,
    /// More than `messages_per_second`.
    RateLimited,
    /// A change breaks the write rules (someone else's document or entries).
    Forbidden,
    /// A sync message or change that does not decode or apply.
    InvalidChange,
    /// The client did not read fast enough; more bytes or frames waited for it than the
    /// relay holds per connection.
    SlowReader,
    /// The same device connected again; this connection is replaced.
    Replaced,
    /// Too many connections from this address.
    TooManyConnections,
    /// The relay is shutting down.
    ShuttingDown,
    /// A blob whose bytes do not match its hash, or too large.
    BadBlob,
    /// No such blob.
    NotFound,
    /// The relay failed to store something; try again later.
    Internal,
    /// The display name just set, or one that looks like it, is held by another user: the
    /// profile is stored but the name is not registered to this user. Pick another name.
    NameTaken,
    /// A change without a valid signature by the key in its actor id: missing, not
    /// verifying, or signed for another document. The whole message was refused.
    BadChangeSignature,
}

impl ErrorCode {
    /// The code as it appears on the wire and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnsupportedVersion => "unsupported_version",
            Self::BadSignature => "bad_signature",
            Self::NotAuthenticated => "not_authenticated",
            Self::MalformedFrame => "malformed_frame",
            Self::TooLarge => "too_large",
            Self::RateLimited => "rate_limited",
            Self::Forbidden => "forbidden",
            Self::InvalidChange => "invalid_change",
            Self::SlowReader => "slow_reader",
            Self::Replaced => "replaced",
            Self::TooManyConnections => "too_many_connections",
            Self::ShuttingDown => "shutting_down",
            Self::BadBlob => "bad_blob",
            Self::NotFound => "not_found",
            Self::Internal => "internal",
            Self::NameTaken => "name_taken",
            Self::BadChangeSignature => "bad_change_signature",
        }
    }
}
