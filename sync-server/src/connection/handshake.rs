//! From an upgrade request to an authenticated session: the WebSocket handshake, `hello`,
//! the challenge and the signed `auth`, all within the one deadline set when the socket was
//! accepted, with frames limited to `--max-preauth-frame-bytes` (see [`super::guard`]).

use std::net::SocketAddr;
use std::time::Duration;

use ed25519_dalek::{Signature, VerifyingKey};
use futures_util::{SinkExt, StreamExt};
use rand::RngCore;
use serde_bytes::ByteBuf;
use social_sync_protocol::signing::auth_payload;
use social_sync_protocol::wire;
use social_sync_protocol::{ClientMessage, ErrorCode, PROTOCOL_VERSION, ServerMessage, UserId};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};

use super::guard::TooLargeBeforeAuth;
use super::{Refused, Ws, close_code};
use crate::shared::Shared;

/// Who the client proved to be.
#[derive(Debug)]
pub(crate) struct Session {
    /// The user whose key signed the challenge.
    pub(crate) user: UserId,
    /// The device id from `hello`.
    pub(crate) device: String,
    /// Which running client of the device (`hello.instance`; `None` from older clients).
    pub(crate) instance: Option<u64>,
}

/// Turns a WebSocket error into the code and message the client is told.
pub(crate) fn refusal(e: &WsError, max_message_bytes: u32) -> Option<Refused> {
    match e {
        WsError::Capacity(c) => Some((
            ErrorCode::TooLarge,
            format!("{c}: the limit is {max_message_bytes} bytes; send smaller messages"),
        )),
        WsError::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<TooLargeBeforeAuth>())
            .map(|too_large| (ErrorCode::TooLarge, too_large.to_string())),
        WsError::Protocol(p) => Some((
            ErrorCode::MalformedFrame,
            format!("WebSocket protocol error: {p}; use a conforming WebSocket client"),
        )),
        _ => None,
    }
}

fn late(shared: &Shared) -> Refused {
    (
        ErrorCode::NotAuthenticated,
        format!(
            "no authentication within {} s of connecting (--handshake-timeout-secs): send hello, \
             then auth, right after the upgrade",
            shared.config.handshake_timeout_secs
        ),
    )
}

async fn next_binary(ws: &mut Ws, deadline: Instant, shared: &Shared) -> Result<Bytes, Refused> {
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| late(shared))?;
        shared.metrics.messages_in.inc();
        match frame {
            Some(Ok(Message::Binary(b))) => {
                shared.metrics.bytes_in.inc_by(b.len() as u64);
                return Ok(b);
            }
            // Pings are answered, but do not move the deadline.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(_)) => {
                return Err((
                    ErrorCode::MalformedFrame,
                    "expected a binary frame: send binary CBOR frames".into(),
                ));
            }
            Some(Err(e)) => {
                return Err(refusal(&e, shared.config.max_message_bytes).unwrap_or((
                    ErrorCode::MalformedFrame,
                    format!("broken WebSocket: {e}; reconnect"),
                )));
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

/// Runs `hello`, challenge and `auth` on `ws`, by `deadline`.
pub(crate) async fn authenticate(
    ws: &mut Ws,
    deadline: Instant,
    local: SocketAddr,
    shared: &Shared,
) -> Result<Session, Refused> {
    let hello: ClientMessage = wire::decode(&next_binary(ws, deadline, shared).await?)
        .map_err(|e| (ErrorCode::MalformedFrame, e.to_string()))?;
    let ClientMessage::Hello {
        version,
        user,
        device,
        agent,
        instance,
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
    tokio::time::timeout_at(
        deadline,
        ws.send(Message::Binary(Bytes::from(wire::encode(&challenge)))),
    )
    .await
    .map_err(|_| late(shared))?
    .map_err(|_| (ErrorCode::NotAuthenticated, "connection closed".into()))?;
    let auth: ClientMessage = wire::decode(&next_binary(ws, deadline, shared).await?)
        .map_err(|e| (ErrorCode::MalformedFrame, e.to_string()))?;
    let ClientMessage::Auth { signature, relay } = auth else {
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
    if !shared.origins.accepts(&relay, local) {
        let known = if shared.origins.public().is_empty() {
            format!("the address it was reached at ({local})")
        } else {
            shared.origins.public().join(", ")
        };
        return Err((
            ErrorCode::BadSignature,
            format!(
                "this login was made for the relay at {relay}, and this relay answers to {known}: \
                 dial this relay's own address (its operator sets --public-url for host names and proxies)"
            ),
        ));
    }
    let key = VerifyingKey::from_bytes(user.as_bytes()).map_err(|_| bad())?;
    let signature: [u8; 64] = signature.as_slice().try_into().map_err(|_| bad())?;
    key.verify_strict(
        &auth_payload(&nonce, &user, &device, &relay),
        &Signature::from_bytes(&signature),
    )
    .map_err(|_| bad())?;
    tracing::debug!(%user, %agent, "signature verified");
    Ok(Session {
        user,
        device,
        instance,
    })
}

/// Tells a client its handshake was refused and closes, within a second: the error, a close
/// frame, then what the client still sends is read and dropped until it closes (so the
/// close does not reset the connection before the client reads why).
pub(crate) async fn refuse(mut ws: Ws, code: ErrorCode, message: String) {
    let frame = wire::encode(&ServerMessage::Error { code, message });
    let goodbye = async {
        ws.feed(Message::Binary(Bytes::from(frame))).await?;
        ws.feed(Message::Close(Some(CloseFrame {
            code: close_code(code),
            reason: code.as_str().into(),
        })))
        .await?;
        ws.flush().await?;
        Ok::<_, WsError>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), goodbye).await;
    let mut stream = ws.into_inner();
    stream.lift();
    let drain = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = stream.get_mut().shutdown().await;
        let mut sink = [0u8; 4096];
        while matches!(stream.get_mut().read(&mut sink).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}
