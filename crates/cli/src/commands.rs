//! Runs one command against the profile.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use social_sync_core::{Env, FeedCursor, Replica, SyncEngine, UserId};

use crate::output::Printer;
use crate::{Cli, Command, Error};

/// Runs the parsed command line, writing results to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), Error> {
    let dir = cli.profile.ok_or(Error::NoProfileArg)?;
    let mut p = Printer::new(out, cli.json);
    if let Command::Init { name, relay } = &cli.command {
        if let Some(url) = relay {
            check_relay_url(url)?;
        }
        let replica = Replica::create(&dir, name, relay.as_deref(), Env::system())?;
        let me = replica.profile(replica.user_id())?;
        return p.value(
            &json!({"uid": me.uid, "name": me.name, "profile": dir}),
            |w| {
                writeln!(
                    w,
                    "Made a profile for {} in {}\nuser id: {}",
                    name,
                    dir.display(),
                    me.uid
                )
            },
        );
    }
    let mut r = Replica::open(&dir, Env::system())?;
    match cli.command {
        Command::Init { .. } => Ok(()),
        Command::Whoami => {
            let me = r.profile(r.user_id())?;
            p.value(&json!({"uid": me.uid, "name": me.name}), |w| {
                writeln!(w, "{} ({})", me.name.as_deref().unwrap_or(""), me.uid)
            })
        }
        Command::SetProfile { name, bio, avatar } => {
            r.set_profile(name.as_deref(), bio.as_deref())?;
            if let Some(path) = avatar {
                r.set_avatar(&path)?;
            }
            let me = r.profile(r.user_id())?;
            p.profile(&me)
        }
        Command::Profile { uid } => {
            let view = r.profile(uid.unwrap_or(r.user_id()))?;
            p.profile(&view)
        }
        Command::Post { text, file, images } => {
            let text = text_argument(text, file)?;
            let id = r.post(&text, &images)?;
            p.value(&json!({"post_id": id}), |w| writeln!(w, "Posted {id}"))
        }
        Command::DeletePost { post_id } => {
            r.delete_post(&post_id)?;
            p.value(&json!({"post_id": post_id, "deleted": true}), |w| {
                writeln!(w, "Deleted {post_id}")
            })
        }
        Command::Like { post_id } => {
            r.like(&post_id)?;
            p.post_state(&r.post_view(&post_id)?)
        }
        Command::Unlike { post_id } => {
            r.unlike(&post_id)?;
            p.post_state(&r.post_view(&post_id)?)
        }
        Command::Comment {
            post_id,
            text,
            file,
        } => {
            let text = text_argument(text, file)?;
            let id = r.comment(&post_id, &text)?;
            p.value(&json!({"comment_id": id, "post_id": post_id}), |w| {
                writeln!(w, "Commented {id}")
            })
        }
        Command::DeleteComment { comment_id } => {
            r.delete_comment(&comment_id)?;
            p.value(&json!({"comment_id": comment_id, "deleted": true}), |w| {
                writeln!(w, "Deleted {comment_id}")
            })
        }
        Command::Follow { who } => {
            let (uid, looked_up) = match who.strip_prefix('@') {
                Some(name) => {
                    let engine = engine(r, None)?;
                    let found = block_on(engine.lookup_name(name))??;
                    r = unwrap_replica(engine)?;
                    let uid = found.ok_or_else(|| Error::UnknownName(name.to_owned()))?;
                    (uid, Some(name))
                }
                None => (
                    who.parse::<UserId>().map_err(|_| Error::Who(who.clone()))?,
                    None,
                ),
            };
            r.follow(uid)?;
            // A looked-up name is shown with the user id the relay answered, so a
            // look-alike name cannot pass for someone else.
            p.value(
                &json!({"uid": uid, "name": looked_up, "following": true}),
                |w| match looked_up {
                    Some(name) => writeln!(w, "Following @{name}: user {uid}"),
                    None => writeln!(w, "Following {uid}"),
                },
            )
        }
        Command::Unfollow { uid } => {
            r.unfollow(uid)?;
            p.value(&json!({"uid": uid, "following": false}), |w| {
                writeln!(w, "No longer following {uid}")
            })
        }
        Command::Feed { limit, after } => {
            let cursor = match after {
                Some(id) => {
                    let post = r
                        .post_view(&id)
                        .map_err(|_| Error::Cursor(id.to_string()))?;
                    Some(FeedCursor {
                        created_at: post.created_at,
                        post_id: id,
                    })
                }
                None => None,
            };
            let page = r.feed(cursor.as_ref(), usize::from(limit))?;
            p.posts(&page.posts)
        }
        Command::Thread { post_id } => p.thread(&r.thread(&post_id)?),
        Command::Notifications { unread, limit } => {
            p.notifications(&r.notifications(unread, limit)?)
        }
        Command::MarkRead { id, all } => {
            let marked = match (id, all) {
                (_, true) => r.mark_all_read()?,
                (Some(id), false) => {
                    r.mark_read(&id)?;
                    1
                }
                (None, false) => return Err(Error::MarkWhat),
            };
            p.value(&json!({"marked": marked}), |w| {
                writeln!(w, "Marked {marked} read")
            })
        }
        Command::Search { text, limit } => p.posts(&r.search(&text, usize::from(limit))?),
        Command::Export { dir } => {
            let summary = r.export(&dir)?;
            for skipped in &summary.skipped {
                tracing::warn!("left out of the export: {skipped}");
            }
            p.value(&summary, |w| {
                writeln!(
                    w,
                    "Exported {} documents and {} images to {}",
                    summary.documents,
                    summary.blobs,
                    dir.display()
                )
            })
        }
        Command::Import { dir } => {
            let summary = r.import(&dir)?;
            p.value(&summary, |w| {
                writeln!(
                    w,
                    "Imported {} documents ({} new changes) and {} images from {}; {} new notifications",
                    summary.documents,
                    summary.changes_applied,
                    summary.blobs,
                    dir.display(),
                    summary.notifications.len()
                )
            })
        }
        Command::Sync { relay } => {
            let engine = engine(r, relay.as_deref())?;
            let summary = block_on(engine.sync_once())??;
            remember_relay(&engine, relay.as_deref())?;
            // Told on stderr too, so a script reading the JSON still shows it to a person.
            for undelivered in &summary.undelivered {
                tracing::warn!("{undelivered}");
            }
            p.value(&summary, |w| {
                writeln!(
                    w,
                    "Sync done: {} documents offered, {} changes received, {} new notifications, {} images, {} local changes still waiting",
                    summary.documents,
                    summary.received,
                    summary.notifications.len(),
                    summary.images,
                    summary.waiting
                )?;
                for refusal in &summary.refusals {
                    writeln!(w, "The relay refused ({refusal})")?;
                }
                for undelivered in &summary.undelivered {
                    writeln!(w, "Not delivered: {undelivered}")?;
                }
                Ok(())
            })
        }
        Command::Watch { relay } => {
            let engine = engine(r, relay.as_deref())?;
            let mut remembered = relay.is_none();
            let mut events = engine.subscribe();
            block_on(async {
                let stop = async {
                    let _ = tokio::signal::ctrl_c().await;
                };
                let run = engine.run(stop);
                tokio::pin!(run);
                loop {
                    tokio::select! {
                        result = &mut run => return result.map_err(Error::from),
                        event = events.recv() => match event {
                            Ok(event) => {
                                if !remembered
                                    && matches!(&event, social_sync_core::Event::Connection { status: social_sync_core::ConnectionStatus::Online, .. })
                                {
                                    remember_relay(&engine, relay.as_deref())?;
                                    remembered = true;
                                }
                                p.value(&event, |w| writeln!(w, "{}", crate::output::describe(&event)))?
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                                tracing::warn!("{n} events were dropped: the output did not keep up");
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => {}
                        },
                    }
                }
            })?
        }
        Command::Online { relay } => {
            let engine = engine(r, relay.as_deref())?;
            let online = block_on(engine.online())??;
            remember_relay(&engine, relay.as_deref())?;
            let r = unwrap_replica(engine)?;
            let list: Vec<_> = online
                .iter()
                .map(|e| {
                    let name = r.profile(e.user).ok().and_then(|p| p.name);
                    json!({"user": e.user, "name": name, "devices": e.devices})
                })
                .collect();
            p.value(&list, |w| {
                if list.is_empty() {
                    writeln!(w, "Nobody you follow is online.")?;
                }
                for (entry, json) in online.iter().zip(&list) {
                    let name = json["name"].as_str().unwrap_or("");
                    writeln!(w, "{name} ({}) on {} device(s)", entry.user, entry.devices)?;
                }
                Ok(())
            })
        }
        Command::Reindex => {
            let report = r.reindex()?;
            let damaged: Vec<_> = report
                .damaged
                .iter()
                .map(|(doc, error)| json!({"doc": doc, "error": error}))
                .collect();
            p.value(
                &json!({"documents": report.documents, "damaged": damaged}),
                |w| {
                    writeln!(w, "Reindexed {} documents", report.documents)?;
                    for (_, error) in &report.damaged {
                        writeln!(w, "damaged: {error}")?;
                    }
                    Ok(())
                },
            )
        }
    }
}

