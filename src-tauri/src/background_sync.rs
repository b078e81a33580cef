//! Runs the core's sync engine on its own thread and runtime (so no sync work touches the
//! UI thread), forwards its events to the front end, raises notifications, and keeps the
//! tray and badge counts and the presence map current.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use social_sync_core::{ConnectionStatus, Event, RelayList, Replica, SyncEngine, UserId};
use tauri::{AppHandle, Emitter, Manager};
use tokio::sync::watch;

use crate::AppState;

/// What the UI shows of the connection.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    /// Connecting, online, offline or reconnecting.
    pub status: ConnectionStatus,
    /// Local changes not yet on the relay.
    pub waiting: u64,
    /// Why it is offline, if known.
    pub reason: Option<String>,
    /// The relay of the list concerned: dialled, connected, left, or tried next.
    pub relay: Option<String>,
}

impl Default for Status {
    fn default() -> Self {
        Self {
            status: ConnectionStatus::Offline,
            waiting: 0,
            reason: None,
            relay: None,
        }
    }
}

/// A running sync thread; stopped when dropped.
pub struct BackgroundSync {
    engine: Arc<SyncEngine>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

/// How long the supervisor waits before it restarts a sync run that panicked.
const RESTART_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

impl BackgroundSync {
    /// Starts syncing `replica` through `relays`. A supervisor restarts the run if it
    /// ever panics (the engine contains panics inside a session; this is the last line),
    /// so the sync thread is never silently dead: the status says so while it restarts.
    pub fn start(app: AppHandle, replica: Arc<Mutex<Replica>>, relays: RelayList) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let engine = Arc::new(SyncEngine::with_relays(replica, relays));
        let running = engine.clone();
        let thread = std::thread::Builder::new()
            .name("sync".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the sync runtime");
                        return;
                    }
                };
                loop {
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        runtime.block_on(run_once(&app, &running, stop_rx.clone()));
                    }));
                    let Err(panic) = run else { break };
                    if *stop_rx.borrow() {
                        break;
                    }
                    let detail = social_sync_core::model::vetting::panic_message(panic.as_ref());
                    tracing::error!("the sync thread panicked ({detail}); restarting it");
                    set_status(
                        &app,
                        Some(format!("sync stopped unexpectedly ({detail}); restarting")),
                    );
                    std::thread::sleep(RESTART_AFTER);
                }
            })
            .ok();
        Self {
            engine,
            stop,
            thread,
        }
    }

    /// The running engine, for one-off questions over its connection (name lookup).
    pub fn engine(&self) -> Arc<SyncEngine> {
        self.engine.clone()
    }
}

impl Drop for BackgroundSync {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Shows the connection as offline with `reason`.
pub fn set_status(app: &AppHandle, reason: Option<String>) {
    let state = app.state::<AppState>();
    *state
        .status
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Status {
        status: ConnectionStatus::Offline,
        waiting: 0,
        reason,
        relay: None,
    };
}

/// One run of the engine until `stop` turns true, its events forwarded to the app.
async fn run_once(app: &AppHandle, engine: &SyncEngine, mut stop: watch::Receiver<bool>) {
    let mut events = engine.subscribe();
    let forward = async {
        loop {
            match events.recv().await {
                Ok(event) => on_event(app, event),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    };
    let run = engine.run(async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    });
    tokio::select! {
        result = run => {
            // The last events (the final status) are still queued.
            while let Ok(event) = events.try_recv() {
                on_event(app, event);
            }
            if let Err(e) = result {
                tracing::warn!(error = %e, "sync stopped");
                set_status(app, Some(e.to_string()));
            }
        }
        () = forward => {}
    }
}

/// Followed users online now (the relay tells only of those who follow back, and never
/// which devices).
pub type Presence = BTreeSet<UserId>;

fn on_event(app: &AppHandle, event: Event) {
    let state = app.state::<AppState>();
    match &event {
        Event::Connection {
            status,
            waiting,
            reason,
            relay,
        } => {
            *state
                .status
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Status {
                status: *status,
                waiting: *waiting,
                reason: reason.clone(),
                relay: relay.clone(),
            };
            if *status != ConnectionStatus::Online {
                state
                    .presence
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clear();
            }
        }
        Event::Presence { user, online } => {
            let mut presence = state
                .presence
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *online {
                presence.insert(*user);
            } else {
                presence.remove(user);
            }
        }
        Event::Notification { notification } => {
            let settings = state.settings();
            state.notifier().push(notification.clone(), &settings);
            if let Ok(unread) = state.with_replica(|r| Ok(r.unread_count()?)) {
                crate::tray::show_unread(app, unread);
            }
        }
        _ => {}
    }
    let _ = app.emit("sync-event", &event);
}
