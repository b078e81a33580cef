//! Every option of the relay; each also reads an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use clap::error::ErrorKind;

use crate::store::{StoreError, StoreUrl};

/// The Social Sync relay: one port for WebSocket clients and HTTP (`/healthz`,
/// `/metrics`), over TLS with `--tls-cert` and `--tls-key`; an embedded SQLite store in
/// `--data`.
#[derive(Debug, Clone, Parser)]
#[command(name = "sync-server", version, about)]
pub struct Config {
    /// Address and port to listen on (port 0 picks a free one).
    #[arg(long, env = "SYNC_SERVER_LISTEN", default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// Folder of the relay's database (created if missing).
    #[arg(long, env = "SYNC_SERVER_DATA", default_value = "relay-data")]
    pub data: PathBuf,
    /// Where to keep the relay's state instead of the SQLite database in --data:
    /// `postgres://user[:password]@host[:port]/database`, which several relay nodes may
    /// share (documents, signatures, follows, names, news, cursors and images all go
    /// there; --data is then unused). Plain TCP: keep PostgreSQL on loopback or a private
    /// network. Anything but a postgres:// URL stops the relay at start.
    #[arg(long, env = "SYNC_SERVER_STORE", value_name = "URL", value_parser = StoreUrlParser)]
    pub store: Option<StoreUrl>,
    /// The cluster's bus, `redis://host:port` (several nodes over one `--store
    /// postgres://…`): changes and presence reach the clients of the other nodes live.
    /// Without it a node's clients get what other nodes accepted at their next sync.
    #[arg(long, env = "SYNC_SERVER_BUS", value_name = "URL")]
    pub bus: Option<String>,
    /// With --bus: seconds a node's presence entries count without being renewed (it
    /// renews them three times as often). A node that dies takes its users offline within
    /// about a third more than this.
    #[arg(long = "presence-ttl", value_name = "SECONDS", env = "SYNC_SERVER_PRESENCE_TTL", default_value_t = 30, value_parser = clap::value_parser!(u64).range(3..=3600))]
    pub presence_ttl_secs: u64,
    /// Largest WebSocket message accepted, in bytes; larger ones close the connection.
    #[arg(long, env = "SYNC_SERVER_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_message_bytes: u32,
    /// Largest image accepted, in bytes.
    #[arg(long, env = "SYNC_SERVER_MAX_BLOB_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_blob_bytes: u32,
    /// Bytes of images one user may store on the relay; an upload that would go over is
    /// refused (`bad_blob`) and nothing of it is stored.
    #[arg(long, env = "SYNC_SERVER_MAX_IMAGE_BYTES_PER_USER", default_value_t = 256 * 1024 * 1024)]
    pub max_image_bytes_per_user: u64,
    /// Messages per second accepted per connection; more are refused with `rate_limited`.
    #[arg(long, env = "SYNC_SERVER_MESSAGES_PER_SECOND", default_value_t = 200)]
    pub messages_per_second: u32,
    /// Frames waiting to be sent per connection; a client that lets it fill is
    /// disconnected (`slow_reader`) rather than buffered without end.
    #[arg(long, env = "SYNC_SERVER_SEND_QUEUE", default_value_t = 1024)]
    pub send_queue: usize,
    /// Connections allowed from one IP address at once.
    #[arg(long, env = "SYNC_SERVER_MAX_CONNECTIONS_PER_IP", default_value_t = 64)]
    pub max_connections_per_ip: usize,
    /// Seconds without any frame from a client before it is disconnected.
    #[arg(long, env = "SYNC_SERVER_IDLE_TIMEOUT", default_value_t = 90)]
    pub idle_timeout_secs: u64,
    /// Seconds between keep-alive pings to each client.
    #[arg(long, env = "SYNC_SERVER_PING_INTERVAL", default_value_t = 30)]
    pub ping_interval_secs: u64,
    /// Seconds a client has, from the moment its socket is accepted, to send its HTTP
    /// head, upgrade to WebSocket and authenticate: one deadline for all three.
    #[arg(long, env = "SYNC_SERVER_HANDSHAKE_TIMEOUT", default_value_t = 10)]
    pub handshake_timeout_secs: u64,
    /// Largest WebSocket frame (or message) accepted before the client has authenticated,
    /// in bytes; larger ones close the connection (`too_large`). `hello` and `auth` are a
    /// few hundred bytes.
    #[arg(long, env = "SYNC_SERVER_MAX_PREAUTH_FRAME_BYTES", default_value_t = 4 * 1024)]
    pub max_preauth_frame_bytes: u32,
    /// Bytes queued for one connection but not yet written to its socket; a client that
    /// lets more pile up is disconnected (`slow_reader`).
    #[arg(long, env = "SYNC_SERVER_MAX_OUTBOUND_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_outbound_bytes: usize,
    /// Automerge sync states kept per connection; past it the least recently used one is
    /// dropped (that document's sync simply starts over).
    #[arg(long, env = "SYNC_SERVER_MAX_SYNC_STATES", default_value_t = 2048)]
    pub max_sync_states: usize,
    /// Documents one connection may subscribe to; more are refused (`too_large`).
    #[arg(long, env = "SYNC_SERVER_MAX_SUBSCRIPTIONS", default_value_t = 10_000)]
    pub max_subscriptions: usize,
    /// Documents in one `Sync` message; a larger one is refused whole (`too_large`).
    #[arg(long, env = "SYNC_SERVER_MAX_SYNC_ITEMS", default_value_t = 256)]
    pub max_sync_items: usize,
    /// Documents kept in memory.
    #[arg(long, env = "SYNC_SERVER_DOCUMENT_CACHE", default_value_t = 10_000)]
    pub document_cache: usize,
    /// Bytes of documents kept in memory, counted as they are stored (in memory they take
    /// several times more); the least recently used are dropped first.
    #[arg(long, env = "SYNC_SERVER_DOCUMENT_CACHE_BYTES", default_value_t = 128 * 1024 * 1024)]
    pub document_cache_bytes: u64,
    /// The addresses clients reach this relay at (`wss://relay.example.org`), repeatable or
    /// comma-separated. A client's login names the relay it dialled, and is refused
    /// elsewhere, so a hostile relay cannot pass a user's login on to this one. Without it,
    /// only the address a client connected to counts (`ws://IP:PORT` of this socket, and
    /// `localhost` on loopback): set it when clients dial a host name, or reach the relay
    /// through a reverse proxy or a port mapping.
    #[arg(
        long = "public-url",
        env = "SYNC_SERVER_PUBLIC_URL",
        value_delimiter = ','
    )]
    pub public_urls: Vec<String>,
    /// The relay's own TLS certificate (PEM, then its chain): the port then speaks only
    /// TLS (`wss://`, and `https://` for `/healthz` and `/metrics`). Read again when the
    /// file changes or on SIGHUP. Needs --tls-key.
    #[arg(
        long,
        env = "SYNC_SERVER_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM). Needs --tls-cert.
    #[arg(
        long,
        env = "SYNC_SERVER_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Log filter (tracing's `EnvFilter` syntax), e.g. `info` or `sync_server=debug`.
    #[arg(long, env = "SYNC_SERVER_LOG", default_value = "info")]
    pub log: String,
}

impl Config {
    /// The defaults, as `sync-server` with no options would run, with data in `data`.
    pub fn with_data(data: PathBuf) -> Self {
        let mut config = Self::parse_from(["sync-server"]);
        config.data = data;
        config
    }
}

/// Reads `--store`. Clap's own message for a refused value repeats the value as given,
/// password included; this one shows it without.
#[derive(Debug, Clone, Copy)]
struct StoreUrlParser;

impl clap::builder::TypedValueParser for StoreUrlParser {
    type Value = StoreUrl;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<StoreUrl, clap::Error> {
        let value = value
            .to_str()
            .ok_or_else(|| clap::Error::raw(ErrorKind::InvalidUtf8, "--store is not UTF-8\n"))?;
        value
            .parse()
            .map_err(|e: StoreError| clap::Error::raw(ErrorKind::ValueValidation, format!("{e}\n")))
    }
}
