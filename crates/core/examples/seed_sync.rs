//! Prepares the desktop benchmark's "large sync": 100 people write `COUNT` posts between
//! them (one change each) and sync them to the relay at `RELAY`; Ana, in `OUT/ana`, follows
//! them all but has not synced any of it yet. The app then opens Ana's profile and applies
//! the whole sync. (One author with 10,000 posts would be as valid a test, but writing it is
//! quadratic here: each local edit loads and saves the whole document.)
//!
//! Usage: cargo run --release -p social-sync-core --example seed_sync -- RELAY OUT COUNT
//! Prints the authors' user ids, one per line.

#![allow(clippy::print_stdout)]

use std::sync::{Arc, Mutex};

use social_sync_core::{Env, Replica, SyncEngine};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [relay, out, count] = args.as_slice() else {
        return Err("usage: seed_sync RELAY OUT COUNT".into());
    };
    let count: usize = count.parse()?;
    let out = std::path::Path::new(out);
    let runtime = tokio::runtime::Runtime::new()?;

    const AUTHORS: usize = 100;
    let mut authors = Vec::new();
    for a in 0..AUTHORS {
        let mut author = Replica::create(
            &out.join(format!("author-{a}")),
            &format!("Author {a}"),
            Some(relay),
            Env::system(),
        )?;
        for i in (a..count).step_by(AUTHORS) {
            author.post(&format!("Post {i} of a long day at the harbour"), &[])?;
        }
        authors.push(author.user_id());
        let engine = SyncEngine::new(Arc::new(Mutex::new(author)), relay.clone());
        runtime.block_on(engine.sync_once())?;
    }

    let mut ana = Replica::create(&out.join("ana"), "Ana", Some(relay), Env::system())?;
    for uid in &authors {
        ana.follow(*uid)?;
        println!("{uid}");
    }
    Ok(())
}
