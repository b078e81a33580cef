//! automerge-repo's WebSocket protocol, client side: what `WebSocketClientAdapter` and the
//! repo's `NetworkSubsystem` put on the wire (automerge-repo 2.x,
//! `packages/automerge-repo-network-websocket/src/messages.ts` and
//! `packages/automerge-repo/src/network/messages.ts`).
//!
//! Every message is one binary WebSocket frame holding one CBOR map (cbor-x with
//! `tagUint8Array: false`, so `data` is a plain byte string). The client opens with
//! `join` (`senderId`, `peerMetadata`, `supportedProtocolVersions: ["1"]`); the server
//! answers `peer` (`senderId`, `peerMetadata`, `selectedProtocolVersion`, `targetId`) or
//! `error`. After that both sides send repo messages: `request` (the first Automerge sync
//! message for a document the sender does not have), `sync` (any later one),
//! `doc-unavailable`, `ephemeral`, `remote-subscription-change`, `remote-heads-changed`.
//! Every repo message names `senderId` and `targetId`; the document ones name `documentId`,
//! the base58check encoding of the document's 16 random bytes (a UUID v4).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// The only protocol version automerge-repo's WebSocket adapters speak.
const PROTOCOL_V1: &str = "1";

/// How long the `join` → `peer` handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// A new document id: 16 random bytes shaped as a UUID v4, base58check-encoded (as
/// automerge-repo's `generateAutomergeUrl`).
pub(super) fn new_document_id() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bs58::encode(bytes).with_check().into_string()
}

/// A new peer id for a client of this run (`loadgen-ROLE-N-RANDOM`).
pub(super) fn new_peer_id(role: &str, n: usize) -> String {
    format!("loadgen-{role}-{n}-{:08x}", rand::random::<u32>())
}

/// `join`: the client's first message.
#[derive(Serialize)]
struct Join<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "senderId")]
    sender_id: &'a str,
    #[serde(rename = "peerMetadata")]
    peer_metadata: PeerMetadata,
    #[serde(rename = "supportedProtocolVersions")]
    supported_protocol_versions: [&'static str; 1],
}

/// What a peer says about its storage. The load generator's clients keep their documents
/// in memory only, so they say they are ephemeral (the server then keeps no sync state of
/// theirs on disk, as for a browser tab without IndexedDB).
#[derive(Serialize)]
struct PeerMetadata {
    #[serde(rename = "isEphemeral")]
    is_ephemeral: bool,
}

/// `request` or `sync`, from this client.
#[derive(Serialize)]
struct DocMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "senderId")]
    sender_id: &'a str,
    #[serde(rename = "targetId")]
    target_id: &'a str,
    #[serde(rename = "documentId")]
    document_id: &'a str,
    #[serde(with = "serde_bytes")]
    data: &'a [u8],
}

/// Any message from the server, with the fields this client reads (the rest are skipped).
#[derive(Deserialize)]
struct FromServer {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "senderId", default)]
    sender_id: Option<String>,
    #[serde(rename = "documentId", default)]
    document_id: Option<String>,
    #[serde(default)]
    data: Option<serde_bytes::ByteBuf>,
    #[serde(default)]
    message: Option<String>,
}

/// What the server said, as far as this client cares.
pub(super) enum Incoming {
    /// `sync` or `request`: an Automerge sync message for a document.
    Sync {
        /// The document.
        document_id: String,
        /// The encoded Automerge sync message.
        data: Vec<u8>,
    },
    /// `doc-unavailable`: the server does not have the document.
    Unavailable {
        /// The document.
        document_id: String,
    },
    /// Anything else (`ephemeral`, `remote-heads-changed`, …): nothing this client uses.
    Other,
}

/// One client connection to the sync server, past the `join` → `peer` handshake.
pub(super) struct Conn {
    ws: WebSocketStream<TcpStream>,
    /// This client's peer id.
    pub(super) peer_id: String,
    /// The server's peer id (`targetId` of what this client sends).
    pub(super) server_id: String,
    /// Bytes of WebSocket payloads received so far (binary and text frames).
    pub(super) received_bytes: u64,
}

