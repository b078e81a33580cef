//! (b) Like storm: one post's document holds a map `likes`; `viewers` and `likers` each
//! `request` it and sync it first; then the likers, spread over about a second, each set
//! `likes[<their id>] = true` and sync. The count a viewer shows is the number of keys.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, Value};
use tokio::sync::{Semaphore, mpsc, watch};

use super::doc::SyncedDoc;
use super::wire::{Conn, Incoming, new_document_id, new_peer_id};
use crate::results::{LikeStorm, Measured};

/// Clients connecting and syncing the document at once.
const CONNECTING_AT_ONCE: usize = 32;
/// How long every client may take to connect and sync the document.
const READY_LIMIT: Duration = Duration::from_secs(300);
/// Over how long the likes are spread.
const SPREAD: Duration = Duration::from_secs(1);
/// How long after the last like the viewers may take to show the final count.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// What a client tells the measuring loop.
enum Event {
    /// It holds the document (the `likes` map).
    Ready,
    /// A liker sent its like.
    Liked(Instant),
    /// Viewer `viewer` shows `count` likes.
    Count {
        viewer: usize,
        count: u64,
        at: Instant,
    },
    /// It stopped on an error.
    Failed(String),
}

/// A client's part.
#[derive(Clone, Copy)]
enum Role {
    /// Watches the count (viewer number).
    Viewer(usize),
    /// Likes once, `delay` after the start.
    Liker { delay: Duration },
}

/// Runs the like storm against the server at `addr`.
pub(super) async fn run(
    addr: SocketAddr,
    likers: usize,
    viewers: usize,
) -> anyhow::Result<Measured> {
    let mut owner = Conn::connect(addr, new_peer_id("owner", 0))
        .await
        .context("the post owner's connection")?;
    let mut made = AutoCommit::new();
    made.put_object(ROOT, "likes", ObjType::Map)?;
    made.commit();
    let mut doc = SyncedDoc::made(new_document_id(), made);
    doc.sync_until_in_step(&mut owner, READY_LIMIT).await?;
    owner.close().await;

    let (events, mut rx) = mpsc::unbounded_channel();
    let (stop, stopped) = watch::channel(false);
    let (go, started) = watch::channel(None::<tokio::time::Instant>);
    let gate = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let roles = (0..viewers)
        .map(Role::Viewer)
        .chain((0..likers).map(|n| Role::Liker {
            delay: SPREAD.mul_f64(n as f64 / likers.max(1) as f64),
        }));
    let mut tasks = Vec::with_capacity(likers + viewers);
    for (n, role) in roles.enumerate() {
        let (id, events, gate) = (doc.id.clone(), events.clone(), gate.clone());
        let (stopped, started) = (stopped.clone(), started.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = member(addr, n, role, id, &events, stopped, started, &gate).await {
                let _ = events.send(Event::Failed(format!("client {n}: {e:#}")));
            }
        }));
    }
    drop(events);

    let clients = likers + viewers;
    let (mut ready, mut failed) = (0, 0);
    let deadline = tokio::time::Instant::now() + READY_LIMIT;
    while ready + failed < clients {
        match next(&mut rx, deadline)
            .await
            .context("clients getting the post")?
        {
            Event::Ready => ready += 1,
            Event::Failed(why) => {
                failed += 1;
                tracing::warn!("{why}");
            }
            Event::Liked(_) | Event::Count { .. } => {}
        }
    }
    if failed > 0 {
        bail!("{failed} of {clients} clients could not get the post");
    }

    go.send(Some(
        tokio::time::Instant::now() + Duration::from_millis(50),
    ))?;
    let mut counts = vec![0_u64; viewers];
    let mut max_count_seen = 0;
    let (mut first_like, mut last_like, mut likes_sent) = (None::<Instant>, None::<Instant>, 0);
    let mut exact = 0;
    let mut last_exact = None::<Instant>;
    let mut deadline = tokio::time::Instant::now() + SPREAD + SETTLE_LIMIT;
    while likes_sent < likers || exact < viewers {
        let event = match next(&mut rx, deadline).await {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!("like storm: {e:#}");
                break;
            }
        };
        match event {
            Event::Liked(at) => {
                likes_sent += 1;
                first_like = Some(first_like.map_or(at, |f| f.min(at)));
                last_like = Some(last_like.map_or(at, |l| l.max(at)));
                if likes_sent == likers {
                    deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
                }
            }
            Event::Count { viewer, count, at } => {
                max_count_seen = max_count_seen.max(count);
                let was_exact = counts[viewer] == likers as u64;
                counts[viewer] = count;
                match (was_exact, count == likers as u64) {
                    (false, true) => {
                        exact += 1;
                        last_exact = Some(last_exact.map_or(at, |l| l.max(at)));
                    }
                    (true, false) => exact -= 1,
                    _ => {}
                }
            }
            Event::Failed(why) => tracing::warn!("{why}"),
            Event::Ready => {}
        }
    }
    let settled_at = if exact == viewers {
        last_exact
    } else {
        Some(Instant::now())
    };
    let _ = stop.send(true);
    for task in tasks {
        let _ = task.await;
    }

    let ms = |from: Option<Instant>, to: Option<Instant>| match (from, to) {
        (Some(from), Some(to)) => to.saturating_duration_since(from).as_secs_f64() * 1_000.0,
        _ => 0.0,
    };
    Ok(Measured::LikeStorm(LikeStorm {
        likers,
        viewers,
        sending_ms: ms(first_like, last_like),
        settled_ms: ms(last_like, settled_at),
        exact_viewers: counts.iter().filter(|&&c| c == likers as u64).count(),
        max_count_seen,
    }))
}

