//! What travels on the bus: a frame some node already encoded for its own clients, with
//! where it came from (so the node that sent it skips it, and a node that gets it on
//! several channels passes it on once) and the follows it changed (so nodes keep their map
//! of who follows whom among their users). The bus is the operator's own Redis, but a
//! message that does not decode is dropped with a log line, never trusted blindly.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use social_sync_protocol::UserId;

/// Largest bus message a node takes (a frame is at most the relay's largest message, 16
/// MiB by default, plus a little).
pub const MAX_BYTES: usize = 64 * 1024 * 1024;

/// One message on the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusMessage {
    /// The node that sent it.
    pub origin: u64,
    /// Its number among that node's messages.
    pub id: u64,
    /// What it is.
    pub body: Body,
}

/// What a bus message carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// A server frame to queue, as is, on the connections the channel stands for.
    Frame {
        /// The encoded `ServerMessage`.
        frame: ByteBuf,
        /// Follows the changes made or ended: (follower, followee, following now?).
        follows: Vec<(UserId, UserId, bool)>,
    },
    /// A node could not publish news from this number on: every node passes on what the
    /// store has after it.
    Gap {
        /// Catch up on news after this number.
        after: u64,
    },
}

/// Why a bus message was dropped.
#[derive(Debug, thiserror::Error)]
pub enum BadMessage {
    /// Over [`MAX_BYTES`].
    #[error("a bus message of {0} bytes, over the {MAX_BYTES} a node takes; dropped")]
    TooLarge(usize),
    /// Not a bus message of this version.
    #[error(
        "a bus message that does not decode ({0}); is another program publishing on social-sync: channels?"
    )]
    Undecodable(String),
}

impl BusMessage {
    /// CBOR bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = ciborium::into_writer(self, &mut out);
        out
    }

    /// Reads a message, refusing one over [`MAX_BYTES`].
    pub fn decode(bytes: &[u8]) -> Result<Self, BadMessage> {
        if bytes.len() > MAX_BYTES {
            return Err(BadMessage::TooLarge(bytes.len()));
        }
        ciborium::from_reader(bytes).map_err(|e| BadMessage::Undecodable(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_message_reads_back_and_garbage_is_refused() {
        let m = BusMessage {
            origin: 7,
            id: 9,
            body: Body::Frame {
                frame: ByteBuf::from(vec![1, 2, 3]),
                follows: vec![(
                    UserId::from_bytes([1; 32]),
                    UserId::from_bytes([2; 32]),
                    true,
                )],
            },
        };
        assert_eq!(BusMessage::decode(&m.encode()).unwrap(), m);
        assert!(matches!(
            BusMessage::decode(b"hello"),
            Err(BadMessage::Undecodable(_))
        ));
        assert!(matches!(
            BusMessage::decode(&vec![0; MAX_BYTES + 1]),
            Err(BadMessage::TooLarge(_))
        ));
    }
}
