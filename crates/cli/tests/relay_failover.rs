//! Two relay nodes (the real `sync-server` binary, two processes) sharing one private
//! PostgreSQL: a `watch` on node A moves to node B when A is killed (SIGKILL), and each
//! notification is shown, and stored, exactly once across the move.
//!
//! Needs PostgreSQL's server binaries (as the relay's own PostgreSQL tests do). The relay
//! binary is built by `cargo build -p sync-server` on first use (a no-op when it is up to
//! date), or taken from `SYNC_SERVER_BIN` when set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
#[path = "../../../sync-server/tests/common/pg.rs"]
#[allow(dead_code, unreachable_pub, missing_docs)]
mod pg;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::{Watch, json};
use serde_json::Value;

/// The `sync-server` binary, built once per test process.
fn relay_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(bin) = std::env::var_os("SYNC_SERVER_BIN") {
            return PathBuf::from(bin);
        }
        // This test is target/<profile>/deps/<name>; the relay goes to target/<profile>.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap();
        let target = profile_dir.parent().unwrap();
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        // Without the variables cargo set for this test (the package's own): they would
        // make the relay's build differ from a plain `cargo build`, and redo it each time.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CARGO_") && name != "CARGO_HOME" {
                build.env_remove(name);
            }
        }
        build
            .args([
                "build",
                "--quiet",
                "-p",
                "sync-server",
                "--bin",
                "sync-server",
            ])
            .env("CARGO_TARGET_DIR", target)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().unwrap();
        assert!(status.success(), "cargo build -p sync-server failed");
        profile_dir.join("sync-server")
    })
}

/// One relay node: a `sync-server` process over the shared PostgreSQL store.
struct Node {
    child: Child,
    addr: SocketAddr,
    _data: tempfile::TempDir,
}

impl Node {
    fn start(store: &str) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(relay_binary())
            .args(["--listen", "127.0.0.1:0", "--log", "warn", "--store", store])
            .arg("--data")
            .arg(data.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the relay said: {line}"))
            .parse()
            .unwrap();
        Self {
            child,
            addr,
            _data: data,
        }
    }

    fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// SIGKILL: no goodbye to its clients, no chance to clean up.
    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn id(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap().to_owned()
}

/// The notifications `watch` printed for `post` of `kind`.
fn shown(watch: &Watch, kind: &str, post: &str) -> usize {
    watch
        .seen
        .iter()
        .filter(|v| {
            v["event"] == "notification"
                && v["notification"]["kind"] == kind
                && v["notification"]["post_id"] == post
        })
        .count()
}

#[test]
fn a_watch_moves_to_the_other_node_when_its_node_is_killed_and_nothing_is_shown_twice() {
    let pg = pg::Postgres::start();
    let store = pg.fresh_db();
    let mut a = Node::start(&store);
    let b = Node::start(&store);
    let root = tempfile::tempdir().unwrap();
    let (ana, ben) = (root.path().join("ana"), root.path().join("ben"));
    let list = format!("{}, {}", a.url(), b.url());
    let ana_id = id(
        &json(&ana, &["init", "--name", "Ana", "--relay", &list, "--json"]),
        "uid",
    );
    let first = id(&json(&ana, &["post", "first", "--json"]), "post_id");
    let second = id(&json(&ana, &["post", "second", "--json"]), "post_id");
    assert_eq!(json(&ana, &["sync", "--json"])["relay"], a.url().as_str());
    json(
        &ben,
        &["init", "--name", "Ben", "--relay", &a.url(), "--json"],
    );
    json(&ben, &["follow", &ana_id, "--json"]);
    json(&ben, &["sync", "--json"]);

    let mut watch = Watch::start(&ana);
    let online = watch.wait_for("online on node A", Duration::from_secs(10), |v| {
        v["event"] == "connection" && v["status"] == "online"
    });
    assert_eq!(online["relay"], a.url().as_str(), "{online}");

    // Before the kill: Ben's like through node A reaches Ana live.
    json(&ben, &["like", &first, "--json"]);
    json(&ben, &["sync", "--json"]);
    watch.wait_for("the first like", Duration::from_secs(10), |v| {
        v["event"] == "notification" && v["notification"]["post_id"] == first.as_str()
    });

    a.kill9();
    let left = watch.wait_for("offline from node A", Duration::from_secs(10), |v| {
        v["event"] == "connection" && v["status"] == "offline"
    });
    assert_eq!(left["relay"], a.url().as_str(), "{left}");
    let moved = watch.wait_for("online on node B", Duration::from_secs(10), |v| {
        v["event"] == "connection" && v["status"] == "online"
    });
    assert_eq!(moved["relay"], b.url().as_str(), "{moved}");

    // After the kill: Ben likes the second post and comments on the first, through B.
    json(&ben, &["like", &second, "--json"]);
    json(&ben, &["comment", &first, "after the move", "--json"]);
    let synced = json(&ben, &["sync", "--relay", &b.url(), "--json"]);
    assert_eq!(synced["waiting"], 0, "{synced}");
    // Both arrive, in either order.
    for (kind, post) in [("like", &second), ("comment", &first)] {
        if shown(&watch, kind, post) == 0 {
            watch.wait_for(kind, Duration::from_secs(10), |v| {
                v["event"] == "notification"
                    && v["notification"]["kind"] == kind
                    && v["notification"]["post_id"] == post.as_str()
            });
        }
    }
    // Anything repeated by the move (a catch-up sent again by B) would be in by now: the
    // relay sends a connection's inbox before its live pushes. Wait a little longer.
    std::thread::sleep(Duration::from_millis(500));
    watch.drain();
    assert!(watch.running());
    assert_eq!(shown(&watch, "like", &first), 1, "{:#?}", watch.seen);
    assert_eq!(shown(&watch, "like", &second), 1, "{:#?}", watch.seen);
    assert_eq!(shown(&watch, "comment", &first), 1, "{:#?}", watch.seen);
    let follows = watch
        .seen
        .iter()
        .filter(|v| v["notification"]["kind"] == "follow");
    assert_eq!(follows.count(), 1, "{:#?}", watch.seen);

    // The profile holds each notification once.
    let stored = json(&ana, &["notifications", "--json"]);
    let stored = stored.as_array().unwrap();
    let kinds: Vec<(String, String)> = stored
        .iter()
        .map(|n| {
            (
                id(n, "kind"),
                n["post_id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(stored.len(), 4, "{stored:#?}");
    for expected in [
        ("follow".to_owned(), String::new()),
        ("like".to_owned(), first.clone()),
        ("like".to_owned(), second.clone()),
        ("comment".to_owned(), first.clone()),
    ] {
        assert!(kinds.contains(&expected), "{expected:?} in {kinds:?}");
    }
}