/// The next event, or an error at `deadline` or when every client has gone.
async fn next(
    rx: &mut mpsc::UnboundedReceiver<Event>,
    deadline: tokio::time::Instant,
) -> anyhow::Result<Event> {
    match tokio::time::timeout_at(deadline, rx.recv()).await {
        Ok(Some(event)) => Ok(event),
        Ok(None) => bail!("every client stopped"),
        Err(_) => bail!("timed out waiting for the clients"),
    }
}

/// A viewer or a liker: requests the post's document and syncs it; a liker then likes at
/// its time; a viewer reports every change of the count it shows.
#[allow(clippy::too_many_arguments)]
async fn member(
    addr: SocketAddr,
    n: usize,
    role: Role,
    document_id: String,
    events: &mpsc::UnboundedSender<Event>,
    mut stopped: watch::Receiver<bool>,
    mut started: watch::Receiver<Option<tokio::time::Instant>>,
    gate: &Semaphore,
) -> anyhow::Result<()> {
    let permit = gate.acquire().await?;
    let peer_id = new_peer_id("member", n);
    let mut conn = Conn::connect(addr, peer_id.clone()).await?;
    let mut doc = SyncedDoc::wanted(document_id);
    doc.send(&mut conn).await?;
    let mut permit = Some(permit);
    let mut likes: Option<ObjId> = None;
    let mut shown = 0;
    let mut like_at = None::<tokio::time::Instant>;
    let mut liked = false;
    loop {
        let incoming = tokio::select! {
            incoming = conn.recv() => incoming?,
            _ = stopped.changed() => break,
            changed = started.changed(), if like_at.is_none() => {
                changed?;
                if let (Role::Liker { delay }, Some(start)) = (role, *started.borrow()) {
                    like_at = Some(start + delay);
                }
                continue;
            }
            _ = sleep_until(like_at), if like_at.is_some() && !liked => {
                let likes = likes.as_ref().context("liking before holding the post")?;
                doc.doc.put(likes, peer_id.as_str(), true)?;
                doc.doc.commit();
                doc.send(&mut conn).await?;
                liked = true;
                let _ = events.send(Event::Liked(Instant::now()));
                continue;
            }
        };
        match incoming {
            Some(Incoming::Sync { document_id, data }) if document_id == doc.id => {
                doc.apply(&data)?;
                let at = Instant::now();
                if likes.is_none() {
                    likes = match doc.doc.get(ROOT, "likes")? {
                        Some((Value::Object(ObjType::Map), id)) => Some(id),
                        _ => None,
                    };
                    if likes.is_some() {
                        permit = None;
                        let _ = events.send(Event::Ready);
                    }
                }
                if let (Role::Viewer(viewer), Some(obj)) = (role, &likes) {
                    let count = doc.doc.length(obj) as u64;
                    if count != shown {
                        shown = count;
                        let _ = events.send(Event::Count { viewer, count, at });
                    }
                }
                doc.send(&mut conn).await?;
            }
            Some(Incoming::Unavailable { .. }) => {
                bail!("the sync server says the post's document is unavailable")
            }
            Some(Incoming::Sync { .. } | Incoming::Other) => {}
            None => bail!("the sync server closed the connection"),
        }
    }
    drop(permit);
    conn.close().await;
    Ok(())
}

/// Sleeps until `at` (forever when there is none).
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
