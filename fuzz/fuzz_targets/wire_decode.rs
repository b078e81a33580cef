//! The wire decoder on arbitrary bytes: `wire::decode` of a [`ClientMessage`] (what the
//! relay decodes from every frame, before authentication too) and of a [`ServerMessage`]
//! (what a client decodes). Whatever decodes must encode and decode back to itself.

#![no_main]
#![allow(clippy::expect_used, clippy::panic)] // a failed expectation is the finding

use libfuzzer_sys::fuzz_target;
use social_sync_protocol::wire::{self, ClientMessage, ServerMessage};

fuzz_target!(|frame: &[u8]| {
    if let Ok(message) = wire::decode::<ClientMessage>(frame) {
        let again = wire::decode::<ClientMessage>(&wire::encode(&message))
            .expect("a decoded client message re-encodes to a frame that decodes");
        assert_eq!(again, message, "client message round trip");
    }
    if let Ok(message) = wire::decode::<ServerMessage>(frame) {
        let again = wire::decode::<ServerMessage>(&wire::encode(&message))
            .expect("a decoded server message re-encodes to a frame that decodes");
        assert_eq!(again, message, "server message round trip");
    }
});
