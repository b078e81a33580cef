//! The relay binary with its own certificate: `/healthz` and the WebSocket protocol over
//! TLS on the one port, a renewed certificate served without a restart (after SIGHUP, and
//! after the files change), a broken renewal that keeps the old certificate, a bad PEM at
//! start, plain HTTP sent to the TLS port, and stalled TLS handshakes held to the per-address
//! limit and the one handshake deadline.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::fs::File;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::tls::{Kind, TestCa, https_get};
use common::{Profile, Relay, http_get};

/// Waits (at most `patience`) until the relay serves the certificate `der`.
async fn until_served(relay: &Relay, ca: &TestCa, der: &[u8], patience: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < patience {
        if https_get(relay.addr, &ca.pem, "/healthz").await.served == der {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn mtime(path: &std::path::Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

fn hangup(relay: &Relay) {
    let status = Command::new("kill")
        .args(["-HUP", &relay.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn https_health_and_sync_over_wss_then_renewals_are_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Test CA");
    let first = ca.issue(dir.path(), "relay", Kind::Good, 1);
    let (cert, key) = (first.cert.to_str().unwrap(), first.key.to_str().unwrap());
    let relay = Relay::start(&["--tls-cert", cert, "--tls-key", key]);
    assert!(relay.url().starts_with("wss://"));

    let health = https_get(relay.addr, &ca.pem, "/healthz").await;
    assert!(
        health.response.starts_with("HTTP/1.1 200"),
        "{}",
        health.response
    );
    assert!(health.response.ends_with("ok\n"), "{}", health.response);
    assert_eq!(health.served, first.der);
    let metrics = https_get(relay.addr, &ca.pem, "/metrics").await.response;
    assert!(metrics.contains("sockets"), "{metrics}");

    // The WebSocket protocol on the same port, trusting the test CA.
    let ana = Profile::new("Ana", 1, &relay.url());
    let ana_engine = social_sync_core::SyncEngine::new(ana.replica.clone(), relay.url())
        .with_extra_root(ca.pem.clone());
    ana.r().post("over TLS", &[]).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(30), ana_engine.sync_once())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary.waiting, 0, "{summary:?}");

    // Plain HTTP to the TLS port is told to use TLS.
    let plain = http_get(relay.addr, "/healthz").await;
    assert!(plain.starts_with("HTTP/1.1 426"), "{plain}");
    assert!(plain.contains("speaks TLS: use wss://"), "{plain}");

    // Renewed on disk with the old modification times: only SIGHUP reloads it.
    let (cert_time, key_time) = (mtime(&first.cert), mtime(&first.key));
    let second = ca.issue(dir.path(), "relay", Kind::Good, 2);
    File::options()
        .write(true)
        .open(&second.cert)
        .unwrap()
        .set_modified(cert_time)
        .unwrap();
    File::options()
        .write(true)
        .open(&second.key)
        .unwrap()
        .set_modified(key_time)
        .unwrap();
    assert_eq!(
        https_get(relay.addr, &ca.pem, "/healthz").await.served,
        first.der
    );
    hangup(&relay);
    assert!(
        until_served(&relay, &ca, &second.der, Duration::from_secs(5)).await,
        "the certificate renewed before SIGHUP is served after it"
    );

    // A broken renewal keeps the certificate being served.
    std::fs::write(&second.cert, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    hangup(&relay);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = https_get(relay.addr, &ca.pem, "/healthz").await;
    assert_eq!(still.served, second.der);
    assert!(still.response.starts_with("HTTP/1.1 200"));

    // Renewed on disk (new modification times): the file watch picks it up, no signal.
    let third = ca.issue(dir.path(), "relay", Kind::Good, 3);
    assert!(
        until_served(&relay, &ca, &third.der, Duration::from_secs(8)).await,
        "the certificate renewed on disk is served within a few seconds"
    );
}

#[test]
fn a_bad_certificate_file_stops_the_relay_at_start_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Test CA");
    let pair = ca.issue(dir.path(), "relay", Kind::Good, 1);
    std::fs::write(&pair.cert, "hello").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sync-server"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .arg("--tls-cert")
        .arg(&pair.cert)
        .arg("--tls-key")
        .arg(&pair.key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "it never said it listens");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(pair.cert.to_str().unwrap()) && err.contains("--tls-cert"),
        "{err}"
    );

    let alone = Command::new(env!("CARGO_BIN_EXE_sync-server"))
        .args(["--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&pair.cert)
        .output()
        .unwrap();
    assert!(!alone.status.success());
    assert!(
        String::from_utf8_lossy(&alone.stderr).contains("--tls-key"),
        "both or neither"
    );
}

#[tokio::test]
async fn the_tls_handshake_comes_after_admission_and_within_the_one_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Test CA");
    let pair = ca.issue(dir.path(), "relay", Kind::Good, 1);
    let (cert, key) = (pair.cert.to_str().unwrap(), pair.key.to_str().unwrap());
    let relay = Relay::start(&[
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        "--handshake-timeout-secs",
        "1",
        "--max-connections-per-ip",
        "2",
    ]);
    // Two sockets start a TLS handshake and never finish it: they hold both slots...
    let start = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
        s.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
        stalled.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...so a third is closed at once, before any handshake.
    let mut third = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf))
        .await
        .expect("closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0, "nothing is answered in plain text on a TLS port");
    // The stalled handshakes end at the one deadline, and the address is served again.
    for mut s in stalled {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("closed by the deadline")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    let health = https_get(relay.addr, &ca.pem, "/healthz").await;
    assert!(health.response.ends_with("ok\n"), "{}", health.response);
}
