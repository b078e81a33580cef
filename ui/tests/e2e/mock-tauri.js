// Injected before the app loads (Playwright addInitScript): stands in for the Tauri IPC with
// an in-memory backend, so the built UI runs in a plain browser. `window.__mock` lets a test
// emit events (as the sync engine would) and read what the UI asked for.
(() => {
  const ME = 'm'.repeat(52);
  const BEN = 'b'.repeat(52);
  const CARA = 'c'.repeat(52);
  const start = Date.now();
  const state = {
    me: window.__MOCK_NEW_USER__ ? null : { uid: ME, name: 'Ana' },
    relay: 'ws://127.0.0.1:8787',
    status: { status: 'online', waiting: 0, reason: null },
    profiles: { [ME]: { name: 'Ana', bio: 'Photos of harbours' }, [BEN]: { name: 'Ben', bio: '' }, [CARA]: { name: 'Cara', bio: '' } },
    follows: new Set([BEN]),
    blocked: new Set(),
    muted: new Set(),
    followers: { [ME]: new Set([BEN]) },
    posts: [],
    comments: {},
    notifications: [],
    settings: { notify_likes: true, notify_comments: true, notify_follows: true, sound: true, do_not_disturb: false, theme: 'system', launch_at_login: false },
    calls: [],
    seq: 0,
  };
  const count = Number(window.__MOCK_POSTS__ ?? 3);
  for (let i = 0; i < count; i++) {
    const author = i % 3 === 0 ? ME : BEN;
    state.posts.push({ post_id: `${author}-p${i}`, author, text: i === 0 ? 'Sunset at the pier' : `Post number ${i}`, media: [], created_at: start - i * 60_000, likes: new Set(), comments: 0 });
  }
  state.notifications.push({ id: 'n1', kind: 'like', actor: BEN, post_id: `${ME}-p0`, comment_id: null, created_at: start - 5000, read: false });
  state.notifications.push({ id: 'n2', kind: 'follow', actor: CARA, post_id: null, comment_id: null, created_at: start - 9000, read: true });

  const name = (uid) => state.profiles[uid]?.name ?? null;
  const avatar = (uid) => state.profiles[uid]?.avatar ?? null;
  const item = (p) => ({
    post_id: p.post_id, author: p.author, author_name: name(p.author), author_avatar: avatar(p.author), text: p.text, media: p.media, created_at: p.created_at,
    likes: p.likes.size, liked_by_me: p.likes.has(ME), comments: (state.comments[p.post_id] ?? []).length,
  });
  const note = (n) => ({ ...n, actor_name: name(n.actor) });
  const visibleNotes = () => state.notifications.filter((n) => !state.blocked.has(n.actor));
  const unread = () => visibleNotes().filter((n) => !n.read).length;
  const feedPosts = () => state.posts.filter((p) => (p.author === ME || state.follows.has(p.author)) && !state.blocked.has(p.author)).sort((a, b) => b.created_at - a.created_at || (a.post_id < b.post_id ? 1 : -1));
  const fail = (code, message) => {
    throw { code, message };
  };
  const find = (id) => state.posts.find((p) => p.post_id === id) ?? fail('unknown_post', `post ${id} is not in this profile`);
  const session = () => ({ me: state.me, relay: state.relay, status: state.status, unread: unread() });
  const thread = (id) => ({
    post: item(find(id)),
    comments: (state.comments[id] ?? []).filter((c) => !state.blocked.has(c.author)).map((c) => ({ ...c, author_name: name(c.author), author_avatar: avatar(c.author) })),
    muted: state.muted.has(id),
  });
  const profilePage = (uid) => ({
    profile: {
      uid, name: name(uid), bio: state.profiles[uid]?.bio ?? '', avatar: avatar(uid),
      posts: state.posts.filter((p) => p.author === uid).length,
      followers: (state.followers[uid] ?? new Set()).size + (uid !== ME && state.follows.has(uid) ? 1 : 0),
      following: uid === ME ? state.follows.size : 0,
      followed_by_me: state.follows.has(uid), follows_me: uid === BEN, blocked_by_me: state.blocked.has(uid),
    },
    posts: state.posts.filter((p) => p.author === uid && !state.blocked.has(uid)).map(item),
    online: uid === BEN,
    counts_from_relay: true,
  });

  const commands = {
    session: async () => {
      // The answer is what the shell knew when asked, however late it arrives.
      const snapshot = session();
      if (state.sessionDelay) await new Promise((r) => setTimeout(r, state.sessionDelay));
      return snapshot;
    },
    first_paint: () => undefined,
    create_profile: ({ name: n, relay }) => {
      if (!n.trim()) fail('text_length', 'the name is empty: write something first');
      state.me = { uid: ME, name: n };
      state.profiles[ME].name = n;
      state.relay = relay;
      return session();
    },
    feed: ({ after, limit }) => {
      const all = feedPosts();
      let startAt = 0;
      if (after) startAt = all.findIndex((p) => p.post_id === after.post_id) + 1;
      const page = all.slice(startAt, startAt + limit);
      const more = startAt + limit < all.length;
      const last = page[page.length - 1];
      return { posts: page.map(item), next: more && last ? { created_at: last.created_at, post_id: last.post_id } : null };
    },
    create_post: ({ text, images }) => {
      if (!text.trim() && images.length === 0) fail('text_length', 'the post is empty: write something first');
      const p = { post_id: `${ME}-new${++state.seq}`, author: ME, text, media: images.map((_, i) => `img${i}`), created_at: Date.now(), likes: new Set(), comments: 0 };
      state.posts.unshift(p);
      return p.post_id;
    },
    delete_post: ({ postId }) => {
      state.posts = state.posts.filter((p) => p.post_id !== postId);
    },
    like: ({ postId }) => (find(postId).likes.add(ME), item(find(postId))),
    unlike: ({ postId }) => (find(postId).likes.delete(ME), item(find(postId))),
    thread: ({ postId }) => thread(postId),
    comment: ({ postId, text }) => {
      find(postId);
      (state.comments[postId] ??= []).push({ comment_id: `${ME}-c${++state.seq}`, author: ME, text, created_at: Date.now() });
      return thread(postId);
    },
    delete_comment: ({ commentId }) => {
      for (const id in state.comments) state.comments[id] = state.comments[id].filter((c) => c.comment_id !== commentId);
    },
    profile: ({ uid }) => profilePage(uid ?? ME),
    update_profile: ({ name: n, bio }) => {
      state.profiles[ME] = { ...state.profiles[ME], name: n, bio };
      state.me = { uid: ME, name: n };
    },
    set_avatar: ({ image }) => {
      if (image !== null && !atob(image).startsWith('\x89PNG')) fail('not_an_image', 'avatar image is not a PNG, JPEG, GIF or WebP image: choose a picture');
      state.profiles[ME].avatar = image === null ? null : `avatar${++state.seq}`;
      return state.profiles[ME].avatar;
    },
    follow: ({ uid }) => void state.follows.add(uid),
    unfollow: ({ uid }) => void state.follows.delete(uid),
    restore_profile: ({ backup, passphrase, relay }) => {
      if (!backup.includes('BEGIN ENCRYPTED PRIVATE KEY')) fail('bad_key_backup', 'this is not a key backup (no PEM): choose the .pem file exported from your other device');
      if (passphrase !== 'harbour lights') fail('wrong_passphrase', 'the passphrase does not open this key backup: type the one chosen when it was exported');
      state.me = { uid: ME, name: 'Ana' };
      state.relay = relay;
      return session();
    },
    export_key: ({ passphrase }) => {
      if (passphrase.length < 8) fail('weak_passphrase', `the passphrase is ${passphrase.length} characters; use at least 8 to protect your key`);
      return '/home/ana/Downloads/social-sync-key-mmmmmmmm.pem';
    },
    block: ({ uid }) => (uid === ME && fail('block_self', 'you cannot block yourself'), state.follows.delete(uid), state.blocked.add(uid), unread()),
    unblock: ({ uid }) => (state.blocked.delete(uid), unread()),
    blocked: () => [...state.blocked].map((uid) => ({ uid, name: name(uid) })),
    set_post_muted: ({ postId, muted }) => (find(postId), muted ? state.muted.add(postId) : state.muted.delete(postId), thread(postId)),
    find_people: ({ name: q }) => {
      const query = q.replace(/^@/, '').toLowerCase();
      return Object.entries(state.profiles).filter(([uid, p]) => uid !== ME && p.name.toLowerCase().startsWith(query)).map(([uid, p]) => ({ uid, name: p.name, avatar: p.avatar ?? null, followed_by_me: state.follows.has(uid) }));
    },
    search: ({ text }) => state.posts.filter((p) => p.text.toLowerCase().includes(text.toLowerCase())).map(item),
    notifications: ({ unreadOnly }) => visibleNotes().filter((n) => !unreadOnly || !n.read).map(note),
    mark_read: ({ id }) => {
      const n = state.notifications.find((x) => x.id === id) ?? fail('unknown_notification', `there is no notification ${id}`);
      n.read = true;
      return state.notifications.filter((x) => !x.read).length;
    },
    mark_all_read: () => (state.notifications.forEach((n) => (n.read = true)), 0),
    get_settings: () => ({ ...state.settings }),
    set_settings: ({ settings }) => ((state.settings = { ...settings }), { ...state.settings }),
    set_relay: ({ url }) => {
      if (!/^wss?:\/\/./.test(url)) fail('bad_relay_url', `'${url}' is not a relay address: use ws://HOST:PORT or wss://HOST`);
      state.relay = url;
      return session();
    },
    online: () => [[BEN, ['d1']]],
  };

  const callbacks = new Map();
  const listeners = new Map();
  let nextId = 1;
  window.__TAURI_INTERNALS__ = {
    metadata: { currentWindow: { label: 'main' }, currentWebview: { windowLabel: 'main', label: 'main' } },
    transformCallback(cb, once) {
      const id = nextId++;
      callbacks.set(id, (data) => {
        if (once) callbacks.delete(id);
        cb && cb(data);
      });
      return id;
    },
    unregisterCallback: (id) => callbacks.delete(id),
    // The shell serves cached images at ssimg://; here the test's route handler does.
    convertFileSrc: (path) => `/__mock_images/${path}`,
    async invoke(cmd, args) {
      state.calls.push({ cmd, args });
      if (cmd === 'plugin:event|listen') {
        (listeners.get(args.event) ?? listeners.set(args.event, []).get(args.event)).push(args.handler);
        return args.handler;
      }
      if (cmd === 'plugin:event|unlisten') return null;
      const handler = commands[cmd];
      if (!handler) throw { code: 'unknown_command', message: `no mock for ${cmd}` };
      return structuredClone(await handler(args ?? {}));
    },
  };
  window.__TAURI_EVENT_PLUGIN_INTERNALS__ = { unregisterListener: () => undefined };
  window.__mock = {
    state,
    ids: { ME, BEN, CARA },
    emit(event, payload) {
      for (const h of listeners.get(event) ?? []) callbacks.get(h)?.({ event, id: h, payload });
    },
    /** Ben likes a post of Ana's, as a sync would deliver it. */
    benLikes(postId) {
      find(postId).likes.add(BEN);
      const n = { id: `like-${postId}`, kind: 'like', actor: BEN, post_id: postId, comment_id: null, created_at: Date.now(), read: false };
      state.notifications.unshift(n);
      this.emit('sync-event', { event: 'thread_changed', post_id: postId });
      this.emit('sync-event', { event: 'notification', notification: note(n) });
    },
    calls: (cmd) => state.calls.filter((c) => c.cmd === cmd),
  };
})();
