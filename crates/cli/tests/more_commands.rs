//! The commands added for issue 10 (block, mute, following/followers, key export and
//! import, image, notification kinds), run as the real binary on temporary profiles.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed step is a failed test

mod common;

use std::path::Path;

use common::{carry, cli, cli_in, init};
use serde_json::json;

/// A real 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

fn post(dir: &Path, text: &str) -> String {
    cli(dir, &["post", text, "--json"]).json()["post_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn block_unblock_and_blocked_list_the_blocked_users() {
    let root = tempfile::tempdir().unwrap();
    let (ana, ana_id) = init(root.path(), "Ana");
    let (ben, ben_id) = init(root.path(), "Ben");
    carry(root.path(), &ben, &ana, "stick");
    cli(&ana, &["follow", &ben_id]).ok();

    let blocked = cli(&ana, &["block", &ben_id, "--json"]).json();
    assert_eq!(blocked, json!({"uid": ben_id, "blocked": true}));
    assert_eq!(
        cli(&ana, &["blocked", "--json"]).json(),
        json!([{"uid": ben_id, "name": "Ben"}])
    );
    // Blocking unfollows.
    assert_eq!(cli(&ana, &["following", "--json"]).json(), json!([]));

    let unblocked = cli(&ana, &["unblock", &ben_id, "--json"]).json();
    assert_eq!(unblocked, json!({"uid": ben_id, "blocked": false}));
    assert_eq!(cli(&ana, &["blocked", "--json"]).json(), json!([]));
    let text = String::from_utf8(cli(&ana, &["blocked"]).ok().out.stdout).unwrap();
    assert_eq!(text, "You blocked nobody.\n");

    cli(&ana, &["block", &ana_id]).fails_with("you cannot block yourself");
    cli(&ana, &["block", "not-a-user"]).fails_with("not-a-user");
    let bad = cli(&ana, &["block", "not-a-user"]);
    assert_eq!(bad.out.status.code(), Some(2), "a malformed command line");
}

#[test]
fn mute_and_unmute_a_post() {
    let root = tempfile::tempdir().unwrap();
    let (ana, _) = init(root.path(), "Ana");
    let (ben, _) = init(root.path(), "Ben");
    let id = post(&ana, "Quiet, please");
    carry(root.path(), &ana, &ben, "stick1");

    let muted = cli(&ana, &["mute", &id, "--json"]).json();
    assert_eq!(muted, json!({"post_id": id, "muted": true}));
    assert_eq!(cli(&ana, &["thread", &id, "--json"]).json()["muted"], true);

    // A like on a muted post does not notify.
    cli(&ben, &["like", &id]).ok();
    carry(root.path(), &ben, &ana, "stick2");
    assert_eq!(cli(&ana, &["notifications", "--json"]).json(), json!([]));

    let unmuted = cli(&ana, &["unmute", &id, "--json"]).json();
    assert_eq!(unmuted, json!({"post_id": id, "muted": false}));
    assert_eq!(cli(&ana, &["thread", &id, "--json"]).json()["muted"], false);

    let missing = id.replace(|c: char| c.is_ascii_digit(), "7");
    cli(&ana, &["mute", &missing]).fails_with("is not in this profile");
}

#[test]
fn following_and_followers_list_what_this_profile_knows() {
    let root = tempfile::tempdir().unwrap();
    let (ana, ana_id) = init(root.path(), "Ana");
    let (ben, ben_id) = init(root.path(), "Ben");
    assert_eq!(cli(&ana, &["following", "--json"]).json(), json!([]));
    assert_eq!(cli(&ben, &["followers", "--json"]).json(), json!([]));

    carry(root.path(), &ben, &ana, "stick1");
    cli(&ana, &["follow", &ben_id]).ok();
    assert_eq!(
        cli(&ana, &["following", "--json"]).json(),
        json!([{"uid": ben_id, "name": "Ben"}])
    );

    // Ben learns of the follow once Ana's documents reach him.
    assert_eq!(cli(&ben, &["followers", "--json"]).json(), json!([]));
    carry(root.path(), &ana, &ben, "stick2");
    assert_eq!(
        cli(&ben, &["followers", "--json"]).json(),
        json!([{"uid": ana_id, "name": "Ana"}])
    );
    let text = String::from_utf8(cli(&ben, &["followers"]).ok().out.stdout).unwrap();
    assert!(text.starts_with(&format!("Ana ({ana_id})\n")), "{text}");
    assert!(
        text.contains("as this profile knows them"),
        "no relay: said so: {text}"
    );

    // A blocked follower is left out.
    cli(&ben, &["block", &ana_id]).ok();
    assert_eq!(cli(&ben, &["followers", "--json"]).json(), json!([]));
}

#[test]
fn a_key_exported_and_imported_makes_a_second_device_of_the_same_user() {
    let root = tempfile::tempdir().unwrap();
    let (ana, ana_id) = init(root.path(), "Ana");
    let key = root.path().join("ana-key.pem");
    let key_s = key.to_str().unwrap();

    // From standard input.
    let exported = cli_in(
        &ana,
        &["export-key", "--out", key_s, "--json"],
        "correct horse\n",
    )
    .json();
    assert_eq!(exported, json!({"uid": ana_id, "path": key_s}));
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(
        pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{pem}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only the owner may read the key");
    }
    cli_in(&ana, &["export-key", "--out", key_s], "correct horse\n").fails_with("already exists");
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        pem,
        "not overwritten"
    );
    let short = root.path().join("short.pem");
    cli_in(
        &ana,
        &["export-key", "--out", short.to_str().unwrap()],
        "short\n",
    )
    .fails_with("passphrase");
    assert!(!short.exists());
    cli_in(&ana, &["export-key", "--out", short.to_str().unwrap()], "")
        .fails_with("cannot read the passphrase from standard input: its first line is empty");

    // On a second profile folder, from a passphrase file.
    let phone = root.path().join("phone");
    let wrong = root.path().join("wrong.txt");
    std::fs::write(&wrong, "battery staple\n").unwrap();
    cli(
        &phone,
        &[
            "init",
            "--from-backup",
            key_s,
            "--passphrase-file",
            wrong.to_str().unwrap(),
        ],
    )
    .fails_with("passphrase");
    assert!(!phone.exists(), "a wrong passphrase leaves nothing behind");

    let right = root.path().join("pass.txt");
    std::fs::write(&right, "correct horse\n").unwrap();
    let restored = cli(
        &phone,
        &[
            "init",
            "--from-backup",
            key_s,
            "--passphrase-file",
            right.to_str().unwrap(),
            "--json",
        ],
    )
    .json();
    assert_eq!(restored["uid"], ana_id.as_str());
    assert_eq!(restored["restored"], true);
    assert_eq!(
        cli(&phone, &["whoami", "--json"]).json()["uid"],
        ana_id.as_str()
    );

    // The second device posts as the same user; the first sees it as its own.
    let id = post(&phone, "From my phone");
    assert!(id.starts_with(&ana_id), "a post id starts with its author");
    carry(root.path(), &phone, &ana, "stick");
    let feed = cli(&ana, &["feed", "--json"]).json();
    assert_eq!(feed[0]["text"], "From my phone");
    assert_eq!(feed[0]["author"], ana_id.as_str());

    cli(
        &phone,
        &[
            "init",
            "--from-backup",
            key_s,
            "--passphrase-file",
            right.to_str().unwrap(),
        ],
    )
    .fails_with("already holds a profile");
    let nothing = root.path().join("nothing.pem");
    cli(
        &root.path().join("other"),
        &["init", "--from-backup", nothing.to_str().unwrap()],
    )
    .fails_with("cannot read the key backup");
    cli(&root.path().join("other"), &["init"]).fails_with("--name");
}

