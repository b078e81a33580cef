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
