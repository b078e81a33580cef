//! (a) Fan-out: the author, a real client, posts; every online follower must hold it.
//! The clock starts when the author's post is made on its profile (the click) and stops,
//! per follower, when a light follower has decoded the pushed change, or when a real
//! follower's profile holds the post (the moment its feed could show it).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use automerge::ChangeHash;
use social_sync_core::{DocId, Event, PostId, UserId};
use tokio::sync::mpsc;

use super::Clients;
use super::engine::{EngineClient, start_many};
use super::light::following_crowd;
use super::relay::Relays;
use crate::results::{FanOut, Measured};
use crate::stats::Latency;
use crate::system::Paths;

/// How long any one post may take to reach everyone before it counts as missing.
const POST_DEADLINE: Duration = Duration::from_secs(60);

/// One follower holding one post (the post's number), at `at`.
struct Held {
    client: usize,
    post: usize,
    at: Instant,
}

/// Runs the workload.
pub async fn run(
    paths: &Paths,
    clients: Clients,
    followers: usize,
    posts: usize,
    burst: usize,
    nodes: usize,
) -> anyhow::Result<Measured> {
    let relays = Relays::start(paths, nodes)?;
    let url = relays.url(0);
    let home = tempfile::tempdir()?;
    let mut author = EngineClient::create(&home.path().join("author"), "author", &url)?;
    author.start(Duration::from_secs(30)).await?;
    let author_uid = author.user();

    // Post numbers by change (light followers) and post ids by number (real followers),
    // filled as the author posts.
    let (held_tx, mut held_rx) = mpsc::unbounded_channel::<Held>();
    let (post_tx, post_rx) = tokio::sync::watch::channel(Vec::<(PostId, u64)>::new());
    let mut followers_kept = Vec::new();
    match clients {
        Clients::Light => {
            let (arrival_tx, mut arrivals) = mpsc::unbounded_channel();
            followers_kept.extend(
                following_crowd(&relays.urls(), followers, 10_000, author_uid, &arrival_tx).await?,
            );
            let mut post_rx = post_rx.clone();
            let held_tx = held_tx.clone();
            tokio::spawn(async move {
                let mut by_hash: HashMap<u64, usize> = HashMap::new();
                // Changes that arrived before the author's side had noted them as posts:
                // looked at again when the next post is noted.
                let mut early: Vec<super::light::Arrival> = Vec::new();
                loop {
                    tokio::select! {
                        a = arrivals.recv() => match a {
                            Some(a) => early.push(a),
                            None => return,
                        },
                        changed = post_rx.changed() => if changed.is_err() { return },
                    }
                    if early.iter().any(|a| !by_hash.contains_key(&a.key)) {
                        by_hash = post_rx
                            .borrow_and_update()
                            .iter()
                            .enumerate()
                            .map(|(i, (_, h))| (*h, i))
                            .collect();
                    }
                    early.retain(|a| match by_hash.get(&a.key) {
                        Some(&post) => {
                            let _ = held_tx.send(Held {
                                client: a.client,
                                post,
                                at: a.at,
                            });
                            false
                        }
                        // Not a post of this run (a profile change), once old enough.
                        None => early_is_recent(a),
                    });
                }
            });
        }
        Clients::Engines => {
            let engines = start_many(
                home.path(),
                &url,
                "follower",
                followers,
                Some(author_uid),
                50,
            )
            .await?;
            for (n, engine) in engines.into_iter().enumerate() {
                followers_kept.push(watch_feed(
                    n,
                    engine,
                    author_uid,
                    post_rx.clone(),
                    held_tx.clone(),
                ));
            }
        }
    }

    // Timed posts, one at a time.
    let mut seen: HashSet<(usize, usize)> = HashSet::new();
    let (mut duplicates, mut delivered) = (0u64, 0u64);
    let mut samples = Vec::with_capacity(followers * posts);
    for p in 0..posts {
        let clicked = Instant::now();
        let before = heads(&author, author_uid)?;
        let id = author.replica().post(&format!("post {p}, timed"), &[])?;
        tracing::debug!(
            post_ms = clicked.elapsed().as_secs_f64() * 1e3,
            "the author's profile took the post"
        );
        let key = new_change(&author, author_uid, &before)?;
        post_tx.send_modify(|v| v.push((id, key)));
        let mut got = 0;
        let deadline = clicked + POST_DEADLINE;
        while got < followers {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(Some(h)) = tokio::time::timeout(left, held_rx.recv()).await else {
                break;
            };
            if !seen.insert((h.client, h.post)) {
                duplicates += 1;
                continue;
            }
            delivered += 1;
            if h.post == p {
                got += 1;
                samples.push(h.at - clicked);
            }
        }
    }

    // The burst: back to back, as fast as the author's profile takes them.
    let start = Instant::now();
    for b in 0..burst {
        let before = heads(&author, author_uid)?;
        let id = author.replica().post(&format!("post {b}, burst"), &[])?;
        let key = new_change(&author, author_uid, &before)?;
        post_tx.send_modify(|v| v.push((id, key)));
    }
    let wanted = (followers * burst) as u64;
    let (mut burst_delivered, mut last) = (0u64, start);
    let deadline = start + POST_DEADLINE;
    while burst_delivered < wanted {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(h)) = tokio::time::timeout(left, held_rx.recv()).await else {
            break;
        };
        if !seen.insert((h.client, h.post)) {
            duplicates += 1;
            continue;
        }
        delivered += 1;
        if h.post >= posts {
            burst_delivered += 1;
            last = last.max(h.at);
        }
    }
    let secs = (last - start).as_secs_f64().max(1e-6);
    author.stop().await;
    for task in followers_kept {
        task.abort();
    }
    Ok(Measured::FanOut(FanOut {
        followers,
        posts,
        latency: Latency::of(samples),
        delivered,
        expected: (followers * (posts + burst)) as u64,
        duplicates,
        burst,
        deliveries_per_sec: burst_delivered as f64 / secs,
        delivered_when: match clients {
            Clients::Light => {
                "change decoded by a light client (the real client's connection, no profile)".into()
            }
            Clients::Engines => {
                "post stored in the follower's own SQLite profile by the real engine".into()
            }
        },
    }))
}

