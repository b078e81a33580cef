import { api, type FeedItem } from '../api';
import { displayName } from '../lib/notifications';
import { fullTime, relativeTime } from '../lib/time';
import { CachedImage } from './CachedImage';
import { Icon } from './Icon';
import { feed, navigate, online, openThread, replacePost, session, showError } from '../store';

/** A person's picture: their avatar image when they set one, else their initial. */
export function Avatar({ name, uid, image, size = 40 }: { name: string; uid: string; image?: string | null; size?: number }) {
  const hue = parseInt(uid.slice(0, 6), 36) % 360;
  const initial = (
    <span class="avatar" style={{ width: `${size}px`, height: `${size}px`, background: `hsl(${hue} 55% 52%)`, fontSize: `${Math.round(size * 0.42)}px` }} aria-hidden="true">
      {name.slice(0, 1).toUpperCase()}
    </span>
  );
  if (!image) return initial;
  return (
    <CachedImage
      hash={image}
      class="avatar"
      alt=""
      style={{ width: `${size}px`, height: `${size}px` }}
      data-testid="avatar-image"
      fallback={initial}
    />
  );
}

export function PostCard({ post, now }: { post: FeedItem; now: number }) {
  const me = session.value?.me?.uid;
  const name = displayName(post.author_name, post.author);
  const toggleLike = async () => {
    try {
      replacePost(post.liked_by_me ? await api.unlike(post.post_id) : await api.like(post.post_id));
    } catch (e) {
      showError(e);
    }
  };
  const remove = async () => {
    if (!confirm('Delete this post? It disappears for everyone once synced.')) return;
    try {
      await api.deletePost(post.post_id);
      feed.value = feed.value.filter((p) => p.post_id !== post.post_id);
    } catch (e) {
      showError(e);
    }
  };
  return (
    <article class="card post" tabIndex={0} data-post-card data-post-id={post.post_id} aria-label={`Post by ${name}`}>
      <header>
        <button class="author" onClick={() => navigate({ view: 'profile', uid: post.author })}>
          <Avatar name={name} uid={post.author} image={post.author_avatar} />
          <span class="author-name">{name}</span>
          {online.value.has(post.author) && <span class="online-dot" title="Online" aria-label="online" />}
        </button>
        <time dateTime={new Date(post.created_at).toISOString()} title={fullTime(post.created_at)}>
          {relativeTime(post.created_at, now)}
        </time>
      </header>
      {post.text && <p class="post-text">{post.text}</p>}
      {post.media.length > 0 && (
        <div class={`media media-${Math.min(post.media.length, 4)}`}>
          {post.media.map((h) => (
            <CachedImage key={h} hash={h} alt="Attached image" loading="lazy" fallback={<span class="image-missing">Image on its way…</span>} />
          ))}
        </div>
      )}
      <footer class="actions">
        <button
          class={post.liked_by_me ? 'action liked' : 'action'}
          aria-pressed={post.liked_by_me}
          aria-label={post.liked_by_me ? 'Unlike' : 'Like'}
          onClick={toggleLike}
          data-testid="like"
        >
          <Icon name="heart" filled={post.liked_by_me} /> <span data-testid="like-count">{post.likes}</span>
        </button>
        <button class="action" aria-label={`Comments (${post.comments})`} onClick={() => (openThread.value = post.post_id)} data-testid="comments">
          <Icon name="comment" /> <span data-testid="comment-count">{post.comments}</span>
        </button>
        {post.author === me && (
          <button class="action subtle" aria-label="Delete post" onClick={remove}>
            Delete
          </button>
        )}
      </footer>
    </article>
  );
}
