//! The cluster's bus (`--bus redis://…`): several relay nodes over one PostgreSQL store
//! pass live changes and presence to each other through Redis Pub/Sub. Redis is an
//! accelerator, never the record: everything a client is sent live is in the store first,
//! a node that lost Redis for a while passes on what the store got meanwhile (from the news
//! numbers), and a client that reconnects anywhere catches up from its inbox.
//!
//! A node subscribes only to what its connections need ([`crate::interest`]): the channels
//! of the users connected to it (`u:` direct, `o:` their documents), the owner channels of
//! the people they follow, and the channels of the documents they subscribed to. A change
//! is published once to its owner's channel and once to its document's, whatever the
//! number of followers, and each node hands it to its own followers of that owner.
//!
//! # Layout
//!
//! - [`message`]: what travels on the bus.
//! - [`follows`]: who follows whom among this node's users.
//! - [`presence`]: who is online on which node, in Redis, with expiry; a dead node's
//!   entries expire on their own and the first node to notice tells the watchers.
//! - `seen`: which connections each recent message reached (bounded in bytes too).
//! - `listen`: the subscriber: reconnects, subscribes, passes messages on, catches up
//!   after a gap.
//! - this module: [`Bus`], publishing with a byte budget.

pub mod follows;
mod listen;
pub mod message;
pub mod presence;
mod seen;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_bytes::ByteBuf;
use social_sync_protocol::{DocId, UserId};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Bytes;

use crate::interest::{Channel, Interest, Need};
use crate::shared::Shared;
use follows::LocalFollows;
use message::{Body, BusMessage};

/// Bytes of messages waiting to be published before a node stops queueing and, once Redis
/// answers again, tells the others to catch up from the store instead.
const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;
/// Longest a new connection waits for its channels' subscription before its inbox is read.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// Why the bus could not start.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The URL is not a Redis URL.
    #[error("--bus {url}: {detail}; give redis://host:port (or redis://host:port/db)")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Redis did not answer.
    #[error("cannot reach the bus at {url}: {detail}; check that Redis is running and reachable")]
    Unreachable {
        /// The URL.
        url: String,
        /// What the client said.
        detail: String,
    },
    /// A bus without a shared store would pass on what no other node can serve.
    #[error("--bus needs --store postgres://…: nodes on a bus must share one store")]
    NoSharedStore,
}

/// One publication: the message, the channels it goes to, the news number it carries.
struct Publication {
    channels: Vec<Channel>,
    payload: Vec<u8>,
    /// The news number of the change it carries (0 for presence).
    seq: u64,
}

/// This node's end of the bus.
pub struct Bus {
    /// This node's number, drawn at start.
    node: u64,
    url: String,
    client: redis::Client,
    /// Commands (publish, presence); reconnects by itself.
    conn: ConnectionManager,
    /// The channels this node needs.
    pub interest: Arc<Interest>,
    needs: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Need>>>,
    /// Who follows whom among this node's users.
    pub follows: LocalFollows,
    next_id: AtomicU64,
    outbox: mpsc::UnboundedSender<Publication>,
    outbox_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Publication>>>,
    pending: AtomicUsize,
    /// The smallest news number dropped unpublished (u64::MAX: none).
    gap_from: AtomicU64,
    /// Whether the subscriber is connected and subscribed.
    healthy: AtomicBool,
    /// How long a presence entry counts without being renewed (`--presence-ttl`).
    presence_ttl: Duration,
}

impl Bus {
    /// Connects to Redis at `url` as node `node` (a random number: two nodes never share
    /// one); its presence entries count for `presence_ttl` unless renewed. Fails if Redis does not answer: a node told to use a bus does not start
    /// without it (after start, losing it only slows live delivery down).
    pub async fn connect(url: &str, node: u64, presence_ttl: Duration) -> Result<Self, BusError> {
        let client = redis::Client::open(url).map_err(|e| BusError::Url {
            url: url.to_owned(),
            detail: e.to_string(),
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(Duration::from_secs(3)))
            .set_max_delay(Duration::from_secs(2));
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| BusError::Unreachable {
            url: url.to_owned(),
            detail: "no answer within 5 s".into(),
        })?
        .map_err(|e| BusError::Unreachable {
            url: url.to_owned(),
            detail: e.to_string(),
        })?;
        let (interest, needs) = Interest::new();
        let interest = Arc::new(interest);
        interest.want(Channel::Gap);
        let (outbox, outbox_rx) = mpsc::unbounded_channel();
        Ok(Self {
            node,
            url: url.to_owned(),
            client,
            conn,
            follows: LocalFollows::new(interest.clone()),
            interest,
            needs: std::sync::Mutex::new(Some(needs)),
            next_id: AtomicU64::new(0),
            outbox,
            outbox_rx: std::sync::Mutex::new(Some(outbox_rx)),
            pending: AtomicUsize::new(0),
            gap_from: AtomicU64::new(u64::MAX),
            healthy: AtomicBool::new(false),
            presence_ttl: presence_ttl.max(Duration::from_secs(1)),
        })
    }

    /// This node's number.
    pub fn node(&self) -> u64 {
        self.node
    }

