//! Whole-profile tests: real profile folders with real SQLite files, replicas exchanging
//! Automerge changes the way sync and `import` do.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed step is a failed test

use std::path::Path;

use automerge::AutoCommit;
use social_sync_core::model::{ThreadDoc, actor_id};
use social_sync_core::{DocId, Env, Error, NotificationKind, Replica};
use tempfile::TempDir;

/// A real 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

struct Profile {
    _dir: TempDir,
    replica: Replica,
}

fn profile(name: &str, seed: u64) -> Profile {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::create(
        dir.path(),
        name,
        None,
        Env::deterministic(seed, 1_700_000_000_000),
    )
    .unwrap();
    Profile { _dir: dir, replica }
}

/// Gives `to` every change `from` has, document by document; returns the notification
/// kinds `to` got.
fn send(from: &Replica, to: &mut Replica) -> Vec<NotificationKind> {
    let mut kinds = Vec::new();
    for doc in from.documents().unwrap() {
        let changes = from.changes(&doc, &[]).unwrap();
        let sigs = from.signatures_of(&doc, &changes).unwrap();
        let outcome = to.merge(&doc, &changes, &sigs).unwrap();
        kinds.extend(outcome.notifications.iter().map(|n| n.kind));
    }
    kinds.sort();
    kinds
}

#[test]
fn likes_comments_and_follows_reach_the_author_once() {
    let mut ana = profile("Ana", 1);
    let mut ben = profile("Ben", 2);
    let post = ana.replica.post("sunset at the pier", &[]).unwrap();
    assert!(
        send(&ana.replica, &mut ben.replica).is_empty(),
        "a post notifies nobody"
    );

    ben.replica.follow(ana.replica.user_id()).unwrap();
    ben.replica.like(&post).unwrap();
    ben.replica.comment(&post, "gorgeous").unwrap();
    let kinds = send(&ben.replica, &mut ana.replica);
    assert_eq!(
        kinds,
        vec![
            NotificationKind::Like,
            NotificationKind::Comment,
            NotificationKind::Follow
        ]
    );

    // The same changes again, and a full resend: nothing new.
    assert!(send(&ben.replica, &mut ana.replica).is_empty());
    assert_eq!(ana.replica.unread_count().unwrap(), 3);

    let notes = ana.replica.notifications(false, 50).unwrap();
    assert!(notes.iter().all(|n| n.actor == ben.replica.user_id()));
    assert!(notes.iter().all(|n| n.actor_name.as_deref() == Some("Ben")));

    let feed = ana.replica.feed(None, 50).unwrap();
    assert_eq!(feed.posts.len(), 1);
    assert_eq!(
        (
            feed.posts[0].likes,
            feed.posts[0].comments,
            feed.posts[0].liked_by_me
        ),
        (1, 1, false)
    );

    let ben_feed = ben.replica.feed(None, 50).unwrap();
    assert_eq!(
        ben_feed.posts[0].post_id, post,
        "Ben follows Ana, so her post is in his feed"
    );
    assert!(ben_feed.posts[0].liked_by_me);
    assert_eq!(ben_feed.posts[0].author_name.as_deref(), Some("Ana"));

    let thread = ana.replica.thread(&post).unwrap();
    assert_eq!(thread.comments.len(), 1);
    assert_eq!(thread.comments[0].text, "gorgeous");
    assert_eq!(thread.comments[0].author_name.as_deref(), Some("Ben"));
}

