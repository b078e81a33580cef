// The real desktop app, twice (Ana and Ben, two profiles), against a real relay, under Xvfb:
// each instance runs in its own private D-Bus session with a stand-in notification server
// that records every Notify call. Driven through tauri-driver + WebKitWebDriver.
//
// Needs: DISPLAY (run under xvfb-run), and the env vars APP_BIN, RELAY_BIN, TAURI_DRIVER.
// SCREENSHOTS_DIR, when set, receives a screenshot of every main screen.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Session, sleep } from './webdriver.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const APP = process.env.APP_BIN;
const RELAY = process.env.RELAY_BIN;
const DRIVER = process.env.TAURI_DRIVER ?? 'tauri-driver';
const SHOTS = process.env.SCREENSHOTS_DIR;
const work = mkdtempSync(join(tmpdir(), 'social-sync-desktop-'));
const children = [];

/** Each child's stderr, kept whole so that a failure can show what every process said. */
const logs = new Map();

function run(label, cmd, args, options = {}) {
  // Own process group, so teardown kills everything it started (drivers, webviews, servers).
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...options });
  children.push(child);
  const log = logs.get(label) ?? logs.set(label, []).get(label);
  child.stderr.on('data', (d) => {
    log.push(String(d));
    if (process.env.DESKTOP_TEST_VERBOSE) process.stderr.write(d);
  });
  return child;
}

/** The last lines each process wrote to stderr (apps and relay log at info). */
function logTails(lines = 40) {
  return [...logs]
    .map(([label, chunks]) => `--- ${label} ---\n${chunks.join('').replace(/\x1b\[[0-9;]*m/g, '').split('\n').slice(-lines).join('\n')}`)
    .join('\n');
}

function firstLine(child, prefix) {
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      const line = buf.split('\n').find((l) => l.startsWith(prefix));
      if (line) resolve(line.slice(prefix.length).trim());
    });
    child.on('exit', (code) => reject(new Error(`${child.spawnfile} exited (${code}) before printing "${prefix}"`)));
  });
}

class Relay {
  constructor() {
    this.data = join(work, 'relay');
    this.port = 0;
  }
  async start() {
    this.proc = run('relay', RELAY, ['--listen', `127.0.0.1:${this.port}`, '--data', this.data, '--log', 'info']);
    const addr = await firstLine(this.proc, 'listening on ');
    this.port = Number(addr.split(':')[1]);
    this.url = `ws://${addr}`;
  }
  stop() {
    process.kill(-this.proc.pid, 'SIGKILL');
  }
}

/** One app instance: its own profile, D-Bus session, notification log and driver port. */
async function startApp(name, { sound, port }) {
  const profile = join(work, `profile-${name}`);
  const log = join(work, `notifications-${name}.jsonl`);
  const script = `/usr/bin/python3 '${here}/notify_server.py' '${log}' ${sound ? 'sound' : 'nosound'} &
    for i in $(seq 100); do [ -f '${log}' ] && break; sleep 0.05; done
    exec '${DRIVER}' --port ${port} --native-port ${port + 1}`;
  run(name, 'dbus-run-session', ['--', 'bash', '-c', script], {
    env: { ...process.env, SOCIAL_SYNC_PROFILE: profile, NO_AT_BRIDGE: '1', SOCIAL_SYNC_LOG: 'info' },
  });
  await waitForPort(port);
  const session = await Session.start(port, APP);
  await session.waitFor('#app > *');
  return { name, session, log, profile, notifications: () => readLog(log), click: (id) => writeFileSync(`${log}.click`, String(id)) };
}

/**
 * Gives `app`'s window the keyboard focus (xdotool; there is no window manager under Xvfb).
 * The app shows an in-app toast instead of an OS notification while focused, so the
 * scenario decides who has focus. The window is told apart by the profile in its
 * process's environment.
 */
