//! Runs one command against the profile, one module per area:
//!
//! - [`files`]: the key backup and saved images (files the user keeps).
//! - [`people`]: following, followers, blocks and muted posts.
//! - [`relay`]: sync, watch and online, and the sync engine helpers.
//! - [`text`]: the text of a post or comment from an argument, a file or standard input.

mod files;
mod people;
mod relay;
mod text;

use std::io::Write;

use serde_json::json;
use social_sync_core::{Env, FeedCursor, NotificationKind, Replica, UserId};

use crate::output::Printer;
use crate::{Cli, Command, Error};
use relay::{block_on, engine, unwrap_replica};
use text::text_argument;

/// Runs the parsed command line, writing results to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), Error> {
    let dir = cli.profile.ok_or(Error::NoProfileArg)?;
    let mut p = Printer::new(out, cli.json);
    if let Command::Init {
        name,
        relay,
        ca_cert,
        from_backup,
        passphrase_file,
    } = &cli.command
    {
        // Saved as parsed: one address, or several joined by ", ".
        let relay = relay
            .as_deref()
            .map(relay::parse_relays)
            .transpose()?
            .map(|list| list.to_string());
        let ca = ca_cert.as_deref().map(relay::read_ca).transpose()?;
        if let Some(backup) = from_backup {
            files::init_from_backup(
                &dir,
                backup,
                passphrase_file.as_deref(),
                relay.as_deref(),
                &mut p,
            )?;
            if let Some(pem) = &ca {
                Replica::open(&dir, Env::system())?.set_relay_ca(pem)?;
            }
            return Ok(());
        }
        // clap requires --name without --from-backup.
        let name = name.as_deref().unwrap_or_default();
        let mut replica = Replica::create(&dir, name, relay.as_deref(), Env::system())?;
        if let Some(pem) = &ca {
            replica.set_relay_ca(pem)?;
        }
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
            // The relays as saved, tried in this order (`watch` tells the one connected).
            let relays: Vec<String> = r.relays()?.map(|l| l.urls().to_vec()).unwrap_or_default();
            p.value(
                &json!({"uid": me.uid, "name": me.name, "relays": relays}),
                |w| {
                    writeln!(w, "{} ({})", me.name.as_deref().unwrap_or(""), me.uid)?;
                    match relays.as_slice() {
                        [] => writeln!(w, "no relay set"),
                        [one] => writeln!(w, "relay: {one}"),
                        many => writeln!(w, "relays, tried in turn: {}", many.join(", ")),
                    }
                },
            )
        }
        Command::SetProfile { name, bio, avatar } => {
            r.set_profile(name.as_deref(), bio.as_deref())?;
            if let Some(path) = avatar {
                r.set_avatar(&path)?;
            }
            let me = r.profile(r.user_id())?;
            p.profile(&me, None)
        }
        Command::Profile { uid } => {
            let uid = uid.unwrap_or(r.user_id());
            let view = r.profile(uid)?;
            let graph = relay::follow_graph(r, uid)?;
            p.profile(&view, graph.as_ref())
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
                    let engine = engine(r, None, None)?;
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
        Command::Notifications {
            unread,
            limit,
            kinds,
        } => {
            let kinds: Vec<NotificationKind> = kinds.into_iter().map(Into::into).collect();
            p.notifications(&r.notifications_of_kinds(unread, &kinds, limit)?)
        }
        Command::Block { uid } => people::set_blocked(&mut r, uid, true, &mut p),
        Command::Unblock { uid } => people::set_blocked(&mut r, uid, false, &mut p),
        Command::Blocked => people::blocked(&r, &mut p),
        Command::Mute { post_id } => people::set_muted(&mut r, post_id, true, &mut p),
        Command::Unmute { post_id } => people::set_muted(&mut r, post_id, false, &mut p),
        Command::Following => people::following(r, &mut p),
        Command::Followers => people::followers(r, &mut p),
        Command::ExportKey {
            out,
            passphrase_file,
        } => files::export_key(&mut r, &out, passphrase_file.as_deref(), &mut p),
        Command::Image { hash, out } => files::save_image(&r, &hash, &out, &mut p),
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
        Command::Sync { relay, ca_cert } => {
            relay::sync(r, relay.as_deref(), ca_cert.as_deref(), &mut p)
        }
        Command::Watch { relay, ca_cert } => {
            relay::watch(r, relay.as_deref(), ca_cert.as_deref(), &mut p)
        }
        Command::Online { relay, ca_cert } => {
            relay::online(r, relay.as_deref(), ca_cert.as_deref(), &mut p)
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
