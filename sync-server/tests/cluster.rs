//! Issue 13: a relay cluster — three `sync-server` nodes over one private PostgreSQL
//! (`--store`) and one private Redis (`--bus`), all real processes on loopback, with real
//! clients (the core library's sync engine and SQLite profiles).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)] // test code: it prints its figures

mod common;

use std::time::{Duration, Instant};

use common::pg::Postgres;
use common::redis::Redis;
use common::watch::{Watch, wait_for};
use common::{Profile, Relay};
use social_sync_core::{Event, NotificationKind};
use social_sync_protocol::PostId;

/// Three nodes sharing one database and one bus.
struct Cluster {
    pg: Postgres,
    redis: Redis,
    db: String,
    nodes: Vec<Relay>,
}

impl Cluster {
    fn start(nodes: usize) -> Self {
        Self::start_with(nodes, &[])
    }

    /// `nodes` nodes, each with the options `extra` besides the store and the bus.
    fn start_with(nodes: usize, extra: &[&str]) -> Self {
        let pg = Postgres::start();
        let redis = Redis::start();
        let db = pg.fresh_db();
        let bus = redis.url();
        let nodes = (0..nodes)
            .map(|_| {
                let mut args = vec!["--store", &db, "--bus", &bus];
                args.extend_from_slice(extra);
                Relay::start(&args)
            })
            .collect();
        Self {
            pg,
            redis,
            db,
            nodes,
        }
    }

    fn url(&self, node: usize) -> String {
        self.nodes[node].url()
    }
}

fn has_post(p: &Profile, post: &PostId) -> bool {
    p.r()
        .feed(None, 100)
        .unwrap()
        .posts
        .iter()
        .any(|x| x.post_id == *post)
}

/// Polls `check` every 50 ms for up to `max`; true once it holds.
async fn eventually(max: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + max;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

/// A post made through node one reaches a follower connected to node three live, and
/// presence crosses nodes both ways (online, then offline when Ana's app closes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_on_node_one_reaches_a_follower_on_node_three_live() {
    let c = Cluster::start(3);
    let ana = Profile::new("Ana", 1, &c.url(0));
    let ben = Profile::new("Ben", 2, &c.url(2));
    ana.r().follow(ben.uid).unwrap();
    ben.r().follow(ana.uid).unwrap();
    ana.sync().await;
    ben.sync().await;

    let mut ben_live = Watch::start(&ben, &c.url(2)).await;
    let ana_live = Watch::start(&ana, &c.url(0)).await;
    wait_for(
        &mut ben_live.events,
        |e| matches!(e, Event::Presence { user, online: true } if *user == ana.uid),
    )
    .await;

    let started = Instant::now();
    let post = ana.r().post("through node one", &[]).unwrap();
    wait_for(
        &mut ben_live.events,
        |e| matches!(e, Event::FeedChanged { user } if *user == ana.uid),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(5), || has_post(&ben, &post)).await,
        "Ben, on node three, has the post"
    );
    eprintln!(
        "node one to node three, post to feed: {:?}",
        started.elapsed()
    );

    ana_live.stop().await;
    wait_for(
        &mut ben_live.events,
        |e| matches!(e, Event::Presence { user, online: false } if *user == ana.uid),
    )
    .await;
    assert!(
        ben_live.engine.online().await.unwrap().is_empty(),
        "asked through node three, Ana is offline"
    );
    ben_live.stop().await;
}

/// 1,000 likes (50 people, 20 posts each) made through three nodes: every viewer, on every
/// node, ends with the same exact counts, and Ana is notified of each like exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_likes_across_three_nodes_give_every_viewer_the_same_count() {
    const LIKERS: usize = 50;
    const POSTS: usize = 20;
    let c = Cluster::start(3);
    let ana = Profile::new("Ana", 1, &c.url(0));
    let posts: Vec<PostId> = (0..POSTS)
        .map(|i| ana.r().post(&format!("post {i}"), &[]).unwrap())
        .collect();
    ana.sync().await;
    let viewers: Vec<Profile> = (0..3)
        .map(|n| Profile::new(&format!("Viewer{n}"), 100 + n as u64, &c.url(n)))
        .collect();
    let mut live = Vec::new();
    for (n, v) in viewers.iter().enumerate() {
        v.r().follow(ana.uid).unwrap();
        v.sync().await;
        live.push(Watch::start(v, &c.url(n)).await);
    }
    let ana_live = Watch::start(&ana, &c.url(0)).await;

    let likers: Vec<Profile> = (0..LIKERS)
        .map(|i| Profile::new(&format!("Liker{i}"), 1000 + i as u64, &c.url(i % 3)))
        .collect();
    let started = Instant::now();
    for liker in &likers {
        liker.r().follow(ana.uid).unwrap();
        liker.sync().await;
        for post in &posts {
            liker.r().like(post).unwrap();
        }
        liker.sync().await;
    }
    let counts = |p: &Profile| -> Vec<u64> {
        let feed = p.r().feed(None, 100).unwrap().posts;
        posts
            .iter()
            .map(|id| {
                feed.iter()
                    .find(|x| x.post_id == *id)
                    .map_or(0, |x| x.likes)
            })
            .collect()
    };
    let want = vec![LIKERS as u64; POSTS];
    for (n, v) in viewers.iter().enumerate().chain([(0, &ana)]) {
        assert!(
            eventually(Duration::from_secs(20), || counts(v) == want).await,
            "viewer on node {} sees {:?}",
            n + 1,
            counts(v)
        );
    }
    eprintln!(
        "1,000 likes through three nodes, all seen everywhere: {:?}",
        started.elapsed()
    );
    let likes_notified = ana
        .r()
        .notifications(false, 5000)
        .unwrap()
        .iter()
        .filter(|n| n.kind == NotificationKind::Like)
        .count();
    assert_eq!(likes_notified, LIKERS * POSTS, "one notification per like");
    for w in live {
        w.stop().await;
    }
    ana_live.stop().await;
}

