//! Issue 11: a relay that lies. The real `social-sync-cli watch` of Ben talks to a hostile
//! relay that holds genuine, signed changes of Ana's (a like, a comment, a follow) and
//! tries to make them say more than she said: it rewrites a comment's text, swaps a
//! follow's actor to another user's, replays a like into another of Ben's threads, and
//! drops a comment's signature. Each is refused (a `rejected` event by the client, code
//! `bad_change_signature`), Ben's profile keeps what it had, and no notification is raised
//! for any of them; the genuine like sent last is taken and notifies once (so the test can
//! fail: what was refused was refused for its signature).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use automerge::legacy::OpType;
use automerge::sync::{Message as SyncMessage, MessageVersion};
use automerge::{AutoCommit, Change, ScalarValue, transaction::CommitOptions};
use common::{Watch, json, spawn_hostile_relay};
use serde_bytes::ByteBuf;
use social_sync_core::model::{CommentEntry, ThreadDoc, UserDoc, actor_id};
use social_sync_core::{Env, Identity};
use social_sync_protocol::{CommentId, DocId, PostId, ServerMessage, SyncItem, UserId};

const T: i64 = 1_700_000_000_000;

/// One change made by `key`'s device with `edit`, and its signature for `doc`.
fn signed(key: &Identity, doc: &DocId, edit: impl FnOnce(&mut AutoCommit)) -> (Change, Vec<u8>) {
    let mut am = AutoCommit::new().with_actor(actor_id(key.user_id(), [1; 8]));
    edit(&mut am);
    am.commit_with(CommitOptions::default().with_time(T));
    let change = am.get_changes(&[]).remove(0);
    let sig = key.sign_change(doc, &change).to_vec();
    (change, sig)
}

fn push(doc: &DocId, change: &Change, sig: Vec<u8>) -> ServerMessage {
    ServerMessage::Changes {
        doc: doc.clone(),
        changes: vec![ByteBuf::from(change.raw_bytes().to_vec())],
        signatures: vec![ByteBuf::from(sig)],
        seq: 0,
    }
}

fn sync_item(doc: &DocId, change: &Change, signatures: Vec<Vec<u8>>) -> ServerMessage {
    let message = SyncMessage {
        heads: vec![change.hash()],
        need: Vec::new(),
        have: Vec::new(),
        changes: vec![change.raw_bytes().to_vec()].into(),
        flags: None,
        version: MessageVersion::V1,
    };
    ServerMessage::Sync {
        items: vec![SyncItem {
            doc: doc.clone(),
            message: ByteBuf::from(message.encode()),
            signatures: signatures.into_iter().map(ByteBuf::from).collect(),
        }],
    }
}

