//! The bytes a user signs, spelled once for every implementation: the handshake's proof of
//! key (bound to the relay it was made for) and the signature every Automerge change
//! carries (bound to its document).
//!
//! Both are Ed25519 signatures (RFC 8032, verified strictly) by the user's key, whose
//! public half is the user id and the first 32 bytes of every Automerge actor id the user
//! writes with.

use crate::{DocId, UserId};

/// Prefix of the handshake's signed bytes; see [`auth_payload`].
pub const AUTH_CONTEXT: &[u8] = b"social-sync/auth/v2\0";

/// Prefix of a change's signed bytes; see [`change_payload`].
pub const CHANGE_CONTEXT: &[u8] = b"social-sync/change/v1\0";

/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// The bytes a client signs to answer the relay's `nonce`:
/// `AUTH_CONTEXT || nonce || user key (32) || device (16 ASCII hex digits) || relay origin`
/// where the relay origin is [`relay_origin`] of the address the client dialled. The relay
/// checks the origin is one of its own, so a hostile relay that forwards its challenge to
/// another relay cannot log in there as the user.
pub fn auth_payload(nonce: &[u8], user: &UserId, device: &str, relay: &str) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(AUTH_CONTEXT.len() + nonce.len() + 32 + device.len() + relay.len());
    out.extend_from_slice(AUTH_CONTEXT);
    out.extend_from_slice(nonce);
    out.extend_from_slice(user.as_bytes());
    out.extend_from_slice(device.as_bytes());
    out.extend_from_slice(relay.as_bytes());
    out
}

/// The bytes an author signs for one change of one document:
/// `CHANGE_CONTEXT || document id (UTF-8) || 0x00 || change hash (32 bytes)`.
///
/// The change hash covers the change's bytes, its actor, its dependencies and its
/// operations; the document id pins it to one document, so the same change cannot be
/// replayed into another thread (a like's first change is byte for byte the same whichever
/// post it likes).
pub fn change_payload(doc: &DocId, hash: &[u8; 32]) -> Vec<u8> {
    let doc = doc.to_string();
    let mut out = Vec::with_capacity(CHANGE_CONTEXT.len() + doc.len() + 1 + 32);
    out.extend_from_slice(CHANGE_CONTEXT);
    out.extend_from_slice(doc.as_bytes());
    out.push(0);
    out.extend_from_slice(hash);
    out
}

/// Why a relay address cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{url}' is not a relay address ({detail}): write it as ws://HOST:PORT or wss://HOST[:PORT]"
)]
pub struct BadRelayUrl {
    /// What was given.
    pub url: String,
    /// What is wrong with it.
    pub detail: String,
}

/// The canonical origin of a relay address, as signed in the handshake:
/// `scheme://host:port`, scheme `ws` or `wss`, host in lower case (IPv6 in brackets), the
/// port always written (80 for `ws`, 443 for `wss` when the address leaves it out), no
/// path, query or user info.
///
/// ```
/// use social_sync_protocol::signing::relay_origin;
/// assert_eq!(relay_origin("WSS://Relay.Example.org/").unwrap(), "wss://relay.example.org:443");
/// assert_eq!(relay_origin("ws://127.0.0.1:8787").unwrap(), "ws://127.0.0.1:8787");
/// ```
pub fn relay_origin(url: &str) -> Result<String, BadRelayUrl> {
    let bad = |detail: &str| BadRelayUrl {
        url: url.to_owned(),
        detail: detail.to_owned(),
    };
    let parsed = url::Url::parse(url.trim()).map_err(|e| bad(&e.to_string()))?;
    let scheme = parsed.scheme();
    if scheme != "ws" && scheme != "wss" {
        return Err(bad(&format!("the scheme is '{scheme}', not ws or wss")));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("it carries a user name or password"));
    }
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        None => return Err(bad("it names no host")),
    };
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| bad("it names no port"))?;
    Ok(format!("{scheme}://{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PostId;

    #[test]
    fn origins_are_canonical() {
        for (url, origin) in [
            ("ws://127.0.0.1:8787", "ws://127.0.0.1:8787"),
            ("ws://127.0.0.1:8787/", "ws://127.0.0.1:8787"),
            ("ws://LOCALHOST:1/path?q", "ws://localhost:1"),
            ("wss://relay.example.org", "wss://relay.example.org:443"),
            ("ws://relay.example.org", "ws://relay.example.org:80"),
            ("wss://[::1]:9000", "wss://[::1]:9000"),
        ] {
            assert_eq!(relay_origin(url).unwrap(), origin, "{url}");
        }
        for url in ["http://x:1", "ws://u:p@x:1", "not a url", "ws://:1"] {
            assert!(relay_origin(url).is_err(), "{url}");
        }
    }

    #[test]
    fn a_change_is_signed_for_one_document() {
        let author = UserId::from_bytes([1; 32]);
        let a = DocId::Thread(PostId::new(author, b"a"));
        let b = DocId::Thread(PostId::new(author, b"b"));
        let hash = [7; 32];
        assert_ne!(change_payload(&a, &hash), change_payload(&b, &hash));
        assert!(change_payload(&a, &hash).starts_with(CHANGE_CONTEXT));
        assert!(change_payload(&a, &hash).ends_with(&hash));
    }

    #[test]
    fn the_auth_payload_names_the_relay() {
        let user = UserId::from_bytes([1; 32]);
        let one = auth_payload(&[0; 32], &user, "00ff00ff00ff00ff", "ws://a:1");
        let two = auth_payload(&[0; 32], &user, "00ff00ff00ff00ff", "ws://b:1");
        assert_ne!(one, two);
    }
}
