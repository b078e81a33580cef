import { Icon, type IconName } from './Icon';
import { everOnline, navigate, progress, route, session, status, unread, type Route } from '../store';
import { statusLabel } from '../lib/status';

const items: { view: Route['view']; label: string; icon: IconName }[] = [
  { view: 'feed', label: 'Feed', icon: 'home' },
  { view: 'notifications', label: 'Notifications', icon: 'bell' },
  { view: 'search', label: 'Search', icon: 'search' },
  { view: 'profile', label: 'Profile', icon: 'user' },
  { view: 'settings', label: 'Settings', icon: 'gear' },
];

export function StatusPill() {
  const s = status.value;
  const label = statusLabel(s, everOnline.value);
  const p = progress.value;
  return (
    <div class={`status status-${s.status}`} role="status" aria-live="polite" title={s.reason ?? (s.relay ? `Relay: ${s.relay}` : undefined)} data-testid="status">
      <span class="dot" aria-hidden="true" />
      <span class="label">{label}</span>
      {p && (
        <span class="progress">
          <progress max={p.total} value={p.done} aria-label="Sync progress" /> {p.done}/{p.total}
        </span>
      )}
    </div>
  );
}

export function Sidebar() {
  const current = route.value.view;
  return (
    <nav class="sidebar" aria-label="Main">
      <div class="brand">
        <img src="/icon.svg" alt="" width={28} height={28} />
        <span>Social Sync</span>
      </div>
      <ul>
        {items.map((it) => (
          <li key={it.view}>
            <button
              class={current === it.view ? 'nav active' : 'nav'}
              aria-current={current === it.view ? 'page' : undefined}
              onClick={() => navigate(it.view === 'profile' ? { view: 'profile', uid: null } : ({ view: it.view } as Route))}
            >
              <Icon name={it.icon} /> {it.label}
              {it.view === 'notifications' && unread.value > 0 && (
                <span class="badge" aria-label={`${unread.value} unread`} data-testid="unread-badge">
                  {unread.value}
                </span>
              )}
            </button>
          </li>
        ))}
      </ul>
      <div class="sidebar-foot">
        <div class="me">{session.value?.me?.name}</div>
        <StatusPill />
      </div>
    </nav>
  );
}
