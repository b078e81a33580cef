//! The HTTP side of the one port (over TLS when the relay has its own certificate): the request head is read (within the connection's
//! deadline, one read per arrival of bytes) to tell a WebSocket upgrade from
//! `GET /healthz` and `GET /metrics`, which are answered here. An upgrade gets the bytes
//! read back through [`Rewind`](crate::rewind::Rewind).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A WebSocket upgrade: the client protocol.
    WebSocket,
    /// `GET /healthz`.
    Health,
    /// `GET /metrics`.
    Metrics,
    /// Anything else.
    NotFound,
    /// A TLS handshake sent to a relay that does not speak TLS (a `wss://` or `https://`
    /// address for a plain port).
    Tls,
    /// Not an HTTP request, headers too large, or not complete by the deadline.
    BadRequest,
}

/// A request head, read.
#[derive(Debug)]
pub struct Head {
    /// Where it goes.
    pub route: Route,
    /// Every byte read so far: the head, and whatever followed it in the same reads.
    pub bytes: Vec<u8>,
    /// Length of the head in `bytes` (0 unless complete).
    pub len: usize,
}

const MAX_HEAD: usize = 8 * 1024;

/// The first byte of a TLS connection (a handshake record); never the start of HTTP.
pub const TLS_HANDSHAKE: u8 = 0x16;

/// Reads the request head until it is complete (or `deadline` passes, or it grows past
/// 8 KiB), and routes it. Waits for bytes to arrive; never polls.
pub async fn read_head<S: AsyncRead + Unpin>(stream: &mut S, deadline: Instant) -> Head {
    let mut bytes = Vec::new();
    let read = async {
        let mut chunk = [0u8; 1024];
        loop {
            let room = (MAX_HEAD - bytes.len()).min(chunk.len());
            let n = match stream.read(&mut chunk[..room]).await {
                Ok(0) | Err(_) => return (Route::BadRequest, 0),
                Ok(n) => n,
            };
            bytes.extend_from_slice(&chunk[..n]);
            if bytes.first() == Some(&TLS_HANDSHAKE) {
                return (Route::Tls, 0);
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&bytes) {
                Ok(httparse::Status::Complete(len)) => return (classify(&req), len),
                Ok(httparse::Status::Partial) if bytes.len() < MAX_HEAD => {}
                _ => return (Route::BadRequest, 0),
            }
        }
    };
    let (route, len) = tokio::time::timeout_at(deadline, read)
        .await
        .unwrap_or((Route::BadRequest, 0));
    Head { route, bytes, len }
}

fn classify(req: &httparse::Request<'_, '_>) -> Route {
    let upgrade = req.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("upgrade")
            && String::from_utf8_lossy(h.value).eq_ignore_ascii_case("websocket")
    });
    match (req.method, req.path) {
        (Some("GET"), _) if upgrade => Route::WebSocket,
        (Some("GET"), Some("/healthz")) => Route::Health,
        (Some("GET"), Some("/metrics")) => Route::Metrics,
        _ => Route::NotFound,
    }
}

/// Writes a complete HTTP/1.1 response (head and body in one write) and closes the
/// connection.
pub async fn respond<S: AsyncWrite + Unpin>(
    mut stream: S,
    status: &str,
    content_type: &str,
    body: &str,
) {
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Answers a connection refused at accept (too many from its address) without holding it:
/// the response is written at once, then what the client sends is read and dropped for at
/// most a second (so closing does not reset the connection before it reads the answer).
pub async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(stream: S, status: &str, body: &str) {
    refuse_with(stream, status, "", body).await;
}

/// [`refuse`] with `headers` (each ending in CRLF) besides `content-type: text/plain`.
pub async fn refuse_with<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    status: &str,
    headers: &str,
    body: &str,
) {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let linger = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        let mut left = MAX_HEAD;
        while left > 0 {
            let n = stream.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), linger).await;
}
