//! Why syncing failed, and which failures a one-shot sync tries again after.

use social_sync_protocol::ErrorCode;

use super::TlsProblem;
use crate::Error;

/// Why syncing failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// No relay address is set.
    #[error(
        "no relay is set for this profile: give it a relay address (ws://HOST:PORT or wss://HOST)"
    )]
    NoRelay,
    /// The relay could not be reached.
    #[error(
        "cannot reach the relay at {url} ({detail}): check the address and that the relay runs"
    )]
    Unreachable {
        /// The address.
        url: String,
        /// What failed.
        detail: String,
    },
    /// A `wss://` relay's TLS failed, or TLS was expected on one side only: the problem
    /// says which (its [`TlsProblem::code`] is stable for front ends).
    #[error("{}", problem.sentence(url))]
    Tls {
        /// The address.
        url: String,
        /// What is wrong.
        problem: TlsProblem,
    },
    /// The connection broke (a running engine reconnects by itself; a one-shot sync tries
    /// again a few times, then fails with [`SyncError::GaveUp`]).
    #[error("the connection to the relay was lost ({0})")]
    Lost(String),
    /// A one-shot sync lost its connection (or was cut by the relay) on every try.
    #[error(
        "syncing with {url} failed {attempts} times in a row, the last time because {last}: check that the relay runs, then sync again"
    )]
    GaveUp {
        /// The relay's address.
        url: String,
        /// How many times it was tried.
        attempts: u32,
        /// Why the last try failed.
        last: Box<SyncError>,
    },
    /// Every relay of a list of several failed in one round, for reasons retrying soon
    /// cannot fix (with one relay, its own error is given instead).
    #[error(
        "none of the relays could be used: {}; check the addresses, and that one of these relays runs and accepts this client",
        tried(.failures)
    )]
    EveryRelayFailed {
        /// Each relay tried, with why it failed, in the order tried.
        failures: Vec<(String, SyncError)>,
    },
    /// The relay sent something this client does not understand.
    #[error(
        "the relay sent something unexpected ({0}): the relay and this client may be of different versions"
    )]
    Protocol(String),
    /// The relay ended the connection with an error.
    #[error("the relay refused this client ({}): {message}", code.as_str())]
    Refused {
        /// Why.
        code: ErrorCode,
        /// The relay's sentence.
        message: String,
    },
    /// A request for the relay was made while the running engine is between connections.
    #[error("not connected to the relay right now ({url}); it is retrying, try again in a moment")]
    NotConnected {
        /// The relay's address.
        url: String,
    },
    /// A local failure.
    #[error(transparent)]
    Local(#[from] Error),
    /// The session panicked (hostile input that got past the checks, or a bug); the
    /// engine drops the connection and starts a new one.
    #[error("the sync session failed unexpectedly ({0}); it restarts by itself")]
    Crashed(String),
}

/// `url: why; url: why` for [`SyncError::EveryRelayFailed`].
fn tried(failures: &[(String, SyncError)]) -> String {
    failures
        .iter()
        .map(|(url, e)| format!("{url}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl SyncError {
    /// Whether trying again later can help.
    pub fn is_transient(&self) -> bool {
        match self {
            // A running engine keeps trying: the operator may renew the certificate.
            Self::Unreachable { .. } | Self::Lost(_) | Self::Tls { .. } => true,
            Self::Refused { code, .. } => matches!(
                code,
                ErrorCode::ShuttingDown
                    | ErrorCode::SlowReader
                    | ErrorCode::TooManyConnections
                    | ErrorCode::Internal
                    // Another connection of this running client took over (a ghost of a
                    // reconnect, or a relay that predates `hello.instance` and replaces any
                    // second connection of the device): connect again.
                    | ErrorCode::Replaced
            ),
            Self::NotConnected { .. } | Self::Crashed(_) | Self::GaveUp { .. } => true,
            // The profile's disk is full or read-only: the running engine waits for room,
            // then stores what it was sent.
            Self::Local(Error::Disk { .. }) => true,
            _ => false,
        }
    }
}

/// Whether a one-shot sync tries again after `e`: a connection that was made and then
/// lost or cut, not a relay that cannot be reached (the user is told at once) nor a
/// refusal that retrying cannot fix.
pub(super) fn retry_one_shot(e: &SyncError) -> bool {
    e.is_transient()
        && !matches!(
            e,
            SyncError::Unreachable { .. } | SyncError::Tls { .. } | SyncError::GaveUp { .. }
        )
}

/// The error for a session that panicked, logged.
pub(super) fn crashed(panic: &(dyn std::any::Any + Send)) -> SyncError {
    let detail = crate::model::vetting::panic_message(panic);
    tracing::error!("sync session panicked: {detail}");
    SyncError::Crashed(detail)
}

#[cfg(test)]
mod tests {
    use super::super::ONE_SHOT_ATTEMPTS;
    use super::*;

    #[test]
    fn a_replaced_or_lost_connection_is_retried_an_unreachable_relay_is_told_at_once() {
        let replaced = SyncError::Refused {
            code: ErrorCode::Replaced,
            message: "x".into(),
        };
        assert!(replaced.is_transient(), "a replaced watch comes back");
        assert!(retry_one_shot(&replaced));
        assert!(retry_one_shot(&SyncError::Lost("Broken pipe".into())));
        let unreachable = SyncError::Unreachable {
            url: "ws://127.0.0.1:9".into(),
            detail: "refused".into(),
        };
        assert!(unreachable.is_transient() && !retry_one_shot(&unreachable));
        let gave_up = SyncError::GaveUp {
            url: "ws://relay".into(),
            attempts: ONE_SHOT_ATTEMPTS,
            last: Box::new(SyncError::Lost("Broken pipe".into())),
        };
        assert!(!retry_one_shot(&gave_up));
        let told = gave_up.to_string();
        assert!(!told.contains("will be retried"), "{told}");
        assert!(
            told.contains("4 times") && told.contains("Broken pipe"),
            "{told}"
        );
        let bad = SyncError::Refused {
            code: ErrorCode::BadSignature,
            message: "x".into(),
        };
        assert!(!retry_one_shot(&bad));
        let expired = SyncError::Tls {
            url: "wss://relay".into(),
            problem: TlsProblem::Expired,
        };
        assert!(
            expired.is_transient(),
            "a running engine waits for the renewal"
        );
        assert!(!retry_one_shot(&expired), "a one-shot sync says so at once");
    }
}
