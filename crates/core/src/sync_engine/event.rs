//! What the sync engine tells the layers above (the desktop shell, `watch`).

use serde::Serialize;
use social_sync_protocol::{DocId, ErrorCode, PostId, UserId};

use crate::Notification;

/// The connection to the relay, as the UI shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Opening a connection.
    Connecting,
    /// Connected and authenticated.
    Online,
    /// Not connected; local edits wait.
    Offline,
    /// Waiting to try again.
    Reconnecting,
}

/// Who refused something, in [`Event::Rejected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusedBy {
    /// The relay refused what this client sent.
    Relay,
    /// This client refused what the relay sent (forged, altered or unsigned changes, or
    /// changes against the write rules); it kept what it had.
    Client,
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The connection changed; `waiting` local changes are not on the relay yet.
    Connection {
        /// The new status.
        status: ConnectionStatus,
        /// Local changes the relay has not confirmed.
        waiting: u64,
        /// Why, when it went offline.
        reason: Option<String>,
        /// The relay concerned, as its address is written in the list: the one being
        /// dialled (`connecting`), connected (`online`), left (`offline`), or tried next
        /// (`reconnecting`). The engine always names it; `None` is for a status a front
        /// end makes up itself (before any engine ran).
        relay: Option<String>,
    },
    /// Posts of the feed changed (new, deleted, profile names).
    FeedChanged {
        /// The user document that changed.
        user: UserId,
    },
    /// Likes or comments of a post changed.
    ThreadChanged {
        /// The post.
        post_id: PostId,
    },
    /// A new notification for the local user.
    Notification {
        /// It.
        notification: Notification,
    },
    /// A followed user who follows back came online (a first device) or went offline (the
    /// last one).
    Presence {
        /// The user.
        user: UserId,
        /// Online now?
        online: bool,
    },
    /// Progress of a large sync: documents settled of those offered.
    Progress {
        /// Settled so far.
        done: u64,
        /// Offered in all.
        total: u64,
    },
    /// Local likes or comments on a post whose author deleted it before they were sent: they
    /// were not delivered, and left the outbox.
    Undelivered {
        /// Which post, and how many changes.
        undelivered: crate::Undelivered,
    },
    /// The relay refused something this client sent, or this client refused something the
    /// relay sent (changes without a valid signature, `bad_change_signature`, or against
    /// the write rules): in both cases nothing of it was kept.
    Rejected {
        /// Who refused: the relay (what this client sent), or this client (what the relay
        /// sent).
        by: RefusedBy,
        /// Why.
        code: ErrorCode,
        /// The document concerned.
        doc: Option<DocId>,
        /// One sentence for people.
        message: String,
    },
}

impl Event {
    /// The event for a document that changed.
    pub fn changed(doc: &DocId) -> Self {
        match doc {
            DocId::User(user) => Self::FeedChanged { user: *user },
            DocId::Thread(post) => Self::ThreadChanged {
                post_id: post.clone(),
            },
        }
    }
}