#[test]
fn a_blocked_person_never_notifies_and_is_hidden_everywhere() {
    let mut ana = profile("Ana", 1);
    let mut ben = profile("Ben", 2);
    let mut cat = profile("Cat", 3);
    let ben_id = ben.replica.user_id();
    let post = ana.replica.post("sunset at the pier", &[]).unwrap();
    send(&ana.replica, &mut ben.replica);
    send(&ana.replica, &mut cat.replica);

    // Ben acted before the block: one notification, then hidden once blocked.
    ben.replica.like(&post).unwrap();
    assert_eq!(
        send(&ben.replica, &mut ana.replica),
        vec![NotificationKind::Like]
    );
    ana.replica.follow(ben_id).unwrap();
    ana.replica.block(ben_id).unwrap();
    assert_eq!(ana.replica.unread_count().unwrap(), 0);
    assert!(ana.replica.notifications(false, 50).unwrap().is_empty());
    assert!(
        !ana.replica.following().unwrap().contains(&ben_id),
        "blocking unfollows"
    );
    assert_eq!(
        ana.replica.blocked().unwrap(),
        vec![(ben_id, Some("Ben".to_owned()))]
    );

    // After the block: his comment and follow notify nothing and show nowhere.
    ben.replica.comment(&post, "hello?").unwrap();
    ben.replica.follow(ana.replica.user_id()).unwrap();
    ben.replica.post("sunset, my take", &[]).unwrap();
    assert!(send(&ben.replica, &mut ana.replica).is_empty());
    let thread = ana.replica.thread(&post).unwrap();
    assert_eq!((thread.post.likes, thread.post.comments), (0, 0));
    assert!(thread.comments.is_empty());
    assert!(
        ana.replica
            .search("sunset", 10)
            .unwrap()
            .iter()
            .all(|p| p.author != ben_id)
    );
    let me = ana.replica.profile(ana.replica.user_id()).unwrap();
    assert_eq!(me.followers, 0);
    assert!(ana.replica.profile(ben_id).unwrap().blocked_by_me);
    assert!(ana.replica.posts_by(ben_id, 10).unwrap().is_empty());

    // Others still notify; a muted post does not.
    cat.replica.like(&post).unwrap();
    assert_eq!(
        send(&cat.replica, &mut ana.replica),
        vec![NotificationKind::Like]
    );
    ana.replica.mute_post(&post).unwrap();
    assert!(ana.replica.thread(&post).unwrap().muted);
    cat.replica.comment(&post, "lovely").unwrap();
    assert!(send(&cat.replica, &mut ana.replica).is_empty(), "muted");
    assert_eq!(
        ana.replica.thread(&post).unwrap().comments.len(),
        1,
        "muted still shows"
    );
    ana.replica.unmute_post(&post).unwrap();
    cat.replica.comment(&post, "again").unwrap();
    assert_eq!(
        send(&cat.replica, &mut ana.replica),
        vec![NotificationKind::Comment]
    );

    // Unblocking shows Ben's likes and comments again; it does not follow him back.
    ana.replica.unblock(ben_id).unwrap();
    let thread = ana.replica.thread(&post).unwrap();
    assert_eq!((thread.post.likes, thread.post.comments), (2, 3));
    assert!(!ana.replica.following().unwrap().contains(&ben_id));
    assert_eq!(
        ana.replica.block(ana.replica.user_id()).unwrap_err().code(),
        "block_self"
    );
}

#[test]
fn a_second_device_opens_the_key_backup_and_catches_up() {
    let mut ana = profile("Ana", 1);
    let post = ana.replica.post("from the laptop", &[]).unwrap();
    let backup = ana.replica.export_key("harbour lights").unwrap();

    let dir = tempfile::tempdir().unwrap();
    let wrong = Replica::create_from_backup(
        dir.path(),
        &backup,
        "harbour light",
        None,
        Env::deterministic(7, 0),
    );
    assert_eq!(wrong.err().map(|e| e.code()), Some("wrong_passphrase"));
    assert!(
        !dir.path().join("identity.pem").exists(),
        "nothing written on a wrong passphrase"
    );

    let mut desk = Replica::create_from_backup(
        dir.path(),
        &backup,
        "harbour lights",
        Some("ws://127.0.0.1:8787"),
        Env::deterministic(7, 1_700_000_000_000),
    )
    .unwrap();
    assert_eq!(desk.user_id(), ana.replica.user_id());
    assert_ne!(desk.device(), ana.replica.device(), "a device of its own");
    send(&ana.replica, &mut desk);
    assert_eq!(
        desk.profile(desk.user_id()).unwrap().name.as_deref(),
        Some("Ana")
    );
    assert_eq!(desk.feed(None, 10).unwrap().posts[0].post_id, post);
    assert_eq!(
        Replica::create_from_backup(
            dir.path(),
            &backup,
            "harbour lights",
            None,
            Env::deterministic(8, 0)
        )
        .err()
        .map(|e| e.code()),
        Some("profile_exists")
    );
}

#[test]
fn own_actions_never_notify() {
    let mut ana = profile("Ana", 1);
    let post = ana.replica.post("hello", &[]).unwrap();
    ana.replica.like(&post).unwrap();
    ana.replica.comment(&post, "talking to myself").unwrap();
    assert_eq!(ana.replica.unread_count().unwrap(), 0);

    // Not from a second device of the same user either.
    let mut other_device = profile("Ana elsewhere", 3);
    send(&ana.replica, &mut other_device.replica);
    assert_eq!(other_device.replica.unread_count().unwrap(), 0);
}

#[test]
fn liking_again_after_an_unlike_does_not_notify_twice() {
    let mut ana = profile("Ana", 1);
    let mut ben = profile("Ben", 2);
    let post = ana.replica.post("hello", &[]).unwrap();
    send(&ana.replica, &mut ben.replica);
    ben.replica.like(&post).unwrap();
    assert_eq!(
        send(&ben.replica, &mut ana.replica),
        vec![NotificationKind::Like]
    );
    ben.replica.unlike(&post).unwrap();
    send(&ben.replica, &mut ana.replica);
    assert_eq!(ana.replica.feed(None, 10).unwrap().posts[0].likes, 0);
    ben.replica.like(&post).unwrap();
    assert!(send(&ben.replica, &mut ana.replica).is_empty());
    assert_eq!(ana.replica.feed(None, 10).unwrap().posts[0].likes, 1);
}

