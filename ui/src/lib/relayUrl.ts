// What kind of relay address the person typed: encrypted (wss://), plain on this machine
// (ws:// to a loopback address: nothing leaves the computer), plain across the network,
// or not a relay address at all. The relay field takes one address or a list of several
// (the relay nodes of one community), separated by commas and/or spaces.

export type RelayUrlKind = 'secure' | 'loopback' | 'plain' | 'invalid';

/** The message shown under a plain ws:// address that leaves this machine. */
export const UNENCRYPTED_WARNING =
  'This connection leaves your machine unencrypted: anyone on the network path can read and change what it carries. Use wss:// if the relay offers it.';

function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/** Classifies a relay address (surrounding spaces ignored). */
export function classifyRelayUrl(input: string): RelayUrlKind {
  const url = input.trim();
  const scheme = /^(wss?):\/\/([^/?#]+)/i.exec(url);
  if (!scheme) return 'invalid';
  // The authority without user info or port: host, or [v6].
  const authority = scheme[2].replace(/^.*@/, '');
  const host = authority.startsWith('[') ? authority.slice(0, authority.indexOf(']') + 1) : authority.replace(/:\d*$/, '');
  if (!host) return 'invalid';
  if (scheme[1].toLowerCase() === 'wss') return 'secure';
  return isLoopback(host) ? 'loopback' : 'plain';
}

/** The addresses of a relay list: separated by commas and/or white space, as the app reads them. */
export function splitRelayList(input: string): string[] {
  return input.split(/[\s,]+/).filter((url) => url !== '');
}

/** The warning to show under `input` (one address or a list), if any of its addresses is plain ws:// that leaves the machine. */
export function relayUrlWarning(input: string): string | null {
  return splitRelayList(input).some((url) => classifyRelayUrl(url) === 'plain') ? UNENCRYPTED_WARNING : null;
}
