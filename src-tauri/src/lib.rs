//! # Social Sync desktop app
//!
//! A thin Tauri shell over `social_sync_core`: it holds what needs the OS or the webview.
//!
//! # Layout
//!
//! - [`commands`]: `#[tauri::command]`s, thin adapters over `Replica`.
//! - [`background_sync`]: the sync engine on its own thread; events to the UI.
//! - [`notifier`]: native notifications (grouped, with sound, toast when focused).
//! - [`tray`]: tray icon and unread badge.
//! - [`images`]: the `ssimg://` protocol serving cached images to the webview.
//! - [`settings`]: the app's preferences, stored in the profile.
//! - [`error`]: `{code, message}` errors for the UI.
//!
//! The profile lives in the app's data folder (`<data dir>/app.socialsync.desktop/profile`),
//! or in `SOCIAL_SYNC_PROFILE` when set (tests run two instances on two profiles that way).
//! One instance per profile: launching again focuses the running window.

pub mod background_sync;
pub mod commands;
pub mod error;
pub mod images;
pub mod notifier;
pub mod settings;
pub mod tray;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use social_sync_core::{Env, Replica, SyncEngine};
use tauri::{AppHandle, Manager};

use background_sync::{BackgroundSync, Presence, Status};
use commands::{Me, Session};
use error::{CommandError, CommandResult};
use notifier::Notifier;
use settings::AppSettings;

/// When `run` began: the first feed paint is measured from here.
static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Milliseconds since the app started.
pub fn uptime_ms() -> u128 {
    STARTED.get().map_or(0, |t| t.elapsed().as_millis())
}

/// The app's state, shared by commands and the sync thread.
pub struct AppState {
    profile_dir: PathBuf,
    replica: Mutex<Option<Arc<Mutex<Replica>>>>,
    sync: Mutex<Option<BackgroundSync>>,
    status: Mutex<Status>,
    presence: Mutex<Presence>,
    notifier: Arc<Notifier>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AppState {
    fn new(profile_dir: PathBuf, notifier: Notifier) -> Self {
        Self {
            profile_dir,
            replica: Mutex::new(None),
            sync: Mutex::new(None),
            status: Mutex::new(Status::default()),
            presence: Mutex::new(Presence::new()),
            notifier: Arc::new(notifier),
        }
    }

    /// Runs `f` on the open profile; `no_profile` before the first-run screen made one.
    pub fn with_replica<T>(
        &self,
        f: impl FnOnce(&mut Replica) -> CommandResult<T>,
    ) -> CommandResult<T> {
        let shared = lock(&self.replica).clone().ok_or_else(|| {
            CommandError::new(
                "no_profile",
                "there is no profile yet: choose a display name first",
            )
        })?;
        let mut replica = lock(&shared);
        f(&mut replica)
    }

    /// The app's settings (defaults before a profile exists).
    pub fn settings(&self) -> AppSettings {
        self.with_replica(|r| Ok(AppSettings::load(r)))
            .unwrap_or_default()
    }

    fn notifier(&self) -> Arc<Notifier> {
        self.notifier.clone()
    }

    /// Users followed who are online now.
    pub fn online(&self) -> Presence {
        lock(&self.presence).clone()
    }

    /// The running sync engine, if a relay is set: one-off questions (name lookup) go
    /// over its one connection, never a second one.
    pub fn engine(&self) -> Option<Arc<SyncEngine>> {
        lock(&self.sync).as_ref().map(BackgroundSync::engine)
    }

    fn session(&self) -> CommandResult<Session> {
        let status = lock(&self.status).clone();
        let opened = lock(&self.replica).clone();
        let Some(shared) = opened else {
            return Ok(Session {
                me: None,
                relay: None,
                status,
                unread: 0,
            });
        };
        let r = lock(&shared);
        let me = r.profile(r.user_id())?;
        Ok(Session {
            me: Some(Me {
                uid: me.uid,
                name: me.name.unwrap_or_default(),
            }),
            relay: r.relay_url()?,
            status,
            unread: r.unread_count()?,
        })
    }

    /// Opens the profile if one exists, and starts syncing.
    fn open_existing(&self, app: &AppHandle) -> CommandResult<()> {
        if !social_sync_core::Identity::path(&self.profile_dir).exists() {
            return Ok(());
        }
        let replica = Replica::open(&self.profile_dir, Env::system())?;
        self.adopt(app, replica);
        Ok(())
    }

    fn create_profile(&self, app: &AppHandle, name: &str, relay: &str) -> CommandResult<()> {
        let relays = check_relay(relay)?;
        let replica = Replica::create(&self.profile_dir, name, Some(&relays), Env::system())?;
        self.adopt(app, replica);
        Ok(())
    }

    fn restore_profile(
        &self,
        app: &AppHandle,
        backup: &str,
        passphrase: &str,
        relay: &str,
    ) -> CommandResult<()> {
        let relays = check_relay(relay)?;
        let replica = Replica::create_from_backup(
            &self.profile_dir,
            backup,
            passphrase,
            Some(&relays),
            Env::system(),
        )?;
        self.adopt(app, replica);
        Ok(())
    }

    fn set_relay(&self, app: &AppHandle, url: &str) -> CommandResult<()> {
        let relays = check_relay(url)?;
        self.with_replica(|r| Ok(r.set_relay_url(&relays)?))?;
        self.restart_sync(app);
        Ok(())
    }

    fn adopt(&self, app: &AppHandle, replica: Replica) {
        *lock(&self.replica) = Some(Arc::new(Mutex::new(replica)));
        self.restart_sync(app);
    }

    fn restart_sync(&self, app: &AppHandle) {
        // Stop the old engine first: one connection per running app.
        drop(lock(&self.sync).take());
        let Some(shared) = lock(&self.replica).clone() else {
            return;
        };
        let relays = lock(&shared).relays();
        match relays {
            Ok(Some(relays)) => {
                *lock(&self.sync) = Some(BackgroundSync::start(app.clone(), shared, relays));
            }
            Ok(None) => {}
            Err(e) => background_sync::set_status(app, Some(e.to_string())),
        }
    }
}

/// The relay setting checked: one address, or several separated by commas and/or spaces
/// (the relay nodes of one community, tried in turn); the list as it is saved.
fn check_relay(text: &str) -> CommandResult<String> {
    match social_sync_core::RelayList::parse(text) {
        Ok(relays) => Ok(relays.to_string()),
        Err(e) => Err(CommandError::new("bad_relay_url", e.to_string())),
    }
}

/// Shows, unminimizes and focuses the main window.
pub fn focus_main(app: &AppHandle) {
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.show();
        let _ = window.unminimize();
        let _ = window.set_focus();
    }
}