#[test]
fn feed_pages_follow_the_cursor_newest_first() {
    let mut ana = profile("Ana", 1);
    let mut ids = Vec::new();
    for i in 0..120 {
        ids.push(ana.replica.post(&format!("post {i}"), &[]).unwrap());
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = ana.replica.feed(cursor.as_ref(), 50).unwrap();
        pages += 1;
        seen.extend(page.posts.iter().map(|p| p.post_id.clone()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "every post once, newest first");
}

#[test]
fn the_feed_holds_own_and_followed_posts_only() {
    let mut ana = profile("Ana", 1);
    let mut ben = profile("Ben", 2);
    let mut cara = profile("Cara", 3);
    ben.replica.post("ben's post", &[]).unwrap();
    cara.replica.post("cara's post", &[]).unwrap();
    send(&ben.replica, &mut ana.replica);
    send(&cara.replica, &mut ana.replica);
    assert!(ana.replica.feed(None, 10).unwrap().posts.is_empty());
    ana.replica.follow(ben.replica.user_id()).unwrap();
    let texts: Vec<_> = ana
        .replica
        .feed(None, 10)
        .unwrap()
        .posts
        .into_iter()
        .map(|p| p.text)
        .collect();
    assert_eq!(texts, vec!["ben's post"]);
    ana.replica.unfollow(ben.replica.user_id()).unwrap();
    assert!(ana.replica.feed(None, 10).unwrap().posts.is_empty());
    // Search covers everything held, followed or not.
    assert_eq!(ana.replica.search("cara", 10).unwrap().len(), 1);
}

#[test]
fn search_matches_words_and_prefixes_and_survives_odd_input() {
    let mut ana = profile("Ana", 1);
    ana.replica
        .post("Red sunset over the harbour", &[])
        .unwrap();
    ana.replica.post("Morning coffee", &[]).unwrap();
    assert_eq!(ana.replica.search("sunset", 10).unwrap().len(), 1);
    assert_eq!(
        ana.replica.search("harb", 10).unwrap().len(),
        1,
        "last word is a prefix"
    );
    assert_eq!(
        ana.replica.search("red coffee", 10).unwrap().len(),
        0,
        "every word must match"
    );
    for odd in ["\"", "AND", "*", "(", "sun\"set OR", ""] {
        ana.replica.search(odd, 10).unwrap();
    }
}

/// Issue 10: search found post text only. A comment's words find its post, after the
/// posts matching by their own text; a deleted comment no longer does.
#[test]
fn search_finds_posts_by_their_comments_too() {
    let mut ana = profile("Ana", 1);
    let quiet = ana.replica.post("A quiet morning", &[]).unwrap();
    let loud = ana.replica.post("Lighthouse at dusk", &[]).unwrap();
    let comment = ana
        .replica
        .comment(&quiet, "the lighthouse keeper waved")
        .unwrap();
    let found: Vec<_> = ana
        .replica
        .search("lighthouse", 10)
        .unwrap()
        .into_iter()
        .map(|p| p.post_id)
        .collect();
    assert_eq!(found, vec![loud.clone(), quiet.clone()], "own text first");
    assert_eq!(ana.replica.search("keep", 10).unwrap()[0].post_id, quiet);
    ana.replica.delete_comment(&comment).unwrap();
    assert!(ana.replica.search("keeper", 10).unwrap().is_empty());
    ana.replica.reindex().unwrap();
    assert_eq!(ana.replica.search("lighthouse", 10).unwrap().len(), 1);
}

#[test]
fn deleting_posts_and_comments_is_for_their_authors() {
    let mut ana = profile("Ana", 1);
    let mut ben = profile("Ben", 2);
    let post = ana.replica.post("hello", &[]).unwrap();
    send(&ana.replica, &mut ben.replica);
    let comment = ben.replica.comment(&post, "hi").unwrap();
    send(&ben.replica, &mut ana.replica);

    assert_eq!(
        ben.replica.delete_post(&post).unwrap_err().code(),
        "not_yours"
    );
    assert_eq!(
        ana.replica.delete_comment(&comment).unwrap_err().code(),
        "not_yours"
    );

    ben.replica.delete_comment(&comment).unwrap();
    send(&ben.replica, &mut ana.replica);
    assert!(ana.replica.thread(&post).unwrap().comments.is_empty());

    ana.replica.delete_post(&post).unwrap();
    send(&ana.replica, &mut ben.replica);
    assert_eq!(
        ben.replica.thread(&post).unwrap_err().code(),
        "deleted_post"
    );
    assert_eq!(
        ana.replica.search("hello", 10).unwrap().len(),
        0,
        "gone from search too"
    );
}

#[test]
fn images_are_stored_by_hash_and_non_images_refused() {
    let mut ana = profile("Ana", 1);
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("dot.png");
    std::fs::write(&png, PNG).unwrap();
    let post = ana.replica.post("", std::slice::from_ref(&png)).unwrap();
    let item = ana.replica.post_view(&post).unwrap();
    assert_eq!(item.media.len(), 1);
    let blob = ana.replica.blob(&item.media[0]).unwrap().unwrap();
    assert_eq!(
        (blob.mime.as_str(), blob.bytes.as_slice()),
        ("image/png", PNG)
    );

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just text").unwrap();
    let err = ana.replica.post("look", &[text]).unwrap_err();
    assert_eq!(err.code(), "not_an_image");
    assert!(err.to_string().contains("notes.txt"), "{err}");
    assert_eq!(ana.replica.post("", &[]).unwrap_err().code(), "text_length");
    let missing = ana
        .replica
        .post("x", &[dir.path().join("nope.png")])
        .unwrap_err();
    assert_eq!(missing.code(), "io");
    assert_eq!(
        ana.replica.feed(None, 10).unwrap().posts.len(),
        1,
        "failed posts leave nothing"
    );
}

#[test]
fn an_avatar_shows_on_posts_comments_and_the_profile_of_followers() {
    let mut ana = profile("Ana", 1);
    let mut ben = profile("Ben", 2);
    ben.replica.follow(ana.replica.user_id()).unwrap();
    let post = ana.replica.post("hello", &[]).unwrap();
    ana.replica.comment(&post, "first!").unwrap();

    let err = ana
        .replica
        .set_avatar_bytes(b"not an image".to_vec())
        .unwrap_err();
    assert_eq!(err.code(), "not_an_image");
    assert!(err.to_string().contains("avatar image"), "{err}");
    let hash = ana.replica.set_avatar_bytes(PNG.to_vec()).unwrap();

    send(&ana.replica, &mut ben.replica);
    let item = &ben.replica.feed(None, 10).unwrap().posts[0];
    assert_eq!(item.author_avatar, Some(hash));
    let thread = ben.replica.thread(&post).unwrap();
    assert_eq!(thread.comments[0].author_avatar, Some(hash));
    let uid = ana.replica.user_id();
    assert_eq!(ben.replica.profile(uid).unwrap().avatar, Some(hash));
    assert_eq!(
        ben.replica.missing_blobs().unwrap(),
        vec![hash],
        "the image itself is fetched from the relay"
    );

    ana.replica.remove_avatar().unwrap();
    send(&ana.replica, &mut ben.replica);
    assert_eq!(
        ben.replica.feed(None, 10).unwrap().posts[0].author_avatar,
        None
    );
    assert_eq!(ben.replica.profile(uid).unwrap().avatar, None);
}

#[test]
fn a_like_in_someone_elses_name_is_refused_and_nothing_is_stored() {
    let mut ana = profile("Ana", 1);
    let ben = profile("Ben", 2);
    let cara = profile("Cara", 3);
    let post = ana.replica.post("hello", &[]).unwrap();
    let thread = DocId::Thread(post.clone());

    // Ben's device writes a like under Cara's name.
    let mut forged = AutoCommit::new().with_actor(actor_id(ben.replica.user_id(), [1; 8]));
    ThreadDoc::like(&mut forged, cara.replica.user_id(), 5).unwrap();
    forged.commit();
    let bytes = forged.get_last_local_change().unwrap().raw_bytes().to_vec();
    let err = ana
        .replica
        .merge(&thread, &[bytes], &[Vec::<u8>::new()])
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err}");
    assert!(err.to_string().contains("nothing was merged"), "{err}");
    assert_eq!(ana.replica.post_view(&post).unwrap().likes, 0);
    assert!(ana.replica.heads(&thread).unwrap().is_empty());
    assert_eq!(ana.replica.unread_count().unwrap(), 0);
}

#[test]
fn garbage_change_bytes_are_refused_with_their_position() {
    let mut ana = profile("Ana", 1);
    let ben = profile("Ben", 2);
    let doc = DocId::User(ben.replica.user_id());
    let mut changes = ben.replica.changes(&doc, &[]).unwrap();
    changes.push(b"definitely not automerge".to_vec());
    let mut sigs = ben.replica.signatures_of(&doc, &changes).unwrap();
    sigs.push(Vec::new());
    let err = ana.replica.merge(&doc, &changes, &sigs).unwrap_err();
    assert_eq!(err.code(), "invalid_change");
    assert!(
        err.to_string().contains(&format!("#{}", changes.len() - 1)),
        "{err}"
    );
    assert!(
        ana.replica.heads(&doc).unwrap().is_empty(),
        "the good changes were not merged either"
    );
}

#[test]
fn changes_that_arrive_before_their_dependencies_wait_and_then_apply() {
    let mut ana = profile("Ana", 1);
    let mut ben = profile("Ben", 2);
    ana.replica.post("one", &[]).unwrap();
    ana.replica.post("two", &[]).unwrap();
    let doc = DocId::User(ana.replica.user_id());
    let changes = ana.replica.changes(&doc, &[]).unwrap();
    let sigs = ana.replica.signatures_of(&doc, &changes).unwrap();
    let (first, rest) = changes.split_first().unwrap();
    let outcome = ben.replica.merge(&doc, rest, &sigs[1..]).unwrap();
    assert_eq!((outcome.applied, outcome.waiting), (0, rest.len()));
    let outcome = ben
        .replica
        .merge(&doc, std::slice::from_ref(first), &sigs[..1])
        .unwrap();
    assert_eq!(outcome.applied, changes.len());
    assert_eq!(
        ben.replica.heads(&doc).unwrap(),
        ana.replica.heads(&doc).unwrap()
    );
}

#[test]
fn a_damaged_document_is_named_and_the_others_stay_readable() {
    let mut ana = profile("Ana", 1);
    let mut ben = profile("Ben", 2);
    let post = ana.replica.post("hello", &[]).unwrap();
    send(&ana.replica, &mut ben.replica);
    ben.replica.like(&post).unwrap();
    let ben_post = ben.replica.post("ben's own", &[]).unwrap();

    let thread = DocId::Thread(post.clone());
    let conn = ben.replica.store().conn();
    conn.execute(
        "DELETE FROM document_changes WHERE doc_id = ?1",
        [thread.to_string()],
    )
    .unwrap();
    conn.execute(
        "UPDATE documents SET snapshot = x'00ff00ff' WHERE doc_id = ?1",
        [thread.to_string()],
    )
    .unwrap();

    let err = ben.replica.unlike(&post).unwrap_err();
    assert_eq!(err.code(), "damaged_document");
    assert!(err.to_string().contains(&thread.to_string()), "{err}");

    // Everything else works: the feed, other documents, new posts.
    ben.replica.like(&ben_post).unwrap();
    assert_eq!(ben.replica.feed(None, 10).unwrap().posts.len(), 1);
    let report = ben.replica.reindex().unwrap();
    assert_eq!(report.damaged.len(), 1);
    assert_eq!(report.damaged[0].0, thread);
    assert_eq!(ben.replica.post_view(&ben_post).unwrap().likes, 1);
    assert_eq!(ben.replica.post_view(&post).unwrap().text, "hello");
}

#[test]
fn a_truncated_database_is_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut ana = Replica::create(dir.path(), "Ana", None, Env::deterministic(1, 0)).unwrap();
        for i in 0..300 {
            ana.replica_post(i);
        }
    }
    let db = dir.path().join("social-sync.db");
    let len = std::fs::metadata(&db).unwrap().len();
    assert!(
        len > 8192,
        "the database was checkpointed into the main file"
    );
    let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    let err = Replica::open(dir.path(), Env::deterministic(1, 0)).unwrap_err();
    assert_eq!(err.code(), "damaged_database");
    assert!(err.to_string().contains("social-sync.db"), "{err}");
}

