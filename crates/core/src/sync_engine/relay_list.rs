//! [`RelayList`]: the relays a profile syncs through, in the order they are tried.
//!
//! One string holds the list, as a person types it and as the profile saves it: addresses
//! separated by commas and/or white space (`ws://a:8787, ws://b:8787`). Each address is
//! checked as the handshake will use it ([`relay_origin`]), and two addresses of the same
//! relay are refused: the list is a set of distinct relays, each dialled (and signed for)
//! as written. A single address is a list of one.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use social_sync_protocol::signing::{BadRelayUrl, relay_origin};

/// Why a relay list cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayListError {
    /// Nothing but separators.
    #[error(
        "'{given}' names no relay: give one or more addresses such as ws://HOST:PORT or wss://HOST, separated by commas or spaces"
    )]
    Empty {
        /// What was given.
        given: String,
    },
    /// One address of the list is not a relay address.
    #[error("{}", bad_url(*position, *of, source))]
    BadUrl {
        /// Its place in the list, from 1.
        position: usize,
        /// How many addresses the list holds.
        of: usize,
        /// What is wrong with it (it names the address and the form to use).
        source: BadRelayUrl,
    },
    /// The same relay twice.
    #[error("'{first}' and '{again}' are the same relay ({origin}): list each relay once")]
    Repeated {
        /// The address as first written.
        first: String,
        /// The address that repeats it.
        again: String,
        /// The relay both name.
        origin: String,
    },
}

/// The sentence of [`RelayListError::BadUrl`]: the address's place only in a list of
/// several.
fn bad_url(position: usize, of: usize, source: &BadRelayUrl) -> String {
    if of == 1 {
        source.to_string()
    } else {
        format!("relay {position} of {of} in the list: {source}")
    }
}

/// The relays a profile syncs through, in the order they are tried: never empty, each
/// address a distinct relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RelayList {
    urls: Vec<String>,
}

impl RelayList {
    /// Parses addresses separated by commas and/or white space, each checked with
    /// [`relay_origin`]; refuses an empty list and a relay named twice.
    pub fn parse(text: &str) -> Result<Self, RelayListError> {
        let mut urls: Vec<String> = Vec::new();
        let mut origins: Vec<String> = Vec::new();
        let words: Vec<&str> = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        for (index, &url) in words.iter().enumerate() {
            let origin = relay_origin(url).map_err(|source| RelayListError::BadUrl {
                position: index + 1,
                of: words.len(),
                source,
            })?;
            if let Some(at) = origins.iter().position(|o| *o == origin) {
                return Err(RelayListError::Repeated {
                    first: urls[at].clone(),
                    again: url.to_owned(),
                    origin,
                });
            }
            urls.push(url.to_owned());
            origins.push(origin);
        }
        if urls.is_empty() {
            return Err(RelayListError::Empty {
                given: text.to_owned(),
            });
        }
        Ok(Self { urls })
    }

    /// A list of the one address `url`, taken as it is: not checked here, the connection
    /// checks it (how an engine made with [`crate::SyncEngine::new`] always behaved).
    pub fn one(url: impl Into<String>) -> Self {
        Self {
            urls: vec![url.into()],
        }
    }

    /// The addresses, in the order they are tried.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// How many relays (at least one).
    pub fn len(&self) -> usize {
        self.urls.len()
    }

    /// Always false: a list holds at least one relay (for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// The address at `index` (taken modulo the length: any index names a relay).
    pub fn get(&self, index: usize) -> &str {
        &self.urls[index % self.urls.len()]
    }
}

/// The list as saved and shown: the addresses joined by `", "` (which [`RelayList::parse`]
/// reads back to the same list).
impl fmt::Display for RelayList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.urls.join(", "))
    }
}

impl FromStr for RelayList {
    type Err = RelayListError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_and_white_space_separate_addresses() {
        for text in [
            "ws://a:1,ws://b:2",
            "ws://a:1, ws://b:2",
            " ws://a:1\n\tws://b:2 ",
            "ws://a:1 ,, ws://b:2,",
        ] {
            let list = RelayList::parse(text).unwrap();
            assert_eq!(list.urls(), ["ws://a:1", "ws://b:2"], "{text:?}");
        }
        let list = RelayList::parse("ws://a:1, wss://b.example.org").unwrap();
        assert_eq!(list.to_string(), "ws://a:1, wss://b.example.org");
        assert_eq!(list.to_string().parse::<RelayList>().unwrap(), list);
        assert_eq!(list.get(3), "wss://b.example.org", "indexes wrap around");
    }

    #[test]
    fn a_single_address_is_a_list_of_one() {
        let list = RelayList::parse("ws://127.0.0.1:8787").unwrap();
        assert_eq!(list, RelayList::one("ws://127.0.0.1:8787"));
        assert_eq!(list.len(), 1);
        assert!(!list.is_empty());
    }

    #[test]
    fn a_bad_address_is_named_with_its_place() {
        let err = RelayList::parse("ws://a:1, http://b:2").unwrap_err();
        assert!(
            matches!(&err, RelayListError::BadUrl { position: 2, of: 2, source } if source.url == "http://b:2"),
            "{err:?}"
        );
        let told = err.to_string();
        assert!(
            told.contains("relay 2 of 2")
                && told.contains("http://b:2")
                && told.contains("ws://HOST"),
            "{told}"
        );
        let alone = RelayList::parse("http://b:2").unwrap_err().to_string();
        assert!(
            alone.starts_with("'http://b:2' is not a relay address"),
            "no place for a single address: {alone}"
        );
        assert!(RelayList::parse("ws://u:p@a:1").is_err(), "no user info");
    }

    #[test]
    fn an_empty_list_says_what_to_give() {
        for text in ["", "  ", ", ,"] {
            let err = RelayList::parse(text).unwrap_err();
            assert_eq!(
                err,
                RelayListError::Empty {
                    given: text.to_owned()
                }
            );
            assert!(err.to_string().contains("ws://HOST:PORT"), "{err}");
        }
    }

    #[test]
    fn the_same_relay_twice_is_refused() {
        let err = RelayList::parse("ws://relay:80 ws://RELAY/").unwrap_err();
        assert_eq!(
            err,
            RelayListError::Repeated {
                first: "ws://relay:80".into(),
                again: "ws://RELAY/".into(),
                origin: "ws://relay:80".into(),
            }
        );
        assert!(err.to_string().contains("list each relay once"), "{err}");
    }
}
