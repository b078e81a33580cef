//! Read-side queries over the index: feed pages, a post's thread, a profile, search.
//! Every query takes the viewer, so "liked by me" and "followed by me" are answered for
//! whoever asks.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use social_sync_protocol::{BlobHash, CommentId, IdError, PostId, UserId};

use super::blocks::not_blocked;
use crate::{Error, Result};

/// One post as the feed shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedItem {
    /// The post.
    pub post_id: PostId,
    /// Its author.
    pub author: UserId,
    /// The author's display name, if their profile has arrived.
    pub author_name: Option<String>,
    /// The author's avatar image, if they set one.
    pub author_avatar: Option<BlobHash>,
    /// The text.
    pub text: String,
    /// Attached images.
    pub media: Vec<BlobHash>,
    /// When it was posted, ms since the Unix epoch.
    pub created_at: i64,
    /// How many people like it.
    pub likes: u64,
    /// Whether the viewer likes it.
    pub liked_by_me: bool,
    /// How many comments it has.
    pub comments: u64,
}

/// Where a feed page ends; pass it back to get the next page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedCursor {
    /// `created_at` of the last post shown.
    pub created_at: i64,
    /// Its id, to order posts made in the same millisecond.
    pub post_id: PostId,
}

/// A page of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedPage {
    /// Posts, newest first.
    pub posts: Vec<FeedItem>,
    /// Cursor for the next page; `None` on the last page.
    pub next: Option<FeedCursor>,
}

/// A comment as a thread shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommentView {
    /// The comment.
    pub comment_id: CommentId,
    /// Its author.
    pub author: UserId,
    /// The author's display name, if known.
    pub author_name: Option<String>,
    /// The author's avatar image, if they set one.
    pub author_avatar: Option<BlobHash>,
    /// The text.
    pub text: String,
    /// When it was written, ms since the Unix epoch.
    pub created_at: i64,
}

/// A post with its comments, oldest comment first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreadView {
    /// The post.
    pub post: FeedItem,
    /// Its comments.
    pub comments: Vec<CommentView>,
    /// Whether the viewer muted its notifications.
    pub muted: bool,
}

/// A user's profile page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileView {
    /// The user.
    pub uid: UserId,
    /// Display name, if their profile has arrived.
    pub name: Option<String>,
    /// Bio.
    pub bio: String,
    /// Avatar image.
    pub avatar: Option<BlobHash>,
    /// How many of their posts this profile holds.
    pub posts: u64,
    /// How many users follow them (of those this profile knows).
    pub followers: u64,
    /// How many users they follow.
    pub following: u64,
    /// Whether the viewer follows them.
    pub followed_by_me: bool,
    /// Whether they follow the viewer.
    pub follows_me: bool,
    /// Whether the viewer blocked them (their posts are then left out).
    pub blocked_by_me: bool,
}

