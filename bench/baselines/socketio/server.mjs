// Baseline 1 of the side-by-side benchmark: the seed's design, a Socket.IO server with
// per-user rooms and @socket.io/redis-adapter over a local Redis (see README.md).
//
//   node server.mjs --port 0 --redis redis://127.0.0.1:6379
//
// Prints `listening on 127.0.0.1:PORT` as its first stdout line, nothing else on stdout.

import http from 'node:http';
import { parseArgs } from 'node:util';

import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import { Server } from 'socket.io';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    redis: { type: 'string', default: 'redis://127.0.0.1:6379' },
  },
});

// Three Redis connections: commands (the shared state the seed keeps in MongoDB), and the
// adapter's publisher and subscriber.
const redis = createClient({ url: args.redis });
const pub = createClient({ url: args.redis });
const sub = pub.duplicate();
for (const client of [redis, pub, sub]) {
  client.on('error', (err) => console.error('redis:', err.message));
}
await Promise.all([redis.connect(), pub.connect(), sub.connect()]);

// Presence on this node: userId -> sockets open (the seed's `activeUsers` Map).
const presence = new Map();

const httpServer = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/stats') {
    const body = JSON.stringify({ sockets: io.of('/').sockets.size, presence: presence.size });
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
    return;
  }
  res.writeHead(404);
  res.end();
});

const io = new Server(httpServer, {
  transports: ['websocket'],
  perMessageDeflate: false,
  serveClient: false,
  adapter: createAdapter(pub, sub),
});

const now = () => new Date().toISOString();
const userRoom = (userId) => `user:${userId}`;
const postRoom = (postId) => `post:${postId}`;
const ok = (ack, value = { ok: true }) => {
  if (typeof ack === 'function') ack(value);
};
const fail = (ack, err) => {
  if (typeof ack === 'function') ack({ ok: false, error: String(err?.message ?? err) });
};

// `user-status` to the rooms of the people who follow `userId`.
async function announce(userId, online) {
  const followers = await redis.sMembers(`followers:${userId}`);
  if (followers.length > 0) {
    io.to(followers.map(userRoom)).emit('user-status', { userId, online, timestamp: now() });
  }
}

// The seed's client emits `user-online` with its userId right after connecting; here the
// userId comes in the CONNECT packet's auth payload, so presence is set in one round trip.
io.use((socket, next) => {
  const userId = socket.handshake.auth?.userId;
  if (typeof userId !== 'string' || userId.length === 0) {
    next(new Error('auth.userId required'));
    return;
  }
  socket.data.userId = userId;
  next();
});

io.on('connection', (socket) => {
  const me = socket.data.userId;
  socket.join(userRoom(me));
  const open = (presence.get(me) ?? 0) + 1;
  presence.set(me, open);
  if (open === 1) announce(me, true).catch((err) => console.error('user-status:', err.message));

  socket.on('disconnect', () => {
    const left = (presence.get(me) ?? 1) - 1;
    if (left > 0) {
      presence.set(me, left);
      return;
    }
    presence.delete(me);
    announce(me, false).catch((err) => console.error('user-status:', err.message));
  });

  // Kept for the seed's clients: presence is already set from the handshake.
  socket.on('user-online', (_userId, ack) => ok(ack));

  // {userId: target}: `me` follows `target`.
  socket.on('user-followed', async (data, ack) => {
    try {
      const target = String(data?.userId ?? '');
      if (!target) throw new Error('userId required');
      await redis.sAdd(`followers:${target}`, me);
      io.to(userRoom(target)).emit('user-followed', {
        userId: target,
        followedBy: me,
        timestamp: now(),
      });
      ok(ack);
    } catch (err) {
      fail(ack, err);
    }
  });

  // {postId, caption, createdBy, createdByUsername, mediaType, timestamp}: to the rooms of
  // the author's followers (the author is the socket's user, whatever the payload says).
  socket.on('new-post', async (post, ack) => {
    try {
      const followers = await redis.sMembers(`followers:${me}`);
      if (followers.length > 0) io.to(followers.map(userRoom)).emit('new-post', post);
      ok(ack, { ok: true, followers: followers.length });
    } catch (err) {
      fail(ack, err);
    }
  });

  // {postId}: watch a post's likes and comments (a per-post room; the seed emits them to
  // everyone).
  socket.on('view-post', async (data, ack) => {
    try {
      const postId = String(data?.postId ?? '');
      if (!postId) throw new Error('postId required');
      await socket.join(postRoom(postId));
      ok(ack);
    } catch (err) {
      fail(ack, err);
    }
  });

  // {postId, liked}: likes are a set per post, so a like counts once however often it is
  // sent; the count sent out is the set's size.
  socket.on('post-liked', async (data, ack) => {
    try {
      const postId = String(data?.postId ?? '');
      if (!postId) throw new Error('postId required');
      const liked = data?.liked !== false;
      const key = `likes:${postId}`;
      if (liked) await redis.sAdd(key, me);
      else await redis.sRem(key, me);
      const totalLikes = await redis.sCard(key);
      io.to(postRoom(postId)).emit('post-liked', {
        postId,
        likedBy: me,
        likedByUsername: me,
        totalLikes,
        liked,
        timestamp: now(),
      });
      ok(ack, { ok: true, totalLikes });
    } catch (err) {
      fail(ack, err);
    }
  });

  // {postId, commentText}
  socket.on('comment-added', async (data, ack) => {
    try {
      const postId = String(data?.postId ?? '');
      if (!postId) throw new Error('postId required');
      const totalComments = await redis.incr(`comments:${postId}`);
      io.to(postRoom(postId)).emit('comment-added', {
        postId,
        commentedBy: me,
        commentedByUsername: me,
        commentText: String(data?.commentText ?? ''),
        totalComments,
        timestamp: now(),
      });
      ok(ack, { ok: true, totalComments });
    } catch (err) {
      fail(ack, err);
    }
  });
});

httpServer.listen(Number(args.port), '127.0.0.1', () => {
  const { port } = httpServer.address();
  console.log(`listening on 127.0.0.1:${port}`);
});

const stop = () => {
  io.close();
  Promise.allSettled([redis.quit(), pub.quit(), sub.quit()]).finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