trait PostN {
    fn replica_post(&mut self, i: usize);
}

impl PostN for Replica {
    fn replica_post(&mut self, i: usize) {
        self.post(
            &format!("post number {i} with some words to fill the page"),
            &[],
        )
        .unwrap();
    }
}

#[test]
fn reindex_rebuilds_the_same_index_from_documents_alone() {
    let mut ana = profile("Ana", 1);
    let mut ben = profile("Ben", 2);
    ben.replica.follow(ana.replica.user_id()).unwrap();
    for i in 0..10 {
        let p = ana.replica.post(&format!("post {i}"), &[]).unwrap();
        send(&ana.replica, &mut ben.replica);
        ben.replica.like(&p).unwrap();
        ben.replica.comment(&p, "nice").unwrap();
    }
    let before = ben.replica.feed(None, 100).unwrap();
    let conn = ben.replica.store().conn();
    conn.execute_batch(
        "DELETE FROM posts; DELETE FROM likes; DELETE FROM comments; DELETE FROM profiles;
         DELETE FROM timeline;",
    )
    .unwrap();
    assert!(ben.replica.feed(None, 100).unwrap().posts.is_empty());
    let report = ben.replica.reindex().unwrap();
    assert!(report.damaged.is_empty());
    assert_eq!(ben.replica.feed(None, 100).unwrap(), before);
    assert_eq!(ben.replica.search("post", 100).unwrap().len(), 10);
}