function focus(app) {
  const xdo = (...args) => execFileSync('xdotool', args, { encoding: 'utf8' }).trim();
  const windows = xdo('search', '--onlyvisible', '--name', '^Social Sync$').split('\n').filter(Boolean);
  const mine = windows.find((w) => {
    const pid = xdo('getwindowpid', w);
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`SOCIAL_SYNC_PROFILE=${app.profile}`);
  });
  assert.ok(mine, `no window for ${app.name} among ${windows}`);
  xdo('windowfocus', '--sync', mine);
}

/** Whether `app`'s desktop showed a notification for `event` (alone or in a group). */
function hasNote(app, event) {
  return app.notifications().some((n) => n.body.split('\n').includes(event));
}

/**
 * What `app`'s desktop shows: each notification as last raised or replaced. The first of a
 * burst is raised at once; the ones that follow closely replace it (same id, `replaces`
 * set) with the burst's summary.
 */
function shown(app) {
  const byId = new Map();
  for (const n of app.notifications()) byId.set(n.id, n);
  return [...byId.values()];
}

function readLog(path) {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

async function waitForPort(port) {
  for (let i = 0; i < 200; i++) {
    try {
      await fetch(`http://127.0.0.1:${port}/status`);
      return;
    } catch {
      await sleep(100);
    }
  }
  throw new Error(`tauri-driver did not listen on ${port}`);
}

async function waitUntil(what, fn, timeout = 30000) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await sleep(200);
  }
  throw new Error(`timed out: ${what} (last: ${JSON.stringify(last)})`);
}

async function shot(app, name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  writeFileSync(join(SHOTS, `${name}.png`), await app.session.screenshot());
}

async function onboard(app, name, relay) {
  const s = app.session;
  await s.waitFor('h1', { text: 'Welcome to Social Sync' });
  await shot(app, 'onboarding');
  await s.type('input[name=name]', name);
  await s.type('input[name=relay]', relay);
  await s.click('button[type=submit]', 'Start');
  const used = await waitUntil(`${name}'s profile is made`, () =>
    s.script(`return window.__TAURI_INTERNALS__.invoke('session').then((s) => (s.me ? s.relay : null))`));
  assert.equal(used, relay, `${name}'s app uses another relay than the one typed`);
  // The first connection of a new profile; generous, since two WebKit instances share 2 cores.
  await s.waitFor('[data-testid=status]', { text: 'Online', timeout: 45000 });
}

const nav = (app, label) => app.session.click('button.nav', label);

let relay;
let ana;
let ben;

before(async () => {
  assert.ok(APP && RELAY, 'set APP_BIN and RELAY_BIN');
  relay = new Relay();
  await relay.start();
  ana = await startApp('ana', { sound: true, port: 4444 });
  ben = await startApp('ben', { sound: false, port: 4450 });
});

