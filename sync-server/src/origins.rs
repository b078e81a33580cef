//! Which relay origins a client's login may name: the handshake's signature covers the
//! address the client dialled (`social_sync_protocol::signing::auth_payload`), and the
//! relay accepts only its own, so a login made for one relay is worthless at another
//! (NIP-42 binds the relay URL for the same reason).

use std::net::SocketAddr;

use social_sync_protocol::signing::{BadRelayUrl, relay_origin};

/// The origins this relay answers to.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    public: Vec<String>,
}

impl Origins {
    /// From the `--public-url` addresses; a malformed one is an error naming it.
    pub fn new(public_urls: &[String]) -> Result<Self, BadRelayUrl> {
        let public = public_urls
            .iter()
            .map(|u| relay_origin(u))
            .collect::<Result<_, _>>()?;
        Ok(Self { public })
    }

    /// Whether a login naming `claimed` (a canonical origin) may be taken on a connection
    /// accepted at `local`: one of the public addresses, or the socket's own address (the
    /// IP and port the client connected to; `localhost` too when that is a loopback one).
    pub fn accepts(&self, claimed: &str, local: SocketAddr) -> bool {
        if self.public.iter().any(|p| p == claimed) {
            return true;
        }
        let Ok(canonical) = relay_origin(claimed) else {
            return false;
        };
        if canonical != claimed {
            return false;
        }
        let ip = match local.ip() {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => format!("[{v6}]"),
            },
        };
        let port = local.port();
        let mut hosts = vec![ip];
        if local.ip().is_loopback() {
            hosts.push("localhost".to_owned());
        }
        hosts.iter().any(|host| {
            claimed == format!("ws://{host}:{port}") || claimed == format!("wss://{host}:{port}")
        })
    }

    /// The public addresses, for messages.
    pub fn public(&self) -> &[String] {
        &self.public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_address_and_the_public_ones_count() {
        let local: SocketAddr = "127.0.0.1:8787".parse().unwrap();
        let none = Origins::new(&[]).unwrap();
        assert!(none.accepts("ws://127.0.0.1:8787", local));
        assert!(none.accepts("ws://localhost:8787", local));
        assert!(none.accepts("wss://localhost:8787", local));
        assert!(!none.accepts("ws://127.0.0.1:9999", local));
        assert!(!none.accepts("wss://evil.example:443", local));
        assert!(!none.accepts("ws://LOCALHOST:8787", local), "not canonical");
        let lan: SocketAddr = "192.168.1.5:8787".parse().unwrap();
        assert!(none.accepts("ws://192.168.1.5:8787", lan));
        assert!(!none.accepts("ws://localhost:8787", lan));
        let public = Origins::new(&["wss://Relay.Example.org/".to_owned()]).unwrap();
        assert!(public.accepts("wss://relay.example.org:443", lan));
        assert!(Origins::new(&["http://x".to_owned()]).is_err());
    }
}