fn snapshot(r: &Replica) -> Vec<(DocId, Vec<automerge::ChangeHash>)> {
    r.documents()
        .unwrap()
        .into_iter()
        .map(|d| (d.clone(), r.heads(&d).unwrap()))
        .collect()
}

#[test]
fn export_and_import_carry_documents_and_images() {
    let mut ana = profile("Ana", 1);
    let mut ben = profile("Ben", 2);
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("dot.png");
    std::fs::write(&png, PNG).unwrap();
    let post = ana.replica.post("with a picture", &[png]).unwrap();
    ben.replica.follow(ana.replica.user_id()).unwrap();
    let stick = dir.path().join("stick");
    let summary = ben.replica.export(&stick).unwrap();
    assert_eq!(summary.documents, 1);

    let out = dir.path().join("ana-export");
    ana.replica.export(&out).unwrap();
    let imported = ben.replica.import(&out).unwrap();
    assert_eq!((imported.documents, imported.blobs), (1, 1));
    let feed = ben.replica.feed(None, 10).unwrap();
    assert_eq!(feed.posts[0].post_id, post);
    assert!(ben.replica.blob(&feed.posts[0].media[0]).unwrap().is_some());

    // Ana imports Ben's export: his follow notifies her once.
    let got = ana.replica.import(&stick).unwrap();
    assert_eq!(got.notifications.len(), 1);
    assert_eq!(ana.replica.import(&stick).unwrap().notifications.len(), 0);
    assert!(
        matches!(ana.replica.export(&stick), Err(Error::Export(_))),
        "refuses a non-empty folder"
    );
}

