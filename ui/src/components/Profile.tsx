import { useEffect, useRef, useState } from 'preact/hooks';
import { api, type ProfilePage } from '../api';
import { displayName } from '../lib/notifications';
import { online, refreshFeed, refreshSession, revision, session, showError, toast, unread } from '../store';
import { Avatar, PostCard } from './PostCard';
import { toBase64 } from '../lib/files';

export function Profile({ uid }: { uid: string | null }) {
  const [page, setPage] = useState<ProfilePage | null>(null);
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState('');
  const [bio, setBio] = useState('');
  const avatarPicker = useRef<HTMLInputElement>(null);

  const load = () => api.profile(uid).then(setPage).catch(showError);
  useEffect(() => {
    void load();
  }, [uid, revision.value]);

  if (!page) return <div class="page muted">Loading…</div>;
  const p = page.profile;
  const mine = p.uid === session.value?.me?.uid;
  const shown = displayName(p.name, p.uid);

  const toggleFollow = async () => {
    try {
      if (p.followed_by_me) await api.unfollow(p.uid);
      else await api.follow(p.uid);
      await load();
      void refreshFeed();
    } catch (e) {
      showError(e);
    }
  };

  const toggleBlock = async () => {
    try {
      if (p.blocked_by_me) {
        unread.value = await api.unblock(p.uid);
        toast(`${shown} is unblocked`, 'Their likes, comments and follows show again. Follow them again if you like.');
      } else {
        unread.value = await api.block(p.uid);
        toast(`${shown} is blocked`, 'They are unfollowed; their likes, comments and follows no longer notify you or show.');
      }
      await load();
      void refreshFeed();
    } catch (e) {
      showError(e);
    }
  };

  const save = async (e: Event) => {
    e.preventDefault();
    try {
      await api.updateProfile(name, bio);
      setEditing(false);
      await load();
      await refreshSession();
      toast('Profile saved', 'Your followers see it after the next sync.');
    } catch (err) {
      showError(err);
    }
  };

  const changeAvatar = async (file: File | null) => {
    try {
      await api.setAvatar(file ? await toBase64(file) : null);
      await load();
      void refreshFeed();
      toast(file ? 'Photo changed' : 'Photo removed', 'Your followers see it after the next sync.');
    } catch (err) {
      showError(err);
    }
  };

  const now = Date.now();
  return (
    <div class="page">
      <div class="column">
        <section class="card profile-head" aria-label="Profile">
          <Avatar name={shown} uid={p.uid} image={p.avatar} size={72} />
          <div class="profile-main">
            <h1>
              {shown}
              {(page.online || online.value.has(p.uid)) && !mine && <span class="online-dot big" title="Online" aria-label="online" />}
            </h1>
            <button
              type="button"
              class="uid"
              title={`User id ${p.uid} (click to copy)`}
              aria-label="Copy user id"
              onClick={() =>
                navigator.clipboard.writeText(p.uid).then(
                  () => toast('Copied', 'The user id is on the clipboard.'),
                  () => toast('Could not copy', p.uid, 'error'),
                )
              }
            >
              {p.uid.slice(0, 10)}…{p.uid.slice(-6)}
            </button>
            {p.bio && <p>{p.bio}</p>}
            <p class="counts">
              <span>
                <strong>{p.posts}</strong> posts
              </span>
              <span>
                <strong>{p.followers}</strong> followers
              </span>
              <span>
                <strong>{p.following}</strong> following
              </span>
              {!page.counts_from_relay && (
                <span class="muted" title="The relay was not reached: these counts are what this device has synced">
                  as known on this device
                </span>
              )}
              {p.follows_me && !mine && <span class="chip">Follows you</span>}
            </p>
          </div>
          {mine ? (
            <button
              onClick={() => {
                setName(p.name ?? '');
                setBio(p.bio);
                setEditing(true);
              }}
            >
              Edit profile
            </button>
          ) : (
            <div class="profile-actions">
              {!p.blocked_by_me && (
                <button class={p.followed_by_me ? '' : 'primary'} onClick={toggleFollow} data-testid="follow">
                  {p.followed_by_me ? 'Unfollow' : 'Follow'}
                </button>
              )}
              <button class="subtle danger" onClick={toggleBlock} data-testid="block">
                {p.blocked_by_me ? 'Unblock' : 'Block'}
              </button>
            </div>
          )}
        </section>
        {editing && (
          <form class="card edit-profile" onSubmit={save}>
            <label>
              Display name
              <input value={name} maxLength={64} required onInput={(e) => setName(e.currentTarget.value)} />
            </label>
            <label>
              Bio
              <textarea value={bio} maxLength={500} rows={3} onInput={(e) => setBio(e.currentTarget.value)} />
            </label>
            <div class="row avatar-row">
              <Avatar name={shown} uid={p.uid} image={p.avatar} size={48} />
              <input
                ref={avatarPicker}
                type="file"
                accept="image/png,image/jpeg,image/gif,image/webp"
                hidden
                data-testid="avatar-input"
                onChange={(e) => {
                  const file = e.currentTarget.files?.[0] ?? null;
                  e.currentTarget.value = '';
                  if (file) void changeAvatar(file);
                }}
              />
              <button type="button" onClick={() => avatarPicker.current?.click()}>
                {p.avatar ? 'Change photo' : 'Add a photo'}
              </button>
              {p.avatar && (
                <button type="button" class="subtle" onClick={() => void changeAvatar(null)}>
                  Remove photo
                </button>
              )}
            </div>
            <div class="row">
              <button type="button" onClick={() => setEditing(false)}>
                Cancel
              </button>
              <button class="primary" type="submit">
                Save
              </button>
            </div>
          </form>
        )}
        <h2 class="section-title">Posts</h2>
        {page.posts.length === 0 && <p class="empty">No posts{mine ? ' yet' : ' here yet: they arrive once you follow and sync'}.</p>}
        <div class="list">
          {page.posts.map((post) => (
            <PostCard key={post.post_id} post={post} now={now} />
          ))}
        </div>
      </div>
    </div>
  );
}
