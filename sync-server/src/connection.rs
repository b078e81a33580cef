//! One client connection: the handshake (version, challenge, signature), the inbox offered
//! at connect, then every message in order, with limits (size, rate, send queue), keep-alive
//! pings and an idle timeout. Replies and fan-out frames go through a bounded queue drained
//! by a writer task that batches them into as few writes as it can.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use automerge::sync::State;
use ed25519_dalek::{Signature, VerifyingKey};
use futures_util::SinkExt;
use futures_util::stream::{SplitSink, StreamExt};
use governor::{Quota, RateLimiter};
use rand::RngCore;
use serde_bytes::ByteBuf;
use social_sync_protocol::wire::{self, auth_payload};
use social_sync_protocol::{
    ClientMessage, DocId, ErrorCode, Limits, PROTOCOL_VERSION, ServerMessage, SyncItem, UserId,
};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::documents::Received;
use crate::hub::ConnId;
use crate::server::Shared;

type Ws = WebSocketStream<TcpStream>;

/// Most documents answered in one `Sync` frame.
const ITEMS_PER_FRAME: usize = 256;

/// Serves one WebSocket connection until it ends.
pub async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    let max = shared.config.max_message_bytes as usize;
    let ws_config = WebSocketConfig::default()
        // tokio-tungstenite reads into a 128 KiB buffer by default: far too much per idle
        // connection. Small reads cost a little more syscall time, not memory.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(max.saturating_mul(2))
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let ws = match tokio_tungstenite::accept_async_with_config(stream, Some(ws_config)).await {
        Ok(ws) => ws,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "WebSocket handshake failed");
            return;
        }
    };
    let (sink, mut source) = ws.split();
    let (out, out_rx) = mpsc::channel(shared.config.send_queue.max(1));
    let writer = tokio::spawn(write_loop(sink, out_rx, shared.clone()));

    let session = match handshake(&mut source, &out, shared).await {
        Ok(session) => session,
        Err((code, message)) => {
            shared.metrics.reject(code);
            tracing::info!(%peer, code = code.as_str(), "handshake refused: {message}");
            close_with(&out, code, message).await;
            drop(out);
            let _ = writer.await;
            return;
        }
    };
    // Welcome is queued before the connection joins the hub: from then on other
    // connections' fan-out (presence, live changes) reaches this queue, and a client must
    // see Welcome first. (Queued after, a presence change could slip in between: the
    // client's handshake then failed with "unexpected message during the handshake".)
    let welcome = wire::encode(&ServerMessage::Welcome {
        user: session.user,
        limits: limits(shared),
    });
    if out
        .send(Message::Binary(Bytes::from(welcome)))
        .await
        .is_err()
    {
        drop(out);
        let _ = writer.await;
        return;
    }
    let (kick_tx, kick_rx) = oneshot::channel();
    let (id, was_online) = shared
        .hub
        .register(session.user, &session.device, out.clone(), kick_tx);
    tracing::info!(%peer, user = %session.user, device = %session.device, "authenticated");
    if !was_online {
        announce(shared, session.user, true).await;
    }
    let mut conn = Connection {
        id,
        session,
        shared: shared.clone(),
        out,
        states: HashMap::new(),
    };
    conn.offer_inbox().await;
    let end = conn.serve(&mut source, kick_rx, stop).await;

    let offline = shared.hub.unregister(conn.id);
    if let Some((user, _)) = offline {
        announce(shared, user, false).await;
    }
    if let Some((code, message)) = end {
        close_with(&conn.out, code, message).await;
    } else {
        let _ = conn.out.try_send(Message::Close(None));
    }
    drop(conn);
    let _ = writer.await;
}

fn limits(shared: &Shared) -> Limits {
    Limits {
        max_message_bytes: shared.config.max_message_bytes,
        max_blob_bytes: shared.config.max_blob_bytes,
        messages_per_second: shared.config.messages_per_second,
    }
}

/// Sends a fatal error and a close frame.
async fn close_with(out: &mpsc::Sender<Message>, code: ErrorCode, message: String) {
    let frame = wire::encode(&ServerMessage::Error { code, message });
    let _ = out.send(Message::Binary(Bytes::from(frame))).await;
    let close = match code {
        ErrorCode::ShuttingDown => CloseCode::Away,
        ErrorCode::TooLarge => CloseCode::Size,
        ErrorCode::BadSignature | ErrorCode::NotAuthenticated | ErrorCode::UnsupportedVersion => {
            CloseCode::Policy
        }
        _ => CloseCode::Policy,
    };
    let _ = out
        .send(Message::Close(Some(CloseFrame {
            code: close,
            reason: code.as_str().into(),
        })))
        .await;
}

