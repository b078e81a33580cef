//! Who may see whom online. A user's presence is shown only to the users they follow: a
//! one-sided follow of a stranger reveals nothing. Live changes go to the users who also
//! follow them back (the ones who care); a `Presence` question is answered only for users
//! who follow the asker. Device ids never leave the relay: answers carry a count.

use std::sync::Arc;

use social_sync_protocol::{PresenceEntry, UserId};

use crate::shared::Shared;
use crate::store::StoreError;

/// Which of `users` who follow `asker` are online, with how many devices. Users who do not
/// follow the asker are left out as if offline.
pub async fn online_for(
    shared: &Arc<Shared>,
    asker: UserId,
    mut users: Vec<UserId>,
) -> Result<Vec<PresenceEntry>, StoreError> {
    users.sort();
    users.dedup();
    // Only those online need the store: a client asks about everyone it follows.
    users.retain(|u| shared.hub.is_online(*u));
    let store = shared.clone();
    let visible = crate::blocking::run(move || {
        store.docs.with_store(|s| {
            let mut visible = Vec::new();
            for user in users {
                if s.follows(user, asker)? {
                    visible.push(user);
                }
            }
            Ok::<_, StoreError>(visible)
        })
    })
    .await??;
    Ok(shared.hub.online(&visible))
}

/// Who is told live when `user` comes online or goes offline: the users `user` follows who
/// follow `user` back.
pub async fn watchers(shared: &Arc<Shared>, user: UserId) -> Result<Vec<UserId>, StoreError> {
    let store = shared.clone();
    crate::blocking::run(move || {
        store.docs.with_store(|s| {
            let mut watchers = Vec::new();
            for followee in s.following(user)? {
                if s.follows(followee, user)? {
                    watchers.push(followee);
                }
            }
            Ok(watchers)
        })
    })
    .await?
}
