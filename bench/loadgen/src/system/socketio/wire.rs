//! The Engine.IO v4 / Socket.IO v5 text wire format (default namespace, no binary
//! attachments), and the seed's events as typed structs.
//!
//! An Engine.IO packet is one WebSocket text message: a type digit (`0` open, `1` close,
//! `2` ping, `3` pong, `4` message) and its data. A message carries a Socket.IO packet: a
//! type digit (`0` connect, `1` disconnect, `2` event, `3` ack, `4` connect error), an
//! optional ack id, and JSON: `42["new-post",{…}]`, `4217["post-liked",{…}]`, `4317[{…}]`.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// Engine.IO pong, the answer to every ping.
pub(crate) const PONG: &str = "3";
/// Socket.IO disconnect from the default namespace.
pub(crate) const DISCONNECT: &str = "41";

/// One decoded packet; JSON parts are borrowed, still to be parsed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Packet<'a> {
    /// Engine.IO open: `{"sid":…,"pingInterval":…,"pingTimeout":…}`.
    Open(&'a str),
    /// Engine.IO close.
    Close,
    /// Engine.IO ping (the server's heartbeat).
    Ping,
    /// Socket.IO connect accepted: `{"sid":…}`.
    Connect(&'a str),
    /// Socket.IO connect refused: `{"message":…}`.
    ConnectError(&'a str),
    /// Socket.IO disconnect.
    Disconnect,
    /// Socket.IO event: `["name", payload…]`, with the ack id the sender waits for.
    Event {
        /// The ack id, when the sender asked for an acknowledgement.
        ack: Option<u64>,
        /// The JSON array.
        data: &'a str,
    },
    /// Socket.IO acknowledgement of an event this side sent: `[args…]`.
    Ack {
        /// The event's ack id.
        id: u64,
        /// The JSON array of the ack's arguments.
        data: &'a str,
    },
    /// Anything else (pong, upgrade, noop, other namespaces' packets): ignored.
    Other,
}

/// Decodes one WebSocket text message.
pub(crate) fn decode(text: &str) -> Packet<'_> {
    let mut chars = text.char_indices();
    match chars.next() {
        Some((_, '0')) => Packet::Open(&text[1..]),
        Some((_, '1')) => Packet::Close,
        Some((_, '2')) => Packet::Ping,
        Some((_, '4')) => decode_socketio(&text[1..]),
        _ => Packet::Other,
    }
}

fn decode_socketio(text: &str) -> Packet<'_> {
    let Some(kind) = text.chars().next() else {
        return Packet::Other;
    };
    let mut rest = &text[1..];
    // A namespace other than `/` is written `/name,`; only the default one is used here.
    if rest.starts_with('/') {
        return Packet::Other;
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = rest[..digits].parse::<u64>().ok();
    rest = &rest[digits..];
    match (kind, id) {
        ('0', _) => Packet::Connect(rest),
        ('1', _) => Packet::Disconnect,
        ('2', ack) => Packet::Event { ack, data: rest },
        ('3', Some(id)) => Packet::Ack { id, data: rest },
        ('4', _) => Packet::ConnectError(rest),
        _ => Packet::Other,
    }
}

/// The Socket.IO CONNECT packet with its auth payload, `40{"userId":"…"}`.
pub(crate) fn connect(user_id: &str) -> anyhow::Result<String> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Auth<'a> {
        user_id: &'a str,
    }
    Ok(format!("40{}", serde_json::to_string(&Auth { user_id })?))
}

/// An event packet, `42<ack>["name",payload]`.
pub(crate) fn event<T: Serialize>(
    name: &str,
    payload: &T,
    ack: Option<u64>,
) -> anyhow::Result<String> {
    let json = serde_json::to_string(&(name, payload))?;
    Ok(match ack {
        Some(id) => format!("42{id}{json}"),
        None => format!("42{json}"),
    })
}

