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

use social_sync_core::{DocId, Env, PostId, Replica, UserId};

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
