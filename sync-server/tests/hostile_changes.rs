//! Hostile Automerge input against the real relay (issue 9): forged authorship through a
//! change that waits for a dependency, bricking a thread, decompression and Bloom-filter
//! bombs, panics inside Automerge, oversized text, threads on posts that do not exist.
//! Each test asserts the refusal, that nothing reached other users, and that the relay kept
//! serving (and within its memory budget where the attack aimed at memory).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use automerge::sync::{Message as SyncMessage, MessageVersion};
use automerge::{AutoCommit, Change, ExpandedChange, ROOT, transaction::Transactable};
use common::{Profile, Raw, Relay};
use serde_bytes::ByteBuf;
use social_sync_core::model::{CommentEntry, ThreadDoc, actor_id};
use social_sync_protocol::{
    ClientMessage, CommentId, DocId, ErrorCode, PostId, ServerMessage, SyncItem,
};

/// A V1 sync message carrying exactly `changes` (raw chunks), announcing `heads`.
fn message_with(heads: Vec<automerge::ChangeHash>, changes: Vec<Vec<u8>>) -> Vec<u8> {
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

/// Sends one sync item and returns the relay's refusals of it (up to the pong).
async fn send_item(
    raw: &mut Raw,
    doc: &DocId,
    message: Vec<u8>,
    id: u64,
) -> Vec<(ErrorCode, String)> {
    // Each change signed with the sender's own key (a change by another actor then carries
    // a signature that is not its author's).
    let signatures = match automerge::sync::Message::decode(&message) {
        Ok(m) => common::sign_chunks(raw.identity.as_ref(), doc, m.changes.iter()),
        Err(_) => Vec::new(),
    };
    raw.send(&ClientMessage::Sync {
        items: vec![SyncItem {
            doc: doc.clone(),
            message: ByteBuf::from(message),
            signatures,
        }],
    })
    .await;
    raw.send(&ClientMessage::Ping { id }).await;
    let mut refusals = Vec::new();
    loop {
        match raw.recv().await.expect("the relay closed the connection") {
            ServerMessage::Pong { id: got } if got == id => return refusals,
            ServerMessage::Rejected { code, message, .. } => refusals.push((code, message)),
            _ => {}
        }
    }
}

/// `/healthz` answers, and fast.
async fn assert_healthy(relay: &Relay) {
    relay.healthy_within(Duration::from_secs(1)).await;
}

/// Ana posts; Ben follows Ana and has her post; Eve is a fresh identity.
async fn cast(relay: &Relay) -> (Profile, Profile, Profile, PostId) {
    let ana = Profile::new("Ana", 1, &relay.url());
    let ben = Profile::new("Ben", 2, &relay.url());
    let eve = Profile::new("Eve", 3, &relay.url());
    let post = ana.r().post("hello from Ana", &[]).unwrap();
    ana.sync().await;
    ben.r().follow(ana.uid).unwrap();
    ben.sync().await;
    ben.sync().await;
    assert_eq!(
        ben.r().feed(None, 10).unwrap().posts.len(),
        1,
        "Ben sees Ana's post"
    );
    (ana, ben, eve, post)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_change_waiting_for_a_dependency_is_refused_and_never_served() {
    let relay = Relay::start(&[]);
    let (ana, ben, eve, post) = cast(&relay).await;
    let thread = DocId::Thread(post.clone());
    let mut raw = Raw::login(&relay.url(), &eve, "00000000000000e1").await;

    // Eve likes the post (her own change E1, not sent yet), then writes a comment in Ana's
    // name (actor = Ana's key) that depends on E1, and sends only the forged comment: it
    // cannot apply yet, which is how it used to slip past the checks.
    let mut am = AutoCommit::new().with_actor(actor_id(eve.uid, [0xe; 8]));
    ThreadDoc::like(&mut am, eve.uid, 1).unwrap();
    am.commit();
    let e1 = am.get_changes(&[]).remove(0).raw_bytes().to_vec();
    am.set_actor(actor_id(ana.uid, [0xa; 8]));
    let forged = CommentEntry {
        id: CommentId::new(ana.uid, b"forged"),
        text: "Ana never wrote this".into(),
        created_at: 2,
    };
    let before = am.get_heads();
    ThreadDoc::add_comment(&mut am, &forged).unwrap();
    am.commit();
    let forged_change = am.get_changes(&before).remove(0);
    let refusals = send_item(
        &mut raw,
        &thread,
        message_with(
            vec![forged_change.hash()],
            vec![forged_change.raw_bytes().to_vec()],
        ),
        1,
    )
    .await;
    // Eve cannot sign as Ana (issue 11): refused for its signature, before the relay's
    // older authorship check (a change the relay lacks must be the sender's own) runs.
    assert!(
        refusals
            .iter()
            .any(|(c, m)| *c == ErrorCode::BadChangeSignature && m.contains("is not signed by")),
        "{refusals:?}"
    );

    // The dependency arrives: Eve's own like is accepted, and nothing else comes with it.
    let e1_hash = Change::try_from(&e1[..]).unwrap().hash();
    let refusals = send_item(&mut raw, &thread, message_with(vec![e1_hash], vec![e1]), 2).await;
    assert!(refusals.is_empty(), "{refusals:?}");

    // Ben sees Eve's like and no comment from Ana; Ana's own next comment still goes through
    // (the forged change did not take her next sequence number).
    ben.sync().await;
    let seen = ben.r().thread(&post).unwrap();
    assert_eq!(seen.post.likes, 1, "Eve's like arrived");
    assert!(
        seen.comments.is_empty(),
        "no forged comment: {:?}",
        seen.comments
    );
    ana.sync().await;
    ana.r().comment(&post, "my real comment").unwrap();
    ana.sync().await;
    ben.sync().await;
    let seen = ben.r().thread(&post).unwrap();
    assert_eq!(seen.comments.len(), 1);
    assert_eq!(seen.comments[0].text, "my real comment");
    assert_eq!(
        ana.r().changes_waiting().unwrap(),
        0,
        "Ana's write was accepted"
    );
    assert_healthy(&relay).await;
}

/// An empty change by `actor` at `seq` whose start op is `start_op`, depending on `deps`.
fn empty_change(
    actor: automerge::ActorId,
    seq: u64,
    start_op: u64,
    deps: Vec<automerge::ChangeHash>,
) -> Change {
    Change::from(ExpandedChange {
        operations: Vec::new(),
        actor_id: actor,
        hash: None,
        seq,
        start_op: NonZeroU64::new(start_op).unwrap(),
        time: 0,
        message: None,
        deps,
        extra_bytes: Vec::new(),
        author: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_changes_that_skip_ahead_cannot_brick_a_thread() {
    let relay = Relay::start(&[]);
    let (ana, ben, eve, post) = cast(&relay).await;
    let thread = DocId::Thread(post.clone());
    ben.r().like(&post).unwrap();
    ben.sync().await;
    let mut raw = Raw::login(&relay.url(), &eve, "00000000000000e1").await;

    // 64 empty changes by Eve, each starting 1,000 ops past the last (enough to make the
    // relay compact the thread): each is refused, the thread keeps working.
    let actor = actor_id(eve.uid, [0xe; 8]);
    let mut deps = Vec::new();
    let mut refused = 0;
    for i in 0..64u64 {
        let change = empty_change(actor.clone(), i + 1, 1 + i * 1_000, deps.clone());
        deps = vec![change.hash()];
        let refusals = send_item(
            &mut raw,
            &thread,
            message_with(deps.clone(), vec![change.raw_bytes().to_vec()]),
            i,
        )
        .await;
        if refusals
            .iter()
            .any(|(c, m)| *c == ErrorCode::InvalidChange && m.contains("is empty"))
        {
            refused += 1;
        }
    }
    assert_eq!(refused, 64, "every empty change refused");

    // A change whose op counter goes back behind its dependency's (the other shape of the
    // same brick: the snapshot then fails with InvalidMaxOp), sent after it in one message.
    let mut am = AutoCommit::new().with_actor(actor.clone());
    ThreadDoc::like(&mut am, eve.uid, 1).unwrap();
    am.commit();
    let like = am.get_changes(&[]).remove(0);
    let back = Change::from(ExpandedChange {
        operations: like.decode().operations,
        actor_id: actor.clone(),
        hash: None,
        seq: 2,
        start_op: NonZeroU64::MIN,
        time: 0,
        message: None,
        deps: vec![like.hash()],
        extra_bytes: Vec::new(),
        author: None,
    });
    let refusals = send_item(
        &mut raw,
        &thread,
        message_with(
            vec![back.hash()],
            vec![like.raw_bytes().to_vec(), back.raw_bytes().to_vec()],
        ),
        100,
    )
    .await;
    assert!(
        refusals
            .iter()
            .any(|(c, m)| *c == ErrorCode::InvalidChange && m.contains("not after op 1")),
        "{refusals:?}"
    );

    // Reads and writes of the thread work for everyone, after a restart too (the stored
    // state is loaded from disk, not from the cache).
    let mut relay = relay;
    relay.start_again();
    ana.r().comment(&post, "still works").unwrap();
    ana.sync().await;
    ben.sync().await;
    let seen = ben.r().thread(&post).unwrap();
    assert_eq!(seen.post.likes, 1);
    assert_eq!(seen.comments.len(), 1, "{:?}", seen.comments);
    assert_healthy(&relay).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_change_is_refused_before_it_inflates() {
    let relay = Relay::start(&[]);
    let (_ana, _ben, eve, post) = cast(&relay).await;
    let thread = DocId::Thread(post);
    let mut raw = Raw::login(&relay.url(), &eve, "00000000000000e1").await;
    let before = relay.memory();

    // A comment of 48 MiB of one letter, sent as a compressed change chunk: a few tens of
    // KiB on the wire.
    let mut am = AutoCommit::new().with_actor(actor_id(eve.uid, [0xe; 8]));
    let obj = am
        .put_object(
            ROOT,
            format!("comment/{}", CommentId::new(eve.uid, b"bomb")),
            automerge::ObjType::Map,
        )
        .unwrap();
    am.put(&obj, "text", "a".repeat(48 << 20)).unwrap();
    am.commit();
    let mut change = am.get_changes(&[]).remove(0);
    let hash = change.hash();
    let compressed = change.bytes().into_owned();
    drop(am);
    assert!(
        compressed.len() < 1 << 20,
        "the bomb is small: {} bytes",
        compressed.len()
    );
    let refusals = send_item(
        &mut raw,
        &thread,
        message_with(vec![hash], vec![compressed]),
        1,
    )
    .await;
    assert!(
        refusals
            .iter()
            .any(|(c, m)| *c == ErrorCode::InvalidChange && m.contains("type 2")),
        "{refusals:?}"
    );
    let after = relay.memory();
    assert!(
        after.hwm_kib < before.hwm_kib + 16 * 1024,
        "relay peak memory grew from {} KiB to {} KiB",
        before.hwm_kib,
        after.hwm_kib
    );
    assert_healthy(&relay).await;
}

/// A V1 sync message with one `have` whose Bloom filter is `bloom` (raw encoding).
fn message_with_bloom(bloom: &[u8]) -> Vec<u8> {
    let mut m = vec![0x42, 0, 0, 1, 0];
    leb(&mut m, bloom.len() as u64);
    m.extend_from_slice(bloom);
    m.push(0);
    m
}

fn leb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bloom_filter_bombs_are_refused_without_stalling_anyone() {
    let relay = Relay::start(&[]);
    let (ana, ben, eve, post) = cast(&relay).await;
    let thread = DocId::Thread(post.clone());
    ben.r().like(&post).unwrap();
    ben.sync().await;
    let mut raw = Raw::login(&relay.url(), &eve, "00000000000000e1").await;

    // 20,000,000 probes per hash, 7 bytes on the wire.
    let mut probes = vec![1, 10];
    leb(&mut probes, 20_000_000);
    probes.extend([0xff, 0xff]);
    // Zero bits for five entries (panicked inside Automerge: remainder by zero).
    let zero_bits = [5u8, 0, 7];
    for (i, (bloom, says)) in [(&probes[..], "probes"), (&zero_bits[..], "bits per entry")]
        .into_iter()
        .enumerate()
    {
        let started = Instant::now();
        let refusals = send_item(&mut raw, &thread, message_with_bloom(bloom), i as u64).await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "took {:?}",
            started.elapsed()
        );
        assert!(
            refusals
                .iter()
                .any(|(c, m)| *c == ErrorCode::InvalidChange && m.contains(says)),
            "{refusals:?}"
        );
        assert_healthy(&relay).await;
    }
    // Others are served as before.
    ana.r().comment(&post, "after the bombs").unwrap();
    ana.sync().await;
    ben.sync().await;
    assert_eq!(ben.r().thread(&post).unwrap().comments.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_beyond_the_apps_limits_is_refused_by_the_relay() {
    let relay = Relay::start(&[]);
    let (ana, ben, eve, post) = cast(&relay).await;
    let mut raw = Raw::login(&relay.url(), &eve, "00000000000000e1").await;

    // A 1 MiB comment (the app allows 2,000 characters).
    let thread = DocId::Thread(post.clone());
    let mut am = AutoCommit::new().with_actor(actor_id(eve.uid, [0xe; 8]));
    ThreadDoc::add_comment(
        &mut am,
        &CommentEntry {
            id: CommentId::new(eve.uid, b"long"),
            text: "x".repeat(1 << 20),
            created_at: 1,
        },
    )
    .unwrap();
    am.commit();
    let change = am.get_changes(&[]).remove(0);
    let refusals = send_item(
        &mut raw,
        &thread,
        message_with(vec![change.hash()], vec![change.raw_bytes().to_vec()]),
        1,
    )
    .await;
    assert!(
        refusals.iter().any(|(c, m)| *c == ErrorCode::Forbidden
            && m.contains("1048576 characters")
            && m.contains("at most 2000")),
        "{refusals:?}"
    );

    // A 100,000-character name (the app allows 64).
    let mine = DocId::User(eve.uid);
    let mut am = AutoCommit::new().with_actor(actor_id(eve.uid, [0xe; 8]));
    am.put(ROOT, "name", "E".repeat(100_000)).unwrap();
    am.commit();
    let change = am.get_changes(&[]).remove(0);
    let refusals = send_item(
        &mut raw,
        &mine,
        message_with(vec![change.hash()], vec![change.raw_bytes().to_vec()]),
        2,
    )
    .await;
    assert!(
        refusals
            .iter()
            .any(|(c, m)| *c == ErrorCode::Forbidden && m.contains("at most 64")),
        "{refusals:?}"
    );
    ben.sync().await;
    assert!(ben.r().thread(&post).unwrap().comments.is_empty());
    drop(ana);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_on_posts_that_do_not_exist_are_refused_and_reach_no_inbox() {
    let relay = Relay::start(&[]);
    let (ana, _ben, eve, _post) = cast(&relay).await;
    ana.sync().await;
    let mut raw = Raw::login(&relay.url(), &eve, "00000000000000e1").await;
    let mut refused = 0;
    for i in 0..50u64 {
        let ghost = PostId::new(ana.uid, &i.to_le_bytes());
        let mut am = AutoCommit::new().with_actor(actor_id(eve.uid, [0xe; 8]));
        ThreadDoc::like(&mut am, eve.uid, 1).unwrap();
        am.commit();
        let change = am.get_changes(&[]).remove(0);
        let refusals = send_item(
            &mut raw,
            &DocId::Thread(ghost),
            message_with(vec![change.hash()], vec![change.raw_bytes().to_vec()]),
            i,
        )
        .await;
        if refusals
            .iter()
            .any(|(c, m)| *c == ErrorCode::NotFound && m.contains("never received"))
        {
            refused += 1;
        }
    }
    assert_eq!(refused, 50);
    // Ana's inbox got nothing of it: no like notification (Ben's follow is all she has).
    ana.sync().await;
    let kinds: Vec<_> = ana
        .r()
        .notifications(false, 100)
        .unwrap()
        .into_iter()
        .map(|n| n.kind)
        .collect();
    assert_eq!(kinds, vec![social_sync_core::NotificationKind::Follow]);
}
