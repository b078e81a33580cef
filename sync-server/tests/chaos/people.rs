//! The people of a chaos run: each a real sync engine on a SQLite profile, and the random
//! operations they make (posts, image posts, likes, unlikes, comments, follows, unfollows,
//! deletes), logged as intent to be checked against what they end up seeing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rand::Rng;
use rand::rngs::StdRng;
use social_sync_core::{Event, RelayList, SyncEngine, SyncError};
use social_sync_protocol::{PostId, UserId};
use tokio::sync::oneshot;

use crate::common::Profile;

/// One person: their profile, their running engine (when online), what they were notified.
pub(crate) struct Person {
    pub(crate) profile: Profile,
    pub(crate) running: Option<Running>,
    /// Notification id → how many times the app was told of it.
    pub(crate) shown: Arc<Mutex<HashMap<String, u32>>>,
    /// Refusals and undelivered reactions the app was told of (shown when a seed fails).
    pub(crate) refused: Arc<Mutex<Vec<String>>>,
    /// The engine's connection events (kept for a failing seed's report).
    pub(crate) connection: Arc<Mutex<Vec<String>>>,
}

pub(crate) struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), SyncError>>,
}

impl Person {
    /// Starts the app's sync engine on `relays` (one address, or several separated by
    /// commas: a cluster's nodes, the first tried first).
    pub(crate) fn go_online(&mut self, relays: &str) {
        if self.running.is_some() {
            return;
        }
        let relays = RelayList::parse(relays).unwrap();
        let engine = Arc::new(SyncEngine::with_relays(
            self.profile.replica.clone(),
            relays,
        ));
        let mut events = engine.subscribe();
        let shown = self.shown.clone();
        let refused = self.refused.clone();
        let connection = self.connection.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(Event::Notification { notification }) => {
                        *shown.lock().unwrap().entry(notification.id).or_default() += 1;
                    }
                    Ok(e @ (Event::Rejected { .. } | Event::Undelivered { .. })) => {
                        refused.lock().unwrap().push(format!("{e:?}"));
                    }
                    Ok(Event::Connection {
                        status,
                        waiting,
                        relay,
                        reason,
                    }) => {
                        connection
                            .lock()
                            .unwrap()
                            .push(format!("{status:?} waiting {waiting} {relay:?} {reason:?}"));
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        panic!("missed {n} events: the count of notifications shown is unsure")
                    }
                    Err(_) => return,
                }
            }
        });
        let (stop, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            engine
                .run(async {
                    let _ = stop_rx.await;
                })
                .await
        });
        self.running = Some(Running { stop, task });
    }

    /// Stops the engine (the app quits).
    pub(crate) async fn go_offline(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.stop.send(());
            let _ = r.task.await;
        }
    }
}

/// What happened, as the people did it (their intent; checked against what they see).
#[derive(Default)]
pub(crate) struct Log {
    pub(crate) authors: HashMap<PostId, UserId>,
    pub(crate) deleted: HashSet<PostId>,
    /// Likes standing now, and every like ever made.
    pub(crate) likes: HashSet<(UserId, PostId)>,
    pub(crate) ever_liked: HashSet<(UserId, PostId)>,
    pub(crate) comments: HashSet<(UserId, PostId)>,
    pub(crate) follows: HashSet<(UserId, UserId)>,
    pub(crate) ever_followed: HashSet<(UserId, UserId)>,
    pub(crate) operations: BTreeMap<&'static str, u32>,
    pub(crate) faults: BTreeMap<&'static str, u32>,
}

/// A PNG-looking image, different for each `n`.
fn png(n: u32) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(&n.to_be_bytes());
    bytes.resize(2048, 7);
    bytes
}

/// One random operation by person `p`.
pub(crate) fn operate(rng: &mut StdRng, people: &[Person], p: usize, log: &mut Log, n: u32) {
    let me = &people[p].profile;
    let uid = me.uid;
    let roll = rng.random_range(0..100);
    let kind = match roll {
        0..20 => {
            let id = me.r().post(&format!("post {n} by {p}"), &[]).unwrap();
            log.authors.insert(id, uid);
            "post"
        }
        20..24 => {
            let id = me
                .r()
                .post_with_image_bytes(&format!("image {n}"), vec![png(n)])
                .unwrap();
            log.authors.insert(id, uid);
            "image post"
        }
        24..46 => {
            let feed = me.r().feed(None, 50).unwrap().posts;
            let open: Vec<_> = feed.iter().filter(|f| !f.liked_by_me).collect();
            if open.is_empty() {
                return;
            }
            let post = open[rng.random_range(0..open.len())].post_id.clone();
            if me.r().like(&post).is_err() {
                return;
            }
            log.likes.insert((uid, post.clone()));
            log.ever_liked.insert((uid, post));
            "like"
        }
        46..54 => {
            let feed = me.r().feed(None, 50).unwrap().posts;
            let liked: Vec<_> = feed.iter().filter(|f| f.liked_by_me).collect();
            if liked.is_empty() {
                return;
            }
            let post = liked[rng.random_range(0..liked.len())].post_id.clone();
            if me.r().unlike(&post).is_err() {
                return;
            }
            log.likes.remove(&(uid, post));
            "unlike"
        }
        54..68 => {
            let feed = me.r().feed(None, 50).unwrap().posts;
            if feed.is_empty() {
                return;
            }
            let post = feed[rng.random_range(0..feed.len())].post_id.clone();
            if me.r().comment(&post, &format!("comment {n}")).is_err() {
                return;
            }
            log.comments.insert((uid, post));
            "comment"
        }
        68..82 => {
            let other = people[rng.random_range(0..people.len())].profile.uid;
            if other == uid || log.follows.contains(&(uid, other)) {
                return;
            }
            me.r().follow(other).unwrap();
            log.follows.insert((uid, other));
            log.ever_followed.insert((uid, other));
            "follow"
        }
        82..87 => {
            let mine: Vec<UserId> = log
                .follows
                .iter()
                .filter(|(f, _)| *f == uid)
                .map(|(_, t)| *t)
                .collect();
            if mine.is_empty() {
                return;
            }
            let other = mine[rng.random_range(0..mine.len())];
            me.r().unfollow(other).unwrap();
            log.follows.remove(&(uid, other));
            "unfollow"
        }
        87..90 => {
            let own = me.r().posts_by(uid, 100).unwrap();
            if own.is_empty() {
                return;
            }
            let post = own[rng.random_range(0..own.len())].post_id.clone();
            me.r().delete_post(&post).unwrap();
            log.deleted.insert(post);
            "delete"
        }
        _ => return,
    };
    *log.operations.entry(kind).or_default() += 1;
}
