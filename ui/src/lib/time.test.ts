import { describe, expect, it } from 'vitest';
import { relativeTime } from './time';

const now = Date.UTC(2026, 10, 23, 12, 0, 0);

describe('relativeTime', () => {
  it('says just now for the last seconds', () => {
    expect(relativeTime(now - 10_000, now)).toBe('just now');
  });
  it('counts minutes, hours and days', () => {
    expect(relativeTime(now - 5 * 60_000, now)).toBe('5 min. ago');
    expect(relativeTime(now - 3 * 3_600_000, now)).toBe('3 hr. ago');
    expect(relativeTime(now - 24 * 3_600_000, now)).toBe('yesterday');
  });
  it('gives a date for older posts', () => {
    expect(relativeTime(Date.UTC(2026, 2, 12, 9), now)).toBe('Mar 12');
    expect(relativeTime(Date.UTC(2024, 2, 12, 9), now)).toBe('Mar 12, 2024');
  });
});