    /// Whether the subscriber is connected now (else live messages from other nodes wait
    /// for it to come back, and are then caught up from the store).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Completes once the subscriptions asked for so far are made, so that a connection
    /// reading its inbox next misses nothing published meanwhile: 2 s at most, and at once
    /// while the bus is away (its return catches the node's clients up instead).
    pub async fn subscribed(&self) {
        if self.is_healthy() {
            let _ = tokio::time::timeout(SUBSCRIBE_WAIT, self.interest.flushed()).await;
        }
    }

    /// Starts the publisher, the subscriber and the presence heartbeat; they end when
    /// `stop` turns true. Called before the node takes connections: the store's news
    /// number read here is where the first subscription catches up from (clients may
    /// connect, and read their inboxes, before it is made).
    pub async fn start(shared: &Arc<Shared>, stop: watch::Receiver<bool>) {
        let Some(bus) = &shared.bus else { return };
        let checkpoint = match listen::news_seq(shared).await {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the store's news number at start; what other nodes publish before this node subscribes reaches its clients at their next connection");
                None
            }
        };
        if let Some(rx) = take(&bus.outbox_rx) {
            tokio::spawn(publish_loop(shared.clone(), rx, stop.clone()));
        }
        if let Some(needs) = take(&bus.needs) {
            tokio::spawn(listen::run(shared.clone(), needs, stop.clone(), checkpoint));
        }
        tokio::spawn(presence::heartbeat(shared.clone(), stop));
    }

    /// Publishes `frame` (already sent to this node's own connections) to `channels`.
    /// `seq` is the news number of the change it carries (0 for presence): if Redis cannot
    /// take it, the other nodes are told to catch up from there.
    pub fn publish(
        &self,
        channels: Vec<Channel>,
        frame: &Bytes,
        follows: Vec<(UserId, UserId, bool)>,
        seq: u64,
    ) {
        let message = BusMessage {
            origin: self.node,
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            body: Body::Frame {
                frame: ByteBuf::from(frame.to_vec()),
                follows,
            },
        };
        let payload = message.encode();
        let size = payload.len() * channels.len();
        if self.pending.fetch_add(size, Ordering::Relaxed) + size > MAX_PENDING_BYTES {
            self.pending.fetch_sub(size, Ordering::Relaxed);
            self.missed(seq);
            return;
        }
        let publication = Publication {
            channels,
            payload,
            seq,
        };
        if self.outbox.send(publication).is_err() {
            self.missed(seq);
        }
    }

    /// The channels a change of `doc` goes to: its owner's, its own, and the followed
    /// user's of a follow it makes.
    pub fn channels_for(doc: &DocId, follows: &[(UserId, UserId, bool)]) -> Vec<Channel> {
        let mut channels = vec![Channel::Owner(doc.owner()), Channel::Doc(doc.clone())];
        channels.extend(
            follows
                .iter()
                .map(|(_, followee, _)| Channel::User(*followee)),
        );
        channels
    }

    fn missed(&self, seq: u64) {
        if seq > 0 {
            self.gap_from.fetch_min(seq, Ordering::Relaxed);
        }
    }
}

/// Takes what a mutex holds (a receiver handed to the task that owns it from then on).
fn take<T>(m: &std::sync::Mutex<Option<T>>) -> Option<T> {
    m.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
}

/// Publishes what the node queues, pipelined; a batch Redis refused is dropped and, once
/// a publish goes through again, the other nodes are told to catch up from its first news
/// number (a [`Body::Gap`]).
async fn publish_loop(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Publication>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(bus) = &shared.bus else { return };
    let mut conn = bus.conn.clone();
    loop {
        let first = tokio::select! {
            got = rx.recv() => match got { Some(p) => p, None => return },
            _ = stop.changed() => return,
        };
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let mut pipe = redis::pipe();
        let gap = bus.gap_from.swap(u64::MAX, Ordering::Relaxed);
        if gap != u64::MAX {
            let notice = BusMessage {
                origin: bus.node,
                id: bus.next_id.fetch_add(1, Ordering::Relaxed),
                body: Body::Gap {
                    after: gap.saturating_sub(1),
                },
            };
            pipe.cmd("PUBLISH")
                .arg(Channel::Gap.name())
                .arg(notice.encode())
                .ignore();
        }
        let mut bytes = 0;
        for p in &batch {
            for channel in &p.channels {
                pipe.cmd("PUBLISH")
                    .arg(channel.name())
                    .arg(&p.payload)
                    .ignore();
                bytes += p.payload.len();
            }
        }
        let sent: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
        bus.pending.fetch_sub(bytes, Ordering::Relaxed);
        match sent {
            Ok(()) => {
                shared.metrics.bus_published.inc_by(batch.len() as u64);
            }
            Err(e) => {
                tracing::warn!(bus = %bus.url, error = %e, messages = batch.len(), "the bus did not take live messages; the other nodes will catch up from the store");
                if gap != u64::MAX {
                    bus.missed(gap);
                }
                // Presence changes (seq 0) have nothing in the store to catch up from:
                // the watchers see them at their next presence question.
                for p in &batch {
                    bus.missed(p.seq);
                }
            }
        }
    }
}
