// What the status pill says about the connection to the relay.
import type { Status } from '../api';

const changes = (n: number) => `${n} change${n === 1 ? '' : 's'} waiting`;

/**
 * The connection in a few words. `everOnline` tells the first connection after launch
 * ("Connecting…") from the attempts after a loss, which read as offline (with what is
 * waiting to go out) and retrying.
 */
export function statusLabel(s: Status, everOnline: boolean): string {
  if (s.status === 'online') return s.waiting > 0 ? `Online · sending ${s.waiting}` : 'Online';
  const retrying = s.status === 'reconnecting' || s.status === 'connecting';
  if (retrying && !everOnline && s.waiting === 0) return 'Connecting…';
  const parts = ['Offline'];
  if (s.waiting > 0) parts.push(changes(s.waiting));
  if (retrying) parts.push('reconnecting…');
  return parts.join(' · ');
}
