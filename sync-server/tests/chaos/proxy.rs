//! A fault-injecting TCP proxy between clients and the relay: every client connection goes
//! through it, and the chaos run cuts connections, delays them, or black-holes them (bytes
//! swallowed without a word, as a dead NAT or a pulled cable does) while the clients and
//! the relay carry on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the chaos run can do to one connection.
#[derive(Clone)]
struct Control {
    cut: watch::Sender<bool>,
    delay_ms: Arc<AtomicU64>,
    black_hole: Arc<AtomicBool>,
}

/// The proxy; connections are numbered as they come.
pub(crate) struct Proxy {
    conns: Arc<Mutex<HashMap<u64, Control>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Serves `listener` (bound first, so the relay can be told the proxy's address as its
    /// public one), forwarding to `target`.
    pub(crate) fn start(listener: TcpListener, target: SocketAddr) -> Self {
        let conns: Arc<Mutex<HashMap<u64, Control>>> = Arc::default();
        let table = conns.clone();
        let task = tokio::spawn(async move {
            let mut next = 0u64;
            while let Ok((client, _)) = listener.accept().await {
                next += 1;
                let id = next;
                let Ok(upstream) = TcpStream::connect(target).await else {
                    continue; // the relay is down: the client sees its connection close
                };
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                let (cut, cut_rx) = watch::channel(false);
                let control = Control {
                    cut,
                    delay_ms: Arc::default(),
                    black_hole: Arc::default(),
                };
                table.lock().unwrap().insert(id, control.clone());
                let table = table.clone();
                tokio::spawn(async move {
                    let (cr, cw) = client.into_split();
                    let (ur, uw) = upstream.into_split();
                    let up = pump(cr, uw, control.clone(), cut_rx.clone());
                    let down = pump(ur, cw, control, cut_rx);
                    tokio::select! {
                        () = up => {}
                        () = down => {}
                    }
                    table.lock().unwrap().remove(&id);
                });
            }
        });
        Self { conns, task }
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.conns.lock().unwrap().keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Closes connection `id` both ways.
    pub(crate) fn cut(&self, id: u64) {
        if let Some(c) = self.conns.lock().unwrap().get(&id) {
            let _ = c.cut.send(true);
        }
    }

    /// Delays every chunk of connection `id` by `delay` (zero: none).
    pub(crate) fn delay(&self, id: u64, delay: Duration) {
        if let Some(c) = self.conns.lock().unwrap().get(&id) {
            c.delay_ms
                .store(delay.as_millis() as u64, Ordering::Relaxed);
        }
    }

    /// Swallows what connection `id` carries, both ways, from now on.
    pub(crate) fn black_hole(&self, id: u64) {
        if let Some(c) = self.conns.lock().unwrap().get(&id) {
            c.black_hole.store(true, Ordering::Relaxed);
        }
    }

    /// Cuts every connection.
    pub(crate) fn cut_all(&self) {
        for id in self.open() {
            self.cut(id);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut_all();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    control: Control,
    mut cut: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = cut.changed() => return,
        };
        if control.black_hole.load(Ordering::Relaxed) {
            continue;
        }
        let delay = control.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
