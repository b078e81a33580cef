//! Display names on the relay: who may register a name a profile change sets, and who holds
//! a name looked up. Names are compared by their key (`social_sync_model::name`), so a
//! look-alike of a taken name (other case, full-width, Cyrillic letters, a zero-width
//! joiner, a trailing dot) is the same name.
//!
//! A refused name never refuses the profile change that set it: the document is stored
//! (refusing it would wedge the user's sync for good), the name is just not registered,
//! and the connection is told why.

use std::sync::Arc;

use social_sync_model::name::{NameError, lookup_key, name_key};
use social_sync_protocol::{ErrorCode, UserId};

use crate::shared::Shared;
use crate::store::{RelayStore, StoreError};

/// Why a display name set by a profile change was not registered to its user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameRefused {
    /// Another user holds the name, or one that looks like it.
    #[error(
        "the name '{name}' is taken: user {holder} holds it or a name that looks like it; your profile was saved, but others cannot find you by this name: pick another name"
    )]
    Taken {
        /// The name set.
        name: String,
        /// Who holds its key.
        holder: UserId,
    },
    /// The name can never be registered.
    #[error(
        "your profile was saved, but the name is not registered so others cannot find you by it: {0}"
    )]
    Invalid(NameError),
}

impl NameRefused {
    /// The wire code to reject with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Taken { .. } => ErrorCode::NameTaken,
            Self::Invalid(_) => ErrorCode::Forbidden,
        }
    }
}

/// What to do with a display name `owner` just set: the key to register to them, or why
/// not.
pub fn claim(
    store: &mut dyn RelayStore,
    owner: UserId,
    name: &str,
) -> Result<Result<String, NameRefused>, StoreError> {
    // The lenient key first: a name with a zero-width joiner is a look-alike of the name
    // without it, so it is reported as taken when that one is.
    if let Some(key) = lookup_key(name)
        && let Some(holder) = store.name_holder(&key)?
        && holder != owner
    {
        return Ok(Err(NameRefused::Taken {
            name: name.to_owned(),
            holder,
        }));
    }
    Ok(name_key(name).map_err(NameRefused::Invalid))
}

/// Who holds `name` or a name that looks like it (a leading `@` is ignored).
pub async fn lookup(shared: &Arc<Shared>, name: &str) -> Result<Option<UserId>, StoreError> {
    let Some(key) = lookup_key(name) else {
        return Ok(None);
    };
    let shared = shared.clone();
    crate::blocking::run(move || shared.docs.with_store(|s| s.name_holder(&key))).await?
}
