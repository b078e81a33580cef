//! The real CLI binary against a real relay (the `sync-server` library serving on a free
//! loopback port in this test process): sync, watch, follow @NAME, online, a second device.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::relay::Relay;
use common::{cli, json};
use serde_json::Value;

#[test]
fn two_people_sync_watch_and_find_each_other_through_the_relay() {
    let relay = Relay::start();
    let root = tempfile::tempdir().unwrap();
    let (ana, ben) = (root.path().join("ana"), root.path().join("ben"));
    let ana_id = json(
        &ana,
        &["init", "--name", "Ana", "--relay", &relay.url(), "--json"],
    )["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    json(
        &ben,
        &["init", "--name", "Ben", "--relay", &relay.url(), "--json"],
    );
    let post = json(&ana, &["post", "hello relay", "--json"])["post_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let summary = json(&ana, &["sync", "--json"]);
    assert_eq!(summary["waiting"], 0);

    // Ben finds Ana by name and syncs her post.
    let followed = json(&ben, &["follow", "@ana", "--json"]);
    assert_eq!(followed["uid"], ana_id.as_str());
    assert_eq!(
        followed["name"], "ana",
        "the looked-up name beside the user id"
    );
    json(&ben, &["sync", "--json"]);
    let feed = json(&ben, &["feed", "--json"]);
    assert_eq!(feed[0]["post_id"], post.as_str());

    // Ben watches; Ana likes nothing of his but posts again: one feed_changed line arrives.
    let mut watch = Command::new(env!("CARGO_BIN_EXE_social-sync-cli"))
        .arg("--profile")
        .arg(&ben)
        .args(["watch", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (line_tx, line_rx) = mpsc::channel::<Value>();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("watch printed non-JSON ({e}): {line}"));
            if line_tx.send(v).is_err() {
                break;
            }
        }
    });
    let wait = |pred: &dyn Fn(&Value) -> bool| -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let v = line_rx
                .recv_timeout(left)
                .expect("watch printed nothing matching in 15 s");
            if pred(&v) {
                return v;
            }
        }
    };
    wait(&|v| v["event"] == "connection" && v["status"] == "online");

    // While Ben watches, Ana sees him online.
    let ben_id = json(&ben, &["whoami", "--json"])["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    json(&ana, &["follow", &ben_id, "--json"]);
    let online = json(&ana, &["online", "--json"]);
    assert_eq!(online.as_array().unwrap().len(), 1, "{online}");
    assert_eq!(
        online[0]["name"],
        Value::Null,
        "Ben's profile has not reached Ana yet"
    );

    json(&ana, &["post", "posted while Ben watches", "--json"]);
    json(&ana, &["sync", "--json"]);
    let changed = wait(&|v| v["event"] == "feed_changed");
    assert_eq!(changed["user"], ana_id.as_str());
    // Ana's follow of Ben reaches him as a notification.
    let note = wait(&|v| v["event"] == "notification");
    assert_eq!(note["notification"]["kind"], "follow");
    let _ = watch.kill();
    let _ = watch.wait();

    // Without a relay address, sync says what to do.
    let lonely = root.path().join("lonely");
    json(&lonely, &["init", "--name", "Lonely", "--json"]);
    let out = cli(&lonely, &["sync"]).out;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--relay ws://HOST:PORT"));
    let out = cli(&lonely, &["sync", "--relay", "ws://127.0.0.1:9"]).out;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the relay at ws://127.0.0.1:9")
    );
}

