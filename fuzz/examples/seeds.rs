//! Writes the seed corpus, `fuzz/corpus/<target>/`, from real data: two deterministic
//! profiles (Ana and Ben, see `Fixture`) that post, follow, like, comment and post an image;
//! real Automerge sync conversations and changes of their documents; real CBOR frames of
//! every wire message; a real export folder. Run it again after a change of the formats:
//!
//! ```text
//! cd fuzz && cargo +nightly run --example seeds
//! ```
//!
//! Each seed is checked on the way (the relay accepts the honest ones, Ana's profile merges
//! them), so a seed that no longer reaches the code it was made for is noticed.

#![allow(clippy::expect_used, clippy::print_stdout)] // a tool run by hand: it prints, and a failed step stops it

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use automerge::sync::{State, SyncDoc};
use automerge::{AutoCommit, Change};
use social_sync_core::{BlobHash, DocId, Replica, UserId};
use social_sync_fuzz::{Fixture, encode_steps};
use social_sync_protocol::wire::{
    self, ClientMessage, ErrorCode, Limits, PresenceEntry, ServerMessage, SyncItem,
};
use sync_server::documents::Documents;
use sync_server::store::sqlite::SqliteStore;

/// A real 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// Tag bits shared by the stateful targets (see their docs).
const FROM_BEN: u8 = 0b100;
const CHANGE: u8 = 0b100;

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let fixture = Fixture::ids();
    let (mut ana, ana_post) = Fixture::ana(&tmp.path().join("ana"));
    let (mut ben, ben_post) = Fixture::ben(&tmp.path().join("ben"));
    assert_eq!(
        (&ana_post, &ben_post),
        (&fixture.ana_post, &fixture.ben_post)
    );

    // Each sees the other's posts, then follows, likes and comments; Ana posts an image.
    send_all(&ana, &mut ben);
    send_all(&ben, &mut ana);
    ben.follow(fixture.ana).expect("follow");
    ben.like(&ana_post).expect("like");
    ben.comment(&ana_post, "gorgeous").expect("comment");
    ben.set_profile(None, Some("likes piers")).expect("bio");
    ana.follow(fixture.ben).expect("follow");
    ana.comment(&ben_post, "nice one").expect("comment");
    ana.post_with_image_bytes("the pier", vec![PNG.to_vec()])
        .expect("post an image");

    wire_seeds(&corpus.join("wire_decode"), &fixture, &ben);
    relay_seeds(&corpus.join("relay_sync"), &fixture, &ana, &ben);
    // Ana's own view for the client seeds: a fresh copy of her profile, as the target has.
    let (mut fresh_ana, _) = Fixture::ana(&tmp.path().join("ana-fresh"));
    client_seeds(&corpus.join("client_merge"), &fixture, &ben, &mut fresh_ana);
    send_all(&ben, &mut ana);
    export_seeds(&corpus.join("export_folder"), &ana, tmp.path());
}

/// Merges every document of `from` into `to`.
fn send_all(from: &Replica, to: &mut Replica) {
    for doc in from.documents().expect("list documents") {
        let changes = from.changes(&doc, &[]).expect("read changes");
        let sigs = from.signatures_of(&doc, &changes).expect("read signatures");
        to.merge(&doc, &changes, &sigs).expect("merge");
    }
}

/// `doc` of `replica` as a document of its own.
fn automerge_doc(replica: &Replica, doc: &DocId) -> AutoCommit {
    let mut am = AutoCommit::new();
    let changes = replica
        .changes(doc, &[])
        .expect("read changes")
        .iter()
        .map(|bytes| Change::try_from(&bytes[..]).expect("a stored change decodes"))
        .collect::<Vec<_>>();
    am.apply_changes(changes).expect("apply stored changes");
    am
}

