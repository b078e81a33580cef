//! Issue 13, first slice: the relay on PostgreSQL (`--store postgres://…`), against a real
//! private PostgreSQL cluster per test (`common::pg`), with real clients; and the store
//! itself, the same checks run on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, Change, ReadDoc};
use common::pg::Postgres;
use common::watch::{Watch, wait_for};
use common::{Profile, Relay};
use social_sync_core::Event;
use social_sync_protocol::{DocId, PostId, UserId};
use sync_server::store::postgres::PgStore;
use sync_server::store::sqlite::SqliteStore;
use sync_server::store::{Accepted, RelayStore, Routing, StoreUrl};

/// A relay on `url`'s database, with a data folder of its own that it must not use.
fn relay_on(url: &str) -> Relay {
    Relay::start(&["--store", url])
}

fn has_post(p: &Profile, post: &PostId) -> bool {
    p.r()
        .feed(None, 50)
        .unwrap()
        .posts
        .iter()
        .any(|x| x.post_id == *post)
}

/// (a) Live and catch-up, with everything in PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_reaches_a_follower_live_and_after_being_offline() {
    let pg = Postgres::start();
    let url = pg.fresh_db();
    let relay = relay_on(&url);
    let ana = Profile::new("Ana", 1, &relay.url());
    let ben = Profile::new("Ben", 2, &relay.url());
    ben.r().follow(ana.uid).unwrap();
    ana.sync().await;
    ben.sync().await;

    let mut watch = Watch::start(&ben, &relay.url()).await;
    let live = ana.r().post("live, through PostgreSQL", &[]).unwrap();
    ana.sync().await;
    wait_for(
        &mut watch.events,
        |e| matches!(e, Event::FeedChanged { user } if *user == ana.uid),
    )
    .await;
    assert!(has_post(&ben, &live));
    watch.stop().await;

    // Ben is offline; Ana posts; Ben comes back and catches up.
    let missed = ana.r().post("while you were away", &[]).unwrap();
    ana.sync().await;
    assert!(!has_post(&ben, &missed));
    ben.sync().await;
    assert!(has_post(&ben, &missed), "caught up from the news");
    assert!(
        !relay.data.join("relay.db").exists(),
        "nothing went to SQLite"
    );
    assert_eq!(pg.sql(&url, "SELECT COUNT(*) > 0 FROM news"), "t");
}

/// (b) A relay started again on the same database finds everything: documents, follows,
/// names, news and cursors, images.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_restarted_on_the_same_database_finds_everything() {
    let pg = Postgres::start();
    let url = pg.fresh_db();
    let mut relay = relay_on(&url);
    let ana = Profile::new("Ana", 1, &relay.url());
    let ben = Profile::new("Ben", 2, &relay.url());
    ben.r().follow(ana.uid).unwrap();
    ben.sync().await;
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("dot.png");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\nnot really a full png").unwrap();
    let post = ana.r().post("before the restart", &[png]).unwrap();
    ana.sync().await;

    relay.start_again(); // SIGKILL, then the same options and port.
    ben.sync().await;
    assert!(has_post(&ben, &post), "Ben catches up after the restart");
    let item = ben.r().post_view(&post).unwrap();
    assert!(ben.r().blob(&item.media[0]).unwrap().is_some(), "the image");
    let cara = Profile::new("Cara", 3, &relay.url());
    assert_eq!(
        cara.engine.lookup_name("@ana").await.unwrap(),
        Some(ana.uid),
        "the name"
    );
    let graph = cara.engine.follow_graph(ana.uid).await.unwrap();
    assert_eq!(graph.followers, 1, "the follow graph");
}

/// (c) Two relay nodes on one database: a name Ana claimed through one is refused to Ben
/// through the other, and what one stored the other serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_is_held_by_one_user_across_two_relay_nodes() {
    let pg = Postgres::start();
    let url = pg.fresh_db();
    let (one, two) = (relay_on(&url), relay_on(&url));
    let ana = Profile::new("Ana", 1, &one.url());
    ana.sync().await;
    let ben = Profile::new("ana", 2, &two.url());
    ben.sync().await;
    for node in [&one, &two] {
        let asker = Profile::new("Cara", 3, &node.url());
        assert_eq!(
            asker.engine.lookup_name("ANA").await.unwrap(),
            Some(ana.uid),
            "through {}",
            node.url()
        );
    }
    assert_eq!(pg.sql(&url, "SELECT COUNT(*) FROM names"), "1");

    // Ben, on node two, follows Ana and gets what she posted through node one.
    let post = ana.r().post("posted through node one", &[]).unwrap();
    ana.sync().await;
    ben.r().follow(ana.uid).unwrap();
    ben.sync().await;
    assert!(has_post(&ben, &post));
}

