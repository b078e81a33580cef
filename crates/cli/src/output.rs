//! Prints results: JSON for programs (`--json`), short lines for people.

use std::io::{self, Write};

use serde::Serialize;
use social_sync_core::{
    Event, FeedItem, Notification, NotificationKind, ProfileView, RefusedBy, ThreadView,
};

use crate::Error;

/// Writes results in the chosen form.
pub struct Printer<'a> {
    out: &'a mut dyn Write,
    json: bool,
}

impl<'a> Printer<'a> {
    /// A printer writing to `out`, as JSON if `json`.
    pub fn new(out: &'a mut dyn Write, json: bool) -> Self {
        Self { out, json }
    }

    /// Prints `value` as JSON, or calls `human` to print it for people.
    pub fn value<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        human: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), Error> {
        if self.json {
            serde_json::to_writer(&mut *self.out, value).map_err(io::Error::from)?;
            writeln!(self.out)?;
        } else {
            human(self.out)?;
        }
        Ok(())
    }

    /// A list of posts.
    pub fn posts(&mut self, posts: &[FeedItem]) -> Result<(), Error> {
        self.value(posts, |w| {
            if posts.is_empty() {
                writeln!(w, "No posts.")?;
            }
            for post in posts {
                write_post(w, post)?;
            }
            Ok(())
        })
    }

    /// A post's like state after a like or unlike.
    pub fn post_state(&mut self, post: &FeedItem) -> Result<(), Error> {
        let state = serde_json::json!({
            "post_id": post.post_id, "likes": post.likes, "liked_by_me": post.liked_by_me
        });
        self.value(&state, |w| {
            let verb = if post.liked_by_me {
                "You like"
            } else {
                "You do not like"
            };
            writeln!(w, "{verb} {} ({})", post.post_id, count(post.likes, "like"))
        })
    }

    /// A post and its comments.
    pub fn thread(&mut self, thread: &ThreadView) -> Result<(), Error> {
        self.value(thread, |w| {
            write_post(w, &thread.post)?;
            for c in &thread.comments {
                writeln!(
                    w,
                    "    {} {}: {}  [{}]",
                    when(c.created_at),
                    name_or_id(c.author_name.as_deref(), &c.author),
                    c.text,
                    c.comment_id
                )?;
            }
            Ok(())
        })
    }

    /// A profile.
    pub fn profile(
        &mut self,
        p: &ProfileView,
        graph: Option<&social_sync_protocol::FollowGraph>,
    ) -> Result<(), Error> {
        // Counts come from the relay when it answered (the same for everyone online);
        // otherwise from what this profile holds, and the output says so.
        let (followers, following) =
            graph.map_or((p.followers, p.following), |g| (g.followers, g.following));
        let mut json = serde_json::to_value(p).map_err(std::io::Error::other)?;
        json["followers"] = followers.into();
        json["following"] = following.into();
        json["counts_from"] = if graph.is_some() {
            "relay"
        } else {
            "this profile"
        }
        .into();
        self.value(&json, |w| {
            writeln!(
                w,
                "{} ({})",
                p.name.as_deref().unwrap_or("(no name yet)"),
                p.uid
            )?;
            if !p.bio.is_empty() {
                writeln!(w, "{}", p.bio)?;
            }
            write!(
                w,
                "{} posts · {followers} followers · {following} following",
                p.posts
            )?;
            if graph.is_none() {
                write!(
                    w,
                    " (as this profile knows them: the relay was not reached)"
                )?;
            }
            writeln!(w)
        })
    }

    /// Notifications.
    pub fn notifications(&mut self, list: &[Notification]) -> Result<(), Error> {
        self.value(list, |w| {
            if list.is_empty() {
                writeln!(w, "No notifications.")?;
            }
            for n in list {
                let who = name_or_id(n.actor_name.as_deref(), &n.actor);
                let what = match n.kind {
                    NotificationKind::Like => "liked your post",
                    NotificationKind::Comment => "commented on your post",
                    NotificationKind::Follow => "followed you",
                };
                let dot = if n.read { " " } else { "•" };
                writeln!(w, "{dot} {} {who} {what}  [{}]", when(n.created_at), n.id)?;
            }
            Ok(())
        })
    }
}

fn write_post(w: &mut dyn Write, post: &FeedItem) -> io::Result<()> {
    let images = match post.media.len() {
        0 => String::new(),
        n => format!(" [{n} image{}]", if n == 1 { "" } else { "s" }),
    };
    writeln!(
        w,
        "{} {}: {}{images}\n    ♥ {}{} · {}  [{}]",
        when(post.created_at),
        name_or_id(post.author_name.as_deref(), &post.author),
        post.text,
        post.likes,
        if post.liked_by_me { " (you)" } else { "" },
        count(post.comments, "comment"),
        post.post_id
    )
}

/// "1 like", "2 likes".
fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The display name, or the start of the user id while the profile has not arrived.
/// Who wrote or did something: the name and the start of the user id, a fingerprint that
/// a look-alike name cannot copy (the whole id is in `--json` and `profile`); the start of
/// the id alone for a user with no name yet.
fn name_or_id(name: Option<&str>, uid: &social_sync_core::UserId) -> String {
    let id = uid.to_string();
    let fingerprint = id.get(..8).unwrap_or(&id);
    match name.filter(|n| !n.is_empty()) {
        Some(name) => format!("{name} ({fingerprint})"),
        None => fingerprint.to_owned(),
    }
}

/// A timestamp in the local time zone, to the minute.
fn when(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| ms.to_string())
}

/// One line for people about a sync event.
pub fn describe(event: &Event) -> String {
    match event {
        Event::Connection {
            status,
            waiting,
            reason,
            relay,
        } => {
            let status = serde_json::to_value(status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let status = match relay {
                Some(relay) => format!("{status} {relay}"),
                None => status,
            };
            match reason {
                Some(reason) => format!("{status} ({waiting} changes waiting): {reason}"),
                None => format!("{status} ({waiting} changes waiting)"),
            }
        }
        Event::FeedChanged { user } => format!("feed changed (user {user})"),
        Event::ThreadChanged { post_id } => format!("thread changed: {post_id}"),
        Event::Notification { notification: n } => {
            let who = name_or_id(n.actor_name.as_deref(), &n.actor);
            let what = match n.kind {
                NotificationKind::Like => "liked your post",
                NotificationKind::Comment => "commented on your post",
                NotificationKind::Follow => "followed you",
            };
            format!("{who} {what}")
        }
        Event::Presence { user, online } => {
            format!("{user} is {}", if *online { "online" } else { "offline" })
        }
        Event::Progress { done, total } => format!("synced {done} of {total} documents"),
        Event::Undelivered { undelivered } => undelivered.to_string(),
        Event::Rejected {
            by: RefusedBy::Relay,
            code,
            message,
            ..
        } => format!("the relay refused ({}): {message}", code.as_str()),
        Event::Rejected {
            by: RefusedBy::Client,
            code,
            message,
            ..
        } => format!(
            "refused what the relay sent ({}), kept what was here: {message}",
            code.as_str()
        ),
    }
}
