//! Automerge input from elsewhere (a client, the relay, an export folder), vetted before any
//! of it reaches a document. Both the relay and every client run this, so neither trusts
//! the other.
//!
//! What is refused, and why:
//!
//! - **Anything but plain change chunks.** Automerge also reads compressed change chunks,
//!   whole documents and bundles, whose columns inflate: a 255 KiB item grew to 256 MiB in
//!   memory. Only uncompressed change chunks (type 1), one per item, are taken from the
//!   wire; their size is their frame's.
//! - **Oversized summaries.** Counts of heads, needs and `have` entries are capped, and each
//!   Bloom filter's probe count and bits per entry must be what Automerge writes (a probe
//!   count of 20,000,000 cost 4 s of CPU; a filter of zero bits panicked).
//! - **Empty changes**, and **changes whose op counter goes back** behind a dependency's
//!   ([`check_op_order`], run once the changes applied): both made documents whose
//!   snapshot no longer loads, locking every reader out of a thread.
//! - **Changes that break the write rules**, every one of them, whether or not it can apply
//!   yet: a change waiting for a dependency is checked now, not when it applies.
//! - **Panics.** Where Automerge still panics on hostile input, the panic is contained and
//!   becomes an [`Unvetted::Panicked`] error naming the document.
//!
//! The sync-message flags are stripped from what is vetted: they advertise the "v2"
//! message, which carries a whole (compressed) document, so a peer that never sees them
//! never sends one.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::sync::Message;
use automerge::{AutoCommit, Change, ChangeHash};
use social_sync_protocol::DocId;

use super::rules;

mod chunk;
mod refusal;
pub mod signature;

use chunk::{CHANGE_CHUNK, chunk_len, count_ops, uleb128};
pub use refusal::Unvetted;
pub use signature::ChangeSig;

/// Most changes one sync message may carry.
pub const MAX_CHANGES: usize = 20_000;
/// Most heads (or needed hashes) one sync message may name.
pub const MAX_HASHES: usize = 4_096;
/// Most `have` entries one sync message may carry (Automerge sends one).
pub const MAX_HAVES: usize = 4;
/// Most Bloom-filter probes per hash (Automerge uses 7).
pub const MAX_BLOOM_PROBES: u64 = 16;
/// Most operations one change may hold (the app makes a handful per change).
pub const MAX_OPS_PER_CHANGE: u64 = 10_000;
/// Most Bloom-filter bits per entry (Automerge uses 10).
pub const MAX_BLOOM_BITS_PER_ENTRY: u64 = 32;

/// A sync message whose every change passed [`vet_sync_message`].
#[derive(Debug)]
pub struct Vetted {
    /// The message, its flags stripped.
    pub message: Message,
    /// Its changes, decoded, in order.
    pub changes: Vec<Change>,
    /// Their authors' signatures, verified, in the same order.
    pub signatures: Vec<ChangeSig>,
}

/// Runs `f`, turning a panic inside it into [`Unvetted::Panicked`]. Whatever `f` was
/// working on must be dropped by the caller on error: it may be half-changed.
pub fn contained<T>(doc: &DocId, f: impl FnOnce() -> T) -> Result<T, Unvetted> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| Unvetted::Panicked {
        doc: doc.clone(),
        detail: panic_message(panic.as_ref()),
    })
}

/// Encodes an outgoing sync message without its flags, so that no peer, even one on stock
/// Automerge, ever learns the "v2" whole-document message is welcome (it is not: see the
/// module docs).
pub fn encode_outgoing(mut message: Message) -> Vec<u8> {
    message.flags = None;
    message.encode()
}

/// Decodes and vets one encoded sync message for `doc`, with one signature per change.
pub fn vet_sync_message<S: AsRef<[u8]>>(
    doc: &DocId,
    bytes: &[u8],
    signatures: &[S],
) -> Result<Vetted, Unvetted> {
    let malformed = |detail: String| Unvetted::Malformed {
        doc: doc.clone(),
        detail,
    };
    let mut message =
        contained(doc, || Message::decode(bytes))?.map_err(|e| malformed(e.to_string()))?;
    let too_many = |what, count, max| Unvetted::TooMany {
        doc: doc.clone(),
        what,
        count,
        max,
    };
    if message.heads.len() > MAX_HASHES {
        return Err(too_many("heads", message.heads.len(), MAX_HASHES));
    }
    if message.need.len() > MAX_HASHES {
        return Err(too_many("needed hashes", message.need.len(), MAX_HASHES));
    }
    if message.have.len() > MAX_HAVES {
        return Err(too_many("have entries", message.have.len(), MAX_HAVES));
    }
    for have in &message.have {
        if have.last_sync.len() > MAX_HASHES {
            return Err(too_many(
                "last-sync hashes",
                have.last_sync.len(),
                MAX_HASHES,
            ));
        }
        check_bloom(doc, &have.bloom.to_bytes())?;
    }
    if message.changes.len() > MAX_CHANGES {
        return Err(too_many("changes", message.changes.len(), MAX_CHANGES));
    }
    let changes = message
        .changes
        .iter()
        .enumerate()
        .map(|(index, bytes)| vet_change(doc, index, bytes))
        .collect::<Result<Vec<_>, _>>()?;
    let signatures = signature::verify_all(doc, &changes, signatures)?;
    message.flags = None;
    Ok(Vetted {
        message,
        changes,
        signatures,
    })
}

