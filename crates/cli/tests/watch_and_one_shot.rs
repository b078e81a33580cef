//! The real CLI binary against a real relay (the `sync-server` library serving on a loopback
//! port in this test process): a running `watch` and one-shot commands on the same profile
//! share it (neither ends the other), two `sync` at once both succeed, and a `watch` whose
//! relay restarts comes back by itself.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Watch;
use serde_json::Value;

mod common;

use common::relay::Relay;

fn cli(profile: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_social-sync-cli"))
        .arg("--profile")
        .arg(profile)
        .args(args)
        .output()
        .unwrap()
}

fn parse(args: &[&str], out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{args:?} exited with {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn json(profile: &Path, args: &[&str]) -> Value {
    parse(args, &cli(profile, args))
}

/// Two profiles, Ana and Ben, on `relay`; Ana has synced one post. Returns their folders and
/// Ana's user id.
fn ana_and_ben(root: &Path, relay: &str) -> (PathBuf, PathBuf, String) {
    let (ana, ben) = (root.join("ana"), root.join("ben"));
    let ana_id = json(&ana, &["init", "--name", "Ana", "--relay", relay, "--json"])["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    json(&ben, &["init", "--name", "Ben", "--relay", relay, "--json"]);
    json(&ana, &["post", "hello from Ana", "--json"]);
    assert_eq!(json(&ana, &["sync", "--json"])["waiting"], 0);
    (ana, ben, ana_id)
}

#[test]
fn a_watch_keeps_running_while_sync_online_and_follow_run_on_its_profile() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::serve(data.path(), "127.0.0.1:0".parse().unwrap());
    let root = tempfile::tempdir().unwrap();
    let (ana, ben, ana_id) = ana_and_ben(root.path(), &relay.url());

    let mut watch = Watch::start(&ben);
    watch.online(Duration::from_secs(15));

    // One-shot commands on the watched profile, each exiting 0 with its JSON.
    let followed = json(&ben, &["follow", "@ana", "--json"]);
    assert_eq!(followed["uid"], ana_id.as_str());
    let summary = json(&ben, &["sync", "--json"]);
    assert_eq!(summary["waiting"], 0, "{summary}");
    let feed = json(&ben, &["feed", "--json"]);
    assert_eq!(feed[0]["text"], "hello from Ana", "{feed}");
    let online = json(&ben, &["online", "--json"]);
    assert!(online.is_array(), "{online}");
    // Twice more, quickly: none of them may end or replace the watch.
    for _ in 0..2 {
        json(&ben, &["sync", "--json"]);
        json(&ben, &["online", "--json"]);
    }

    std::thread::sleep(Duration::from_millis(500));
    assert!(watch.running(), "the watch ended: {:?}", watch.seen);
    watch.drain();
    assert!(
        !watch
            .seen
            .iter()
            .any(|v| v["event"] == "connection" && v["status"] == "offline"),
        "the watch lost its connection: {:?}",
        watch.seen
    );

    // And it still shows what another user does, live.
    json(&ana, &["post", "posted after Ben's commands", "--json"]);
    json(&ana, &["sync", "--json"]);
    let changed = watch.wait_for("feed_changed for Ana", Duration::from_secs(15), |v| {
        v["event"] == "feed_changed" && v["user"] == ana_id.as_str()
    });
    assert_eq!(changed["user"], ana_id.as_str());
    let feed = json(&ben, &["feed", "--json"]);
    assert!(
        feed.as_array()
            .unwrap()
            .iter()
            .any(|p| p["text"] == "posted after Ben's commands"),
        "{feed}"
    );

    // A notification another process on Ben's profile stores (an import of Ana's export
    // folder, in which she follows Ben; she never syncs it, so the relay cannot tell the
    // watch) is shown by the watch too, once.
    let ben_id = json(&ben, &["whoami", "--json"])["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    json(&ana, &["follow", &ben_id, "--json"]);
    let folder = root.path().join("ana-export");
    let folder = folder.to_str().unwrap();
    json(&ana, &["export", folder, "--json"]);
    json(&ben, &["import", folder, "--json"]);
    let note = watch.wait_for("follow notification", Duration::from_secs(15), |v| {
        v["event"] == "notification"
    });
    assert_eq!(note["notification"]["kind"], "follow", "{note}");
    assert_eq!(note["notification"]["actor"], ana_id.as_str(), "{note}");
    std::thread::sleep(Duration::from_millis(700));
    watch.drain();
    let shown = watch
        .seen
        .iter()
        .filter(|v| v["event"] == "notification")
        .count();
    assert_eq!(shown, 1, "shown once: {:?}", watch.seen);
    assert!(watch.running());
}

/// Issue 12 (no waiting on purpose): a post the CLI makes on a profile beside its running
/// `watch`, with no `sync`, is sent by the watch at once: it sees the other process's
/// commit through the database file (there is no timer looking at the outbox any more).
#[test]
fn a_post_made_beside_a_running_watch_goes_out_without_a_sync() {
    let relay = Relay::start();
    let root = tempfile::tempdir().unwrap();
    let (ana, ben, ana_id) = ana_and_ben(root.path(), &relay.url());
    json(&ben, &["follow", &ana_id, "--json"]);
    json(&ben, &["sync", "--json"]);

    let mut ana_watch = Watch::start(&ana);
    ana_watch.online(Duration::from_secs(15));
    let mut ben_watch = Watch::start(&ben);
    ben_watch.online(Duration::from_secs(15));

    json(&ana, &["post", "made beside Ana's watch", "--json"]);
    ben_watch.wait_for("Ana's post, live", Duration::from_secs(15), |v| {
        v["event"] == "feed_changed" && v["user"] == ana_id.as_str()
    });
    let feed = json(&ben, &["feed", "--json"]);
    assert!(
        feed.as_array()
            .unwrap()
            .iter()
            .any(|p| p["text"] == "made beside Ana's watch"),
        "{feed}"
    );
    assert!(ana_watch.running() && ben_watch.running());
}

#[test]
fn two_syncs_at_once_on_one_profile_both_succeed() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::serve(data.path(), "127.0.0.1:0".parse().unwrap());
    let root = tempfile::tempdir().unwrap();
    let (ana, ben, _) = ana_and_ben(root.path(), &relay.url());
    json(&ben, &["follow", "@ana", "--json"]);
    for round in 0..3 {
        for i in 0..20 {
            json(
                &ana,
                &["post", &format!("round {round} post {i}"), "--json"],
            );
        }
        let spawn = |profile: &Path| {
            Command::new(env!("CARGO_BIN_EXE_social-sync-cli"))
                .arg("--profile")
                .arg(profile)
                .args(["sync", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let syncs = [spawn(&ana), spawn(&ana), spawn(&ben), spawn(&ben)];
        for child in syncs {
            let out = child.wait_with_output().unwrap();
            let summary = parse(&["sync", "--json"], &out);
            assert!(summary["documents"].as_u64().unwrap() >= 1, "{summary}");
        }
        assert_eq!(json(&ana, &["sync", "--json"])["waiting"], 0);
        json(&ben, &["sync", "--json"]);
        let feed = json(&ben, &["feed", "--limit", "100", "--json"]);
        assert_eq!(
            feed.as_array().unwrap().len(),
            1 + 20 * (round + 1),
            "Ben holds every post of Ana"
        );
    }
}

#[test]
fn a_watch_comes_back_when_its_relay_restarts() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::serve(data.path(), "127.0.0.1:0".parse().unwrap());
    let addr = relay.addr;
    let root = tempfile::tempdir().unwrap();
    let (ana, ben, ana_id) = ana_and_ben(root.path(), &relay.url());
    json(&ben, &["follow", "@ana", "--json"]);
    json(&ben, &["sync", "--json"]);

    let mut watch = Watch::start(&ben);
    watch.online(Duration::from_secs(15));

    drop(relay);
    watch.wait_for("connection offline", Duration::from_secs(15), |v| {
        v["event"] == "connection" && v["status"] == "offline"
    });
    assert!(watch.running(), "the watch ended with its relay");

    let relay = Relay::serve(data.path(), addr);
    watch.online(Duration::from_secs(30));
    assert!(watch.running());

    json(&ana, &["post", "after the restart", "--json"]);
    json(&ana, &["sync", "--json"]);
    watch.wait_for("feed_changed for Ana", Duration::from_secs(15), |v| {
        v["event"] == "feed_changed" && v["user"] == ana_id.as_str()
    });
    drop(relay);
}

#[test]
fn a_sync_cut_on_every_try_tries_again_then_says_how_often() {
    use futures_util::StreamExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    // A "relay" that takes the WebSocket and the hello, then drops the connection.
    let tries = Arc::new(AtomicUsize::new(0));
    let (addr_tx, addr_rx) = mpsc::channel();
    let counted = tries.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    continue;
                };
                let _hello = ws.next().await;
                counted.fetch_add(1, Ordering::SeqCst);
                drop(ws);
            }
        });
    });
    let addr: SocketAddr = addr_rx.recv().unwrap();
    let root = tempfile::tempdir().unwrap();
    let ana = root.path().join("ana");
    json(&ana, &["init", "--name", "Ana", "--json"]);
    let started = Instant::now();
    let out = cli(
        &ana,
        &["sync", "--relay", &format!("ws://{addr}"), "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(tries.load(Ordering::SeqCst), 4, "{stderr}");
    assert!(stderr.contains("failed 4 times in a row"), "{stderr}");
    assert!(!stderr.contains("will be retried"), "{stderr}");
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "with backoff between the tries: {:?}",
        started.elapsed()
    );
}
