//! Prepares the desktop benchmark's "large sync": Ben writes `COUNT` posts (one change
//! each) and syncs them to the relay at `RELAY`; Ana, in `OUT/ana`, follows Ben but has not
//! synced his posts yet. The app then opens Ana's profile and applies the whole sync.
//!
//! Usage: cargo run --release -p social-sync-core --example seed_sync -- RELAY OUT COUNT
//! Prints Ben's user id.

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

    let mut ben = Replica::create(&out.join("ben"), "Ben", Some(relay), Env::system())?;
    for i in 0..count {
        ben.post(&format!("Post {i} of a long day at the harbour"), &[])?;
    }
    let ben_id = ben.user_id();
    let engine = SyncEngine::new(Arc::new(Mutex::new(ben)), relay.clone());
    runtime.block_on(engine.sync_once())?;

    let mut ana = Replica::create(&out.join("ana"), "Ana", Some(relay), Env::system())?;
    ana.follow(ben_id)?;
    println!("{ben_id}");
    Ok(())
}
