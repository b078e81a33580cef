//! The plain-HTTP side of the one port: a request is peeked (not consumed) to tell a
//! WebSocket upgrade from `GET /healthz` and `GET /metrics`, which are answered here.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

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
    /// Not an HTTP request, or headers too large.
    BadRequest,
}

const MAX_HEAD: usize = 8 * 1024;

/// Peeks at the request head until it is complete, and routes it.
pub async fn route(stream: &TcpStream, timeout: Duration) -> Route {
    let peek = async {
        let mut buf = vec![0u8; MAX_HEAD];
        loop {
            let n = match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return Route::BadRequest,
                Ok(n) => n,
            };
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf[..n]) {
                Ok(httparse::Status::Complete(_)) => return classify(&req),
                Ok(httparse::Status::Partial) if n < MAX_HEAD => {
                    // Wait for more bytes to arrive, then peek again.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                _ => return Route::BadRequest,
            }
        }
    };
    tokio::time::timeout(timeout, peek)
        .await
        .unwrap_or(Route::BadRequest)
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

/// Writes a complete HTTP/1.1 response and closes the connection.
pub async fn respond(mut stream: TcpStream, status: &str, content_type: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}