fn assert_import_refused(target: &mut Replica, folder: &Path, expect: &str) {
    let before = snapshot(target);
    let err = target.import(folder).unwrap_err();
    assert!(err.to_string().contains(expect), "{err}");
    assert_eq!(snapshot(target), before, "nothing changed");
}

#[test]
fn a_malformed_import_folder_is_refused_without_changing_anything() {
    let mut ana = profile("Ana", 1);
    let mut ben = profile("Ben", 2);
    let post = ana.replica.post("hello", &[]).unwrap();
    ana.replica.like(&post).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fresh = |name: &str| {
        let p = dir.path().join(name);
        ana.replica.export(&p).unwrap();
        p
    };

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_import_refused(&mut ben.replica, &empty, "no manifest.json");

    let bad_json = fresh("bad-json");
    std::fs::write(bad_json.join("manifest.json"), "{ not json").unwrap();
    assert_import_refused(
        &mut ben.replica,
        &bad_json,
        "not a valid Social Sync manifest",
    );

    let flipped = fresh("flipped");
    let doc = flipped.join("documents/000000.automerge");
    let mut bytes = std::fs::read(&doc).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&doc, bytes).unwrap();
    assert_import_refused(&mut ben.replica, &flipped, "does not match its checksum");

    let missing = fresh("missing");
    std::fs::remove_file(missing.join("documents/000001.automerge")).unwrap();
    assert_import_refused(&mut ben.replica, &missing, "cannot be read");

    let escape = fresh("escape");
    let manifest = std::fs::read_to_string(escape.join("manifest.json")).unwrap();
    std::fs::write(
        escape.join("manifest.json"),
        manifest.replace("documents/000000", "../../etc/passwd"),
    )
    .unwrap();
    assert_import_refused(&mut ben.replica, &escape, "outside the export folder");

    // Cara's document presented as Ana's: every change in it is by the wrong author.
    let cara = profile("Cara", 3);
    let forged = dir.path().join("forged");
    cara.replica.export(&forged).unwrap();
    let manifest = std::fs::read_to_string(forged.join("manifest.json")).unwrap();
    let manifest = manifest.replace(
        &format!("user/{}", cara.replica.user_id()),
        &format!("user/{}", ana.replica.user_id()),
    );
    std::fs::write(forged.join("manifest.json"), manifest).unwrap();
    assert_import_refused(&mut ben.replica, &forged, "only its owner may write");

    assert!(ben.replica.feed(None, 10).unwrap().posts.is_empty());
}

/// Rewrites one file of an export folder and its checksum in the manifest, so only the
/// content check can catch it.
fn replace_document(folder: &Path, file: &str, bytes: &[u8]) {
    use sha2::{Digest, Sha256};
    let path = folder.join(file);
    let old = data_encoding::HEXLOWER.encode(&Sha256::digest(std::fs::read(&path).unwrap()));
    let new = data_encoding::HEXLOWER.encode(&Sha256::digest(bytes));
    std::fs::write(&path, bytes).unwrap();
    let manifest = std::fs::read_to_string(folder.join("manifest.json")).unwrap();
    std::fs::write(folder.join("manifest.json"), manifest.replace(&old, &new)).unwrap();
}

