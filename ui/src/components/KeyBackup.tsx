import { useState } from 'preact/hooks';
import { api } from '../api';
import { showError, toast } from '../store';

/** Settings section: export the key, protected by a passphrase, for a second device. */
export function KeyBackup() {
  const [passphrase, setPassphrase] = useState('');
  const [repeat, setRepeat] = useState('');
  const [saved, setSaved] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const mismatch = repeat.length > 0 && repeat !== passphrase;

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      const path = await api.exportKey(passphrase);
      setSaved(path);
      setPassphrase('');
      setRepeat('');
      toast('Key exported', path);
    } catch (err) {
      showError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="card" onSubmit={submit} aria-labelledby="account-title">
      <h2 id="account-title">Account</h2>
      <p class="muted small">
        To use this account on another computer, export your key and open it there with “I have an account”. Anyone with the file and the passphrase
        can post as you: keep both safe.
      </p>
      <label>
        Passphrase (at least 8 characters)
        <input type="password" autoComplete="new-password" value={passphrase} minLength={8} onInput={(e) => setPassphrase(e.currentTarget.value)} />
      </label>
      <label>
        Passphrase again
        <input type="password" autoComplete="new-password" value={repeat} aria-invalid={mismatch} onInput={(e) => setRepeat(e.currentTarget.value)} />
      </label>
      {mismatch && <p class="error small">The two passphrases differ.</p>}
      <button type="submit" disabled={busy || passphrase.length < 8 || repeat !== passphrase} data-testid="export-key">
        {busy ? 'Exporting…' : 'Export key'}
      </button>
      {saved && (
        <p class="small" data-testid="export-path">
          Saved to <code>{saved}</code>
        </p>
      )}
    </form>
  );
}
