//! (a) Fan-out: one author's document (a `posts` list), `followers` clients that each
//! `request`ed it and synced it first; the author appends a post and syncs; the server
//! relays it to every follower that has the document open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use tokio::sync::{Semaphore, mpsc, watch};

use super::doc::SyncedDoc;
use super::wire::{Conn, Incoming, new_document_id, new_peer_id};
use crate::results::{FanOut, Measured};
use crate::stats::Latency;

/// Followers connecting and syncing the document at once.
const CONNECTING_AT_ONCE: usize = 32;
/// How long a timed post may take to reach every follower.
const POST_LIMIT: Duration = Duration::from_secs(30);
/// How long the burst may take to reach every follower.
const BURST_LIMIT: Duration = Duration::from_secs(120);
/// How long the followers may take to connect and sync the document.
const READY_LIMIT: Duration = Duration::from_secs(300);

/// What a follower tells the measuring loop.
enum Event {
    /// It holds the document (the `posts` list).
    Ready,
    /// Post `post` is in its document, `latency` after the author started the change.
    Delivered { post: usize, latency: Duration },
    /// It received changes it already had.
    Duplicates(u64),
    /// It stopped on an error.
    Failed(String),
}

/// Runs the fan-out workload against the server at `addr`.
pub(super) async fn run(
    addr: SocketAddr,
    followers: usize,
    posts: usize,
    burst: usize,
) -> anyhow::Result<Measured> {
    let origin = Instant::now();
    let mut author = Conn::connect(addr, new_peer_id("author", 0))
        .await
        .context("the author's connection")?;
    let mut made = AutoCommit::new();
    let posts_obj = made.put_object(ROOT, "posts", ObjType::List)?;
    made.commit();
    let mut doc = SyncedDoc::made(new_document_id(), made);
    doc.sync_until_in_step(&mut author, POST_LIMIT).await?;

    let (events, mut rx) = mpsc::unbounded_channel();
    let (stop, stopped) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let mut tasks = Vec::with_capacity(followers);
    for n in 0..followers {
        let (id, events, stopped, gate) = (
            doc.id.clone(),
            events.clone(),
            stopped.clone(),
            gate.clone(),
        );
        tasks.push(tokio::spawn(async move {
            if let Err(e) = follower(addr, n, id, origin, &events, stopped, &gate).await {
                let _ = events.send(Event::Failed(format!("follower {n}: {e:#}")));
            }
        }));
    }
    drop(events);

    let mut tally = Tally::new(followers, posts + burst);
    let deadline = tokio::time::Instant::now() + READY_LIMIT;
    while tally.ready + tally.failed < followers {
        tally.take(
            next(&mut rx, deadline)
                .await
                .context("followers getting the document")?,
        );
    }
    if let Some(why) = &tally.first_failure {
        bail!(
            "{} of {followers} followers failed; the first: {why}",
            tally.failed
        );
    }

    let (posting, post_rx) = mpsc::unbounded_channel();
    let author_task = tokio::spawn(run_author(author, doc, posts_obj, origin, post_rx));

    for post in 0..posts {
        posting.send(post).context("the author stopped")?;
        let deadline = tokio::time::Instant::now() + POST_LIMIT;
        while tally.got[post] < followers - tally.failed {
            match next(&mut rx, deadline).await {
                Ok(event) => tally.take(event),
                Err(e) => {
                    tracing::warn!("post {post}: {e:#}");
                    break;
                }
            }
        }
    }
    let timed: Vec<Duration> = std::mem::take(&mut tally.latencies);

    let burst_start = Instant::now();
    for post in posts..posts + burst {
        posting.send(post).context("the author stopped")?;
    }
    let deadline = tokio::time::Instant::now() + BURST_LIMIT;
    let mut last_delivery = burst_start;
    while (posts..posts + burst).any(|p| tally.got[p] < followers - tally.failed) {
        match next(&mut rx, deadline).await {
            Ok(event) => {
                if matches!(event, Event::Delivered { .. }) {
                    last_delivery = Instant::now();
                }
                tally.take(event);
            }
            Err(e) => {
                tracing::warn!("burst: {e:#}");
                break;
            }
        }
    }
    let burst_delivered: usize = tally.got[posts..].iter().sum();
    let burst_secs = last_delivery.duration_since(burst_start).as_secs_f64();

    let _ = stop.send(true);
    drop(posting);
    for task in tasks {
        let _ = task.await;
    }
    while let Ok(event) = rx.try_recv() {
        tally.take(event);
    }
    author_task.await.context("the author's task")??;
    if let Some(why) = &tally.first_failure {
        tracing::warn!("{} followers failed; the first: {why}", tally.failed);
    }

    Ok(Measured::FanOut(FanOut {
        followers,
        posts,
        latency: Latency::of(timed),
        delivered: tally.got.iter().sum::<usize>() as u64,
        expected: (followers * (posts + burst)) as u64,
        duplicates: tally.duplicates,
        burst,
        deliveries_per_sec: if burst_secs > 0.0 {
            burst_delivered as f64 / burst_secs
        } else {
            0.0
        },
        delivered_when: "sync message applied to the follower's Automerge document (in memory), \
                         post read from it"
            .to_owned(),
    }))
}

