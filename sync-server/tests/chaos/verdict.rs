//! What a chaos run checks once the faults stop: everything acknowledged, every
//! follower's view of each author equal to the author's own, every notification present
//! exactly once and none made up.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use social_sync_core::NotificationKind;
use social_sync_protocol::{PostId, UserId};

use crate::people::{Log, Person};
use crate::relays::Topology;

/// What a run found.
pub(crate) struct Outcome {
    pub(crate) lost: Vec<String>,
    pub(crate) duplicated: Vec<String>,
    pub(crate) converged_after: Option<Duration>,
}

/// Every follower's view of every author's posts against the author's own; everything
/// acknowledged. Returns what differs (empty: converged).
pub(crate) fn differences(people: &[Person]) -> Vec<String> {
    let mut diff = Vec::new();
    let own: HashMap<UserId, BTreeMap<PostId, (u64, u64)>> = people
        .iter()
        .map(|p| {
            let posts = p.profile.r().posts_by(p.profile.uid, 1000).unwrap();
            (
                p.profile.uid,
                posts
                    .into_iter()
                    .map(|f| (f.post_id, (f.likes, f.comments)))
                    .collect(),
            )
        })
        .collect();
    for (v, viewer) in people.iter().enumerate() {
        let waiting = viewer.profile.r().changes_waiting().unwrap();
        if waiting > 0 {
            let outbox = viewer.profile.r().outbox().unwrap();
            diff.push(format!(
                "person {v} has {waiting} changes not acknowledged: {outbox:?}; told: {:?}",
                viewer.refused.lock().unwrap()
            ));
        }
        let following = viewer.profile.r().following().unwrap();
        for author in following {
            let seen: BTreeMap<PostId, (u64, u64)> = viewer
                .profile
                .r()
                .posts_by(author, 1000)
                .unwrap()
                .into_iter()
                .map(|f| (f.post_id, (f.likes, f.comments)))
                .collect();
            if let Some(truth) = own.get(&author)
                && &seen != truth
            {
                let differ: Vec<_> = truth
                    .iter()
                    .filter(|(id, counts)| seen.get(*id) != Some(*counts))
                    .map(|(id, counts)| (id.to_string(), *counts, seen.get(id).copied()))
                    .collect();
                diff.push(format!(
                    "person {v} sees {} posts of {author}, the author {}; differing (post, author's (likes, comments), viewer's): {differ:?}; viewer was told: {:?}",
                    seen.len(),
                    truth.len(),
                    viewer.refused.lock().unwrap()
                ));
            }
        }
    }
    diff
}

/// Notifications each person should have and has: returns (lost, duplicated, made up).
pub(crate) fn notifications(
    people: &[Person],
    log: &Log,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut lost, mut duplicated, mut made_up) = (Vec::new(), Vec::new(), Vec::new());
    for (n, person) in people.iter().enumerate() {
        let me = person.profile.uid;
        let stored = person.profile.r().notifications(false, 100_000).unwrap();
        let have: HashSet<(NotificationKind, UserId, Option<PostId>)> = stored
            .iter()
            .map(|x| (x.kind, x.actor, x.post_id.clone()))
            .collect();
        let live_post =
            |post: &PostId| log.authors.get(post) == Some(&me) && !log.deleted.contains(post);
        let mut want = Vec::new();
        for (liker, post) in &log.likes {
            if *liker != me && live_post(post) {
                want.push((NotificationKind::Like, *liker, Some(post.clone())));
            }
        }
        for (commenter, post) in &log.comments {
            if *commenter != me && live_post(post) {
                want.push((NotificationKind::Comment, *commenter, Some(post.clone())));
            }
        }
        for (follower, followee) in &log.follows {
            if *followee == me {
                want.push((NotificationKind::Follow, *follower, None));
            }
        }
        for w in want {
            if !have.contains(&w) {
                lost.push(format!("person {n} was never notified of {w:?}"));
            }
        }
        for x in &stored {
            let happened = match x.kind {
                NotificationKind::Like => x
                    .post_id
                    .as_ref()
                    .is_some_and(|p| log.ever_liked.contains(&(x.actor, p.clone()))),
                NotificationKind::Comment => x
                    .post_id
                    .as_ref()
                    .is_some_and(|p| log.comments.contains(&(x.actor, p.clone()))),
                NotificationKind::Follow => log.ever_followed.contains(&(x.actor, me)),
            };
            if !happened {
                made_up.push(format!(
                    "person {n} was notified of {:?} by {}",
                    x.kind, x.actor
                ));
            }
        }
        for (id, times) in person.shown.lock().unwrap().iter() {
            if *times > 1 {
                duplicated.push(format!(
                    "person {n} was shown notification {id} {times} times"
                ));
            }
        }
    }
    (lost, duplicated, made_up)
}

/// Panics with what went wrong, and how to run the seed again.
pub(crate) fn check(seed: u64, topology: Topology, o: &Outcome) {
    assert!(
        o.lost.is_empty() && o.duplicated.is_empty() && o.converged_after.is_some(),
        "seed {seed} on {} node(s) (run it again: scripts/chaos {seed} SECONDS {}):\nlost or different:\n  {}\nduplicated:\n  {}",
        topology.nodes(),
        topology.nodes(),
        o.lost.join("\n  "),
        o.duplicated.join("\n  ")
    );
}
