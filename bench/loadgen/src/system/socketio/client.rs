//! A minimal Socket.IO client over `tokio-tungstenite`: the handshake, then one task per
//! connection that answers pings, parses every event into the seed's types and hands it to
//! the workload with the instant it was parsed, and matches acknowledgements to emits.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

use super::wire::{self, AckBody, Event, Packet};

/// A WebSocket to a Socket.IO server.
pub(crate) type Ws = WebSocketStream<TcpStream>;

/// How long the handshake, an ack or a goodbye may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// An event a client parsed: which client (its index in the workload), when, what.
#[derive(Debug)]
pub(crate) struct Delivery {
    /// The client's index.
    pub(crate) client: u32,
    /// When the event was parsed.
    pub(crate) at: Instant,
    /// The event.
    pub(crate) event: Event,
}

/// Where a client hands its parsed events.
pub(crate) type Sink = mpsc::UnboundedSender<Delivery>;

/// Small buffers: this process holds up to 20,000 connections.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
}

/// Opens a WebSocket to `addr`, reads the Engine.IO open packet, sends CONNECT with
/// `{"userId": user_id}` and waits until the server accepts it.
pub(crate) async fn handshake(addr: SocketAddr, user_id: &str) -> anyhow::Result<Ws> {
    tokio::time::timeout(PATIENCE, async {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("TCP connect to {addr}"))?;
        tcp.set_nodelay(true)?;
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (mut ws, _) = client_async_with_config(url, tcp, Some(config()))
            .await
            .context("WebSocket upgrade")?;
        let text = next_text(&mut ws).await?;
        let Packet::Open(json) = wire::decode(&text) else {
            bail!("expected the Engine.IO open packet, got {text:?}");
        };
        let open: wire::Open = serde_json::from_str(json).context("open packet")?;
        tracing::trace!(sid = open.sid, ping_interval = open.ping_interval, "open");
        ws.send(Message::text(wire::connect(user_id)?)).await?;
        loop {
            let text = next_text(&mut ws).await?;
            match wire::decode(&text) {
                Packet::Connect(_) => return Ok(ws),
                Packet::ConnectError(json) => bail!("CONNECT refused: {json}"),
                Packet::Ping => ws.send(Message::text(wire::PONG)).await?,
                _ => {}
            }
        }
    })
    .await
    .with_context(|| format!("no Socket.IO handshake with {addr} within {PATIENCE:?}"))?
}

/// The next text message (pings and pongs of the WebSocket itself are skipped).
async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        match ws.next().await.context("connection closed")?? {
            Message::Text(text) => return Ok(text.as_str().to_owned()),
            Message::Close(frame) => bail!("connection closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Says goodbye the way `socket.disconnect()` does (DISCONNECT, then close the WebSocket)
/// and waits for the server to close its side.
pub(crate) async fn goodbye(mut ws: Ws) -> anyhow::Result<()> {
    ws.send(Message::text(wire::DISCONNECT)).await?;
    ws.close(None).await?;
    tokio::time::timeout(PATIENCE, async {
        while let Some(msg) = ws.next().await {
            if msg.is_err() {
                break;
            }
        }
    })
    .await
    .context("the server did not close the connection")
}

enum Command {
    Emit {
        text: String,
        ack: Option<(u64, oneshot::Sender<String>)>,
    },
}

/// A connected client: its connection runs in its own task until this is dropped (then it
/// says goodbye) or the server closes it.
pub(crate) struct Client {
    commands: mpsc::UnboundedSender<Command>,
    next_ack: AtomicU64,
    task: JoinHandle<()>,
}

impl Client {
    /// Connects as `user_id`; events go to `sink` tagged with `index` (nowhere without one).
    pub(crate) async fn connect(
        addr: SocketAddr,
        user_id: &str,
        index: u32,
        sink: Option<Sink>,
    ) -> anyhow::Result<Self> {
        let ws = handshake(addr, user_id).await?;
        let (commands, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            if let Err(err) = drive(ws, rx, index, sink).await {
                tracing::warn!(client = index, "socket.io connection ended: {err:#}");
            }
        });
        Ok(Self {
            commands,
            next_ack: AtomicU64::new(0),
            task,
        })
    }

    /// Sends event `name` asking for an acknowledgement; the returned [`Ack`] waits for it.
    pub(crate) fn emit<T: Serialize>(&self, name: &str, payload: &T) -> anyhow::Result<Ack> {
        let id = self.next_ack.fetch_add(1, Ordering::Relaxed);
        let text = wire::event(name, payload, Some(id))?;
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Emit {
                text,
                ack: Some((id, tx)),
            })
            .ok()
            .context("the connection is closed")?;
        Ok(Ack(rx))
    }

    /// Sends event `name` and waits until the server acknowledges it.
    pub(crate) async fn request<T: Serialize>(
        &self,
        name: &str,
        payload: &T,
    ) -> anyhow::Result<()> {
        self.emit(name, payload)?
            .wait()
            .await
            .with_context(|| name.to_owned())
    }

    /// Says goodbye and waits until the connection is closed.
    pub(crate) async fn close(self) {
        drop(self.commands);
        let _ = self.task.await;
    }

    /// Whether the connection is still open.
    pub(crate) fn is_open(&self) -> bool {
        !self.task.is_finished()
    }
}

/// An acknowledgement to come.
pub(crate) struct Ack(oneshot::Receiver<String>);

impl Ack {
    /// Waits for it; an error when it does not come or says the server refused.
    pub(crate) async fn wait(self) -> anyhow::Result<()> {
        let data = tokio::time::timeout(PATIENCE, self.0)
            .await
            .context("no acknowledgement")?
            .context("the connection closed before the acknowledgement")?;
        let args: Vec<AckBody> = serde_json::from_str(&data).context("acknowledgement")?;
        let body = args.first().context("empty acknowledgement")?;
        ensure!(
            body.ok,
            "refused: {}",
            body.error.as_deref().unwrap_or("no reason")
        );
        Ok(())
    }
}

async fn drive(
    mut ws: Ws,
    mut commands: mpsc::UnboundedReceiver<Command>,
    index: u32,
    sink: Option<Sink>,
) -> anyhow::Result<()> {
    let mut pending: Vec<(u64, oneshot::Sender<String>)> = Vec::new();
    loop {
        tokio::select! {
            msg = ws.next() => {
                let Some(msg) = msg else { return Ok(()) };
                let text = match msg? {
                    Message::Text(text) => text,
                    Message::Close(_) => return Ok(()),
                    _ => continue,
                };
                match wire::decode(text.as_str()) {
                    Packet::Ping => ws.send(Message::text(wire::PONG)).await?,
                    Packet::Event { ack, data } => {
                        let event: Event = serde_json::from_str(data)
                            .with_context(|| format!("event {data}"))?;
                        let at = Instant::now();
                        if let Some(sink) = &sink {
                            let _ = sink.send(Delivery { client: index, at, event });
                        }
                        if let Some(id) = ack {
                            ws.send(Message::text(wire::ack_reply(id))).await?;
                        }
                    }
                    Packet::Ack { id, data } => {
                        if let Some(at) = pending.iter().position(|(i, _)| *i == id) {
                            let (_, tx) = pending.swap_remove(at);
                            let _ = tx.send(data.to_owned());
                        }
                    }
                    Packet::Close | Packet::Disconnect => return Ok(()),
                    _ => {}
                }
            }
            command = commands.recv() => match command {
                Some(Command::Emit { text, ack }) => {
                    pending.extend(ack);
                    ws.send(Message::text(text)).await?;
                }
                None => return goodbye(ws).await,
            },
        }
    }
}
