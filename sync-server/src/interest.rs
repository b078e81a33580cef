//! Which bus channels this relay node needs, counted: a channel is subscribed when the
//! first local reason for it appears (a user's first connection here, a document's first
//! subscriber here, a followed user of someone connected here) and unsubscribed when the
//! last one goes. The bus (`crate::bus`) carries out the changes; this module only counts,
//! so the hub can tell it what changed without depending on the bus.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use social_sync_protocol::{DocId, UserId};
use tokio::sync::mpsc;

/// A bus channel: what a message on it is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Channel {
    /// What concerns one user directly (presence of the people they follow back, a new
    /// follower): their own connections.
    User(UserId),
    /// Changes of one user's documents and their posts' threads: the owner's connections
    /// and those of their followers.
    Owner(UserId),
    /// Changes of one document, for the connections subscribed to it.
    Doc(DocId),
    /// News some node could not pass on: every node catches up from the store.
    Gap,
}

/// The prefix of every channel name, so a Redis shared with other software stays apart.
pub const PREFIX: &str = "social-sync:";

impl Channel {
    /// The Redis channel name.
    pub fn name(&self) -> String {
        match self {
            Self::User(u) => format!("{PREFIX}u:{u}"),
            Self::Owner(u) => format!("{PREFIX}o:{u}"),
            Self::Doc(d) => format!("{PREFIX}d:{d}"),
            Self::Gap => format!("{PREFIX}gap"),
        }
    }

    /// The channel a Redis channel name stands for; `None` for a name this relay never
    /// subscribes to.
    pub fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix(PREFIX)?;
        if rest == "gap" {
            return Some(Self::Gap);
        }
        let (kind, id) = rest.split_once(':')?;
        match kind {
            "u" => id.parse().ok().map(Self::User),
            "o" => id.parse().ok().map(Self::Owner),
            "d" => id.parse().ok().map(Self::Doc),
            _ => None,
        }
    }
}

/// A change in what this node needs.
#[derive(Debug)]
pub enum Need {
    /// Subscribe.
    Want(Channel),
    /// Unsubscribe.
    Drop(Channel),
    /// Answer once every change before this one is carried out (Redis confirmed it).
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The counted channels, and where changes are told.
#[derive(Debug)]
pub struct Interest {
    counts: Mutex<HashMap<Channel, usize>>,
    changes: mpsc::UnboundedSender<Need>,
}

impl Interest {
    /// Counting from nothing; changes go to the returned receiver.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Need>) {
        let (changes, rx) = mpsc::unbounded_channel();
        let interest = Self {
            counts: Mutex::default(),
            changes,
        };
        (interest, rx)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Channel, usize>> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One more reason for `channel`.
    pub fn want(&self, channel: Channel) {
        let mut counts = self.lock();
        let n = counts.entry(channel.clone()).or_default();
        *n += 1;
        if *n == 1 {
            let _ = self.changes.send(Need::Want(channel));
        }
    }

    /// One reason fewer for `channel`.
    pub fn unwant(&self, channel: &Channel) {
        let mut counts = self.lock();
        if let Some(n) = counts.get_mut(channel) {
            *n -= 1;
            if *n == 0 {
                counts.remove(channel);
                let _ = self.changes.send(Need::Drop(channel.clone()));
            }
        }
    }

    /// Completes once every change told so far is carried out (or the bus was lost
    /// meanwhile): a connection waits for it before its inbox is read, so nothing published
    /// between the read and the subscription is missed.
    pub fn flushed(&self) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = self.changes.send(Need::Flush(tx));
        rx
    }

    /// Every channel needed now (to subscribe afresh after the bus reconnects).
    pub fn all(&self) -> Vec<Channel> {
        self.lock().keys().cloned().collect()
    }

    /// How many channels are needed.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no channel is needed.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_channel_is_wanted_once_and_dropped_with_its_last_reason() {
        let (interest, mut rx) = Interest::new();
        let ana = Channel::Owner(UserId::from_bytes([1; 32]));
        interest.want(ana.clone());
        interest.want(ana.clone());
        assert!(matches!(rx.try_recv().unwrap(), Need::Want(c) if c == ana));
        assert!(rx.try_recv().is_err(), "the second reason changes nothing");
        interest.unwant(&ana);
        assert!(rx.try_recv().is_err());
        interest.unwant(&ana);
        assert!(matches!(rx.try_recv().unwrap(), Need::Drop(c) if c == ana));
        interest.unwant(&ana);
        assert!(rx.try_recv().is_err(), "an extra drop is ignored");
        assert!(interest.is_empty());
    }

    #[test]
    fn channel_names_read_back_and_foreign_names_do_not() {
        let u = UserId::from_bytes([7; 32]);
        for ch in [
            Channel::User(u),
            Channel::Owner(u),
            Channel::Doc(DocId::User(u)),
            Channel::Gap,
        ] {
            assert_eq!(Channel::parse(&ch.name()), Some(ch));
        }
        for foreign in ["", "social-sync:x:1", "other:u:1", "social-sync:u:nope"] {
            assert_eq!(Channel::parse(foreign), None, "{foreign}");
        }
    }
}
