//! How errors reach the UI: `{code, message}`. The UI matches on `code`, never on the
//! message, which is for people.

use serde::Serialize;

/// An error as the front end receives it.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    /// Stable, machine-readable (`unknown_post`, `not_an_image`, `no_profile`, ...).
    pub code: String,
    /// One sentence that says what to do.
    pub message: String,
}

impl CommandError {
    /// An error of the shell itself.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

impl From<social_sync_core::Error> for CommandError {
    fn from(e: social_sync_core::Error) -> Self {
        Self {
            code: e.code().to_owned(),
            message: e.to_string(),
        }
    }
}

impl From<social_sync_core::SyncError> for CommandError {
    fn from(e: social_sync_core::SyncError) -> Self {
        let code = match &e {
            social_sync_core::SyncError::NoRelay => "no_relay",
            social_sync_core::SyncError::Unreachable { .. }
            | social_sync_core::SyncError::Lost(_)
            | social_sync_core::SyncError::NotConnected { .. }
            | social_sync_core::SyncError::Crashed(_)
            | social_sync_core::SyncError::GaveUp { .. }
            | social_sync_core::SyncError::EveryRelayFailed { .. } => "offline",
            social_sync_core::SyncError::Tls { problem, .. } => problem.code(),
            social_sync_core::SyncError::Refused { .. } => "relay_refused",
            social_sync_core::SyncError::Protocol(_) => "relay_protocol",
            social_sync_core::SyncError::Local(inner) => inner.code(),
        };
        Self {
            code: code.to_owned(),
            message: e.to_string(),
        }
    }
}

/// A command's result.
pub type CommandResult<T> = Result<T, CommandError>;
