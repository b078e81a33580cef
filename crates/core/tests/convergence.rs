//! Property test: 3–5 replicas make random operations, exchange changes in random orders
//! and subsets (so some changes arrive before what they depend on), and must end with the
//! same feed, counts, threads and follows, and exactly the notifications each should have.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed step is a failed test

use std::collections::{BTreeSet, HashSet};

use proptest::prelude::*;
use social_sync_core::store::queries;
use social_sync_core::{CommentId, DocId, Env, NotificationKind, PostId, Replica, UserId};
use tempfile::TempDir;

#[derive(Debug, Clone)]
enum Step {
    Post {
        who: usize,
    },
    DeletePost {
        who: usize,
        pick: usize,
    },
    Like {
        who: usize,
        pick: usize,
    },
    Unlike {
        who: usize,
        pick: usize,
    },
    Comment {
        who: usize,
        pick: usize,
    },
    DeleteComment {
        who: usize,
        pick: usize,
    },
    Follow {
        who: usize,
        whom: usize,
    },
    Unfollow {
        who: usize,
        whom: usize,
    },
    Exchange {
        from: usize,
        to: usize,
        docs: u64,
        changes: u64,
        order: u8,
    },
}

/// Which documents, or which changes of a document, an exchange carries: often all of
/// them, otherwise a random subset.
fn mask() -> impl Strategy<Value = u64> {
    prop_oneof![Just(u64::MAX), any::<u64>()]
}

fn step() -> impl Strategy<Value = Step> {
    let who = 0..5usize;
    let pick = any::<usize>();
    prop_oneof![
        3 => who.clone().prop_map(|who| Step::Post { who }),
        1 => (who.clone(), pick).prop_map(|(who, pick)| Step::DeletePost { who, pick }),
        3 => (who.clone(), pick).prop_map(|(who, pick)| Step::Like { who, pick }),
        1 => (who.clone(), pick).prop_map(|(who, pick)| Step::Unlike { who, pick }),
        3 => (who.clone(), pick).prop_map(|(who, pick)| Step::Comment { who, pick }),
        1 => (who.clone(), pick).prop_map(|(who, pick)| Step::DeleteComment { who, pick }),
        2 => (who.clone(), who.clone()).prop_map(|(who, whom)| Step::Follow { who, whom }),
        1 => (who.clone(), who.clone()).prop_map(|(who, whom)| Step::Unfollow { who, whom }),
        5 => (who.clone(), who, mask(), mask(), 0..3u8)
            .prop_map(|(from, to, docs, changes, order)| Step::Exchange { from, to, docs, changes, order }),
    ]
}

/// (kind, actor, target) of a notification or an event.
type EventKey = (NotificationKind, UserId, String);

struct Node {
    _dir: TempDir,
    replica: Replica,
    /// Every notification id any merge returned to this node.
    notified: Vec<String>,
}

impl Node {
    fn me(&self) -> UserId {
        self.replica.user_id()
    }