#[test]
fn image_saves_an_image_to_a_new_file() {
    let root = tempfile::tempdir().unwrap();
    let (ana, _) = init(root.path(), "Ana");
    let png = root.path().join("dot.png");
    std::fs::write(&png, PNG).unwrap();
    cli(&ana, &["post", "A dot", "--image", png.to_str().unwrap()]).ok();
    let feed = cli(&ana, &["feed", "--json"]).json();
    let hash = feed[0]["media"][0].as_str().unwrap().to_owned();

    let out = root.path().join("saved.png");
    let out_s = out.to_str().unwrap();
    let saved = cli(&ana, &["image", &hash, "--out", out_s, "--json"]).json();
    assert_eq!(
        saved,
        json!({"hash": hash, "mime": "image/png", "bytes": PNG.len(), "path": out_s})
    );
    assert_eq!(std::fs::read(&out).unwrap(), PNG);

    std::fs::write(&out, b"keep me").unwrap();
    cli(&ana, &["image", &hash, "--out", out_s]).fails_with("already exists");
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");

    let other = "0".repeat(hash.len());
    let elsewhere = root.path().join("x.png");
    cli(
        &ana,
        &["image", &other, "--out", elsewhere.to_str().unwrap()],
    )
    .fails_with("is not in this profile");
    cli(&ana, &["image", "zz", "--out", elsewhere.to_str().unwrap()]).fails_with("zz");
    assert!(!elsewhere.exists());
}

#[test]
fn notifications_filter_by_kind() {
    let root = tempfile::tempdir().unwrap();
    let (ana, ana_id) = init(root.path(), "Ana");
    let (ben, _) = init(root.path(), "Ben");
    let id = post(&ana, "Hello");
    carry(root.path(), &ana, &ben, "stick1");
    cli(&ben, &["follow", &ana_id]).ok();
    cli(&ben, &["like", &id]).ok();
    cli(&ben, &["comment", &id, "Hi"]).ok();
    carry(root.path(), &ben, &ana, "stick2");

    let kinds = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["notifications", "--json"];
        all.extend_from_slice(args);
        let list = cli(&ana, &all).json();
        let mut kinds: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["kind"].as_str().unwrap().to_owned())
            .collect();
        kinds.sort();
        kinds
    };
    assert_eq!(kinds(&[]), ["comment", "follow", "like"]);
    assert_eq!(kinds(&["--kind", "like"]), ["like"]);
    assert_eq!(kinds(&["--kind", "comment"]), ["comment"]);
    assert_eq!(
        kinds(&["--kind", "like", "--kind", "follow"]),
        ["follow", "like"]
    );
    cli(&ana, &["mark-read", "--all"]).ok();
    assert!(kinds(&["--unread", "--kind", "like"]).is_empty());

    cli(&ana, &["notifications", "--kind", "poke"]).fails_with("poke");
}
