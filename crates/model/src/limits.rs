//! Limits on what a user can write: the app refuses longer input with a clear error, and
//! every receiver refuses changes that break them ([`crate::rules`]).

/// Display name length, in characters.
pub const NAME: (usize, usize) = (1, 64);
/// Bio length.
pub const BIO: (usize, usize) = (0, 500);
/// Post text length (a post with images may have no text).
pub const POST_TEXT: (usize, usize) = (0, 5_000);
/// Comment length.
pub const COMMENT: (usize, usize) = (1, 2_000);
/// Images per post.
pub const IMAGES_PER_POST: usize = 8;
/// Bytes per image.
pub const IMAGE_BYTES: u64 = 10 * 1024 * 1024;
