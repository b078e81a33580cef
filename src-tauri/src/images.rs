//! `ssimg://localhost/<sha-256>`: images from the local cache, served to the webview
//! without copying them through the IPC channel.

use tauri::http::{Request, Response, StatusCode};
use tauri::{Manager, Runtime, UriSchemeContext};

use social_sync_core::store::blobs;

use crate::AppState;

/// Answers one image request.
pub fn serve<R: Runtime>(
    ctx: UriSchemeContext<'_, R>,
    request: Request<Vec<u8>>,
) -> Response<Vec<u8>> {
    let hash = request.uri().path().trim_start_matches('/');
    let state = ctx.app_handle().state::<AppState>();
    let blob = hash
        .parse()
        .ok()
        .and_then(|hash| state.with_replica(|r| Ok(r.blob(&hash)?)).ok().flatten());
    let builder = Response::builder()
        .header("Access-Control-Allow-Origin", "*")
        // The webview must not guess a type from the bytes: only the image types below.
        .header("X-Content-Type-Options", "nosniff");
    // Served only as an image type read from the bytes, never as the type stored with it
    // (an old cache may hold `text/html` from a relay that trusted the sender).
    let image = blob.and_then(|blob| Some((blobs::image_type(&blob.bytes)?, blob.bytes)));
    match image {
        Some((mime, bytes)) => builder
            .header("Content-Type", mime)
            .header("Cache-Control", "max-age=31536000, immutable")
            .body(bytes),
        None => builder.status(StatusCode::NOT_FOUND).body(Vec::new()),
    }
    .unwrap_or_else(|_| Response::new(Vec::new()))
}
