//! Identifiers and their printable forms.
//!
//! - A [`UserId`] is an Ed25519 public key, printed as 52 characters of unpadded lowercase
//!   base32 (RFC 4648 alphabet). Lowercase base32 is case-insensitive-safe, file-name-safe
//!   and URL-safe, and 12 characters shorter than hex.
//! - A [`PostId`] or [`CommentId`] is `<author uid>-<suffix>`: the author is part of the id,
//!   so anyone (the relay included) can tell whose post a like is aimed at, and whose
//!   comment a comment is, without a lookup.
//! - A [`DocId`] names an Automerge document: `user/<uid>` or `thread/<post_id>`.
//! - A [`BlobHash`] is the SHA-256 of an image, printed as 64 lowercase hex digits.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use data_encoding::{Encoding, Specification};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::IdError;

/// Unpadded lowercase RFC 4648 base32.
static BASE32: LazyLock<Encoding> = LazyLock::new(|| {
    let mut spec = Specification::new();
    spec.symbols.push_str("abcdefghijklmnopqrstuvwxyz234567");
    #[allow(clippy::expect_used)] // a constant specification, checked by the unit tests
    spec.encoding().expect("the base32 specification is valid")
});

/// Length of a printed [`UserId`].
pub const USER_ID_LEN: usize = 52;
/// Longest suffix of a [`PostId`] or [`CommentId`].
pub const MAX_SUFFIX_LEN: usize = 32;

/// Encodes bytes as unpadded lowercase base32, the alphabet of every printable id here.
pub fn base32(bytes: &[u8]) -> String {
    BASE32.encode(bytes)
}

/// A user: the 32 bytes of an Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId([u8; 32]);

impl UserId {
    /// The id of the user whose public key is `key`.
    pub const fn from_bytes(key: [u8; 32]) -> Self {
        Self(key)
    }

    /// The public key's bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base32(&self.0))
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({self})")
    }
}

impl FromStr for UserId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IdError::UserId {
            value: s.to_owned(),
        };
        if s.len() != USER_ID_LEN {
            return Err(err());
        }
        let bytes = BASE32.decode(s.as_bytes()).map_err(|_| err())?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| err())?;
        // Reject non-canonical spellings (trailing bits set), so one key has one id.
        if base32(&key) != s {
            return Err(err());
        }
        Ok(Self(key))
    }
}

/// An id owned by its author: `<author uid>-<suffix>`. [`PostId`] and [`CommentId`] are
/// this shape.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AuthoredId {
    author: UserId,
    text: String,
}

impl AuthoredId {
    /// Makes an id for `author` whose suffix is the base32 of `random` (at most 20 bytes,
    /// which print as 32 characters; longer input is cut).
    pub fn new(author: UserId, random: &[u8]) -> Self {
        let random = &random[..random.len().min(20)];
        Self {
            author,
            text: format!("{author}-{}", base32(random)),
        }
    }

    /// The user who made it.
    pub const fn author(&self) -> UserId {
        self.author
    }

    /// The printable form.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn parse(s: &str, kind: &'static str) -> Result<Self, IdError> {
        let err = || IdError::AuthoredId {
            kind,
            value: s.to_owned(),
        };
        let (author, suffix) = s.split_once('-').ok_or_else(err)?;
        let author: UserId = author.parse().map_err(|_| err())?;
        let suffix_ok = (1..=MAX_SUFFIX_LEN).contains(&suffix.len())
            && suffix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
        if !suffix_ok {
            return Err(err());
        }
        Ok(Self {
            author,
            text: s.to_owned(),
        })
    }
}

macro_rules! authored_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(AuthoredId);

        impl $name {
            /// Makes a new id for `author` from random bytes (see [`AuthoredId::new`]).
            pub fn new(author: UserId, random: &[u8]) -> Self {
                Self(AuthoredId::new(author, random))
            }

            /// The user who made it.
            pub const fn author(&self) -> UserId {
                self.0.author()
            }

            /// The printable form.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                AuthoredId::parse(s, $kind).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.as_str())
            }
        }

        serde_as_string!($name);
    };
}

macro_rules! serde_as_string {
    ($name:ident) => {
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_string!(UserId);

authored_id!(
    /// A post: `<author uid>-<suffix>`. Its reactions live in the document `thread/<post id>`.
    PostId,
    "post"
);

authored_id!(
    /// A comment: `<author uid>-<suffix>`, so a comment's author is part of its id.
    CommentId,
    "comment"
);

/// The id of one Automerge document.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocId {
    /// `user/<uid>`: a user's profile, posts and follows; written by that user only.
    User(UserId),
    /// `thread/<post_id>`: the likes and comments of one post; each user writes only their
    /// own entries.
    Thread(PostId),
}

impl DocId {
    /// The user whose document this is (`user/<uid>`) or whose post it reacts to
    /// (`thread/<post_id>`).
    pub fn owner(&self) -> UserId {
        match self {
            Self::User(uid) => *uid,
            Self::Thread(post) => post.author(),
        }
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(uid) => write!(f, "user/{uid}"),
            Self::Thread(post) => write!(f, "thread/{post}"),
        }
    }
}

