//! One client connection: the handshake ([`handshake`], within one deadline and with small
//! frames until authenticated, see [`guard`]), the inbox offered at connect, then every
//! message in order ([`messages`]), with limits (size, rate, outbound bytes, sync states,
//! subscriptions), keep-alive pings and an idle timeout. Replies and fan-out frames go
//! through a byte-budgeted queue drained by a writer task ([`outbound`]).

mod guard;
mod handshake;
mod messages;
mod outbound;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use automerge::sync::State;
use futures_util::stream::{SplitStream, StreamExt};
use governor::{Quota, RateLimiter};
use lru::LruCache;
use social_sync_protocol::wire;
use social_sync_protocol::{ClientMessage, DocId, ErrorCode, Limits, ServerMessage};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Message};

use self::guard::FrameGuard;
use self::handshake::Session;
pub use self::outbound::Outbound;
use crate::http::Head;
use crate::hub::ConnId;
use crate::rewind::Rewind;
use crate::shared::Shared;
use crate::stream::Stream;

/// A client's socket (plain or TLS): the HTTP head read back first, frames checked until
/// authentication.
type Ws = WebSocketStream<FrameGuard<Rewind<Stream>>>;

/// The code and message a client is told before its connection closes.
type Refused = (ErrorCode, String);

/// How long a closing connection's writer may take to send what is still queued.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Serves one WebSocket connection until it ends. `head` is the upgrade request already
/// read from `stream`; `local` is the address the client connected to; `deadline` (set at
/// accept) covers the TLS handshake, the upgrade and authentication.
pub async fn run(
    stream: Stream,
    head: Head,
    peer: SocketAddr,
    local: SocketAddr,
    shared: &Arc<Shared>,
    stop: watch::Receiver<bool>,
    deadline: Instant,
) {
    let max = shared.config.max_message_bytes as usize;
    let ws_config = WebSocketConfig::default()
        // tokio-tungstenite reads into a 128 KiB buffer by default: far too much per idle
        // connection. Small reads cost a little more syscall time, not memory.
        .read_buffer_size(4 * 1024)
        // Frames queued for this connection are fed one after another and flushed once
        // (`outbound::write_loop`): up to 16 KiB of them leave in one write (one TLS
        // record) rather than one syscall each. The buffer holds no more than before: it
        // already grew to the largest frame sent.
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(max.saturating_mul(2))
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let guarded = FrameGuard::new(
        Rewind::new(head.bytes, stream),
        head.len,
        u64::from(shared.config.max_preauth_frame_bytes),
    );
    let upgrade = tokio_tungstenite::accept_async_with_config(guarded, Some(ws_config));
    let mut ws = match tokio::time::timeout_at(deadline, upgrade).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "WebSocket handshake failed");
            return;
        }
        Err(_) => {
            shared.metrics.reject(ErrorCode::NotAuthenticated);
            tracing::debug!(%peer, "WebSocket handshake not finished by the deadline");
            return;
        }
    };
    let session = match handshake::authenticate(&mut ws, deadline, local, shared).await {
        Ok(session) => session,
        Err((code, message)) => {
            shared.metrics.reject(code);
            tracing::info!(%peer, code = code.as_str(), "handshake refused: {message}");
            handshake::refuse(ws, code, message).await;
            return;
        }
    };
    ws.get_mut().lift();
    let (sink, mut source) = ws.split();
    let (out, queue) = outbound::queue(
        shared.config.max_outbound_bytes,
        shared.config.send_queue,
        shared.metrics.clone(),
    );
    let writer = tokio::spawn(outbound::write_loop(sink, queue));

    // Welcome is queued before the connection joins the hub: from then on other
    // connections' fan-out (presence, live changes) reaches this queue, and a client must
    // see Welcome first. (Queued after, a presence change could slip in between: the
    // client's handshake then failed with "unexpected message during the handshake".)
    let welcome = wire::encode(&ServerMessage::Welcome {
        user: session.user,
        limits: limits(shared),
    });
    if out.push(Message::Binary(Bytes::from(welcome))).is_err() {
        drop(out);
        finish(writer).await;
        return;
    }
    let (kick_tx, kick_rx) = oneshot::channel();
    let joined = shared.hub.register(
        session.user,
        &session.device,
        session.instance,
        out.clone(),
        kick_tx,
    );
    tracing::info!(%peer, user = %session.user, device = %session.device, instance = ?session.instance, "authenticated");
    crate::presence::arrived(shared, session.user, &session.device, joined).await;
    let mut conn = Connection {
        id: joined.id,
        session,
        shared: shared.clone(),
        out,
        // Unbounded here, bounded in `keep_state`: `LruCache::new` allocates its whole
        // capacity up front, tens of KiB per idle connection.
        states: LruCache::unbounded(),
    };
    conn.offer_inbox().await;
    let end = conn.serve(&mut source, kick_rx, stop).await;

    if let Some(left) = shared.hub.unregister(conn.id) {
        crate::presence::departed(shared, left).await;
    }
    match end {
        Some((code, message)) => close_with(&conn.out, code, message),
        None => {
            let _ = conn.out.push_always(Message::Close(None));
        }
    }
    drop(conn);
    finish(writer).await;
    linger(&mut source).await;
}

