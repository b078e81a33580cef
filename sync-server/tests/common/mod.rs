//! Test harness: the real `sync-server` binary on a free loopback port (over TLS when
//! given `--tls-cert`, see [`tls`]), real profiles in temporary folders, and a
//! hand-driven WebSocket client for hostile tests.

#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_bytes::ByteBuf;
use social_sync_core::{Env, Identity, Replica, SyncEngine};
use social_sync_protocol::signing::{auth_payload, relay_origin};
use social_sync_protocol::wire;
use social_sync_protocol::{ClientMessage, PROTOCOL_VERSION, ServerMessage, UserId};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub mod disk;
pub mod pg;
pub mod redis;
pub mod tls;
pub mod watch;

/// Where a relay's log goes: the test's own stderr, or with `RELAY_TEST_LOG_DIR` set, a
/// file of its own there (`relay-N.log`, numbered as started; a restart writes a new one).
fn stderr_for_relay() -> Stdio {
    static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let Ok(dir) = std::env::var("RELAY_TEST_LOG_DIR") else {
        return Stdio::inherit();
    };
    let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = Path::new(&dir).join(format!("relay-{}-{n}.log", std::process::id()));
    std::fs::File::create(&path).map_or_else(|_| Stdio::inherit(), Stdio::from)
}

/// A running relay process; killed when dropped.
pub struct Relay {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub data: PathBuf,
    /// The options it was started with (kept by [`Relay::start_again`]).
    extra: Vec<String>,
    _dir: Option<TempDir>,
}