/// Decodes and vets one encoded change for `doc` (`index` names it in errors).
pub fn vet_change(doc: &DocId, index: usize, bytes: &[u8]) -> Result<Change, Unvetted> {
    let not_a_change = |detail: String| Unvetted::NotAChange {
        doc: doc.clone(),
        index,
        detail,
    };
    match chunk_len(bytes) {
        Ok((CHANGE_CHUNK, len)) if len == bytes.len() => {}
        Ok((CHANGE_CHUNK, len)) => {
            return Err(not_a_change(format!(
                "is {} bytes but its chunk is {len}",
                bytes.len()
            )));
        }
        Ok((kind, _)) => return Err(not_a_change(format!("is a chunk of type {kind}"))),
        Err(detail) => return Err(not_a_change(detail.to_owned())),
    }
    // Counted from the run lengths of the action column, before Automerge iterates them:
    // a run length is a number on the wire, so a few bytes can claim 2^60 operations.
    match count_ops(bytes) {
        Ok(ops) if ops <= MAX_OPS_PER_CHANGE => {}
        Ok(ops) => {
            return Err(not_a_change(format!(
                "claims {ops} operations (at most {MAX_OPS_PER_CHANGE} are accepted)"
            )));
        }
        Err(detail) => return Err(not_a_change(detail.to_owned())),
    }
    let change = contained(doc, || Change::try_from(bytes))?
        .map_err(|e| not_a_change(format!("does not decode ({e})")))?;
    if change.is_empty() {
        return Err(Unvetted::Empty {
            doc: doc.clone(),
            hash: change.hash().to_string(),
        });
    }
    contained(doc, || rules::check_change(doc, &change))??;
    Ok(change)
}

/// Checks that each of `changes` starts after the last op of every change it depends on,
/// as Automerge always makes them; `max_op_of` finds a dependency's last op (in the
/// document or in the same message). A change that goes back (an actor reusing op
/// counters) made documents whose snapshot no longer loads (`InvalidMaxOp`), locking every
/// reader out. Run it before applying (Automerge's own checks are debug assertions), and
/// again on what applied, so a change that waited for its dependency is checked too.
/// Returns how many changes depend on a change nobody has (orphans, not checked yet).
pub fn check_op_order(
    doc: &DocId,
    changes: &[Change],
    mut max_op_of: impl FnMut(&ChangeHash) -> Option<u64>,
) -> Result<usize, Unvetted> {
    let mut orphans = 0;
    for change in changes {
        let start_op = change.start_op().get();
        let mut orphan = false;
        for dep in change.deps() {
            let Some(dep_max_op) = max_op_of(dep) else {
                orphan = true;
                continue;
            };
            if start_op <= dep_max_op {
                return Err(Unvetted::OpOrder {
                    doc: doc.clone(),
                    hash: change.hash().to_string(),
                    start_op,
                    dep: dep.to_string(),
                    dep_max_op,
                });
            }
        }
        orphans += usize::from(orphan);
    }
    Ok(orphans)
}

/// The last op of change `hash` in `am`, if `am` holds it (from the change's metadata: the
/// change itself is not rebuilt).
pub fn max_op_in(am: &mut AutoCommit, hash: &ChangeHash) -> Option<u64> {
    am.get_change_meta_by_hash(hash).map(|meta| meta.max_op)
}

/// [`check_op_order`] for `changes` about to be applied to `am`: dependencies are looked up
/// among `changes` first, then in `am`. Returns how many changes wait for a dependency
/// neither holds.
pub fn check_op_order_before(
    doc: &DocId,
    am: &mut AutoCommit,
    changes: &[Change],
) -> Result<usize, Unvetted> {
    let sent: HashMap<ChangeHash, u64> = changes.iter().map(|c| (c.hash(), c.max_op())).collect();
    check_op_order(doc, changes, |dep| {
        sent.get(dep).copied().or_else(|| max_op_in(am, dep))
    })
}