/// Tells `user`'s watchers (see [`crate::presence`]) that they came online or left.
async fn announce(shared: &Arc<Shared>, user: UserId, online: bool) {
    let watchers = crate::presence::watchers(shared, user)
        .await
        .unwrap_or_default();
    shared.hub.announce_presence(&watchers, user, online);
}

/// Writes queued frames, several per flush when they pile up.
async fn write_loop(
    mut sink: SplitSink<Ws, Message>,
    mut rx: mpsc::Receiver<Message>,
    shared: Arc<Shared>,
) {
    while let Some(first) = rx.recv().await {
        let mut closing = matches!(first, Message::Close(_));
        let count = |m: &Message| {
            shared.metrics.messages_out.inc();
            shared.metrics.bytes_out.inc_by(m.len() as u64);
        };
        count(&first);
        if sink.feed(first).await.is_err() {
            break;
        }
        while !closing {
            match rx.try_recv() {
                Ok(next) => {
                    closing = matches!(next, Message::Close(_));
                    count(&next);
                    if sink.feed(next).await.is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        if sink.flush().await.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}

struct Session {
    user: UserId,
    device: String,
}

type Refused = (ErrorCode, String);

async fn next_binary(
    source: &mut futures_util::stream::SplitStream<Ws>,
    timeout: Duration,
) -> Result<Bytes, Refused> {
    loop {
        let frame = tokio::time::timeout(timeout, source.next())
            .await
            .map_err(|_| {
                (
                    ErrorCode::NotAuthenticated,
                    format!("no authentication within {} s", timeout.as_secs()),
                )
            })?;
        match frame {
            Some(Ok(Message::Binary(b))) => return Ok(b),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(_)) => {
                return Err((ErrorCode::MalformedFrame, "expected a binary frame".into()));
            }
            Some(Err(e)) => {
                return Err((ErrorCode::MalformedFrame, format!("broken WebSocket: {e}")));
            }
            None => {
                return Err((
                    ErrorCode::NotAuthenticated,
                    "closed during the handshake".into(),
                ));
            }
        }
    }
}

async fn handshake(
    source: &mut futures_util::stream::SplitStream<Ws>,
    out: &mpsc::Sender<Message>,
    shared: &Shared,
) -> Result<Session, Refused> {
    let timeout = Duration::from_secs(shared.config.handshake_timeout_secs);
    let hello: ClientMessage = wire::decode(&next_binary(source, timeout).await?)
        .map_err(|e| (ErrorCode::MalformedFrame, e.to_string()))?;
    let ClientMessage::Hello {
        version,
        user,
        device,
        agent,
    } = hello
    else {
        return Err((
            ErrorCode::NotAuthenticated,
            "the first message must be hello".into(),
        ));
    };
    if version != PROTOCOL_VERSION {
        return Err((
            ErrorCode::UnsupportedVersion,
            format!(
                "this relay speaks protocol version {PROTOCOL_VERSION}, not {version}: update the client"
            ),
        ));
    }
    if device.len() != 16
        || !device
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err((
            ErrorCode::NotAuthenticated,
            format!("'{device}' is not a device id: expected 16 lowercase hex digits"),
        ));
    }
    let mut nonce = [0u8; 32];
    rand::rng().fill_bytes(&mut nonce);
    let challenge = ServerMessage::Challenge {
        version: PROTOCOL_VERSION,
        nonce: ByteBuf::from(nonce.to_vec()),
    };
    out.send(Message::Binary(Bytes::from(wire::encode(&challenge))))
        .await
        .map_err(|_| (ErrorCode::Internal, "connection closed".into()))?;
    let auth: ClientMessage = wire::decode(&next_binary(source, timeout).await?)
        .map_err(|e| (ErrorCode::MalformedFrame, e.to_string()))?;
    let ClientMessage::Auth { signature } = auth else {
        return Err((
            ErrorCode::NotAuthenticated,
            "the second message must be auth".into(),
        ));
    };
    let bad = || {
        (
            ErrorCode::BadSignature,
            format!("the signature does not prove the key of {user}"),
        )
    };
    let key = VerifyingKey::from_bytes(user.as_bytes()).map_err(|_| bad())?;
    let signature: [u8; 64] = signature.as_slice().try_into().map_err(|_| bad())?;
    key.verify_strict(
        &auth_payload(&nonce, &user, &device),
        &Signature::from_bytes(&signature),
    )
    .map_err(|_| bad())?;
    tracing::debug!(%user, %agent, "signature verified");
    Ok(Session { user, device })
}

struct Connection {
    id: ConnId,
    session: Session,
    shared: Arc<Shared>,
    out: mpsc::Sender<Message>,
    /// Automerge sync state per document synced on this connection.
    states: HashMap<DocId, State>,
}

impl Connection {
    /// Queues a reply; a full queue means a slow reader, which is disconnected.
    fn send(&self, message: &ServerMessage) -> bool {
        let frame = Message::Binary(Bytes::from(wire::encode(message)));
        self.out.try_send(frame).is_ok()
    }

    fn reject(&self, code: ErrorCode, doc: Option<DocId>, message: String) {
        self.shared.metrics.reject(code);
        self.send(&ServerMessage::Rejected { code, doc, message });
    }

    /// Offers every inbox document newer than this device's cursor, then `InboxSent`.
    async fn offer_inbox(&mut self) {
        let shared = self.shared.clone();
        let (user, device) = (self.session.user, self.session.device.clone());
        let found = tokio::task::spawn_blocking(move || {
            let (docs, seq) = shared.docs.with_store(|s| s.inbox(user, &device))?;
            let mut items = Vec::new();
            let mut states = Vec::new();
            for doc in docs {
                let mut state = State::new();
                if let Some(message) = shared.docs.generate(&doc, &mut state)? {
                    items.push(SyncItem {
                        doc: doc.clone(),
                        message: ByteBuf::from(message),
                    });
                }
                states.push((doc, state));
            }
            Ok::<_, crate::store::StoreError>((items, states, seq))
        })
        .await;
        match found {
            Ok(Ok((items, states, seq))) => {
                let count = items.len() as u32;
                for (doc, state) in states {
                    self.shared.hub.subscribe(self.id, &doc);
                    self.states.insert(doc, state);
                }
                for chunk in items.chunks(ITEMS_PER_FRAME) {
                    self.send(&ServerMessage::Sync {
                        items: chunk.to_vec(),
                    });
                }
                self.send(&ServerMessage::InboxSent { seq, docs: count });
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "reading an inbox failed");
                self.reject(
                    ErrorCode::Internal,
                    None,
                    "the relay could not read your inbox; reconnect later".into(),
                );
            }
            Err(e) => tracing::error!(error = %e, "inbox task failed"),
        }
    }

    /// Handles messages until the client leaves, is kicked, idles out or the relay stops.
    /// Returns the error to send before closing, if any.
    async fn serve(
        &mut self,
        source: &mut futures_util::stream::SplitStream<Ws>,
        mut kick: oneshot::Receiver<ErrorCode>,
        mut stop: watch::Receiver<bool>,
    ) -> Option<Refused> {
        let config = self.shared.config.clone();
        let idle = Duration::from_secs(config.idle_timeout_secs.max(1));
        let mut ping = tokio::time::interval(Duration::from_secs(config.ping_interval_secs.max(1)));
        ping.tick().await;
        let rate = NonZeroU32::new(config.messages_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let limiter = RateLimiter::direct(Quota::per_second(rate));
        loop {
            tokio::select! {
                frame = tokio::time::timeout(idle, source.next()) => {
                    let frame = match frame {
                        Err(_) => return Some((ErrorCode::NotAuthenticated, format!("nothing received for {} s", idle.as_secs()))),
                        Ok(None) | Ok(Some(Ok(Message::Close(_)))) => return None,
                        Ok(Some(Err(e))) => {
                            use tokio_tungstenite::tungstenite::Error as WsError;
                            return match e {
                                WsError::Capacity(c) => {
                                    self.shared.metrics.reject(ErrorCode::TooLarge);
                                    Some((ErrorCode::TooLarge, format!("{c}: the limit is {} bytes", config.max_message_bytes)))
                                }
                                WsError::Protocol(p) => {
                                    self.shared.metrics.reject(ErrorCode::MalformedFrame);
                                    Some((ErrorCode::MalformedFrame, format!("WebSocket protocol error: {p}")))
                                }
                                _ => None,
                            };
                        }
                        Ok(Some(Ok(frame))) => frame,
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
                }
                _ = ping.tick() => {
                    let _ = self.out.try_send(Message::Ping(Bytes::new()));
                }
                code = &mut kick => {
                    let code = code.unwrap_or(ErrorCode::Internal);
                    let message = match code {
                        ErrorCode::Replaced => "this device connected again; this older connection is closed".to_owned(),
                        ErrorCode::SlowReader => "your connection did not keep up with what the relay sent; reconnect".to_owned(),
                        _ => "closed by the relay".to_owned(),
                    };
                    return Some((code, message));
                }
                _ = stop.changed() => {
                    return Some((ErrorCode::ShuttingDown, "the relay is shutting down; reconnect in a moment".into()));
                }
            }
        }
    }

    async fn handle(&mut self, message: ClientMessage) {
        match message {
            ClientMessage::Hello { .. } | ClientMessage::Auth { .. } => {
                self.reject(
                    ErrorCode::NotAuthenticated,
                    None,
                    "already authenticated".into(),
                );
            }
            ClientMessage::Ping { id } => {
                self.send(&ServerMessage::Pong { id });
            }
            ClientMessage::Sync { items } => self.sync(items).await,
            ClientMessage::Subscribe { docs } => {
                for doc in docs {
                    self.shared.hub.subscribe(self.id, &doc);
                }
            }
            ClientMessage::InboxAck { seq } => {
                let (shared, user, device) = (
                    self.shared.clone(),
                    self.session.user,
                    self.session.device.clone(),
                );
                let acked = tokio::task::spawn_blocking(move || {
                    shared.docs.with_store(|s| s.ack_inbox(user, &device, seq))
                })
                .await;
                if !matches!(acked, Ok(Ok(()))) {
                    self.reject(ErrorCode::Internal, None, "the relay could not record your inbox position; it will offer those documents again".into());
                }
            }
            ClientMessage::Presence { users } => {
                match crate::presence::online_for(&self.shared, self.session.user, users).await {
                    Ok(online) => {
                        self.send(&ServerMessage::Presence { online });
                    }
                    Err(_) => self.reject(
                        ErrorCode::Internal,
                        None,
                        "the relay could not check who is online; try again".into(),
                    ),
                }
            }
            ClientMessage::LookupName { name } => {
                match crate::names::lookup(&self.shared, &name).await {
                    Ok(user) => {
                        self.send(&ServerMessage::Name { name, user });
                    }
                    Err(_) => self.reject(
                        ErrorCode::Internal,
                        None,
                        "the relay could not look the name up; try again".into(),
                    ),
                }
            }
            ClientMessage::PutBlob { hash, bytes, .. } => {
                match crate::blobs::put(&self.shared, self.session.user, hash, bytes.into_vec())
                    .await
                {
                    Ok(()) => {
                        self.send(&ServerMessage::BlobStored { hash });
                    }
                    Err(refused) => self.reject(refused.code(), None, refused.to_string()),
                }
            }
            ClientMessage::GetBlob { hash } => match crate::blobs::get(&self.shared, hash).await {
                Ok((mime, bytes)) => {
                    self.send(&ServerMessage::Blob {
                        hash,
                        mime: mime.to_owned(),
                        bytes: ByteBuf::from(bytes),
                    });
                }
                Err(refused) => self.reject(refused.code(), None, refused.to_string()),
            },
        }
    }

    /// Applies a batch of sync messages, answers them in one frame, and fans out what was
    /// accepted (encoded once per document).
    async fn sync(&mut self, items: Vec<SyncItem>) {
        let mut work: Vec<(DocId, State, ByteBuf)> = items
            .into_iter()
            .map(|item| {
                let state = self.states.remove(&item.doc).unwrap_or_default();
                (item.doc, state, item.message)
            })
            .collect();
        // User documents first: a thread is accepted only once its post is known, and a
        // new post often travels in the same batch as its author's own first reactions.
        work.sort_by_key(|(doc, ..)| !matches!(doc, DocId::User(_)));
        let shared = self.shared.clone();
        let user = self.session.user;
        let done = tokio::task::spawn_blocking(move || {
            work.into_iter()
                .map(|(doc, mut state, message)| {
                    let result = shared.docs.receive(user, &doc, &mut state, &message);
                    (doc, state, result)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let Ok(done) = done else {
            self.reject(
                ErrorCode::Internal,
                None,
                "the relay failed to process a sync batch; try again".into(),
            );
            return;
        };
        let mut replies = Vec::new();
        for (doc, state, result) in done {
            self.shared.hub.subscribe(self.id, &doc);
            match result {
                Ok(Received {
                    reply,
                    changes,
                    seq,
                    recipients,
                    name_refused,
                }) => {
                    if let Some(refused) = name_refused {
                        self.reject(refused.code(), None, refused.to_string());
                    }
                    self.states.insert(doc.clone(), state);
                    if !changes.is_empty() {
                        let frame = Bytes::from(wire::encode(&ServerMessage::Changes {
                            doc: doc.clone(),
                            changes: changes.into_iter().map(ByteBuf::from).collect(),
                            seq,
                        }));
                        self.shared
                            .hub
                            .fan_out(&recipients, Some(&doc), &frame, self.id);
                    }
                    if let Some(reply) = reply {
                        replies.push(SyncItem {
                            doc,
                            message: ByteBuf::from(reply),
                        });
                    }
                }
                Err(refusal) => {
                    // Start this document over: the refused message left nothing behind.
                    tracing::info!(user = %user, %doc, "refused: {refusal}");
                    self.reject(refusal.code(), Some(doc), refusal.to_string());
                }
            }
        }
        for chunk in replies.chunks(ITEMS_PER_FRAME) {
            if !self.send(&ServerMessage::Sync {
                items: chunk.to_vec(),
            }) {
                tracing::warn!(user = %user, "send queue full while answering a sync batch");
            }
        }
    }
}
