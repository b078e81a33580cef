//! (d) Catch-up: `authors` documents, each written with `changes / authors` changes (one
//! post each) and synced to the server by its writer while the device is away; then the
//! device connects and `request`s every document until it holds every change.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ChangeHash, ObjType, ROOT};
use futures_util::{StreamExt, TryStreamExt};

use super::doc::SyncedDoc;
use super::wire::{Conn, Incoming, new_document_id, new_peer_id};
use crate::results::{CatchUp, Measured};

/// Writers syncing their documents to the server at once.
const WRITING_AT_ONCE: usize = 8;
/// How long one writer may take to sync its document.
const WRITE_LIMIT: Duration = Duration::from_secs(120);
/// How long the device may take to catch up.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(300);

/// Runs the catch-up workload against the server at `addr`.
pub(super) async fn run(
    addr: SocketAddr,
    authors: usize,
    changes: usize,
) -> anyhow::Result<Measured> {
    let per_author = changes / authors.max(1);
    let written: Vec<(String, Vec<ChangeHash>)> = futures_util::stream::iter(0..authors)
        .map(|n| write(addr, n, per_author))
        .buffer_unordered(WRITING_AT_ONCE)
        .try_collect()
        .await?;

    let start = Instant::now();
    let mut device = Conn::connect(addr, new_peer_id("device", 0))
        .await
        .context("the device's connection")?;
    let mut docs: HashMap<String, SyncedDoc> = HashMap::with_capacity(authors);
    let mut want: HashMap<String, Vec<ChangeHash>> = written.into_iter().collect();
    for id in want.keys() {
        let mut doc = SyncedDoc::wanted(id.clone());
        doc.send(&mut device).await?;
        docs.insert(id.clone(), doc);
    }
    tokio::time::timeout(CATCH_UP_LIMIT, async {
        while !want.is_empty() {
            match device.recv().await? {
                Some(Incoming::Sync { document_id, data }) => {
                    let Some(doc) = docs.get_mut(&document_id) else {
                        continue;
                    };
                    doc.apply(&data)?;
                    if let Some(heads) = want.get(&document_id) {
                        let mut ours = doc.doc.get_heads();
                        ours.sort();
                        if &ours == heads {
                            want.remove(&document_id);
                        }
                    }
                    doc.send(&mut device).await?;
                }
                Some(Incoming::Unavailable { document_id }) => {
                    bail!("the sync server says document {document_id} is unavailable")
                }
                Some(Incoming::Other) => {}
                None => bail!("the sync server closed the device's connection"),
            }
        }
        Ok(())
    })
    .await
    .map_err(|_| anyhow::anyhow!("the device did not catch up within {CATCH_UP_LIMIT:?}"))??;
    let ms = start.elapsed().as_secs_f64() * 1_000.0;
    let wire_bytes = device.received_bytes;
    device.close().await;

    let change_bytes = docs
        .values_mut()
        .flat_map(|d| d.doc.get_changes(&[]))
        .map(|c| c.raw_bytes().len() as u64)
        .sum();
    Ok(Measured::CatchUp(CatchUp {
        authors,
        changes: per_author * authors,
        ms,
        wire_bytes,
        change_bytes,
    }))
}

/// Writer `n`: a document of `changes` changes (a `posts` list, then one post per change),
/// synced to the server; returns its id and its heads (sorted).
async fn write(
    addr: SocketAddr,
    n: usize,
    changes: usize,
) -> anyhow::Result<(String, Vec<ChangeHash>)> {
    let mut made = AutoCommit::new();
    let posts = made.put_object(ROOT, "posts", ObjType::List)?;
    made.commit();
    for c in 1..changes {
        let post = made.insert_object(&posts, c - 1, ObjType::Map)?;
        made.put(&post, "id", format!("post-{n}-{c}"))?;
        made.put(
            &post,
            "text",
            format!("Post {c} by author {n}, written while the device was away."),
        )?;
        made.put(&post, "at", c as u64)?;
        made.commit();
    }
    let mut doc = SyncedDoc::made(new_document_id(), made);
    let mut conn = Conn::connect(addr, new_peer_id("writer", n))
        .await
        .with_context(|| format!("writer {n}'s connection"))?;
    doc.sync_until_in_step(&mut conn, WRITE_LIMIT).await?;
    conn.close().await;
    let mut heads = doc.doc.get_heads();
    heads.sort();
    Ok((doc.id, heads))
}
