//! The client's intake of changes from elsewhere, on Ana's real profile (a temporary
//! folder, made once per process and kept across inputs): [`Replica::merge`] of pushed
//! changes and [`Replica::receive_sync_message`] of sync messages, each sync message
//! followed by the answer the client would generate, as the sync engine does.
//!
//! Input: steps (see the crate docs). Tag bits 0–1: the document ([`Fixture::doc`]: Ana's
//! user document, Ben's, the thread of Ana's post, of Ben's); bit 2: 0 for a sync message,
//! 1 for one pushed change (consecutive change steps for the same document are merged as
//! one batch, as a `Changes` frame carries them); bit 3: start the sync state for the
//! document over before the message; bit 4: raw (leave Automerge checksums as they are; by
//! default they are fixed, in the change or in the changes inside the message). After a refused sync message the state is read back
//! from the profile, as the sync engine does.

#![no_main]
#![allow(clippy::expect_used)] // harness set-up: a failure is a broken harness, not a finding

use std::cell::RefCell;
use std::collections::HashMap;

use automerge::sync::State;
use libfuzzer_sys::fuzz_target;
use social_sync_core::{DocId, Replica};
use social_sync_fuzz::{Fixture, fix_chunk_checksums, fix_sync_checksums, steps};
use tempfile::TempDir;

/// Steps handled per input; the rest is ignored (keeps every input fast).
const MAX_STEPS: usize = 16;

struct Client {
    ana: Replica,
    fixture: Fixture,
    _dir: TempDir,
}

thread_local! {
    static CLIENT: RefCell<Client> = RefCell::new({
        let dir = tempfile::tempdir().expect("a temporary folder");
        let (ana, _) = Fixture::ana(&dir.path().join("ana"));
        Client { ana, fixture: Fixture::ids(), _dir: dir }
    });
}

fuzz_target!(|data: &[u8]| {
    social_sync_fuzz::only_escaping_panics_are_findings();
    CLIENT.with_borrow_mut(|client| {
        let mut states: HashMap<u8, State> = HashMap::new();
        let mut batch: Option<(DocId, Vec<Vec<u8>>)> = None;
        for (tag, payload) in steps(data).take(MAX_STEPS) {
            let doc = client.fixture.doc(tag);
            let is_change = tag & 0b100 != 0;
            let mut payload = payload.to_vec();
            match (tag & 0b1_0000 == 0, is_change) {
                (true, true) => fix_chunk_checksums(&mut payload),
                (true, false) => fix_sync_checksums(&mut payload),
                (false, _) => {}
            }
            match batch.take() {
                Some((batch_doc, mut changes)) if is_change && batch_doc == doc => {
                    changes.push(payload);
                    batch = Some((batch_doc, changes));
                    continue;
                }
                Some((batch_doc, changes)) => {
                    let sigs = client.fixture.sign(&batch_doc, &changes);
                    let _ = client.ana.merge(&batch_doc, &changes, &sigs);
                }
                None => {}
            }
            if is_change {
                batch = Some((doc, vec![payload]));
                continue;
            }
            if tag & 0b1000 != 0 {
                states.remove(&(tag % 4));
            }
            let state = states.entry(tag % 4).or_default();
            let sigs = client.fixture.sign_message(&doc, &payload);
            if client
                .ana
                .receive_sync_message(&doc, state, &payload, &sigs)
                .is_err()
            {
                *state = client.ana.sync_state(&doc).unwrap_or_default();
            }
            let _ = client.ana.generate_sync_message(&doc, state);
        }
        if let Some((doc, changes)) = batch {
            let sigs = client.fixture.sign(&doc, &changes);
            let _ = client.ana.merge(&doc, &changes, &sigs);
        }
    });
});
