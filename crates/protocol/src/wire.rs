//! The messages between a client and the relay, and their encoding.
//!
//! Every message is one binary WebSocket frame holding one [CBOR] value: the message enum,
//! externally tagged (a map with one key, the message's name in `snake_case`, whose value
//! is the map of its fields). Byte fields are CBOR byte strings. See `README.md` beside
//! this crate for the whole exchange.
//!
//! [CBOR]: https://www.rfc-editor.org/rfc/rfc8949

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::{BlobHash, DocId, UserId};

pub use crate::error_code::ErrorCode;

/// The protocol version this build speaks.
///
/// Version 2: every change carries its author's signature ([`SyncItem::signatures`],
/// `changes.signatures`), and the handshake's signature names the relay
/// ([`crate::signing`]).
pub const PROTOCOL_VERSION: u32 = 2;

/// One document's Automerge sync message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncItem {
    /// The document.
    pub doc: DocId,
    /// An encoded `automerge::sync::Message`.
    pub message: ByteBuf,
    /// One Ed25519 signature (64 bytes) per change of `message`, in the same order: the
    /// change's author signs [`crate::signing::change_payload`] of this document and the
    /// change's hash. A change without a valid signature by the key in its actor id is
    /// refused, and with it the whole item.
    #[serde(default)]
    pub signatures: Vec<ByteBuf>,
}

/// An author's signature of a change the receiver already holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSignature {
    /// The change's hash (32 bytes).
    pub hash: ByteBuf,
    /// The signature of [`crate::signing::change_payload`] (64 bytes).
    pub signature: ByteBuf,
}

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientMessage {
    /// First message: who is connecting, speaking which version.
    Hello {
        /// [`PROTOCOL_VERSION`] of the client.
        version: u32,
        /// The user (public key).
        user: UserId,
        /// This device: 16 lowercase hex digits. The device's inbox position on the relay
        /// is kept under it.
        device: String,
        /// Free text naming the client, for logs.
        agent: String,
        /// Which running client of the device this is: a random number each running client
        /// (an app, a `watch`, a one-shot command) draws once and keeps across its
        /// reconnects. A new connection of the same device *and* instance replaces the old
        /// one (a reconnect leaves no ghost); clients of one device with different
        /// instances stay connected side by side. Absent (clients before this field) counts
        /// as one instance of its own, so those replace each other as before. Optional and
        /// left out when absent, so old relays (which ignore unknown fields) and old
        /// clients keep working.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<u64>,
    },
    /// Answer to [`ServerMessage::Challenge`]: Ed25519 signature of [`crate::signing::auth_payload`].
    Auth {
        /// 64 bytes.
        signature: ByteBuf,
        /// The relay's origin as the client dialled it ([`crate::signing::relay_origin`]),
        /// which the signature covers. The relay refuses an origin that is not its own.
        relay: String,
    },
    /// Automerge sync messages, any number of documents in one frame.
    Sync {
        /// One message per document.
        items: Vec<SyncItem>,
    },
    /// Receive live changes of these documents for the rest of the connection (documents
    /// the client has synced are subscribed already).
    Subscribe {
        /// The documents.
        docs: Vec<DocId>,
    },
    /// Asks for a [`ServerMessage::Pong`] with the same id. The relay handles a
    /// connection's messages in order, so the pong means everything sent before the ping
    /// has been handled and answered.
    Ping {
        /// Any number; echoed back.
        id: u64,
    },
    /// The client has stored everything in its inbox up to `seq`.
    InboxAck {
        /// Highest inbox sequence number handled.
        seq: u64,
    },
    /// Which of these users are online. The relay answers only for users who follow the
    /// asker; the others are left out as if offline.
    Presence {
        /// The users asked about (the client's follows).
        users: Vec<UserId>,
    },
    /// Who has this display name, or a name that looks like it (compared by the key of
    /// `social_sync_core::model::name`: case, width, confusable letters and invisible
    /// characters do not matter).
    LookupName {
        /// The name, with or without a leading `@`.
        name: String,
    },
    /// Store an image; the relay checks the hash, the size, the uploader's quota and the
    /// type (PNG, JPEG, GIF or WebP, read from the bytes).
    PutBlob {
        /// SHA-256 of `bytes`.
        hash: BlobHash,
        /// Media type as the client sees it; the relay ignores it and keeps the type it
        /// reads from the bytes.
        mime: String,
        /// The image.
        bytes: ByteBuf,
    },
    /// Fetch an image.
    GetBlob {
        /// Its hash.
        hash: BlobHash,
    },
    /// Signatures of the client's own changes that the relay stored before changes were
    /// signed (protocol version 1). Sent once by a client after it signed its own old
    /// changes; the relay checks each against the change it holds and keeps the valid ones,
    /// so it can hand those changes on to clients that require signatures.
    Signatures {
        /// The document.
        doc: DocId,
        /// The signatures, at most 4,096 per message.
        signatures: Vec<ChangeSignature>,
    },
    /// Who follows `user` and whom `user` follows, as the relay knows it: from every
    /// user's document, not only those this client holds, so every client shows the same
    /// counts. Answered with [`ServerMessage::FollowGraph`].
    FollowGraph {
        /// The user.
        user: UserId,
    },
}