impl Relay {
    /// Starts a relay with a fresh data folder on a free port.
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("relay");
        let mut relay = Self::spawn(&data, "127.0.0.1:0", extra);
        relay._dir = Some(dir);
        relay
    }

    /// Starts a relay on `listen` with the data folder `data`.
    pub fn spawn(data: &Path, listen: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sync-server"))
            .args(["--listen", listen, "--data"])
            .arg(data)
            // `RELAY_TEST_LOG=sync_server=debug cargo test …` to see a relay's side.
            .args([
                "--log",
                &std::env::var("RELAY_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(stderr_for_relay())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("relay said: {line}"))
            .parse()
            .unwrap();
        Self {
            child: Some(child),
            addr,
            data: data.to_owned(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            _dir: None,
        }
    }

    /// `wss://` when started with `--tls-cert`, else `ws://`.
    pub fn url(&self) -> String {
        let scheme = if self.extra.iter().any(|a| a == "--tls-cert") {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops with SIGKILL (no chance to clean up).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops with SIGTERM and waits.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().unwrap()
    }

    /// Starts again on the same port and data (after a stop).
    pub fn start_again(&mut self) {
        self.kill9();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let mut again = Self::spawn(&self.data, &self.addr.to_string(), &extra);
        self.child = again.child.take();
        self.addr = again.addr;
    }

    /// `GET /metrics`, as text.
    pub async fn metrics(&self) -> String {
        http_get(self.addr, "/metrics").await
    }

    /// One metric's value.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// A profile in a temporary folder.
pub struct Profile {
    pub dir: TempDir,
    pub engine: SyncEngine,
    pub replica: Arc<Mutex<Replica>>,
    pub uid: UserId,
}

impl Profile {
    pub fn new(name: &str, seed: u64, relay: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let replica = Replica::create(
            dir.path(),
            name,
            Some(relay),
            Env::deterministic(seed, 1_700_000_000_000),
        )
        .unwrap();
        let uid = replica.user_id();
        let replica = Arc::new(Mutex::new(replica));
        let engine = SyncEngine::new(replica.clone(), relay);
        Self {
            dir,
            engine,
            replica,
            uid,
        }
    }

    /// Opens the profile folder again (as a new start of the app would), syncing with
    /// `relay`.
    pub fn reopen(&mut self, relay: &str) {
        let replica =
            Replica::open(self.dir.path(), Env::deterministic(99, 1_700_000_000_000)).unwrap();
        self.replica = Arc::new(Mutex::new(replica));
        self.engine = SyncEngine::new(self.replica.clone(), relay);
    }

    /// The same profile folder, pointed at another relay address.
    pub fn repoint(&mut self, relay: &str) {
        self.engine = SyncEngine::new(self.replica.clone(), relay);
    }

    pub fn r(&self) -> std::sync::MutexGuard<'_, Replica> {
        self.replica.lock().unwrap()
    }

    pub async fn sync(&self) -> social_sync_core::SyncSummary {
        tokio::time::timeout(Duration::from_secs(30), self.engine.sync_once())
            .await
            .expect("sync took over 30 s")
            .unwrap()
    }
}

pub type RawWs = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A hand-driven client.
pub struct Raw {
    pub ws: RawWs,
    /// The key this connection logged in with: [`sync_doc`] signs with it.
    pub identity: Option<Identity>,
}

impl Raw {
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Self { ws, identity: None }
    }

    /// Connects and authenticates as the profile's user.
    pub async fn login(url: &str, profile: &Profile, device: &str) -> Self {
        let (identity, user) = {
            let r = profile.r();
            (r.identity().clone(), r.user_id())
        };
        Self::login_as(url, &identity, user, device).await
    }

    /// Connects and authenticates as `user` with `identity`; panics unless the frame after
    /// Auth is Welcome.
    pub async fn login_as(url: &str, identity: &Identity, user: UserId, device: &str) -> Self {
        Self::login_instance(url, identity, user, device, None).await
    }

    /// Connects and authenticates as `user` on `device` as the running client `instance`.
    pub async fn login_instance(
        url: &str,
        identity: &Identity,
        user: UserId,
        device: &str,
        instance: Option<u64>,
    ) -> Self {
        // A relay still closing earlier connections of this address may answer 429 for a
        // moment (on a busy machine); a login here is meant to succeed, so it waits.
        let mut tries = 0;
        let mut raw = loop {
            match tokio_tungstenite::connect_async(url).await {
                Ok((ws, _)) => break Self { ws, identity: None },
                Err(tokio_tungstenite::tungstenite::Error::Http(r))
                    if r.status() == 429 && tries < 100 =>
                {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot connect to {url}: {e}"),
            }
        };
        raw.send(&ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            user,
            device: device.into(),
            agent: "test".into(),
            instance,
        })
        .await;
        let ServerMessage::Challenge { nonce, .. } = raw.recv().await.unwrap() else {
            panic!("no challenge")
        };
        let origin = relay_origin(url).unwrap();
        let sig = identity.sign(&auth_payload(&nonce, &user, device, &origin));
        raw.send(&ClientMessage::Auth {
            signature: ByteBuf::from(sig.to_vec()),
            relay: origin,
        })
        .await;
        raw.identity = Some(identity.clone());
        match raw.recv().await {
            Some(ServerMessage::Welcome { .. }) => {}
            other => panic!("expected Welcome after Auth, got {other:?}"),
        }
        raw
    }

    pub async fn send(&mut self, m: &ClientMessage) {
        self.ws
            .send(Message::Binary(Bytes::from(wire::encode(m))))
            .await
            .unwrap();
    }

    pub async fn send_bytes(
        &mut self,
        b: Vec<u8>,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.ws.send(Message::Binary(Bytes::from(b))).await
    }

    /// The next protocol message, or None when the connection ends (10 s at most).
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .ok()??;
            match frame.ok()? {
                Message::Binary(b) => return Some(wire::decode(&b).unwrap()),
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// Reads until the relay's fatal error; asserts its code and returns its message.
    pub async fn expect_fatal(&mut self, code: social_sync_protocol::ErrorCode) -> String {
        match self
            .until(|m| matches!(m, ServerMessage::Error { .. }))
            .await
        {
            Some(ServerMessage::Error { code: got, message }) if got == code => message,
            other => panic!("expected a fatal {code:?} error, got {other:?}"),
        }
    }

    /// Reads until a message matching `pred` (or the end).
    pub async fn until(&mut self, pred: impl Fn(&ServerMessage) -> bool) -> Option<ServerMessage> {
        while let Some(m) = self.recv().await {
            if pred(&m) {
                return Some(m);
            }
        }
        None
    }
}

/// A fresh identity (deterministic from `seed`) and its user id.
pub fn identity(seed: u64) -> (Identity, UserId) {
    let mut env = Env::deterministic(seed, 1_700_000_000_000);
    let identity = Identity::generate(&mut env);
    let user = identity.user_id();
    (identity, user)
}

/// Syncs `am` as `doc` over `raw` until the relay has nothing more to say (a few rounds,
/// each closed by a ping); returns the refusals the relay answered with. Every change sent
/// is signed with the key `raw` logged in with (a change by another actor then carries a
/// signature that is not its author's).
pub async fn sync_doc(
    raw: &mut Raw,
    doc: &social_sync_protocol::DocId,
    am: &mut automerge::AutoCommit,
) -> Vec<(social_sync_protocol::ErrorCode, String)> {
    use automerge::sync::{Message as SyncMessage, State, SyncDoc};
    let mut state = State::new();
    let mut refusals = Vec::new();
    for round in 0..6u64 {
        if let Some(m) = am.sync().generate_sync_message(&mut state) {
            let signatures = sign_chunks(raw.identity.as_ref(), doc, m.changes.iter());
            raw.send(&ClientMessage::Sync {
                items: vec![social_sync_protocol::SyncItem {
                    doc: doc.clone(),
                    message: ByteBuf::from(m.encode()),
                    signatures,
                }],
            })
            .await;
        }
        raw.send(&ClientMessage::Ping { id: round }).await;
        loop {
            match raw.recv().await.expect("connection ended") {
                ServerMessage::Pong { id } if id == round => break,
                ServerMessage::Sync { items } => {
                    for item in items {
                        let m = SyncMessage::decode(&item.message).unwrap();
                        am.sync().receive_sync_message(&mut state, m).unwrap();
                    }
                }
                ServerMessage::Rejected { code, message, .. } => refusals.push((code, message)),
                _ => {}
            }
        }
    }
    refusals
}

/// One signature per encoded change, by `identity` (empty ones without an identity, or for
/// bytes that are not a change).
pub fn sign_chunks<'a>(
    identity: Option<&Identity>,
    doc: &social_sync_protocol::DocId,
    chunks: impl Iterator<Item = &'a [u8]>,
) -> Vec<ByteBuf> {
    chunks
        .map(
            |bytes| match (identity, automerge::Change::try_from(bytes)) {
                (Some(id), Ok(change)) => ByteBuf::from(id.sign_change(doc, &change).to_vec()),
                _ => ByteBuf::new(),
            },
        )
        .collect()
}

/// Sends `message` and returns the first answer that is not a presence change or a
/// live push (those may arrive at any time).
pub async fn ask(raw: &mut Raw, message: &ClientMessage) -> ServerMessage {
    raw.send(message).await;
    raw.until(|m| {
        !matches!(
            m,
            ServerMessage::PresenceChanged { .. }
                | ServerMessage::Changes { .. }
                | ServerMessage::Sync { .. }
                | ServerMessage::InboxSent { .. }
        )
    })
    .await
    .expect("connection ended")
}

/// The relay process's memory, from `/proc/PID/status`, in KiB.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the most ever resident.
    pub hwm_kib: u64,
}

impl Relay {
    /// The relay's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The relay's resident memory now and at its peak.
    pub fn memory(&self) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc status"))
        };
        Memory {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
        }
    }

    /// CPU time the relay has used (user + system), in clock ticks (1/100 s on Linux).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the command name (which ends with ')'): utime is the 12th, stime the 13th.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// One metric's value, asked from another loopback address (`127.0.0.2`), so a test
    /// that fills the per-address limit of 127.0.0.1 can still read it.
    pub async fn metric_aside(&self, name: &str) -> f64 {
        let text = http_get_from("127.0.0.2".parse().unwrap(), self.addr, "/metrics").await;
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }

    /// `GET /healthz` from 127.0.0.2; asserts it answers `ok` within `max`, returns the time.
    pub async fn healthy_within(&self, max: Duration) -> Duration {
        let start = std::time::Instant::now();
        let answer = tokio::time::timeout(
            max,
            http_get_from("127.0.0.2".parse().unwrap(), self.addr, "/healthz"),
        )
        .await
        .unwrap_or_else(|_| panic!("/healthz took over {max:?}"));
        assert!(answer.ends_with("ok\n"), "/healthz said {answer}");
        start.elapsed()
    }
}

/// A TCP connection to `addr` from the loopback address `source`.
pub async fn connect_from(source: std::net::IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

/// `GET path` from the loopback address `source`, as text.
pub async fn http_get_from(source: std::net::IpAddr, addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = connect_from(source, addr).await;
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}
