import { useState } from 'preact/hooks';
import { BlockedPeople } from './BlockedPeople';
import { KeyBackup } from './KeyBackup';
import { RelayWarning } from './RelayWarning';
import { api, type AppSettings } from '../api';
import { refreshSession, session, settings, showError, toast } from '../store';

export function Settings() {
  const current = settings.value;
  const [relay, setRelay] = useState(session.value?.relay ?? '');
  if (!current) return <div class="page muted">Loading…</div>;

  const update = async (patch: Partial<AppSettings>) => {
    try {
      settings.value = await api.setSettings({ ...current, ...patch });
    } catch (e) {
      showError(e);
    }
  };

  const saveRelay = async (e: Event) => {
    e.preventDefault();
    try {
      await api.setRelay(relay.trim());
      await refreshSession();
      toast('Relay changed', `Connecting to ${relay.trim()}`);
    } catch (err) {
      showError(err);
    }
  };

  const toggle = (key: keyof AppSettings, label: string, hint?: string) => (
    <label class="setting">
      <input type="checkbox" checked={Boolean(current[key])} onChange={(e) => update({ [key]: e.currentTarget.checked })} />
      <span>
        {label}
        {hint && <span class="muted small"> — {hint}</span>}
      </span>
    </label>
  );

  return (
    <div class="page">
      <div class="column">
        <h1>Settings</h1>
        <form class="card" onSubmit={saveRelay}>
          <h2>Relay</h2>
          <label>
            Relay address (or several, separated by commas)
            <input value={relay} onInput={(e) => setRelay(e.currentTarget.value)} placeholder="wss://relay.example.org" aria-describedby="relay-warning" />
          </label>
          <RelayWarning url={relay} />
          <button class="primary" type="submit">
            Save and reconnect
          </button>
        </form>
        <section class="card">
          <h2>Notifications</h2>
          {toggle('notify_likes', 'Likes of my posts')}
          {toggle('notify_comments', 'Comments on my posts')}
          {toggle('notify_follows', 'New followers')}
          {toggle('sound', 'Play a sound')}
          {toggle('do_not_disturb', 'Do not disturb', 'no desktop notifications; the list and badge still update')}
        </section>
        <section class="card">
          <h2>Appearance and system</h2>
          <label>
            Theme
            <select value={current.theme} onChange={(e) => update({ theme: e.currentTarget.value as AppSettings['theme'] })}>
              <option value="system">Follow the system</option>
              <option value="light">Light</option>
              <option value="dark">Dark</option>
            </select>
          </label>
          {toggle('launch_at_login', 'Launch at login')}
        </section>
        <KeyBackup />
        <BlockedPeople />
        <section class="card muted small">
          <p>
            Keyboard: <kbd>n</kbd> new post · <kbd>/</kbd> search · <kbd>j</kbd>/<kbd>k</kbd> next/previous post · <kbd>Esc</kbd> close comments
          </p>
          <p>User id: <code>{session.value?.me?.uid}</code></p>
        </section>
      </div>
    </div>
  );
}