/// The columns of a [`FeedItem`] of `posts p` joined with `profiles pr`; `?1` is the viewer.
macro_rules! item_columns {
    () => {
        concat!(
            "SELECT p.post_id, p.author, pr.name, p.text, p.media, p.created_at,
            (SELECT COUNT(*) FROM likes l WHERE l.post_id = p.post_id AND ",
            not_blocked!("l.uid"),
            "),
            EXISTS (SELECT 1 FROM likes l WHERE l.post_id = p.post_id AND l.uid = ?1),
            (SELECT COUNT(*) FROM comments c WHERE c.post_id = p.post_id AND ",
            not_blocked!("c.author"),
            "), pr.avatar"
        )
    };
}

const ITEM_COLUMNS: &str = item_columns!();

/// [`ITEM_COLUMNS`] over all posts.
const ITEM: &str = concat!(
    item_columns!(),
    " FROM posts p LEFT JOIN profiles pr ON pr.uid = p.author"
);

/// Largest page a query returns.
pub const MAX_PAGE: usize = 500;

/// The local user's feed: their own posts and those of users they follow, newest first,
/// `limit` at a time, starting after `after`. `me` must be the profile's owner, whose
/// timeline the index keeps.
pub fn feed(
    conn: &Connection,
    me: UserId,
    after: Option<&FeedCursor>,
    limit: usize,
) -> Result<FeedPage> {
    let limit = limit.clamp(1, MAX_PAGE);
    let from = concat!(
        "FROM timeline t JOIN posts p ON p.post_id = t.post_id
                LEFT JOIN profiles pr ON pr.uid = p.author WHERE ",
        not_blocked!("p.author")
    );
    let order = "ORDER BY t.created_at DESC, t.post_id DESC LIMIT ?4";
    // Two statements rather than `?2 IS NULL OR ...`, so that SQLite seeks straight to
    // the cursor in the timeline's key.
    let sql = match after {
        None => format!("{ITEM_COLUMNS} {from} AND ?2 IS NULL AND ?3 IS NULL {order}"),
        Some(_) => {
            format!("{ITEM_COLUMNS} {from} AND (t.created_at, t.post_id) < (?2, ?3) {order}")
        }
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let posts = stmt
        .query_map(
            params![
                me.to_string(),
                after.map(|c| c.created_at),
                after.map(|c| c.post_id.as_str()),
                limit + 1
            ],
            item_from_row,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(page(posts, limit))
}

fn page(mut posts: Vec<FeedItem>, limit: usize) -> FeedPage {
    let next = if posts.len() > limit {
        posts.truncate(limit);
        posts.last().map(|p| FeedCursor {
            created_at: p.created_at,
            post_id: p.post_id.clone(),
        })
    } else {
        None
    };
    FeedPage { posts, next }
}

/// One post as the viewer sees it.
pub fn post(conn: &Connection, viewer: UserId, post_id: &PostId) -> Result<FeedItem> {
    conn.prepare_cached(&format!("{ITEM} WHERE p.post_id = ?2"))?
        .query_row(params![viewer.to_string(), post_id.as_str()], item_from_row)
        .optional()?
        .map_or_else(|| Err(missing_post(conn, post_id)), Ok)
}

/// The error for a post not in the index: deleted by its author (this profile saw it go),
/// or never received.
pub fn missing_post(conn: &Connection, post_id: &PostId) -> Error {
    match super::deletes::is_deleted(conn, post_id) {
        Ok(true) => Error::DeletedPost(post_id.clone()),
        Ok(false) => Error::UnknownPost(post_id.clone()),
        Err(e) => e,
    }
}

/// A post and its comments.
pub fn thread(conn: &Connection, viewer: UserId, post_id: &PostId) -> Result<ThreadView> {
    let post = post(conn, viewer, post_id)?;
    let mut stmt = conn.prepare_cached(
        "SELECT c.comment_id, c.author, pr.name, c.text, c.created_at, pr.avatar
         FROM comments c LEFT JOIN profiles pr ON pr.uid = c.author
         WHERE c.post_id = ?1 AND c.author NOT IN (SELECT uid FROM blocked)
         ORDER BY c.created_at, c.comment_id",
    )?;
    let comments = stmt
        .query_map([post_id.as_str()], |r| {
            Ok(CommentView {
                comment_id: parse_col(r, 0)?,
                author: parse_col(r, 1)?,
                author_name: r.get(2)?,
                text: r.get(3)?,
                created_at: r.get(4)?,
                author_avatar: avatar_col(r, 5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(ThreadView {
        post,
        comments,
        muted: super::mutes::is_muted(conn, post_id)?,
    })
}

/// A user's profile as the viewer sees it. Users this profile has heard nothing of get an
/// empty profile, not an error: a uid is enough to follow someone.
pub fn profile(conn: &Connection, viewer: UserId, uid: UserId) -> Result<ProfileView> {
    let (name, bio, avatar): (Option<String>, Option<String>, Option<String>) = conn
        .query_row(
            "SELECT name, bio, avatar FROM profiles WHERE uid = ?1",
            [uid.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?
        .unwrap_or_default();
    let (u, v) = (uid.to_string(), viewer.to_string());
    Ok(ProfileView {
        uid,
        name,
        bio: bio.unwrap_or_default(),
        avatar: avatar.and_then(|a| a.parse().ok()),
        posts: count(conn, "SELECT COUNT(*) FROM posts WHERE author = ?1", [&u])?,
        followers: count(
            conn,
            concat!(
                "SELECT COUNT(*) FROM follows WHERE followee = ?1 AND ",
                not_blocked!("follower")
            ),
            [&u],
        )?,
        following: count(
            conn,
            "SELECT COUNT(*) FROM follows WHERE follower = ?1",
            [&u],
        )?,
        followed_by_me: count(
            conn,
            "SELECT COUNT(*) FROM follows WHERE follower = ?1 AND followee = ?2",
            [&v, &u],
        )? > 0,
        follows_me: count(
            conn,
            "SELECT COUNT(*) FROM follows WHERE follower = ?1 AND followee = ?2",
            [&u, &v],
        )? > 0,
        blocked_by_me: super::blocks::is_blocked(conn, uid)?,
    })
}

fn count(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> Result<u64> {
    Ok(conn.prepare_cached(sql)?.query_row(args, |r| r.get(0))?)
}

/// A user's posts, newest first.
pub fn posts_by(
    conn: &Connection,
    viewer: UserId,
    author: UserId,
    limit: usize,
) -> Result<Vec<FeedItem>> {
    let sql = format!(
        "{ITEM} WHERE p.author = ?2 AND {} ORDER BY p.created_at DESC, p.post_id DESC LIMIT ?3",
        not_blocked!("p.author")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![
            viewer.to_string(),
            author.to_string(),
            limit.clamp(1, MAX_PAGE)
        ],
        item_from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A person found by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonHit {
    /// The user.
    pub uid: UserId,
    /// Their display name.
    pub name: String,
    /// Their avatar image, if they set one and it is known here.
    pub avatar: Option<BlobHash>,
    /// Whether the viewer follows them.
    pub followed_by_me: bool,
}

/// Users this profile holds whose display name starts with `prefix` (case-insensitive).
pub fn people(
    conn: &Connection,
    viewer: UserId,
    prefix: &str,
    limit: usize,
) -> Result<Vec<PersonHit>> {
    let pattern = format!(
        "{}%",
        prefix
            .trim()
            .trim_start_matches('@')
            .replace(['%', '_'], "")
    );
    let mut stmt = conn.prepare_cached(
        "SELECT p.uid, p.name, EXISTS (SELECT 1 FROM follows f WHERE f.follower = ?1 AND f.followee = p.uid), p.avatar
         FROM profiles p WHERE p.name LIKE ?2 AND p.uid != ?1 ORDER BY p.name COLLATE NOCASE LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![viewer.to_string(), pattern, limit.clamp(1, MAX_PAGE)],
        |r| {
            Ok(PersonHit {
                uid: parse_col(r, 0)?,
                name: r.get(1)?,
                followed_by_me: r.get(2)?,
                avatar: avatar_col(r, 3)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Posts whose text, or one of whose comments, matches every word of `query` (the last
/// word as a prefix): posts matching by their own text first (best match first), then
/// posts found by a comment, newest first. Searches everything this profile holds, offline
/// too; comments by blocked users do not count.
pub fn search(
    conn: &Connection,
    viewer: UserId,
    query: &str,
    limit: usize,
) -> Result<Vec<FeedItem>> {
    let Some(fts) = fts_query(query) else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "{ITEM} LEFT JOIN (SELECT rowid, rank FROM posts_fts WHERE posts_fts MATCH ?2) f
                ON f.rowid = p.rowid
         WHERE (f.rowid IS NOT NULL OR p.post_id IN (
                   SELECT c.post_id FROM comments_fts cf JOIN comments c ON c.rowid = cf.rowid
                   WHERE comments_fts MATCH ?2 AND {}))
           AND {}
         ORDER BY f.rowid IS NULL, f.rank, p.created_at DESC LIMIT ?3",
        not_blocked!("c.author"),
        not_blocked!("p.author")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![viewer.to_string(), fts, limit.clamp(1, MAX_PAGE)],
        item_from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Turns free text into an FTS5 query that cannot be a syntax error: each word becomes a
/// quoted phrase, the last one a prefix.
fn fts_query(query: &str) -> Option<String> {
    let words: Vec<String> = query
        .split_whitespace()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    let (last, rest) = words.split_last()?;
    let mut out = rest.join(" ");
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(last);
    out.push('*');
    Some(out)
}

fn item_from_row(r: &Row<'_>) -> rusqlite::Result<FeedItem> {
    let media: String = r.get(4)?;
    let media: Vec<String> = serde_json::from_str(&media).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, e.into())
    })?;
    Ok(FeedItem {
        post_id: parse_col(r, 0)?,
        author: parse_col(r, 1)?,
        author_name: r.get(2)?,
        text: r.get(3)?,
        media: media.iter().filter_map(|m| m.parse().ok()).collect(),
        created_at: r.get(5)?,
        likes: r.get(6)?,
        liked_by_me: r.get(7)?,
        comments: r.get(8)?,
        author_avatar: avatar_col(r, 9)?,
    })
}

/// Reads an avatar column: a hash, or nothing (an unparsable one counts as nothing, so a
/// bad avatar never hides the post or comment it decorates).
fn avatar_col(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<BlobHash>> {
    Ok(r.get::<_, Option<String>>(i)?.and_then(|h| h.parse().ok()))
}

/// Reads a text column and parses it as an id.
fn parse_col<T: std::str::FromStr<Err = IdError>>(r: &Row<'_>, i: usize) -> rusqlite::Result<T> {
    let s: String = r.get(i)?;
    s.parse().map_err(|e: IdError| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_becomes_a_safe_fts_query() {
        assert_eq!(fts_query("  "), None);
        assert_eq!(fts_query("sun"), Some("\"sun\"*".into()));
        assert_eq!(fts_query("red \"sun"), Some("\"red\" \"\"\"sun\"*".into()));
    }
}
