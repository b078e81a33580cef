// Click to notification, end to end, in the real app (figures printed, nothing asserted):
// two instances (Ana and Ben) on a real relay under Xvfb, each in its own D-Bus session
// with the stand-in notification server (notify_server.py, which logs the time of every
// Notify call). Ben clicks the like button of one of Ana's posts in his window; the time
// of the click (taken in Ben's page, just before the click) to the `Notify` call on Ana's
// desktop is one sample. Likes go one at a time, 1 s apart, so each is the first of its
// burst (raised at once, not folded into a previous one). Run by scripts/bench-notify.
//
// Env: APP_BIN, RELAY_BIN, TAURI_DRIVER, LIKES (default 50).

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Session, sleep } from './webdriver.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const { APP_BIN: APP, RELAY_BIN: RELAY, TAURI_DRIVER: DRIVER = 'tauri-driver' } = process.env;
const LIKES = Number(process.env.LIKES ?? 50);
const work = mkdtempSync(join(tmpdir(), 'social-sync-notify-latency-'));
const children = [];
const run = (cmd, args, env = {}) => {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, NO_AT_BRIDGE: '1', ...env } });
  children.push(child);
  return child;
};
const killAll = () => children.forEach((c) => { try { process.kill(-c.pid, 'SIGKILL'); } catch { /* gone */ } });
process.on('exit', killAll);
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];
const invoke = (app, command, args = {}) =>
  app.session.script(`return window.__TAURI_INTERNALS__.invoke(arguments[0], arguments[1])`, [command, args]);

async function waitUntil(what, fn, timeout = 30000) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    const value = await fn();
    if (value) return value;
    await sleep(50);
  }
  throw new Error(`timed out: ${what}`);
}

function readLog(path) {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

const relay = run(RELAY, ['--listen', '127.0.0.1:0', '--data', join(work, 'relay'), '--log', 'warn']);
const url = await new Promise((resolve) => {
  let buf = '';
  relay.stdout.on('data', (d) => {
    buf += d;
    const m = buf.match(/listening on (\S+)/);
    if (m) resolve(`ws://${m[1]}`);
  });
});

async function startApp(name, port) {
  const profile = join(work, `profile-${name}`);
  const log = join(work, `notifications-${name}.jsonl`);
  const script = `/usr/bin/python3 '${here}/notify_server.py' '${log}' sound &
    for i in $(seq 100); do [ -f '${log}' ] && break; sleep 0.05; done
    exec '${DRIVER}' --port ${port} --native-port ${port + 1}`;
  run('dbus-run-session', ['--', 'bash', '-c', script], { SOCIAL_SYNC_PROFILE: profile, SOCIAL_SYNC_LOG: 'warn' });
  for (let i = 0; i < 200; i++) {
    try { await fetch(`http://127.0.0.1:${port}/status`); break; } catch { await sleep(100); }
  }
  const session = await Session.start(port, APP);
  await session.waitFor('#app > *');
  const app = { name, session, profile, log };
  const made = await invoke(app, 'create_profile', { name, relay: url });
  app.uid = made.me.uid;
  // The page learns of the new profile as on a start of the app.
  await session.script('location.reload()');
  await session.waitFor('[data-testid=status]', { text: 'Online', timeout: 60000 });
  return app;
}

/** Gives `app`'s window the keyboard focus: the other one then raises OS notifications. */
function focus(app) {
  const xdo = (...args) => execFileSync('xdotool', args, { encoding: 'utf8' }).trim();
  const windows = xdo('search', '--onlyvisible', '--name', '^Social Sync$').split('\n').filter(Boolean);
  const mine = windows.find((w) => readFileSync(`/proc/${xdo('getwindowpid', w)}/environ`, 'utf8').split('\0').includes(`SOCIAL_SYNC_PROFILE=${app.profile}`));
  xdo('windowfocus', '--sync', mine);
}

const ana = await startApp('Ana', 4470);
const ben = await startApp('Ben', 4480);
await invoke(ben, 'follow', { uid: ana.uid });
const posts = [];
for (let i = 0; i < LIKES; i++) posts.push(await invoke(ana, 'create_post', { text: `Post ${i + 1} to like`, images: [] }));
await waitUntil(`Ben's profile holds Ana's ${LIKES} posts`, async () => {
  const page = await invoke(ben, 'feed', { after: null, limit: 100 });
  return posts.every((id) => page.posts.some((p) => p.post_id === id));
}, 120000);
// A fresh page shows them (as a start of the app would).
await ben.session.script('location.reload()');
await waitUntil("Ben's feed shows Ana's posts", () =>
  ben.session.script(`return !!document.querySelector('[data-post-id] [data-testid=like]')`), 60000);
focus(ben);
await sleep(2000);

const samples = [];
for (const post of posts) {
  // Further pages load as the feed scrolls down.
  await waitUntil('the post in Ben\'s feed', () => ben.session.script(
    `if (document.querySelector('[data-post-id="' + arguments[0] + '"] [data-testid=like]')) return true;
     const cards = document.querySelectorAll('[data-post-card]'); cards[cards.length - 1]?.scrollIntoView(); return false;`, [post]), 20000);
  await sleep(300);
  const before = readLog(ana.log).length;
  const clicked = await ben.session.script(
    `const b = document.querySelector('[data-post-id="' + arguments[0] + '"] [data-testid=like]');
     b.scrollIntoView({ block: 'center' }); const t = performance.timeOrigin + performance.now(); b.click(); return t;`,
    [post],
  );
  const note = await waitUntil(`like ${samples.length + 1} raised a notification on Ana's desktop`, () => readLog(ana.log)[before], 20000)
    .catch(async (e) => {
      const page = await invoke(ana, 'notifications', { unreadOnly: false, limit: 5 }).catch((err) => String(err));
      const liked = await invoke(ben, 'feed', { after: null, limit: 100 }).then((p) => p.posts.find((x) => x.post_id === post)).catch((err) => String(err));
      console.error(e.message, JSON.stringify({ clicked, log: readLog(ana.log).slice(-3), page, liked }, null, 1));
      throw e;
    });
  samples.push(note.at - clicked);
  await sleep(1000);
}
const ms = (n) => `${n.toFixed(1)} ms`;
console.log(`click in Ben's window to the Notify call on Ana's desktop, ${samples.length} likes: p50 ${ms(pct(samples, 50))}, p99 ${ms(pct(samples, 99))}, min ${ms(Math.min(...samples))}, max ${ms(Math.max(...samples))}`);
await ana.session.close();
await ben.session.close();
process.exit(0);
