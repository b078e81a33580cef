//! Shared by the CLI's whole-process tests: the real `social-sync-cli` binary run on a
//! temporary profile, its output, moving an export between profiles, and a real relay in
//! the test process ([`relay`]), over TLS with certificates from [`tls`].

#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use social_sync_protocol::{ClientMessage, Limits, PROTOCOL_VERSION, ServerMessage, wire};
use tokio_tungstenite::tungstenite::{Bytes, Message};

pub mod relay;
#[path = "../../../../sync-server/tests/common/tls.rs"]
pub mod tls;

pub struct Run {
    /// What the process did.
    pub out: Output,
}

impl Run {
    pub fn ok(self) -> Self {
        assert!(
            self.out.status.success(),
            "command failed: {}\nstdout: {}",
            self.stderr(),
            String::from_utf8_lossy(&self.out.stdout)
        );
        self
    }

    pub fn json(self) -> Value {
        let out = self.ok().out;
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    /// Asserts a clean failure: non-zero exit, nothing on stdout, one line on stderr that
    /// contains `expect`.
    pub fn fails_with(self, expect: &str) {
        assert!(!self.out.status.success(), "expected a failure");
        assert!(
            self.out.stdout.is_empty(),
            "stdout: {}",
            String::from_utf8_lossy(&self.out.stdout)
        );
        let err = self.stderr();
        assert!(err.contains(expect), "stderr: {err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "one sentence, got: {err}"
        );
    }
}

/// Runs the CLI on `profile` with `stdin` as standard input.
pub fn cli_in(profile: &Path, args: &[&str], stdin: &str) -> Run {
    cli_with(profile, args, stdin, &[])
}

/// Runs the CLI on `profile` with `stdin` as standard input and `env` set.
pub fn cli_with(profile: &Path, args: &[&str], stdin: &str, env: &[(&str, &Path)]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_social-sync-cli"))
        .arg("--profile")
        .arg(profile)
        .args(args)
        .env_remove("SOCIAL_SYNC_PROFILE")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // The command may exit before reading (a refused argument): a closed pipe is fine.
    drop(input.write_all(stdin.as_bytes()));
    drop(input);
    Run {
        out: child.wait_with_output().unwrap(),
    }
}

pub fn cli(profile: &Path, args: &[&str]) -> Run {
    cli_in(profile, args, "")
}

pub fn init(root: &Path, name: &str) -> (PathBuf, String) {
    let dir = root.join(name);
    let v = cli(&dir, &["init", "--name", name, "--json"]).json();
    (dir, v["uid"].as_str().unwrap().to_owned())
}

/// Moves everything `from` holds to `to` through an export folder, as a USB stick would.
pub fn carry(root: &Path, from: &Path, to: &Path, label: &str) -> Value {
    let stick = root.join(label);
    cli(from, &["export", stick.to_str().unwrap(), "--json"]).ok();
    cli(to, &["import", stick.to_str().unwrap(), "--json"]).json()
}

/// Runs the CLI and returns its JSON output, asserting success.
pub fn json(profile: &Path, args: &[&str]) -> Value {
    cli(profile, args).json()
}

/// A running `watch --json`, its stdout lines as JSON values, killed when dropped.
pub struct Watch {
    child: Child,
    lines: mpsc::Receiver<Value>,
    /// Every line printed so far.
    pub seen: Vec<Value>,
}

impl Watch {
    /// `watch --json` on `profile`.
    pub fn start(profile: &Path) -> Self {
        Self::start_with(profile, &[])
    }

    /// `watch --json EXTRA...` on `profile`.
    pub fn start_with(profile: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_social-sync-cli"))
            .arg("--profile")
            .arg(profile)
            .args(["watch", "--json"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel::<Value>();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("watch printed non-JSON ({e}): {line}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line matching `pred` within `within`.
    pub fn wait_for(
        &mut self,
        what: &str,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => {
                    let running = self.running();
                    panic!(
                        "watch printed no {what} within {within:?}; it printed {:?}; still running: {running}",
                        self.seen
                    )
                }
            }
        }
    }

    pub fn online(&mut self, within: Duration) {
        self.wait_for("connection online", within, |v| {
            v["event"] == "connection" && v["status"] == "online"
        });
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Takes the lines printed meanwhile (without waiting).
    pub fn drain(&mut self) {
        while let Ok(v) = self.lines.try_recv() {
            self.seen.push(v);
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A relay that authenticates anyone, sends `frames` after the first client message that
/// follows the handshake, and answers pings. Serves one connection, then returns.
pub async fn hostile_relay(listener: tokio::net::TcpListener, frames: Vec<ServerMessage>) {
    let (stream, _) = listener.accept().await.unwrap();
    let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
    let send = |m: &ServerMessage| Message::Binary(Bytes::from(wire::encode(m)));
    let mut user = None;
    let mut frames = Some(frames);
    while let Some(Ok(frame)) = ws.next().await {
        let Message::Binary(bytes) = frame else {
            continue;
        };
        let Ok(message) = wire::decode::<ClientMessage>(&bytes) else {
            continue;
        };
        let replies = match message {
            ClientMessage::Hello { user: u, .. } => {
                user = Some(u);
                vec![ServerMessage::Challenge {
                    version: PROTOCOL_VERSION,
                    nonce: serde_bytes::ByteBuf::from(vec![0; 32]),
                }]
            }
            ClientMessage::Auth { .. } => vec![
                ServerMessage::Welcome {
                    user: user.unwrap(),
                    limits: Limits {
                        max_message_bytes: 16 << 20,
                        max_blob_bytes: 10 << 20,
                        messages_per_second: 200,
                    },
                },
                ServerMessage::InboxSent { seq: 0, docs: 0 },
            ],
            ClientMessage::Ping { id } => {
                let mut out = frames.take().unwrap_or_default();
                out.push(ServerMessage::Pong { id });
                out
            }
            _ => frames.take().unwrap_or_default(),
        };
        for reply in &replies {
            if ws.send(send(reply)).await.is_err() {
                return;
            }
        }
    }
}

/// Runs [`hostile_relay`] on a loopback port in a thread of its own (for 60 s at most);
/// returns its `ws://` address.
pub fn spawn_hostile_relay(frames: Vec<ServerMessage>) -> String {
    let (addr_tx, addr_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let _ = tokio::time::timeout(Duration::from_secs(60), hostile_relay(listener, frames))
                .await;
        });
    });
    format!("ws://{}", addr_rx.recv().unwrap())
}