/// The sync messages `sender` sends while syncing with `receiver` until both are done.
fn conversation(sender: &mut AutoCommit, receiver: &mut AutoCommit) -> Vec<Vec<u8>> {
    let (mut ours, mut theirs) = (State::new(), State::new());
    let mut sent = Vec::new();
    for _ in 0..10 {
        let out = sender.sync().generate_sync_message(&mut ours);
        if let Some(message) = &out {
            let bytes = message.clone().encode();
            let mut fixed = bytes.clone();
            social_sync_fuzz::fix_sync_checksums(&mut fixed);
            assert_eq!(
                fixed, bytes,
                "fixing the checksums of a real message changes nothing"
            );
            sent.push(bytes);
            receiver
                .sync()
                .receive_sync_message(&mut theirs, message.clone())
                .expect("the receiver takes a real message");
        }
        let back = receiver.sync().generate_sync_message(&mut theirs);
        if let Some(message) = &back {
            sender
                .sync()
                .receive_sync_message(&mut ours, message.clone())
                .expect("the sender takes a real answer");
        }
        if out.is_none() && back.is_none() {
            break;
        }
    }
    sent
}

fn write_seed(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).expect("make the corpus folder");
    let path: PathBuf = dir.join(name);
    fs::write(&path, bytes).expect("write a seed");
    println!("{} ({} bytes)", path.display(), bytes.len());
}

fn wire_seeds(dir: &Path, fixture: &Fixture, ben: &Replica) {
    let doc = DocId::User(fixture.ben);
    let mut am = automerge_doc(ben, &doc);
    let message = conversation(&mut am, &mut AutoCommit::new())
        .pop()
        .expect("a sync message");
    let item = SyncItem {
        doc: doc.clone(),
        signatures: fixture
            .sign_message(&doc, &message)
            .into_iter()
            .map(Into::into)
            .collect(),
        message: message.into(),
    };
    let hash = BlobHash::from_digest([7; 32]);
    let user = fixture.ana;
    let client = [
        (
            "hello",
            ClientMessage::Hello {
                version: wire::PROTOCOL_VERSION,
                user,
                device: "00ff00ff00ff00ff".into(),
                agent: "fuzz".into(),
                instance: None,
            },
        ),
        (
            "auth",
            ClientMessage::Auth {
                signature: vec![1; 64].into(),
                relay: "ws://127.0.0.1:8787".into(),
            },
        ),
        (
            "sync",
            ClientMessage::Sync {
                items: vec![item.clone()],
            },
        ),
        (
            "subscribe",
            ClientMessage::Subscribe {
                docs: vec![doc.clone(), DocId::Thread(fixture.ana_post.clone())],
            },
        ),
        ("ping", ClientMessage::Ping { id: 42 }),
        ("inbox-ack", ClientMessage::InboxAck { seq: 7 }),
        (
            "presence",
            ClientMessage::Presence {
                users: vec![fixture.ben],
            },
        ),
        (
            "lookup-name",
            ClientMessage::LookupName {
                name: "@ana".into(),
            },
        ),
        (
            "put-blob",
            ClientMessage::PutBlob {
                hash,
                mime: "image/png".into(),
                bytes: PNG.to_vec().into(),
            },
        ),
        ("get-blob", ClientMessage::GetBlob { hash }),
    ];
    for (name, message) in client {
        write_seed(dir, &format!("client-{name}"), &wire::encode(&message));
    }
    let raw_changes = ben.changes(&doc, &[]).expect("read changes");
    let signatures = ben
        .signatures_of(&doc, &raw_changes)
        .expect("read signatures")
        .into_iter()
        .map(Into::into)
        .collect();
    let changes = raw_changes.into_iter().map(Into::into).collect();
    let server = [
        (
            "challenge",
            ServerMessage::Challenge {
                version: wire::PROTOCOL_VERSION,
                nonce: vec![9; 32].into(),
            },
        ),
        (
            "welcome",
            ServerMessage::Welcome {
                user,
                limits: Limits {
                    max_message_bytes: 1 << 24,
                    max_blob_bytes: 10 << 20,
                    messages_per_second: 50,
                },
            },
        ),
        ("sync", ServerMessage::Sync { items: vec![item] }),
        (
            "changes",
            ServerMessage::Changes {
                doc,
                changes,
                signatures,
                seq: 3,
            },
        ),
        ("inbox-sent", ServerMessage::InboxSent { seq: 3, docs: 2 }),
        ("pong", ServerMessage::Pong { id: 42 }),
        (
            "presence",
            ServerMessage::Presence {
                online: vec![PresenceEntry {
                    user,
                    devices: 1,
                }],
            },
        ),
        (
            "presence-changed",
            ServerMessage::PresenceChanged {
                user,
                online: true,
            },
        ),
        (
            "name",
            ServerMessage::Name {
                name: "ana".into(),
                user: Some(user),
            },
        ),
        ("blob-stored", ServerMessage::BlobStored { hash }),
        (
            "blob",
            ServerMessage::Blob {
                hash,
                mime: "image/png".into(),
                bytes: PNG.to_vec().into(),
            },
        ),
        (
            "rejected",
            ServerMessage::Rejected {
                code: ErrorCode::Forbidden,
                doc: Some(DocId::Thread(fixture.ben_post.clone())),
                message: "no".into(),
            },
        ),
        (
            "error",
            ServerMessage::Error {
                code: ErrorCode::SlowReader,
                message: "too slow".into(),
            },
        ),
    ];
    for (name, message) in server {
        write_seed(dir, &format!("server-{name}"), &wire::encode(&message));
    }
}

