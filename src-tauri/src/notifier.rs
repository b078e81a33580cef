//! Native notifications for likes, comments and follows aimed at the user.
//!
//! The first notification of a burst is raised at once; those that follow it closely are
//! folded into it ("Ana and 4 others liked your post"): where the platform replaces a
//! notification by id (the freedesktop `replaces_id` on Linux), the raised one is replaced
//! by the burst's summary; elsewhere the later ones are raised together as one more. Only
//! the second and later notifications wait, a short moment ([`FOLD`]), so that a storm of
//! likes replaces the notification a few times a second rather than once per like. When
//! the window has focus, the UI shows an in-app toast instead. The sound goes as the `sound-name` hint where the notification server
//! announces the "sound" capability; elsewhere the app plays its own bundled sound (the UI
//! does, on a `play-sound` event). Clicking a notification focuses the app on what it is
//! about, where the platform reports clicks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use social_sync_core::{Notification, NotificationKind, PostId, UserId};
use tauri::{AppHandle, Emitter, Manager};

use crate::settings::AppSettings;

/// How soon after the previous notification the next one still belongs to its burst.
const BURST_GAP: Duration = Duration::from_millis(700);
/// How long the second and later notifications of a burst are gathered before they are
/// folded in.
pub const FOLD: Duration = Duration::from_millis(150);
/// Whether this platform replaces a raised notification by id.
const REPLACES: bool = cfg!(all(unix, not(target_os = "macos")));

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
    burst: Mutex<Burst>,
    sound_capability: OnceLock<bool>,
}

/// The notifications of the current burst, and what was raised for them.
#[derive(Default)]
struct Burst {
    /// Every notification of the burst, in order of arrival.
    all: Vec<Notification>,
    /// How many of `all` were raised or shown so far (the rest wait for the fold).
    shown: usize,
    /// When the last one arrived.
    last: Option<Instant>,
    /// A fold of the waiting ones is scheduled.
    folding: bool,
    /// The OS notification standing for the burst, once raised.
    raised: Option<Raised>,
}

/// One OS notification, and where a click on it leads (the fold changes it).
struct Raised {
    id: u32,
    target: Arc<Mutex<Target>>,
    /// Whether a thread still waits for a click on it.
    listening: Arc<AtomicBool>,
}