/// Issue 9: an export folder is as hostile as the network. A whole (DEFLATE-compressed)
/// Automerge document inflates inside Automerge before any check; a compressed change
/// chunk likewise; an older version's folder holds such documents; an "image" of another
/// type is refused whatever the manifest says.
#[test]
fn a_hostile_import_folder_cannot_inflate_or_smuggle_anything() {
    let mut ana = profile("Ana", 1);
    let mut ben = profile("Ben", 2);
    ana.replica.post(&"a".repeat(4_000), &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fresh = |name: &str| {
        let p = dir.path().join(name);
        ana.replica.export(&p).unwrap();
        p
    };
    let uid = ana.replica.user_id();
    let doc = DocId::User(uid);
    let mut am =
        automerge::AutoCommit::load(&ana.replica.changes(&doc, &[]).unwrap().concat()).unwrap();

    let whole = fresh("whole-document");
    replace_document(&whole, "documents/000000.automerge", &am.save());
    assert_import_refused(&mut ben.replica, &whole, "is a chunk of type 0");

    let compressed = fresh("compressed-change");
    let mut changes = am.get_changes(&[]);
    let bytes: Vec<u8> = changes
        .iter_mut()
        .flat_map(|c| c.bytes().into_owned())
        .collect();
    replace_document(&compressed, "documents/000000.automerge", &bytes);
    assert_import_refused(&mut ben.replica, &compressed, "is a chunk of type 2");

    let old = fresh("version-2");
    let manifest = std::fs::read_to_string(old.join("manifest.json")).unwrap();
    std::fs::write(
        old.join("manifest.json"),
        manifest.replace("\"version\": 3", "\"version\": 2"),
    )
    .unwrap();
    assert_import_refused(&mut ben.replica, &old, "no longer reads");

    // Issue 11: the folder's changes must carry their author's signatures. Forged
    // signatures (checksums fixed up), and a post's text altered after it was signed.
    let forged = fresh("forged-signatures");
    let sigs = std::fs::read(forged.join("documents/000000.sig")).unwrap();
    replace_document(&forged, "documents/000000.sig", &vec![7u8; sigs.len()]);
    assert_import_refused(&mut ben.replica, &forged, "is not signed by");
    let altered = fresh("altered-text");
    let mut changes: Vec<automerge::Change> = ana
        .replica
        .changes(&doc, &[])
        .unwrap()
        .iter()
        .map(|b| automerge::Change::try_from(&b[..]).unwrap())
        .collect();
    let mut expanded = changes.last().unwrap().decode();
    for op in &mut expanded.operations {
        if let automerge::legacy::OpType::Put(automerge::ScalarValue::Str(text)) = &mut op.action
            && text.starts_with("aaa")
        {
            *text = "Ana never wrote this".into();
        }
    }
    let last = changes.len() - 1;
    changes[last] = automerge::Change::from(expanded);
    let bytes: Vec<u8> = changes
        .iter()
        .flat_map(|c| c.raw_bytes().to_vec())
        .collect();
    replace_document(&altered, "documents/000000.automerge", &bytes);
    assert_import_refused(&mut ben.replica, &altered, "is not signed by");

    // An HTML page listed as an image, checksum and all.
    let html = fresh("html");
    let page = b"<html><script>alert(1)</script></html>";
    let hash = social_sync_core::store::blobs::hash_of(page);
    std::fs::create_dir_all(html.join("blobs")).unwrap();
    std::fs::write(html.join(format!("blobs/{hash}")), page).unwrap();
    let manifest = std::fs::read_to_string(html.join("manifest.json")).unwrap();
    let manifest = manifest.replace(
        "\"blobs\": []",
        &format!("\"blobs\": [{{\"hash\": \"{hash}\", \"mime\": \"image/png\", \"file\": \"blobs/{hash}\"}}]"),
    );
    std::fs::write(html.join("manifest.json"), manifest).unwrap();
    assert_import_refused(&mut ben.replica, &html, "is not a PNG, JPEG, GIF or WebP");
    assert!(ben.replica.feed(None, 10).unwrap().posts.is_empty());
}

#[test]
fn images_from_the_relay_are_stored_only_as_allowed_types_within_the_limit() {
    use social_sync_core::replica::limits;
    use social_sync_core::store::blobs::hash_of;
    let mut ana = profile("Ana", 1);
    let html = b"<!DOCTYPE html><html><script>alert(1)</script></html>".to_vec();
    assert!(!ana.replica.store_blob(&hash_of(&html), &html).unwrap());
    assert_eq!(ana.replica.blob(&hash_of(&html)).unwrap(), None);

    let mut huge = PNG.to_vec();
    huge.resize(limits::IMAGE_BYTES as usize + 1, 0);
    assert!(!ana.replica.store_blob(&hash_of(&huge), &huge).unwrap());
    assert!(!ana.replica.store_blob(&hash_of(&html), PNG).unwrap());

    // Stored with the type its bytes show, whatever the relay said.
    assert!(ana.replica.store_blob(&hash_of(PNG), PNG).unwrap());
    let blob = ana.replica.blob(&hash_of(PNG)).unwrap().unwrap();
    assert_eq!(blob.mime, "image/png");
}

#[test]
fn a_name_with_invisible_characters_is_refused_with_the_character() {
    let mut ana = profile("Ana", 1);
    let err = ana
        .replica
        .set_profile(Some("An\u{200D}a"), None)
        .unwrap_err();
    assert_eq!(err.code(), "bad_name");
    assert!(err.to_string().contains("U+200D"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let err =
        Replica::create(dir.path(), "\u{202E}ana", None, Env::deterministic(2, 0)).unwrap_err();
    assert_eq!(err.code(), "bad_name");
}

#[test]
fn reactions_racing_a_delete_never_notify_and_are_reported_undelivered() {
    let mut ana = profile("Ana", 1);
    let mut ben = profile("Ben", 2);
    let early = ana.replica.post("liked before the delete", &[]).unwrap();
    let late = ana
        .replica
        .post("reacted to after the delete", &[])
        .unwrap();
    send(&ana.replica, &mut ben.replica);

    // A like raised before the delete disappears with the post, from the list and the count.
    ben.replica.like(&early).unwrap();
    assert_eq!(
        send(&ben.replica, &mut ana.replica),
        vec![NotificationKind::Like]
    );
    assert_eq!(ana.replica.unread_count().unwrap(), 1);
    // (The relay confirmed it: it left Ben's outbox.)
    let early_thread = DocId::Thread(early.clone());
    let heads = ben.replica.heads(&early_thread).unwrap();
    assert!(ben.replica.confirm_synced(&early_thread, &heads).unwrap());
    ana.replica.delete_post(&early).unwrap();
    assert!(ana.replica.notifications(false, 50).unwrap().is_empty());
    assert_eq!(ana.replica.unread_count().unwrap(), 0);

    // Ana deletes `late`; Ben, not knowing, likes and comments on it: no notification.
    ana.replica.delete_post(&late).unwrap();
    ben.replica.like(&late).unwrap();
    ben.replica.comment(&late, "nice").unwrap();
    assert!(
        send(&ben.replica, &mut ana.replica).is_empty(),
        "reactions to a deleted post never notify"
    );
    assert!(ana.replica.notifications(false, 50).unwrap().is_empty());
    for code in [
        ana.replica.thread(&late).unwrap_err().code(),
        ana.replica.delete_post(&late).unwrap_err().code(),
    ] {
        assert_eq!(code, "deleted_post");
    }

    // Ben learns of the delete: his waiting reactions leave the outbox, reported once.
    let waiting_thread = DocId::Thread(late.clone());
    assert!(
        ben.replica
            .outbox()
            .unwrap()
            .iter()
            .any(|(d, _)| *d == waiting_thread)
    );
    send(&ana.replica, &mut ben.replica);
    let undelivered = ben.replica.settle_deleted().unwrap();
    assert_eq!(undelivered.len(), 1);
    assert_eq!(undelivered[0].post_id, late);
    assert_eq!(undelivered[0].changes, 2);
    assert!(undelivered[0].to_string().contains("deleted the post"));
    assert!(
        !ben.replica
            .outbox()
            .unwrap()
            .iter()
            .any(|(d, _)| *d == waiting_thread),
        "never stuck in the outbox"
    );
    assert!(ben.replica.settle_deleted().unwrap().is_empty());

    // Now Ben is told "deleted", not "never received"; an unknown post still says unknown.
    for code in [
        ben.replica.like(&late).map(drop).unwrap_err().code(),
        ben.replica
            .comment(&late, "hello?")
            .map(drop)
            .unwrap_err()
            .code(),
        ben.replica.thread(&late).map(drop).unwrap_err().code(),
    ] {
        assert_eq!(code, "deleted_post");
    }
    let never = social_sync_core::PostId::new(ana.replica.user_id(), b"never-sent");
    assert_eq!(ben.replica.like(&never).unwrap_err().code(), "unknown_post");

    // Tombstones survive a rebuild of the index.
    ben.replica.reindex().unwrap();
    assert_eq!(
        ben.replica.thread(&late).unwrap_err().code(),
        "deleted_post"
    );
}
