//! Issue 14: crash safety of the app's store. The real CLI process is killed (SIGKILL, no
//! chance to clean up) in the middle of a sync that brings in 1,500 posts, of a sync of
//! 10,050 changes over 151 documents (each of which is compacted as it arrives), and of an
//! import of 1,500 posts, at several moments; after each kill the profile opens, what it
//! shows equals what its documents hold (the index rebuilt from the documents alone gives
//! the same feed), nothing it showed before is gone, and the interrupted work, run again,
//! completes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)] // test code: it prints what each kill left

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::relay::Relay;
use common::{cli, init};
use social_sync_core::{Env, Replica};

const POSTS: usize = 1500;

/// `POSTS` posts written into the profile at `dir` through the core library (fast: no
/// process per post).
fn write_posts(dir: &Path) {
    let mut r = Replica::open(dir, Env::deterministic(5, 1_700_000_000_000)).unwrap();
    for i in 0..POSTS {
        r.post(&format!("post number {i}, with some words to index"), &[])
            .unwrap();
    }
}

/// What the profile's feed shows of `author`: (post id, likes, comments) of every post,
/// newest first, page after page (read through the core library, as the app reads it).
fn feed(profile: &Path, author: &str) -> Vec<(String, u64, u64)> {
    let r = Replica::open(profile, Env::deterministic(6, 1_700_000_000_000)).unwrap();
    let mut shown = Vec::new();
    let mut after = None;
    loop {
        let page = r.feed(after.as_ref(), 500).unwrap();
        shown.extend(
            page.posts
                .iter()
                .filter(|p| p.author.to_string() == author)
                .map(|p| (p.post_id.to_string(), p.likes, p.comments)),
        );
        match page.next {
            Some(next) => after = Some(next),
            None => return shown,
        }
    }
}

/// Runs `args` on `profile` and kills it (SIGKILL) after `after`; true if it was still
/// running (the kill interrupted it).
fn kill_during(profile: &Path, args: &[&str], after: Duration) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_social-sync-cli"))
        .arg("--profile")
        .arg(profile)
        .args(args)
        .env_remove("SOCIAL_SYNC_PROFILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    running
}

/// The profile opens, and its index agrees with its documents: the feed shown now equals
/// the feed after rebuilding the index from the documents alone. Returns the feed.
fn consistent(profile: &Path, author: &str, what: &str) -> Vec<(String, u64, u64)> {
    let shown = feed(profile, author);
    cli(profile, &["reindex"]).ok();
    let rebuilt = feed(profile, author);
    assert_eq!(
        shown, rebuilt,
        "{what}: the index disagreed with the documents after the kill"
    );
    shown
}

#[test]
fn a_sync_killed_midway_leaves_a_profile_that_opens_agrees_and_completes() {
    let root = tempfile::tempdir().unwrap();
    let relay = Relay::start();
    let url = relay.url();
    let (ana, ana_uid) = init(root.path(), "Ana");
    write_posts(&ana);
    cli(&ana, &["sync", "--relay", &url]).ok();

    let mut interrupted = 0;
    for (n, ms) in [120u64, 180, 240, 300, 400].into_iter().enumerate() {
        let (ben, _) = init(root.path(), &format!("Ben{n}"));
        cli(&ben, &["follow", &ana_uid]).ok();
        let cut = kill_during(&ben, &["sync", "--relay", &url], Duration::from_millis(ms));
        interrupted += usize::from(cut);
        let after_kill = consistent(&ben, &ana_uid, &format!("sync killed after {ms} ms"));
        eprintln!(
            "sync killed after {ms} ms (still running: {cut}): {} of {POSTS} posts shown, index agrees",
            after_kill.len()
        );
        cli(&ben, &["sync", "--relay", &url]).ok();
        let done = consistent(&ben, &ana_uid, "sync run again");
        assert_eq!(
            done.len(),
            POSTS,
            "every post arrived once the sync ran again"
        );
        assert!(
            after_kill.iter().all(|p| done.contains(p)),
            "nothing stored before the kill is gone"
        );
    }
    assert!(
        interrupted > 0,
        "no kill landed during a sync: the test proved nothing"
    );
}