fn relay_seeds(dir: &Path, fixture: &Fixture, ana: &Replica, ben: &Replica) {
    // (seed, sender is Ben?, document, whose copy): each a whole conversation with an empty
    // relay.
    let cases: [(&str, bool, u8, &Replica); 5] = [
        ("ben-user-doc", true, 1, ben),
        ("ana-user-doc", false, 0, ana),
        ("ben-likes-and-comments-on-ana-post", true, 2, ben),
        ("ana-comments-on-ben-post", false, 3, ana),
        ("ben-forges-ana-user-doc", true, 0, ana),
    ];
    let mut all = Vec::new();
    for (name, from_ben, n, replica) in cases {
        let doc = fixture.doc(n);
        let tag = n | if from_ben { FROM_BEN } else { 0 };
        let messages = conversation(&mut automerge_doc(replica, &doc), &mut AutoCommit::new());
        let steps: Vec<(u8, &[u8])> = messages.iter().map(|m| (tag, &m[..])).collect();
        let input = encode_steps(steps.iter().copied());
        let (accepted, refused) = try_relay(fixture, &input);
        println!("relay_sync/{name}: {accepted} messages accepted, {refused} refused");
        write_seed(dir, name, &input);
        if !(n == 0 && from_ben) {
            all.extend_from_slice(&input);
        }
    }
    // Everything honest (all but the forgery) in one input: several documents and senders.
    write_seed(dir, "all-honest-documents", &all);
}

/// Runs a relay input on a fresh relay: (messages accepted, refused).
fn try_relay(fixture: &Fixture, input: &[u8]) -> (usize, usize) {
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let docs = Documents::new(
        Box::new(SqliteStore::open(tmp.path()).expect("open a relay store")),
        8,
        64 << 20,
    );
    let (mut accepted, mut refused) = (0, 0);
    let mut states: HashMap<u8, State> = HashMap::new();
    for (tag, message) in social_sync_fuzz::steps(input) {
        let state = states.entry(tag).or_default();
        let user: UserId = if tag & FROM_BEN != 0 {
            fixture.ben
        } else {
            fixture.ana
        };
        let sigs = fixture.sign_message(&fixture.doc(tag), message);
        match docs.receive(user, &fixture.doc(tag), state, message, &sigs) {
            Ok(_) => accepted += 1,
            Err(_) => refused += 1,
        }
    }
    (accepted, refused)
}

