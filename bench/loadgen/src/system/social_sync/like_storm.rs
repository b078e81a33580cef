//! (b) Like storm: `likers` light clients like one post within about a second while
//! `viewers` followers of its author watch it. A viewer shows the exact count when it holds
//! every like: a light viewer counts the distinct like changes pushed to it; a real viewer
//! reads the post's like count from its own profile, as the app's feed shows it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use social_sync_core::{Event, PostId};
use tokio::sync::mpsc;

use super::Clients;
use super::engine::{EngineClient, lock, start_many};
use super::light::{Light, identity};
use super::relay::Relays;
use crate::results::{LikeStorm, Measured};
use crate::system::Paths;

/// How long after the last like the viewers may take before the run stops waiting.
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);

/// Each viewer's count as it shows it, and when it first showed the final count.
type Shown = Arc<Mutex<Vec<(u64, Option<Instant>)>>>;

/// Runs the workload.
pub async fn run(
    paths: &Paths,
    clients: Clients,
    likers: usize,
    viewers: usize,
    nodes: usize,
) -> anyhow::Result<Measured> {
    let relays = Relays::start(paths, nodes)?;
    let url = relays.url(0);
    let home = tempfile::tempdir()?;
    let mut author = EngineClient::create(&home.path().join("author"), "author", &url)?;
    author.start(Duration::from_secs(30)).await?;
    let author_uid = author.user();
    let post = author.replica().post("like this", &[])?;
    author
        .settled(Instant::now() + Duration::from_secs(10))
        .await?;

    // Each viewer's count, as it shows it; `(count, when it reached `likers`)`.
    let shown: Shown = Arc::new(Mutex::new(vec![(0, None); viewers]));
    let mut tasks = Vec::new();
    match clients {
        Clients::Light => {
            let (arrival_tx, mut arrivals) = mpsc::unbounded_channel();
            tasks.extend(
                super::light::following_crowd(
                    &relays.urls(),
                    viewers,
                    20_000,
                    author_uid,
                    &arrival_tx,
                )
                .await?,
            );
            let shown = Arc::clone(&shown);
            tasks.push(tokio::spawn(async move {
                let mut seen: HashSet<(usize, u64)> = HashSet::new();
                while let Some(a) = arrivals.recv().await {
                    if seen.insert((a.client, a.key)) {
                        let mut shown = lock(&shown);
                        let entry = &mut shown[a.client];
                        entry.0 += 1;
                        if entry.0 == likers as u64 {
                            entry.1 = Some(a.at);
                        }
                    }
                }
            }));
        }
        Clients::Engines => {
            let engines =
                start_many(home.path(), &url, "viewer", viewers, Some(author_uid), 50).await?;
            for (n, engine) in engines.into_iter().enumerate() {
                tasks.push(watch_count(
                    n,
                    engine,
                    post.clone(),
                    likers,
                    Arc::clone(&shown),
                ));
            }
        }
    }

    // The likers connect first; the storm is the likes, spread over about a second.
    let mut crowd = Vec::with_capacity(likers);
    for chunk in (0..likers).collect::<Vec<_>>().chunks(200) {
        let joined = futures_util::future::join_all(chunk.iter().map(|&n| {
            let url = relays.url(n + 1);
            async move { Light::connect(&url, identity(40_000 + n as u64)).await }
        }))
        .await;
        for light in joined {
            crowd.push(light?);
        }
    }
    let start = Instant::now();
    let spacing = Duration::from_secs(1) / likers.max(1) as u32;
    let sent =
        futures_util::future::join_all(crowd.into_iter().enumerate().map(|(i, mut light)| {
            let post = post.clone();
            async move {
                tokio::time::sleep(spacing * i as u32).await;
                let sent = light.like(&post).await?;
                light.close().await;
                anyhow::Ok(sent)
            }
        }))
        .await;
    // The clock of "settled" starts when the last like's change left its liker.
    let mut last_like = start;
    for sent in sent {
        last_like = last_like.max(sent?);
    }

    let deadline = last_like + SETTLE_DEADLINE;
    loop {
        let everyone = lock(&shown).iter().all(|(_, at)| at.is_some());
        if everyone || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let shown = lock(&shown).clone();
    let settled = shown
        .iter()
        .filter_map(|(_, at)| *at)
        .max()
        .unwrap_or(last_like);
    author.stop().await;
    for task in tasks {
        task.abort();
    }
    Ok(Measured::LikeStorm(LikeStorm {
        likers,
        viewers,
        sending_ms: (last_like - start).as_secs_f64() * 1e3,
        settled_ms: settled.saturating_duration_since(last_like).as_secs_f64() * 1e3,
        exact_viewers: shown.iter().filter(|(c, _)| *c == likers as u64).count(),
        max_count_seen: shown.iter().map(|(c, _)| *c).max().unwrap_or(0),
    }))
}

/// Follows real viewer `n`'s like count of `post`, read from its profile on every change
/// of the post's thread.
fn watch_count(
    n: usize,
    engine: EngineClient,
    post: PostId,
    likers: usize,
    shown: Shown,
) -> tokio::task::JoinHandle<()> {
    let mut events = engine.events();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(Event::ThreadChanged { post_id }) if post_id == post => {}
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
            let at = Instant::now();
            let Ok(view) = engine.replica().post_view(&post) else {
                continue;
            };
            let mut shown = lock(&shown);
            shown[n].0 = view.likes;
            if view.likes == likers as u64 && shown[n].1.is_none() {
                shown[n].1 = Some(at);
            }
        }
    })
}
