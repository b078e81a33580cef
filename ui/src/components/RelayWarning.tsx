import { relayUrlWarning } from '../lib/relayUrl';

/** A calm note under a relay address that would travel unencrypted (plain ws:// that leaves this machine). */
export function RelayWarning({ url }: { url: string }) {
  const warning = relayUrlWarning(url);
  if (!warning) return null;
  return (
    <p id="relay-warning" class="relay-warning small" role="note" data-testid="relay-warning">
      {warning}
    </p>
  );
}
