//! The real CLI binary against a real relay (the `sync-server` library serving on a free
//! loopback port in this test process): sync, watch, follow @NAME, online, a second device.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

struct RelayHandle {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _data: tempfile::TempDir,
}

impl RelayHandle {
    fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let config = sync_server::Config::with_data(data.path().join("relay"));
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut config = config;
                config.listen = "127.0.0.1:0".parse().unwrap();
                let listener = sync_server::bind(&config).await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                sync_server::serve(listener, config, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        Self {
            url: format!("ws://{addr}"),
            stop: Some(stop),
            thread: Some(thread),
            _data: data,
        }
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn cli(profile: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_social-sync-cli"))
        .arg("--profile")
        .arg(profile)
        .args(args)
        .output()
        .unwrap()
}

fn json(profile: &Path, args: &[&str]) -> Value {
    let out = cli(profile, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn two_people_sync_watch_and_find_each_other_through_the_relay() {
    let relay = RelayHandle::start();
    let root = tempfile::tempdir().unwrap();
    let (ana, ben) = (root.path().join("ana"), root.path().join("ben"));
    let ana_id = json(
        &ana,
        &["init", "--name", "Ana", "--relay", &relay.url, "--json"],
    )["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    json(
        &ben,
        &["init", "--name", "Ben", "--relay", &relay.url, "--json"],
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
    let out = cli(&lonely, &["sync"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--relay ws://HOST:PORT"));
    let out = cli(&lonely, &["sync", "--relay", "ws://127.0.0.1:9"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the relay at ws://127.0.0.1:9")
    );
}

/// Issue 10: counts depended on who looked (Ben, who holds only the documents of people he
/// follows, saw 1 follower of Ana's where she saw 3). Online, every viewer gets the relay's
/// counts; offline, the output says they are this profile's own.
#[test]
fn follower_counts_are_the_same_for_everyone_online() {
    let relay = RelayHandle::start();
    let root = tempfile::tempdir().unwrap();
    let init = |name: &str| {
        let dir = root.path().join(name);
        let uid = json(
            &dir,
            &["init", "--name", name, "--relay", &relay.url, "--json"],
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

    // Offline: what Ben's profile holds, and said so.
    drop(relay);
    let offline = cli(&ben, &["profile", &ana_id]);
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
    let relay = RelayHandle::start();
    let root = tempfile::tempdir().unwrap();
    let (laptop, phone) = (root.path().join("laptop"), root.path().join("phone"));
    let uid = json(
        &laptop,
        &["init", "--name", "Ana", "--relay", &relay.url, "--json"],
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
            &relay.url,
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