/// The empty acknowledgement of an event the server asked this side to acknowledge.
pub(crate) fn ack_reply(id: u64) -> String {
    format!("43{id}[]")
}

/// The Engine.IO open packet's payload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Open {
    /// The Engine.IO session id.
    pub(crate) sid: String,
    /// How often the server pings, ms.
    pub(crate) ping_interval: u64,
}

/// The server's acknowledgement of an event: `{ok, error?}` (and figures not read here).
#[derive(Debug, Deserialize)]
pub(crate) struct AckBody {
    /// Whether the server accepted the event.
    pub(crate) ok: bool,
    /// Why not.
    #[serde(default)]
    pub(crate) error: Option<String>,
}

/// `new-post`, both ways: the seed's "New Post Event".
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewPost {
    /// The post.
    pub(crate) post_id: String,
    /// Its caption.
    pub(crate) caption: String,
    /// Its author.
    pub(crate) created_by: String,
    /// The author's name.
    pub(crate) created_by_username: String,
    /// `image`, `video`, ….
    pub(crate) media_type: String,
    /// When it was made (ISO 8601).
    pub(crate) timestamp: String,
}

/// `post-liked` from the server: the seed's "Post Liked Event".
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Decoded whole, as the seed's client decodes it; not every field is read.
pub(crate) struct PostLiked {
    /// The post.
    pub(crate) post_id: String,
    /// Who liked it.
    pub(crate) liked_by: String,
    /// Their name.
    #[serde(default)]
    pub(crate) liked_by_username: Option<String>,
    /// The post's likes after this one.
    pub(crate) total_likes: u64,
    /// Liked or unliked.
    pub(crate) liked: bool,
    /// When (ISO 8601).
    pub(crate) timestamp: String,
}

/// `comment-added` from the server: the seed's "Comment Added Event".
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Decoded whole, as the seed's client decodes it; no workload reads it.
pub(crate) struct CommentAdded {
    /// The post.
    pub(crate) post_id: String,
    /// Who commented.
    pub(crate) commented_by: String,
    /// Their name.
    #[serde(default)]
    pub(crate) commented_by_username: Option<String>,
    /// The comment.
    pub(crate) comment_text: String,
    /// The post's comments after this one.
    pub(crate) total_comments: u64,
    /// When (ISO 8601).
    pub(crate) timestamp: String,
}

/// `user-followed` from the server: someone followed this user.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Decoded whole, as the seed's client decodes it; no workload reads it.
pub(crate) struct UserFollowed {
    /// The user followed.
    pub(crate) user_id: String,
    /// The new follower.
    pub(crate) followed_by: String,
    /// When (ISO 8601).
    pub(crate) timestamp: String,
}

/// `user-status` from the server: someone this user follows came or went.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Decoded whole, as the seed's client decodes it; no workload reads it.
pub(crate) struct UserStatus {
    /// Who.
    pub(crate) user_id: String,
    /// Online now or not.
    pub(crate) online: bool,
}

/// The client→server `user-followed`: follow `user_id`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Follow<'a> {
    /// The user to follow.
    pub(crate) user_id: &'a str,
}

/// The client→server `view-post`: watch a post's likes and comments.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ViewPost<'a> {
    /// The post.
    pub(crate) post_id: &'a str,
}

/// The client→server `post-liked`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Like<'a> {
    /// The post.
    pub(crate) post_id: &'a str,
    /// Like (true) or unlike.
    pub(crate) liked: bool,
}

