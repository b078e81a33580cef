import { useEffect } from 'preact/hooks';
import { api, onOpen, onPlaySound, onSyncEvent, onToast } from '../api';
import { applySyncEvent, feed, loadFeed, openThread, openTarget, refreshSession, route, session, settings, showError, toast } from '../store';
import { Feed } from './Feed';
import { Notifications } from './Notifications';
import { Onboarding } from './Onboarding';
import { Profile } from './Profile';
import { Search } from './Search';
import { Settings } from './Settings';
import { Sidebar } from './Sidebar';
import { Thread } from './Thread';
import { Toasts } from './Toasts';
import { useShortcuts } from './shortcuts';

const chime = typeof Audio !== 'undefined' ? new Audio('/notify.wav') : null;

export function App() {
  useEffect(() => {
    refreshSession().catch(showError);
    const subs = [
      onSyncEvent(applySyncEvent),
      onToast((t) => toast(t.title === 'Social Sync' ? 'New activity' : t.title, t.body, 'info', t.target)),
      onOpen(openTarget),
      onPlaySound(() => {
        document.body.dataset.soundsPlayed = String(Number(document.body.dataset.soundsPlayed ?? '0') + 1);
        chime?.play().catch(() => undefined);
      }),
    ];
    return () => subs.forEach((p) => p.then((un) => un()));
  }, []);

  const s = session.value;
  useEffect(() => {
    if (s?.me) {
      void loadFeed(true).then(() =>
        // Two frames: the page is laid out and painted.
        requestAnimationFrame(() => requestAnimationFrame(() => void api.firstPaint(feed.value.length).catch(() => undefined))),
      );
      api.getSettings().then((v) => (settings.value = v)).catch(showError);
    }
  }, [s?.me?.uid]);

  useEffect(() => {
    const theme = settings.value?.theme ?? 'system';
    if (theme === 'system') delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = theme;
  }, [settings.value?.theme]);

  useShortcuts();

  if (s === null) return <div class="splash" aria-busy="true">Opening your feed…</div>;
  if (!s.me)
    return (
      <>
        <Onboarding />
        <Toasts />
      </>
    );

  const r = route.value;
  return (
    <div class="shell">
      <Sidebar />
      <main class="content" id="main">
        {r.view === 'feed' && <Feed />}
        {r.view === 'notifications' && <Notifications />}
        {r.view === 'search' && <Search />}
        {r.view === 'settings' && <Settings />}
        {r.view === 'profile' && <Profile uid={r.uid} />}
      </main>
      {openThread.value && <Thread postId={openThread.value} />}
      <Toasts />
    </div>
  );
}
