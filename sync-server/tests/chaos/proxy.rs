//! A fault-injecting TCP proxy between clients and the relay (or each node of a cluster):
//! every client connection goes through it, and the chaos run cuts connections, delays
//! them, black-holes them (bytes swallowed without a word, as a dead NAT or a pulled cable
//! does), or reorders them at WebSocket frame boundaries, while the clients and the relay
//! carry on.
//!
//! The proxy follows each direction's frames (after the HTTP upgrade): it forwards whole
//! frames only, so a reordering swaps two complete frames and never splits one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How long a frame held back to be overtaken waits for a next one before it goes alone.
const HOLD: Duration = Duration::from_millis(200);

/// What the chaos run can do to one connection.
#[derive(Clone)]
struct Control {
    cut: watch::Sender<bool>,
    delay_ms: Arc<AtomicU64>,
    black_hole: Arc<AtomicBool>,
    reorder: Arc<AtomicBool>,
}

type Table = Arc<Mutex<HashMap<u64, Control>>>;

/// The proxy: one listener per relay node; connections are numbered as they come, across
/// all of them.
pub(crate) struct Proxy {
    conns: Table,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    /// Serves each listener (bound first, so each node can be told its proxy's address as
    /// its public one), forwarding to its target.
    pub(crate) fn start(routes: Vec<(TcpListener, SocketAddr)>) -> Self {
        let conns: Table = Arc::default();
        let next = Arc::new(AtomicU64::new(0));
        let tasks = routes
            .into_iter()
            .map(|(listener, target)| {
                tokio::spawn(serve(listener, target, conns.clone(), next.clone()))
            })
            .collect();
        Self { conns, tasks }
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

    /// Swaps the frames of connection `id` two by two, both ways, while `on`.
    pub(crate) fn reorder(&self, id: u64, on: bool) {
        if let Some(c) = self.conns.lock().unwrap().get(&id) {
            c.reorder.store(on, Ordering::Relaxed);
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
        for task in &self.tasks {
            task.abort();
        }
        self.cut_all();
    }
}

async fn serve(listener: TcpListener, target: SocketAddr, table: Table, next: Arc<AtomicU64>) {
    while let Ok((client, _)) = listener.accept().await {
        let id = next.fetch_add(1, Ordering::Relaxed) + 1;
        let Ok(upstream) = TcpStream::connect(target).await else {
            continue; // the node is down: the client sees its connection close
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let (cut, cut_rx) = watch::channel(false);
        let control = Control {
            cut,
            delay_ms: Arc::default(),
            black_hole: Arc::default(),
            reorder: Arc::default(),
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
}

/// One direction of one connection: the HTTP upgrade as it comes, then whole frames.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    control: Control,
    mut cut: watch::Receiver<bool>,
) {
    let mut read = vec![0u8; 16 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut upgraded = false;
    // A frame held back to be overtaken by the next one, and since when.
    let mut held: Option<(Vec<u8>, tokio::time::Instant)> = None;
    loop {
        let hold_until = held.as_ref().map(|(_, since)| *since + HOLD);
        let n = tokio::select! {
            r = from.read(&mut read) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = cut.changed() => return,
            () = sleep_until(hold_until) => {
                // Nothing came to overtake it: it goes alone.
                let frame = held.take().map(|(frame, _)| frame).unwrap_or_default();
                if !send(&mut to, &control, &frame).await {
                    return;
                }
                continue;
            }
        };
        pending.extend_from_slice(&read[..n]);
        if !upgraded {
            let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head: Vec<u8> = pending.drain(..end + 4).collect();
            if !send(&mut to, &control, &head).await {
                return;
            }
            upgraded = true;
        }
        while let Some(len) = frame_len(&pending) {
            let frame: Vec<u8> = pending.drain(..len).collect();
            let reorder = control.reorder.load(Ordering::Relaxed);
            let out = match held.take() {
                // This frame overtakes the one held back.
                Some((first, _)) => [frame, first].concat(),
                None if reorder => {
                    held = Some((frame, tokio::time::Instant::now()));
                    continue;
                }
                None => frame,
            };
            if !send(&mut to, &control, &out).await {
                return;
            }
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Writes `bytes` on, after the connection's delay; swallowed when black-holed. False when
/// the other side is gone.
async fn send(to: &mut tokio::net::tcp::OwnedWriteHalf, control: &Control, bytes: &[u8]) -> bool {
    if control.black_hole.load(Ordering::Relaxed) || bytes.is_empty() {
        return true;
    }
    let delay = control.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    to.write_all(bytes).await.is_ok()
}

/// The length of the WebSocket frame at the start of `buf` (RFC 6455 §5.2), if all of it
/// is there.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let (&b1, rest) = buf.get(1).map(|b| (b, &buf[2..]))?;
    let masked = b1 & 0x80 != 0;
    let (payload, ext) = match b1 & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
            2,
        ),
        127 => (u64::from_be_bytes(rest.get(..8)?.try_into().ok()?), 8),
        n => (u64::from(n), 0),
    };
    let total = usize::try_from(payload)
        .ok()?
        .checked_add(2 + ext + if masked { 4 } else { 0 })?;
    (buf.len() >= total).then_some(total)
}

#[test]
fn frame_lengths_follow_rfc_6455() {
    // Unmasked "Hello" (RFC 6455 §5.7), then a masked one.
    assert_eq!(frame_len(b"\x81\x05Hello"), Some(7));
    assert_eq!(frame_len(b"\x81\x05Hell"), None);
    assert_eq!(
        frame_len(b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"),
        Some(11)
    );
    // 256 bytes, 16-bit length.
    let mut big = vec![0x82, 0x7e, 0x01, 0x00];
    big.resize(4 + 256, 0);
    assert_eq!(frame_len(&big), Some(260));
    assert_eq!(frame_len(&big[..259]), None);
    assert_eq!(frame_len(&[0x82]), None);
}