/// Issue 10: counts depended on who looked (Ben, who holds only the documents of people he
/// follows, saw 1 follower of Ana's where she saw 3). Online, every viewer gets the relay's
/// counts; offline, the output says they are this profile's own.
#[test]
fn follower_counts_are_the_same_for_everyone_online() {
    let relay = Relay::start();
    let root = tempfile::tempdir().unwrap();
    let init = |name: &str| {
        let dir = root.path().join(name);
        let uid = json(
            &dir,
            &["init", "--name", name, "--relay", &relay.url(), "--json"],
        )["uid"]
            .as_str()
            .unwrap()
            .to_owned();
        (dir, uid)
    };
    let (ana, ana_id) = init("Ana");
    let (ben, _) = init("Ben");
    for name in ["Cara", "Dan", "Eve"] {
        let (dir, _) = init(name);
        if name != "Eve" {
            json(&dir, &["follow", &ana_id, "--json"]);
            json(&dir, &["sync", "--json"]);
        }
    }
    json(&ben, &["follow", &ana_id, "--json"]);
    json(&ben, &["sync", "--json"]);
    json(&ana, &["sync", "--json"]);

    let seen_by_ana = json(&ana, &["profile", "--json"]);
    let seen_by_ben = json(&ben, &["profile", &ana_id, "--json"]);
    assert_eq!(seen_by_ana["followers"], 3, "{seen_by_ana}");
    assert_eq!(seen_by_ben["followers"], 3, "{seen_by_ben}");
    assert_eq!(seen_by_ben["counts_from"], "relay");
    // The lists too: Ana's followers as the relay knows them, Ben's follows likewise.
    let followers = json(&ana, &["followers", "--json"]);
    assert_eq!(followers.as_array().unwrap().len(), 3, "{followers}");
    let following = json(&ben, &["following", "--json"]);
    assert_eq!(following[0]["uid"], ana_id.as_str(), "{following}");

    // Offline: what Ben's profile holds, and said so.
    drop(relay);
    let offline = cli(&ben, &["profile", &ana_id]).out;
    let text = String::from_utf8_lossy(&offline.stdout);
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    assert!(text.contains("as this profile knows them"), "{text}");
}

#[test]
fn a_second_device_made_from_an_exported_key_syncs_the_user_through_the_relay() {
    let relay = Relay::start();
    let root = tempfile::tempdir().unwrap();
    let (laptop, phone) = (root.path().join("laptop"), root.path().join("phone"));
    let uid = json(
        &laptop,
        &["init", "--name", "Ana", "--relay", &relay.url(), "--json"],
    )["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    json(&laptop, &["post", "from the laptop", "--json"]);
    json(&laptop, &["sync", "--json"]);

    let pass = root.path().join("pass.txt");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let key = root.path().join("key.pem");
    let (key_s, pass_s) = (key.to_str().unwrap(), pass.to_str().unwrap());
    json(
        &laptop,
        &[
            "export-key",
            "--out",
            key_s,
            "--passphrase-file",
            pass_s,
            "--json",
        ],
    );
    let restored = json(
        &phone,
        &[
            "init",
            "--from-backup",
            key_s,
            "--passphrase-file",
            pass_s,
            "--relay",
            &relay.url(),
            "--json",
        ],
    );
    assert_eq!(restored["uid"], uid.as_str());

    // The phone receives the user's name and post, then posts as the same user.
    json(&phone, &["sync", "--json"]);
    assert_eq!(json(&phone, &["whoami", "--json"])["name"], "Ana");
    let feed = json(&phone, &["feed", "--json"]);
    assert_eq!(feed[0]["text"], "from the laptop");
    json(&phone, &["post", "from the phone", "--json"]);
    assert_eq!(json(&phone, &["sync", "--json"])["waiting"], 0);

    json(&laptop, &["sync", "--json"]);
    let feed = json(&laptop, &["feed", "--json"]);
    let texts: Vec<&str> = feed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["from the phone", "from the laptop"]);
}

