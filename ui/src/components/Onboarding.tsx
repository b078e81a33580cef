import { useState } from 'preact/hooks';
import { api } from '../api';
import { refreshSession, showError } from '../store';

export function Onboarding() {
  const [name, setName] = useState('');
  const [relay, setRelay] = useState('ws://127.0.0.1:8787');
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      await api.createProfile(name.trim(), relay.trim());
      await refreshSession();
    } catch (err) {
      showError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="onboarding">
      <form class="card onboarding-card" onSubmit={submit} aria-labelledby="welcome-title">
        <img src="/icon.svg" alt="" width={72} height={72} />
        <h1 id="welcome-title">Welcome to Social Sync</h1>
        <p class="muted">Your feed lives on this computer and works offline. A relay carries it to the people you follow.</p>
        <label>
          Display name
          <input name="name" value={name} onInput={(e) => setName(e.currentTarget.value)} required maxLength={64} autoFocus placeholder="e.g. Ana" />
        </label>
        <label>
          Relay
          <input name="relay" value={relay} onInput={(e) => setRelay(e.currentTarget.value)} required />
        </label>
        <p class="muted small">A key that proves who you are is made on this computer. It never leaves it.</p>
        <button class="primary" type="submit" disabled={busy || name.trim().length === 0}>
          {busy ? 'Creating…' : 'Start'}
        </button>
      </form>
    </div>
  );
}
