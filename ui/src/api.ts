// Typed calls to the desktop shell (Tauri commands) and its events. Errors arrive as
// {code, message}; the UI matches on `code`, never on the message.
import { invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';

export type UserId = string;
export type PostId = string;
export type CommentId = string;

export interface FeedItem {
  post_id: PostId;
  author: UserId;
  author_name: string | null;
  author_avatar: string | null;
  text: string;
  media: string[];
  created_at: number;
  likes: number;
  liked_by_me: boolean;
  comments: number;
}

export interface FeedCursor {
  created_at: number;
  post_id: PostId;
}

export interface FeedPage {
  posts: FeedItem[];
  next: FeedCursor | null;
}

export interface CommentView {
  comment_id: CommentId;
  author: UserId;
  author_name: string | null;
  author_avatar: string | null;
  text: string;
  created_at: number;
}

export interface ThreadView {
  post: FeedItem;
  comments: CommentView[];
  muted: boolean;
}

export interface ProfileView {
  uid: UserId;
  name: string | null;
  bio: string;
  avatar: string | null;
  posts: number;
  followers: number;
  following: number;
  followed_by_me: boolean;
  follows_me: boolean;
  blocked_by_me: boolean;
}

export interface ProfilePage {
  profile: ProfileView;
  posts: FeedItem[];
  online: boolean;
  /** Follow counts from the relay (the same for everyone online), or this profile's own. */
  counts_from_relay: boolean;
}

export type NotificationKind = 'like' | 'comment' | 'follow';

export interface AppNotification {
  id: string;
  kind: NotificationKind;
  actor: UserId;
  actor_name: string | null;
  post_id: PostId | null;
  comment_id: CommentId | null;
  created_at: number;
  read: boolean;
}

export type ConnectionState = 'connecting' | 'online' | 'offline' | 'reconnecting';

export interface Status {
  status: ConnectionState;
  waiting: number;
  reason: string | null;
  /** The relay of the list concerned: dialled, connected, left, or tried next. */
  relay: string | null;
}

export interface Session {
  me: { uid: UserId; name: string } | null;
  /** The relay address, or the list of them (separated by ", "), as saved. */
  relay: string | null;
  status: Status;
  unread: number;
}

export interface PersonHit {
  uid: UserId;
  name: string;
  avatar: string | null;
  followed_by_me: boolean;
}

export interface AppSettings {
  notify_likes: boolean;
  notify_comments: boolean;
  notify_follows: boolean;
  sound: boolean;
  do_not_disturb: boolean;
  theme: 'system' | 'light' | 'dark';
  launch_at_login: boolean;
}

export type SyncEvent =
  | { event: 'connection'; status: ConnectionState; waiting: number; reason: string | null; relay: string | null }
  | { event: 'feed_changed'; user: UserId }
  | { event: 'thread_changed'; post_id: PostId }
  | { event: 'notification'; notification: AppNotification }
  | { event: 'presence'; user: UserId; online: boolean }
  | { event: 'progress'; done: number; total: number }
  | { event: 'undelivered'; undelivered: { post_id: PostId; author: UserId; changes: number } }
  | { event: 'rejected'; by: 'relay' | 'client'; code: string; doc: string | null; message: string };

export type Target =
  | { kind: 'post'; post_id: PostId }
  | { kind: 'profile'; uid: UserId }
  | { kind: 'notifications' };

export interface Toast {
  title: string;
  body: string;
  target: Target;
}

/** An error from the shell, with its stable code. */
export class AppError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function toAppError(e: unknown): AppError {
  if (e && typeof e === 'object' && 'code' in e && 'message' in e) {
    return new AppError(String((e as { code: unknown }).code), String((e as { message: unknown }).message));
  }
  return new AppError('unknown', String(e));
}

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw toAppError(e);
  }
}

export const api = {
  session: () => call<Session>('session'),
  /** Tells the shell the first feed page is on screen (start-up time, for the benchmark). */
  firstPaint: (posts: number) => call<void>('first_paint', { posts }),
  createProfile: (name: string, relay: string) => call<Session>('create_profile', { name, relay }),
  restoreProfile: (backup: string, passphrase: string, relay: string) => call<Session>('restore_profile', { backup, passphrase, relay }),
  /** Returns the path of the saved key backup. */
  exportKey: (passphrase: string) => call<string>('export_key', { passphrase }),
  feed: (after: FeedCursor | null, limit = 50) => call<FeedPage>('feed', { after, limit }),
  createPost: (text: string, images: string[]) => call<PostId>('create_post', { text, images }),
  deletePost: (postId: PostId) => call<void>('delete_post', { postId }),
  like: (postId: PostId) => call<FeedItem>('like', { postId }),
  unlike: (postId: PostId) => call<FeedItem>('unlike', { postId }),
  thread: (postId: PostId) => call<ThreadView>('thread', { postId }),
  comment: (postId: PostId, text: string) => call<ThreadView>('comment', { postId, text }),
  deleteComment: (commentId: CommentId) => call<void>('delete_comment', { commentId }),
  profile: (uid: UserId | null) => call<ProfilePage>('profile', { uid }),
  updateProfile: (name: string, bio: string) => call<void>('update_profile', { name, bio }),
  /** Sets the avatar from a base64 image, or removes it (null); returns the image's hash. */
  setAvatar: (image: string | null) => call<string | null>('set_avatar', { image }),
  follow: (uid: UserId) => call<void>('follow', { uid }),
  unfollow: (uid: UserId) => call<void>('unfollow', { uid }),
  /** Returns the new unread count. */
  block: (uid: UserId) => call<number>('block', { uid }),
  unblock: (uid: UserId) => call<number>('unblock', { uid }),
  blocked: () => call<{ uid: UserId; name: string | null }[]>('blocked'),
  setPostMuted: (postId: PostId, muted: boolean) => call<ThreadView>('set_post_muted', { postId, muted }),
  findPeople: (name: string) => call<PersonHit[]>('find_people', { name }),
  search: (text: string) => call<FeedItem[]>('search', { text }),
  notifications: (unreadOnly: boolean) => call<AppNotification[]>('notifications', { unreadOnly }),
  markRead: (id: string) => call<number>('mark_read', { id }),
  markAllRead: () => call<number>('mark_all_read'),
  getSettings: () => call<AppSettings>('get_settings'),
  setSettings: (settings: AppSettings) => call<AppSettings>('set_settings', { settings }),
  setRelay: (url: string) => call<Session>('set_relay', { url }),
  online: () => call<UserId[]>('online'),
};

export function onSyncEvent(handler: (e: SyncEvent) => void): Promise<UnlistenFn> {
  return listen<SyncEvent>('sync-event', (e) => handler(e.payload));
}

export function onToast(handler: (t: Toast) => void): Promise<UnlistenFn> {
  return listen<Toast>('toast', (e) => handler(e.payload));
}

export function onOpen(handler: (t: Target) => void): Promise<UnlistenFn> {
  return listen<Target>('open', (e) => handler(e.payload));
}

export function onPlaySound(handler: () => void): Promise<UnlistenFn> {
  return listen('play-sound', () => handler());
}
