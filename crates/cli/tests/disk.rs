//! Issue 14: a profile's disk fills up, then turns read-only. The profile folder is a small
//! tmpfs mounted for the test (root only: elsewhere the test says it did not run, and why).
//! A post is refused with a clear error while the disk cannot take it, nothing stored
//! before is lost, and posting works again once the disk can take it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)] // test code

mod common;
#[path = "../../../sync-server/tests/common/disk.rs"]
mod disk;

use common::{cli, init};
use disk::SmallDisk;
use social_sync_core::{Env, Replica};

/// The texts of the profile's own posts.
fn own_posts(profile: &std::path::Path, uid: &str) -> Vec<String> {
    let r = Replica::open(profile, Env::deterministic(3, 1_700_000_000_000)).unwrap();
    r.posts_by(uid.parse().unwrap(), 100)
        .unwrap()
        .into_iter()
        .map(|p| p.text)
        .collect()
}

#[test]
fn a_full_then_read_only_disk_refuses_posts_clearly_and_loses_nothing() {
    let Some(disk) = SmallDisk::mount("4m") else {
        eprintln!(
            "NOT RUN: mounting a small tmpfs needs root (the CI and development machines run \
             this test as root)"
        );
        return;
    };
    let (ana, uid) = init(disk.path(), "Ana");
    cli(&ana, &["post", "before the disk filled"]).ok();

    let filler = disk.fill();
    let long = format!("while the disk is full {}", "words ".repeat(2000));
    let refused = cli(&ana, &["post", &long]);
    let said = refused.stderr();
    eprintln!("disk full: the CLI said: {}", said.trim());
    assert!(!refused.out.status.success(), "the post is refused");
    assert!(
        said.contains("full") || said.contains("space"),
        "and the user is told the disk is full: {said}"
    );
    std::fs::remove_file(filler).unwrap();
    assert_eq!(
        own_posts(&ana, &uid),
        ["before the disk filled"],
        "what was stored is all there, and nothing half-written"
    );
    cli(&ana, &["post", "after space returned"]).ok();

    disk.remount("ro");
    let refused = cli(&ana, &["post", "while the disk is read-only"]);
    let said = refused.stderr();
    eprintln!("read-only disk: the CLI said: {}", said.trim());
    assert!(!refused.out.status.success(), "the post is refused");
    assert!(
        said.contains("read-only") || said.contains("readonly") || said.contains("writ"),
        "and the user is told the disk cannot be written: {said}"
    );
    disk.remount("rw");
    cli(&ana, &["post", "writable again"]).ok();
    let mut texts = own_posts(&ana, &uid);
    texts.sort();
    assert_eq!(
        texts,
        [
            "after space returned",
            "before the disk filled",
            "writable again"
        ]
    );
}

/// The disk fills while the app is open (a running `watch`): what the relay sends cannot
/// be stored. The watch says so (its connection drops with the reason, in words that name
/// the disk), keeps running, loses nothing it had, and once there is room it stores what
/// it missed and shows it.
#[test]
fn a_disk_that_fills_while_the_app_runs_is_said_and_caught_up_after() {
    use std::time::Duration;

    use common::relay::Relay;
    use common::{Watch, json};

    let Some(disk) = SmallDisk::mount("8m") else {
        eprintln!(
            "NOT RUN: mounting a small tmpfs needs root (the CI and development machines run \
             this test as root)"
        );
        return;
    };
    let relay = Relay::start();
    let url = relay.url();
    let elsewhere = tempfile::tempdir().unwrap();
    let with_relay = |dir: std::path::PathBuf, name: &str| {
        let me = json(&dir, &["init", "--name", name, "--relay", &url, "--json"]);
        (dir, me["uid"].as_str().unwrap().to_owned())
    };
    let (ana, ana_uid) = with_relay(elsewhere.path().join("Ana"), "Ana");
    let (ben, _) = with_relay(disk.path().join("Ben"), "Ben");
    cli(&ben, &["follow", &ana_uid]).ok();
    cli(&ana, &["post", "before the disk filled"]).ok();
    cli(&ana, &["sync"]).ok();
    let mut watch = Watch::start(&ben);
    watch.online(Duration::from_secs(15));
    watch.wait_for("Ana's first post", Duration::from_secs(15), |v| {
        v["event"] == "feed_changed"
    });

    let filler = disk.fill();
    // Posts that do not compress (Automerge deflates long text), more than the room the
    // database's files still have.
    let posts: Vec<String> = (0..8)
        .map(|i| {
            (0..1000)
                .map(|k| format!("{:x}", (i * 7919 + k * 104_729) % 1_000_003))
                .collect::<Vec<_>>()
                .join(" ")[..4900]
                .to_owned()
        })
        .collect();
    for text in &posts {
        cli(&ana, &["post", text]).ok();
    }
    cli(&ana, &["sync"]).ok();
    let dropped = watch.wait_for("the reason it cannot store", Duration::from_secs(15), |v| {
        v["event"] == "connection" && v["reason"].is_string()
    });
    let reason = dropped["reason"].as_str().unwrap().to_owned();
    eprintln!("disk full under a running watch: it said {dropped}");
    assert!(
        reason.contains("full") || reason.contains("space"),
        "the watch names the full disk: {reason}"
    );
    assert!(watch.running(), "the watch keeps running");

    std::fs::remove_file(filler).unwrap();
    watch.wait_for(
        "Ana's post once there is room",
        Duration::from_secs(30),
        |v| v["event"] == "feed_changed" && v["user"] == ana_uid.as_str(),
    );
    let feed = json(&ben, &["feed", "--json"]);
    let texts: Vec<&str> = feed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["text"].as_str())
        .collect();
    assert!(
        texts.contains(&"before the disk filled")
            && posts.iter().all(|p| texts.contains(&p.as_str())),
        "Ben has every post: {} of {}",
        texts.len(),
        posts.len() + 1
    );
}
