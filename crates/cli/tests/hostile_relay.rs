//! The real CLI against a hostile relay (issue 9): a relay that pushes a compressed change
//! chunk, a Bloom filter of zero bits, a change with no edits, a forged comment and a
//! delete that names nothing. The hostile relay here is the attacker, speaking the real
//! protocol over a real WebSocket; the client under test is the real `social-sync-cli`.
//! The CLI must not die (it used to exit with 101), must say what it refused, and the
//! profile must show nothing of it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::num::NonZeroU64;

use automerge::legacy::{Key, ObjectId, Op, OpType};
use automerge::sync::{Message as SyncMessage, MessageVersion};
use automerge::{AutoCommit, Change, ExpandedChange, ROOT, transaction::Transactable};
use common::{cli, json, spawn_hostile_relay};
use serde_bytes::ByteBuf;
use social_sync_core::model::{CommentEntry, ThreadDoc, actor_id};
use social_sync_protocol::{CommentId, DocId, PostId, ServerMessage, SyncItem, UserId};

fn raw_message(heads: Vec<automerge::ChangeHash>, changes: Vec<Vec<u8>>) -> Vec<u8> {
    SyncMessage {
        heads,
        need: Vec::new(),
        have: Vec::new(),
        changes: changes.into(),
        flags: None,
        version: MessageVersion::V1,
    }
    .encode()
}

/// What the hostile relay sends once the client has said hello.
fn hostile_frames(ana: UserId, post: &PostId) -> Vec<ServerMessage> {
    let thread = DocId::Thread(post.clone());
    let mallory = UserId::from_bytes([7; 32]);
    let actor = actor_id(mallory, [7; 8]);

    // A comment of 32 MiB of one letter, compressed to a few KiB.
    let mut am = AutoCommit::new().with_actor(actor.clone());
    let obj = am
        .put_object(
            ROOT,
            format!("comment/{}", CommentId::new(mallory, b"bomb")),
            automerge::ObjType::Map,
        )
        .unwrap();
    am.put(&obj, "text", "a".repeat(32 << 20)).unwrap();
    am.commit();
    let compressed = am.get_changes(&[]).remove(0).bytes().into_owned();

    // A comment in Ana's name, pushed by the relay (a lying relay forging authorship).
    let mut forged = AutoCommit::new().with_actor(actor_id(mallory, [8; 8]));
    ThreadDoc::add_comment(
        &mut forged,
        &CommentEntry {
            id: CommentId::new(ana, b"forged"),
            text: "Ana never wrote this".into(),
            created_at: 1,
        },
    )
    .unwrap();
    forged.commit();
    let forged = forged.get_changes(&[]).remove(0).raw_bytes().to_vec();

    // An empty change, and a delete that names nothing.
    let expanded = |operations, seq| {
        Change::from(ExpandedChange {
            operations,
            actor_id: actor.clone(),
            hash: None,
            seq,
            start_op: NonZeroU64::new(5_000).unwrap(),
            time: 0,
            message: None,
            deps: Vec::new(),
            extra_bytes: Vec::new(),
            author: None,
        })
    };
    let empty = expanded(Vec::new(), 1);
    let delete = expanded(
        vec![Op {
            action: OpType::Delete,
            obj: ObjectId::Root,
            key: Key::Map(format!("like/{mallory}").into()),
            pred: automerge::legacy::SortedVec::new(),
            insert: false,
        }],
        1,
    );

    // A `have` with a Bloom filter of zero bits for five entries.
    let zero_bits = vec![0x42, 0, 0, 1, 0, 3, 5, 0, 7, 0];
    let item = |message: Vec<u8>| SyncItem {
        doc: thread.clone(),
        message: ByteBuf::from(message),
        signatures: Vec::new(),
    };
    vec![
        ServerMessage::Changes {
            doc: thread.clone(),
            changes: vec![ByteBuf::from(compressed)],
            signatures: Vec::new(),
            seq: 0,
        },
        ServerMessage::Changes {
            doc: thread.clone(),
            changes: vec![ByteBuf::from(forged.clone())],
            signatures: Vec::new(),
            seq: 0,
        },
        ServerMessage::Changes {
            doc: thread.clone(),
            changes: vec![ByteBuf::from(delete.raw_bytes().to_vec())],
            signatures: Vec::new(),
            seq: 0,
        },
        ServerMessage::Sync {
            items: vec![
                item(zero_bits),
                item(raw_message(
                    vec![empty.hash()],
                    vec![empty.raw_bytes().to_vec()],
                )),
                item(raw_message(Vec::new(), vec![forged])),
            ],
        },
    ]
}

#[test]
fn a_hostile_relay_cannot_crash_the_cli_or_write_into_the_profile() {
    let root = tempfile::tempdir().unwrap();
    let ana = root.path().join("ana");
    let uid: UserId = json(&ana, &["init", "--name", "Ana", "--json"])["uid"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let post: PostId = json(&ana, &["post", "hello", "--json"])["post_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let url = spawn_hostile_relay(hostile_frames(uid, &post));

    let out = cli(&ana, &["sync", "--relay", &url, "--json"]).out;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "the CLI panicked: {stderr}");
    assert!(out.status.success(), "sync failed: {stderr}");
    // It says what it refused, each with its reason.
    for reason in [
        "is a chunk of type 2",
        "delete that names nothing",
        "0 bits per entry",
        "is empty",
        "which is not theirs to write",
    ] {
        assert!(stderr.contains(reason), "no '{reason}' in: {stderr}");
    }

    // The profile shows nothing of it: no comment, no like, the post intact.
    let thread = json(&ana, &["thread", &post.to_string(), "--json"]);
    assert_eq!(thread["comments"].as_array().unwrap().len(), 0, "{thread}");
    assert_eq!(thread["post"]["text"], "hello");
    assert_eq!(thread["post"]["likes"], 0);
    let notes = json(&ana, &["notifications", "--json"]);
    assert_eq!(notes.as_array().unwrap().len(), 0, "{notes}");
}
