//! Who may see whom online. A user's presence is shown only to the users they follow: a
//! one-sided follow of a stranger reveals nothing. Live changes go to the users who also
//! follow them back (the ones who care); a `Presence` question is answered only for users
//! who follow the asker. Device ids never leave the relay: answers carry a count.

//!
//! In a cluster (`--bus`), online means online on any node: the bus keeps the entries
//! ([`crate::bus::presence`]), and a node that cannot reach it answers from its own
//! connections until it can.

use std::sync::Arc;

use social_sync_protocol::{PresenceEntry, ServerMessage, UserId, wire};
use tokio_tungstenite::tungstenite::Bytes;

use crate::hub::{Joined, Left};
use crate::interest::Channel;
use crate::shared::Shared;
use crate::store::StoreError;

/// A connection of `user`'s `device` joined this node: loads whom they follow for the bus,
/// tells their watchers if they just came online, and waits (briefly) for the bus to
/// subscribe to what the connection needs.
pub async fn arrived(shared: &Arc<Shared>, user: UserId, device: &str, joined: Joined) {
    let Some(bus) = &shared.bus else {
        if !joined.user_was_here {
            announce(shared, user, true).await;
        }
        return;
    };
    if !joined.user_was_here {
        let store = shared.clone();
        match crate::blocking::run(move || store.docs.with_store(|s| s.following(user))).await {
            Ok(Ok(following)) => bus.follows.arrived(user, following),
            Ok(Err(e)) => {
                tracing::error!(%user, error = %e, "cannot read whom a user follows; their followed users' posts reach them at their next sync")
            }
            Err(e) => tracing::error!(error = %e, "follow task failed"),
        }
    }
    if !joined.device_was_here {
        let first = bus.device_up(user, device).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot record presence on the bus; counting this node only");
            !joined.user_was_here
        });
        if first {
            announce(shared, user, true).await;
        }
    }
    // The connection's channels (its user's, those of whom they follow) are subscribed
    // before its inbox is read: a change another node publishes in between reaches it.
    bus.subscribed().await;
}

/// A connection left this node: tells the watchers if its user went offline everywhere.
pub async fn departed(shared: &Arc<Shared>, left: Left) {
    let Some(bus) = &shared.bus else {
        if left.user_gone {
            announce(shared, left.user, false).await;
        }
        return;
    };
    if left.user_gone {
        bus.follows.left(left.user);
    }
    if left.device_gone {
        let last = bus
            .device_down(left.user, &left.device)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot remove presence on the bus; its entry expires on its own");
                left.user_gone
            });
        if last {
            announce(shared, left.user, false).await;
        }
    }
}

/// Tells `user`'s watchers (see [`watchers`]), on every node, that they came online (a
/// first device) or went offline (the last one). Which device is never said.
pub async fn announce(shared: &Arc<Shared>, user: UserId, online: bool) {
    let watchers = watchers(shared, user).await.unwrap_or_default();
    let frame = Bytes::from(wire::encode(&ServerMessage::PresenceChanged {
        user,
        online,
    }));
    shared.hub.fan_out(&watchers, None, &frame, 0);
    if let Some(bus) = &shared.bus
        && !watchers.is_empty()
    {
        bus.publish(
            watchers.into_iter().map(Channel::User).collect(),
            &frame,
            Vec::new(),
            0,
        );
    }
}

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
    let cluster = match &shared.bus {
        Some(bus) => bus.online(&users).await.ok(),
        None => None,
    };
    match &cluster {
        Some(entries) => users = entries.iter().map(|e| e.user).collect(),
        None => users.retain(|u| shared.hub.is_online(*u)),
    }
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
    Ok(match cluster {
        Some(entries) => entries
            .into_iter()
            .filter(|e| visible.contains(&e.user))
            .collect(),
        None => shared.hub.online(&visible),
    })
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