    fn column(&self, sql: &str) -> Vec<String> {
        let conn = self.replica.store().conn();
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([self.me().to_string()], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn held_posts(&self) -> Vec<PostId> {
        self.column("SELECT post_id FROM posts WHERE ?1 = ?1 ORDER BY post_id")
            .iter()
            .map(|p| p.parse().unwrap())
            .collect()
    }
}

fn pick<T: Clone>(items: &[T], i: usize) -> Option<T> {
    (!items.is_empty()).then(|| items[i % items.len()].clone())
}

fn exchange(
    nodes: &mut [Node],
    from: usize,
    to: usize,
    doc_mask: u64,
    change_mask: u64,
    order: u8,
) {
    if from == to {
        return;
    }
    let docs = nodes[from].replica.documents().unwrap();
    for (i, doc) in docs.iter().enumerate() {
        if doc_mask & (1 << (i % 64)) == 0 {
            continue;
        }
        let all = nodes[from].replica.changes(doc, &[]).unwrap();
        let all_sigs = nodes[from].replica.signatures_of(doc, &all).unwrap();
        let mut changes: Vec<(Vec<u8>, Vec<u8>)> = all
            .into_iter()
            .zip(all_sigs)
            .enumerate()
            .filter(|(j, _)| change_mask & (1 << (j % 64)) != 0)
            .map(|(_, c)| c)
            .collect();
        match order {
            1 => changes.reverse(),
            2 if !changes.is_empty() => {
                let k = (change_mask as usize) % changes.len();
                changes.rotate_left(k);
            }
            _ => {}
        }
        let (changes, sigs): (Vec<Vec<u8>>, Vec<Vec<u8>>) = changes.into_iter().unzip();
        let outcome = nodes[to].replica.merge(doc, &changes, &sigs).unwrap();
        nodes[to]
            .notified
            .extend(outcome.notifications.into_iter().map(|n| n.id));
    }
}

fn run(n: usize, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let mut nodes: Vec<Node> = (0..n)
        .map(|i| {
            let dir = tempfile::tempdir().unwrap();
            let env = Env::deterministic(i as u64 + 1, 1_700_000_000_000);
            let replica = Replica::create(dir.path(), &format!("user{i}"), None, env).unwrap();
            Node {
                _dir: dir,
                replica,
                notified: Vec::new(),
            }
        })
        .collect();
    let uids: Vec<UserId> = nodes.iter().map(Node::me).collect();
    // Every event ever made: (kind, actor, target).
    let mut made: HashSet<EventKey> = HashSet::new();

    for step in steps {
        match step {
            Step::Post { who } => {
                nodes[who % n]
                    .replica
                    .post("a post about things", &[])
                    .unwrap();
            }
            Step::DeletePost { who, pick: p } => {
                let node = &mut nodes[who % n];
                let me = node.me();
                let own: Vec<PostId> = node
                    .held_posts()
                    .into_iter()
                    .filter(|p| p.author() == me)
                    .collect();
                if let Some(post) = pick(&own, p) {
                    node.replica.delete_post(&post).unwrap();
                }
            }
            Step::Like { who, pick: p } | Step::Unlike { who, pick: p } => {
                let like = matches!(step, Step::Like { .. });
                let node = &mut nodes[who % n];
                if let Some(post) = pick(&node.held_posts(), p) {
                    if like {
                        node.replica.like(&post).unwrap();
                        made.insert((NotificationKind::Like, node.me(), post.to_string()));
                    } else {
                        node.replica.unlike(&post).unwrap();
                    }
                }
            }
            Step::Comment { who, pick: p } => {
                let node = &mut nodes[who % n];
                if let Some(post) = pick(&node.held_posts(), p) {
                    let id = node.replica.comment(&post, "a comment").unwrap();
                    made.insert((NotificationKind::Comment, node.me(), id.to_string()));
                }
            }
            Step::DeleteComment { who, pick: p } => {
                let node = &mut nodes[who % n];
                let own: Vec<CommentId> = node
                    .column("SELECT comment_id FROM comments WHERE author = ?1 ORDER BY comment_id")
                    .iter()
                    .map(|c| c.parse().unwrap())
                    .collect();
                if let Some(id) = pick(&own, p) {
                    node.replica.delete_comment(&id).unwrap();
                }
            }
            Step::Follow { who, whom } | Step::Unfollow { who, whom } => {
                let (who, whom) = (who % n, whom % n);
                if who == whom {
                    continue;
                }
                if matches!(step, Step::Follow { .. }) {
                    nodes[who].replica.follow(uids[whom]).unwrap();
                    made.insert((NotificationKind::Follow, uids[who], uids[whom].to_string()));
                } else {
                    nodes[who].replica.unfollow(uids[whom]).unwrap();
                }
            }
            Step::Exchange {
                from,
                to,
                docs,
                changes,
                order,
            } => {
                exchange(&mut nodes, from % n, to % n, docs, changes, order);
            }
        }
    }

    // Everyone tells everyone everything, twice (the second round must change nothing).
    for _ in 0..2 {
        for from in 0..n {
            for to in 0..n {
                exchange(&mut nodes, from, to, u64::MAX, u64::MAX, 0);
            }
        }
    }

    // Same documents, same heads.
    let docs: Vec<DocId> = nodes[0].replica.documents().unwrap();
    for node in &nodes[1..] {
        prop_assert_eq!(&node.replica.documents().unwrap(), &docs);
        for doc in &docs {
            prop_assert_eq!(
                node.replica.heads(doc).unwrap(),
                nodes[0].replica.heads(doc).unwrap()
            );
        }
    }

    // Same index everywhere: posts, likes, comments, follows, profiles.
    let dump = |node: &Node| -> Vec<Vec<String>> {
        [
            "SELECT post_id || author || text || media || created_at FROM posts WHERE ?1 = ?1 ORDER BY 1",
            "SELECT post_id || uid || created_at FROM likes WHERE ?1 = ?1 ORDER BY 1",
            "SELECT comment_id || post_id || author || text || created_at FROM comments WHERE ?1 = ?1 ORDER BY 1",
            "SELECT follower || followee || created_at FROM follows WHERE ?1 = ?1 ORDER BY 1",
            "SELECT uid || name || bio FROM profiles WHERE ?1 = ?1 ORDER BY 1",
        ]
        .iter()
        .map(|sql| node.column(sql))
        .collect()
    };
    let reference = dump(&nodes[0]);
    for node in &nodes[1..] {
        prop_assert_eq!(&dump(node), &reference);
    }

    // Each user's feed is exactly their own and followed users' posts, newest first, and
    // threads and profiles read the same whoever looks and wherever.
    for node in &nodes {
        let feed: Vec<String> = node
            .replica
            .feed(None, 500)
            .unwrap()
            .posts
            .iter()
            .map(|p| p.post_id.to_string())
            .collect();
        let expected = node.column(
            "SELECT post_id FROM posts WHERE author = ?1
                OR author IN (SELECT followee FROM follows WHERE follower = ?1)
             ORDER BY created_at DESC, post_id DESC",
        );
        prop_assert_eq!(feed, expected);
    }
    let posts: Vec<PostId> = nodes[0].held_posts();
    for &viewer in &uids {
        for node in &nodes[1..] {
            let conn = node.replica.store().conn();
            for post in &posts {
                prop_assert_eq!(
                    queries::thread(conn, viewer, post).unwrap(),
                    queries::thread(nodes[0].replica.store().conn(), viewer, post).unwrap()
                );
            }
            for &uid in &uids {
                prop_assert_eq!(
                    queries::profile(conn, viewer, uid).unwrap(),
                    queries::profile(nodes[0].replica.store().conn(), viewer, uid).unwrap()
                );
            }
        }
    }

    // Notifications: each reported once, all stored unless their post was deleted since,
    // none for one's own actions, none for a deleted post, every event still standing (on
    // a post not deleted) notified, and nothing that never happened.
    for node in &nodes {
        let me = node.me();
        let unique: HashSet<&String> = node.notified.iter().collect();
        prop_assert_eq!(
            unique.len(),
            node.notified.len(),
            "a notification was reported twice"
        );
        let stored = node.replica.notifications(false, 10_000).unwrap();
        let stored_ids: HashSet<&String> = stored.iter().map(|s| &s.id).collect();
        prop_assert!(
            stored_ids.is_subset(&unique),
            "a notification stored was never reported"
        );
        let held: HashSet<PostId> = node.held_posts().into_iter().collect();
        for s in &stored {
            if let Some(post) = &s.post_id {
                prop_assert!(held.contains(post), "a notification for a deleted post");
            }
        }

        let got: BTreeSet<EventKey> = stored
            .iter()
            .map(|s| {
                let target = match s.kind {
                    NotificationKind::Like => s.post_id.as_ref().unwrap().to_string(),
                    NotificationKind::Comment => s.comment_id.as_ref().unwrap().to_string(),
                    NotificationKind::Follow => me.to_string(),
                };
                (s.kind, s.actor, target)
            })
            .collect();
        for key in &got {
            prop_assert!(key.1 != me, "notified of one's own action: {:?}", key);
            prop_assert!(
                made.contains(key),
                "notified of something that never happened: {:?}",
                key
            );
        }

        let standing = standing_events(node);
        for key in &standing {
            prop_assert!(
                got.contains(key),
                "an event aimed at {} was never notified: {:?}",
                me,
                key
            );
        }
    }
    Ok(())
}

/// Events in the converged state aimed at the node's user by someone else.
fn standing_events(node: &Node) -> BTreeSet<EventKey> {
    let me = node.me();
    let conn = node.replica.store().conn();
    let mut out = BTreeSet::new();
    // Reactions to a deleted post (still in its thread) never notify.
    let mut likes = conn
        .prepare("SELECT post_id, uid FROM likes WHERE post_id IN (SELECT post_id FROM posts)")
        .unwrap();
    for row in likes
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
    {
        let (post, uid) = row.unwrap();
        let (post, uid): (PostId, UserId) = (post.parse().unwrap(), uid.parse().unwrap());
        if post.author() == me && uid != me {
            out.insert((NotificationKind::Like, uid, post.to_string()));
        }
    }
    let mut comments = conn
        .prepare(
            "SELECT comment_id, post_id FROM comments
             WHERE post_id IN (SELECT post_id FROM posts)",
        )
        .unwrap();
    for row in comments
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
    {
        let (id, post) = row.unwrap();
        let (id, post): (CommentId, PostId) = (id.parse().unwrap(), post.parse().unwrap());
        if post.author() == me && id.author() != me {
            out.insert((NotificationKind::Comment, id.author(), id.to_string()));
        }
    }
    let mut follows = conn
        .prepare("SELECT follower FROM follows WHERE followee = ?1")
        .unwrap();
    for row in follows
        .query_map([me.to_string()], |r| r.get::<_, String>(0))
        .unwrap()
    {
        let follower: UserId = row.unwrap().parse().unwrap();
        if follower != me {
            out.insert((NotificationKind::Follow, follower, me.to_string()));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_and_notify_exactly_once(n in 3usize..=5, steps in prop::collection::vec(step(), 1..60)) {
        run(n, steps)?;
    }
}
