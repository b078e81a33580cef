//! The commands the front end calls: thin adapters over `social_sync_core::Replica`.
//! Arguments arrive camelCased from JavaScript; errors leave as `{code, message}`.
//!
//! None runs on the main (UI) thread: the synchronous ones are `#[tauri::command(async)]`
//! (Tauri runs them on its thread pool), so a command waiting for the profile while the
//! sync thread merges a large batch never freezes the window.

use base64::Engine;
use serde::Serialize;
use social_sync_core::store::queries::PersonHit;
use social_sync_core::{
    BlobHash, CommentId, FeedCursor, FeedItem, FeedPage, Notification, PostId, ProfileView,
    ThreadView, UserId,
};
use tauri::{AppHandle, State};

use crate::AppState;
use crate::background_sync::Status;
use crate::error::{CommandError, CommandResult};
use crate::settings::AppSettings;

/// Who is signed in, and the connection.
#[derive(Debug, Serialize)]
pub struct Session {
    /// The local user, once a profile exists.
    pub me: Option<Me>,
    /// The relay address.
    pub relay: Option<String>,
    /// The connection.
    pub status: Status,
    /// Unread notifications.
    pub unread: u64,
}

/// The local user.
#[derive(Debug, Serialize)]
pub struct Me {
    /// User id.
    pub uid: UserId,
    /// Display name.
    pub name: String,
}

/// The first screen's question: is there a profile, and how is the connection.
#[tauri::command(async)]
pub fn session(state: State<'_, AppState>) -> CommandResult<Session> {
    state.session()
}

/// The UI painted its first feed page: logged once (`first feed paint`) with the time since
/// start, which `scripts/bench-app` reads.
#[tauri::command(async)]
pub fn first_paint(posts: usize) {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| tracing::info!(ms = crate::uptime_ms(), posts, "first feed paint"));
}

/// Makes the profile (first run): a key pair and a display name; starts syncing.
#[tauri::command(async)]
pub fn create_profile(
    app: AppHandle,
    state: State<'_, AppState>,
    name: String,
    relay: String,
) -> CommandResult<Session> {
    state.create_profile(&app, &name, &relay)?;
    state.session()
}

/// A second device: makes the profile from a key backup exported on the first, then
/// syncs the user's posts, follows and name from the relay.
#[tauri::command(async)]
pub fn restore_profile(
    app: AppHandle,
    state: State<'_, AppState>,
    backup: String,
    passphrase: String,
    relay: String,
) -> CommandResult<Session> {
    state.restore_profile(&app, &backup, &passphrase, &relay)?;
    state.session()
}

/// Saves the key, protected by `passphrase`, as a `.pem` file in the Downloads folder (or
/// the home folder); returns the file's path.
#[tauri::command(async)]
pub fn export_key(
    app: AppHandle,
    state: State<'_, AppState>,
    passphrase: String,
) -> CommandResult<String> {
    use tauri::Manager;
    let (pem, uid) = state.with_replica(|r| Ok((r.export_key(&passphrase)?, r.user_id())))?;
    let folder = app
        .path()
        .download_dir()
        .or_else(|_| app.path().home_dir())
        .map_err(|e| {
            CommandError::new(
                "no_folder",
                format!("cannot find a Downloads or home folder to save the key in ({e})"),
            )
        })?;
    let stem = format!("social-sync-key-{}", &uid.to_string()[..8]);
    let path = (1..)
        .map(|n| match n {
            1 => folder.join(format!("{stem}.pem")),
            n => folder.join(format!("{stem}-{n}.pem")),
        })
        .find(|p| !p.exists())
        .unwrap_or_else(|| folder.join(format!("{stem}.pem")));
    std::fs::write(&path, pem).map_err(|e| {
        CommandError::new(
            "io",
            format!(
                "cannot write the key backup to {} ({e}): check that the folder is writable",
                path.display()
            ),
        )
    })?;
    Ok(path.display().to_string())
}

/// A page of the feed.
#[tauri::command(async)]
pub fn feed(
    state: State<'_, AppState>,
    after: Option<FeedCursor>,
    limit: Option<usize>,
) -> CommandResult<FeedPage> {
    state.with_replica(|r| Ok(r.feed(after.as_ref(), limit.unwrap_or(50))?))
}

/// Posts text with images (base64-encoded bytes from the file picker, a drop or a paste).
#[tauri::command(async)]
pub fn create_post(
    state: State<'_, AppState>,
    text: String,
    images: Vec<String>,
) -> CommandResult<PostId> {
    let images = images
        .iter()
        .map(|b64| decode_image(b64))
        .collect::<Result<Vec<_>, _>>()?;
    state.with_replica(|r| Ok(r.post_with_image_bytes(&text, images)?))
}

/// The bytes of an image the UI sent as base64.
fn decode_image(b64: &str) -> CommandResult<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| {
            CommandError::new(
                "not_an_image",
                format!("an attached image could not be read ({e}); attach it again"),
            )
        })
}