/// Most bytes read for a post or comment from a file or standard input: far over any
/// limit (the length check then says by how much), far under what could hurt.
const MAX_TEXT_BYTES: u64 = 1024 * 1024;

/// The text of a post or comment: the argument, standard input for `-`, or a file.
fn text_argument(text: Option<String>, file: Option<std::path::PathBuf>) -> Result<String, Error> {
    use std::io::Read;
    let (source, reader): (String, Box<dyn Read>) = match (text, file) {
        (_, Some(path)) => {
            let f = std::fs::File::open(&path).map_err(|e| Error::TextSource {
                source_name: path.display().to_string(),
                detail: e.to_string(),
            })?;
            (path.display().to_string(), Box::new(f))
        }
        (Some(text), None) if text == "-" => {
            ("standard input".to_owned(), Box::new(std::io::stdin()))
        }
        (Some(text), None) => return Ok(text),
        (None, None) => return Ok(String::new()),
    };
    let mut bytes = Vec::new();
    reader
        .take(MAX_TEXT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::TextSource {
            source_name: source.clone(),
            detail: e.to_string(),
        })?;
    if bytes.len() as u64 > MAX_TEXT_BYTES {
        return Err(Error::TextSource {
            source_name: source,
            detail: format!("it holds more than {MAX_TEXT_BYTES} bytes"),
        });
    }
    let text = String::from_utf8(bytes).map_err(|_| Error::TextSource {
        source_name: source,
        detail: "it is not UTF-8 text".into(),
    })?;
    // A file or a pipe usually ends with a newline that is not part of the text.
    Ok(text.strip_suffix('\n').map(str::to_owned).unwrap_or(text))
}