/// Regression (a node's cache went stale in a cluster): node two held Ana's user document
/// in memory from Ben's first sync; Ana's next post went through node one, and node two kept
/// serving its old copy, so Ben never got the post, and Cara's like of it through node two
/// was refused as a like of a post that does not exist. A cached copy is now used only while
/// it is the store's version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_s_cached_copy_never_hides_what_another_node_accepted() {
    let pg = Postgres::start();
    let url = pg.fresh_db();
    let (one, two) = (relay_on(&url), relay_on(&url));
    let ana = Profile::new("Ana", 1, &one.url());
    let ben = Profile::new("Ben", 2, &two.url());
    let cara = Profile::new("Cara", 3, &two.url());
    let first = ana.r().post("first, through node one", &[]).unwrap();
    ana.sync().await;
    for p in [&ben, &cara] {
        p.r().follow(ana.uid).unwrap();
        p.sync().await;
    }
    assert!(has_post(&ben, &first), "node two loaded Ana's document");

    let second = ana.r().post("second, through node one", &[]).unwrap();
    ana.sync().await;
    ben.sync().await;
    assert!(
        has_post(&ben, &second),
        "node two serves the store's version, not its cached one"
    );
    cara.sync().await;
    cara.r().like(&second).unwrap();
    let summary = cara.sync().await;
    assert!(
        summary.refusals.is_empty(),
        "the like through node two was refused: {:?}",
        summary.refusals
    );
    ana.sync().await;
    let likes = ana
        .r()
        .feed(None, 50)
        .unwrap()
        .posts
        .iter()
        .find(|p| p.post_id == second)
        .map(|p| p.likes);
    assert_eq!(likes, Some(1), "Ana sees Cara's like made through node two");
}

fn pg_url(url: &str) -> StoreUrl {
    url.parse().unwrap()
}

/// (d) The schema is migrated once: a second start applies nothing and keeps the data;
/// two nodes starting together migrate once between them.
#[test]
fn migrations_run_once_and_a_second_start_is_a_no_op() {
    let pg = Postgres::start();
    let url = pg.fresh_db();
    let ana = UserId::from_bytes([1; 32]);
    {
        let mut store = PgStore::open(&pg_url(&url)).unwrap();
        assert_eq!(store.migrations_applied(), 1);
        store.ack_inbox(ana, "00000000000000a1", 7).unwrap();
    }
    let mut again = PgStore::open(&pg_url(&url)).unwrap();
    assert_eq!(again.migrations_applied(), 0);
    assert_eq!(
        again.inbox(ana, "00000000000000a1").unwrap().1,
        7,
        "data kept"
    );
    assert_eq!(pg.sql(&url, "SELECT COUNT(*) FROM schema_version"), "1");

    let other = pg.fresh_db();
    let starts: Vec<_> = (0..3)
        .map(|_| {
            let url = pg_url(&other);
            std::thread::spawn(move || PgStore::open(&url).unwrap().migrations_applied())
        })
        .collect();
    let applied: usize = starts.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(applied, 1, "one node migrated, the others found it done");
}

/// New changes to `doc` by `author`, setting `key`.
fn changes(am: &mut AutoCommit, key: &str) -> Vec<Change> {
    let before = am.get_heads();
    am.put(automerge::ROOT, key, "x").unwrap();
    am.commit();
    am.get_changes(&before)
}

/// Two relay nodes' stores on the database at `url`, and the users Ana and Ben.
fn two_nodes(url: &str) -> (PgStore, PgStore, UserId, UserId) {
    (
        PgStore::open(&pg_url(url)).unwrap(),
        PgStore::open(&pg_url(url)).unwrap(),
        UserId::from_bytes([1; 32]),
        UserId::from_bytes([2; 32]),
    )
}

/// Stages, on `store`, a new change (setting `key`) of `user`'s own document.
fn stage_own(
    store: &mut dyn RelayStore,
    user: UserId,
    key: &str,
    routing: Routing,
) -> sync_server::store::Staged {
    let mut am = AutoCommit::new();
    let new = changes(&mut am, key);
    accept(store, &DocId::User(user), &mut am, &new, routing).unwrap()
}

fn accept(
    store: &mut dyn RelayStore,
    doc: &DocId,
    am: &mut AutoCommit,
    new: &[Change],
    routing: Routing,
) -> Result<sync_server::store::Staged, sync_server::store::StoreError> {
    store.accept(
        am,
        &Accepted {
            doc,
            changes: new,
            routing,
            signatures: &[],
        },
    )
}

