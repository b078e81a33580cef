// A minimal W3C WebDriver client over fetch, enough to drive the real app through
// tauri-driver: sessions, elements, clicks, typing, text, screenshots.

const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';

export class Session {
  constructor(base, id) {
    this.base = base;
    this.id = id;
  }

  static async start(port, application, env = {}) {
    const base = `http://127.0.0.1:${port}`;
    const body = { capabilities: { alwaysMatch: { 'tauri:options': { application, env } } } };
    const res = await retry(() => post(`${base}/session`, body));
    return new Session(base, res.value.sessionId);
  }

  async cmd(method, path, body) {
    const url = `${this.base}/session/${this.id}${path}`;
    return retry(() => (method === 'GET' ? get(url) : post(url, body ?? {})));
  }

  async find(css) {
    const r = await this.cmd('POST', '/element', { using: 'css selector', value: css });
    return r.value[ELEMENT];
  }

  async findAll(css) {
    const r = await this.cmd('POST', '/elements', { using: 'css selector', value: css });
    return r.value.map((e) => e[ELEMENT]);
  }

  /** Waits until `css` matches an element (and `pred(text)` holds if given). */
  async waitFor(css, { timeout = 20000, text } = {}) {
    const deadline = Date.now() + timeout;
    let last = '';
    while (Date.now() < deadline) {
      try {
        const found = await this.script(
          `const els=[...document.querySelectorAll(arguments[0])]; const t=arguments[1];
           const hit=els.find(e=>t===null||e.textContent.includes(t)); return hit? hit.textContent : null;`,
          [css, text ?? null],
        );
        if (found !== null) return found;
        last = 'no match';
      } catch (e) {
        last = String(e);
      }
      await sleep(150);
    }
    throw new Error(`timed out waiting for ${css}${text ? ` containing "${text}"` : ''} (${last})`);
  }

  async click(css, text) {
    await this.waitFor(css, { text });
    await this.script(
      `const els=[...document.querySelectorAll(arguments[0])]; const t=arguments[1];
       const hit=els.find(e=>t===null||e.textContent.includes(t)); hit.scrollIntoView({block:'center'}); hit.click();`,
      [css, text ?? null],
    );
  }

  /** Sets a field's value the way typing does: the value, then an `input` event. */
  async type(css, value) {
    await this.waitFor(css);
    await this.script(
      `const el=document.querySelector(arguments[0]); el.focus(); el.value=arguments[1];
       el.dispatchEvent(new Event('input',{bubbles:true}));`,
      [css, value],
    );
  }

  /** Puts a file into a file input the way a picker does: its `files`, then `change`. */
  async attach(css, name, mime, bytes) {
    await this.waitFor(css);
    await this.script(
      `const el=document.querySelector(arguments[0]);
       const bytes=Uint8Array.from(atob(arguments[3]), (c) => c.charCodeAt(0));
       const dt=new DataTransfer(); dt.items.add(new File([bytes], arguments[1], { type: arguments[2] }));
       el.files=dt.files; el.dispatchEvent(new Event('change',{bubbles:true}));`,
      [css, name, mime, Buffer.from(bytes).toString('base64')],
    );
  }

  async text(css) {
    return this.script(`const e=document.querySelector(arguments[0]); return e? e.textContent : null;`, [css]);
  }

  async script(source, args = []) {
    const r = await this.cmd('POST', '/execute/sync', { script: source, args });
    return r.value;
  }

  async screenshot() {
    const r = await this.cmd('GET', '/screenshot');
    return Buffer.from(r.value, 'base64');
  }

  async close() {
    try {
      await fetch(`${this.base}/session/${this.id}`, { method: 'DELETE', signal: AbortSignal.timeout(5000) });
    } catch {
      // The app may already be gone.
    }
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function post(url, body) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(60000) });
  const json = await res.json();
  if (!res.ok) throw new WebDriverError(json.value?.error ?? res.status, json.value?.message ?? '');
  return json;
}

async function get(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(60000) });
  const json = await res.json();
  if (!res.ok) throw new WebDriverError(json.value?.error ?? res.status, json.value?.message ?? '');
  return json;
}

class WebDriverError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

/** tauri-driver sometimes resets a forwarded request under rapid calls: retry those. */
async function retry(fn, attempts = 5) {
  let last;
  for (let i = 0; i < attempts; i++) {
    try {
      return await fn();
    } catch (e) {
      last = e;
      if (e instanceof WebDriverError) throw e;
      await sleep(200 * (i + 1));
    }
  }
  throw last;
}
