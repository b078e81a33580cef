//! Native notifications for likes, comments and follows aimed at the user.
//!
//! Notifications arriving close together are gathered for a moment and raised as one
//! ("Ana and 4 others liked your post"). When the window has focus, the UI shows an in-app
//! toast instead. The sound goes as the `sound-name` hint where the notification server
//! announces the "sound" capability; elsewhere the app plays its own bundled sound (the UI
//! does, on a `play-sound` event). Clicking a notification focuses the app on what it is
//! about, where the platform reports clicks.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Serialize;
use social_sync_core::{Notification, NotificationKind, PostId, UserId};
use tauri::{AppHandle, Emitter, Manager};

use crate::settings::AppSettings;

/// How long notifications are gathered before one is raised.
const GATHER: Duration = Duration::from_millis(700);

/// What a raised notification says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Title line.
    pub title: String,
    /// Body text.
    pub body: String,
    /// What clicking it opens.
    pub target: Target,
}

/// Where a click on a notification leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// A post's thread.
    Post {
        /// The post.
        post_id: PostId,
    },
    /// A user's profile.
    Profile {
        /// The user.
        uid: UserId,
    },
    /// The notifications panel.
    Notifications,
}

fn name(n: &Notification) -> String {
    n.actor_name
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| n.actor.to_string()[..8].to_owned())
}

fn verb(kind: NotificationKind) -> &'static str {
    match kind {
        NotificationKind::Like => "liked your post",
        NotificationKind::Comment => "commented on your post",
        NotificationKind::Follow => "followed you",
    }
}

/// One line for a group of notifications of one kind about one target: "Ana liked your
/// post", "Ana and Ben liked your post", "Ana and 4 others liked your post".
pub fn group_line(group: &[&Notification]) -> String {
    let mut names: Vec<String> = Vec::new();
    for n in group {
        let nm = name(n);
        if !names.contains(&nm) {
            names.push(nm);
        }
    }
    let who = match names.len() {
        0 => String::new(),
        1 => names[0].clone(),
        2 => format!("{} and {}", names[0], names[1]),
        k => format!("{} and {} others", names[0], k - 1),
    };
    format!("{who} {}", verb(group[0].kind))
}

/// Gathers a burst of notifications into one summary.
pub fn summarize(burst: &[Notification]) -> Option<Summary> {
    let first = burst.first()?;
    // Groups of (kind, post), in order of first appearance.
    let mut groups: Vec<Vec<&Notification>> = Vec::new();
    for n in burst {
        match groups
            .iter_mut()
            .find(|g| g[0].kind == n.kind && g[0].post_id == n.post_id)
        {
            Some(g) => g.push(n),
            None => groups.push(vec![n]),
        }
    }
    let target = if groups.len() == 1 {
        match (&first.post_id, first.kind) {
            (Some(post_id), _) => Target::Post {
                post_id: post_id.clone(),
            },
            (None, _) if burst.len() == 1 => Target::Profile { uid: first.actor },
            _ => Target::Notifications,
        }
    } else {
        Target::Notifications
    };
    let lines: Vec<String> = groups.iter().map(|g| group_line(g)).collect();
    let (title, body) = if lines.len() == 1 {
        ("Social Sync".to_owned(), lines[0].clone())
    } else {
        (
            format!("{} new notifications", burst.len()),
            lines.join("\n"),
        )
    };
    Some(Summary {
        title,
        body,
        target,
    })
}

/// Raises notifications for one app.
pub struct Notifier {
    app: AppHandle,
    pending: Arc<Mutex<Vec<Notification>>>,
    sound_capability: OnceLock<bool>,
}

impl Notifier {
    /// A notifier for `app`.
    pub fn new(app: AppHandle) -> Self {
        Self {
            app,
            pending: Arc::default(),
            sound_capability: OnceLock::new(),
        }
    }

    /// Takes one new notification: raised (with others arriving at the same moment) unless
    /// the settings turn its kind off or do-not-disturb is on.
    pub fn push(self: &Arc<Self>, n: Notification, settings: &AppSettings) {
        let wanted = match n.kind {
            NotificationKind::Like => settings.notify_likes,
            NotificationKind::Comment => settings.notify_comments,
            NotificationKind::Follow => settings.notify_follows,
        };
        if !wanted || settings.do_not_disturb {
            return;
        }
        let first = {
            let mut pending = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pending.push(n);
            pending.len() == 1
        };
        if first {
            let me = self.clone();
            let sound = settings.sound;
            std::thread::spawn(move || {
                std::thread::sleep(GATHER);
                me.flush(sound);
            });
        }
    }

