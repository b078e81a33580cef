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
