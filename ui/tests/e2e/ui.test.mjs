// The built UI in headless Chromium (Debian's /usr/bin/chromium) with the Tauri IPC mocked:
// every screen renders, and the main flows work. Run: npm run e2e (after npm run build).
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { preview } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));
const mock = readFileSync(`${here}/mock-tauri.js`, 'utf8');
const png = readFileSync(`${here}/../../../icons/32x32.png`);
const shots = process.env.UI_SCREENSHOTS ?? `${here}/../../test-results`;
mkdirSync(shots, { recursive: true });

let server;
let browser;
let url;

before(async () => {
  server = await preview({ root: `${here}/../..`, preview: { port: 0, host: '127.0.0.1' }, logLevel: 'error' });
  const address = server.httpServer.address();
  url = `http://127.0.0.1:${address.port}/`;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => server?.httpServer.close(resolve));
});

async function open(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1120, height: 780 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.addInitScript(`window.__MOCK_NEW_USER__ = ${Boolean(options.newUser)}; window.__MOCK_POSTS__ = ${options.posts ?? 3};`);
  await page.addInitScript(mock);
  // The local image cache: every image is there except those named `late…`, until the
  // test says they arrived.
  const arrived = new Set();
  await context.route('**/__mock_images/**', (route) => {
    const hash = new URL(route.request().url()).pathname.split('/').pop();
    if (hash.startsWith('late') && !arrived.has(hash)) return route.fulfill({ status: 404, body: '' });
    return route.fulfill({ status: 200, contentType: 'image/png', body: png });
  });
  await page.goto(url);
  return { page, errors, arrived };
}

