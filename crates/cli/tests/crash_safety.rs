//! Issue 14: crash safety of the app's store. The real CLI process is killed (SIGKILL, no
//! chance to clean up) in the middle of a sync that brings in 1,500 posts and in the
//! middle of an import of 1,500 posts, at several moments; after each kill the profile
//! opens, what it shows equals what its documents hold (the index rebuilt from the
//! documents alone gives the same feed), nothing it showed before is gone, and the
//! interrupted work, run again, completes.

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

/// What the profile's feed shows of `author`: (post id, likes) of every post, newest
/// first, page after page (read through the core library, as the app reads it).
fn feed(profile: &Path, author: &str) -> Vec<(String, u64)> {
    let r = Replica::open(profile, Env::deterministic(6, 1_700_000_000_000)).unwrap();
    let mut shown = Vec::new();
    let mut after = None;
    loop {
        let page = r.feed(after.as_ref(), 500).unwrap();
        shown.extend(
            page.posts
                .iter()
                .filter(|p| p.author.to_string() == author)
                .map(|p| (p.post_id.to_string(), p.likes)),
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
fn consistent(profile: &Path, author: &str, what: &str) -> Vec<(String, u64)> {
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
