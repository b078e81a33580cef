//! One WebSocket to the relay: connect, prove who we are, send and receive typed messages.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_bytes::ByteBuf;
use social_sync_protocol::signing::{auth_payload, relay_origin};
use social_sync_protocol::wire;
use social_sync_protocol::{ClientMessage, Limits, PROTOCOL_VERSION, ServerMessage, UserId};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::{SyncError, tls};
use crate::Identity;

/// An authenticated connection.
pub struct Link {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The address dialled.
    url: String,
    /// The relay's limits.
    pub limits: Limits,
}

const HANDSHAKE: Duration = Duration::from_secs(15);

impl Link {
    /// Connects to `url` and authenticates as `identity` on `device`, without an instance
    /// (a second such connection of the device replaces this one).
    pub async fn connect(url: &str, identity: &Identity, device: &str) -> Result<Self, SyncError> {
        Self::connect_as(url, identity, device, None, None).await
    }

    /// Connects to `url` and authenticates as `identity` on `device`, as the running client
    /// `instance` of the device: only a later connection with the same instance replaces
    /// this one (see `hello.instance` in the protocol's README). A `wss://` relay's
    /// certificate must chain to the system's roots or to `extra_root` (PEM).
    pub async fn connect_as(
        url: &str,
        identity: &Identity,
        device: &str,
        instance: Option<u64>,
        extra_root: Option<&str>,
    ) -> Result<Self, SyncError> {
        let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
        let unreachable = |detail: String| SyncError::Unreachable {
            url: url.to_owned(),
            detail,
        };
        // The handshake's signature names the relay as dialled, so a relay cannot forward
        // its challenge to another relay and log in there as this user.
        let origin = relay_origin(url).map_err(|e| unreachable(e.to_string()))?;
        let tls_failed = |problem| SyncError::Tls {
            url: url.to_owned(),
            problem,
        };
        let secure = url.starts_with("wss://");
        let connector = if secure {
            Some(Connector::Rustls(
                tls::client_config(extra_root).map_err(tls_failed)?,
            ))
        } else {
            None
        };
        let (ws, _) = tokio::time::timeout(
            HANDSHAKE,
            tokio_tungstenite::connect_async_tls_with_config(url, Some(config), true, connector),
        )
        .await
        .map_err(|_| unreachable("no answer within 15 s".into()))?
        .map_err(|e| match tls::problem(secure, &e) {
            Some(problem) => tls_failed(problem),
            None => unreachable(e.to_string()),
        })?;
        let mut link = Self {
            ws,
            url: url.to_owned(),
            limits: Limits {
                max_message_bytes: 1 << 20,
                max_blob_bytes: 0,
                messages_per_second: 1,
            },
        };
        let user: UserId = identity.user_id();
        link.send(&ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            user,
            device: device.to_owned(),
            agent: format!("social-sync-core/{}", env!("CARGO_PKG_VERSION")),
            instance,
        })
        .await?;
        let nonce = match link.recv_timeout(HANDSHAKE).await? {
            ServerMessage::Challenge { nonce, .. } => nonce,
            other => return Err(unexpected(other)),
        };
        let signature = identity.sign(&auth_payload(&nonce, &user, device, &origin));
        link.send(&ClientMessage::Auth {
            signature: ByteBuf::from(signature.to_vec()),
            relay: origin,
        })
        .await?;
        match link.recv_timeout(HANDSHAKE).await? {
            ServerMessage::Welcome { limits, .. } => link.limits = limits,
            other => return Err(unexpected(other)),
        }
        Ok(link)
    }

    /// The relay's address, as dialled (and signed for in the handshake).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one message.
    pub async fn send(&mut self, message: &ClientMessage) -> Result<(), SyncError> {
        self.ws
            .send(Message::Binary(Bytes::from(wire::encode(message))))
            .await
            .map_err(|e| SyncError::Lost(e.to_string()))
    }

    /// The next message; `Err(Lost)` when the connection ends, `Err(Refused)` for a fatal
    /// error from the relay.
    pub async fn recv(&mut self) -> Result<ServerMessage, SyncError> {
        loop {
            let frame = self
                .ws
                .next()
                .await
                .ok_or_else(|| SyncError::Lost("the relay closed the connection".into()))?;
            match frame.map_err(|e| SyncError::Lost(e.to_string()))? {
                Message::Binary(bytes) => {
                    let message: ServerMessage =
                        wire::decode(&bytes).map_err(|e| SyncError::Protocol(e.to_string()))?;
                    if let ServerMessage::Error { code, message } = message {
                        return Err(SyncError::Refused { code, message });
                    }
                    return Ok(message);
                }
                Message::Close(frame) => {
                    let why = frame.map_or_else(|| "closed".to_owned(), |f| f.reason.to_string());
                    return Err(SyncError::Lost(format!(
                        "the relay closed the connection ({why})"
                    )));
                }
                _ => {}
            }
        }
    }

    async fn recv_timeout(&mut self, timeout: Duration) -> Result<ServerMessage, SyncError> {
        tokio::time::timeout(timeout, self.recv())
            .await
            .map_err(|_| {
                SyncError::Lost(format!(
                    "no answer from the relay within {} s",
                    timeout.as_secs()
                ))
            })?
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

fn unexpected(message: ServerMessage) -> SyncError {
    SyncError::Protocol(format!(
        "unexpected message during the handshake: {message:?}"
    ))
}
