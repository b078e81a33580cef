import { useEffect } from 'preact/hooks';
import { navigate, openThread } from '../store';

function typing(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  return !!el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.isContentEditable);
}

/** Moves focus to the next or previous post card. */
function step(delta: number) {
  const cards = [...document.querySelectorAll<HTMLElement>('[data-post-card]')];
  if (cards.length === 0) return;
  const at = cards.findIndex((c) => c.contains(document.activeElement));
  const next = cards[Math.max(0, Math.min(cards.length - 1, at < 0 ? 0 : at + delta))];
  next.focus();
  next.scrollIntoView({ block: 'nearest' });
}

/** n: compose, /: search, j/k: next/previous post, Esc: close the thread. */
export function useShortcuts() {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape' && openThread.value) {
        openThread.value = null;
        return;
      }
      if (typing(e.target) || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === 'n') {
        e.preventDefault();
        navigate({ view: 'feed' });
        setTimeout(() => document.getElementById('compose-text')?.focus(), 0);
      } else if (e.key === '/') {
        e.preventDefault();
        navigate({ view: 'search' });
        setTimeout(() => document.getElementById('search-input')?.focus(), 0);
      } else if (e.key === 'j') step(1);
      else if (e.key === 'k') step(-1);
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);
}