impl Conn {
    /// Connects to `addr`, sends `join` as `peer_id`, and waits for the server's `peer`.
    /// A failure to open the TCP connection is returned as the [`std::io::Error`] itself
    /// (callers look for a file limit).
    pub(super) async fn connect(addr: SocketAddr, peer_id: String) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
            .await
            .context("WebSocket handshake with the sync server")?;
        let mut conn = Self {
            ws,
            peer_id,
            server_id: String::new(),
            received_bytes: 0,
        };
        let join = Join {
            kind: "join",
            sender_id: &conn.peer_id,
            peer_metadata: PeerMetadata { is_ephemeral: true },
            supported_protocol_versions: [PROTOCOL_V1],
        };
        send_cbor(&mut conn.ws, &join).await?;
        let peer = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.next_from_server())
            .await
            .context("no `peer` answer to `join` within 30 s")??
            .context("the sync server closed the connection before answering `join`")?;
        match peer.kind.as_str() {
            "peer" => {
                conn.server_id = peer
                    .sender_id
                    .context("the server's `peer` message has no senderId")?;
                Ok(conn)
            }
            "error" => bail!(
                "the sync server refused `join`: {}",
                peer.message.unwrap_or_default()
            ),
            other => bail!("the sync server answered `join` with `{other}`, not `peer`"),
        }
    }

    /// Sends an Automerge sync message for `document_id`, as `request` (`first_ask`: this
    /// client has nothing of the document yet) or `sync`.
    pub(super) async fn send_sync(
        &mut self,
        document_id: &str,
        data: &[u8],
        first_ask: bool,
    ) -> anyhow::Result<()> {
        let message = DocMessage {
            kind: if first_ask { "request" } else { "sync" },
            sender_id: &self.peer_id,
            target_id: &self.server_id,
            document_id,
            data,
        };
        send_cbor(&mut self.ws, &message).await
    }

    /// The next message from the server; `None` when the connection closed.
    pub(super) async fn recv(&mut self) -> anyhow::Result<Option<Incoming>> {
        let Some(message) = self.next_from_server().await? else {
            return Ok(None);
        };
        Ok(Some(match message.kind.as_str() {
            "sync" | "request" => Incoming::Sync {
                document_id: message
                    .document_id
                    .context("a sync message without documentId")?,
                data: message
                    .data
                    .context("a sync message without data")?
                    .into_vec(),
            },
            "doc-unavailable" => Incoming::Unavailable {
                document_id: message.document_id.unwrap_or_default(),
            },
            "error" => bail!(
                "the sync server sent an error: {}",
                message.message.unwrap_or_default()
            ),
            _ => Incoming::Other,
        }))
    }

    /// Closes the connection (close frame, then waits briefly for the server's).
    pub(super) async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }

    /// The next binary (or text) frame, decoded; pings are answered by tungstenite on the
    /// next read.
    async fn next_from_server(&mut self) -> anyhow::Result<Option<FromServer>> {
        loop {
            let Some(frame) = self.ws.next().await else {
                return Ok(None);
            };
            let payload = match frame.context("reading from the sync server")? {
                WsMessage::Binary(bytes) => bytes,
                WsMessage::Text(text) => text.into(),
                WsMessage::Close(_) => return Ok(None),
                WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => continue,
            };
            self.received_bytes += payload.len() as u64;
            let message: FromServer = ciborium::from_reader(payload.as_ref())
                .context("a message from the sync server is not the expected CBOR map")?;
            return Ok(Some(message));
        }
    }
}

/// Sends `message` as one binary frame of CBOR.
async fn send_cbor(
    ws: &mut WebSocketStream<TcpStream>,
    message: &impl Serialize,
) -> anyhow::Result<()> {
    let mut bytes = Vec::with_capacity(128);
    ciborium::into_writer(message, &mut bytes).context("encoding a message as CBOR")?;
    ws.send(WsMessage::Binary(bytes.into()))
        .await
        .context("sending to the sync server")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_ids_are_base58check_of_16_bytes() {
        let id = new_document_id();
        let bytes = bs58::decode(&id).with_check(None).into_vec().unwrap();
        assert_eq!(bytes.len(), 16);
        assert_eq!(bytes[6] >> 4, 4, "UUID v4");
    }

    #[test]
    fn a_sync_message_is_a_cbor_map_with_a_byte_string() {
        let message = DocMessage {
            kind: "sync",
            sender_id: "a",
            target_id: "b",
            document_id: "d",
            data: &[1, 2, 3],
        };
        let mut bytes = Vec::new();
        ciborium::into_writer(&message, &mut bytes).unwrap();
        let decoded: FromServer = ciborium::from_reader(bytes.as_slice()).unwrap();
        assert_eq!(decoded.kind, "sync");
        assert_eq!(decoded.data.unwrap().into_vec(), vec![1, 2, 3]);
        assert_eq!(decoded.document_id.as_deref(), Some("d"));
    }
}