/// After the close frame, reads (and drops) what the client still sends until its own close
/// frame or the end, for a second at most: closing a socket with unread bytes resets it,
/// and a reset can destroy the error frame before the client has read it.
async fn linger(source: &mut SplitStream<Ws>) {
    let drain = async { while let Some(Ok(_)) = source.next().await {} };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// Lets the writer send what is queued, for [`CLOSE_GRACE`] at most (a client that does not
/// read would otherwise hold its task and its queue for ever).
async fn finish(mut writer: tokio::task::JoinHandle<()>) {
    if tokio::time::timeout(CLOSE_GRACE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

fn limits(shared: &Shared) -> Limits {
    Limits {
        max_message_bytes: shared.config.max_message_bytes,
        max_blob_bytes: shared.config.max_blob_bytes,
        messages_per_second: shared.config.messages_per_second,
    }
}

/// The WebSocket close code that goes with a fatal error.
fn close_code(code: ErrorCode) -> CloseCode {
    match code {
        ErrorCode::ShuttingDown => CloseCode::Away,
        ErrorCode::TooLarge => CloseCode::Size,
        _ => CloseCode::Policy,
    }
}

/// Queues a fatal error and a close frame, whatever the outbound budget.
fn close_with(out: &Outbound, code: ErrorCode, message: String) {
    let frame = wire::encode(&ServerMessage::Error { code, message });
    let _ = out.push_always(Message::Binary(Bytes::from(frame)));
    let _ = out.push_always(Message::Close(Some(CloseFrame {
        code: close_code(code),
        reason: code.as_str().into(),
    })));
}

/// An authenticated connection.
struct Connection {
    id: ConnId,
    session: Session,
    shared: Arc<Shared>,
    out: Outbound,
    /// Automerge sync state per document synced on this connection, least recently used
    /// dropped first past `--max-sync-states`.
    states: LruCache<DocId, State>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared
            .metrics
            .sync_states
            .dec_by(self.states.len() as i64);
    }
}

impl Connection {
    /// Queues a reply. False when the outbound budget is exceeded: the connection is then
    /// being cut as a slow reader (see [`Outbound::cut`]).
    fn send(&self, message: &ServerMessage) -> bool {
        let frame = Message::Binary(Bytes::from(wire::encode(message)));
        tracing::trace!(bytes = frame.len(), ?message, "queued");
        self.out.push(frame).is_ok()
    }

    /// Queues a bulk answer (sync replies, the inbox offer), waiting for room in the
    /// outbound budget up to the idle timeout. False when the connection is being cut.
    async fn send_paced(&self, message: &ServerMessage) -> bool {
        let frame = Message::Binary(Bytes::from(wire::encode(message)));
        tracing::trace!(bytes = frame.len(), ?message, "queued");
        let patience = Duration::from_secs(self.shared.config.idle_timeout_secs.max(1));
        self.out.push_paced(frame, patience).await.is_ok()
    }

    fn reject(&self, code: ErrorCode, doc: Option<DocId>, message: String) {
        self.shared.metrics.reject(code);
        self.send(&ServerMessage::Rejected { code, doc, message });
    }

    /// Takes the sync state of `doc` out of the cache.
    fn take_state(&mut self, doc: &DocId) -> Option<State> {
        let state = self.states.pop(doc)?;
        self.shared.metrics.sync_states.dec();
        Some(state)
    }

    /// Keeps the sync state of `doc`, dropping the least recently used ones past
    /// `--max-sync-states`.
    fn keep_state(&mut self, doc: DocId, state: State) {
        let before = self.states.len();
        self.states.put(doc, state);
        let max = self.shared.config.max_sync_states.max(1);
        while self.states.len() > max && self.states.pop_lru().is_some() {
            self.shared.metrics.sync_states_evicted.inc();
        }
        let after = self.states.len();
        self.shared
            .metrics
            .sync_states
            .inc_by(after as i64 - before as i64);
    }

    /// Subscribes to live changes of `doc`; past `--max-subscriptions`, refuses with
    /// `too_large` and returns false.
    fn subscribe(&self, doc: &DocId) -> bool {
        let max = self.shared.config.max_subscriptions;
        if self.shared.hub.subscribe(self.id, doc, max) {
            return true;
        }
        self.reject(
            ErrorCode::TooLarge,
            Some(doc.clone()),
            format!(
                "this connection already follows {max} documents live (--max-subscriptions); \
                 {doc} was not subscribed: reconnect to start over with the documents you need"
            ),
        );
        false
    }

    /// Handles messages until the client leaves, is kicked, idles out or the relay stops.
    /// Returns the error to send before closing, if any.
    async fn serve(
        &mut self,
        source: &mut SplitStream<Ws>,
        mut kick: oneshot::Receiver<ErrorCode>,
        mut stop: watch::Receiver<bool>,
    ) -> Option<Refused> {
        let config = self.shared.config.clone();
        let idle = Duration::from_secs(config.idle_timeout_secs.max(1));
        let mut ping = tokio::time::interval(Duration::from_secs(config.ping_interval_secs.max(1)));
        ping.tick().await;
        let rate = NonZeroU32::new(config.messages_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let limiter = RateLimiter::direct(Quota::per_second(rate));
        // One deadline, moved only when a frame arrives (pings sent or timer ticks do not).
        let silence = tokio::time::sleep(idle);
        tokio::pin!(silence);
        loop {
            tokio::select! {
                // A cut, a kick or a shutdown decided while a message was being handled
                // wins over the idle timer that ran meanwhile: the client is told why.
                biased;
                message = self.out.cut() => return Some((ErrorCode::SlowReader, message)),
                code = &mut kick => {
                    let code = code.unwrap_or(ErrorCode::Internal);
                    let message = match code {
                        ErrorCode::Replaced => "this running client of the device connected again; this older connection is closed".to_owned(),
                        _ => "closed by the relay".to_owned(),
                    };
                    return Some((code, message));
                }
                _ = stop.changed() => {
                    return Some((ErrorCode::ShuttingDown, "the relay is shutting down; reconnect in a moment".into()));
                }
                frame = source.next() => {
                    silence.as_mut().reset(tokio::time::Instant::now() + idle);
                    let frame = match frame {
                        None | Some(Ok(Message::Close(_))) => return None,
                        Some(Err(e)) => {
                            let refused = handshake::refusal(&e, config.max_message_bytes);
                            if let Some((code, _)) = &refused {
                                self.shared.metrics.reject(*code);
                            }
                            return refused;
                        }
                        Some(Ok(frame)) => frame,
                    };
                    self.shared.metrics.messages_in.inc();
                    self.shared.metrics.bytes_in.inc_by(frame.len() as u64);
                    let bytes = match frame {
                        Message::Binary(b) => b,
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                        Message::Text(_) => {
                            self.reject(ErrorCode::MalformedFrame, None, "text frames are not part of the protocol: send binary CBOR frames".into());
                            continue;
                        }
                        Message::Close(_) => return None,
                    };
                    if limiter.check().is_err() {
                        self.reject(ErrorCode::RateLimited, None, format!("more than {} messages per second: slow down", config.messages_per_second));
                        continue;
                    }
                    match wire::decode::<ClientMessage>(&bytes) {
                        Ok(message) => self.handle(message).await,
                        Err(e) => self.reject(ErrorCode::MalformedFrame, None, e.to_string()),
                    }
                    // Time the relay spent answering (waiting for room to send) is not
                    // the client's silence.
                    silence.as_mut().reset(tokio::time::Instant::now() + idle);
                }
                () = &mut silence => {
                    return Some((ErrorCode::NotAuthenticated, format!(
                        "nothing received for {} s (--idle-timeout-secs): answer pings, or reconnect",
                        idle.as_secs()
                    )));
                }
                _ = ping.tick() => {
                    let _ = self.out.push(Message::Ping(Bytes::new()));
                }
            }
        }
    }
}
