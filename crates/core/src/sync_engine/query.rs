//! One-off questions for the relay (who has a name, who is online, a follow graph),
//! asked over the running session's connection, or over a connection of their own.

use std::time::Duration;

use social_sync_protocol::{ClientMessage, FollowGraph, PresenceEntry, ServerMessage, UserId};
use tokio::sync::oneshot;

use super::{SyncEngine, SyncError};

/// A one-off question for the relay, asked over the running session's connection.
pub(super) enum Query {
    LookupName {
        name: String,
        reply: oneshot::Sender<Option<UserId>>,
    },
    Presence {
        users: Vec<UserId>,
        reply: oneshot::Sender<Vec<PresenceEntry>>,
    },
    FollowGraph {
        user: UserId,
        reply: oneshot::Sender<FollowGraph>,
    },
}

/// How long a one-off question waits for its answer.
pub(super) const QUERY_TIMEOUT: Duration = Duration::from_secs(15);

impl SyncEngine {
    /// Asks over the running session, if `run` is going; `None` when it is not.
    async fn ask<T>(
        &self,
        query: impl FnOnce(oneshot::Sender<T>) -> Query,
    ) -> Option<Result<T, SyncError>> {
        let not_connected = || SyncError::NotConnected {
            url: self.relays.to_string(),
        };
        let (reply, answer) = oneshot::channel();
        {
            let live = self.live();
            if !live.running {
                return None;
            }
            let sent = live
                .queries
                .as_ref()
                .is_some_and(|q| q.send(query(reply)).is_ok());
            if !sent {
                return Some(Err(not_connected()));
            }
        }
        Some(match tokio::time::timeout(QUERY_TIMEOUT, answer).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) | Err(_) => Err(not_connected()),
        })
    }

    /// Asks the relay who has the display name `name`.
    pub async fn lookup_name(&self, name: &str) -> Result<Option<UserId>, SyncError> {
        if let Some(answer) = self
            .ask(|reply| Query::LookupName {
                name: name.to_owned(),
                reply,
            })
            .await
        {
            return answer;
        }
        let mut link = self.connect().await?;
        link.send(&ClientMessage::LookupName {
            name: name.to_owned(),
        })
        .await?;
        loop {
            if let ServerMessage::Name { user, .. } = link.recv().await? {
                link.close().await;
                return Ok(user);
            }
        }
    }

    /// `user`'s followers and follows as the relay knows them (the same for everyone
    /// online; the profile's own index knows only the documents it holds).
    pub async fn follow_graph(&self, user: UserId) -> Result<FollowGraph, SyncError> {
        if let Some(answer) = self.ask(|reply| Query::FollowGraph { user, reply }).await {
            return answer;
        }
        let mut link = self.connect().await?;
        link.send(&ClientMessage::FollowGraph { user }).await?;
        loop {
            if let ServerMessage::FollowGraph { graph } = link.recv().await? {
                link.close().await;
                return Ok(graph);
            }
        }
    }

    /// Which of the users the local user follows are online now.
    pub async fn online(&self) -> Result<Vec<PresenceEntry>, SyncError> {
        let users = self.replica().following()?;
        if let Some(answer) = self
            .ask(|reply| Query::Presence {
                users: users.clone(),
                reply,
            })
            .await
        {
            return answer;
        }
        let mut link = self.connect().await?;
        link.send(&ClientMessage::Presence { users }).await?;
        loop {
            if let ServerMessage::Presence { online } = link.recv().await? {
                link.close().await;
                return Ok(online);
            }
        }
    }
}