#[test]
fn an_import_killed_midway_leaves_a_profile_that_opens_agrees_and_completes() {
    let root = tempfile::tempdir().unwrap();
    let (ana, ana_uid) = init(root.path(), "Ana");
    write_posts(&ana);
    let stick = root.path().join("stick");
    cli(&ana, &["export", stick.to_str().unwrap()]).ok();

    let mut interrupted = 0;
    for (n, ms) in [60u64, 120, 180, 250].into_iter().enumerate() {
        let (ben, _) = init(root.path(), &format!("Ben{n}"));
        cli(&ben, &["follow", &ana_uid]).ok();
        let cut = kill_during(
            &ben,
            &["import", stick.to_str().unwrap()],
            Duration::from_millis(ms),
        );
        interrupted += usize::from(cut);
        let after_kill = consistent(&ben, &ana_uid, &format!("import killed after {ms} ms"));
        eprintln!(
            "import killed after {ms} ms (still running: {cut}): {} of {POSTS} posts shown, index agrees",
            after_kill.len()
        );
        assert!(
            after_kill.is_empty() || after_kill.len() == POSTS,
            "an import is all or nothing: {} posts after the kill",
            after_kill.len()
        );
        cli(&ben, &["import", stick.to_str().unwrap()]).ok();
        let done = consistent(&ben, &ana_uid, "import run again");
        assert_eq!(
            done.len(),
            POSTS,
            "every post is there once the import ran again"
        );
    }
    assert!(
        interrupted > 0,
        "no kill landed during an import: the test proved nothing"
    );
}

/// Posts in the many-documents sync, and comments on each (past the 64 change rows after
/// which a document is compacted into a snapshot: every thread is compacted as it
/// arrives, inside the transaction that stores it).
const THREADS: usize = 150;
const COMMENTS: usize = 66;

#[test]
fn a_sync_of_ten_thousand_changes_over_many_documents_killed_midway_loses_nothing() {
    let root = tempfile::tempdir().unwrap();
    let relay = Relay::start();
    let url = relay.url();
    let (ana, ana_uid) = init(root.path(), "Ana");
    {
        let mut r = Replica::open(&ana, Env::deterministic(5, 1_700_000_000_000)).unwrap();
        for i in 0..THREADS {
            let post = r.post(&format!("thread {i}"), &[]).unwrap();
            for c in 0..COMMENTS {
                r.comment(&post, &format!("comment {c} on thread {i}"))
                    .unwrap();
            }
        }
    }
    cli(&ana, &["sync", "--relay", &url]).ok();
    let changes = THREADS * (COMMENTS + 1);

    let mut interrupted = 0;
    for (n, ms) in [300u64, 600, 900, 1300].into_iter().enumerate() {
        let (ben, _) = init(root.path(), &format!("Ben{n}"));
        cli(&ben, &["follow", &ana_uid]).ok();
        let cut = kill_during(&ben, &["sync", "--relay", &url], Duration::from_millis(ms));
        interrupted += usize::from(cut);
        let after_kill = consistent(&ben, &ana_uid, &format!("sync killed after {ms} ms"));
        let comments: u64 = after_kill.iter().map(|p| p.2).sum();
        eprintln!(
            "sync of {changes} changes killed after {ms} ms (still running: {cut}): {} of {THREADS} posts and {comments} of {} comments shown, index agrees",
            after_kill.len(),
            THREADS * COMMENTS
        );
        cli(&ben, &["sync", "--relay", &url]).ok();
        let done = consistent(&ben, &ana_uid, "sync run again");
        assert_eq!(
            done.len(),
            THREADS,
            "every post arrived once the sync ran again"
        );
        assert!(
            done.iter().all(|p| p.2 == COMMENTS as u64),
            "every comment arrived once the sync ran again"
        );
        // What was shown before the kill is still there (a thread's count only grows).
        for (id, _, before) in &after_kill {
            let now = done.iter().find(|p| &p.0 == id).map(|p| p.2);
            assert!(
                now >= Some(*before),
                "post {id} lost comments: {before} then {now:?}"
            );
        }
        let compacted: i64 = rusqlite::Connection::open(ben.join("social-sync.db"))
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM documents WHERE doc_id LIKE 'thread/%' AND length(snapshot) > 0",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            compacted, THREADS as i64,
            "every thread was compacted as it arrived (the kills fell among compactions)"
        );
    }
    assert!(
        interrupted > 0,
        "no kill landed during the sync: the test proved nothing"
    );
}
