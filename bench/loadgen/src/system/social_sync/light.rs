//! A light client: the real client's connection ([`Link`]: WebSocket, login, framing) and
//! the real document model, without a profile on disk. It writes its own changes exactly
//! as the app does (the model's edit, signed by its key) and, once listening, reports each
//! change the relay pushes the moment its frame is decoded.
//!
//! The benchmark runs thousands of these where thousands of real engines (a SQLite profile
//! each, several files open) would not fit in one process's file limit, and where the
//! clients' own work (a signature check and a SQLite commit per change, on 2 shared cores)
//! would be measured instead of the relay's. The real engines run beside them
//! ([`super::engine`]) and their figures are printed next to these.

use std::time::Instant;

use anyhow::{Context, bail};
use automerge::sync::{Message as SyncMessage, State, SyncDoc};
use automerge::{AutoCommit, Change, ChangeHash};
use serde_bytes::ByteBuf;
use social_sync_core::model::{PostEntry, ThreadDoc, UserDoc, actor_id};
use social_sync_core::sync_engine::Link;
use social_sync_core::{DocId, Env, Identity, PostId, UserId};
use social_sync_protocol::{ClientMessage, ServerMessage, SyncItem};
use tokio::sync::mpsc;

/// A change pushed to a light client: which client, which change, when its frame was
/// decoded.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// The client's number.
    pub client: usize,
    /// The change, as [`change_key`] of its bytes.
    pub key: u64,
    /// When its frame was decoded.
    pub at: Instant,
}

