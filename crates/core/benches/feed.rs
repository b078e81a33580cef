//! Fills a real profile with 100,000 posts from 1,000 followed users plus likes and
//! comments, then prints: the time to merge them, feed-page query times (median and p99
//! for pages of 50), the reindex time, the database size, and the load time of one large
//! user document. Target: a feed page in under 2 ms at 100k posts.
//!
//! Run: `cargo bench -p social-sync-core --bench feed` (add `-- --quick` for a 10× smaller
//! run).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

use std::time::{Duration, Instant};

use automerge::{AutoCommit, Change, transaction::CommitOptions};
use rand::{Rng, SeedableRng, rngs::StdRng};
use social_sync_core::model::{
    CommentEntry, PostEntry, ProfileFields, ThreadDoc, UserDoc, actor_id,
};
use social_sync_core::{CommentId, DocId, Env, FeedCursor, Identity, PostId, Replica, UserId};

/// A document's changes and their authors' signatures, one each.
type SignedDoc = (DocId, Vec<Vec<u8>>, Vec<Vec<u8>>);

struct Scale {
    users: usize,
    posts_per_user: usize,
    /// One post in this many gets a thread of likes and comments.
    thread_every: usize,
    likes_per_thread: usize,
    comments_per_thread: usize,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick {
        Scale {
            users: 100,
            posts_per_user: 100,
            thread_every: 10,
            likes_per_thread: 5,
            comments_per_thread: 2,
        }
    } else {
        Scale {
            users: 1_000,
            posts_per_user: 100,
            thread_every: 10,
            likes_per_thread: 5,
            comments_per_thread: 2,
        }
    };
    let total_posts = scale.users * scale.posts_per_user;
    println!(
        "Social Sync core benchmark ({} posts from {} users)",
        total_posts, scale.users
    );

    // Set SOCIAL_SYNC_BENCH_DIR to keep the profile for a look with `sqlite3` afterwards.
    let tmp = tempfile::tempdir().unwrap();
    let dir =
        std::env::var_os("SOCIAL_SYNC_BENCH_DIR").map_or_else(|| tmp.path().to_owned(), Into::into);
    let mut me =
        Replica::create(&dir, "Me", None, Env::deterministic(7, 1_700_000_000_000)).unwrap();
    let mut rng = StdRng::seed_from_u64(42);

