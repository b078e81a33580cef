import { useEffect, useState } from 'preact/hooks';
import { api, type UserId } from '../api';
import { displayName } from '../lib/notifications';
import { refreshFeed, showError, toast, unread } from '../store';

/** Settings section: the people the user blocked, each with Unblock. */
export function BlockedPeople() {
  const [people, setPeople] = useState<{ uid: UserId; name: string | null }[] | null>(null);
  const load = () => api.blocked().then(setPeople).catch(showError);
  useEffect(() => {
    void load();
  }, []);

  const unblock = async (uid: UserId, name: string) => {
    try {
      unread.value = await api.unblock(uid);
      toast(`${name} is unblocked`, 'Their likes, comments and follows show again.');
      await load();
      void refreshFeed();
    } catch (e) {
      showError(e);
    }
  };

  return (
    <section class="card" aria-labelledby="blocked-title">
      <h2 id="blocked-title">Blocked people</h2>
      <p class="muted small">Their likes, comments and follows never notify you and are hidden. Only this device knows.</p>
      {people === null ? (
        <p class="muted">Loading…</p>
      ) : people.length === 0 ? (
        <p class="muted">You have not blocked anyone.</p>
      ) : (
        <ul class="people">
          {people.map((p) => {
            const name = displayName(p.name, p.uid);
            return (
              <li key={p.uid} class="person" data-testid="blocked-person">
                <span>{name}</span>
                <button class="subtle" onClick={() => unblock(p.uid, name)}>
                  Unblock
                </button>
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}