fn client_seeds(dir: &Path, fixture: &Fixture, ben: &Replica, ana: &mut Replica) {
    // Pushed changes, one batch per document, as `Changes` frames carry them.
    for (name, n) in [
        ("push-ben-user-doc", 1),
        ("push-ben-reactions-on-ana-post", 2),
        ("push-forged-into-ana-user-doc", 0),
    ] {
        let changes = ben
            .changes(&fixture.doc(if n == 0 { 1 } else { n }), &[])
            .expect("read changes");
        for change in &changes {
            let mut fixed = change.clone();
            social_sync_fuzz::fix_chunk_checksums(&mut fixed);
            assert_eq!(
                &fixed, change,
                "fixing the checksum of a real change changes nothing"
            );
        }
        let input = encode_steps(changes.iter().map(|c| (n | CHANGE, &c[..])));
        let sigs = fixture.sign(&fixture.doc(n), &changes);
        let outcome = ana.merge(&fixture.doc(n), &changes, &sigs);
        println!(
            "client_merge/{name}: {}",
            outcome.map_or_else(|e| format!("refused ({e})"), |o| format!("{o:?}"))
        );
        write_seed(dir, name, &input);
    }
    // Sync conversations from a relay that has Ben's documents, to Ana who has none of them.
    for (name, n) in [("sync-ben-user-doc", 1), ("sync-thread-of-ana-post", 2)] {
        let doc = fixture.doc(n);
        let messages = conversation(&mut automerge_doc(ben, &doc), &mut AutoCommit::new());
        let input = encode_steps(messages.iter().map(|m| (n, &m[..])));
        write_seed(dir, name, &input);
    }
    // A relay with nothing asks Ana for her own document: her answers use its bloom filter.
    let doc = fixture.doc(0);
    let messages = conversation(&mut AutoCommit::new(), &mut automerge_doc(ana, &doc));
    let input = encode_steps(messages.iter().map(|m| (0, &m[..])));
    write_seed(dir, "sync-empty-relay-asks-ana", &input);
}

fn export_seeds(dir: &Path, ana: &Replica, tmp: &Path) {
    let folder = tmp.join("export");
    let summary = ana.export(&folder).expect("export");
    println!("export_folder: exported {summary:?}");
    let manifest = fs::read_to_string(folder.join("manifest.json")).expect("read the manifest");
    let mut json: serde_json::Value = serde_json::from_str(&manifest).expect("a JSON manifest");
    // The target's file names: documents/00000N.automerge (N < 4) and blobs/N (N < 3).
    let mut files: Vec<(u8, Vec<u8>)> = Vec::new();
    let documents = json["documents"].as_array().expect("documents");
    assert!(documents.len() <= 4, "the target names four documents");
    for (n, entry) in documents.iter().enumerate() {
        let file = entry["file"].as_str().expect("a file name");
        assert_eq!(file, format!("documents/{n:06}.automerge"));
        let bytes = fs::read(folder.join(file)).expect("read a document");
        files.push((1 + u8::try_from(n).expect("few documents"), bytes));
    }
    let blobs = json["blobs"].as_array_mut().expect("blobs");
    assert!(blobs.len() <= 3, "the target names three blobs");
    for (n, entry) in blobs.iter_mut().enumerate() {
        let file = entry["file"].as_str().expect("a file name").to_owned();
        files.push((
            5 + u8::try_from(n).expect("few blobs"),
            fs::read(folder.join(&file)).expect("read a blob"),
        ));
        entry["file"] = format!("blobs/{n}").into();
    }
    let manifest = serde_json::to_vec_pretty(&json).expect("a manifest");
    let mut steps: Vec<(u8, &[u8])> = vec![(0, &manifest[..])];
    steps.extend(files.iter().map(|(tag, bytes)| (*tag, &bytes[..])));
    // Flags 0: the folder as exported; flags 1: the same with checksums fixed by the target.
    for (name, flags) in [("whole-export", 0), ("whole-export-fixed-checksums", 1)] {
        let mut input = vec![flags];
        input.extend(encode_steps(steps.iter().copied()));
        write_seed(dir, name, &input);
    }
    // One document alone, and an export of nothing.
    let mut one = json.clone();
    one["documents"]
        .as_array_mut()
        .expect("documents")
        .truncate(1);
    one["blobs"] = serde_json::Value::Array(Vec::new());
    let one = serde_json::to_vec(&one).expect("a manifest");
    let mut input = vec![1];
    input.extend(encode_steps([(0, &one[..]), (1, &files[0].1[..])]));
    write_seed(dir, "one-document", &input);
    json["documents"] = serde_json::Value::Array(Vec::new());
    json["blobs"] = serde_json::Value::Array(Vec::new());
    let empty = serde_json::to_vec(&json).expect("a manifest");
    let mut input = vec![0];
    input.extend(encode_steps([(0, &empty[..])]));
    write_seed(dir, "empty-export", &input);
}
