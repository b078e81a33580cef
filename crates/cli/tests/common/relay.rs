//! A real relay (the `sync-server` library) serving in a thread of the test process, on a
//! loopback port, until dropped; over TLS when its config has a certificate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub struct Relay {
    pub addr: SocketAddr,
    tls: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _data: Option<TempDir>,
}

impl Relay {
    /// A plain relay with a fresh data folder on a free port.
    pub fn start() -> Self {
        Self::fresh(|_| {})
    }

    /// A TLS relay serving `cert` and `key`, with a fresh data folder on a free port.
    pub fn start_tls(cert: &Path, key: &Path) -> Self {
        Self::fresh(|config| {
            config.tls_cert = Some(cert.to_path_buf());
            config.tls_key = Some(key.to_path_buf());
        })
    }

    fn fresh(adjust: impl FnOnce(&mut sync_server::Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = sync_server::Config::with_data(dir.path().join("relay"));
        config.listen = "127.0.0.1:0".parse().unwrap();
        adjust(&mut config);
        let mut relay = Self::serve_with(config);
        relay._data = Some(dir);
        relay
    }

    /// Serves `data` on `addr` (port 0: a free one).
    pub fn serve(data: &Path, addr: SocketAddr) -> Self {
        let mut config = sync_server::Config::with_data(PathBuf::from(data));
        config.listen = addr;
        Self::serve_with(config)
    }

    /// Serves with `config`.
    pub fn serve_with(config: sync_server::Config) -> Self {
        let tls = config.tls_cert.is_some();
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                // The port of a relay just stopped may take a moment to be free again.
                let deadline = Instant::now() + Duration::from_secs(10);
                let listener = loop {
                    match sync_server::bind(&config).await {
                        Ok(l) => break l,
                        Err(_) if Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => panic!("{e}"),
                    }
                };
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                sync_server::serve(listener, config, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        Self {
            addr,
            tls,
            stop: Some(stop),
            thread: Some(thread),
            _data: None,
        }
    }

    /// `wss://` for a TLS relay, else `ws://`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}", self.addr)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