/// What the followers said so far.
struct Tally {
    ready: usize,
    failed: usize,
    first_failure: Option<String>,
    /// Followers holding each post.
    got: Vec<usize>,
    latencies: Vec<Duration>,
    duplicates: u64,
}

impl Tally {
    fn new(followers: usize, posts: usize) -> Self {
        Self {
            ready: 0,
            failed: 0,
            first_failure: None,
            got: vec![0; posts],
            latencies: Vec::with_capacity(followers * posts),
            duplicates: 0,
        }
    }

    fn take(&mut self, event: Event) {
        match event {
            Event::Ready => self.ready += 1,
            Event::Delivered { post, latency } => {
                if let Some(got) = self.got.get_mut(post) {
                    *got += 1;
                }
                self.latencies.push(latency);
            }
            Event::Duplicates(n) => self.duplicates += n,
            Event::Failed(why) => {
                self.failed += 1;
                self.first_failure.get_or_insert(why);
            }
        }
    }
}

/// The next event, or an error at `deadline` or when every follower has gone.
async fn next(
    rx: &mut mpsc::UnboundedReceiver<Event>,
    deadline: tokio::time::Instant,
) -> anyhow::Result<Event> {
    match tokio::time::timeout_at(deadline, rx.recv()).await {
        Ok(Some(event)) => Ok(event),
        Ok(None) => bail!("every follower stopped"),
        Err(_) => bail!("timed out waiting for the followers"),
    }
}

/// The author: appends post `n` for each `n` received (one change each, synced at once),
/// and answers the server's sync messages.
async fn run_author(
    mut conn: Conn,
    mut doc: SyncedDoc,
    posts_obj: ObjId,
    origin: Instant,
    mut posting: mpsc::UnboundedReceiver<usize>,
) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            biased;
            post = posting.recv() => {
                let Some(n) = post else { break };
                let at = origin.elapsed().as_micros() as u64;
                let post = doc.doc.insert_object(&posts_obj, n, ObjType::Map)?;
                doc.doc.put(&post, "id", format!("post-{n}"))?;
                doc.doc.put(&post, "text", format!("Post number {n} from the author, a sentence or so long."))?;
                doc.doc.put(&post, "at", at)?;
                doc.doc.commit();
                doc.send(&mut conn).await?;
            }
            incoming = conn.recv() => match incoming? {
                Some(Incoming::Sync { document_id, data }) if document_id == doc.id => {
                    doc.apply(&data)?;
                    doc.send(&mut conn).await?;
                }
                Some(_) => {}
                None => bail!("the sync server closed the author's connection"),
            },
        }
    }
    conn.close().await;
    Ok(())
}

/// A follower: requests the document, syncs it, then reports each post that arrives.
async fn follower(
    addr: SocketAddr,
    n: usize,
    document_id: String,
    origin: Instant,
    events: &mpsc::UnboundedSender<Event>,
    mut stopped: watch::Receiver<bool>,
    gate: &Semaphore,
) -> anyhow::Result<()> {
    let permit = gate.acquire().await?;
    let mut conn = Conn::connect(addr, new_peer_id("follower", n)).await?;
    let mut doc = SyncedDoc::wanted(document_id);
    doc.send(&mut conn).await?;
    let mut permit = Some(permit);
    let mut posts_obj: Option<ObjId> = None;
    let mut seen = 0;
    loop {
        let incoming = tokio::select! {
            incoming = conn.recv() => incoming?,
            _ = stopped.changed() => break,
        };
        match incoming {
            Some(Incoming::Sync { document_id, data }) if document_id == doc.id => {
                let duplicates = doc.apply(&data)?;
                let now = Instant::now();
                if posts_obj.is_none() {
                    posts_obj = match doc.doc.get(ROOT, "posts")? {
                        Some((Value::Object(ObjType::List), id)) => Some(id),
                        _ => None,
                    };
                    if posts_obj.is_some() {
                        permit = None;
                        let _ = events.send(Event::Ready);
                    }
                }
                if let Some(obj) = &posts_obj {
                    let len = doc.doc.length(obj);
                    for post in seen..len {
                        let at = posted_at(&doc.doc, obj, post)?;
                        let latency = now.saturating_duration_since(origin + at);
                        let _ = events.send(Event::Delivered { post, latency });
                    }
                    seen = seen.max(len);
                }
                if duplicates > 0 {
                    let _ = events.send(Event::Duplicates(duplicates));
                }
                doc.send(&mut conn).await?;
            }
            Some(Incoming::Unavailable { .. }) => {
                bail!("the sync server says the author's document is unavailable")
            }
            Some(Incoming::Sync { .. } | Incoming::Other) => {}
            None => bail!("the sync server closed the connection"),
        }
    }
    drop(permit);
    conn.close().await;
    Ok(())
}

/// When the author started post `index` (its `at`, µs after `origin`).
fn posted_at(doc: &AutoCommit, posts: &ObjId, index: usize) -> anyhow::Result<Duration> {
    let Some((Value::Object(ObjType::Map), post)) = doc.get(posts, index)? else {
        bail!("post {index} is not a map");
    };
    match doc.get(&post, "at")? {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Uint(us) => Ok(Duration::from_micros(*us)),
            ScalarValue::Int(us) => Ok(Duration::from_micros((*us).max(0) as u64)),
            other => bail!("post {index}'s `at` is {other:?}"),
        },
        _ => bail!("post {index} has no `at`"),
    }
}
