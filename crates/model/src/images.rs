//! What counts as an image: read from the bytes, never from what a sender claims.

/// The image types Social Sync stores, sends and shows.
pub const IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// The type of an image read from its bytes, if it is one of [`IMAGE_TYPES`]. Whatever
/// type a sender claims is never trusted: a `text/html` page is not an image.
pub fn image_type(bytes: &[u8]) -> Option<&'static str> {
    infer::get(bytes)
        .map(|t| t.mime_type())
        .filter(|m| IMAGE_TYPES.contains(m))
}
