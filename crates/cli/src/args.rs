//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use social_sync_core::{BlobHash, CommentId, NotificationKind, PostId, UserId};

/// Social Sync from the command line: a local-first social feed in a profile folder.
#[derive(Debug, Parser)]
#[command(name = "social-sync-cli", version, about)]
pub struct Cli {
    /// The profile folder (key, database). Created by `init`.
    #[arg(long, global = true, env = "SOCIAL_SYNC_PROFILE", value_name = "DIR")]
    pub profile: Option<PathBuf>,
    /// Print JSON on stdout (and nothing else).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// One command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a new profile: a key pair and a display name; or, with --from-backup, a
    /// second device of an existing user from a key written by `export-key`.
    Init {
        /// Display name (a restored profile gets its name with the first sync).
        #[arg(
            long,
            required_unless_present = "from_backup",
            conflicts_with = "from_backup"
        )]
        name: Option<String>,
        /// The relay to sync with, e.g. ws://127.0.0.1:8787 or wss://relay.example.org; or
        /// several relays of one community, separated by commas or spaces, tried in turn
        /// when one cannot be reached or drops the connection.
        #[arg(long, value_name = "URLS")]
        relay: Option<String>,
        /// An extra trusted root for a wss:// relay with a private CA: a PEM file holding
        /// the CA's certificate, saved in the profile beside the relay.
        #[arg(long, value_name = "PEM")]
        ca_cert: Option<PathBuf>,
        /// A key file written by `export-key` on another device: this profile becomes a
        /// second device of that user (sync to bring the name, posts and follows).
        #[arg(long, value_name = "PATH")]
        from_backup: Option<PathBuf>,
        /// Read the backup's passphrase from the first line of this file (default:
        /// standard input). Never an argument: a command line is seen by every user of
        /// the machine (`ps`) and kept in shell history.
        #[arg(long, value_name = "PATH", requires = "from_backup")]
        passphrase_file: Option<PathBuf>,
    },
    /// Write this profile's key, protected by a passphrase, to a new file (mode 0600), to
    /// make a second device with `init --from-backup`.
    ExportKey {
        /// The file to write (never overwritten).
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        /// Read the passphrase (at least 8 characters) from the first line of this file
        /// (default: standard input). Never an argument: a command line is seen by every
        /// user of the machine (`ps`) and kept in shell history.
        #[arg(long, value_name = "PATH")]
        passphrase_file: Option<PathBuf>,
    },
    /// Show this profile's user id and name.
    Whoami,
    /// Change the display name, bio or avatar.
    SetProfile {
        /// New display name.
        #[arg(long)]
        name: Option<String>,
        /// New bio.
        #[arg(long)]
        bio: Option<String>,
        /// An image file for the avatar.
        #[arg(long, value_name = "PATH")]
        avatar: Option<PathBuf>,
    },
    /// Show a user's profile (yours if no id is given).
    Profile {
        /// The user.
        uid: Option<UserId>,
    },
    /// Post text, with optional images.
    Post {
        /// The text (may be empty if there is an image); `-` reads it from standard input.
        #[arg(required_unless_present_any = ["file", "images"])]
        text: Option<String>,
        /// Read the text from this file instead.
        #[arg(long, value_name = "PATH", conflicts_with = "text")]
        file: Option<PathBuf>,
        /// An image file to attach; repeat for more.
        #[arg(long = "image", value_name = "PATH")]
        images: Vec<PathBuf>,
    },
    /// Delete one of your posts.
    DeletePost {
        /// The post.
        post_id: PostId,
    },
    /// Like a post.
    Like {
        /// The post.
        post_id: PostId,
    },
    /// Take a like back.
    Unlike {
        /// The post.
        post_id: PostId,
    },
    /// Comment on a post.
    Comment {
        /// The post.
        post_id: PostId,
        /// The comment; `-` reads it from standard input.
        #[arg(required_unless_present = "file")]
        text: Option<String>,
        /// Read the comment from this file instead.
        #[arg(long, value_name = "PATH", conflicts_with = "text")]
        file: Option<PathBuf>,
    },
    /// Delete one of your comments.
    DeleteComment {
        /// The comment.
        comment_id: CommentId,
    },
    /// Follow a user: by id, or by display name as `@NAME` (looked up on the relay).
    Follow {
        /// A user id, or `@NAME`.
        who: String,
    },
    /// Stop following a user.
    Unfollow {
        /// The user.
        uid: UserId,
    },
    /// Block a user: unfollow them; their likes, comments and follows never notify and
    /// are hidden everywhere. Private to this profile: never synced.
    Block {
        /// The user.
        uid: UserId,
    },
    /// Unblock a user (following them again is up to you).
    Unblock {
        /// The user.
        uid: UserId,
    },
    /// The users you blocked, most recent first.
    Blocked,
    /// Mute a post: its likes and comments no longer notify.
    Mute {
        /// The post.
        post_id: PostId,
    },
    /// Let a muted post notify again.
    Unmute {
        /// The post.
        post_id: PostId,
    },
    /// The people you follow (the relay's list when it answers).
    Following,
    /// The people who follow you: the relay's list when it answers (the same for everyone
    /// online; at most 1,000 shown), otherwise those this profile has synced, and it says so.
    Followers,
    /// Save an image (by the hash shown in posts and profiles) to a new file.
    Image {
        /// The image's hash.
        hash: BlobHash,
        /// The file to write (never overwritten).
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
    },
    /// Your posts and those of people you follow, newest first.
    Feed {
        /// How many posts (1 to 500; page on with --after).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=500))]
        limit: u16,
        /// Start after this post (the last post_id of the previous page).
        #[arg(long, value_name = "POST_ID")]
        after: Option<PostId>,
    },
    /// A post with its comments.
    Thread {
        /// The post.
        post_id: PostId,
    },
    /// Likes, comments and follows aimed at you, newest first.
    Notifications {
        /// Only unread ones.
        #[arg(long)]
        unread: bool,
        /// How many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Only this kind; repeat for more (default: every kind).
        #[arg(long = "kind", value_name = "KIND")]
        kinds: Vec<Kind>,
    },
    /// Mark one notification (or all) as read.
    MarkRead {
        /// The notification's id.
        id: Option<String>,
        /// Mark every notification read.
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Search the posts (and their comments) this profile holds.
    Search {
        /// Words to find (the last one may be the start of a word).
        text: String,
        /// How many results (1 to 500).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=500))]
        limit: u16,
    },
    /// Write every document and image into an empty folder (offline exchange).
    Export {
        /// The folder to write.
        dir: PathBuf,
    },
    /// Merge an export folder; nothing changes if any of it is malformed.
    Import {
        /// The folder to read.
        dir: PathBuf,
    },
    /// Rebuild the query index from the documents.
    Reindex,
    /// Connect to the relay, sync until nothing is left to exchange, and exit.
    Sync {
        /// The relay, or several separated by commas or spaces (saved for next time);
        /// default: the one(s) set at init.
        #[arg(long, value_name = "URLS")]
        relay: Option<String>,
        /// An extra trusted root for a wss:// relay with a private CA: a PEM file holding
        /// the CA's certificate. Saved in the profile beside the relay once the relay
        /// answered, so later commands (watch, follow @NAME, ...) keep trusting it.
        #[arg(long, value_name = "PEM")]
        ca_cert: Option<PathBuf>,
    },
    /// Stay connected to the relay and print each event (one JSON object per line with
    /// --json) until Ctrl-C.
    Watch {
        /// The relay, or several separated by commas or spaces (saved for next time);
        /// default: the one(s) set at init.
        #[arg(long, value_name = "URLS")]
        relay: Option<String>,
        /// An extra trusted root for a wss:// relay with a private CA: a PEM file holding
        /// the CA's certificate. Saved in the profile beside the relay once the relay
        /// answered, so later commands (watch, follow @NAME, ...) keep trusting it.
        #[arg(long, value_name = "PEM")]
        ca_cert: Option<PathBuf>,
    },
    /// Which of the people you follow are online now.
    Online {
        /// The relay, or several separated by commas or spaces; default: the one(s) set
        /// at init.
        #[arg(long, value_name = "URLS")]
        relay: Option<String>,
        /// An extra trusted root for a wss:// relay with a private CA: a PEM file holding
        /// the CA's certificate. Saved in the profile beside the relay once the relay
        /// answered, so later commands (watch, follow @NAME, ...) keep trusting it.
        #[arg(long, value_name = "PEM")]
        ca_cert: Option<PathBuf>,
    },
}

/// A kind of notification, as `notifications --kind` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Someone liked one of your posts.
    Like,
    /// Someone commented on one of your posts.
    Comment,
    /// Someone followed you.
    Follow,
}

impl From<Kind> for NotificationKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Like => Self::Like,
            Kind::Comment => Self::Comment,
            Kind::Follow => Self::Follow,
        }
    }
}
