//! The export-folder loader, through [`Replica::import`] (which reads and checks the whole
//! folder with `export_folder::read`, then merges it) into Ana's real profile (a temporary
//! folder, made once per process and kept across inputs).
//!
//! Input: one flags byte, then steps (see the crate docs), one file each: tag `% 8` picks
//! the file's name from [`FILES`], the payload is its content (a later step for the same
//! name replaces it). Flag bit 0: before writing `manifest.json`, if it is JSON, set every
//! document's `sha256` and every blob's `hash` to the real SHA-256 of the file it names, so
//! the fuzzer gets past the checksums to the Automerge loader and the write rules; bit 1:
//! raw documents (leave the Automerge chunk checksums inside document files as they are; by
//! default they are fixed, before the manifest's).

#![no_main]
#![allow(clippy::expect_used)] // harness set-up: a failure is a broken harness, not a finding

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use social_sync_core::Replica;
use social_sync_fuzz::{Fixture, fix_chunk_checksums, steps};
use tempfile::TempDir;

/// The names a file of the input can have, by tag `% 8`.
const FILES: [&str; 8] = [
    "manifest.json",
    "documents/000000.automerge",
    "documents/000001.automerge",
    "documents/000002.automerge",
    "documents/000003.automerge",
    "blobs/0",
    "blobs/1",
    "blobs/2",
];

struct Client {
    ana: Replica,
    dir: TempDir,
}

thread_local! {
    static CLIENT: RefCell<Client> = RefCell::new({
        let dir = tempfile::tempdir().expect("a temporary folder");
        let (ana, _) = Fixture::ana(&dir.path().join("ana"));
        Client { ana, dir }
    });
}

/// The manifest with the checksums of the files it names made right, if it is JSON.
fn fix_checksums(manifest: &[u8], files: &BTreeMap<&str, Vec<u8>>) -> Option<Vec<u8>> {
    let mut json: serde_json::Value = serde_json::from_slice(manifest).ok()?;
    for (list, field) in [("documents", "sha256"), ("blobs", "hash")] {
        let Some(entries) = json.get_mut(list).and_then(|v| v.as_array_mut()) else {
            continue;
        };
        for entry in entries {
            let Some(bytes) = entry
                .get("file")
                .and_then(|f| f.as_str())
                .and_then(|f| files.get(f))
            else {
                continue;
            };
            let digest = data_encoding::HEXLOWER.encode(&Sha256::digest(bytes));
            if let Some(object) = entry.as_object_mut() {
                object.insert(field.to_owned(), digest.into());
            }
        }
    }
    serde_json::to_vec(&json).ok()
}

fuzz_target!(|data: &[u8]| {
    social_sync_fuzz::only_escaping_panics_are_findings();
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut files: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for (tag, content) in steps(rest) {
        let name = FILES[usize::from(tag % 8)];
        let mut content = content.to_vec();
        if name.starts_with("documents/") && flags & 0b10 == 0 {
            fix_chunk_checksums(&mut content);
        }
        files.insert(name, content);
    }
    CLIENT.with_borrow_mut(|client| {
        let folder = tempfile::tempdir_in(client.dir.path()).expect("a temporary folder");
        fs::create_dir(folder.path().join("documents")).expect("make documents/");
        fs::create_dir(folder.path().join("blobs")).expect("make blobs/");
        for (name, content) in &files {
            let fixed = match *name {
                "manifest.json" if flags & 1 != 0 => fix_checksums(content, &files),
                _ => None,
            };
            let content = fixed.as_deref().unwrap_or(content);
            fs::write(folder.path().join(name), content).expect("write a file of the folder");
        }
        let _ = client.ana.import(folder.path());
    });
});