    // ----- generate the other users' documents, as their own devices would ------------
    let t = Instant::now();
    let mut env = Env::deterministic(11, 0);
    let keys: Vec<Identity> = (0..scale.users)
        .map(|_| Identity::generate(&mut env))
        .collect();
    let users: Vec<UserId> = keys.iter().map(Identity::user_id).collect();
    let key_of = |uid: UserId| &keys[users.iter().position(|u| *u == uid).unwrap()];
    // Each change with its author's signature, as their devices would send them.
    let signed =
        |doc: &DocId, key: &Identity, changes: &[Change]| -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
            changes
                .iter()
                .map(|c| (c.raw_bytes().to_vec(), key.sign_change(doc, c).to_vec()))
                .unzip()
        };
    let mut docs: Vec<SignedDoc> = Vec::new();
    let mut posts: Vec<PostId> = Vec::with_capacity(total_posts);
    let mut time = 1_700_000_000_000i64;
    for (i, &uid) in users.iter().enumerate() {
        let mut am = AutoCommit::new().with_actor(actor_id(uid, [0; 8]));
        let profile = ProfileFields {
            name: format!("user{i}"),
            bio: String::new(),
            avatar: None,
        };
        UserDoc::set_profile(&mut am, &profile).unwrap();
        am.commit_with(CommitOptions::default().with_time(time));
        for p in 0..scale.posts_per_user {
            time += 1_000;
            let id = PostId::new(uid, &rng.random::<[u8; 10]>());
            let text = format!(
                "post {p} by user{i}: {}",
                WORDS[rng.random_range(0..WORDS.len())]
            );
            UserDoc::add_post(
                &mut am,
                &PostEntry {
                    id: id.clone(),
                    text,
                    media: vec![],
                    created_at: time,
                },
            )
            .unwrap();
            am.commit_with(CommitOptions::default().with_time(time));
            posts.push(id);
        }
        let doc = DocId::User(uid);
        let (changes, sigs) = signed(&doc, &keys[i], &am.get_changes(&[]));
        docs.push((doc, changes, sigs));
    }
    let mut reactions = 0usize;
    for post in posts.iter().step_by(scale.thread_every) {
        let doc = DocId::Thread(post.clone());
        let (mut changes, mut sigs) = (Vec::new(), Vec::new());
        for _ in 0..scale.likes_per_thread {
            let who = users[rng.random_range(0..users.len())];
            reactions += 1;
            let mut am =
                AutoCommit::new().with_actor(actor_id(who, (reactions as u64).to_le_bytes()));
            ThreadDoc::like(&mut am, who, time).unwrap();
            am.commit_with(CommitOptions::default().with_time(time));
            let (c, s) = signed(&doc, key_of(who), &am.get_changes(&[]));
            changes.extend(c);
            sigs.extend(s);
        }
        for _ in 0..scale.comments_per_thread {
            let who = users[rng.random_range(0..users.len())];
            reactions += 1;
            let mut am =
                AutoCommit::new().with_actor(actor_id(who, (reactions as u64).to_le_bytes()));
            let entry = CommentEntry {
                id: CommentId::new(who, &rng.random::<[u8; 10]>()),
                text: "nice one".into(),
                created_at: time,
            };
            ThreadDoc::add_comment(&mut am, &entry).unwrap();
            am.commit_with(CommitOptions::default().with_time(time));
            let (c, s) = signed(&doc, key_of(who), &am.get_changes(&[]));
            changes.extend(c);
            sigs.extend(s);
        }
        docs.push((doc, changes, sigs));
    }
    let change_count: usize = docs.iter().map(|(_, c, _)| c.len()).sum();
    println!(
        "generated {} documents, {} changes ({} likes and comments) in {:.1?}",
        docs.len(),
        change_count,
        reactions,
        t.elapsed()
    );

    // ----- merge ----------------------------------------------------------------------
    let t = Instant::now();
    let mut notified = 0;
    for (doc, changes, sigs) in &docs {
        notified += me.merge(doc, changes, sigs).unwrap().notifications.len();
    }
    let merge = t.elapsed();
    println!(
        "merge:   {:.2?} for {} documents ({:.0} changes/s), {} notifications",
        merge,
        docs.len(),
        change_count as f64 / merge.as_secs_f64(),
        notified
    );

    let t = Instant::now();
    for &uid in &users {
        me.follow(uid).unwrap();
    }
    println!(
        "follow:  {:.2?} to follow {} users one by one",
        t.elapsed(),
        users.len()
    );
    for post in posts.iter().step_by(97).take(200) {
        me.like(post).unwrap();
    }

    // ----- feed pages -----------------------------------------------------------------
    let mut first_page = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let page = me.feed(None, 50).unwrap();
        first_page.push(t.elapsed());
        assert_eq!(page.posts.len(), 50);
    }
    let mut all_pages = Vec::new();
    let mut cursor: Option<FeedCursor> = None;
    let mut seen = 0;
    loop {
        let t = Instant::now();
        let page = me.feed(cursor.as_ref(), 50).unwrap();
        all_pages.push(t.elapsed());
        seen += page.posts.len();
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(
        seen, total_posts,
        "paging the whole feed shows every post once"
    );
    println!(
        "feed, first page of 50 (200 runs):   {}",
        stats(&mut first_page)
    );
    println!(
        "feed, every page of 50 ({} pages): {}",
        all_pages.len(),
        stats(&mut all_pages)
    );

    let mut searches = Vec::new();
    for word in WORDS {
        let t = Instant::now();
        me.search(word, 50).unwrap();
        searches.push(t.elapsed());
    }
    println!(
        "search, 50 results ({} words):       {}",
        WORDS.len(),
        stats(&mut searches)
    );

    // ----- reindex and size -----------------------------------------------------------
    let t = Instant::now();
    let report = me.reindex().unwrap();
    println!(
        "reindex: {:.2?} for {} documents",
        t.elapsed(),
        report.documents
    );
    me.store()
        .conn()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    println!(
        "database: {:.1} MiB",
        me.store().size_on_disk() as f64 / 1_048_576.0
    );

    // ----- document growth: one user with years of posts ------------------------------
    for n in [1_000usize, 10_000] {
        let uid = UserId::from_bytes(rng.random());
        let mut am = AutoCommit::new().with_actor(actor_id(uid, [0; 8]));
        for p in 0..n {
            let id = PostId::new(uid, &rng.random::<[u8; 10]>());
            let text = format!(
                "a typical post of some length, number {p}, {}",
                WORDS[p % WORDS.len()]
            );
            UserDoc::add_post(
                &mut am,
                &PostEntry {
                    id,
                    text,
                    media: vec![],
                    created_at: p as i64,
                },
            )
            .unwrap();
            am.commit_with(CommitOptions::default().with_time(p as i64));
        }
        let bytes = am.save();
        let t = Instant::now();
        let loaded = AutoCommit::load(&bytes).unwrap();
        let load = t.elapsed();
        assert_eq!(UserDoc(&loaded).post_ids().count(), n);
        println!(
            "user document with {n} posts: {:.0} KiB saved, loads in {:.1?}",
            bytes.len() as f64 / 1024.0,
            load
        );
    }
    println!("target: feed page p99 < 2 ms at 100k posts");
}

fn stats(samples: &mut [Duration]) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    format!(
        "median {:>8.3} ms, p99 {:>8.3} ms, max {:>8.3} ms",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3
    )
}

const WORDS: &[&str] = &[
    "sunset",
    "harbour",
    "coffee",
    "mountain",
    "river",
    "garden",
    "bicycle",
    "library",
    "concert",
    "market",
    "winter",
    "lighthouse",
    "bakery",
    "forest",
    "island",
    "museum",
    "rain",
    "festival",
    "train",
    "meadow",
];