/// (e) A group lost before its commit (here PostgreSQL drops the relay's connection)
/// leaves a gap in the news numbers; catch-up asks for `seq > cursor`, so the gap loses
/// nothing, and the store carries on with a fresh connection from its pool.
#[test]
fn a_gap_left_by_a_rolled_back_accept_loses_nothing_for_catch_up() {
    let pg = Postgres::start();
    let url = pg.fresh_db();
    let mut store = PgStore::open(&pg_url(&url)).unwrap();
    let (ana, ben) = (UserId::from_bytes([1; 32]), UserId::from_bytes([2; 32]));
    let (ana_doc, ben_doc) = (DocId::User(ana), DocId::User(ben));
    let device = "00000000000000b1";

    let mut ben_am = AutoCommit::new();
    let new = changes(&mut ben_am, "follow");
    let routing = Routing {
        follows: vec![(ben, ana, true)],
        ..Routing::default()
    };
    let first = accept(&mut store, &ben_doc, &mut ben_am, &new, routing).unwrap();
    store.commit(first.group).unwrap();
    let (docs, newest) = store.inbox(ben, device).unwrap();
    assert_eq!((docs, newest), (vec![ben_doc.clone()], first.seq));
    store.ack_inbox(ben, device, newest).unwrap();

    // Staged, then the connection is cut before the commit: PostgreSQL rolls it back.
    let mut ana_am = AutoCommit::new();
    let lost = changes(&mut ana_am, "lost");
    let staged = accept(&mut store, &ana_doc, &mut ana_am, &lost, Routing::default()).unwrap();
    let cut = pg.sql(
        &url,
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE application_name = 'sync-server' AND state = 'idle in transaction'",
    );
    assert_eq!(cut, "1");
    assert!(
        store.commit(staged.group).is_err(),
        "the lost group is not durable"
    );

    // The client sends again (the lost change and a new one): a new number, past the gap.
    let mut ana_am = AutoCommit::new();
    let mut again = changes(&mut ana_am, "lost");
    again.extend(changes(&mut ana_am, "kept"));
    let kept = accept(
        &mut store,
        &ana_doc,
        &mut ana_am,
        &again,
        Routing::default(),
    )
    .unwrap();
    store.commit(kept.group).unwrap();
    assert!(
        kept.seq > staged.seq && staged.seq > first.seq,
        "{} {} {}",
        first.seq,
        staged.seq,
        kept.seq
    );
    let (docs, newest) = store.inbox(ben, device).unwrap();
    assert_eq!(
        (docs, newest),
        (vec![ana_doc.clone()], kept.seq),
        "nothing lost"
    );
    store.ack_inbox(ben, device, newest).unwrap();
    assert!(store.inbox(ben, device).unwrap().0.is_empty());
    let loaded = store.load(&ana_doc).unwrap().unwrap();
    assert!(loaded.get(automerge::ROOT, "kept").unwrap().is_some());
}

/// A failed read while a group is open aborts its PostgreSQL transaction, and COMMIT
/// would then roll it back without an error: the store must report the group as not
/// committed, never acknowledge changes it dropped.
#[test]
fn a_group_aborted_by_a_failed_read_is_reported_uncommitted() {
    let pg = Postgres::start();
    let mut store = PgStore::open(&pg_url(&pg.fresh_db())).unwrap();
    let ana = UserId::from_bytes([1; 32]);
    let mut am = AutoCommit::new();
    let new = changes(&mut am, "x");
    let staged = accept(
        &mut store,
        &DocId::User(ana),
        &mut am,
        &new,
        Routing::default(),
    )
    .unwrap();
    // PostgreSQL refuses a NUL in text: an error inside the open transaction.
    assert!(store.name_holder("a\0b").is_err());
    let err = store.commit(staged.group).unwrap_err();
    assert!(err.to_string().contains("could not commit group"), "{err}");
    assert!(store.load(&DocId::User(ana)).unwrap().is_none());
    // The store goes on.
    let staged = accept(
        &mut store,
        &DocId::User(ana),
        &mut am,
        &new,
        Routing::default(),
    )
    .unwrap();
    store.commit(staged.group).unwrap();
    assert!(store.load(&DocId::User(ana)).unwrap().is_some());
}

