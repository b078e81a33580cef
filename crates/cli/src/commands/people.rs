//! Who the user follows, who follows them, whom they blocked, and muted posts.

use serde::Serialize;
use serde_json::json;
use social_sync_core::{PostId, Replica, UserId};

use crate::Error;
use crate::output::Printer;

/// A user in a list: the id, and the display name once their profile has arrived.
#[derive(Debug, Serialize)]
pub(super) struct Person {
    /// Their id.
    pub uid: UserId,
    /// Their display name, if this profile holds it.
    pub name: Option<String>,
}

/// Looks up the display names of `uids`.
fn people(r: &Replica, uids: Vec<UserId>) -> Vec<Person> {
    uids.into_iter()
        .map(|uid| Person {
            uid,
            name: r.profile(uid).ok().and_then(|p| p.name),
        })
        .collect()
}

/// Prints a list of people, or `empty` when there is nobody; `local` says the list is
/// what this profile has synced because the relay was not reached.
fn print_people(
    p: &mut Printer<'_>,
    list: &[Person],
    empty: &str,
    local: bool,
) -> Result<(), Error> {
    p.value(list, |w| {
        if list.is_empty() {
            writeln!(w, "{empty}")?;
        }
        for person in list {
            writeln!(
                w,
                "{} ({})",
                person.name.as_deref().unwrap_or(""),
                person.uid
            )?;
        }
        if local {
            writeln!(
                w,
                "(as this profile knows them: the relay was not reached; sync to learn of more)"
            )?;
        }
        Ok(())
    })
}

/// `following`: the people the user follows (from the relay when it answers: the same
/// list everyone online sees).
pub(super) fn following(r: Replica, p: &mut Printer<'_>) -> Result<(), Error> {
    let me = r.user_id();
    let (graph, r) = super::relay::follow_graph_and_profile(r, me)?;
    let local = graph.is_none();
    let uids = match graph {
        Some(g) => g.following_ids,
        None => r.following()?,
    };
    print_people(p, &people(&r, uids), "You follow nobody yet.", local)
}

/// `followers`: the people who follow the user, from the relay when it answers (the same
/// list everyone online sees); offline, those this profile knows of from what it synced.
pub(super) fn followers(r: Replica, p: &mut Printer<'_>) -> Result<(), Error> {
    let me = r.user_id();
    let (graph, r) = super::relay::follow_graph_and_profile(r, me)?;
    let local = graph.is_none();
    let mut uids = match graph {
        Some(g) => g.follower_ids,
        None => r.followers()?,
    };
    // Blocked people are left out, as everywhere (blocking is private to this profile).
    let blocked: Vec<UserId> = r.blocked()?.into_iter().map(|(uid, _)| uid).collect();
    uids.retain(|uid| !blocked.contains(uid));
    print_people(p, &people(&r, uids), "Nobody follows you yet.", local)
}

/// `blocked`: the blocked users, most recent first.
pub(super) fn blocked(r: &Replica, p: &mut Printer<'_>) -> Result<(), Error> {
    let list: Vec<Person> = r
        .blocked()?
        .into_iter()
        .map(|(uid, name)| Person { uid, name })
        .collect();
    print_people(p, &list, "You blocked nobody.", false)
}

/// `block` / `unblock`.
pub(super) fn set_blocked(
    r: &mut Replica,
    uid: UserId,
    blocked: bool,
    p: &mut Printer<'_>,
) -> Result<(), Error> {
    if blocked {
        r.block(uid)?;
    } else {
        r.unblock(uid)?;
    }
    p.value(&json!({"uid": uid, "blocked": blocked}), |w| {
        if blocked {
            writeln!(w, "Blocked {uid}")
        } else {
            writeln!(w, "Unblocked {uid}")
        }
    })
}

/// `mute` / `unmute`.
pub(super) fn set_muted(
    r: &mut Replica,
    post_id: PostId,
    muted: bool,
    p: &mut Printer<'_>,
) -> Result<(), Error> {
    if muted {
        r.mute_post(&post_id)?;
    } else {
        r.unmute_post(&post_id)?;
    }
    p.value(&json!({"post_id": post_id, "muted": muted}), |w| {
        if muted {
            writeln!(
                w,
                "Muted {post_id}: its likes and comments no longer notify"
            )
        } else {
            writeln!(w, "Unmuted {post_id}")
        }
    })
}
