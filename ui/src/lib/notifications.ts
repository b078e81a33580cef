// Grouping of the notifications panel: "Ana and 4 others liked your post".
import type { AppNotification, NotificationKind, PostId, UserId } from '../api';

export interface NotificationGroup {
  key: string;
  kind: NotificationKind;
  postId: PostId | null;
  actors: { uid: UserId; name: string }[];
  latest: number;
  unread: boolean;
  ids: string[];
}

const verbs: Record<NotificationKind, string> = {
  like: 'liked your post',
  comment: 'commented on your post',
  follow: 'followed you',
};

export function displayName(name: string | null, uid: UserId): string {
  return name && name.length > 0 ? name : uid.slice(0, 8);
}

/** Groups likes and comments per post, follows together; newest group first. */
export function groupNotifications(list: AppNotification[]): NotificationGroup[] {
  const groups = new Map<string, NotificationGroup>();
  for (const n of [...list].sort((a, b) => b.created_at - a.created_at)) {
    const key = `${n.kind}:${n.post_id ?? ''}`;
    let g = groups.get(key);
    if (!g) {
      g = { key, kind: n.kind, postId: n.post_id, actors: [], latest: n.created_at, unread: false, ids: [] };
      groups.set(key, g);
    }
    if (!g.actors.some((a) => a.uid === n.actor)) g.actors.push({ uid: n.actor, name: displayName(n.actor_name, n.actor) });
    g.unread ||= !n.read;
    g.ids.push(n.id);
  }
  return [...groups.values()];
}

/** "Ana", "Ana and Ben", "Ana and 4 others", then the verb; "(3 comments)" when more
 * comments than people. */
export function groupText(g: Pick<NotificationGroup, 'actors' | 'kind' | 'ids'>): string {
  const names = g.actors.map((a) => a.name);
  const who =
    names.length === 1 ? names[0] : names.length === 2 ? `${names[0]} and ${names[1]}` : `${names[0]} and ${names.length - 1} others`;
  const count = g.kind === 'comment' && g.ids.length > g.actors.length ? ` (${g.ids.length} comments)` : '';
  return `${who} ${verbs[g.kind]}${count}`;
}