    fn flush(&self, sound: bool) {
        let burst = std::mem::take(
            &mut *self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let Some(summary) = summarize(&burst) else {
            return;
        };
        let focused = self
            .app
            .get_webview_window("main")
            .and_then(|w| w.is_focused().ok())
            .unwrap_or(false);
        if focused {
            let _ = self.app.emit("toast", &summary);
            return;
        }
        self.raise(&summary, sound);
    }

    fn has_sound_capability(&self) -> bool {
        *self.sound_capability.get_or_init(|| {
            #[cfg(all(unix, not(target_os = "macos")))]
            {
                notify_rust::get_capabilities()
                    .map(|caps| caps.iter().any(|c| c == "sound"))
                    .unwrap_or(false)
            }
            #[cfg(not(all(unix, not(target_os = "macos"))))]
            {
                true
            }
        })
    }

    fn raise(&self, summary: &Summary, sound: bool) {
        let mut n = notify_rust::Notification::new();
        n.appname("Social Sync")
            .summary(&summary.title)
            .body(&summary.body)
            .icon("app.socialsync.desktop");
        let server_plays = self.has_sound_capability();
        if sound && server_plays {
            #[cfg(all(unix, not(target_os = "macos")))]
            n.hint(notify_rust::Hint::SoundName("message-new-instant".into()));
            #[cfg(not(all(unix, not(target_os = "macos"))))]
            n.sound_name("Default");
        }
        #[cfg(all(unix, not(target_os = "macos")))]
        n.action("default", "Open");
        match n.show() {
            Ok(handle) => {
                if sound && !server_plays {
                    let _ = self.app.emit("play-sound", ());
                }
                self.on_click(handle, summary.target.clone());
            }
            Err(e) => {
                tracing::warn!(error = %e, "no notification server answered; showing an in-app toast instead");
                let _ = self.app.emit("toast", summary);
            }
        }
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    fn on_click(&self, handle: notify_rust::NotificationHandle, target: Target) {
        let app = self.app.clone();
        std::thread::spawn(move || {
            handle.wait_for_action(|action| {
                if action == "default" {
                    crate::focus_main(&app);
                    let _ = app.emit("open", &target);
                }
            });
        });
    }

    #[cfg(not(all(unix, not(target_os = "macos"))))]
    fn on_click(&self, _handle: notify_rust::NotificationHandle, _target: Target) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(kind: NotificationKind, actor: u8, name: &str, post: Option<u8>) -> Notification {
        Notification {
            id: format!("{kind:?}{actor}"),
            kind,
            actor: UserId::from_bytes([actor; 32]),
            actor_name: Some(name.to_owned()),
            post_id: post.map(|p| PostId::new(UserId::from_bytes([99; 32]), &[p])),
            comment_id: None,
            created_at: 0,
            read: false,
        }
    }

    #[test]
    fn one_notification_says_who_did_what_and_opens_its_post() {
        let s = summarize(&[n(NotificationKind::Like, 1, "Ana", Some(1))]).unwrap();
        assert_eq!(s.body, "Ana liked your post");
        assert!(matches!(s.target, Target::Post { .. }));
        let f = summarize(&[n(NotificationKind::Follow, 2, "Ben", None)]).unwrap();
        assert_eq!(f.body, "Ben followed you");
        assert!(matches!(f.target, Target::Profile { .. }));
    }

    #[test]
    fn a_burst_on_one_post_is_grouped() {
        let burst: Vec<_> = ["Ana", "Ben", "Cara", "Dan", "Eve"]
            .iter()
            .enumerate()
            .map(|(i, nm)| n(NotificationKind::Like, i as u8, nm, Some(1)))
            .collect();
        let s = summarize(&burst).unwrap();
        assert_eq!(s.body, "Ana and 4 others liked your post");
        assert_eq!(
            summarize(&burst[..2]).unwrap().body,
            "Ana and Ben liked your post"
        );
    }

    #[test]
    fn mixed_bursts_list_each_group() {
        let burst = vec![
            n(NotificationKind::Like, 1, "Ana", Some(1)),
            n(NotificationKind::Comment, 2, "Ben", Some(1)),
            n(NotificationKind::Like, 3, "Cara", Some(1)),
        ];
        let s = summarize(&burst).unwrap();
        assert_eq!(s.title, "3 new notifications");
        assert_eq!(
            s.body,
            "Ana and Cara liked your post\nBen commented on your post"
        );
        assert_eq!(s.target, Target::Notifications);
    }
}
