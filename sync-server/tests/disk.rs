//! Issue 14: the relay's disk fills up, then turns read-only. Its data folder is a small
//! tmpfs mounted for the test (root only: elsewhere the test says it did not run, and why).
//! Writes are refused with a clear error while the disk cannot take them, the author's app
//! keeps the post in its outbox (nothing acknowledged is lost), the relay keeps serving,
//! and the post is taken and reaches the follower once the disk can take it again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)] // test code

mod common;

use std::process::Command;
use std::time::Duration;

use common::disk::SmallDisk;
use common::{Profile, Relay};

fn has_post(p: &Profile, post: &social_sync_protocol::PostId) -> bool {
    p.r()
        .feed(None, 50)
        .unwrap()
        .posts
        .iter()
        .any(|x| x.post_id == *post)
}

/// Syncs, returning what the relay refused (the sync itself may fail: the reason).
async fn try_sync(p: &Profile) -> String {
    match tokio::time::timeout(Duration::from_secs(60), p.engine.sync_once()).await {
        Ok(Ok(summary)) => summary.refusals.join("; "),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer within 60 s".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_then_read_only_disk_refuses_writes_loses_nothing_and_recovers() {
    let Some(disk) = SmallDisk::mount("8m") else {
        eprintln!(
            "NOT RUN: mounting a small tmpfs needs root (the CI and development machines run \
             this test as root)"
        );
        return;
    };
    let relay = Relay::spawn(&disk.path().join("relay"), "127.0.0.1:0", &[]);
    let ana = Profile::new("Ana", 1, &relay.url());
    let ben = Profile::new("Ben", 2, &relay.url());
    ben.r().follow(ana.uid).unwrap();
    let first = ana.r().post("before the disk filled", &[]).unwrap();
    ana.sync().await;
    ben.sync().await;
    assert!(has_post(&ben, &first));

    // The disk fills up.
    let filler = disk.fill();
    // A post long enough that SQLite must grow the file or its journal.
    let text = format!("while the disk is full {}", "words ".repeat(400));
    let post = ana.r().post(&text, &[]).unwrap();
    let said = try_sync(&ana).await;
    eprintln!("disk full: Ana was told: {said}");
    assert!(
        said.contains("nothing of it was kept"),
        "Ana is told her post was not kept: {said}"
    );
    assert!(
        ana.r().changes_waiting().unwrap() > 0,
        "the post stays in Ana's outbox"
    );
    assert!(
        common::http_get(relay.addr, "/healthz")
            .await
            .ends_with("ok\n"),
        "the relay still serves"
    );
    ben.sync().await;
    assert!(has_post(&ben, &first), "what was stored is served");
    assert!(!has_post(&ben, &post), "nothing unstored is passed on");

    // Space returns.
    std::fs::remove_file(filler).unwrap();
    let mut taken = false;
    for _ in 0..20 {
        let said = try_sync(&ana).await;
        if said.is_empty() && ana.r().changes_waiting().unwrap() == 0 {
            taken = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(taken, "the post is taken once the disk has room");
    ben.sync().await;
    assert!(has_post(&ben, &post), "and reaches Ben");

    // The disk turns read-only (Linux refuses that while the relay has its database open
    // for writing, so the relay is stopped first, as an operator's remount would need).
    let mut relay = relay;
    relay.terminate();
    disk.remount("ro");
    let out = Command::new(env!("CARGO_BIN_EXE_sync-server"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(disk.path().join("relay"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    eprintln!("read-only disk: the relay said: {}", said.trim());
    assert!(
        !out.status.success(),
        "a relay that cannot write does not start"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening on"),
        "and never says it listens"
    );
    assert!(
        said.contains(&disk.path().display().to_string()),
        "the error names the data folder: {said}"
    );
    disk.remount("rw");
    relay.start_again();
    let cara = Profile::new("Cara", 3, &relay.url());
    cara.r().follow(ana.uid).unwrap();
    cara.sync().await;
    assert!(
        has_post(&cara, &first) && has_post(&cara, &post),
        "everything taken before is served after the disk is writable again"
    );
}
