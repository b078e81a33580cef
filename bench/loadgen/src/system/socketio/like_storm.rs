//! (b) Like storm: `likers` clients like one post within about a second while `viewers`
//! watch it.
//!
//! Viewers (clients `0..viewers`, users `v<i>`) join the post's room with `view-post`
//! (acknowledged); likers (the next `likers` clients, users `l<i>`) send `post-liked` at
//! evenly spaced instants over one second. A viewer shows the `totalLikes` of the last
//! `post-liked` it parsed, as the seed's `updatePostLikes(data.postId, data.totalLikes)` does.
//! Settled: from the last like sent until every viewer has parsed `totalLikes == likers`.
//! Exact viewers: those whose last event, once nothing more comes, says `likers`.

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::time::timeout_at;

use super::client::Delivery;
use super::wire::{Event, Like, ViewPost};
use super::{Cluster, close_all, connect_all, request_all};
use crate::results::{LikeStorm, Measured};

const POST: &str = "storm";
/// How long after the last like the viewers may take to settle.
const PATIENCE: Duration = Duration::from_secs(30);
/// How long to keep listening once settled, for late (out of order) counts.
const GRACE: Duration = Duration::from_millis(500);

/// Runs the workload.
pub(super) async fn run(
    cluster: &Cluster,
    likers: usize,
    viewers: usize,
) -> anyhow::Result<Measured> {
    let (sink, mut events) = mpsc::unbounded_channel();
    let watching = connect_all(cluster, "v", 0, viewers, Some(&sink)).await?;
    drop(sink);
    request_all(&watching, "view-post", |_| ViewPost { post_id: POST }).await?;
    let liking = connect_all(cluster, "l", viewers, likers, None).await?;

    let spacing = Duration::from_secs(1) / u32::try_from(likers.max(1))?;
    let first = Instant::now();
    let mut last = first;
    let mut acks = Vec::with_capacity(likers);
    for (i, liker) in liking.iter().enumerate() {
        tokio::time::sleep_until((first + spacing * u32::try_from(i)?).into()).await;
        acks.push(liker.emit(
            "post-liked",
            &Like {
                post_id: POST,
                liked: true,
            },
        )?);
        last = Instant::now();
    }

    let target = likers as u64;
    let mut view = Views {
        shown: vec![0; viewers],
        settled_at: vec![None; viewers],
        unsettled: viewers,
        max_seen: 0,
        target,
    };
    let deadline = tokio::time::Instant::from_std(last) + PATIENCE;
    while view.unsettled > 0 {
        match timeout_at(deadline, events.recv()).await {
            Ok(Some(delivery)) => view.record(delivery),
            Ok(None) | Err(_) => break,
        }
    }
    let grace = tokio::time::Instant::now() + GRACE;
    while let Ok(Some(delivery)) = timeout_at(grace, events.recv()).await {
        view.record(delivery);
    }
    for ack in acks {
        ack.wait().await.context("post-liked")?;
    }
    close_all(watching).await;
    close_all(liking).await;

    let settled = if view.unsettled == 0 {
        view.settled_at
            .iter()
            .flatten()
            .map(|at| at.saturating_duration_since(last))
            .max()
            .unwrap_or_default()
    } else {
        PATIENCE
    };
    Ok(Measured::LikeStorm(LikeStorm {
        likers,
        viewers,
        sending_ms: last.duration_since(first).as_secs_f64() * 1_000.0,
        settled_ms: settled.as_secs_f64() * 1_000.0,
        exact_viewers: view.shown.iter().filter(|&&n| n == target).count(),
        max_count_seen: view.max_seen,
    }))
}

/// What each viewer shows.
struct Views {
    /// The count each viewer shows (its last event's).
    shown: Vec<u64>,
    /// When each viewer first showed the final count.
    settled_at: Vec<Option<Instant>>,
    unsettled: usize,
    max_seen: u64,
    target: u64,
}

impl Views {
    fn record(&mut self, delivery: Delivery) {
        let Event::PostLiked(like) = delivery.event else {
            return;
        };
        let viewer = delivery.client as usize;
        if like.post_id != POST || viewer >= self.shown.len() {
            return;
        }
        self.shown[viewer] = like.total_likes;
        self.max_seen = self.max_seen.max(like.total_likes);
        if like.total_likes == self.target && self.settled_at[viewer].is_none() {
            self.settled_at[viewer] = Some(delivery.at);
            self.unsettled -= 1;
        }
    }
}