#[test]
fn a_relay_cannot_alter_move_reattribute_or_unsign_anyones_words() {
    let root = tempfile::tempdir().unwrap();
    let ben = root.path().join("ben");
    let ben_id: UserId = json(&ben, &["init", "--name", "Ben", "--json"])["uid"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let post = |text: &str| -> PostId {
        json(&ben, &["post", text, "--json"])["post_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (first, second) = (post("first"), post("second"));
    let (thread1, thread2) = (DocId::Thread(first.clone()), DocId::Thread(second.clone()));

    let mut env = Env::deterministic(11, T);
    let ana = Identity::generate(&mut env);
    let cara = Identity::generate(&mut env);
    let ana_doc = DocId::User(ana.user_id());
    let cara_doc = DocId::User(cara.user_id());

    // Ana's genuine, signed words.
    let (like1, like1_sig) = signed(&ana, &thread1, |am| {
        ThreadDoc::like(am, ana.user_id(), T).unwrap();
    });
    let (like2, like2_sig) = signed(&ana, &thread2, |am| {
        ThreadDoc::like(am, ana.user_id(), T).unwrap();
    });
    assert_eq!(
        like1.hash(),
        like2.hash(),
        "a like is the same change whichever post it likes: only the signature tells"
    );
    let (comment, comment_sig) = signed(&ana, &thread1, |am| {
        let entry = CommentEntry {
            id: CommentId::new(ana.user_id(), b"c1"),
            text: "nice one".into(),
            created_at: T,
        };
        ThreadDoc::add_comment(am, &entry).unwrap();
    });
    let (follow, follow_sig) = signed(&ana, &ana_doc, |am| {
        UserDoc::follow(am, ben_id, T).unwrap();
    });

    // 1. The comment's text rewritten (a new change, Ana's signature kept).
    let mut expanded = comment.decode();
    for op in &mut expanded.operations {
        if let OpType::Put(ScalarValue::Str(text)) = &mut op.action
            && text.as_str() == "nice one"
        {
            *text = "I hate this".into();
        }
    }
    let altered = Change::from(expanded);
    assert_ne!(altered.hash(), comment.hash());
    // 2. Ana's follow of Ben, its actor swapped to Cara's: "Cara followed you".
    let mut expanded = follow.decode();
    expanded.actor_id = actor_id(cara.user_id(), [1; 8]);
    let reattributed = Change::from(expanded);

    let frames = vec![
        push(&thread1, &altered, comment_sig.clone()),
        push(&cara_doc, &reattributed, follow_sig),
        // 3. Ana's like of the second post, replayed into the first post's thread.
        sync_item(&thread1, &like2, vec![like2_sig]),
        // 4. Ana's comment with its signature dropped.
        sync_item(&thread1, &comment, vec![Vec::new()]),
        // The genuine like, last: taken, and notified once.
        push(&thread1, &like1, like1_sig),
    ];
    let url = spawn_hostile_relay(frames);

    let mut watch = Watch::start_with(&ben, &["--relay", &url]);
    let note = watch.wait_for(
        "the genuine like's notification",
        Duration::from_secs(20),
        |v| v["event"] == "notification",
    );
    assert_eq!(note["notification"]["kind"], "like", "{note}");
    assert_eq!(note["notification"]["actor"], ana.user_id().to_string());
    std::thread::sleep(Duration::from_millis(500));
    watch.drain();
    let rejected: Vec<_> = watch
        .seen
        .iter()
        .filter(|v| v["event"] == "rejected")
        .collect();
    assert_eq!(
        rejected.len(),
        4,
        "one refusal per forgery: {:?}",
        watch.seen
    );
    for r in &rejected {
        assert_eq!(r["by"], "client", "{r}");
        assert_eq!(r["code"], "bad_change_signature", "{r}");
    }
    let docs: Vec<&str> = rejected
        .iter()
        .map(|r| r["doc"].as_str().unwrap())
        .collect();
    assert!(docs.contains(&cara_doc.to_string().as_str()), "{docs:?}");
    assert_eq!(
        docs.iter().filter(|d| **d == thread1.to_string()).count(),
        3,
        "{docs:?}"
    );
    let notes = watch
        .seen
        .iter()
        .filter(|v| v["event"] == "notification")
        .count();
    assert_eq!(notes, 1, "only the genuine like notified: {:?}", watch.seen);
    drop(watch);

    // Ben's profile: the genuine like, nothing else.
    let thread = json(&ben, &["thread", &first.to_string(), "--json"]);
    assert_eq!(thread["post"]["likes"], 1, "{thread}");
    assert_eq!(thread["comments"].as_array().unwrap().len(), 0, "{thread}");
    let thread = json(&ben, &["thread", &second.to_string(), "--json"]);
    assert_eq!(thread["post"]["likes"], 0, "{thread}");
    let notes = json(&ben, &["notifications", "--json"]);
    assert_eq!(notes.as_array().unwrap().len(), 1, "{notes}");
    let followers = json(&ben, &["followers", "--json"]);
    assert!(
        !followers.to_string().contains(&cara.user_id().to_string()),
        "Cara does not follow Ben: {followers}"
    );
}