/// Whether a notification arriving at `now` joins the current burst (folded into its
/// notification) rather than starting one (raised at once).
fn joins_burst(burst: &Burst, now: Instant) -> bool {
    burst.folding
        || burst
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < BURST_GAP)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Notifier {
    /// A notifier for `app`.
    pub fn new(app: AppHandle) -> Self {
        Self {
            app,
            burst: Mutex::default(),
            sound_capability: OnceLock::new(),
        }
    }

    /// Takes one new notification, unless the settings turn its kind off or
    /// do-not-disturb is on: raised at once if it starts a burst, folded into the burst's
    /// notification a moment later if it follows one closely.
    pub fn push(self: &Arc<Self>, n: Notification, settings: &AppSettings) {
        let wanted = match n.kind {
            NotificationKind::Like => settings.notify_likes,
            NotificationKind::Comment => settings.notify_comments,
            NotificationKind::Follow => settings.notify_follows,
        };
        if !wanted || settings.do_not_disturb {
            return;
        }
        let now = Instant::now();
        let mut burst = lock(&self.burst);
        let open = joins_burst(&burst, now);
        burst.last = Some(now);
        if !open {
            *burst = Burst {
                all: vec![n],
                shown: 1,
                last: Some(now),
                ..Burst::default()
            };
            if let Some(summary) = summarize(&burst.all) {
                self.show(&mut burst, &summary, &summary, settings.sound);
            }
            return;
        }
        burst.all.push(n);
        if !burst.folding {
            burst.folding = true;
            let me = self.clone();
            std::thread::spawn(move || {
                std::thread::sleep(FOLD);
                me.fold();
            });
        }
    }

    /// Folds the notifications that arrived since the last raise into the burst's
    /// notification.
    fn fold(&self) {
        let mut burst = lock(&self.burst);
        burst.folding = false;
        let (Some(whole), Some(fresh)) =
            (summarize(&burst.all), summarize(&burst.all[burst.shown..]))
        else {
            return;
        };
        burst.shown = burst.all.len();
        // Quietly: the burst's first notification made the sound.
        self.show(&mut burst, &whole, &fresh, false);
    }

    /// Shows `whole` (the burst so far) in place of the burst's notification where the
    /// platform can replace it, `fresh` (what is new) where it cannot or as a toast.
    fn show(&self, burst: &mut Burst, whole: &Summary, fresh: &Summary, sound: bool) {
        let focused = self
            .app
            .get_webview_window("main")
            .and_then(|w| w.is_focused().ok())
            .unwrap_or(false);
        if focused {
            let _ = self.app.emit("toast", fresh);
            return;
        }
        match burst.raised.as_ref().filter(|_| REPLACES) {
            Some(raised) => {
                let id = raised.id;
                *lock(&raised.target) = whole.target.clone();
                let listening = raised.listening.load(Ordering::SeqCst);
                if let Some(handle) = self.raise(whole, sound, Some(id))
                    && !listening
                {
                    burst.raised = Some(self.on_click(handle, whole.target.clone()));
                }
            }
            None => {
                if let Some(handle) = self.raise(fresh, sound, None) {
                    burst.raised = Some(self.on_click(handle, fresh.target.clone()));
                }
            }
        }
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

    /// Raises `summary` (in place of notification `replaces`, where given); `None` when
    /// no notification server answered (an in-app toast is shown instead).
    fn raise(
        &self,
        summary: &Summary,
        sound: bool,
        replaces: Option<u32>,
    ) -> Option<notify_rust::NotificationHandle> {
        let mut n = notify_rust::Notification::new();
        n.appname("Social Sync")
            .summary(&summary.title)
            .body(&summary.body)
            .icon("app.socialsync.desktop");
        #[cfg(all(unix, not(target_os = "macos")))]
        if let Some(id) = replaces {
            n.id(id);
        }
        #[cfg(not(all(unix, not(target_os = "macos"))))]
        let _ = replaces;
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
                Some(handle)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no notification server answered; showing an in-app toast instead");
                let _ = self.app.emit("toast", summary);
                None
            }
        }
    }

    /// Waits for a click on the raised notification in a thread of its own; a click opens
    /// its target as it is then (a fold changes it).
    #[cfg(all(unix, not(target_os = "macos")))]
    fn on_click(&self, handle: notify_rust::NotificationHandle, target: Target) -> Raised {
        let raised = Raised {
            id: handle.id(),
            target: Arc::new(Mutex::new(target)),
            listening: Arc::new(AtomicBool::new(true)),
        };
        let (app, target, listening) = (
            self.app.clone(),
            raised.target.clone(),
            raised.listening.clone(),
        );
        std::thread::spawn(move || {
            handle.wait_for_action(|action| {
                if action == "default" {
                    crate::focus_main(&app);
                    let _ = app.emit("open", &*lock(&target));
                }
            });
            listening.store(false, Ordering::SeqCst);
        });
        raised
    }

    #[cfg(not(all(unix, not(target_os = "macos"))))]
    fn on_click(&self, _handle: notify_rust::NotificationHandle, target: Target) -> Raised {
        Raised {
            id: 0,
            target: Arc::new(Mutex::new(target)),
            listening: Arc::new(AtomicBool::new(false)),
        }
    }
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
    fn the_first_of_a_burst_is_raised_at_once_and_the_close_ones_fold_in() {
        let t0 = Instant::now();
        let mut burst = Burst::default();
        assert!(
            !joins_burst(&burst, t0),
            "nothing raised yet: raised at once"
        );
        burst.last = Some(t0);
        assert!(joins_burst(&burst, t0 + BURST_GAP / 2));
        assert!(
            !joins_burst(&burst, t0 + BURST_GAP),
            "a gap starts a new burst"
        );
        burst.folding = true;
        assert!(
            joins_burst(&burst, t0 + BURST_GAP * 3),
            "a fold under way takes it"
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
