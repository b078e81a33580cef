import { Icon } from './Icon';
import { dismissToast, openTarget, toasts } from '../store';

export function Toasts() {
  return (
    <div class="toasts" aria-live="polite" role="region" aria-label="Notifications">
      {toasts.value.map((t) => (
        <div key={t.id} class={`toast toast-${t.tone}`} role={t.tone === 'error' ? 'alert' : 'status'} data-testid="toast">
          <button
            class="toast-body"
            onClick={() => {
              if (t.target) openTarget(t.target);
              dismissToast(t.id);
            }}
          >
            <strong>{t.title}</strong>
            <span>{t.body}</span>
          </button>
          <button class="subtle" aria-label="Dismiss" onClick={() => dismissToast(t.id)}>
            <Icon name="close" size={16} />
          </button>
        </div>
      ))}
    </div>
  );
}