/// Deletes one of the user's posts.
#[tauri::command(async)]
pub fn delete_post(state: State<'_, AppState>, post_id: PostId) -> CommandResult<()> {
    state.with_replica(|r| Ok(r.delete_post(&post_id)?))
}

/// Likes a post; returns it with the new count.
#[tauri::command(async)]
pub fn like(state: State<'_, AppState>, post_id: PostId) -> CommandResult<FeedItem> {
    state.with_replica(|r| {
        r.like(&post_id)?;
        Ok(r.post_view(&post_id)?)
    })
}

/// Takes a like back; returns the post with the new count.
#[tauri::command(async)]
pub fn unlike(state: State<'_, AppState>, post_id: PostId) -> CommandResult<FeedItem> {
    state.with_replica(|r| {
        r.unlike(&post_id)?;
        Ok(r.post_view(&post_id)?)
    })
}

/// A post and its comments.
#[tauri::command(async)]
pub fn thread(state: State<'_, AppState>, post_id: PostId) -> CommandResult<ThreadView> {
    state.with_replica(|r| Ok(r.thread(&post_id)?))
}

/// Comments on a post; returns the thread.
#[tauri::command(async)]
pub fn comment(
    state: State<'_, AppState>,
    post_id: PostId,
    text: String,
) -> CommandResult<ThreadView> {
    state.with_replica(|r| {
        r.comment(&post_id, &text)?;
        Ok(r.thread(&post_id)?)
    })
}

/// Deletes one of the user's comments.
#[tauri::command(async)]
pub fn delete_comment(state: State<'_, AppState>, comment_id: CommentId) -> CommandResult<()> {
    state.with_replica(|r| Ok(r.delete_comment(&comment_id)?))
}

/// A profile page: the profile, their posts, and whether they are online.
#[derive(Debug, Serialize)]
pub struct ProfilePage {
    /// The profile.
    pub profile: ProfileView,
    /// Their posts, newest first.
    pub posts: Vec<FeedItem>,
    /// Online now (known for users the local user follows).
    pub online: bool,
    /// Whether the follower and following counts are the relay's (the same for everyone
    /// online) rather than what this profile holds (offline).
    pub counts_from_relay: bool,
}

/// How long a profile page waits for the relay's follow counts.
const GRAPH_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// A user's profile page (the local user's own if `uid` is absent). Follow counts come
/// from the relay when it answers, so everyone online sees the same.
#[tauri::command]
pub async fn profile(
    state: State<'_, AppState>,
    uid: Option<UserId>,
) -> CommandResult<ProfilePage> {
    let online = state.online();
    let mut page = state.with_replica(|r| {
        let uid = uid.unwrap_or(r.user_id());
        Ok(ProfilePage {
            profile: r.profile(uid)?,
            posts: r.posts_by(uid, 100)?,
            online: online.contains(&uid),
            counts_from_relay: false,
        })
    })?;
    if let Some(engine) = state.engine()
        && let Ok(Ok(graph)) =
            tokio::time::timeout(GRAPH_PATIENCE, engine.follow_graph(page.profile.uid)).await
    {
        page.profile.followers = graph.followers;
        page.profile.following = graph.following;
        page.counts_from_relay = true;
    }
    Ok(page)
}

/// Changes the user's name and bio.
#[tauri::command(async)]
pub fn update_profile(state: State<'_, AppState>, name: String, bio: String) -> CommandResult<()> {
    state.with_replica(|r| Ok(r.set_profile(Some(&name), Some(&bio))?))
}

/// Sets the user's avatar from an image (base64, from the file picker), or removes it when
/// `image` is absent; returns the new image's hash.
#[tauri::command(async)]
pub fn set_avatar(
    state: State<'_, AppState>,
    image: Option<String>,
) -> CommandResult<Option<BlobHash>> {
    match image {
        Some(b64) => {
            let bytes = decode_image(&b64)?;
            state.with_replica(|r| Ok(Some(r.set_avatar_bytes(bytes)?)))
        }
        None => state.with_replica(|r| {
            r.remove_avatar()?;
            Ok(None)
        }),
    }
}

/// Follows a user.
#[tauri::command(async)]
pub fn follow(state: State<'_, AppState>, uid: UserId) -> CommandResult<()> {
    state.with_replica(|r| Ok(r.follow(uid)?))
}

/// Stops following a user.
#[tauri::command(async)]
pub fn unfollow(state: State<'_, AppState>, uid: UserId) -> CommandResult<()> {
    state.with_replica(|r| Ok(r.unfollow(uid)?))
}

/// Blocks a user: unfollows them; their likes, comments and follows never notify and are
/// hidden. Returns the notifications' new unread count (theirs no longer count).
#[tauri::command(async)]
pub fn block(app: AppHandle, state: State<'_, AppState>, uid: UserId) -> CommandResult<u64> {
    let unread = state.with_replica(|r| {
        r.block(uid)?;
        Ok(r.unread_count()?)
    })?;
    crate::tray::show_unread(&app, unread);
    Ok(unread)
}