/// Most user ids of each list in a [`FollowGraph`]; the counts are always whole.
pub const FOLLOW_GRAPH_PAGE: usize = 1_000;

/// A user's follow graph as the relay knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowGraph {
    /// The user.
    pub user: UserId,
    /// How many users follow them.
    pub followers: u64,
    /// How many users they follow.
    pub following: u64,
    /// Their followers, at most [`FOLLOW_GRAPH_PAGE`], in id order.
    pub follower_ids: Vec<UserId>,
    /// Whom they follow, at most [`FOLLOW_GRAPH_PAGE`], in id order.
    pub following_ids: Vec<UserId>,
}

/// One online user. Device ids never leave the relay: only how many are connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEntry {
    /// The user.
    pub user: UserId,
    /// How many of the user's devices are connected now (at least 1).
    pub devices: u32,
}

/// The relay's limits, told to the client on [`ServerMessage::Welcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest frame accepted, in bytes.
    pub max_message_bytes: u32,
    /// Largest image accepted, in bytes.
    pub max_blob_bytes: u32,
    /// Messages per second accepted per connection.
    pub messages_per_second: u32,
}

/// What the relay sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerMessage {
    /// Answer to `Hello`: sign this nonce.
    Challenge {
        /// [`PROTOCOL_VERSION`] of the relay.
        version: u32,
        /// 32 random bytes.
        nonce: ByteBuf,
    },
    /// Authenticated. The relay then sends the inbox (documents with news for this user)
    /// as sync messages, and [`ServerMessage::InboxSent`].
    Welcome {
        /// The authenticated user.
        user: UserId,
        /// The relay's limits.
        limits: Limits,
    },
    /// Automerge sync messages.
    Sync {
        /// One message per document.
        items: Vec<SyncItem>,
    },
    /// New changes of one document, pushed live. Encoded once for every recipient.
    Changes {
        /// The document.
        doc: DocId,
        /// Encoded Automerge changes.
        changes: Vec<ByteBuf>,
        /// Their authors' signatures, one per change, in the same order (see
        /// [`SyncItem::signatures`]).
        #[serde(default)]
        signatures: Vec<ByteBuf>,
        /// Inbox sequence number, to acknowledge with `InboxAck` once stored (0 when the
        /// push is not from the recipient's inbox).
        seq: u64,
    },
    /// Every inbox document waiting at connect time has been offered.
    InboxSent {
        /// Acknowledge this with `InboxAck` once all of them are stored.
        seq: u64,
        /// How many documents were offered.
        docs: u32,
    },
    /// Answer to [`ClientMessage::Ping`].
    Pong {
        /// The ping's id.
        id: u64,
    },
    /// Answer to `Presence`.
    Presence {
        /// Users online now who follow the asker, with how many devices.
        online: Vec<PresenceEntry>,
    },
    /// A user who follows the recipient, and whom the recipient follows, came online (a
    /// first device connected) or went offline (the last one left).
    PresenceChanged {
        /// The user.
        user: UserId,
        /// Online now?
        online: bool,
    },
    /// Answer to `LookupName`.
    Name {
        /// The name asked for.
        name: String,
        /// Who has it, if anyone.
        user: Option<UserId>,
    },
    /// Answer to `PutBlob`: stored.
    BlobStored {
        /// Its hash.
        hash: BlobHash,
    },
    /// Answer to `GetBlob`.
    Blob {
        /// Its hash.
        hash: BlobHash,
        /// Media type: PNG, JPEG, GIF or WebP, as the relay read it from the bytes.
        mime: String,
        /// The image.
        bytes: ByteBuf,
    },
    /// A message of the client was refused; the connection stays open.
    Rejected {
        /// Stable reason, see [`ErrorCode`].
        code: ErrorCode,
        /// The document concerned, if any.
        doc: Option<DocId>,
        /// One sentence for people.
        message: String,
    },
    /// A fatal error; the relay closes the connection after it.
    Error {
        /// Stable reason.
        code: ErrorCode,
        /// One sentence for people.
        message: String,
    },
    /// Answer to [`ClientMessage::FollowGraph`].
    FollowGraph {
        /// The graph.
        graph: FollowGraph,
    },
}

