import { Icon } from './Icon';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, type ThreadView } from '../api';
import { displayName } from '../lib/notifications';
import { fullTime, relativeTime } from '../lib/time';
import { openThread, replacePost, revision, session, showError, toast } from '../store';
import { Avatar, PostCard } from './PostCard';

/** A post with its comments, in a side panel that updates live. */
export function Thread({ postId }: { postId: string }) {
  const [thread, setThread] = useState<ThreadView | null>(null);
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const panel = useRef<HTMLElement>(null);
  const me = session.value?.me?.uid;

  useEffect(() => {
    api
      .thread(postId)
      .then(setThread)
      .catch((e) => {
        showError(e);
        openThread.value = null;
      });
  }, [postId, revision.value]);
  useEffect(() => panel.current?.focus(), []);

  const send = async (e: Event) => {
    e.preventDefault();
    if (!text.trim()) return;
    setBusy(true);
    try {
      const t = await api.comment(postId, text);
      setThread(t);
      replacePost(t.post);
      setText('');
    } catch (err) {
      showError(err);
    } finally {
      setBusy(false);
    }
  };

  const remove = async (commentId: string) => {
    try {
      await api.deleteComment(commentId);
      const t = await api.thread(postId);
      setThread(t);
      replacePost(t.post);
    } catch (err) {
      showError(err);
    }
  };

  const toggleMute = async () => {
    if (!thread) return;
    try {
      const t = await api.setPostMuted(postId, !thread.muted);
      setThread(t);
      toast(t.muted ? 'Notifications muted' : 'Notifications on', t.muted ? 'Likes and comments on this post no longer notify you.' : 'Likes and comments on this post notify you again.');
    } catch (err) {
      showError(err);
    }
  };

  const now = Date.now();
  return (
    <section class="thread-panel" role="dialog" aria-modal="false" aria-label="Comments" tabIndex={-1} ref={panel} data-testid="thread">
      <div class="thread-head">
        <h2>Comments</h2>
        {thread && thread.post.author === me && (
          <button class="subtle small" onClick={toggleMute} aria-pressed={thread.muted} data-testid="mute">
            <Icon name="bell" size={14} /> {thread.muted ? 'Unmute notifications' : 'Mute notifications'}
          </button>
        )}
        <button class="subtle" aria-label="Close comments" onClick={() => (openThread.value = null)}>
          <Icon name="close" size={16} />
        </button>
      </div>
      {thread ? (
        <>
          <PostCard post={thread.post} now={now} />
          <ol class="comments" aria-label="Comments">
            {thread.comments.map((c) => {
              const name = displayName(c.author_name, c.author);
              return (
                <li key={c.comment_id} class="comment" data-testid="comment">
                  <Avatar name={name} uid={c.author} image={c.author_avatar} size={30} />
                  <div>
                    <div class="comment-head">
                      <strong>{name}</strong>
                      <time title={fullTime(c.created_at)}>{relativeTime(c.created_at, now)}</time>
                      {c.author === me && (
                        <button class="subtle small" aria-label="Delete comment" onClick={() => remove(c.comment_id)}>
                          Delete
                        </button>
                      )}
                    </div>
                    <p class="comment-text">{c.text}</p>
                  </div>
                </li>
              );
            })}
            {thread.comments.length === 0 && <li class="muted">No comments yet.</li>}
          </ol>
          <form class="comment-form" onSubmit={send}>
            <label class="sr-only" for="comment-text">
              Write a comment
            </label>
            <input id="comment-text" placeholder="Write a comment…" value={text} maxLength={2000} onInput={(e) => setText(e.currentTarget.value)} />
            <button class="primary" type="submit" disabled={busy || !text.trim()}>
              Send
            </button>
          </form>
        </>
      ) : (
        <p class="muted">Loading…</p>
      )}
    </section>
  );
}
