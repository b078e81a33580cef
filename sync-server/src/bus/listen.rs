//! The bus subscriber: connects (again and again, with backoff), subscribes to what this
//! node needs, passes each message on to the connections its channel stands for (once per
//! connection, however many of its channels a message came on), and after a time without
//! the bus passes on what the store got meanwhile.
//!
//! Catching up: every few seconds while subscribed, the node notes the store's newest news
//! number; a number noted one period earlier is a *checkpoint*: everything up to it was
//! published while this node was listening. When the subscription breaks and comes back,
//! the documents with news after the checkpoint are pushed afresh to the connections they
//! concern (their latest changes: a client missing earlier ones asks for them through
//! sync). More than [`MAX_CATCH_UP`] of them: every client is asked to reconnect, and
//! catches up from its inbox.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use serde_bytes::ByteBuf;
use social_sync_protocol::{DocId, ErrorCode, ServerMessage, wire};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Bytes;

use super::message::{Body, BusMessage};
use super::seen::Seen;
use crate::interest::{Channel, Need};
use crate::shared::Shared;
use crate::store::StoreError;

/// Most documents a node pushes afresh after a gap; beyond, its clients reconnect.
pub(super) const MAX_CATCH_UP: usize = 10_000;
/// How often the checkpoint moves.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);
/// Messages remembered to pass each one on once per connection.
const REMEMBERED: usize = 4096;
/// Connection numbers remembered in all (about 16 bytes each).
const REMEMBERED_CONNECTIONS: usize = 1_000_000;
/// How long a SUBSCRIBE, UNSUBSCRIBE or PING may wait for Redis before the subscription is
/// taken for lost (and made again).
const REDIS_WAIT: Duration = Duration::from_secs(3);
/// Channels per SUBSCRIBE command.
const SUBSCRIBE_CHUNK: usize = 1000;

/// Subscribes and passes messages on until `stop`. `checkpoint`: the store's news number
/// read before the node took connections, where the first subscription catches up from
/// (clients may connect, and read their inboxes, before it is made: the cluster chaos run
/// caught a like missed by a node just restarted).
pub(super) async fn run(
    shared: Arc<Shared>,
    mut needs: mpsc::UnboundedReceiver<Need>,
    mut stop: watch::Receiver<bool>,
    mut checkpoint: Option<u64>,
) {
    let Some(bus) = &shared.bus else { return };
    let mut seen = Seen::new(REMEMBERED, REMEMBERED_CONNECTIONS);
    let mut first = true;
    let mut delay = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return;
        }
        let pubsub =
            tokio::time::timeout(Duration::from_secs(3), bus.client.get_async_pubsub()).await;
        let (mut sink, mut stream) = match pubsub {
            Ok(Ok(p)) => p.split(),
            outcome => {
                let why = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => "no answer within 3 s".into(),
                };
                tracing::warn!(bus = %bus.url, "cannot subscribe to the bus ({why}); live messages from other nodes wait; trying again in {delay:?}");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        // Needs queued while disconnected are in `all()` now; those waiting for the
        // subscriptions to be made are answered once they are.
        let mut flushes = Vec::new();
        while let Ok(need) = needs.try_recv() {
            if let Need::Flush(done) = need {
                flushes.push(done);
            }
        }
        let names: Vec<String> = bus.interest.all().iter().map(Channel::name).collect();
        let mut subscribed = true;
        for chunk in names.chunks(SUBSCRIBE_CHUNK) {
            match tokio::time::timeout(REDIS_WAIT, sink.subscribe(chunk)).await {
                Ok(Ok(())) => {}
                outcome => {
                    let why = match outcome {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {} s", REDIS_WAIT.as_secs()),
                    };
                    tracing::warn!(bus = %bus.url, "subscribing failed ({why}); trying again in {delay:?}");
                    subscribed = false;
                    break;
                }
            }
        }
        if !subscribed {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stop.changed() => return,
            }
            delay = (delay * 2).min(Duration::from_secs(2));
            continue;
        }
        for done in flushes {
            let _ = done.send(());
        }
        delay = Duration::from_millis(100);
        bus.healthy.store(true, Ordering::Relaxed);
        shared.metrics.bus_connected.set(1);
        if first {
            tracing::info!(bus = %bus.url, node = bus.node, channels = names.len(), "listening on the bus");
        }
        if let Some(after) = checkpoint {
            if !first {
                tracing::info!(bus = %bus.url, after, "bus back: passing on what the store got meanwhile");
            }
            catch_up(&shared, after).await;
        }
        first = false;
        // The newest news number now; a checkpoint one period later.
        let mut noted = news_seq(&shared).await.ok();
        checkpoint = checkpoint.or(noted);
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                message = stream.next() => match message {
                    Some(m) => pass_on(&shared, m.get_channel_name(), m.get_payload_bytes(), &mut seen).await,
                    None => break,
                },
                need = needs.recv() => {
                    let done = match need {
                        Some(Need::Want(ch)) => tokio::time::timeout(REDIS_WAIT, sink.subscribe(ch.name())).await,
                        Some(Need::Drop(ch)) => tokio::time::timeout(REDIS_WAIT, sink.unsubscribe(ch.name())).await,
                        Some(Need::Flush(done)) => {
                            let _ = done.send(());
                            Ok(Ok(()))
                        }
                        None => return,
                    };
                    if !matches!(done, Ok(Ok(()))) {
                        break;
                    }
                }
                _ = tick.tick() => {
                    // A subscription whose connection died without a reset (a NAT or a
                    // balancer dropped the idle flow) would never end on its own.
                    let alive = tokio::time::timeout(REDIS_WAIT, sink.ping::<redis::Value>()).await;
                    if !matches!(alive, Ok(Ok(_))) {
                        tracing::warn!(bus = %bus.url, "the bus did not answer a ping");
                        break;
                    }
                    if let Some(n) = noted {
                        checkpoint = Some(n);
                    }
                    noted = news_seq(&shared).await.ok().or(noted);
                }
            }
        }
        bus.healthy.store(false, Ordering::Relaxed);
        shared.metrics.bus_connected.set(0);
        tracing::warn!(bus = %bus.url, checkpoint = ?checkpoint, "lost the bus: live messages from other nodes wait; reconnecting");
    }
}

