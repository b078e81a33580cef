//! Shared by the fuzz targets (`fuzz_targets/`) and the seed generator
//! (`examples/seeds.rs`): how a fuzz input is cut into steps, and the people and documents
//! every target talks about.
//!
//! # Inputs: steps
//!
//! The stateful targets read their input as a list of *steps*: a tag byte, a 2-byte
//! little-endian length and that many payload bytes (fewer if the input ends first). The
//! tag says what the payload is for (which document, who sends it, …; each target documents
//! its bits); the payload is passed through untouched (an Automerge sync message, a change,
//! a file). The framing is written by hand rather than derived with `arbitrary` so that the
//! seed generator can write real sync messages and real files as inputs, and a reproducer
//! stays readable with a hex dump.
//!
//! # People and documents
//!
//! [`Fixture`] builds two deterministic profiles, Ana and Ben, each with one post. Their ids
//! are the same in every process (seeded [`Env`]), so seeds written by the generator name
//! the documents the targets use.

#![allow(clippy::expect_used)] // fixture set-up: a failure is a broken fuzz harness, not a finding

use std::path::Path;

use sha2::{Digest, Sha256};

use social_sync_core::model::user_of_actor;
use social_sync_core::model::vetting;
use social_sync_core::{DocId, Env, Identity, PostId, Replica, UserId};

/// Start of the deterministic clock of every fixture profile (ms since the epoch).
pub const START_MS: i64 = 1_700_000_000_000;

/// Cuts `data` into `(tag, payload)` steps (see the crate docs).
pub fn steps(data: &[u8]) -> Steps<'_> {
    Steps { rest: data }
}

/// Iterator returned by [`steps`].
#[derive(Debug, Clone)]
pub struct Steps<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Steps<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (&tag, rest) = self.rest.split_first()?;
        let (len, rest) = match rest {
            [lo, hi, rest @ ..] => (usize::from(u16::from_le_bytes([*lo, *hi])), rest),
            _ => (rest.len(), &[][..]),
        };
        let (payload, rest) = rest.split_at(len.min(rest.len()));
        self.rest = rest;
        Some((tag, payload))
    }
}

/// Writes steps the way [`steps`] reads them. Panics on a payload over 64 KiB (seeds are
/// small by design).
pub fn encode_steps<'a>(steps: impl IntoIterator<Item = (u8, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, payload) in steps {
        let len = u16::try_from(payload.len()).expect("a seed step over 64 KiB");
        out.push(tag);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(payload);
    }
    out
}

/// Ana and Ben, one post each, and the four documents the targets pick from.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// Ana: the local user of the client targets.
    pub ana: UserId,
    /// Ben: the other user.
    pub ben: UserId,
    /// Ana's post.
    pub ana_post: PostId,
    /// Ben's post.
    pub ben_post: PostId,
    /// Ana's key: the targets sign the changes they make in her name with it, as a hostile
    /// device of hers would, so mutated changes get past the signature check to the parser,
    /// the write rules and Automerge.
    pub ana_key: Identity,
    /// Ben's key, likewise.
    pub ben_key: Identity,
}

impl Fixture {
    /// Ana's profile in `dir` (new), with her post.
    pub fn ana(dir: &Path) -> (Replica, PostId) {
        Self::profile(dir, "Ana", 1)
    }

    /// Ben's profile in `dir` (new), with his post.
    pub fn ben(dir: &Path) -> (Replica, PostId) {
        Self::profile(dir, "Ben", 2)
    }

    fn profile(dir: &Path, name: &str, seed: u64) -> (Replica, PostId) {
        let mut replica = Replica::create(dir, name, None, Env::deterministic(seed, START_MS))
            .expect("create a fixture profile");
        let post = replica
            .post(&format!("hello from {name}"), &[])
            .expect("post in a fixture profile");
        (replica, post)
    }

