//! Issue 12: news for offline devices costs the same whatever the number of followers. A
//! post by someone with many offline followers writes one news entry, and every follower
//! still catches up on it when it connects.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{Profile, Relay};

fn news_rows(relay: &Relay) -> i64 {
    let conn = rusqlite::Connection::open(relay.data.join("relay.db")).unwrap();
    conn.query_row("SELECT COUNT(*) FROM news", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_to_many_offline_followers_is_one_news_entry_and_reaches_them_all() {
    let relay = Relay::start(&[]);
    let ana = Profile::new("Ana", 1, &relay.url());
    ana.sync().await;
    let mut followers = Vec::new();
    for i in 0..30 {
        let f = Profile::new(&format!("F{i}"), 100 + i, &relay.url());
        f.r().follow(ana.uid).unwrap();
        f.sync().await;
        followers.push(f);
    }
    let before = news_rows(&relay);

    // Everyone is offline; Ana posts.
    let post = ana.r().post("to all of you", &[]).unwrap();
    ana.sync().await;
    assert_eq!(
        news_rows(&relay) - before,
        0,
        "Ana's user document already had its news entry: it moved, no row was added"
    );
    let conn = rusqlite::Connection::open(relay.data.join("relay.db")).unwrap();
    let for_ana: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM news WHERE doc_id = ?1",
            [format!("user/{}", ana.uid)],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        for_ana, 1,
        "one entry for the document, not one per follower"
    );

    for f in &followers {
        f.sync().await;
        let feed = f.r().feed(None, 10).unwrap();
        assert!(
            feed.posts.iter().any(|p| p.post_id == post),
            "every follower catches up on the post"
        );
    }
}

/// Regression (the cluster chaos run: a client's like stayed in its outbox for ever). The
/// relay told a connection its heads (the inbox offer), then the document moved through
/// another connection, and this client reached the same heads on its own: Automerge took
/// the client's announcing them as having been told, and the relay stayed silent, so the
/// client kept the older heads and never confirmed its change. The relay now answers with
/// its heads whenever they differ from the last it sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_caught_up_elsewhere_is_told_the_relays_heads() {
    use automerge::sync::{Message, State, SyncDoc};
    use common::{Raw, sign_chunks, sync_doc};
    use serde_bytes::ByteBuf;
    use social_sync_protocol::{ClientMessage, DocId, ServerMessage, SyncItem};

    let relay = Relay::start(&[]);
    let ana = Profile::new("Ana", 1, &relay.url());
    ana.r().post("first", &[]).unwrap();
    ana.sync().await;
    let doc = DocId::User(ana.uid);

    // Ana's second device: the relay offers it her document (its heads: the first post),
    // and it fetches the document.
    let mut device = Raw::login(&relay.url(), &ana, "00000000000000b2").await;
    device
        .until(|m| matches!(m, ServerMessage::InboxSent { .. }))
        .await
        .expect("the inbox is offered");
    let mut copy = automerge::AutoCommit::new();
    assert!(sync_doc(&mut device, &doc, &mut copy).await.is_empty());

    // The first device posts again; the second gets the change live and applies it.
    ana.r().post("second", &[]).unwrap();
    ana.sync().await;
    let pushed = device
        .until(|m| matches!(m, ServerMessage::Changes { doc: d, .. } if *d == doc))
        .await
        .expect("the change is pushed");
    let ServerMessage::Changes { changes, .. } = pushed else {
        unreachable!()
    };
    for change in changes {
        copy.load_incremental(&change).unwrap();
    }
    let heads = copy.get_heads();

    // It announces its heads (equal to the relay's now) with nothing to send.
    let message = copy
        .sync()
        .generate_sync_message(&mut State::new())
        .unwrap();
    assert!(message.changes.is_empty());
    device
        .send(&ClientMessage::Sync {
            items: vec![SyncItem {
                doc: doc.clone(),
                message: ByteBuf::from(message.encode()),
                signatures: sign_chunks(None, &doc, std::iter::empty()),
            }],
        })
        .await;
    device.send(&ClientMessage::Ping { id: 77 }).await;
    let answer = device
        .until(|m| {
            matches!(
                m,
                ServerMessage::Sync { .. } | ServerMessage::Pong { id: 77 }
            )
        })
        .await
        .expect("an answer");
    let ServerMessage::Sync { items } = answer else {
        panic!("the relay stayed silent: the client still holds its older heads")
    };
    let told = Message::decode(&items[0].message).unwrap();
    assert_eq!(told.heads, heads, "the relay tells its current heads");
}
