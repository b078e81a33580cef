//! A real client: a profile on disk (its own SQLite file, its key) and the real sync
//! engine ([`SyncEngine::run`]) connected to the relay, exactly as the app and `watch` run
//! it. What it shows is read from its profile, as the app's screens read it.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use social_sync_core::{ConnectionStatus, Env, Event, Replica, SyncEngine, UserId};
use tokio::sync::{broadcast, oneshot};

/// A running real client.
pub struct EngineClient {
    engine: Arc<SyncEngine>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl EngineClient {
    /// Makes a profile named `name` in `dir` for the relay at `url`, without connecting.
    pub fn create(dir: &Path, name: &str, url: &str) -> anyhow::Result<Self> {
        let replica = Replica::create(dir, name, Some(url), Env::system())
            .with_context(|| format!("could not make a profile in {}", dir.display()))?;
        let engine = SyncEngine::new(Arc::new(Mutex::new(replica)), url);
        Ok(Self {
            engine: Arc::new(engine),
            stop: None,
            task: None,
        })
    }

    /// The profile (locked; keep it short).
    pub fn replica(&self) -> MutexGuard<'_, Replica> {
        self.engine.replica()
    }

    /// The user.
    pub fn user(&self) -> UserId {
        self.replica().user_id()
    }

    /// Its events, from now on.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.engine.subscribe()
    }

    /// Starts the engine and waits (up to `timeout`) until it is online with nothing left
    /// to send.
    pub async fn start(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let mut events = self.events();
        let (stop, stopped) = oneshot::channel::<()>();
        let engine = Arc::clone(&self.engine);
        self.task = Some(tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = engine.run(shutdown).await {
                tracing::warn!(error = %e, "a benchmark client's engine stopped");
            }
        }));
        self.stop = Some(stop);
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, events.recv()).await {
                Ok(Ok(Event::Connection {
                    status: ConnectionStatus::Online,
                    ..
                })) => break,
                Ok(Ok(_) | Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => bail!("the engine stopped"),
                Err(_) => bail!("the engine was not online within {timeout:?}"),
            }
        }
        self.settled(deadline).await
    }

    /// Waits until every local edit has reached the relay (or `deadline`).
    pub async fn settled(&self, deadline: Instant) -> anyhow::Result<()> {
        while self.replica().changes_waiting()? > 0 {
            if Instant::now() > deadline {
                bail!("local edits still waiting for the relay at the deadline");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Stops the engine (the connection closes) and waits for it.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// One sync of everything, from connect to settled (the CLI's `sync`).
    pub async fn sync_once(&self) -> anyhow::Result<()> {
        self.engine.sync_once().await?;
        Ok(())
    }
}

impl Drop for EngineClient {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Makes and starts `count` real clients, `parallel` at a time, each following `follow`
/// when given; profiles go under `root`, named `{prefix}{n}`.
pub async fn start_many(
    root: &Path,
    url: &str,
    prefix: &str,
    count: usize,
    follow: Option<UserId>,
    parallel: usize,
) -> anyhow::Result<Vec<EngineClient>> {
    let mut clients = Vec::with_capacity(count);
    let numbers: Vec<usize> = (0..count).collect();
    for chunk in numbers.chunks(parallel.max(1)) {
        let started = futures_util::future::join_all(chunk.iter().map(|&n| async move {
            let name = format!("{prefix}{n}");
            let mut client = EngineClient::create(&root.join(&name), &name, url)?;
            if let Some(author) = follow {
                client.replica().follow(author)?;
            }
            client.start(Duration::from_secs(60)).await?;
            anyhow::Ok(client)
        }))
        .await;
        for client in started {
            clients.push(client?);
        }
    }
    Ok(clients)
}

/// Poison-tolerant lock, for shared figures.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
