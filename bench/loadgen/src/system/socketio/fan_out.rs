//! (a) Fan-out: one author's `new-post` to its online followers' rooms.
//!
//! Followers (clients `1..=followers`, users `f<i>`) connect and follow the author with
//! `user-followed` (acknowledged) before anything is timed; the author (client 0) connects
//! last. A delivery is a follower parsing a `new-post` event into its struct; its latency runs
//! from just before the author's emit to that parse.

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::time::timeout_at;

use super::client::{Client, Delivery};
use super::wire::{Event, Follow, NewPost, iso_now};
use super::{Cluster, close_all, connect_all, request_all};
use crate::results::{FanOut, Measured};
use crate::stats::Latency;

/// How long one timed post may take to reach every follower.
const POST_PATIENCE: Duration = Duration::from_secs(30);
/// How long to keep listening after the last expected delivery, for duplicates.
const GRACE: Duration = Duration::from_millis(500);

const AUTHOR: &str = "author";

/// Runs the workload.
pub(super) async fn run(
    cluster: &Cluster,
    followers: usize,
    posts: usize,
    burst: usize,
) -> anyhow::Result<Measured> {
    let (sink, mut events) = mpsc::unbounded_channel();
    let clients = connect_all(cluster, "f", 1, followers, Some(&sink)).await?;
    drop(sink);
    request_all(&clients, "user-followed", |_| Follow { user_id: AUTHOR }).await?;
    let author = Client::connect(cluster.addr(0), AUTHOR, 0, None)
        .await
        .context("the author")?;
    // The author's arrival sends `user-status` to every follower: let it pass untimed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while events.try_recv().is_ok() {}

    let mut tally = Tally::new(followers, posts + burst, posts);
    let mut acks = Vec::new();
    for n in 0..posts {
        tally.sent[n] = Some(Instant::now());
        acks.push(author.emit("new-post", &post(n))?);
        let deadline = tokio::time::Instant::now() + POST_PATIENCE;
        while tally.per_post[n] < followers {
            match timeout_at(deadline, events.recv()).await {
                Ok(Some(delivery)) => tally.record(delivery),
                Ok(None) | Err(_) => break,
            }
        }
    }
    let start = Instant::now();
    for n in posts..posts + burst {
        tally.sent[n] = Some(Instant::now());
        acks.push(author.emit("new-post", &post(n))?);
    }
    let expected_burst = followers * burst;
    let deadline =
        tokio::time::Instant::now() + POST_PATIENCE + Duration::from_millis(burst as u64 * 100);
    while tally.per_post[posts..].iter().sum::<usize>() < expected_burst {
        match timeout_at(deadline, events.recv()).await {
            Ok(Some(delivery)) => tally.record(delivery),
            Ok(None) | Err(_) => break,
        }
    }
    let burst_delivered: usize = tally.per_post[posts..].iter().sum();
    let burst_secs = tally
        .last_burst_delivery
        .map_or(0.0, |last| last.duration_since(start).as_secs_f64());
    let grace = tokio::time::Instant::now() + GRACE;
    while let Ok(Some(delivery)) = timeout_at(grace, events.recv()).await {
        tally.record(delivery);
    }
    for ack in acks {
        ack.wait().await.context("new-post")?;
    }
    author.close().await;
    close_all(clients).await;

    Ok(Measured::FanOut(FanOut {
        followers,
        posts,
        latency: Latency::of(tally.latencies),
        delivered: tally.per_post.iter().sum::<usize>() as u64,
        expected: (followers * (posts + burst)) as u64,
        duplicates: tally.duplicates,
        burst,
        deliveries_per_sec: if burst_secs > 0.0 {
            burst_delivered as f64 / burst_secs
        } else {
            0.0
        },
        delivered_when: "event parsed".to_owned(),
    }))
}

fn post(n: usize) -> NewPost {
    NewPost {
        post_id: format!("p{n}"),
        caption: format!("Post {n} of the fan-out workload"),
        created_by: AUTHOR.to_owned(),
        created_by_username: AUTHOR.to_owned(),
        media_type: "image".to_owned(),
        timestamp: iso_now(),
    }
}

/// Who got which post, when.
struct Tally {
    posts: usize,
    /// When each post was sent.
    sent: Vec<Option<Instant>>,
    /// Copies each follower got of each post (`follower * posts + post`).
    got: Vec<u8>,
    /// Followers that got each post.
    per_post: Vec<usize>,
    /// Posts `0..timed` are timed one at a time, the rest are the burst.
    timed: usize,
    latencies: Vec<Duration>,
    duplicates: u64,
    last_burst_delivery: Option<Instant>,
}

impl Tally {
    fn new(followers: usize, posts: usize, timed: usize) -> Self {
        Self {
            posts,
            sent: vec![None; posts],
            got: vec![0; followers * posts],
            per_post: vec![0; posts],
            timed,
            latencies: Vec::with_capacity(followers * posts),
            duplicates: 0,
            last_burst_delivery: None,
        }
    }

    fn record(&mut self, delivery: Delivery) {
        let Event::NewPost(post) = delivery.event else {
            return;
        };
        let Some(n) = post
            .post_id
            .strip_prefix('p')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n < self.posts && post.created_by == AUTHOR)
        else {
            return;
        };
        let Some(follower) = (delivery.client as usize).checked_sub(1) else {
            return;
        };
        let Some(got) = self.got.get_mut(follower * self.posts + n) else {
            return;
        };
        *got = got.saturating_add(1);
        if *got > 1 {
            self.duplicates += 1;
            return;
        }
        self.per_post[n] += 1;
        let Some(sent) = self.sent[n] else {
            return;
        };
        if n < self.timed {
            self.latencies
                .push(delivery.at.saturating_duration_since(sent));
        } else {
            self.last_burst_delivery = Some(
                self.last_burst_delivery
                    .map_or(delivery.at, |last| last.max(delivery.at)),
            );
        }
    }
}
