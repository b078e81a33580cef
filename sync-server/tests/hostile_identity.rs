//! Whole-process tests of identity attacks against the real relay binary: look-alike
//! display names, presence leaking to strangers and device ids, images of other types
//! than they claim, and one user filling the relay with images.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::path::Path;

use automerge::AutoCommit;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use social_sync_core::model::{ProfileFields, UserDoc, actor_id};
use social_sync_core::{BlobHash, DocId, UserId};
use social_sync_protocol::{ClientMessage, ErrorCode, ServerMessage, wire};

use common::{Profile, Raw, Relay, ask, identity, sync_doc};

/// Logs in a fresh user (from `seed`) and sets their display name by hand, bypassing the
/// app's checks; returns the user and the relay's refusals.
async fn claim_name(relay: &Relay, seed: u64, name: &str) -> (UserId, Vec<(ErrorCode, String)>) {
    let (id, user) = identity(seed);
    let mut raw = Raw::login_as(&relay.url(), &id, user, "00000000000000c1").await;
    let mut am = AutoCommit::new().with_actor(actor_id(user, [seed as u8; 8]));
    UserDoc::set_profile(
        &mut am,
        &ProfileFields {
            name: name.to_owned(),
            ..ProfileFields::default()
        },
    )
    .unwrap();
    am.commit();
    let refusals = sync_doc(&mut raw, &DocId::User(user), &mut am).await;
    (user, refusals)
}

async fn lookup(raw: &mut Raw, name: &str) -> Option<UserId> {
    match ask(
        raw,
        &ClientMessage::LookupName {
            name: name.to_owned(),
        },
    )
    .await
    {
        ServerMessage::Name { user, .. } => user,
        other => panic!("expected a name answer, got {other:?}"),
    }
}

/// The relay's database, read beside the running relay.
fn relay_db(relay: &Relay) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        relay.data.join("relay.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
}

fn names_of(relay: &Relay, user: UserId) -> i64 {
    relay_db(relay)
        .query_row(
            "SELECT COUNT(*) FROM names WHERE uid = ?1",
            [user.to_string()],
            |r| r.get(0),
        )
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alikes_of_a_taken_name_are_refused_and_lead_to_its_holder() {
    let relay = Relay::start(&[]);
    let ana = Profile::new("Ana", 1, &relay.url());
    ana.sync().await;
    let ben = Profile::new("Ben", 2, &relay.url());
    let mut asker = Raw::login(&relay.url(), &ben, "00000000000000b1").await;
    assert_eq!(lookup(&mut asker, "ana").await, Some(ana.uid));

    let look_alikes = [
        "\u{430}na",   // Cyrillic а
        "an\u{200D}a", // zero-width joiner
        "Ａｎａ",      // full-width
        "Ana.",        // trailing dot
        "ANA",         // other case
    ];
    let mut impostors = Vec::new();
    for (i, alike) in look_alikes.iter().enumerate() {
        let (user, refusals) = claim_name(&relay, 10 + i as u64, alike).await;
        assert!(
            refusals
                .iter()
                .any(|(code, message)| *code == ErrorCode::NameTaken
                    && message.contains(&ana.uid.to_string())
                    && message.contains("pick another name")),
            "{alike:?}: {refusals:?}"
        );
        assert!(
            refusals
                .iter()
                .all(|(code, _)| *code == ErrorCode::NameTaken),
            "{alike:?}: only the name is refused, not the document: {refusals:?}"
        );
        assert_eq!(names_of(&relay, user), 0, "{alike:?} was registered");
        assert_eq!(lookup(&mut asker, alike).await, Some(ana.uid), "{alike:?}");
        impostors.push(user);
    }

    // Through the app: a profile named "ANA" syncs, and the sync says the name is taken.
    let copycat = Profile::new("ANA", 40, &relay.url());
    let summary = copycat.sync().await;
    assert!(
        summary
            .refusals
            .iter()
            .any(|r| r.starts_with("name_taken:") && r.contains(&ana.uid.to_string())),
        "{summary:?}"
    );
    assert_eq!(names_of(&relay, copycat.uid), 0);

    // The profile documents were stored all the same: a follower sees the look-alike name
    // (beside the user id the app shows).
    ben.r().follow(impostors[0]).unwrap();
    ben.sync().await;
    let seen = ben.r().profile(impostors[0]).unwrap();
    assert_eq!(seen.name.as_deref(), Some(look_alikes[0]));

    // A 100,000-character name is never registered, and its user is told why.
    let long = "x".repeat(100_000);
    let (user, refusals) = claim_name(&relay, 30, &long).await;
    assert!(
        refusals
            .iter()
            .any(|(code, m)| *code == ErrorCode::Forbidden && m.contains("100000")),
        "{refusals:?}"
    );
    assert_eq!(names_of(&relay, user), 0);

    // A different name is free; Ana may set a look-alike of her own name.
    let (anna, refusals) = claim_name(&relay, 31, "Anna").await;
    assert!(refusals.is_empty(), "{refusals:?}");
    assert_eq!(lookup(&mut asker, "@anna").await, Some(anna));
    ana.r().set_profile(Some("ANA."), None).unwrap();
    let mut events = ana.engine.subscribe();
    ana.sync().await;
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(e, social_sync_core::Event::Rejected { .. }),
            "{e:?}"
        );
    }
    assert_eq!(lookup(&mut asker, "ana").await, Some(ana.uid));
    assert_eq!(names_of(&relay, ana.uid), 1);
}

