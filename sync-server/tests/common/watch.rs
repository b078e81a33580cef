//! A profile staying connected in the background, and waiting for its events.

#![allow(dead_code)] // each test binary uses part of it

use std::time::Duration;

use social_sync_core::Event;

use super::Profile;

/// Waits up to 10 s for an event matching `pred`.
pub async fn wait_for(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    pred: impl Fn(&Event) -> bool,
) -> Event {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(_) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .expect("no such event within 10 s")
}

/// A profile staying connected (`SyncEngine::run`) in the background, with its events.
pub struct Watch {
    pub engine: std::sync::Arc<social_sync_core::SyncEngine>,
    pub events: tokio::sync::broadcast::Receiver<Event>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), social_sync_core::SyncError>>,
}

impl Watch {
    /// Starts watching and waits until the connection is online.
    pub async fn start(profile: &Profile, url: &str) -> Self {
        let engine = std::sync::Arc::new(social_sync_core::SyncEngine::new(
            profile.replica.clone(),
            url,
        ));
        let mut events = engine.subscribe();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let running = engine.clone();
        let task = tokio::spawn(async move {
            let engine = running;
            engine
                .run(async {
                    let _ = stop_rx.await;
                })
                .await
        });
        wait_for(&mut events, |e| {
            matches!(
                e,
                Event::Connection {
                    status: social_sync_core::ConnectionStatus::Online,
                    ..
                }
            )
        })
        .await;
        Self {
            engine,
            events,
            stop,
            task,
        }
    }

    /// Stops; returns the events not read yet.
    pub async fn stop(self) -> tokio::sync::broadcast::Receiver<Event> {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
        self.events
    }
}