/// Two nodes: a group open on one holds the writer lock, so the other's accept waits, and
/// takes a larger news number than anything committed before it: numbers are committed in
/// order, which catch-up relies on.
#[test]
fn groups_on_two_nodes_commit_in_news_order() {
    let pg = Postgres::start();
    let url = pg.fresh_db();
    let (mut one, mut two, ana, ben) = two_nodes(&url);
    let first = stage_own(&mut one, ana, "a", Routing::default());
    let waiting = std::thread::spawn(move || {
        let staged = stage_own(&mut two, ben, "b", Routing::default());
        two.commit(staged.group).unwrap();
        staged.seq
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !waiting.is_finished(),
        "node two waits for node one's group"
    );
    one.commit(first.group).unwrap();
    let second = waiting.join().unwrap();
    assert!(second > first.seq);
}

/// A node that stalls between staging a group and committing it holds the writer lock;
/// PostgreSQL ends its session after `idle_in_transaction_session_timeout` (15 s by
/// default, 1 s here through the URL's options, which the relay passes on), so the other
/// nodes write again, and the stalled group is reported uncommitted.
#[test]
fn a_node_stalled_inside_a_group_does_not_block_the_others_for_long() {
    let pg = Postgres::start();
    let url = pg.fresh_db();
    let short = format!("{url}?options=-c%20idle_in_transaction_session_timeout%3D1s");
    let mut stalled = PgStore::open(&pg_url(&short)).unwrap();
    let mut other = PgStore::open(&pg_url(&url)).unwrap();
    let (ana, ben) = (UserId::from_bytes([1; 32]), UserId::from_bytes([2; 32]));
    let mut ana_am = AutoCommit::new();
    let new = changes(&mut ana_am, "a");
    let staged = accept(
        &mut stalled,
        &DocId::User(ana),
        &mut ana_am,
        &new,
        Routing::default(),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let mut ben_am = AutoCommit::new();
    let new = changes(&mut ben_am, "b");
    let theirs = accept(
        &mut other,
        &DocId::User(ben),
        &mut ben_am,
        &new,
        Routing::default(),
    )
    .unwrap();
    other.commit(theirs.group).unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    assert!(stalled.commit(staged.group).is_err());
    assert!(stalled.load(&DocId::User(ana)).unwrap().is_none());
}

/// Two nodes register the same name at once, each having found it free: the one whose
/// group commits first holds it, the other's profile is kept but the name is not its.
#[test]
fn a_name_claimed_on_two_nodes_at_once_goes_to_one_user() {
    let pg = Postgres::start();
    let url = pg.fresh_db();
    let (mut one, mut two, ana, ben) = two_nodes(&url);
    assert_eq!(one.name_holder("ana").unwrap(), None);
    assert_eq!(two.name_holder("ana").unwrap(), None);
    let claim = |uid: UserId| Routing {
        name: Some((uid, "ana".into())),
        ..Routing::default()
    };
    let first = stage_own(&mut one, ana, "name", claim(ana));
    let racing = std::thread::spawn(move || {
        let staged = stage_own(&mut two, ben, "name", claim(ben));
        two.commit(staged.group).unwrap();
        two
    });
    std::thread::sleep(Duration::from_millis(200));
    one.commit(first.group).unwrap();
    let mut two = racing.join().unwrap();
    assert_eq!(two.name_holder("ana").unwrap(), Some(ana));
    assert!(
        two.load(&DocId::User(ben)).unwrap().is_some(),
        "Ben's profile kept"
    );
    assert_eq!(pg.sql(&url, "SELECT COUNT(*) FROM names"), "1");
}

/// The same store checks on both backends: follows, names, news and cursors, images,
/// documents and their signatures, counts.
fn same_semantics(store: &mut dyn RelayStore) {
    let (ana, ben, eve) = (
        UserId::from_bytes([1; 32]),
        UserId::from_bytes([2; 32]),
        UserId::from_bytes([3; 32]),
    );
    let (ana_doc, ben_doc) = (DocId::User(ana), DocId::User(ben));
    assert!(store.load(&ana_doc).unwrap().is_none());
    assert_eq!(store.stored_bytes(&ana_doc).unwrap(), 0);

    let mut ben_am = AutoCommit::new();
    let new = changes(&mut ben_am, "follow");
    let sig = [7u8; 64];
    let signatures = [(new[0].hash(), sig)];
    let staged = store
        .accept(
            &mut ben_am,
            &Accepted {
                doc: &ben_doc,
                changes: &new,
                routing: Routing {
                    follows: vec![(ben, ana, true)],
                    name: Some((ben, "ben".into())),
                    recipients: vec![],
                },
                signatures: &signatures,
            },
        )
        .unwrap();
    store.commit(staged.group).unwrap();
    store.commit(staged.group).unwrap(); // committed already: nothing to do
    assert_eq!(store.followers(ana).unwrap(), vec![ben]);
    assert_eq!(store.following(ben).unwrap(), vec![ana]);
    assert!(store.follows(ben, ana).unwrap() && !store.follows(ana, ben).unwrap());
    assert_eq!(store.name_holder("ben").unwrap(), Some(ben));
    let raw = new[0].raw_bytes().to_vec();
    assert_eq!(
        store
            .signatures_for(&ben_doc, &[raw.clone(), vec![1, 2]])
            .unwrap(),
        vec![sig.to_vec(), vec![]]
    );
    let loaded = store.load(&ben_doc).unwrap().unwrap();
    assert!(loaded.get(automerge::ROOT, "follow").unwrap().is_some());
    assert_eq!(store.stored_bytes(&ben_doc).unwrap(), raw.len() as u64);

    // Eve's profile sets Ben's name: taken, so not registered, but her document is kept.
    let mut eve_am = AutoCommit::new();
    let new = changes(&mut eve_am, "name");
    let routing = Routing {
        name: Some((eve, "ben".into())),
        ..Routing::default()
    };
    let staged = accept(store, &DocId::User(eve), &mut eve_am, &new, routing).unwrap();
    store.commit(staged.group).unwrap();
    assert_eq!(store.name_holder("ben").unwrap(), Some(ben));
    // Ben renames himself: his old name is free again.
    let new = changes(&mut ben_am, "rename");
    let routing = Routing {
        name: Some((ben, "benny".into())),
        ..Routing::default()
    };
    let staged = accept(store, &ben_doc, &mut ben_am, &new, routing).unwrap();
    store.commit(staged.group).unwrap();
    assert_eq!(store.name_holder("ben").unwrap(), None);
    assert_eq!(store.name_holder("benny").unwrap(), Some(ben));

    // News: Ben's device gets Ana's document (he follows her) but not Eve's.
    let mut ana_am = AutoCommit::new();
    let new = changes(&mut ana_am, "post");
    let staged = accept(store, &ana_doc, &mut ana_am, &new, Routing::default()).unwrap();
    let device = "00000000000000b1";
    store.ack_inbox(ben, device, 0).unwrap(); // commits the open group first
    let (docs, newest) = store.inbox(ben, device).unwrap();
    assert_eq!(docs, vec![ben_doc.clone(), ana_doc.clone()]);
    assert_eq!(newest, staged.seq);
    store.ack_inbox(ben, device, newest).unwrap();
    store.ack_inbox(ben, device, 1).unwrap(); // a cursor never moves back
    assert_eq!(store.inbox(ben, device).unwrap(), (vec![], newest));

    // Images.
    let hash: social_sync_protocol::BlobHash = "0".repeat(64).parse().unwrap();
    assert!(!store.has_blob(&hash).unwrap());
    store.put_blob(&hash, "image/png", b"png!", ana).unwrap();
    store.put_blob(&hash, "image/png", b"png!", ana).unwrap();
    assert!(store.has_blob(&hash).unwrap());
    assert_eq!(store.blob_bytes_of(ana).unwrap(), 4);
    assert_eq!(
        store.get_blob(&hash).unwrap(),
        Some(("image/png".into(), b"png!".to_vec()))
    );
    assert_eq!(store.counts().unwrap(), (3, 3));
}

#[test]
fn the_sqlite_store_keeps_the_shared_semantics() {
    let dir = tempfile::tempdir().unwrap();
    same_semantics(&mut SqliteStore::open(dir.path()).unwrap());
}

#[test]
fn the_postgres_store_keeps_the_shared_semantics() {
    let pg = Postgres::start();
    same_semantics(&mut PgStore::open(&pg_url(&pg.fresh_db())).unwrap());
}

/// `--store` with anything but a postgres:// URL stops the relay at start, saying what to
/// give, without showing the password.
/// Regression: an unreachable PostgreSQL was reported after "listening on", so a script
/// waiting for that line took the relay for started.
#[test]
fn an_unreachable_postgres_stops_the_relay_before_it_listens() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sync-server"))
        .args(["--listen", "127.0.0.1:0", "--store"])
        .arg(format!("postgres://relay:secret@127.0.0.1:{port}/relay"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty(),
        "never said it listens"
    );
}

#[test]
fn an_unknown_store_stops_the_relay_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sync-server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--store",
            "mysql://root:pw@db/relay",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the relay has no 'mysql' store"),
        "{stderr}"
    );
    assert!(
        stderr.contains("postgres://user@host:port/database"),
        "{stderr}"
    );
    assert!(!stderr.contains(":pw@"), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty(),
        "never listened"
    );
}
