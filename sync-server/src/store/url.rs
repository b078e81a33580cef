//! `--store`: which backend to open, read from a URL. Its password never reaches a log
//! line, an error message or `{:?}`.

use std::fmt;
use std::str::FromStr;

use super::StoreError;

/// A store other than the default embedded SQLite database.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `postgres://user[:password]@host[:port]/database[?options]` (or `postgresql://`).
    Postgres(String),
}

impl StoreUrl {
    /// The full URL, password included: only for connecting.
    pub(crate) fn secret(&self) -> &str {
        match self {
            Self::Postgres(url) => url,
        }
    }
}

impl FromStr for StoreUrl {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        let unsupported = |why: &str| StoreError::UnsupportedStore {
            given: redact(s),
            why: why.to_owned(),
        };
        let scheme = s.split_once("://").map(|(scheme, _)| scheme);
        match scheme {
            Some("postgres" | "postgresql") => {
                ::postgres::Config::from_str(s)
                    .map_err(|e| unsupported(&format!("not a PostgreSQL URL ({e})")))?;
                Ok(Self::Postgres(s.to_owned()))
            }
            Some(other) => Err(unsupported(&format!("the relay has no '{other}' store"))),
            None => Err(unsupported("not a URL")),
        }
    }
}

/// Shows the URL without its password or options (`postgres://relay:***@db:5432/relay`).
impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(self.secret()))
    }
}

/// As [`fmt::Display`]: no password.
impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUrl({self})")
    }
}

/// `s` with the password of its user part masked and its query (which may carry one) cut.
pub(crate) fn redact(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        // Not a URL: a `key=value` string could hold a password anywhere.
        return "(not a URL)".to_owned();
    };
    let rest = rest.split_once('?').map_or(rest, |(before, _)| before);
    let (authority, path) = rest
        .find('/')
        .map_or((rest, ""), |i| (&rest[..i], &rest[i..]));
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _password)) => format!("{name}:***@{host}"),
            None => format!("{user}@{host}"),
        },
        None => authority.to_owned(),
    };
    format!("{scheme}://{authority}{path}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn passwords_never_show() {
        let url: StoreUrl = "postgres://relay:s3cret@db.example:5432/relay?password=s3cret"
            .parse()
            .unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://relay:***@db.example:5432/relay"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(
            redact("postgresql://postgres@127.0.0.1:5433/postgres"),
            "postgresql://postgres@127.0.0.1:5433/postgres"
        );
    }

    #[test]
    fn other_stores_are_refused_with_what_to_give() {
        let err = "mysql://root:pw@db/relay".parse::<StoreUrl>().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("mysql://root:***@db/relay"), "{text}");
        assert!(text.contains("no 'mysql' store"), "{text}");
        assert!(text.contains("postgres://"), "{text}");
        assert!(!text.contains("pw@"), "{text}");
        let err = "relay-data".parse::<StoreUrl>().unwrap_err();
        assert!(err.to_string().contains("not a URL"), "{err}");
    }
}
