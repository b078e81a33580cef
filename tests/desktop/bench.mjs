// The desktop app's benchmark (figures printed, nothing asserted): a sync of COUNT changes
// applied while the UI is probed for stalls, cold start to first feed paint, idle memory of
// all the app's processes, and installer sizes. Run by scripts/bench-app under xvfb-run.
//
// Env: APP_BIN, RELAY_BIN, SEED_BIN (crates/core/examples/seed_sync), TAURI_DRIVER,
// BUNDLE_DIR (for installer sizes), COUNT (default 10000).

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session, sleep } from './webdriver.mjs';

const { APP_BIN: APP, RELAY_BIN: RELAY, SEED_BIN: SEED, TAURI_DRIVER: DRIVER = 'tauri-driver', BUNDLE_DIR } = process.env;
const COUNT = Number(process.env.COUNT ?? 10000);
const work = mkdtempSync(join(tmpdir(), 'social-sync-bench-'));
const children = [];
const run = (cmd, args, env = {}) => {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, NO_AT_BRIDGE: '1', ...env } });
  children.push(child);
  return child;
};
const killAll = () => children.forEach((c) => { try { process.kill(-c.pid, 'SIGKILL'); } catch { /* gone */ } });
process.on('exit', killAll);
const ms = (n) => `${Math.round(n)} ms`;
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];

function waitLine(stream, pattern, timeout) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no "${pattern}" within ${timeout} ms`)), timeout);
    stream.on('data', (d) => {
      buf += String(d).replace(/\x1b\[[0-9;]*m/g, ''); // log colours
      const m = buf.match(pattern);
      if (m) { clearTimeout(timer); resolve(m); }
    });
  });
}

// The relay and the seeded profiles: Ben has COUNT posts on the relay; Ana follows him.
const relay = run(RELAY, ['--listen', '127.0.0.1:0', '--data', join(work, 'relay'), '--log', 'warn']);
const addr = (await waitLine(relay.stdout, /listening on (\S+)/, 10000))[1];
const url = `ws://${addr}`;
let t = performance.now();
const authors = execFileSync(SEED, [url, work, String(COUNT)], { encoding: 'utf8' }).trim().split('\n');
console.log(`seeded: ${authors.length} people wrote ${COUNT} posts and synced them (${ms(performance.now() - t)})`);
const profile = join(work, 'ana');

// 1. The large sync, through tauri-driver so the page can be probed while it runs.
{
  const port = 4460;
  run('dbus-run-session', ['--', DRIVER, '--port', String(port), '--native-port', String(port + 1)], { SOCIAL_SYNC_PROFILE: profile, SOCIAL_SYNC_LOG: 'warn' });
  for (let i = 0; i < 100; i++) { try { await fetch(`http://127.0.0.1:${port}/status`); break; } catch { await sleep(100); } }
  const s = await Session.start(port, APP);
  await s.waitFor('[data-testid=status]');
  // Point Ana at a relay address where nothing listens, so nothing syncs until the probes run.
  await s.script(`return window.__TAURI_INTERNALS__.invoke('set_relay', { url: 'ws://127.0.0.1:9' })`);
  await s.script(`
    window.__lag = []; let last = performance.now();
    setInterval(() => { const now = performance.now(); window.__lag.push(now - last - 50); last = now; }, 50);
    window.__ipc = []; window.__probing = true;
    (async () => { while (window.__probing) { const t = performance.now();
      await window.__TAURI_INTERNALS__.invoke('session'); window.__ipc.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 100)); } })();`);
  t = performance.now();
  await s.script(`return window.__TAURI_INTERNALS__.invoke('set_relay', { url: arguments[0] })`, [url]);
  let have = 0;
  while (have < COUNT) {
    // Ana's feed, counted 500 at a time (a few ms of the replica's time per second).
    have = await s.script(`return (async () => { let n = 0, after = null;
      do { const page = await window.__TAURI_INTERNALS__.invoke('feed', { after, limit: 500 });
           n += page.posts.length; after = page.next; } while (after);
      return n; })();`);
    if (performance.now() - t > 600000) throw new Error(`only ${have} of ${COUNT} posts after 10 min`);
    await sleep(1000);
  }
  const took = performance.now() - t;
  const { lag, ipc } = await s.script(`window.__probing = false; return { lag: window.__lag, ipc: window.__ipc }`);
  await s.script(`return null`);
  console.log(`sync of ${COUNT} changes applied: ${ms(took)} (${Math.round(COUNT / (took / 1000))} changes/s)`);
  console.log(`  UI thread while syncing: timer lateness p50 ${ms(pct(lag, 50))}, p99 ${ms(pct(lag, 99))}, max ${ms(Math.max(...lag))} (${lag.length} samples)`);
  console.log(`  a command's round trip while syncing: p50 ${ms(pct(ipc, 50))}, p99 ${ms(pct(ipc, 99))}, max ${ms(Math.max(...ipc))} (${ipc.length} calls)`);
  await s.close();
  killAll();
  children.length = 0;
}

// 2. Cold start to first feed paint (a profile with the COUNT posts), and idle memory.
function tree(root) {
  const kids = new Map();
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const ppid = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1];
      (kids.get(ppid) ?? kids.set(ppid, []).get(ppid)).push(pid);
    } catch { /* gone */ }
  }
  const out = [];
  const walk = (p) => { out.push(p); (kids.get(p) ?? []).forEach(walk); };
  walk(String(root));
  return out;
}
const kb = (pid, field) => {
  try {
    const m = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) : 0;
  } catch { return 0; }
};
const starts = [];
let memory;
for (let i = 0; i < 3; i++) {
  const started = performance.now();
  const app = run('dbus-run-session', ['--', APP], { SOCIAL_SYNC_PROFILE: profile, SOCIAL_SYNC_LOG: 'info' });
  const m = await waitLine(app.stderr, /first feed paint.*?ms=(\d+).*?posts=(\d+)/, 60000);
  starts.push({ wall: performance.now() - started, inside: Number(m[1]), posts: Number(m[2]) });
  if (i === 2) {
    await sleep(5000);
    const pids = tree(app.pid).filter((p) => {
      try { return !readFileSync(`/proc/${p}/comm`, 'utf8').startsWith('dbus'); } catch { return false; }
    });
    const names = pids.map((p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim());
    memory = { pss: pids.reduce((a, p) => a + kb(p, 'Pss'), 0), rss: pids.reduce((a, p) => a + kb(p, 'Rss'), 0), names };
  }
  killAll();
  children.length = 0;
  await sleep(500);
}
const best = starts.map((s) => s.wall).sort((a, b) => a - b);
console.log(`cold start to first feed paint (process launch to the first ${starts[0].posts} posts on screen): median ${ms(best[1])}, runs ${best.map(ms).join(', ')}; inside the app: ${starts.map((s) => ms(s.inside)).join(', ')} (target: under 1500 ms)`);
console.log(`idle memory after 5 s, all processes (${memory.names.join(', ')}): PSS ${(memory.pss / 1024).toFixed(1)} MiB, RSS ${(memory.rss / 1024).toFixed(1)} MiB`);

// 3. Installer sizes.
for (const kind of ['deb', 'rpm']) {
  const dir = BUNDLE_DIR && join(BUNDLE_DIR, kind);
  const files = dir && existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(`.${kind}`)) : [];
  if (files.length === 0) console.log(`installer .${kind}: not built (run scripts/package)`);
  for (const f of files) console.log(`installer ${f}: ${(statSync(join(dir, f)).size / 1048576).toFixed(1)} MiB (target: under 15 MB)`);
}
process.exit(0);