after(async () => {
  await ana?.session.close();
  await ben?.session.close();
  for (const c of children) {
    try {
      process.kill(-c.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
});

test('two people on two real app instances: live feed, counts, threads, one notification per event, offline', async () => {
  try {
    await scenario();
  } catch (e) {
    // What each window showed when it failed, to read next to the error.
    for (const app of [ana, ben]) await shot(app, `failure-${app.name}`).catch(() => {});
    for (const app of [ana, ben]) {
      const status = await app.session.script(`return window.__TAURI_INTERNALS__.invoke('session').then((s) => JSON.stringify(s.status))`).catch((err) => String(err));
      console.error(`${app.name}'s connection: ${status}`);
    }
    console.error(logTails());
    throw e;
  }
});

async function scenario() {
  await onboard(ana, 'Ana', relay.url);
  await onboard(ben, 'Ben', relay.url);
  // Ben looks at his window; Ana's desktop shows OS notifications.
  focus(ben);

  // Ben finds Ana by name on the relay and follows her.
  await nav(ben, 'Search');
  await waitUntil('Ana is known to the relay', async () => {
    await ben.session.type('#search-input', 'ana');
    await sleep(600);
    return (await ben.session.text('[data-testid=person-follow]')) === 'Follow';
  });
  await ben.session.click('[data-testid=person-follow]', 'Follow');
  await ben.session.waitFor('[data-testid=person-follow]', { text: 'Unfollow' });
  await waitUntil('Ana is notified of the follow', async () => hasNote(ana, 'Ben followed you'));

  // Ana posts; Ben sees it without any refresh.
  await nav(ana, 'Feed');
  await ana.session.type('#compose-text', 'Hello from the real app');
  await ana.session.click('form.compose button[type=submit]', 'Post');
  await ana.session.waitFor('[data-post-card]', { text: 'Hello from the real app' });
  await nav(ben, 'Feed');
  await ben.session.waitFor('[data-post-card]', { text: 'Hello from the real app' });

  // Ben likes; Ana's count follows live. Each event here comes well after the one before
  // (more than the app's 0.7 s burst gap), so each is raised on its own.
  await sleep(1000);
  await ben.session.click('[data-post-card] [data-testid=like]');
  await ana.session.waitFor('[data-post-card] [data-testid=like-count]', { text: '1' });
  await waitUntil('Ana is notified of the like', async () => hasNote(ana, 'Ben liked your post'));

  // Ben comments; Ana has the thread open and it updates live.
  await ana.session.click('[data-post-card] [data-testid=comments]');
  await ana.session.waitFor('[data-testid=thread]');
  await ben.session.click('[data-post-card] [data-testid=comments]');
  await ben.session.type('#comment-text', 'Looks great!');
  await sleep(1000);
  await ben.session.click('.comment-form button[type=submit]', 'Send');
  await ana.session.waitFor('[data-testid=thread] [data-testid=comment]', { text: 'Looks great!' });
  // The feed card behind the thread counts it too.
  await ana.session.waitFor('[data-testid=feed] [data-post-card] [data-testid=comment-count]', { text: '1' });
  await shot(ana, 'thread');

  // Ana's desktop shows exactly one notification per event (a second apart, so each raised
  // at once on its own, none replaced), each with the sound hint.
  await waitUntil('Ana is notified of the comment', async () => hasNote(ana, 'Ben commented on your post'));
  await sleep(2000);
  const all = shown(ana);
  assert.equal(all.length, 3, JSON.stringify(ana.notifications(), null, 1));
  const bodies = all.map((n) => n.body).sort();
  assert.deepEqual(bodies, ['Ben commented on your post', 'Ben followed you', 'Ben liked your post']);
  for (const n of all) {
    assert.equal(n.app, 'Social Sync');
    assert.equal(n.replaces, 0, JSON.stringify(n));
    assert.equal(n.hints['sound-name'], 'message-new-instant', JSON.stringify(n));
  }
  await ana.session.click('[data-testid=thread] button[aria-label="Close comments"]');

  // A click on the comment's notification brings Ana's app to that post's comments.
  await nav(ana, 'Settings');
  ana.click(all.find((n) => n.body === 'Ben commented on your post').id);
  await ana.session.waitFor('[data-testid=thread] [data-testid=comment]', { text: 'Looks great!' });
  await ana.session.click('[data-testid=thread] button[aria-label="Close comments"]');

  // Ana follows Ben back: Ben's notification server has no "sound" capability, so the app
  // plays its own sound.
  focus(ana);
  await nav(ana, 'Search');
  await waitUntil('Ben is known to the relay', async () => {
    await ana.session.type('#search-input', 'ben');
    await sleep(600);
    return (await ana.session.text('[data-testid=person-follow]')) === 'Follow';
  });
  await ana.session.click('[data-testid=person-follow]', 'Follow');
  await waitUntil('a follow notification for Ben', async () => ben.notifications().some((n) => n.body === 'Ana followed you'));
  const benNote = ben.notifications().find((n) => n.body === 'Ana followed you');
  assert.equal(benNote.hints['sound-name'], undefined, 'no sound hint where the server cannot play it');
  await waitUntil('the app played its own sound', async () => Number(await ben.session.script('return document.body.dataset.soundsPlayed || "0"')) >= 1);

  // With the relay down, Ben comments; when it returns, Ana receives it.
  focus(ben);
  await nav(ana, 'Feed');
  relay.stop();
  await ben.session.waitFor('[data-testid=status]', { text: 'Offline' });
  await ben.session.type('#comment-text', 'Written while the relay was down');
  await ben.session.click('.comment-form button[type=submit]', 'Send');
  await ben.session.waitFor('[data-testid=status]', { text: 'waiting', timeout: 10000 });
  await shot(ben, 'offline');
  await relay.start();
  await ana.session.waitFor('[data-testid=feed] [data-post-card] [data-testid=comment-count]', { text: '2', timeout: 60000 });
  await waitUntil('the offline comment notified Ana', async () => shown(ana).length === 4);

  // Ana picks a profile photo; Ben's app fetches the image from the relay and shows it on
  // her post (served from his local cache through the app's image protocol).
  await nav(ana, 'Profile');
  await ana.session.click('.profile-head button', 'Edit profile');
  await ana.session.attach('[data-testid=avatar-input]', 'ana.png', 'image/png', readFileSync(join(here, '../../icons/128x128.png')));
  await ana.session.waitFor('.profile-head [data-testid=avatar-image]');
  await ana.session.click('.edit-profile button', 'Cancel');
  await ana.session.click('.toasts button[aria-label=Dismiss]');
  const photoShown = (app) => app.session.script(
    `const img=document.querySelector('[data-testid=feed] [data-post-card] [data-testid=avatar-image]');
     return !!img && img.complete && img.naturalWidth > 0;`);
  await nav(ben, 'Feed');
  await waitUntil("Ben's app shows Ana's photo", () => photoShown(ben));
  await nav(ana, 'Feed');
  await waitUntil("Ana's feed shows her photo", () => photoShown(ana));

  // A burst: Ben likes three of Ana's posts at once. Ana's desktop raises the first like at
  // once, then folds the other two into that same notification (replaced by id), grouped.
  focus(ben);
  const texts = ['Burst one', 'Burst two', 'Burst three'];
  const ids = [];
  for (const text of texts) {
    ids.push(await ana.session.script(`return window.__TAURI_INTERNALS__.invoke('create_post', { text: arguments[0], images: [] })`, [text]));
  }
  await waitUntil("Ben's app has Ana's three new posts", async () => {
    const page = await ben.session.script(`return window.__TAURI_INTERNALS__.invoke('feed', { after: null, limit: 50 })`);
    return ids.every((id) => page.posts.some((p) => p.post_id === id));
  });
  const before = ana.notifications().length;
  await ben.session.script(`return Promise.all(arguments[0].map((postId) => window.__TAURI_INTERNALS__.invoke('like', { postId })))`, [ids]);
  const burst = await waitUntil('the three likes shown as one notification', async () => {
    const calls = ana.notifications().slice(before);
    return calls.length > 0 && calls.at(-1).body.split('\n').length === 3 ? calls : null;
  });
  await sleep(1500);
  const calls = ana.notifications().slice(before);
  assert.equal(calls.length, burst.length, `nothing raised after the burst: ${JSON.stringify(calls, null, 1)}`);
  assert.equal(calls[0].replaces, 0, 'the first like is raised anew');
  assert.equal(calls[0].body, 'Ben liked your post', 'the first like is raised alone, at once');
  assert.ok(calls.length >= 2, 'the later likes are folded in');
  for (const n of calls.slice(1)) assert.equal(n.replaces, calls[0].id, `folded into the first: ${JSON.stringify(n)}`);
  assert.equal(calls.at(-1).summary, '3 new notifications');
  assert.deepEqual(calls.at(-1).body.split('\n'), ['Ben liked your post', 'Ben liked your post', 'Ben liked your post']);

  // Screens for the README.
  await shot(ana, 'feed');
  await nav(ana, 'Notifications');
  await ana.session.waitFor('[data-testid=notification]');
  await shot(ana, 'notifications');
  await nav(ana, 'Profile');
  await ana.session.waitFor('.profile-head');
  await shot(ana, 'profile');
  await nav(ana, 'Search');
  await ana.session.type('#search-input', 'real app');
  await ana.session.waitFor('[data-post-card]');
  await shot(ana, 'search');
  await nav(ana, 'Settings');
  await ana.session.waitFor('h1', { text: 'Settings' });
  await shot(ana, 'settings');
}