describe('the desktop UI, with a mocked shell', () => {
  it('first run asks for a name and a relay, then shows the feed', async () => {
    const { page, errors } = await open({ newUser: true });
    await page.getByRole('heading', { name: 'Welcome to Social Sync' }).waitFor();
    assert.equal(await page.getByLabel('Relay').inputValue(), 'ws://127.0.0.1:8787');
    // Plain ws:// on this machine is fine; across the network it gets a calm warning.
    assert.equal(await page.getByTestId('relay-warning').count(), 0);
    await page.getByLabel('Relay').fill('ws://relay.example.org');
    await page.getByTestId('relay-warning').getByText('leaves your machine unencrypted').waitFor();
    await page.screenshot({ path: `${shots}/onboarding-plain-relay.png` });
    await page.getByLabel('Relay').fill('wss://relay.example.org');
    await page.getByTestId('relay-warning').waitFor({ state: 'detached' });
    await page.getByLabel('Relay').fill('ws://127.0.0.1:8787');
    await page.screenshot({ path: `${shots}/onboarding.png` });
    await page.getByLabel('Display name').fill('Ana');
    await page.getByRole('button', { name: 'Start' }).click();
    await page.getByRole('feed').waitFor();
    assert.equal(await page.locator('[data-post-card]').count(), 3);
    assert.deepEqual(errors, []);
  });

  it('a second device opens the account from a key backup and its passphrase', async () => {
    const { page, errors } = await open({ newUser: true });
    await page.getByTestId('restore-mode').click();
    await page.getByLabel(/Key backup/).setInputFiles({ name: 'social-sync-key.pem', mimeType: 'text/plain', buffer: Buffer.from('-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n') });
    await page.getByText('Chosen: social-sync-key.pem').waitFor();
    await page.getByLabel('Passphrase').fill('wrong one');
    await page.getByRole('button', { name: 'Start' }).click();
    await page.getByText('the passphrase does not open this key backup').waitFor();
    await page.getByLabel('Passphrase').fill('harbour lights');
    await page.getByRole('button', { name: 'Start' }).click();
    await page.getByRole('feed').waitFor();
    assert.deepEqual(errors, []);
  });

  it('exports the key only with a passphrase typed twice alike', async () => {
    const { page } = await open();
    await page.locator('button.nav', { hasText: 'Settings' }).click();
    const exportButton = page.getByTestId('export-key');
    await page.getByLabel('Passphrase (at least 8 characters)').fill('harbour lights');
    await page.getByLabel('Passphrase again').fill('harbour light');
    await page.getByText('The two passphrases differ.').waitFor();
    assert.ok(await exportButton.isDisabled());
    await page.getByLabel('Passphrase again').fill('harbour lights');
    await exportButton.click();
    await page.getByTestId('export-path').getByText('social-sync-key-mmmmmmmm.pem').waitFor();
  });

  it('composes a post that appears at once', async () => {
    const { page } = await open();
    await page.getByLabel("What's happening?").fill('A new post from the test');
    await page.getByRole('button', { name: 'Post', exact: true }).click();
    await page.locator('[data-post-card]').first().getByText('A new post from the test').waitFor();
    await page.screenshot({ path: `${shots}/feed.png` });
  });

  it('likes and unlikes with a live count', async () => {
    const { page } = await open();
    const first = page.locator('[data-post-card]').first();
    await first.getByRole('button', { name: 'Like', exact: true }).click();
    await first.getByRole('button', { name: 'Unlike' }).waitFor();
    assert.equal(await first.getByTestId('like-count').textContent(), '1');
    await first.getByRole('button', { name: 'Unlike' }).click();
    await first.getByRole('button', { name: 'Like', exact: true }).waitFor();
    assert.equal(await first.getByTestId('like-count').textContent(), '0');
  });

  it('comments in a thread, and the count follows', async () => {
    const { page } = await open();
    await page.locator('[data-post-card]').first().getByTestId('comments').click();
    const thread = page.getByRole('dialog', { name: 'Comments' });
    await thread.getByLabel('Write a comment').fill('Lovely colours');
    await thread.getByRole('button', { name: 'Send' }).click();
    await thread.getByTestId('comment').getByText('Lovely colours').waitFor();
    await page.screenshot({ path: `${shots}/thread.png` });
    await page.keyboard.press('Escape');
    await thread.waitFor({ state: 'detached' });
    assert.equal(await page.locator('[data-post-card]').first().getByTestId('comment-count').textContent(), '1');
  });

  it('a like arriving from sync raises the badge, a toast and updates the count live', async () => {
    const { page } = await open();
    const badge = page.getByTestId('unread-badge');
    assert.equal(await badge.textContent(), '1');
    const postId = await page.locator('[data-post-card]').first().getAttribute('data-post-id');
    await page.evaluate((id) => window.__mock.benLikes(id), postId);
    await page.waitForFunction(() => document.querySelector('[data-testid=unread-badge]')?.textContent === '2');
    await page.waitForFunction(() => document.querySelector('[data-post-card] [data-testid=like-count]')?.textContent === '1');
    await page.evaluate(() => window.__mock.emit('toast', { title: 'Social Sync', body: 'Ben liked your post', target: { kind: 'notifications' } }));
    await page.getByTestId('toast').getByText('Ben liked your post').waitFor();
  });

  it('reads notifications: grouped, mark all read, and a click opens the post', async () => {
    const { page } = await open();
    await page.getByRole('button', { name: /Notifications/ }).first().click();
    await page.getByRole('heading', { name: 'Notifications' }).waitFor();
    const items = page.getByTestId('notification');
    assert.equal(await items.count(), 2);
    assert.match(await items.first().textContent(), /Ben liked your post/);
    await page.screenshot({ path: `${shots}/notifications.png` });
    await page.getByRole('button', { name: 'Mark all read' }).click();
    await page.getByTestId('unread-badge').waitFor({ state: 'detached' });
    await items.first().click();
    await page.getByRole('dialog', { name: 'Comments' }).waitFor();
  });

  it('finds people by name and follows them', async () => {
    const { page } = await open();
    await page.keyboard.press('/');
    await page.getByLabel('Search people and posts').fill('ca');
    const follow = page.getByTestId('person-follow');
    await follow.waitFor();
    await follow.click();
    await page.getByTestId('person-follow').getByText('Unfollow').waitFor();
    assert.ok((await page.evaluate(() => window.__mock.calls('follow').length)) === 1);
    await page.getByLabel('Search people and posts').fill('sunset');
    await page.locator('[data-post-card]').getByText('Sunset at the pier').waitFor();
    await page.screenshot({ path: `${shots}/search.png` });
  });

  it('shows profiles with counts, an online dot, and follow/unfollow', async () => {
    const { page } = await open();
    await page.locator('[data-post-card]').nth(1).locator('.author').click();
    await page.getByRole('heading', { name: /Ben/ }).waitFor();
    assert.ok(await page.getByLabel('online').first().isVisible());
    await page.getByTestId('follow').click();
    await page.getByTestId('follow').getByText('Follow', { exact: true }).waitFor();
    await page.screenshot({ path: `${shots}/profile.png` });
  });

  it('sets a profile photo that shows on my posts, refuses a non-image, and removes it', async () => {
    const { page } = await open();
    await page.locator('button.nav', { hasText: 'Profile' }).click();
    await page.getByRole('button', { name: 'Edit profile' }).click();
    const png = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex');
    await page.getByTestId('avatar-input').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('just text') });
    await page.getByText('avatar image is not a PNG, JPEG, GIF or WebP image: choose a picture').waitFor();
    assert.equal(await page.getByTestId('avatar-image').count(), 0);
    await page.getByTestId('avatar-input').setInputFiles({ name: 'me.png', mimeType: 'image/png', buffer: png });
    await page.getByRole('button', { name: 'Change photo' }).waitFor();
    const head = page.locator('.profile-head').getByTestId('avatar-image');
    assert.match(await head.getAttribute('src'), /^\/__mock_images\/avatar\d+$/);
    await page.locator('[data-post-card]').first().getByTestId('avatar-image').waitFor();
    await page.locator('button.nav', { hasText: 'Feed' }).click();
    await page.locator('[data-post-card]', { hasText: 'Sunset at the pier' }).getByTestId('avatar-image').waitFor();
    await page.locator('button.nav', { hasText: 'Profile' }).click();
    await page.getByRole('button', { name: 'Edit profile' }).click();
    await page.getByRole('button', { name: 'Remove photo' }).click();
    await page.getByRole('button', { name: 'Add a photo' }).waitFor();
    assert.equal(await page.locator('.profile-head').getByTestId('avatar-image').count(), 0);
  });

  it('shows an image that arrives after its post once it is synced', async () => {
    const { page, arrived } = await open();
    await page.getByRole('feed').waitFor();
    await page.evaluate(() => {
      const { state, ids } = window.__mock;
      state.posts.unshift({ post_id: `${ids.BEN}-late`, author: ids.BEN, text: 'Look at this boat', media: ['late1'], created_at: Date.now(), likes: new Set(), comments: 0 });
      window.__mock.emit('sync-event', { event: 'feed_changed', user: ids.BEN });
    });
    const card = page.locator('[data-post-card]', { hasText: 'Look at this boat' });
    await card.getByText('Image on its way…').waitFor();
    arrived.add('late1');
    await page.evaluate(() => window.__mock.emit('sync-event', { event: 'feed_changed', user: window.__mock.ids.ME }));
    const img = card.getByAltText('Attached image');
    await img.waitFor();
    await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await img.elementHandle());
    assert.equal(await card.getByText('Image on its way…').count(), 0);
    // Once shown, it is not fetched again at every later sync change.
    const src = await img.getAttribute('src');
    await page.evaluate(() => window.__mock.emit('sync-event', { event: 'feed_changed', user: window.__mock.ids.BEN }));
    await page.waitForTimeout(400);
    assert.equal(await img.getAttribute('src'), src);
  });

  it('blocks a person: their posts and notifications go, and unblocking brings them back', async () => {
    const { page } = await open();
    await page.getByRole('button', { name: 'Notifications' }).first().waitFor();
    assert.equal(await page.getByTestId('unread-badge').textContent(), '1');
    await page.locator('[data-post-card]').nth(1).locator('.author').click();
    await page.getByRole('heading', { name: /Ben/ }).waitFor();
    await page.getByTestId('block').click();
    await page.getByTestId('block').getByText('Unblock').waitFor();
    assert.equal(await page.getByTestId('follow').count(), 0, 'no follow button while blocked');
    assert.equal(await page.locator('[data-post-card]').count(), 0, 'their posts are hidden');
    assert.equal(await page.getByTestId('unread-badge').count(), 0, "Ben's like no longer counts as unread");
    await page.locator('button.nav', { hasText: 'Feed' }).click();
    await page.getByRole('feed').waitFor();
    assert.equal(await page.locator('[data-post-card]', { hasText: 'Ben' }).count(), 0);
    await page.locator('button.nav', { hasText: 'Settings' }).click();
    await page.getByTestId('blocked-person').getByText('Ben').waitFor();
    await page.getByTestId('blocked-person').getByRole('button', { name: 'Unblock' }).click();
    await page.getByText('You have not blocked anyone.').waitFor();
  });

  it('mutes the notifications of one of my posts', async () => {
    const { page } = await open();
    await page.locator('[data-post-card]').first().getByTestId('comments').click();
    await page.getByTestId('mute').getByText('Mute notifications').click();
    await page.getByTestId('mute').getByText('Unmute notifications').waitFor();
    assert.equal(await page.getByTestId('mute').getAttribute('aria-pressed'), 'true');
    const calls = await page.evaluate(() => window.__mock.calls('set_post_muted'));
    assert.deepEqual(calls.map((c) => c.args.muted), [true]);
  });

  it('saves settings and refuses a bad relay address with a clear error', async () => {
    const { page } = await open();
    await page.getByRole('button', { name: /Settings/ }).click();
    await page.getByLabel('Do not disturb').check();
    await page.waitForFunction(() => window.__mock.state.settings.do_not_disturb === true);
    await page.getByLabel('Theme').selectOption('dark');
    await page.waitForFunction(() => document.documentElement.dataset.theme === 'dark');
    await page.getByLabel('Relay address').fill('ws://192.168.1.20:8787');
    await page.getByTestId('relay-warning').getByText('use wss://', { exact: false }).waitFor();
    await page.getByLabel('Relay address').fill('http://nope');
    await page.getByRole('button', { name: 'Save and reconnect' }).click();
    await page.getByRole('alert').getByText('is not a relay address').waitFor();
    await page.screenshot({ path: `${shots}/settings.png` });
  });

  it('keeps 10,000 posts smooth: only a window of them is in the page', async () => {
    const { page } = await open({ posts: 10_000 });
    await page.getByRole('feed').waitFor();
    await page.waitForFunction(() => document.querySelectorAll('[data-post-card]').length > 0);
    const before = await page.locator('[data-post-card]').count();
    assert.ok(before < 40, `${before} cards rendered`);
    for (let i = 0; i < 15; i++) await page.getByTestId('feed').evaluate((el) => el.scrollBy(0, 4000));
    await page.waitForFunction(() => document.querySelectorAll('[data-post-card]').length > 0);
    assert.ok((await page.locator('[data-post-card]').count()) < 40);
    const loaded = await page.evaluate(() => window.__mock.calls('feed').length);
    assert.ok(loaded >= 2, 'scrolling loaded more pages');
  });

  it('a session answer older than a connection event does not undo it', async () => {
    const { page } = await open({ newUser: true });
    await page.evaluate(() => {
      window.__mock.state.status = { status: 'connecting', waiting: 1, reason: null };
      window.__mock.state.sessionDelay = 400;
    });
    await page.getByLabel('Display name').fill('Ana');
    await page.getByRole('button', { name: 'Start' }).click();
    // The engine connects while the app's question about the session is on its way.
    await page.waitForTimeout(100);
    await page.evaluate(() => {
      window.__mock.state.status = { status: 'online', waiting: 0, reason: null };
      window.__mock.emit('sync-event', { event: 'connection', status: 'online', waiting: 0, reason: null });
    });
    await page.getByTestId('status').getByText('Online').waitFor();
    await page.waitForTimeout(600);
    assert.equal(await page.getByTestId('status').textContent(), 'Online');
  });

  it('shows the connection status, with changes waiting offline', async () => {
    const { page } = await open();
    await page.getByTestId('status').getByText('Online').waitFor();
    await page.evaluate(() => window.__mock.emit('sync-event', { event: 'connection', status: 'offline', waiting: 3, reason: 'cannot reach the relay' }));
    await page.getByTestId('status').getByText('Offline · 3 changes waiting').waitFor();
    await page.evaluate(() => window.__mock.emit('sync-event', { event: 'connection', status: 'reconnecting', waiting: 3, reason: null }));
    await page.getByTestId('status').getByText('Offline · 3 changes waiting · reconnecting…').waitFor();
  });
});