fn check_relay_url(url: &str) -> Result<(), Error> {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(()),
        _ => Err(Error::RelayUrl(url.to_owned())),
    }
}

/// A sync engine for the profile, with the relay from `--relay` or from settings. A relay
/// given with `--relay` is saved only once it answered ([`remember_relay`]): a mistyped
/// address never replaces a working one.
fn engine(r: Replica, relay: Option<&str>) -> Result<SyncEngine, Error> {
    let url = match relay {
        Some(url) => {
            check_relay_url(url)?;
            url.to_owned()
        }
        None => r.relay_url()?.ok_or(social_sync_core::SyncError::NoRelay)?,
    };
    Ok(SyncEngine::new(Arc::new(Mutex::new(r)), url))
}

/// Saves `--relay` as the profile's relay, now that it answered.
fn remember_relay(engine: &SyncEngine, relay: Option<&str>) -> Result<(), Error> {
    if let Some(url) = relay {
        engine.replica().set_relay_url(url)?;
    }
    Ok(())
}

/// Takes the replica back from an engine that is done.
fn unwrap_replica(engine: SyncEngine) -> Result<Replica, Error> {
    let shared = engine.into_replica();
    let mutex = Arc::try_unwrap(shared).map_err(|_| Error::Busy)?;
    Ok(mutex
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// Runs a future on a single-threaded runtime: the CLI does one thing at a time.
fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(future))
}
