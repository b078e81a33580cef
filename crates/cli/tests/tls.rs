//! The real CLI binary against a real relay with its own certificate (made in the test):
//! syncing over `wss://` with the test CA trusted through `SSL_CERT_FILE` or `--ca-cert`
//! (saved for later commands), and each TLS failure told apart in one sentence that says
//! what to do.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::path::Path;

use common::relay::Relay;
use common::tls::{Kind, TestCa};
use common::{Run, cli, cli_with, json};

/// The CLI on `profile` with `SSL_CERT_FILE` set to `ca`.
fn trusting(ca: &Path, profile: &Path, args: &[&str]) -> Run {
    cli_with(profile, args, "", &[("SSL_CERT_FILE", ca)])
}

#[test]
fn syncs_over_wss_trusting_the_ca_from_ssl_cert_file_or_ca_cert() {
    let root = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Test CA");
    let ca_file = ca.write(root.path());
    let pair = ca.issue(root.path(), "relay", Kind::Good, 1);
    let relay = Relay::start_tls(&pair.cert, &pair.key);
    let url = relay.url();
    assert!(url.starts_with("wss://127.0.0.1:"));

    // Ana trusts the CA through the environment, as with a system-wide private CA.
    let ana = root.path().join("ana");
    let ana_id = json(&ana, &["init", "--name", "Ana", "--relay", &url, "--json"])["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    json(&ana, &["post", "hello over TLS", "--json"]);
    let sync = trusting(&ca_file, &ana, &["sync", "--json"]).json();
    assert_eq!(sync["waiting"], 0, "{sync}");

    // Ben is given the CA with --ca-cert once; later commands keep trusting it.
    let ben = root.path().join("ben");
    json(&ben, &["init", "--name", "Ben", "--json"]);
    let ca_arg = ca_file.to_str().unwrap();
    json(
        &ben,
        &["sync", "--relay", &url, "--ca-cert", ca_arg, "--json"],
    );
    json(&ben, &["follow", &ana_id, "--json"]);
    json(&ben, &["sync", "--json"]);
    let feed = json(&ben, &["feed", "--json"]);
    let texts: Vec<_> = feed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(texts.iter().any(|t| t == "hello over TLS"), "{feed}");

    // Without the CA, the same relay is not trusted, and the error says what to do.
    let cleo = root.path().join("cleo");
    json(&cleo, &["init", "--name", "Cleo", "--json"]);
    cli(&cleo, &["sync", "--relay", &url]).fails_with("does not trust");
    let told = cli(&cleo, &["sync", "--relay", &url]).stderr();
    assert!(told.contains("--ca-cert"), "{told}");

    // A --ca-cert that is not a certificate is refused before connecting.
    std::fs::write(root.path().join("junk.pem"), "junk").unwrap();
    cli(
        &cleo,
        &[
            "sync",
            "--relay",
            &url,
            "--ca-cert",
            root.path().join("junk.pem").to_str().unwrap(),
        ],
    )
    .fails_with("cannot use");
}

#[test]
fn each_tls_failure_has_its_own_sentence() {
    let root = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Test CA");
    let ca_file = ca.write(root.path());
    let profile = root.path().join("ana");
    json(&profile, &["init", "--name", "Ana", "--json"]);
    let sync = |url: &str| trusting(&ca_file, &profile, &["sync", "--relay", url]);

    let stranger = TestCa::new("Someone else's CA");
    let untrusted = stranger.issue(root.path(), "untrusted", Kind::Good, 2);
    let relay = Relay::start_tls(&untrusted.cert, &untrusted.key);
    sync(&relay.url()).fails_with("a certificate this machine does not trust (unknown issuer)");

    let wrong = ca.issue(root.path(), "wrong", Kind::WrongName, 3);
    let relay = Relay::start_tls(&wrong.cert, &wrong.key);
    sync(&relay.url()).fails_with("a certificate for another host name");

    let expired = ca.issue(root.path(), "expired", Kind::Expired, 4);
    let relay = Relay::start_tls(&expired.cert, &expired.key);
    sync(&relay.url()).fails_with("an expired certificate");

    // ws:// to the TLS port, and wss:// to a plain port: each says which scheme to use.
    let good = ca.issue(root.path(), "good", Kind::Good, 5);
    let tls = Relay::start_tls(&good.cert, &good.key);
    let plain_url = format!("ws://{}", tls.addr);
    sync(&plain_url).fails_with(&format!(
        "speaks TLS on this port: use wss://{} instead",
        tls.addr
    ));
    let plain = Relay::start();
    let tls_url = format!("wss://{}", plain.addr);
    sync(&tls_url).fails_with(&format!(
        "does not speak TLS on this port: use ws://{} instead",
        plain.addr
    ));
}