/// Every message `raw` receives until the answer to a ping, re-encoded as on the wire.
async fn drain(raw: &mut Raw, id: u64) -> Vec<ServerMessage> {
    raw.send(&ClientMessage::Ping { id }).await;
    let mut seen = Vec::new();
    loop {
        let m = raw.recv().await.expect("connection ended");
        if m == (ServerMessage::Pong { id }) {
            return seen;
        }
        seen.push(m);
    }
}

fn carries(messages: &[ServerMessage], needle: &str) -> bool {
    messages.iter().any(|m| {
        wire::encode(m)
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_goes_only_to_people_the_user_follows_and_never_names_devices() {
    let relay = Relay::start(&[]);
    let ana = Profile::new("Ana", 1, &relay.url());
    let ben = Profile::new("Ben", 2, &relay.url()); // follows Ana, followed back
    let eve = Profile::new("Eve", 3, &relay.url()); // follows Ana, not followed back
    let sam = Profile::new("Sam", 4, &relay.url()); // a stranger
    ana.r().follow(ben.uid).unwrap();
    ben.r().follow(ana.uid).unwrap();
    eve.r().follow(ana.uid).unwrap();
    for p in [&ana, &ben, &eve, &sam] {
        p.sync().await;
    }
    let mut watchers = Vec::new();
    for (p, device) in [
        (&ben, "00000000000000b1"),
        (&eve, "00000000000000e1"),
        (&sam, "0000000000000051"),
    ] {
        let mut raw = Raw::login(&relay.url(), p, device).await;
        drain(&mut raw, 0).await;
        watchers.push(raw);
    }
    let ana_device = "00000000000000a1";
    let ana_online = Raw::login(&relay.url(), &ana, ana_device).await;
    let question = ClientMessage::Presence {
        users: vec![ana.uid],
    };

    let [ben_raw, eve_raw, sam_raw] = &mut watchers[..] else {
        unreachable!()
    };
    let ben_seen = ben_raw
        .until(|m| matches!(m, ServerMessage::PresenceChanged { .. }))
        .await
        .unwrap();
    assert_eq!(
        ben_seen,
        ServerMessage::PresenceChanged {
            user: ana.uid,
            online: true
        }
    );
    let answer = ask(ben_raw, &question).await;
    let ServerMessage::Presence { online } = &answer else {
        panic!("{answer:?}")
    };
    assert_eq!(online.len(), 1);
    assert_eq!((online[0].user, online[0].devices), (ana.uid, 1));
    assert!(!carries(&[ben_seen, answer], ana_device));

    for raw in [&mut *eve_raw, &mut *sam_raw] {
        let answer = ask(raw, &question).await;
        assert_eq!(answer, ServerMessage::Presence { online: vec![] });
    }

    drop(ana_online);
    let ben_seen = ben_raw
        .until(|m| matches!(m, ServerMessage::PresenceChanged { .. }))
        .await
        .unwrap();
    assert_eq!(
        ben_seen,
        ServerMessage::PresenceChanged {
            user: ana.uid,
            online: false
        }
    );
    // Neither the one-sided follower nor the stranger heard of Ana coming or going.
    for raw in [&mut *eve_raw, &mut *sam_raw] {
        let seen = drain(raw, 9).await;
        assert!(
            !seen
                .iter()
                .any(|m| matches!(m, ServerMessage::PresenceChanged { .. })),
            "{seen:?}"
        );
        assert!(!carries(&seen, ana_device));
    }
}

fn hash_of(bytes: &[u8]) -> BlobHash {
    BlobHash::from_digest(Sha256::digest(bytes).into())
}

/// A PNG-looking image of `len` bytes, different for each `n`.
fn png(n: u32, len: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(&n.to_be_bytes());
    bytes.resize(len, 7);
    bytes
}

async fn put(raw: &mut Raw, mime: &str, bytes: &[u8]) -> ServerMessage {
    ask(
        raw,
        &ClientMessage::PutBlob {
            hash: hash_of(bytes),
            mime: mime.to_owned(),
            bytes: ByteBuf::from(bytes.to_vec()),
        },
    )
    .await
}

async fn get(raw: &mut Raw, hash: BlobHash) -> ServerMessage {
    ask(raw, &ClientMessage::GetBlob { hash }).await
}

fn blob_rows(data: &Path) -> i64 {
    rusqlite::Connection::open_with_flags(
        data.join("relay.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
    .query_row("SELECT COUNT(*) FROM blobs", [], |r| r.get(0))
    .unwrap()
}

fn refused_with(answer: &ServerMessage, code: ErrorCode, words: &str) -> bool {
    matches!(answer, ServerMessage::Rejected { code: c, message, .. } if *c == code && message.contains(words))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_images_are_stored_and_served_with_the_type_their_bytes_show() {
    let relay = Relay::start(&[]);
    let (id, eve) = identity(66);
    let mut raw = Raw::login_as(&relay.url(), &id, eve, "00000000000000e1").await;

    let html = b"<!DOCTYPE html><html><script>alert(document.cookie)</script></html>".to_vec();
    for mime in ["text/html", "image/png", "text/html\r\nX-Evil: 1"] {
        let answer = put(&mut raw, mime, &html).await;
        assert!(
            refused_with(&answer, ErrorCode::BadBlob, "send a PNG, JPEG, GIF or WebP"),
            "{mime:?}: {answer:?}"
        );
    }
    assert!(refused_with(
        &get(&mut raw, hash_of(&html)).await,
        ErrorCode::NotFound,
        "no image"
    ));

    // A real image under a lying type is stored, and served, as what its bytes are.
    let image = png(1, 100);
    let answer = put(&mut raw, "text/html\r\nX-Evil: 1", &image).await;
    assert_eq!(
        answer,
        ServerMessage::BlobStored {
            hash: hash_of(&image)
        }
    );
    match get(&mut raw, hash_of(&image)).await {
        ServerMessage::Blob { mime, bytes, .. } => {
            assert_eq!(mime, "image/png");
            assert_eq!(bytes.as_slice(), image.as_slice());
        }
        other => panic!("{other:?}"),
    }
    let stored: String = relay_db(&relay)
        .query_row("SELECT mime FROM blobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, "image/png");
    assert_eq!(blob_rows(&relay.data), 1, "the HTML was never stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_quota_refuses_the_upload_that_would_exceed_it() {
    const MIB: usize = 1024 * 1024;
    let relay = Relay::start(&["--max-image-bytes-per-user", "3000000"]);
    let (id, eve) = identity(66);
    let mut raw = Raw::login_as(&relay.url(), &id, eve, "00000000000000e1").await;

    for n in 0..2 {
        let answer = put(&mut raw, "image/png", &png(n, MIB)).await;
        assert!(
            matches!(answer, ServerMessage::BlobStored { .. }),
            "{answer:?}"
        );
    }
    // The same image again takes nothing more.
    let again = put(&mut raw, "image/png", &png(0, MIB)).await;
    assert!(
        matches!(again, ServerMessage::BlobStored { .. }),
        "{again:?}"
    );

    let third = png(2, MIB);
    let answer = put(&mut raw, "image/png", &third).await;
    assert!(
        refused_with(&answer, ErrorCode::BadBlob, "quota of 3000000 bytes"),
        "{answer:?}"
    );
    assert!(refused_with(
        &get(&mut raw, hash_of(&third)).await,
        ErrorCode::NotFound,
        "no image"
    ));
    assert_eq!(blob_rows(&relay.data), 2, "nothing of the third was stored");
    assert_eq!(
        relay
            .metric("social_sync_relay_images_over_quota_total")
            .await,
        1.0
    );

    // The quota is Eve's alone: someone else still uploads the same image.
    let (id, cara) = identity(67);
    let mut other = Raw::login_as(&relay.url(), &id, cara, "00000000000000c1").await;
    let answer = put(&mut other, "image/png", &third).await;
    assert!(
        matches!(answer, ServerMessage::BlobStored { .. }),
        "{answer:?}"
    );
}