pub(super) async fn news_seq(shared: &Arc<Shared>) -> Result<u64, StoreError> {
    let store = shared.clone();
    crate::blocking::run(move || store.docs.with_store(|s| s.news_seq())).await?
}

/// Queues a bus message on the connections its channel stands for, except those it
/// reached already through another channel.
async fn pass_on(shared: &Arc<Shared>, channel: &str, payload: &[u8], seen: &mut Seen) {
    let Some(bus) = &shared.bus else { return };
    let message = match BusMessage::decode(payload) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(%channel, "{e}");
            return;
        }
    };
    if message.origin == bus.node {
        return;
    }
    shared.metrics.bus_received.inc();
    let frame = match message.body {
        Body::Gap { after } => {
            tracing::info!(
                after,
                origin = message.origin,
                "a node could not publish news; passing on what the store has"
            );
            return catch_up(shared, after).await;
        }
        Body::Frame { frame, follows } => {
            if !follows.is_empty() && seen.is_new((message.origin, message.id)) {
                bus.follows.changed(&follows);
            }
            Bytes::from(frame.into_vec())
        }
    };
    let parsed = Channel::parse(channel);
    seen.deliver((message.origin, message.id), |done| match parsed {
        Some(Channel::User(user)) => shared.hub.fan_out_once(&[user], None, &frame, done),
        Some(Channel::Owner(owner)) => {
            let mut users = bus.follows.followers_here(owner);
            users.push(owner);
            shared.hub.fan_out_once(&users, None, &frame, done);
        }
        Some(Channel::Doc(doc)) => shared.hub.fan_out_once(&[], Some(&doc), &frame, done),
        Some(Channel::Gap) | None => {
            tracing::warn!(%channel, "a frame on a channel that carries none; dropped");
        }
    });
}

/// Pushes the latest changes of every document with news after `after` to the connections
/// here that it concerns; too many, and every client here is asked to reconnect.
async fn catch_up(shared: &Arc<Shared>, after: u64) {
    let Some(bus) = &shared.bus else { return };
    let store = shared.clone();
    let news = crate::blocking::run(move || {
        store
            .docs
            .with_store(|s| s.news_after(after, MAX_CATCH_UP + 1))
    })
    .await;
    let news = match news {
        Ok(Ok(news)) => news,
        outcome => {
            let why = match outcome {
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
                Ok(Ok(_)) => String::new(),
            };
            tracing::error!(
                "cannot read what the store got while the bus was away ({why}); asking every client here to reconnect"
            );
            shared.hub.kick_all(ErrorCode::ShuttingDown);
            return;
        }
    };
    if news.len() > MAX_CATCH_UP {
        tracing::warn!(
            after,
            "more than {MAX_CATCH_UP} documents changed while the bus was away; asking every client here to reconnect and catch up"
        );
        shared.hub.kick_all(ErrorCode::ShuttingDown);
        return;
    }
    let count = news.len();
    for (doc, _) in news {
        let mut users = bus.follows.followers_here(doc.owner());
        users.push(doc.owner());
        if let DocId::User(owner) = &doc {
            // Those the owner follows get their user document too (a new follower).
            let (store, owner) = (shared.clone(), *owner);
            if let Ok(Ok(following)) =
                crate::blocking::run(move || store.docs.with_store(|s| s.following(owner))).await
            {
                users.extend(following);
            }
        }
        let (docs, d) = (shared.clone(), doc.clone());
        let latest = crate::blocking::run(move || docs.docs.latest(&d)).await;
        let Ok(Ok(crate::documents::Latest {
            changes,
            signatures,
        })) = latest
        else {
            tracing::warn!(%doc, "cannot read a document to pass on after the bus came back");
            continue;
        };
        if changes.is_empty() {
            continue;
        }
        let frame = Bytes::from(wire::encode(&ServerMessage::Changes {
            doc: doc.clone(),
            changes: changes.into_iter().map(ByteBuf::from).collect(),
            signatures: signatures.into_iter().map(ByteBuf::from).collect(),
            seq: 0,
        }));
        shared.hub.fan_out(&users, Some(&doc), &frame, 0);
    }
    shared.metrics.bus_caught_up.inc_by(count as u64);
}