/// Unblocks a user. Returns the new unread count.
#[tauri::command(async)]
pub fn unblock(app: AppHandle, state: State<'_, AppState>, uid: UserId) -> CommandResult<u64> {
    let unread = state.with_replica(|r| {
        r.unblock(uid)?;
        Ok(r.unread_count()?)
    })?;
    crate::tray::show_unread(&app, unread);
    Ok(unread)
}

/// Someone the user blocked.
#[derive(Debug, Serialize)]
pub struct BlockedPerson {
    /// Their id.
    pub uid: UserId,
    /// Their display name, if known.
    pub name: Option<String>,
}

/// The people the user blocked, most recent first.
#[tauri::command(async)]
pub fn blocked(state: State<'_, AppState>) -> CommandResult<Vec<BlockedPerson>> {
    state.with_replica(|r| {
        Ok(r.blocked()?
            .into_iter()
            .map(|(uid, name)| BlockedPerson { uid, name })
            .collect())
    })
}

/// Mutes (or unmutes) the notifications of one post; returns the thread as it is now.
#[tauri::command(async)]
pub fn set_post_muted(
    state: State<'_, AppState>,
    post_id: PostId,
    muted: bool,
) -> CommandResult<ThreadView> {
    state.with_replica(|r| {
        if muted {
            r.mute_post(&post_id)?;
        } else {
            r.unmute_post(&post_id)?;
        }
        Ok(r.thread(&post_id)?)
    })
}

/// People by name: those this profile already holds, and the exact name on the relay.
#[tauri::command]
pub async fn find_people(
    state: State<'_, AppState>,
    name: String,
) -> CommandResult<Vec<PersonHit>> {
    let mut hits = state.with_replica(|r| Ok(r.people(&name, 20)?))?;
    if let Some(engine) = state.engine() {
        match engine.lookup_name(&name).await {
            Ok(Some(uid)) if !hits.iter().any(|h| h.uid == uid) => {
                let me = state.with_replica(|r| Ok(r.user_id()))?;
                if uid != me {
                    let followed = state.with_replica(|r| Ok(r.following()?.contains(&uid)))?;
                    hits.insert(
                        0,
                        PersonHit {
                            uid,
                            name: name.trim_start_matches('@').to_owned(),
                            // Known once their profile document arrives.
                            avatar: None,
                            followed_by_me: followed,
                        },
                    );
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::info!(error = %e, "name lookup on the relay failed; showing local matches only")
            }
        }
    }
    Ok(hits)
}

/// Full-text search over every post this profile holds (works offline).
#[tauri::command(async)]
pub fn search(state: State<'_, AppState>, text: String) -> CommandResult<Vec<FeedItem>> {
    state.with_replica(|r| Ok(r.search(&text, 100)?))
}

/// Notifications, newest first.
#[tauri::command(async)]
pub fn notifications(
    state: State<'_, AppState>,
    unread_only: bool,
) -> CommandResult<Vec<Notification>> {
    state.with_replica(|r| Ok(r.notifications(unread_only, 200)?))
}

/// Marks one notification read.
#[tauri::command(async)]
pub fn mark_read(app: AppHandle, state: State<'_, AppState>, id: String) -> CommandResult<u64> {
    let unread = state.with_replica(|r| {
        r.mark_read(&id)?;
        Ok(r.unread_count()?)
    })?;
    crate::tray::show_unread(&app, unread);
    Ok(unread)
}

/// Marks every notification read.
#[tauri::command(async)]
pub fn mark_all_read(app: AppHandle, state: State<'_, AppState>) -> CommandResult<u64> {
    state.with_replica(|r| Ok(r.mark_all_read().map(drop)?))?;
    crate::tray::show_unread(&app, 0);
    Ok(0)
}

/// The app's settings.
#[tauri::command(async)]
pub fn get_settings(state: State<'_, AppState>) -> CommandResult<AppSettings> {
    Ok(state.settings())
}

/// Saves the app's settings (and applies launch-at-login).
#[tauri::command(async)]
pub fn set_settings(
    app: AppHandle,
    state: State<'_, AppState>,
    settings: AppSettings,
) -> CommandResult<AppSettings> {
    state.with_replica(|r| Ok(settings.save(r)?))?;
    crate::apply_autostart(&app, settings.launch_at_login);
    Ok(settings)
}

/// Points the profile at another relay and reconnects.
#[tauri::command(async)]
pub fn set_relay(
    app: AppHandle,
    state: State<'_, AppState>,
    url: String,
) -> CommandResult<Session> {
    state.set_relay(&app, &url)?;
    state.session()
}

/// Users the local user follows who are online (and follow back).
#[tauri::command(async)]
pub fn online(state: State<'_, AppState>) -> CommandResult<Vec<UserId>> {
    Ok(state.online().into_iter().collect())
}
