//! The app's preferences, kept in the profile (core settings table) as JSON.

use serde::{Deserialize, Serialize};
use social_sync_core::Replica;

const KEY: &str = "app_settings";

/// Theme choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    /// Follow the operating system.
    #[default]
    System,
    /// Always light.
    Light,
    /// Always dark.
    Dark,
}

/// Everything the Settings screen edits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSettings {
    /// OS notifications for likes.
    pub notify_likes: bool,
    /// OS notifications for comments.
    pub notify_comments: bool,
    /// OS notifications for follows.
    pub notify_follows: bool,
    /// Play a sound with notifications.
    pub sound: bool,
    /// No OS notifications at all (the list and badge still update).
    pub do_not_disturb: bool,
    /// Colour theme.
    pub theme: Theme,
    /// Start the app when the user logs in.
    pub launch_at_login: bool,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self {
            notify_likes: true,
            notify_comments: true,
            notify_follows: true,
            sound: true,
            do_not_disturb: false,
            theme: Theme::System,
            launch_at_login: false,
        }
    }
}

impl AppSettings {
    /// Reads the settings (defaults if none or unreadable).
    pub fn load(replica: &Replica) -> Self {
        replica
            .setting(KEY)
            .ok()
            .flatten()
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default()
    }

    /// Saves the settings.
    pub fn save(&self, replica: &mut Replica) -> social_sync_core::Result<()> {
        let json = serde_json::to_string(self).unwrap_or_default();
        replica.set_setting(KEY, &json)
    }
}