/// An event from the server, parsed from its JSON array into the seed's payload types.
#[derive(Debug)]
#[allow(dead_code)] // Every event is decoded whole; the workloads read only some of them.
pub(crate) enum Event {
    /// `new-post`.
    NewPost(NewPost),
    /// `post-liked`.
    PostLiked(PostLiked),
    /// `comment-added`.
    CommentAdded(CommentAdded),
    /// `user-followed`.
    UserFollowed(UserFollowed),
    /// `user-status`.
    UserStatus(UserStatus),
    /// Any other event (its name).
    Other(String),
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(EventVisitor)
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a Socket.IO event, ["name", payload]"#)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Event, A::Error> {
        let name: String = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        fn payload<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
            seq: &mut A,
            name: &str,
        ) -> Result<T, A::Error> {
            seq.next_element()?
                .ok_or_else(|| de::Error::custom(format!("{name} without a payload")))
        }
        let event = match &*name {
            "new-post" => Event::NewPost(payload(&mut seq, &name)?),
            "post-liked" => Event::PostLiked(payload(&mut seq, &name)?),
            "comment-added" => Event::CommentAdded(payload(&mut seq, &name)?),
            "user-followed" => Event::UserFollowed(payload(&mut seq, &name)?),
            "user-status" => Event::UserStatus(payload(&mut seq, &name)?),
            other => Event::Other(other.to_owned()),
        };
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(event)
    }
}

/// Now as ISO 8601 in UTC with milliseconds, as JavaScript's `Date.toISOString()` writes it.
pub(crate) fn iso_now() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let (secs, ms) = ((ms / 1000) as i64, ms % 1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_engineio_and_socketio_packets() {
        assert_eq!(decode(r#"0{"sid":"a"}"#), Packet::Open(r#"{"sid":"a"}"#));
        assert_eq!(decode("2"), Packet::Ping);
        assert_eq!(
            decode(r#"40{"sid":"b"}"#),
            Packet::Connect(r#"{"sid":"b"}"#)
        );
        assert_eq!(
            decode(r#"44{"message":"no"}"#),
            Packet::ConnectError(r#"{"message":"no"}"#)
        );
        assert_eq!(
            decode(r#"42["x",{}]"#),
            Packet::Event {
                ack: None,
                data: r#"["x",{}]"#
            }
        );
        assert_eq!(
            decode(r#"4217["x",{}]"#),
            Packet::Event {
                ack: Some(17),
                data: r#"["x",{}]"#
            }
        );
        assert_eq!(
            decode(r#"4317[{"ok":true}]"#),
            Packet::Ack {
                id: 17,
                data: r#"[{"ok":true}]"#
            }
        );
        assert_eq!(decode("41"), Packet::Disconnect);
        assert_eq!(decode(r#"42/admin,["x"]"#), Packet::Other);
    }

    #[test]
    fn encodes_events_with_and_without_ack() -> anyhow::Result<()> {
        let like = Like {
            post_id: "p",
            liked: true,
        };
        assert_eq!(
            event("post-liked", &like, Some(3))?,
            r#"423["post-liked",{"postId":"p","liked":true}]"#
        );
        assert_eq!(
            event("view-post", &ViewPost { post_id: "p" }, None)?,
            r#"42["view-post",{"postId":"p"}]"#
        );
        assert_eq!(connect("u1")?, r#"40{"userId":"u1"}"#);
        Ok(())
    }

    #[test]
    fn parses_events_into_the_seeds_payloads() -> anyhow::Result<()> {
        let text = r#"["post-liked",{"postId":"p","likedBy":"u","totalLikes":42,"liked":true,"timestamp":"t"}]"#;
        match serde_json::from_str::<Event>(text)? {
            Event::PostLiked(like) => {
                assert_eq!((like.post_id.as_str(), like.total_likes), ("p", 42))
            }
            other => panic!("{other:?}"),
        }
        let text = r#"["something-else",{"a":1},2]"#;
        assert!(
            matches!(serde_json::from_str::<Event>(text)?, Event::Other(name) if name == "something-else")
        );
        assert!(serde_json::from_str::<Event>(r#"["new-post",{"postId":"p"}]"#).is_err());
        Ok(())
    }

    #[test]
    fn iso_timestamps_look_like_javascripts() {
        let now = iso_now();
        assert_eq!(now.len(), "2025-11-24T10:30:00.000Z".len(), "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z'), "{now}");
    }
}