/// [`check_op_order`] for `applied`, changes just applied to `am`. On error, drop `am`.
pub fn check_op_order_after(
    doc: &DocId,
    am: &mut AutoCommit,
    applied: &[Change],
) -> Result<(), Unvetted> {
    check_op_order(doc, applied, |dep| max_op_in(am, dep)).map(drop)
}

/// The message of a caught panic.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}

/// Splits concatenated chunks (as an export folder holds them), each vetted as a change.
pub fn vet_changes_concatenated(doc: &DocId, mut bytes: &[u8]) -> Result<Vec<Change>, Unvetted> {
    let mut changes = Vec::new();
    while !bytes.is_empty() {
        let index = changes.len();
        let len = match chunk_len(bytes) {
            Ok((_, len)) if len <= bytes.len() => len,
            Ok((_, len)) => {
                return Err(Unvetted::NotAChange {
                    doc: doc.clone(),
                    index,
                    detail: format!("claims {len} bytes but {} are left", bytes.len()),
                });
            }
            Err(detail) => {
                return Err(Unvetted::NotAChange {
                    doc: doc.clone(),
                    index,
                    detail: detail.to_owned(),
                });
            }
        };
        let (chunk, rest) = bytes.split_at(len);
        changes.push(vet_change(doc, index, chunk)?);
        bytes = rest;
    }
    Ok(changes)
}

