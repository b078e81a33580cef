import { describe, expect, it } from 'vitest';
import { statusLabel } from './status';

const s = (status: 'online' | 'offline' | 'connecting' | 'reconnecting', waiting = 0) => ({ status, waiting, reason: null, relay: null });

describe('statusLabel', () => {
  it('says online, and what is still being sent', () => {
    expect(statusLabel(s('online'), true)).toBe('Online');
    expect(statusLabel(s('online', 2), true)).toBe('Online · sending 2');
  });
  it('says connecting only for the first connection after launch', () => {
    expect(statusLabel(s('connecting'), false)).toBe('Connecting…');
    expect(statusLabel(s('connecting'), true)).toBe('Offline · reconnecting…');
  });
  it('keeps the changes waiting visible while it retries', () => {
    expect(statusLabel(s('offline', 1), true)).toBe('Offline · 1 change waiting');
    expect(statusLabel(s('reconnecting', 3), true)).toBe('Offline · 3 changes waiting · reconnecting…');
    expect(statusLabel(s('connecting', 3), false)).toBe('Offline · 3 changes waiting · reconnecting…');
    expect(statusLabel(s('offline'), false)).toBe('Offline');
  });
});
