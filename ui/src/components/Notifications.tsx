import { useEffect, useState } from 'preact/hooks';
import { api, type AppNotification } from '../api';
import { groupNotifications, groupText } from '../lib/notifications';
import { relativeTime } from '../lib/time';
import { Icon } from './Icon';
import { navigate, openThread, revision, showError, unread } from '../store';

export function Notifications() {
  const [list, setList] = useState<AppNotification[] | null>(null);
  const [onlyUnread, setOnlyUnread] = useState(false);

  useEffect(() => {
    api.notifications(onlyUnread).then(setList).catch(showError);
  }, [onlyUnread, revision.value]);

  const open = async (ids: string[], postId: string | null, actor: string) => {
    try {
      for (const id of ids) unread.value = await api.markRead(id);
      setList(await api.notifications(onlyUnread));
    } catch (e) {
      showError(e);
    }
    if (postId) openThread.value = postId;
    else navigate({ view: 'profile', uid: actor });
  };

  const markAll = async () => {
    try {
      unread.value = await api.markAllRead();
      setList(await api.notifications(onlyUnread));
    } catch (e) {
      showError(e);
    }
  };

  const groups = groupNotifications(list ?? []);
  const now = Date.now();
  return (
    <div class="page">
      <div class="column">
        <div class="page-head">
          <h1>Notifications</h1>
          <label class="toggle">
            <input type="checkbox" checked={onlyUnread} onChange={(e) => setOnlyUnread(e.currentTarget.checked)} /> Unread only
          </label>
          <button onClick={markAll} disabled={unread.value === 0}>
            Mark all read
          </button>
        </div>
        {list && groups.length === 0 && <p class="empty">No notifications{onlyUnread ? ' unread' : ''}.</p>}
        <ul class="notifications">
          {groups.map((g) => (
            <li key={g.key}>
              <button class={g.unread ? 'card notification unread' : 'card notification'} onClick={() => open(g.ids, g.postId, g.actors[0].uid)} data-testid="notification">
                <span class={`kind kind-${g.kind}`}>
                  <Icon name={g.kind === 'like' ? 'heart' : g.kind === 'comment' ? 'comment' : 'plus'} filled={g.kind === 'like'} />
                </span>
                <span class="text">{groupText(g)}</span>
                <time>{relativeTime(g.latest, now)}</time>
                {g.unread && <span class="sr-only">unread</span>}
              </button>
            </li>
          ))}
        </ul>
      </div>
    </div>
  );
}