/// Checks an encoded Bloom filter's header: entries, bits per entry, probes, then the bits.
fn check_bloom(doc: &DocId, bytes: &[u8]) -> Result<(), Unvetted> {
    if bytes.is_empty() {
        return Ok(());
    }
    let bad = |detail: String| Unvetted::BadBloom {
        doc: doc.clone(),
        detail,
    };
    let mut at = 0;
    let mut next = || {
        let (v, n) = uleb128(&bytes[at..]).ok_or_else(|| bad("a broken header".into()))?;
        at += n;
        Ok::<_, Unvetted>(v)
    };
    let entries = next()?;
    let bits_per_entry = next()?;
    let probes = next()?;
    if !(1..=MAX_BLOOM_PROBES).contains(&probes) {
        return Err(bad(format!(
            "{probes} probes (1 to {MAX_BLOOM_PROBES} are accepted)"
        )));
    }
    if !(1..=MAX_BLOOM_BITS_PER_ENTRY).contains(&bits_per_entry) {
        return Err(bad(format!(
            "{bits_per_entry} bits per entry (1 to {MAX_BLOOM_BITS_PER_ENTRY} are accepted)"
        )));
    }
    if entries > 0 && bytes.len() <= at {
        return Err(bad(format!("{entries} entries and no bits")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ThreadDoc, actor_id};
    use automerge::sync::{State, SyncDoc};
    use social_sync_protocol::{PostId, UserId};

    fn thread() -> DocId {
        DocId::Thread(PostId::new(UserId::from_bytes([1; 32]), b"p"))
    }

    fn liked(user: u8) -> AutoCommit {
        let mut am = AutoCommit::new().with_actor(actor_id(UserId::from_bytes([user; 32]), [0; 8]));
        ThreadDoc::like(&mut am, UserId::from_bytes([user; 32]), 1).unwrap();
        am.commit();
        am
    }

    fn first_message(am: &mut AutoCommit) -> Vec<u8> {
        // A peer that has nothing: two rounds make the sender send its changes.
        let mut empty = AutoCommit::new();
        let (mut ours, mut theirs) = (State::new(), State::new());
        let hello = am.sync().generate_sync_message(&mut ours).unwrap();
        empty
            .sync()
            .receive_sync_message(&mut theirs, hello)
            .unwrap();
        let mut ask = empty.sync().generate_sync_message(&mut theirs).unwrap();
        // As every Social Sync peer does (see the module docs): no flags, so no "v2".
        ask.flags = None;
        am.sync().receive_sync_message(&mut ours, ask).unwrap();
        am.sync().generate_sync_message(&mut ours).unwrap().encode()
    }

    #[test]
    fn a_v2_message_carrying_a_whole_document_is_refused() {
        let mut am = liked(2);
        let mut empty = AutoCommit::new();
        let (mut ours, mut theirs) = (State::new(), State::new());
        let hello = am.sync().generate_sync_message(&mut ours).unwrap();
        empty
            .sync()
            .receive_sync_message(&mut theirs, hello)
            .unwrap();
        let ask = empty.sync().generate_sync_message(&mut theirs).unwrap();
        am.sync().receive_sync_message(&mut ours, ask).unwrap();
        let v2 = am.sync().generate_sync_message(&mut ours).unwrap().encode();
        let err = vet_sync_message::<Vec<u8>>(&thread(), &v2, &[]).unwrap_err();
        assert!(err.to_string().contains("type 0"), "{err}");
    }

    #[test]
    fn an_honest_message_passes_and_loses_its_flags() {
        let ana = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let ana_id = UserId::from_bytes(ana.verifying_key().to_bytes());
        let mut am = AutoCommit::new().with_actor(actor_id(ana_id, [0; 8]));
        ThreadDoc::like(&mut am, ana_id, 1).unwrap();
        am.commit();
        let sig = signature::sign(&ana, &thread(), &am.get_changes(&[])[0]);
        let message = first_message(&mut am);
        let vetted = vet_sync_message(&thread(), &message, &[sig]).unwrap();
        assert_eq!(vetted.changes.len(), 1);
        assert_eq!(vetted.signatures, vec![sig]);
        assert!(vetted.message.flags.is_none());
        // The same message without its signature, or signed for another thread.
        let err = vet_sync_message::<Vec<u8>>(&thread(), &message, &[]).unwrap_err();
        assert_eq!(
            err.code(),
            social_sync_protocol::ErrorCode::BadChangeSignature
        );
        let other = DocId::Thread(PostId::new(UserId::from_bytes([1; 32]), b"q"));
        let err = vet_sync_message(&other, &message, &[sig]).unwrap_err();
        assert!(matches!(err, Unvetted::BadSignature { .. }), "{err}");
    }

    #[test]
    fn a_compressed_change_chunk_is_refused_before_it_inflates() {
        let mut am = liked(2);
        let mut change = am.get_changes(&[]).remove(0);
        let mut raw = change.raw_bytes().to_vec();
        raw[8] = 2; // what a compressed chunk says it is
        let err = vet_change(&thread(), 0, &raw).unwrap_err();
        assert!(matches!(err, Unvetted::NotAChange { .. }), "{err}");
        // A whole document is refused as well.
        let err = vet_change(&thread(), 0, &am.save()).unwrap_err();
        assert!(err.to_string().contains("type 0"), "{err}");
        let _ = change.bytes();
    }

    #[test]
    fn two_chunks_in_one_item_are_refused() {
        let mut am = liked(2);
        let raw = am.get_changes(&[])[0].raw_bytes().to_vec();
        let twice = [raw.clone(), raw].concat();
        let err = vet_change(&thread(), 0, &twice).unwrap_err();
        assert!(err.to_string().contains("but its chunk is"), "{err}");
        assert_eq!(
            vet_changes_concatenated(&thread(), &twice).unwrap().len(),
            2
        );
    }

    #[test]
    fn bloom_headers_outside_automerge_are_refused() {
        // entries=1, bits/entry=10, probes=20,000,000
        let mut huge = vec![1, 10];
        huge.extend([0x80, 0xda, 0xc4, 0x09]);
        huge.push(0xff);
        assert!(check_bloom(&thread(), &huge).is_err());
        // entries=5, bits/entry=0, probes=7: zero bits
        assert!(check_bloom(&thread(), &[5, 0, 7]).is_err());
        assert!(check_bloom(&thread(), &[5, 10, 7, 0xff, 0xff]).is_ok());
    }

    #[test]
    fn a_change_going_back_behind_its_dependency_is_refused() {
        use automerge::ExpandedChange;
        use std::num::NonZeroU64;
        let mut am = liked(2); // one op: max op 1
        let dep = am.get_heads();
        let back = Change::from(ExpandedChange {
            operations: am.get_changes(&[])[0].decode().operations,
            actor_id: actor_id(UserId::from_bytes([2; 32]), [0; 8]),
            hash: None,
            seq: 2,
            start_op: NonZeroU64::MIN,
            time: 0,
            message: None,
            deps: dep,
            extra_bytes: Vec::new(),
            author: None,
        });
        let err = check_op_order_before(&thread(), &mut am, &[back]).unwrap_err();
        assert!(
            err.to_string().contains("starts at op 1, not after op 1"),
            "{err}"
        );
        let mut next = am.fork();
        ThreadDoc::unlike(&mut next, UserId::from_bytes([2; 32])).unwrap();
        next.commit();
        let honest = next.get_changes(&am.get_heads());
        check_op_order_before(&thread(), &mut am, &honest).unwrap();
    }

    #[test]
    fn a_change_claiming_billions_of_operations_is_refused_before_decoding() {
        let mut am = liked(2);
        let honest = am.get_changes(&[]).remove(0).raw_bytes().to_vec();
        assert_eq!(count_ops(&honest), Ok(1));
        let bomb = chunk::with_action_run(&honest, 1 << 40);
        let started = std::time::Instant::now();
        let err = vet_change(&thread(), 0, &bomb).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(
            err.to_string().contains("claims 1099511627776 operations"),
            "{err}"
        );
    }
}
