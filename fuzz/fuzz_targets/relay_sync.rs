//! The relay's handling of a sync message for a document:
//! [`Documents::receive`](sync_server::documents::Documents::receive) over a real
//! [`SqliteStore`] in a temporary folder, opened once per process and kept across inputs
//! (what one input stores, the next finds, as on a running relay).
//!
//! Input: steps (see the crate docs). Tag bits 0–1: the document ([`Fixture::doc`]: Ana's
//! user document, Ben's, the thread of Ana's post, of Ben's); bit 2: the sender (0 Ana, 1
//! Ben); bit 3: start this sender's sync state for the document over before the message;
//! bit 4: raw (leave the checksums of the changes inside as they are; by default they are
//! fixed). The payload is the encoded Automerge sync message. As the relay's connection does, a
//! refused message drops the sync state for that document.

#![no_main]
#![allow(clippy::expect_used)] // harness set-up: a failure is a broken harness, not a finding

use std::collections::HashMap;
use std::sync::OnceLock;

use automerge::sync::State;
use libfuzzer_sys::fuzz_target;
use social_sync_fuzz::{Fixture, fix_sync_checksums, steps};
use sync_server::documents::Documents;
use sync_server::store::sqlite::SqliteStore;
use tempfile::TempDir;

/// Steps handled per input; the rest is ignored (keeps every input fast).
const MAX_STEPS: usize = 16;
/// Documents the relay keeps in memory (its default is larger; small makes loads happen).
const CACHE_DOCS: usize = 2;

struct Relay {
    docs: Documents,
    fixture: Fixture,
    _dir: TempDir,
}

fn relay() -> &'static Relay {
    static RELAY: OnceLock<Relay> = OnceLock::new();
    RELAY.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let store = SqliteStore::open(dir.path()).expect("open the relay store");
        Relay {
            docs: Documents::new(Box::new(store), CACHE_DOCS, 64 << 20),
            fixture: Fixture::ids(),
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    social_sync_fuzz::only_escaping_panics_are_findings();
    let relay = relay();
    let mut states: HashMap<(u8, bool), State> = HashMap::new();
    for (tag, message) in steps(data).take(MAX_STEPS) {
        let doc = relay.fixture.doc(tag);
        let from_ben = tag & 0b100 != 0;
        let user = if from_ben {
            relay.fixture.ben
        } else {
            relay.fixture.ana
        };
        let key = (tag % 4, from_ben);
        if tag & 0b1000 != 0 {
            states.remove(&key);
        }
        let mut message = message.to_vec();
        if tag & 0b1_0000 == 0 {
            fix_sync_checksums(&mut message);
        }
        let mut state = states.remove(&key).unwrap_or_default();
        let sigs = relay.fixture.sign_message(&doc, &message);
        if relay.docs.receive(user, &doc, &mut state, &message, &sigs).is_ok() {
            states.insert(key, state);
        }
    }
});
