import { useState } from 'preact/hooks';
import { api } from '../api';
import { RelayWarning } from './RelayWarning';
import { refreshSession, showError } from '../store';

/** First run: a new account (a key made here), or this person's account from another device. */
export function Onboarding() {
  const [mode, setMode] = useState<'new' | 'restore'>('new');
  const [name, setName] = useState('');
  const [relay, setRelay] = useState('ws://127.0.0.1:8787');
  const [backup, setBackup] = useState('');
  const [backupFile, setBackupFile] = useState('');
  const [passphrase, setPassphrase] = useState('');
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      if (mode === 'new') await api.createProfile(name.trim(), relay.trim());
      else await api.restoreProfile(backup, passphrase, relay.trim());
      await refreshSession();
    } catch (err) {
      showError(err);
    } finally {
      setBusy(false);
    }
  };

  const pick = async (files: FileList | null) => {
    const file = files?.[0];
    if (!file) return;
    setBackupFile(file.name);
    setBackup(await file.text());
  };

  const ready = mode === 'new' ? name.trim().length > 0 : backup.length > 0 && passphrase.length > 0;
  return (
    <div class="onboarding">
      <form class="card onboarding-card" onSubmit={submit} aria-labelledby="welcome-title">
        <img src="/icon.svg" alt="" width={72} height={72} />
        <h1 id="welcome-title">Welcome to Social Sync</h1>
        <p class="muted">Your feed lives on this computer and works offline. A relay carries it to the people you follow.</p>
        <div class="segmented" role="radiogroup" aria-label="Account">
          <button type="button" role="radio" aria-checked={mode === 'new'} onClick={() => setMode('new')}>
            I am new here
          </button>
          <button type="button" role="radio" aria-checked={mode === 'restore'} onClick={() => setMode('restore')} data-testid="restore-mode">
            I have an account
          </button>
        </div>
        {mode === 'new' ? (
          <label>
            Display name
            <input name="name" value={name} onInput={(e) => setName(e.currentTarget.value)} required maxLength={64} autoFocus placeholder="e.g. Ana" />
          </label>
        ) : (
          <>
            <label>
              Key backup (.pem, from Settings → Account on your other device)
              <input name="backup" type="file" accept=".pem,application/x-pem-file,text/plain" onChange={(e) => void pick(e.currentTarget.files)} />
            </label>
            {backupFile && <p class="muted small">Chosen: {backupFile}</p>}
            <label>
              Passphrase
              <input name="passphrase" type="password" autoComplete="current-password" value={passphrase} onInput={(e) => setPassphrase(e.currentTarget.value)} required />
            </label>
          </>
        )}
        <label>
          Relay
          <input name="relay" value={relay} onInput={(e) => setRelay(e.currentTarget.value)} required placeholder="wss://relay.example.org" aria-describedby="relay-warning" />
        </label>
        <RelayWarning url={relay} />
        <p class="muted small">
          {mode === 'new'
            ? 'A key that proves who you are is made on this computer. It never leaves it unless you export it.'
            : 'Your name, posts and follows arrive from the relay once connected.'}
        </p>
        <button class="primary" type="submit" disabled={busy || !ready}>
          {busy ? (mode === 'new' ? 'Creating…' : 'Opening…') : 'Start'}
        </button>
      </form>
    </div>
  );
}