/// Redis restarts (kill -9: every subscription and presence entry is gone): live delivery
/// resumes, and a post accepted while the bus was down reaches the live follower on
/// another node without a reconnect (its node passes on what the store got meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_resumes_live_delivery_and_passes_on_what_was_missed() {
    let mut c = Cluster::start(2);
    let ana = Profile::new("Ana", 1, &c.url(0));
    let ben = Profile::new("Ben", 2, &c.url(1));
    ben.r().follow(ana.uid).unwrap();
    ana.sync().await;
    ben.sync().await;
    let ben_live = Watch::start(&ben, &c.url(1)).await;

    c.redis.kill();
    let missed = ana.r().post("while the bus was down", &[]).unwrap();
    ana.sync().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.redis.start_again();
    assert!(
        eventually(Duration::from_secs(15), || has_post(&ben, &missed)).await,
        "the post accepted while Redis was down reached Ben once it was back"
    );
    let after = ana.r().post("after the restart", &[]).unwrap();
    ana.sync().await;
    assert!(
        eventually(Duration::from_secs(5), || has_post(&ben, &after)).await,
        "live delivery resumed"
    );
    let status = c.nodes[1].metric("social_sync_relay_bus_connected").await;
    assert!(
        (status - 1.0).abs() < f64::EPSILON,
        "node two listens again"
    );
    ben_live.stop().await;
}