    /// The ids, from profiles made (and dropped) in a temporary folder.
    pub fn ids() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let (ana, ana_post) = Self::ana(&dir.path().join("ana"));
        let (ben, ben_post) = Self::ben(&dir.path().join("ben"));
        Self {
            ana: ana.user_id(),
            ben: ben.user_id(),
            ana_post,
            ben_post,
            ana_key: ana.identity().clone(),
            ben_key: ben.identity().clone(),
        }
    }

    /// One signature per encoded change of `doc`: by its author when that is Ana or Ben
    /// (whose keys the fixture holds), empty otherwise (refused as unsigned). Only changes
    /// that pass the product's own vetting are decoded here (it counts operations before
    /// Automerge does and contains its panics), so the harness never inflates or panics on
    /// what the code under test would refuse.
    pub fn sign(&self, doc: &DocId, changes: &[Vec<u8>]) -> Vec<Vec<u8>> {
        changes
            .iter()
            .enumerate()
            .map(|(index, bytes)| {
                let Ok(change) = vetting::vet_change(doc, index, bytes) else {
                    return Vec::new();
                };
                let key = match user_of_actor(change.actor_id()) {
                    Some(u) if u == self.ana => &self.ana_key,
                    Some(u) if u == self.ben => &self.ben_key,
                    _ => return Vec::new(),
                };
                key.sign_change(doc, &change).to_vec()
            })
            .collect()
    }

    /// [`Self::sign`] for the changes of an encoded sync message (none if it does not
    /// decode).
    pub fn sign_message(&self, doc: &DocId, message: &[u8]) -> Vec<Vec<u8>> {
        let decoded =
            vetting::contained(doc, || automerge::sync::Message::decode(message)).ok();
        match decoded {
            Some(Ok(m)) if m.changes.len() <= vetting::MAX_CHANGES => {
                self.sign(doc, &m.changes.iter().map(<[u8]>::to_vec).collect::<Vec<_>>())
            }
            _ => Vec::new(),
        }
    }

    /// Document number `n % 4`: Ana's user document, Ben's, the thread of Ana's post, the
    /// thread of Ben's post (the value of a tag's two low bits).
    pub fn doc(&self, n: u8) -> DocId {
        match n % 4 {
            0 => DocId::User(self.ana),
            1 => DocId::User(self.ben),
            2 => DocId::Thread(self.ana_post.clone()),
            _ => DocId::Thread(self.ben_post.clone()),
        }
    }

    /// The number [`Self::doc`] maps to `doc`.
    pub fn doc_number(&self, doc: &DocId) -> u8 {
        (0..4)
            .find(|&n| self.doc(n) == *doc)
            .expect("a fixture document")
    }
}

/// The magic bytes that open every Automerge chunk.
const CHUNK_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// Makes the checksum of every Automerge chunk in `bytes` (chunks one after another, as in
/// a saved document or one change) match its content, so mutated changes get past the
/// checksum to the parser and the write rules. Stops at the first thing that is not a
/// chunk. (A compressed chunk's checksum is that of its inflated content: left as is.)
pub fn fix_chunk_checksums(bytes: &mut [u8]) {
    let mut at = 0;
    while let Some(end) = fix_chunk_checksum(bytes, at) {
        at = end;
    }
}

/// Fixes the checksum of the chunk at `at`; returns where it ends.
fn fix_chunk_checksum(bytes: &mut [u8], at: usize) -> Option<usize> {
    let chunk = bytes.get(at..)?;
    if chunk.get(..4)? != CHUNK_MAGIC {
        return None;
    }
    let chunk_type = *chunk.get(8)?;
    let (len, header_end) = uleb(chunk, 9)?;
    let end = header_end.checked_add(usize::try_from(len).ok()?)?;
    let data = chunk.get(header_end..end)?;
    let mut header = vec![chunk_type];
    let mut n = data.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            header.push(byte);
            break;
        }
        header.push(byte | 0x80);
    }
    let hash = Sha256::new()
        .chain_update(&header)
        .chain_update(data)
        .finalize();
    bytes.get_mut(at + 4..at + 8)?.copy_from_slice(&hash[..4]);
    Some(at + end)
}

/// Fixes the checksums of the changes inside an encoded Automerge sync message (see
/// [`fix_chunk_checksums`]); leaves what it cannot parse as it is.
pub fn fix_sync_checksums(message: &mut [u8]) {
    let _ = fix_sync_message(message);
}

fn fix_sync_message(message: &mut [u8]) -> Option<()> {
    // Type byte; heads and need: counted lists of 32-byte hashes.
    let mut at = 1;
    for _ in 0..2 {
        let (count, next) = uleb(message, at)?;
        at = next.checked_add(usize::try_from(count).ok()?.checked_mul(32)?)?;
    }
    // Have: a counted list of (hashes, length-prefixed bloom filter).
    let (haves, next) = uleb(message, at)?;
    at = next;
    for _ in 0..haves {
        let (count, next) = uleb(message, at)?;
        at = next.checked_add(usize::try_from(count).ok()?.checked_mul(32)?)?;
        let (len, next) = uleb(message, at)?;
        at = next.checked_add(usize::try_from(len).ok()?)?;
    }
    // Changes: a counted list of length-prefixed chunks.
    let (changes, next) = uleb(message, at)?;
    at = next;
    for _ in 0..changes {
        let (len, next) = uleb(message, at)?;
        let end = next.checked_add(usize::try_from(len).ok()?)?;
        fix_chunk_checksums(message.get_mut(next..end)?);
        at = end;
    }
    Some(())
}

/// An unsigned LEB128 number at `at`, and where it ends.
fn uleb(bytes: &[u8], mut at: usize) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(at)?;
        at += 1;
        value |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some((value, at));
        }
    }
    None
}

/// Makes a panic a finding only when it escapes the code under test. libfuzzer-sys aborts
/// at the first panic, even one the product contains on purpose: Social Sync runs
/// Automerge on hostile input inside `vetting::contained` (the input is refused, the
/// document rolled back), which is the fix for panics inside Automerge that no check can
/// foresee. Here a panic is printed and unwinds; one that reaches libfuzzer-sys's own
/// `catch_unwind` (it escaped every containment) still aborts the process: a crash.
pub fn only_escaping_panics_are_findings() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            eprintln!("{info}");
        }));
    });
}
