//! What the relay has to send one connection: a queue with a budget in bytes and frames,
//! shared by the connection's own replies and the hub's fan-out, and the writer task that
//! drains it into the socket, several frames per flush when they pile up. A frame stays
//! counted until the flush that writes it succeeds, so a client that stops reading holds at
//! most the budget; past it the connection is cut as `slow_reader`, never a reply dropped
//! silently while the connection lives on. The bulk of a connection's own answers (sync
//! replies, the inbox offer) waits for room instead, so a big catch-up by a client that
//! reads is paced, not cut.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::metrics::Metrics;

/// The queue was over its budget: the connection is being cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cut;

#[derive(Debug)]
struct Budget {
    bytes: AtomicUsize,
    frames: AtomicUsize,
    max_bytes: usize,
    max_frames: usize,
    /// The size of one paced frame larger than the whole budget, admitted into an empty
    /// queue (the frames after it still get the whole budget); forgotten once the queue is
    /// empty again.
    excess: AtomicUsize,
    over: AtomicBool,
    reason: OnceLock<String>,
    cut: Notify,
    /// Woken whenever the writer has written frames out of the budget.
    drained: Notify,
    metrics: Arc<Metrics>,
}

impl Budget {
    fn take(&self, len: usize) {
        self.bytes.fetch_add(len, Ordering::AcqRel);
        self.frames.fetch_add(1, Ordering::AcqRel);
        self.metrics.outbound_bytes.inc_by(len as i64);
    }

    fn give_back(&self, len: usize, frames: usize) {
        if self.bytes.fetch_sub(len, Ordering::AcqRel) == len {
            self.excess.store(0, Ordering::Release);
        }
        self.frames.fetch_sub(frames, Ordering::AcqRel);
        self.metrics.outbound_bytes.dec_by(len as i64);
        self.drained.notify_waiters();
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        // Frames never written (the writer ended or was stopped) leave the gauge here.
        self.metrics
            .outbound_bytes
            .dec_by(*self.bytes.get_mut() as i64);
    }
}

/// The sending side of one connection's outbound queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbound {
    tx: mpsc::UnboundedSender<Message>,
    budget: Arc<Budget>,
}

/// The receiving side, for [`write_loop`].
#[derive(Debug)]
pub(crate) struct Queue {
    rx: mpsc::UnboundedReceiver<Message>,
    budget: Arc<Budget>,
}

/// A queue holding at most `max_bytes` and `max_frames` unwritten.
pub(crate) fn queue(
    max_bytes: usize,
    max_frames: usize,
    metrics: Arc<Metrics>,
) -> (Outbound, Queue) {
    let (tx, rx) = mpsc::unbounded_channel();
    let budget = Arc::new(Budget {
        bytes: AtomicUsize::new(0),
        frames: AtomicUsize::new(0),
        max_bytes,
        max_frames: max_frames.max(1),
        excess: AtomicUsize::new(0),
        over: AtomicBool::new(false),
        reason: OnceLock::new(),
        cut: Notify::new(),
        drained: Notify::new(),
        metrics,
    });
    (
        Outbound {
            tx,
            budget: budget.clone(),
        },
        Queue { rx, budget },
    )
}

impl Outbound {
    /// Queues `frame` within the budget. Over it, the frame is not queued, the connection
    /// is marked to be cut (see [`Outbound::cut`]) and `Err(Cut)` returned.
    pub(crate) fn push(&self, frame: Message) -> Result<(), Cut> {
        let b = &self.budget;
        if b.over.load(Ordering::Acquire) {
            return Err(Cut);
        }
        let len = frame.len();
        let bytes = b.bytes.load(Ordering::Acquire).saturating_add(len);
        let frames = b.frames.load(Ordering::Acquire) + 1;
        let max = b.max_bytes.saturating_add(b.excess.load(Ordering::Acquire));
        if bytes > max || frames > b.max_frames {
            self.overflow(bytes, frames);
            return Err(Cut);
        }
        self.push_always(frame)
    }

    /// Queues `frame` once it fits the budget (or the queue is empty), waiting up to
    /// `patience` for the writer to make room: for the bulk of a connection's own answers
    /// (sync replies, the inbox offer), so a client that reads keeps up however much it
    /// asked for. A client that has not made room by then is cut as a slow reader.
    pub(crate) async fn push_paced(&self, frame: Message, patience: Duration) -> Result<(), Cut> {
        let b = &self.budget;
        let deadline = Instant::now() + patience;
        let len = frame.len();
        loop {
            let drained = b.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if b.over.load(Ordering::Acquire) {
                return Err(Cut);
            }
            let bytes = b.bytes.load(Ordering::Acquire);
            let frames = b.frames.load(Ordering::Acquire);
            if bytes == 0 {
                // Larger than the whole budget: the frames after it get a budget of their own.
                let excess = if len > b.max_bytes { len } else { 0 };
                b.excess.store(excess, Ordering::Release);
                return self.push_always(frame);
            }
            if bytes + len <= b.max_bytes && frames < b.max_frames {
                return self.push_always(frame);
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                self.overflow(bytes + len, frames + 1);
                return Err(Cut);
            }
        }
    }

    /// Queues `frame` whatever the budget: the last error and close frame of a connection.
    pub(crate) fn push_always(&self, frame: Message) -> Result<(), Cut> {
        let len = frame.len();
        self.budget.take(len);
        self.tx.send(frame).map_err(|_| {
            self.budget.give_back(len, 1);
            Cut
        })
    }

    fn overflow(&self, bytes: usize, frames: usize) {
        let b = &self.budget;
        if b.over.swap(true, Ordering::AcqRel) {
            return;
        }
        b.metrics
            .reject(social_sync_protocol::ErrorCode::SlowReader);
        let _ = b.reason.set(format!(
            "{bytes} bytes in {frames} frames would be waiting for your connection to read them; \
             the relay holds at most {} bytes (--max-outbound-bytes) and {} frames (--send-queue) \
             per connection: read what it sends as it comes, ask for fewer images at once, and reconnect",
            b.max_bytes, b.max_frames
        ));
        b.cut.notify_one();
        // A paced push waiting for room gives up at once.
        b.drained.notify_waiters();
    }

    /// Completes once the budget was exceeded, with the message for the client.
    pub(crate) async fn cut(&self) -> String {
        loop {
            if let Some(reason) = self.budget.reason.get() {
                return reason.clone();
            }
            self.budget.cut.notified().await;
        }
    }
}

/// Writes queued frames, several per flush when they pile up; each frame leaves the budget
/// once the flush that wrote it succeeded. Ends after a close frame or when every
/// [`Outbound`] is gone and the queue is empty.
pub(crate) async fn write_loop<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut queue: Queue,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let metrics = queue.budget.metrics.clone();
    while let Some(first) = queue.rx.recv().await {
        let mut closing = matches!(first, Message::Close(_));
        let (mut bytes, mut frames) = (first.len(), 1);
        let count = |m: &Message| {
            metrics.messages_out.inc();
            metrics.bytes_out.inc_by(m.len() as u64);
        };
        count(&first);
        if sink.feed(first).await.is_err() {
            break;
        }
        while !closing {
            let Ok(next) = queue.rx.try_recv() else {
                break;
            };
            closing = matches!(next, Message::Close(_));
            count(&next);
            bytes += next.len();
            frames += 1;
            if sink.feed(next).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            break;
        }
        queue.budget.give_back(bytes, frames);
        if closing {
            break;
        }
    }
    let _ = sink.close().await;
}