/// Turns launch-at-login on or off.
pub fn apply_autostart(app: &AppHandle, on: bool) {
    use tauri_plugin_autostart::ManagerExt;
    let launcher = app.autolaunch();
    let result = if on {
        launcher.enable()
    } else {
        launcher.disable()
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not change launch at login");
    }
}

fn profile_dir(app: &AppHandle) -> tauri::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("SOCIAL_SYNC_PROFILE") {
        return Ok(PathBuf::from(dir));
    }
    Ok(app.path().app_data_dir()?.join("profile"))
}

/// Starts the app.
pub fn run() {
    let _ = STARTED.set(std::time::Instant::now());
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SOCIAL_SYNC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let result = tauri::Builder::default()
        // First: a second launch only focuses the running window (and never opens a
        // second connection to the relay).
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            focus_main(app)
        }))
        .plugin(tauri_plugin_window_state::Builder::default().build())
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            None,
        ))
        .register_uri_scheme_protocol("ssimg", images::serve)
        .setup(|app| {
            let handle = app.handle().clone();
            app.manage(AppState::new(
                profile_dir(&handle)?,
                Notifier::new(handle.clone()),
            ));
            let state = app.state::<AppState>();
            if let Err(e) = state.open_existing(&handle) {
                tracing::error!("cannot open the profile: {}", e.message);
            }
            tray::create(&handle)?;
            if let Ok(unread) = state.with_replica(|r| Ok(r.unread_count()?)) {
                tray::show_unread(&handle, unread);
            }
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::session,
            commands::first_paint,
            commands::create_profile,
            commands::restore_profile,
            commands::export_key,
            commands::feed,
            commands::create_post,
            commands::delete_post,
            commands::like,
            commands::unlike,
            commands::thread,
            commands::comment,
            commands::delete_comment,
            commands::profile,
            commands::update_profile,
            commands::set_avatar,
            commands::follow,
            commands::unfollow,
            commands::block,
            commands::unblock,
            commands::blocked,
            commands::set_post_muted,
            commands::find_people,
            commands::search,
            commands::notifications,
            commands::mark_read,
            commands::mark_all_read,
            commands::get_settings,
            commands::set_settings,
            commands::set_relay,
            commands::online,
        ])
        .run(tauri::generate_context!());
    if let Err(e) = result {
        tracing::error!(error = %e, "the app could not start");
        std::process::exit(1);
    }
}