/// Issue 10, item 2: likes and comments racing a delete.
#[test]
fn reactions_to_a_deleted_post_never_notify_and_the_reactor_is_told() {
    let relay = Relay::start();
    let root = tempfile::tempdir().unwrap();
    let (ana, ben) = (root.path().join("ana"), root.path().join("ben"));
    let ana_id = json(
        &ana,
        &["init", "--name", "Ana", "--relay", &relay.url(), "--json"],
    )["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    json(
        &ben,
        &["init", "--name", "Ben", "--relay", &relay.url(), "--json"],
    );
    let post_id = |out: Value| out["post_id"].as_str().unwrap().to_owned();
    let early = post_id(json(&ana, &["post", "liked, then deleted", "--json"]));
    let late = post_id(json(&ana, &["post", "deleted, then liked", "--json"]));
    json(&ana, &["sync", "--json"]);
    json(&ben, &["follow", &ana_id, "--json"]);
    json(&ben, &["sync", "--json"]);

    // A like raised before the delete: Ana is notified, then the delete takes it away.
    json(&ben, &["like", &early, "--json"]);
    json(&ben, &["sync", "--json"]);
    let summary = json(&ana, &["sync", "--json"]);
    let kinds = |notes: &Value| -> Vec<String> {
        let mut kinds: Vec<String> = notes
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["kind"].as_str().unwrap().to_owned())
            .collect();
        kinds.sort();
        kinds
    };
    assert_eq!(kinds(&summary["notifications"]), ["follow", "like"]);
    json(&ana, &["delete-post", &early, "--json"]);
    json(&ana, &["delete-post", &late, "--json"]);
    let notes = json(&ana, &["notifications", "--json"]);
    assert_eq!(
        kinds(&notes),
        ["follow"],
        "the like went with the post: {notes}"
    );
    json(&ana, &["sync", "--json"]);

    // Ben, not synced since, likes and comments on the deleted post, then syncs.
    json(&ben, &["like", &late, "--json"]);
    json(&ben, &["comment", &late, "still there?", "--json"]);
    let out = cli(&ben, &["sync", "--json"]).out;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let undelivered = summary["undelivered"].as_array().unwrap();
    assert_eq!(undelivered.len(), 1, "{summary}");
    assert_eq!(undelivered[0]["post_id"], late.as_str());
    assert_eq!(undelivered[0]["changes"], 2);
    assert_eq!(
        summary["waiting"], 0,
        "nothing stuck in the outbox: {summary}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "your like or comment on post {late} was not delivered: its author deleted the post"
        )),
        "{stderr}"
    );
    // A second sync has nothing more to report.
    let again = cli(&ben, &["sync"]).out;
    assert!(again.status.success());
    assert!(!String::from_utf8_lossy(&again.stdout).contains("Not delivered"));

    // The same race read by a person: the text output says it.
    let third = post_id(json(&ana, &["post", "third, deleted too", "--json"]));
    json(&ana, &["sync", "--json"]);
    json(&ben, &["sync", "--json"]);
    json(&ana, &["delete-post", &third, "--json"]);
    json(&ana, &["sync", "--json"]);
    json(&ben, &["like", &third, "--json"]);
    let out = cli(&ben, &["sync"]).out;
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "Not delivered: your like or comment on post {third} was not delivered: its author deleted the post (1 change dropped)"
        )),
        "{stdout}"
    );

    // Ana syncs: no notification, none listed.
    let summary = json(&ana, &["sync", "--json"]);
    assert_eq!(summary["notifications"], serde_json::json!([]), "{summary}");
    let notes = json(&ana, &["notifications", "--json"]);
    assert_eq!(
        kinds(&notes),
        ["follow"],
        "none for the deleted posts: {notes}"
    );
    assert!(
        notes
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["post_id"].is_null()),
        "{notes}"
    );

    // On the deleted post, thread, like and comment say it was deleted, for both of them.
    for (who, args) in [
        (&ben, vec!["thread", late.as_str()]),
        (&ben, vec!["like", late.as_str()]),
        (&ben, vec!["comment", late.as_str(), "hello?"]),
        (&ana, vec!["thread", late.as_str()]),
        (&ben, vec!["thread", early.as_str()]),
    ] {
        let out = cli(who, &args).out;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(
                "was deleted by its author: it can no longer be shown, liked or commented on"
            ),
            "{args:?}: {stderr}"
        );
    }
}
