//! Issue 11 against the real relay binary: a login is bound to the relay it was made for
//! (a hostile relay that forwards its challenge to this one cannot log in here as the
//! user), and a relay store from before signatures serves its old changes only once their
//! author has handed in signatures for them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use social_sync_core::SyncError;
use social_sync_core::sync_engine::Link;
use social_sync_protocol::{ClientMessage, ErrorCode, ServerMessage, wire};
use tokio_tungstenite::tungstenite::{Bytes, Message};

use common::{Profile, Raw, Relay};

/// A hostile relay: it passes every frame of one client on to `real` and back, so the
/// client's login (made for this relay's address) reaches the real relay.
async fn forwarding_relay(listener: tokio::net::TcpListener, real: String) {
    let (stream, _) = listener.accept().await.unwrap();
    let mut client = tokio_tungstenite::accept_async(stream).await.unwrap();
    let mut upstream = Raw::connect(&real).await;
    loop {
        tokio::select! {
            Some(Ok(frame)) = client.next() => {
                let sent = match frame {
                    Message::Binary(b) => upstream.ws.send(Message::Binary(b)).await.is_ok(),
                    _ => true,
                };
                if !sent {
                    return;
                }
            }
            Some(Ok(frame)) = upstream.ws.next() => {
                let sent = match frame {
                    Message::Binary(b) => client.send(Message::Binary(b)).await.is_ok(),
                    Message::Close(_) => false,
                    _ => true,
                };
                if !sent {
                    return;
                }
            }
            else => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_forwarded_by_another_relay_is_refused() {
    let relay = Relay::start(&[]);
    let ana = Profile::new("Ana", 1, &relay.url());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hostile = format!("ws://{}", listener.local_addr().unwrap());
    tokio::spawn(forwarding_relay(listener, relay.url()));

    // Ana's real client dials the hostile relay; its challenge comes from the real one.
    let (identity, device) = {
        let r = ana.r();
        (r.identity().clone(), r.device())
    };
    let refused = Link::connect(&hostile, &identity, &device).await;
    match refused {
        Err(SyncError::Refused { code, message }) => {
            assert_eq!(code, ErrorCode::BadSignature);
            assert!(message.contains(&hostile.replace("ws://", "")), "{message}");
        }
        Err(other) => panic!("expected a refusal naming the relay, got {other}"),
        Ok(_) => panic!("a login made for another relay was taken"),
    }
    // Dialled directly, the same client logs in.
    Link::connect(&relay.url(), &identity, &device)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_url_is_accepted_and_a_malformed_one_stops_the_relay() {
    // A proxy in front of the relay: the relay answers to the proxy's address once its
    // operator says so.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = format!("ws://{}", listener.local_addr().unwrap());
    let relay = Relay::start(&["--public-url", &front]);
    tokio::spawn(forwarding_relay(listener, relay.url()));
    let ana = Profile::new("Ana", 1, &front);
    ana.r().post("through a proxy", &[]).unwrap();
    let summary = ana.sync().await;
    assert!(summary.refusals.is_empty(), "{:?}", summary.refusals);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sync-server"))
        .args(["--listen", "127.0.0.1:0", "--public-url", "http://nope"])
        .arg("--data")
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--public-url") && stderr.contains("http://nope"),
        "{stderr}"
    );
}

/// Forgets every signature, as a relay store and a profile from before signatures had none.
fn forget_signatures(db: &std::path::Path, settings: bool) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute("DELETE FROM change_signatures", []).unwrap();
    if settings {
        conn.execute("DELETE FROM settings WHERE key = 'own_changes_signed'", [])
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_unsigned_changes_are_served_once_their_author_signs_them() {
    let mut relay = Relay::start(&[]);
    let mut ana = Profile::new("Ana", 1, &relay.url());
    ana.r().post("written before signatures", &[]).unwrap();
    ana.sync().await;
    relay.kill9();
    forget_signatures(&relay.data.join("relay.db"), false);
    forget_signatures(&ana.dir.path().join(social_sync_core::store::DB_FILE), true);
    relay.start_again();

    // Ben, a new device: Ana's old changes come unsigned, and are refused whole.
    let ben = Profile::new("Ben", 2, &relay.url());
    ben.r().follow(ana.uid).unwrap();
    let summary = ben.sync().await;
    assert!(
        summary
            .refusals
            .iter()
            .any(|r| r.starts_with("bad_change_signature") && r.contains("carries no signature")),
        "{:?}",
        summary.refusals
    );
    assert!(ben.r().feed(None, 10).unwrap().posts.is_empty());

    // Ana's app starts again: it signs her old changes and hands the signatures in.
    ana.reopen(&relay.url());
    let summary = ana.sync().await;
    assert!(summary.refusals.is_empty(), "{:?}", summary.refusals);
    assert!(
        ana.r().signatures_to_publish().unwrap().is_empty(),
        "handed in once"
    );

    // Now Ben gets her post.
    let mut seen = 0;
    for _ in 0..3 {
        ben.sync().await;
        seen = ben.r().feed(None, 10).unwrap().posts.len();
        if seen == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 1, "Ben sees Ana's old post, now signed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_for_changes_the_relay_lacks_or_by_someone_else_are_refused() {
    let relay = Relay::start(&[]);
    let ana = Profile::new("Ana", 1, &relay.url());
    let ben = Profile::new("Ben", 2, &relay.url());
    ana.r().post("mine", &[]).unwrap();
    ana.sync().await;
    let doc = social_sync_core::DocId::User(ana.uid);
    let mut raw = Raw::login(&relay.url(), &ben, "00000000000000b1").await;
    // Ben hands in "signatures" of Ana's changes: not his to give.
    let sigs = ana.r().signatures_to_publish().unwrap();
    assert!(sigs.is_empty(), "a new profile has nothing to hand in");
    let changes = ana.r().changes(&doc, &[]).unwrap();
    let hash = social_sync_core::store::signatures::hash_of_chunk(&changes[0]).unwrap();
    let frame = ClientMessage::Signatures {
        doc: doc.clone(),
        signatures: vec![social_sync_protocol::ChangeSignature {
            hash: hash.0.to_vec().into(),
            signature: vec![0u8; 64].into(),
        }],
    };
    raw.ws
        .send(Message::Binary(Bytes::from(wire::encode(&frame))))
        .await
        .unwrap();
    let answer = common::ask(&mut raw, &ClientMessage::Ping { id: 1 }).await;
    let ServerMessage::Rejected { code, message, .. } = answer else {
        panic!("expected a refusal, got {answer:?}");
    };
    assert_eq!(code, ErrorCode::Forbidden, "{message}");
}