/// A frame that is not a message of this protocol.
#[derive(Debug, thiserror::Error)]
#[error(
    "the frame is not a Social Sync message ({0}); check the client speaks protocol version {PROTOCOL_VERSION}"
)]
pub struct DecodeError(String);

/// Encodes a message as one frame.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail, and every message type serializes.
    if let Err(e) = ciborium::into_writer(message, &mut out) {
        unreachable_encode(&e);
    }
    out
}

#[cold]
fn unreachable_encode(e: &dyn std::fmt::Display) {
    // Only reachable if a message type stopped being serializable: a bug caught by the
    // round-trip tests.
    debug_assert!(false, "encoding a message failed: {e}");
}

/// Decodes one frame.
pub fn decode<T: for<'de> Deserialize<'de>>(frame: &[u8]) -> Result<T, DecodeError> {
    ciborium::from_reader(frame).map_err(|e| DecodeError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PostId;

    fn uid() -> UserId {
        UserId::from_bytes([3; 32])
    }

    #[test]
    fn messages_round_trip() {
        let msgs = vec![
            ClientMessage::Hello {
                version: 1,
                user: uid(),
                device: "00ff00ff00ff00ff".into(),
                agent: "t".into(),
                instance: None,
            },
            ClientMessage::Hello {
                version: 1,
                user: uid(),
                device: "00ff00ff00ff00ff".into(),
                agent: "t".into(),
                instance: Some(u64::MAX),
            },
            ClientMessage::Auth {
                signature: ByteBuf::from(vec![1; 64]),
                relay: "ws://127.0.0.1:8787".into(),
            },
            ClientMessage::Sync {
                items: vec![SyncItem {
                    doc: DocId::Thread(PostId::new(uid(), b"x")),
                    message: ByteBuf::from(vec![9]),
                    signatures: vec![ByteBuf::from(vec![1; 64])],
                }],
            },
            ClientMessage::InboxAck { seq: 7 },
        ];
        for m in msgs {
            assert_eq!(decode::<ClientMessage>(&encode(&m)).unwrap(), m);
        }
        let s = ServerMessage::Rejected {
            code: ErrorCode::Forbidden,
            doc: None,
            message: "no".into(),
        };
        assert_eq!(decode::<ServerMessage>(&encode(&s)).unwrap(), s);
    }

    #[test]
    fn the_encoding_is_an_externally_tagged_cbor_map() {
        let frame = encode(&ClientMessage::InboxAck { seq: 5 });
        let value: ciborium::Value = ciborium::from_reader(&frame[..]).unwrap();
        let map = value.as_map().unwrap();
        assert_eq!(map[0].0, ciborium::Value::Text("inbox_ack".into()));
    }

    #[test]
    fn a_hello_without_instance_is_the_old_encoding() {
        #[derive(Serialize)]
        #[serde(rename_all = "snake_case")]
        enum Old {
            Hello {
                version: u32,
                user: UserId,
                device: String,
                agent: String,
            },
        }
        let old = Old::Hello {
            version: 1,
            user: uid(),
            device: "00ff00ff00ff00ff".into(),
            agent: "t".into(),
        };
        let mut old_frame = Vec::new();
        ciborium::into_writer(&old, &mut old_frame).unwrap();
        let new = ClientMessage::Hello {
            version: 1,
            user: uid(),
            device: "00ff00ff00ff00ff".into(),
            agent: "t".into(),
            instance: None,
        };
        assert_eq!(
            encode(&new),
            old_frame,
            "no instance: byte for byte the old hello"
        );
        assert_eq!(decode::<ClientMessage>(&old_frame).unwrap(), new);
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(decode::<ClientMessage>(b"\xff\x00garbage").is_err());
        assert!(
            decode::<ClientMessage>(&encode(&ServerMessage::InboxSent { seq: 1, docs: 0 }))
                .is_err()
        );
    }
}
