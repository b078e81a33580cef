// The UI's state, as signals, and the actions that change it.
import { signal } from '@preact/signals';
import { AppError, api, type AppSettings, type FeedCursor, type FeedItem, type PostId, type Session, type Status, type SyncEvent, type Target, type UserId } from './api';

export type Route =
  | { view: 'feed' }
  | { view: 'notifications' }
  | { view: 'search' }
  | { view: 'settings' }
  | { view: 'profile'; uid: UserId | null };

export interface ToastItem {
  id: number;
  title: string;
  body: string;
  tone: 'info' | 'error';
  target?: Target;
}

export const session = signal<Session | null>(null);
export const status = signal<Status>({ status: 'offline', waiting: 0, reason: null, relay: null });
/** Whether the relay was reached since launch (the first attempt reads "Connecting…"). */
export const everOnline = signal(false);
export const unread = signal(0);
export const route = signal<Route>({ view: 'feed' });
export const openThread = signal<PostId | null>(null);
export const feed = signal<FeedItem[]>([]);
export const feedCursor = signal<FeedCursor | null>(null);
export const feedDone = signal(false);
export const feedLoading = signal(false);
export const toasts = signal<ToastItem[]>([]);
export const online = signal<Set<UserId>>(new Set());
export const progress = signal<{ done: number; total: number } | null>(null);
export const settings = signal<AppSettings | null>(null);
/** Bumped whenever something a view shows may have changed (thread, profile, list). */
export const revision = signal(0);

let toastId = 0;

export function toast(title: string, body: string, tone: ToastItem['tone'] = 'info', target?: Target) {
  const id = ++toastId;
  toasts.value = [...toasts.value, { id, title, body, tone, target }];
  setTimeout(() => dismissToast(id), tone === 'error' ? 8000 : 5000);
}

export function dismissToast(id: number) {
  toasts.value = toasts.value.filter((t) => t.id !== id);
}

/** Shows an error from a command; returns its code. */
export function showError(e: unknown): string {
  const err = e instanceof AppError ? e : new AppError('unknown', String(e));
  toast('Something went wrong', err.message, 'error');
  return err.code;
}

/**
 * How many connection and notification events have been applied. Events and command answers
 * travel apart: a session snapshot taken before an event can arrive after it, and must not
 * undo it (the pill stayed at "Connecting…" on a connected app).
 */
const applied = { connection: 0, notification: 0 };

export async function refreshSession() {
  const before = { ...applied };
  const s = await api.session();
  session.value = s;
  if (applied.connection === before.connection) {
    status.value = s.status;
    if (s.status.status === 'online') everOnline.value = true;
  }
  if (applied.notification === before.notification) unread.value = s.unread;
}

export async function loadFeed(reset: boolean) {
  if (feedLoading.value || (!reset && feedDone.value)) return;
  feedLoading.value = true;
  try {
    const page = await api.feed(reset ? null : feedCursor.value, 50);
    feed.value = reset ? page.posts : [...feed.value, ...page.posts];
    feedCursor.value = page.next;
    feedDone.value = page.next === null;
  } catch (e) {
    showError(e);
  } finally {
    feedLoading.value = false;
  }
}

/** Reloads the feed as far as it was scrolled, keeping the list's position. */
export async function refreshFeed() {
  const shown = Math.max(feed.value.length, 50);
  try {
    let posts: FeedItem[] = [];
    let cursor: FeedCursor | null = null;
    do {
      const page = await api.feed(cursor, Math.min(500, shown - posts.length));
      posts = posts.concat(page.posts);
      cursor = page.next;
    } while (cursor && posts.length < shown);
    feed.value = posts;
    feedCursor.value = cursor;
    feedDone.value = cursor === null;
  } catch (e) {
    showError(e);
  }
}

export function replacePost(item: FeedItem) {
  feed.value = feed.value.map((p) => (p.post_id === item.post_id ? item : p));
  revision.value++;
}

export function navigate(to: Route) {
  route.value = to;
  openThread.value = null;
}

export function openTarget(t: Target) {
  if (t.kind === 'post') openThread.value = t.post_id;
  else if (t.kind === 'profile') navigate({ view: 'profile', uid: t.uid });
  else navigate({ view: 'notifications' });
}

let refreshTimer: ReturnType<typeof setTimeout> | null = null;

/** Applies one event from the sync engine. */
export function applySyncEvent(e: SyncEvent) {
  switch (e.event) {
    case 'connection':
      applied.connection++;
      status.value = { status: e.status, waiting: e.waiting, reason: e.reason, relay: e.relay ?? null };
      if (e.status === 'online') everOnline.value = true;
      if (e.status !== 'online') online.value = new Set();
      break;
    case 'feed_changed':
    case 'thread_changed':
      // Many arrive together during a large sync: refresh once they settle.
      if (refreshTimer) clearTimeout(refreshTimer);
      refreshTimer = setTimeout(() => {
        refreshTimer = null;
        void refreshFeed();
        revision.value++;
      }, 150);
      break;
    case 'notification':
      applied.notification++;
      unread.value += 1;
      revision.value++;
      break;
    case 'presence': {
      const next = new Set(online.value);
      if (e.online) next.add(e.user);
      else next.delete(e.user);
      online.value = next;
      break;
    }
    case 'progress':
      progress.value = e.total > 0 && e.done < e.total ? { done: e.done, total: e.total } : null;
      break;
    case 'undelivered':
      toast('Not delivered', 'Your like or comment was not delivered: its author deleted the post.', 'error');
      break;
    case 'rejected':
      if (e.by === 'client') {
        // The relay sent something this app would not keep (a change not signed by the
        // person it claims to come from): nothing changed here, so no alarm.
        toast(
          'Something was held back',
          e.code === 'bad_change_signature'
            ? 'The relay passed on changes that their authors did not sign. They were not kept; your feed is as it was.'
            : 'The relay passed on changes this app does not accept. They were not kept; your feed is as it was.',
          'info',
        );
      } else {
        toast(e.code === 'name_taken' ? 'That name is taken' : 'The relay refused a change', e.message, 'error');
      }
      break;
  }
}
