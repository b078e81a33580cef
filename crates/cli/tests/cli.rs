//! Runs the real `social-sync-cli` binary on temporary profiles, the way a script would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed step is a failed test

mod common;

use std::process::Command;

use common::{Run, carry, cli, init};

#[test]
fn init_and_whoami_print_the_user_id_and_name() {
    let root = tempfile::tempdir().unwrap();
    let (dir, uid) = init(root.path(), "Ana");
    let me = cli(&dir, &["whoami", "--json"]).json();
    assert_eq!(
        me,
        serde_json::json!({"uid": uid, "name": "Ana", "relays": []})
    );
    assert_eq!(uid.len(), 52);
    cli(&dir, &["init", "--name", "Again"]).fails_with("already holds a profile");
}

#[test]
fn two_people_exchange_posts_likes_comments_and_follows() {
    let root = tempfile::tempdir().unwrap();
    let (ana, ana_id) = init(root.path(), "Ana");
    let (ben, ben_id) = init(root.path(), "Ben");

    let post = cli(&ana, &["post", "Sunset at the pier", "--json"]).json()["post_id"]
        .as_str()
        .unwrap()
        .to_owned();
    carry(root.path(), &ana, &ben, "stick1");

    cli(&ben, &["follow", &ana_id, "--json"]).ok();
    let liked = cli(&ben, &["like", &post, "--json"]).json();
    assert_eq!(liked["likes"], 1);
    assert_eq!(liked["liked_by_me"], true);
    let comment = cli(&ben, &["comment", &post, "Gorgeous light", "--json"]).json()["comment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        comment.starts_with(&ben_id),
        "a comment id starts with its author"
    );

    let feed = cli(&ben, &["feed", "--json"]).json();
    let item = &feed[0];
    for field in [
        "post_id",
        "author",
        "author_name",
        "text",
        "created_at",
        "likes",
        "liked_by_me",
        "comments",
    ] {
        assert!(item.get(field).is_some(), "feed item lacks {field}: {item}");
    }
    assert_eq!(item["author"], ana_id.as_str());
    assert_eq!(item["author_name"], "Ana");
    assert_eq!(
        (item["likes"].as_u64(), item["comments"].as_u64()),
        (Some(1), Some(1))
    );

    let imported = carry(root.path(), &ben, &ana, "stick2");
    assert_eq!(imported["notifications"].as_array().unwrap().len(), 3);

    let notes = cli(&ana, &["notifications", "--json"]).json();
    let mut kinds: Vec<&str> = notes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(kinds, vec!["comment", "follow", "like"]);
    for n in notes.as_array().unwrap() {
        assert_eq!(n["actor"], ben_id.as_str());
        assert_eq!(n["actor_name"], "Ben");
        assert_eq!(n["read"], false);
        for field in [
            "id",
            "kind",
            "actor",
            "actor_name",
            "post_id",
            "created_at",
            "read",
        ] {
            assert!(n.get(field).is_some(), "notification lacks {field}: {n}");
        }
    }

    // Importing the same folder again notifies nothing new.
    let again = carry(root.path(), &ben, &ana, "stick3");
    assert_eq!(again["notifications"].as_array().unwrap().len(), 0);
    assert_eq!(
        cli(&ana, &["notifications", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let first = notes[0]["id"].as_str().unwrap();
    cli(&ana, &["mark-read", first, "--json"]).ok();
    assert_eq!(
        cli(&ana, &["notifications", "--unread", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        cli(&ana, &["mark-read", "--all", "--json"]).json()["marked"],
        2
    );
    assert_eq!(
        cli(&ana, &["notifications", "--unread", "--json"]).json(),
        serde_json::json!([])
    );

    let thread = cli(&ana, &["thread", &post, "--json"]).json();
    assert_eq!(thread["post"]["post_id"], post.as_str());
    let c = &thread["comments"][0];
    assert_eq!(c["comment_id"], comment.as_str());
    assert_eq!(c["author"], ben_id.as_str());
    assert_eq!(c["author_name"], "Ben");
    assert_eq!(c["text"], "Gorgeous light");
    assert!(c["created_at"].as_i64().unwrap() > 0);
}

#[test]
fn search_finds_posts_and_feed_pages_with_after() {
    let root = tempfile::tempdir().unwrap();
    let (ana, ana_id) = init(root.path(), "Ana");
    for text in ["red kite over the hill", "blue heron", "red squirrel"] {
        cli(&ana, &["post", text]).ok();
    }
    let found = cli(&ana, &["search", "red", "--json"]).json();
    assert_eq!(found.as_array().unwrap().len(), 2);
    assert_eq!(found[0]["author"], ana_id.as_str());
    // People read the author with the start of the id: a look-alike name cannot pass.
    let out = cli(&ana, &["search", "red"]).ok().out.stdout;
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains(&format!("Ana ({}): red", &ana_id[..8])),
        "{text}"
    );
    let page1 = cli(&ana, &["feed", "--limit", "2", "--json"]).json();
    assert_eq!(page1.as_array().unwrap().len(), 2);
    let last = page1[1]["post_id"].as_str().unwrap();
    let page2 = cli(&ana, &["feed", "--limit", "2", "--after", last, "--json"]).json();
    assert_eq!(page2.as_array().unwrap().len(), 1);
    assert_eq!(page2[0]["text"], "red kite over the hill", "oldest last");
}

#[test]
fn bad_input_gets_one_clear_sentence_and_a_non_zero_exit() {
    let root = tempfile::tempdir().unwrap();
    let (ana, ana_id) = init(root.path(), "Ana");
    let missing_post = format!("{ana_id}-aaaaaaaaaaaaaaaa");
    cli(&ana, &["like", &missing_post, "--json"]).fails_with(&missing_post);
    cli(&ana, &["follow", &ana_id]).fails_with("cannot follow yourself");
    cli(&root.path().join("nobody"), &["feed"]).fails_with("init --name");
    let txt = root.path().join("notes.txt");
    std::fs::write(&txt, "hi").unwrap();
    cli(&ana, &["post", "x", "--image", txt.to_str().unwrap()])
        .fails_with("not a PNG, JPEG, GIF or WebP");
    cli(&ana, &["post", ""]).fails_with("the post is empty");
    cli(&ana, &["mark-read"]).fails_with("--all");
    cli(&ana, &["mark-read", "nope"]).fails_with("no notification nope");
    cli(&ana, &["init", "--name", "X", "--relay", "http://x"]).fails_with("not a relay address");
    // No --profile at all.
    let out = Command::new(env!("CARGO_BIN_EXE_social-sync-cli"))
        .args(["feed"])
        .env_remove("SOCIAL_SYNC_PROFILE")
        .output()
        .unwrap();
    Run { out }.fails_with("--profile DIR");
}

/// Issue 10, "rough edges": what a new user tripped over, each now one clear sentence.
#[test]
fn rough_edges_a_new_user_tripped_over() {
    let root = tempfile::tempdir().unwrap();
    let (ana, _) = init(root.path(), "Ana");

    // One wording for every length error.
    cli(&ana, &["post", "   "]).fails_with("the post is empty: write something first");
    let long = "x".repeat(5_001);
    cli(&ana, &["post", &long]).fails_with("the post is 5001 characters; at most 5000 are allowed");
    let post = cli(&ana, &["post", "hi", "--json"]).json()["post_id"]
        .as_str()
        .unwrap()
        .to_owned();
    cli(&ana, &["comment", &post, " "]).fails_with("the comment is empty: write something first");

    // Long text from a file or standard input (an argument this long is too long for a
    // command line); `-` is standard input, not the text "-".
    let file = root.path().join("long.txt");
    std::fs::write(&file, format!("{}\n", "y".repeat(4_000))).unwrap();
    let id = cli(&ana, &["post", "--file", file.to_str().unwrap(), "--json"]).json()["post_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let thread = cli(&ana, &["thread", &id, "--json"]).json();
    assert_eq!(thread["post"]["text"].as_str().unwrap().len(), 4_000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_social-sync-cli"))
        .arg("--profile")
        .arg(&ana)
        .args(["comment", &post, "-", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"from a pipe\n")
            .unwrap();
    }
    assert!(child.wait_with_output().unwrap().status.success());
    let thread = cli(&ana, &["thread", &post, "--json"]).json();
    assert_eq!(thread["comments"][0]["text"], "from a pipe");
    std::fs::write(&file, "z".repeat(2 << 20)).unwrap();
    cli(&ana, &["post", "--file", file.to_str().unwrap()]).fails_with("more than 1048576 bytes");

    // A page larger than the largest is refused, not silently cut to 500.
    let out = cli(&ana, &["feed", "--limit", "2000"]);
    assert!(!out.out.status.success());
    assert!(out.stderr().contains("1..=500"), "{}", out.stderr());

    // A profile path that is a file: said, for open and for init alike.
    let file = root.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    cli(&file, &["feed"]).fails_with("is a file, not a profile folder");
    cli(&file, &["init", "--name", "X"]).fails_with("is a file, not a profile folder");

    // A relay that never answered is not saved over the profile's relay.
    cli(&ana, &["sync", "--relay", "ws://127.0.0.1:9"]).fails_with("cannot reach the relay");
    cli(&ana, &["sync"]).fails_with("no relay is set for this profile");
}

#[test]
fn a_malformed_import_folder_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (ana, _) = init(root.path(), "Ana");
    let (ben, _) = init(root.path(), "Ben");
    cli(&ana, &["post", "hello"]).ok();
    let stick = root.path().join("stick");
    cli(&ana, &["export", stick.to_str().unwrap()]).ok();
    std::fs::write(stick.join("documents/000000.automerge"), b"garbage").unwrap();
    let before = cli(&ben, &["search", "hello", "--json"]).json();
    cli(&ben, &["import", stick.to_str().unwrap()]).fails_with("does not match its checksum");
    assert_eq!(cli(&ben, &["search", "hello", "--json"]).json(), before);
}

#[test]
fn a_damaged_database_is_named() {
    let root = tempfile::tempdir().unwrap();
    let (ana, _) = init(root.path(), "Ana");
    let db = ana.join("social-sync.db");
    let _ = std::fs::remove_file(ana.join("social-sync.db-wal"));
    let _ = std::fs::remove_file(ana.join("social-sync.db-shm"));
    std::fs::write(&db, vec![0x42u8; 8192]).unwrap();
    cli(&ana, &["feed"]).fails_with("social-sync.db is damaged");
}