impl fmt::Debug for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocId({self})")
    }
}

impl FromStr for DocId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IdError::DocId {
            value: s.to_owned(),
        };
        match s.split_once('/') {
            Some(("user", uid)) => uid.parse().map(Self::User).map_err(|_| err()),
            Some(("thread", post)) => post.parse().map(Self::Thread).map_err(|_| err()),
            _ => Err(err()),
        }
    }
}

serde_as_string!(DocId);

/// The SHA-256 of a blob (an image), printed as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash([u8; 32]);

impl BlobHash {
    /// Wraps a SHA-256 digest.
    pub const fn from_digest(digest: [u8; 32]) -> Self {
        Self(digest)
    }

    /// The digest's bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({self})")
    }
}

impl FromStr for BlobHash {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IdError::BlobHash {
            value: s.to_owned(),
        };
        let bytes = data_encoding::HEXLOWER
            .decode(s.as_bytes())
            .map_err(|_| err())?;
        bytes.try_into().map(Self).map_err(|_| err())
    }
}

serde_as_string!(BlobHash);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn uid(n: u8) -> UserId {
        UserId::from_bytes([n; 32])
    }

    #[test]
    fn user_id_prints_as_52_lowercase_base32_chars_and_parses_back() {
        let id = uid(7);
        let s = id.to_string();
        assert_eq!(s.len(), USER_ID_LEN);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_eq!(s.parse::<UserId>(), Ok(id));
    }

    #[test]
    fn user_id_rejects_wrong_length_case_and_noncanonical_spelling() {
        let s = uid(1).to_string();
        assert!(s[1..].parse::<UserId>().is_err());
        assert!(s.to_uppercase().parse::<UserId>().is_err());
        // The last character carries 4 padding bits; setting them gives another spelling of
        // the same bytes, which must be refused.
        let mut noncanonical = s[..USER_ID_LEN - 1].to_owned();
        let last = s.as_bytes()[USER_ID_LEN - 1];
        let alphabet = b"abcdefghijklmnopqrstuvwxyz234567";
        let pos = alphabet.iter().position(|&c| c == last).unwrap();
        noncanonical.push(alphabet[pos | 1] as char);
        if noncanonical != s {
            assert!(noncanonical.parse::<UserId>().is_err());
        }
        let err = "bob".parse::<UserId>().unwrap_err().to_string();
        assert!(err.contains("'bob'") && err.contains("whoami"), "{err}");
    }

    #[test]
    fn authored_ids_carry_their_author() {
        let post = PostId::new(uid(3), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(post.author(), uid(3));
        assert_eq!(post.as_str().parse::<PostId>(), Ok(post.clone()));
        let comment: CommentId = format!("{}-abc", uid(4)).parse().unwrap();
        assert_eq!(comment.author(), uid(4));
    }

    #[test]
    fn authored_ids_reject_bad_suffixes() {
        let author = uid(3).to_string();
        for bad in [
            format!("{author}-"),
            format!("{author}-ABC"),
            format!("{author}-a_b"),
            format!("{author}-{}", "a".repeat(33)),
            format!("{author}abc"),
            "x-abc".to_owned(),
        ] {
            let err = bad.parse::<PostId>().unwrap_err();
            assert!(err.to_string().contains("post id"), "{err}");
        }
    }

    #[test]
    fn doc_ids_round_trip_and_name_their_owner() {
        let post = PostId::new(uid(9), b"xyz");
        let thread = DocId::Thread(post.clone());
        assert_eq!(thread.to_string(), format!("thread/{post}"));
        assert_eq!(thread.owner(), uid(9));
        assert_eq!(thread.to_string().parse::<DocId>(), Ok(thread));
        let user = DocId::User(uid(2));
        assert_eq!(user.to_string().parse::<DocId>(), Ok(user));
        assert!("post/abc".parse::<DocId>().is_err());
        assert!("user/".parse::<DocId>().is_err());
    }

    #[test]
    fn blob_hash_is_64_hex_digits() {
        let h = BlobHash::from_digest([0xab; 32]);
        assert_eq!(h.to_string(), "ab".repeat(32));
        assert_eq!(h.to_string().parse::<BlobHash>(), Ok(h));
        assert!("AB".repeat(32).parse::<BlobHash>().is_err());
        assert!("ab".parse::<BlobHash>().is_err());
    }

    #[test]
    fn ids_serialize_as_json_strings() {
        let id = uid(5);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<UserId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<UserId>("\"nope\"").is_err());
    }

    proptest! {
        #[test]
        fn any_key_round_trips(bytes in any::<[u8; 32]>(), suffix in proptest::collection::vec(any::<u8>(), 1..20)) {
            let id = UserId::from_bytes(bytes);
            prop_assert_eq!(id.to_string().parse::<UserId>(), Ok(id));
            let post = PostId::new(id, &suffix);
            prop_assert_eq!(post.as_str().parse::<PostId>(), Ok(post.clone()));
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(s in ".{0,120}") {
            let _ = s.parse::<UserId>();
            let _ = s.parse::<PostId>();
            let _ = s.parse::<DocId>();
            let _ = s.parse::<BlobHash>();
        }
    }
}