/// A change's identity for the benchmark: a hash of its encoded bytes. The light client
/// decodes the relay's frame (its CBOR, as a Socket.IO client parses an event's JSON) and
/// does not parse the Automerge change inside (what an app's engine does next is measured
/// by the real engines).
pub fn change_key(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// One light client, connected and logged in.
pub struct Light {
    /// Its key.
    pub identity: Identity,
    link: Link,
    own: AutoCommit,
    own_state: State,
    pings: u64,
}

/// A deterministic identity for client number `n` (distinct per workload run).
pub fn identity(n: u64) -> Identity {
    Identity::generate(&mut Env::deterministic(n, 0))
}

impl Light {
    /// Connects to `url` and logs in as `identity`.
    pub async fn connect(url: &str, identity: Identity) -> anyhow::Result<Self> {
        let device = format!("{:016x}", device_of(&identity));
        let link = Link::connect(url, &identity, &device)
            .await
            .with_context(|| format!("light client could not log in to {url}"))?;
        let own = AutoCommit::new().with_actor(actor_id(identity.user_id(), [1; 8]));
        Ok(Self {
            identity,
            link,
            own,
            own_state: State::new(),
            pings: 0,
        })
    }

    /// The user.
    pub fn user(&self) -> UserId {
        self.identity.user_id()
    }

    /// Follows `author` and waits until the relay holds the follow.
    pub async fn follow(&mut self, author: UserId) -> anyhow::Result<()> {
        UserDoc::follow(&mut self.own, author, now_ms())?;
        self.own.commit();
        self.sync_own().await
    }

    /// Adds a post to its own document (not yet sent); returns the change's hash.
    pub fn write_post(&mut self, n: u64) -> anyhow::Result<ChangeHash> {
        let entry = PostEntry {
            id: PostId::new(self.user(), &n.to_le_bytes()),
            text: format!("post {n} by a load generator, as long as a short post usually is"),
            media: vec![],
            created_at: now_ms(),
        };
        UserDoc::add_post(&mut self.own, &entry)?;
        self.own.commit().context("a post made no change")
    }

    /// The encoded size of one of its own changes.
    pub fn change_len(&mut self, hash: &ChangeHash) -> anyhow::Result<usize> {
        Ok(self
            .own
            .get_change_by_hash(hash)
            .context("no such change")?
            .raw_bytes()
            .len())
    }

    /// Sends its own document until the relay holds all of it.
    pub async fn sync_own(&mut self) -> anyhow::Result<()> {
        let doc = DocId::User(self.user());
        let (mut am, mut state) = (
            std::mem::take(&mut self.own),
            std::mem::take(&mut self.own_state),
        );
        let result = self.sync(&doc, &mut am, &mut state).await;
        (self.own, self.own_state) = (am, state);
        result
    }

    /// Likes `post` as an up-to-date app does: one sync message carrying the like's signed
    /// change, with nothing to ask for (an app that follows the author already holds the
    /// thread, its likes pushed to it live), and waits until the relay's answer shows it
    /// holds the like. Returns when the like was sent.
    pub async fn like(&mut self, post: &PostId) -> anyhow::Result<Instant> {
        let doc = DocId::Thread(post.clone());
        let mut thread = AutoCommit::new().with_actor(actor_id(self.user(), [1; 8]));
        ThreadDoc::like(&mut thread, self.user(), now_ms())?;
        let hash = thread.commit().context("a like made no change")?;
        let change = thread
            .get_change_by_hash(&hash)
            .context("the like's change")?;
        let message = SyncMessage {
            heads: vec![hash],
            need: vec![],
            have: vec![],
            changes: vec![change.raw_bytes().to_vec()].into(),
            flags: None,
            version: automerge::sync::MessageVersion::V1,
        };
        let item = signed_item(&self.identity, &doc, message)?;
        let sent = Instant::now();
        self.link
            .send(&ClientMessage::Sync { items: vec![item] })
            .await?;
        loop {
            match self.link.recv().await? {
                ServerMessage::Sync { items } => {
                    for item in items.into_iter().filter(|i| i.doc == doc) {
                        if SyncMessage::decode(&item.message)?.heads.contains(&hash) {
                            return Ok(sent);
                        }
                    }
                }
                ServerMessage::Rejected { code, message, .. } => {
                    bail!("the relay refused the like ({code:?}): {message}")
                }
                _ => {}
            }
        }
    }

    /// Syncs `am` as `doc` until neither side has anything for the other.
    async fn sync(
        &mut self,
        doc: &DocId,
        am: &mut AutoCommit,
        state: &mut State,
    ) -> anyhow::Result<()> {
        self.sync_until(doc, am, state, |_| false).await
    }

    /// Syncs `am` as `doc` until `done` says so or neither side has anything for the other.
    async fn sync_until(
        &mut self,
        doc: &DocId,
        am: &mut AutoCommit,
        state: &mut State,
        done: impl Fn(&State) -> bool,
    ) -> anyhow::Result<()> {
        for _ in 0..64 {
            if done(state) {
                return Ok(());
            }
            let Some(m) = am.sync().generate_sync_message(state) else {
                return Ok(());
            };
            let item = signed_item(&self.identity, doc, m)?;
            self.link
                .send(&ClientMessage::Sync { items: vec![item] })
                .await?;
            self.pings += 1;
            let id = self.pings;
            self.link.send(&ClientMessage::Ping { id }).await?;
            loop {
                match self.link.recv().await? {
                    ServerMessage::Pong { id: got } if got == id => break,
                    ServerMessage::Sync { items } => {
                        for item in items.into_iter().filter(|i| &i.doc == doc) {
                            let m = SyncMessage::decode(&item.message)?;
                            am.sync().receive_sync_message(state, m)?;
                        }
                    }
                    _ => {}
                }
            }
        }
        bail!("{doc} did not settle in 64 sync rounds")
    }

    /// From now on, reports every pushed change to `arrivals` (as client `client`) until the
    /// connection ends; the link is read without pause, so the relay's pings are answered.
    pub fn listen(
        self,
        client: usize,
        arrivals: mpsc::UnboundedSender<Arrival>,
    ) -> tokio::task::JoinHandle<()> {
        let mut link = self.link;
        tokio::spawn(async move {
            while let Ok(message) = link.recv().await {
                if let ServerMessage::Changes { changes, .. } = message {
                    let at = Instant::now();
                    for bytes in changes {
                        let _ = arrivals.send(Arrival {
                            client,
                            key: change_key(&bytes),
                            at,
                        });
                    }
                }
            }
        })
    }

    /// Keeps the connection open and answered (pings) without reporting anything.
    pub fn idle(self) -> tokio::task::JoinHandle<()> {
        let mut link = self.link;
        tokio::spawn(async move { while link.recv().await.is_ok() {} })
    }

    /// Closes the connection politely.
    pub async fn close(self) {
        self.link.close().await;
    }
}

/// `count` light clients (identities `first`, `first + 1`, …), connected 200 at a time
/// (client `n` to `urls[n % urls.len()]`), each following `author`, each reporting what is
/// pushed to it as client `n` to `arrivals`.
pub async fn following_crowd(
    urls: &[String],
    count: usize,
    first: u64,
    author: UserId,
    arrivals: &mpsc::UnboundedSender<Arrival>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut listening = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(200) {
        let joined = futures_util::future::join_all(chunk.iter().map(|&n| async move {
            let url = &urls[n % urls.len()];
            let mut light = Light::connect(url, identity(first + n as u64)).await?;
            light.follow(author).await?;
            anyhow::Ok((n, light))
        }))
        .await;
        for joined in joined {
            let (n, light) = joined?;
            listening.push(light.listen(n, arrivals.clone()));
        }
    }
    Ok(listening)
}

/// A sync item for `m`, each change signed by `key`.
fn signed_item(key: &Identity, doc: &DocId, m: SyncMessage) -> anyhow::Result<SyncItem> {
    let signatures = m
        .changes
        .iter()
        .map(|bytes| {
            let change = Change::try_from(bytes)?;
            Ok(ByteBuf::from(key.sign_change(doc, &change).to_vec()))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(SyncItem {
        doc: doc.clone(),
        message: ByteBuf::from(m.encode()),
        signatures,
    })
}

/// The device name of a light client: its user id's first 8 bytes (one device per user).
fn device_of(identity: &Identity) -> u64 {
    let bytes = identity.user_id();
    let b = bytes.as_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
