import { useEffect, useState } from 'preact/hooks';
import { api, type FeedItem, type PersonHit } from '../api';
import { navigate, refreshFeed, showError } from '../store';
import { Avatar, PostCard } from './PostCard';

/** People by name (local, and exact names on the relay) and posts by words (local, offline too). */
export function Search() {
  const [query, setQuery] = useState('');
  const [people, setPeople] = useState<PersonHit[]>([]);
  const [posts, setPosts] = useState<FeedItem[]>([]);

  useEffect(() => {
    const q = query.trim();
    if (!q) {
      setPeople([]);
      setPosts([]);
      return;
    }
    const timer = setTimeout(() => {
      api.search(q).then(setPosts).catch(showError);
      api.findPeople(q).then(setPeople).catch(showError);
    }, 200);
    return () => clearTimeout(timer);
  }, [query]);

  const follow = async (hit: PersonHit) => {
    try {
      if (hit.followed_by_me) await api.unfollow(hit.uid);
      else await api.follow(hit.uid);
      setPeople(people.map((p) => (p.uid === hit.uid ? { ...p, followed_by_me: !hit.followed_by_me } : p)));
      void refreshFeed();
    } catch (e) {
      showError(e);
    }
  };

  const now = Date.now();
  return (
    <div class="page">
      <div class="column">
        <h1>Search</h1>
        <label class="sr-only" for="search-input">
          Search people and posts
        </label>
        <input id="search-input" class="search" type="search" placeholder="Search people (@name) and posts…" value={query} onInput={(e) => setQuery(e.currentTarget.value)} autoFocus />
        {people.length > 0 && (
          <>
            <h2 class="section-title">People</h2>
            <ul class="people">
              {people.map((hit) => (
                <li key={hit.uid} class="card person">
                  <button class="author" onClick={() => navigate({ view: 'profile', uid: hit.uid })}>
                    <Avatar name={hit.name} uid={hit.uid} image={hit.avatar} size={34} />
                    <span>{hit.name}</span>
                    {/* The user id beside the name: a look-alike name cannot pass for someone else. */}
                    <span class="muted small uid" title={hit.uid} data-testid="person-uid">
                      {hit.uid.slice(0, 12)}…
                    </span>
                  </button>
                  <button class={hit.followed_by_me ? '' : 'primary'} onClick={() => follow(hit)} data-testid="person-follow">
                    {hit.followed_by_me ? 'Unfollow' : 'Follow'}
                  </button>
                </li>
              ))}
            </ul>
          </>
        )}
        {query.trim() && (
          <>
            <h2 class="section-title">Posts</h2>
            {posts.length === 0 && <p class="empty">No posts match.</p>}
            <div class="list">
              {posts.map((p) => (
                <PostCard key={p.post_id} post={p} now={now} />
              ))}
            </div>
          </>
        )}
      </div>
    </div>
  );
}
