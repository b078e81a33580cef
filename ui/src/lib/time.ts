// "3 min. ago", "yesterday", "Mar 12": short relative times for posts and comments.

const units: [Intl.RelativeTimeFormatUnit, number][] = [
  ['second', 60],
  ['minute', 60],
  ['hour', 24],
  ['day', 7],
];

/** A short relative time for `ms` (epoch milliseconds) as seen at `now`. */
export function relativeTime(ms: number, now: number, locale = 'en'): string {
  let delta = Math.round((ms - now) / 1000);
  if (Math.abs(delta) < 45) return 'just now';
  const rtf = new Intl.RelativeTimeFormat(locale, { numeric: 'auto', style: 'short' });
  for (const [unit, size] of units) {
    if (Math.abs(delta) < size) return rtf.format(delta, unit);
    delta = Math.round(delta / size);
  }
  const date = new Date(ms);
  const sameYear = date.getFullYear() === new Date(now).getFullYear();
  return date.toLocaleDateString(locale, sameYear ? { day: 'numeric', month: 'short' } : { day: 'numeric', month: 'short', year: 'numeric' });
}

/** The full date and time, for a tooltip. */
export function fullTime(ms: number, locale = 'en'): string {
  return new Date(ms).toLocaleString(locale, { dateStyle: 'medium', timeStyle: 'short' });
}
