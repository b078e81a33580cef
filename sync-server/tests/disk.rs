//! Issue 14: the relay's disk fills up, then turns read-only; and the disk of the
//! PostgreSQL a cluster's nodes share fills up. Data folders are small tmpfs mounted for
//! the tests (root only: elsewhere a test says it did not run, and why).
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
use common::pg::Postgres;
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

/// Text that does not compress (Automerge deflates long columns): every post takes room.
fn noise(seed: usize) -> String {
    (0..300)
        .map(|k| format!("{:x}", (seed * 7919 + k * 104_729) % 1_000_003))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The disk under PostgreSQL fills up while a relay writes to it. Writes PostgreSQL cannot
/// make are refused (or PostgreSQL stops, as it does when it cannot write its log): every
/// post the relay acknowledged is kept, the refused one stays in its author's outbox, and
/// once there is room again (and PostgreSQL is started again if it had stopped, as an
/// operator would) it is taken and reaches the follower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_on_a_full_disk_refuses_writes_loses_nothing_and_recovers() {
    let Some(disk) = SmallDisk::mount("160m") else {
        eprintln!(
            "NOT RUN: mounting a small tmpfs needs root (the CI and development machines run \
             this test as root)"
        );
        return;
    };
    let pg = Postgres::start_in(disk.path());
    let db = pg.fresh_db();
    let relay = Relay::start(&["--store", &db]);
    let ana = Profile::new("Ana", 1, &relay.url());
    let ben = Profile::new("Ben", 2, &relay.url());
    ben.r().follow(ana.uid).unwrap();
    let first = ana.r().post("before the disk filled", &[]).unwrap();
    ana.sync().await;
    ben.sync().await;
    assert!(has_post(&ben, &first));

    let filler = disk.fill();
    // PostgreSQL may still have room in the pages and log segments it holds: Ana posts
    // until a post is not taken.
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..400 {
        let post = ana.r().post(&noise(i), &[]).unwrap();
        let said = try_sync(&ana).await;
        if ana.r().changes_waiting().unwrap() > 0 {
            refused = Some((post, said));
            break;
        }
        acknowledged.push(post);
    }
    let (held_back, said) = refused.expect("PostgreSQL on a full disk took 400 more posts");
    let stopped = !pg.is_running();
    eprintln!(
        "PostgreSQL's disk full: {} more posts taken, then Ana was told: {said} (PostgreSQL stopped: {stopped})",
        acknowledged.len()
    );
    assert!(!said.is_empty(), "Ana is told why her post was not taken");

    // Room again; PostgreSQL started again if it had stopped.
    std::fs::remove_file(filler).unwrap();
    if stopped {
        pg.start_again();
    }
    let mut taken = false;
    for _ in 0..40 {
        try_sync(&ana).await;
        if ana.r().changes_waiting().unwrap() == 0 {
            taken = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(taken, "the post is taken once PostgreSQL has room");
    ben.sync().await;
    for post in std::iter::once(&first)
        .chain(&acknowledged)
        .chain([&held_back])
    {
        assert!(
            has_post(&ben, post),
            "every acknowledged post, and the one held back, reaches Ben"
        );
    }
}