/// Whether an arrival not (yet) known as a post is recent enough to wait for the author's
/// side to note it.
fn early_is_recent(a: &super::light::Arrival) -> bool {
    a.at.elapsed() < Duration::from_secs(5)
}

/// The author's own document's heads.
fn heads(author: &EngineClient, uid: UserId) -> anyhow::Result<Vec<ChangeHash>> {
    Ok(author.replica().heads(&DocId::User(uid))?)
}

/// The key ([`super::light::change_key`]) of the one change the author's last edit made
/// after `before`.
fn new_change(author: &EngineClient, uid: UserId, before: &[ChangeHash]) -> anyhow::Result<u64> {
    let changes = author.replica().changes(&DocId::User(uid), before)?;
    match changes.as_slice() {
        [one] => Ok(super::light::change_key(one)),
        other => anyhow::bail!("a post made {} changes, not one", other.len()),
    }
}

/// Reports, for real follower `n`, each post the moment its profile holds it (looked at on
/// every feed change of the author, as the app's feed reloads).
fn watch_feed(
    n: usize,
    engine: EngineClient,
    author: UserId,
    posts: tokio::sync::watch::Receiver<Vec<(PostId, u64)>>,
    held: mpsc::UnboundedSender<Held>,
) -> tokio::task::JoinHandle<()> {
    let mut events = engine.events();
    let mut posts = posts;
    tokio::spawn(async move {
        let mut next = 0;
        loop {
            // A feed change of the author, or a post noted after its change arrived.
            tokio::select! {
                event = events.recv() => match event {
                    Ok(Event::FeedChanged { user }) if user == author => {}
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                },
                changed = posts.changed() => if changed.is_err() { return },
            }
            let at = Instant::now();
            let ids: Vec<PostId> = posts
                .borrow()
                .iter()
                .skip(next)
                .map(|(id, _)| id.clone())
                .collect();
            let replica = engine.replica();
            for id in ids {
                if replica.post_view(&id).is_err() {
                    break;
                }
                let _ = held.send(Held {
                    client: n,
                    post: next,
                    at,
                });
                next += 1;
            }
        }
    })
}
