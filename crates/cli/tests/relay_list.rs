//! A list of relays (`--relay "ws://A, ws://B"`) with the real CLI binary: a relay that
//! cannot be reached is passed over at once for the next, by `sync` and by `watch`; the
//! list is saved and shown; a bad list is refused with the address at fault.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::relay::Relay;
use common::{Watch, cli, json};

/// A loopback address nothing listens on: bound, then let go.
fn dead_relay() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("ws://{addr}")
}

#[test]
fn a_list_whose_first_relay_is_dead_syncs_through_the_second() {
    let relay = Relay::start();
    let dead = dead_relay();
    let root = tempfile::tempdir().unwrap();
    let (ana, ben) = (root.path().join("ana"), root.path().join("ben"));
    let list = format!("{dead}, {}", relay.url());
    let ana_id = json(&ana, &["init", "--name", "Ana", "--relay", &list, "--json"])["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = json(&ana, &["whoami", "--json"]);
    assert_eq!(me["relays"], serde_json::json!([dead, relay.url()]));

    let post = json(&ana, &["post", "through the second relay", "--json"])["post_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    let summary = json(&ana, &["sync", "--json"]);
    assert_eq!(summary["relay"], relay.url().as_str(), "{summary}");
    assert_eq!(summary["waiting"], 0, "{summary}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "no backoff between the members of a list: {:?}",
        started.elapsed()
    );

    // Ben's list, space-separated, given to `sync`: saved once a relay answered.
    json(&ben, &["init", "--name", "Ben", "--json"]);
    json(&ben, &["follow", &ana_id, "--json"]);
    let spaced = format!("{dead} {}", relay.url());
    json(&ben, &["sync", "--relay", &spaced, "--json"]);
    let feed = json(&ben, &["feed", "--json"]);
    assert_eq!(feed[0]["post_id"], post.as_str(), "{feed}");
    assert_eq!(
        json(&ben, &["whoami", "--json"])["relays"],
        serde_json::json!([dead, relay.url()])
    );

    // A watch tells the dead relay it left and the one it is online with.
    let mut watch = Watch::start(&ben);
    watch.wait_for("offline from the dead relay", Duration::from_secs(5), |v| {
        v["event"] == "connection" && v["status"] == "offline" && v["relay"] == dead.as_str()
    });
    let online = watch.wait_for("online", Duration::from_secs(5), |v| {
        v["event"] == "connection" && v["status"] == "online"
    });
    assert_eq!(online["relay"], relay.url().as_str(), "{online}");
}

#[test]
fn a_list_of_dead_relays_names_each_and_a_bad_list_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let ana = root.path().join("ana");
    let (one, two) = (dead_relay(), dead_relay());
    let list = format!("{one},{two}");
    json(&ana, &["init", "--name", "Ana", "--relay", &list, "--json"]);
    let out = cli(&ana, &["sync"]);
    let told = out.stderr();
    assert!(!out.out.status.success());
    assert!(
        told.contains("none of the relays could be used")
            && told.contains(&format!("cannot reach the relay at {one}"))
            && told.contains(&format!("cannot reach the relay at {two}")),
        "{told}"
    );

    let bob = root.path().join("bob");
    cli(
        &bob,
        &["init", "--name", "Bob", "--relay", "ws://a:1, http://b:2"],
    )
    .fails_with("relay 2 of 2 in the list: 'http://b:2' is not a relay address");
    cli(
        &bob,
        &["init", "--name", "Bob", "--relay", "ws://a:80 ws://A"],
    )
    .fails_with("list each relay once");
    cli(&bob, &["init", "--name", "Bob", "--relay", " , "]).fails_with("names no relay");
    assert!(!bob.join("identity.pem").exists(), "nothing made");
}

#[test]
fn a_watch_moves_on_when_its_relay_says_it_is_shutting_down() {
    let (one, two) = (Relay::start(), Relay::start());
    let root = tempfile::tempdir().unwrap();
    let ana = root.path().join("ana");
    let list = format!("{} {}", one.url(), two.url());
    json(&ana, &["init", "--name", "Ana", "--relay", &list, "--json"]);
    let mut watch = Watch::start(&ana);
    let online = watch.wait_for("online", Duration::from_secs(5), |v| {
        v["event"] == "connection" && v["status"] == "online"
    });
    assert_eq!(online["relay"], one.url().as_str(), "{online}");

    let first = one.url();
    drop(one);
    let left = watch.wait_for(
        "offline from the first relay",
        Duration::from_secs(5),
        |v| v["event"] == "connection" && v["status"] == "offline",
    );
    assert_eq!(left["relay"], first.as_str(), "{left}");
    assert!(
        left["reason"].as_str().unwrap().contains("shutting_down"),
        "{left}"
    );
    let started = Instant::now();
    let moved = watch.wait_for("online on the second relay", Duration::from_secs(5), |v| {
        v["event"] == "connection" && v["status"] == "online"
    });
    assert_eq!(moved["relay"], two.url().as_str(), "{moved}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no backoff before the next relay of the list: {:?}",
        started.elapsed()
    );
}
