//! (d) Catch-up: a real device follows `authors` people, goes away while they make
//! `changes` changes in all (posts), and comes back: one sync (the CLI's `sync`), timed from
//! connect until it holds everything, and the bytes the relay sent it (its `/metrics`
//! `bytes_out`, with no other client connected).

use std::time::{Duration, Instant};

use anyhow::bail;

use super::engine::EngineClient;
use super::light::{Light, identity};
use super::relay::Relay;
use crate::results::{CatchUp, Measured};
use crate::system::Paths;

/// Runs the workload.
pub async fn run(paths: &Paths, authors: usize, changes: usize) -> anyhow::Result<Measured> {
    let relay = Relay::start(paths)?;
    let url = relay.url();
    let home = tempfile::tempdir()?;
    let mut writers = Vec::with_capacity(authors);
    for n in 0..authors {
        let mut light = Light::connect(&url, identity(60_000 + n as u64)).await?;
        // A first post the device saw before it went away (a device that never held a
        // document is sent it whole again on each of its first messages: Automerge's
        // sync resets for a peer with no heads).
        light.write_post(u64::MAX)?;
        light.sync_own().await?;
        writers.push(light);
    }
    let mut device = EngineClient::create(&home.path().join("device"), "device", &url)?;
    for w in &writers {
        device.replica().follow(w.user())?;
    }
    device.start(Duration::from_secs(30)).await?;
    device.stop().await;

    // While it is away: `changes` posts in all, each its own change, sent by each author
    // in one sync.
    let per_author = changes / authors.max(1);
    let mut change_bytes = 0u64;
    for w in &mut writers {
        for p in 0..per_author {
            let hash = w.write_post(p as u64)?;
            change_bytes += w.change_len(&hash)? as u64;
        }
        w.sync_own().await?;
    }
    for w in writers {
        w.close().await;
    }
    let written = per_author * authors;
    let first_posts = authors;

    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = relay.metric("bytes_out")?;
    let start = Instant::now();
    device.sync_once().await?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let wire_bytes = (relay.metric("bytes_out")? - before) as u64;
    let held = count_feed(&device)?;
    if held != written + first_posts {
        bail!(
            "the device holds {held} of the {} posts after catching up",
            written + first_posts
        );
    }
    Ok(Measured::CatchUp(CatchUp {
        authors,
        changes: written,
        ms,
        wire_bytes,
        change_bytes,
    }))
}

/// Posts in the device's feed, page after page as the app scrolls.
fn count_feed(device: &EngineClient) -> anyhow::Result<usize> {
    let replica = device.replica();
    let (mut count, mut cursor) = (0, None);
    loop {
        let page = replica.feed(cursor.as_ref(), 500)?;
        count += page.posts.len();
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(count),
        }
    }
}