/// PostgreSQL goes down: a post is refused with a clear error (never acknowledged, kept in
/// Ana's outbox), and accepted when PostgreSQL is back; Ben, on the other node, gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_down_writes_are_refused_then_accepted_when_it_returns() {
    let c = Cluster::start(2);
    let ana = Profile::new("Ana", 1, &c.url(0));
    let ben = Profile::new("Ben", 2, &c.url(1));
    ben.r().follow(ana.uid).unwrap();
    ana.sync().await;
    ben.sync().await;

    c.pg.stop();
    let post = ana.r().post("while the database is down", &[]).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(60), ana.engine.sync_once())
        .await
        .expect("a sync against a node without its database ends");
    let said = match &outcome {
        Ok(summary) => summary.refusals.join("; "),
        Err(e) => e.to_string(),
    };
    assert!(
        said.contains("database is unavailable") && said.contains("nothing of it was kept"),
        "Ana is told why, and that nothing was kept: {said}"
    );
    assert!(
        !said.contains("postgres://") && !said.contains("127.0.0.1"),
        "the database's address is the operator's business, not Ana's: {said}"
    );
    eprintln!("with PostgreSQL down, Ana was told: {said}");
    assert!(
        ana.r().changes_waiting().unwrap() > 0,
        "the post is still waiting to be sent"
    );

    c.pg.start_again();
    let mut delivered = false;
    for _ in 0..20 {
        if let Ok(summary) = ana.engine.sync_once().await
            && summary.refusals.is_empty()
            && ana.r().changes_waiting().unwrap() == 0
        {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(delivered, "accepted once PostgreSQL is back");
    ben.sync().await;
    assert!(has_post(&ben, &post), "and served by the other node");
    let _ = &c.db;
}

/// kill -9 of the node Ana's app is connected to: it moves to the next relay of its list,
/// and Ben's like and comment made through a third node after the kill reach her live;
/// every notification (the follow, two likes, the comment) is shown once and stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_node_moves_its_clients_and_nothing_is_lost_or_notified_twice() {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    let mut c = Cluster::start(3);
    let ana = Profile::new("Ana", 1, &c.url(0));
    let ben = Profile::new("Ben", 2, &c.url(2));
    let first = ana.r().post("first", &[]).unwrap();
    let second = ana.r().post("second", &[]).unwrap();
    ana.sync().await;

    let relays =
        social_sync_core::RelayList::parse(&format!("{}, {}", c.url(0), c.url(1))).unwrap();
    let engine = Arc::new(social_sync_core::SyncEngine::with_relays(
        ana.replica.clone(),
        relays,
    ));
    let mut events = engine.subscribe();
    let shown: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let (moved_tx, mut moved) = tokio::sync::mpsc::unbounded_channel::<String>();
    {
        let mut events = engine.subscribe();
        let shown = shown.clone();
        tokio::spawn(async move {
            while let Ok(e) = events.recv().await {
                match e {
                    Event::Notification { notification } => {
                        *shown.lock().unwrap().entry(notification.id).or_default() += 1;
                    }
                    Event::Connection {
                        status: social_sync_core::ConnectionStatus::Online,
                        relay: Some(relay),
                        ..
                    } => {
                        let _ = moved_tx.send(relay);
                    }
                    _ => {}
                }
            }
        });
    }
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = engine.clone();
    let task = tokio::spawn(async move {
        running
            .run(async {
                let _ = stop_rx.await;
            })
            .await
    });
    let online_at = tokio::time::timeout(Duration::from_secs(10), moved.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(online_at, c.url(0), "Ana starts on node one");

    ben.r().follow(ana.uid).unwrap();
    ben.sync().await;
    ben.r().like(&first).unwrap();
    ben.sync().await;
    let notified = |n: usize| {
        let shown = shown.clone();
        move || shown.lock().unwrap().len() >= n
    };
    assert!(
        eventually(Duration::from_secs(10), notified(2)).await,
        "the follow and the first like reached Ana live through the bus"
    );

    c.nodes[0].kill9();
    let killed = c.url(0);
    let moved_to = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let relay = moved.recv().await.unwrap();
            if relay != killed {
                return relay;
            }
        }
    })
    .await
    .expect("Ana's app moved within 15 s");
    assert_eq!(moved_to, c.url(1), "to the next relay of her list");
    ben.r().like(&second).unwrap();
    ben.r().comment(&second, "through node three").unwrap();
    ben.sync().await;
    assert!(
        eventually(Duration::from_secs(10), notified(4)).await,
        "the second like and the comment reached Ana on node two: {:?}",
        shown.lock().unwrap()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    let shown = shown.lock().unwrap().clone();
    assert!(
        shown.values().all(|&n| n == 1),
        "every notification shown once: {shown:?}"
    );
    let stored = ana.r().notifications(false, 100).unwrap();
    assert_eq!(stored.len(), 4, "stored once each: {stored:?}");
    let mut kinds: Vec<NotificationKind> = stored.iter().map(|n| n.kind).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            NotificationKind::Like,
            NotificationKind::Like,
            NotificationKind::Comment,
            NotificationKind::Follow
        ]
    );
    while events.try_recv().is_ok() {}
}

/// A node dies (kill -9) under Ana's app, which has no other relay: her entries stop being
/// renewed, and within the presence TTL (3 s here, 30 s by default) a surviving node tells
/// Ben, on another node, that she went offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_s_users_go_offline_for_their_watchers_on_other_nodes() {
    let mut c = Cluster::start_with(2, &["--presence-ttl", "3"]);
    let ana = Profile::new("Ana", 1, &c.url(0));
    let ben = Profile::new("Ben", 2, &c.url(1));
    ana.r().follow(ben.uid).unwrap();
    ben.r().follow(ana.uid).unwrap();
    ana.sync().await;
    ben.sync().await;
    let mut ben_live = Watch::start(&ben, &c.url(1)).await;
    let ana_live = Watch::start(&ana, &c.url(0)).await;
    wait_for(
        &mut ben_live.events,
        |e| matches!(e, Event::Presence { user, online: true } if *user == ana.uid),
    )
    .await;

    c.nodes[0].kill9();
    let killed = Instant::now();
    wait_for(
        &mut ben_live.events,
        |e| matches!(e, Event::Presence { user, online: false } if *user == ana.uid),
    )
    .await;
    eprintln!(
        "node killed to Ana offline on Ben's screen: {:?}",
        killed.elapsed()
    );
    assert!(
        killed.elapsed() < Duration::from_secs(8),
        "within the TTL and one heartbeat"
    );
    assert!(
        ben_live.engine.online().await.unwrap().is_empty(),
        "asked through the surviving node, Ana is offline"
    );
    drop(ana_live);
    ben_live.stop().await;
}
