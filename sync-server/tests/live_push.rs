//! What one post costs the relay when its author's followers run the real client engine
//! (`SyncEngine::run`, as `watch` and the desktop app do).
//!
//! Regression test for issue 12's push echo: every follower answered each live push with a
//! sync round for that document (a sync message, a ping, the relay's answers, another sync
//! message, an inbox acknowledgement, and a request for the new post's thread), about five
//! frames in per follower for one post. A push that applies cleanly is the whole job: a
//! follower only acknowledges its inbox position.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Profile, Relay};
use social_sync_core::{ConnectionStatus, Event, SyncEngine, SyncError};
use tokio::task::JoinHandle;

const FOLLOWERS: usize = 12;
const MESSAGES_IN: &str = "social_sync_relay_messages_in_total";

/// A profile's engine running in the background until dropped.
struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), SyncError>>>,
}

impl Running {
    /// Starts the engine and waits until it is online.
    async fn start(profile: &Profile, url: &str) -> Self {
        let engine = Arc::new(SyncEngine::new(profile.replica.clone(), url));
        let mut events = engine.subscribe();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            engine
                .run(async {
                    let _ = stop_rx.await;
                })
                .await
        });
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Ok(Event::Connection {
                    status: ConnectionStatus::Online,
                    ..
                }) = events.recv().await
                {
                    return;
                }
            }
        })
        .await
        .expect("online within 20 s");
        Self {
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

/// The relay's count of frames received, once it has stopped moving (no frame for
/// 600 ms): every round the engines started has ended.
async fn messages_in_when_quiet(relay: &Relay) -> f64 {
    let mut last = relay.metric(MESSAGES_IN).await;
    let mut still = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = relay.metric(MESSAGES_IN).await;
        if now == last {
            still += 1;
            if still == 3 {
                return now;
            }
        } else {
            still = 0;
            last = now;
        }
    }
    panic!("the relay kept receiving frames for 20 s ({last} so far)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_applies_cleanly_is_not_answered_with_a_sync_round() {
    let relay = Relay::start(&[]);
    let url = relay.url();
    let ana = Profile::new("Ana", 1, &url);
    ana.sync().await;
    let mut followers = Vec::new();
    for i in 0..FOLLOWERS {
        let follower = Profile::new(&format!("Follower {i}"), 100 + i as u64, &url);
        follower.r().follow(ana.uid).unwrap();
        follower.sync().await;
        followers.push(follower);
    }
    let mut running = vec![Running::start(&ana, &url).await];
    for follower in &followers {
        running.push(Running::start(follower, &url).await);
    }
    let before = messages_in_when_quiet(&relay).await;

    // Ana posts through the replica her running engine syncs: it goes out at once.
    let post = ana.r().post("one post, many followers", &[]).unwrap();
    for follower in &followers {
        tokio::time::timeout(Duration::from_secs(20), async {
            while follower.r().post_view(&post).is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("every follower stores the post");
    }
    let taken_in = messages_in_when_quiet(&relay).await - before;

    // Ana's own round (her sync message, pings, acknowledgement) is a handful; each
    // follower sends at most its inbox acknowledgement. The echo was about 5 per follower.
    let bound = FOLLOWERS + 8;
    assert!(
        taken_in <= bound as f64,
        "one post to {FOLLOWERS} followers made the relay take in {taken_in} frames (at most {bound} expected: one acknowledgement per follower and the author's round)"
    );
    for r in running {
        r.stop().await;
    }
}
