import { useRef, useState } from 'preact/hooks';
import { api } from '../api';
import { Icon } from './Icon';
import { loadFeed, showError, status } from '../store';
import { toBase64 } from '../lib/files';

const MAX_IMAGES = 8;

interface Attached {
  file: File;
  url: string;
}

export function Compose() {
  const [text, setText] = useState('');
  const [images, setImages] = useState<Attached[]>([]);
  const [busy, setBusy] = useState(false);
  const [dragging, setDragging] = useState(false);
  const picker = useRef<HTMLInputElement>(null);

  const attach = (files: Iterable<File>) => {
    const added = [...files].filter((f) => f.type.startsWith('image/')).map((file) => ({ file, url: URL.createObjectURL(file) }));
    setImages((cur) => [...cur, ...added].slice(0, MAX_IMAGES));
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!text.trim() && images.length === 0) return;
    setBusy(true);
    try {
      await api.createPost(text, await Promise.all(images.map((i) => toBase64(i.file))));
      setText('');
      images.forEach((i) => URL.revokeObjectURL(i.url));
      setImages([]);
      await loadFeed(true);
    } catch (err) {
      showError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form
      class={dragging ? 'card compose dragging' : 'card compose'}
      onSubmit={submit}
      onDragOver={(e) => {
        e.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={(e) => {
        e.preventDefault();
        setDragging(false);
        if (e.dataTransfer) attach(e.dataTransfer.files);
      }}
      aria-label="New post"
    >
      <label class="sr-only" for="compose-text">
        What's happening?
      </label>
      <textarea
        id="compose-text"
        placeholder={status.value.status === 'online' ? "What's happening?" : "What's happening? (offline: it goes out when you reconnect)"}
        value={text}
        maxLength={5000}
        rows={3}
        onInput={(e) => setText(e.currentTarget.value)}
        onPaste={(e) => {
          const files = e.clipboardData?.files;
          if (files && files.length > 0) attach(files);
        }}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) void submit(e);
        }}
      />
      {images.length > 0 && (
        <div class="attachments">
          {images.map((img, i) => (
            <figure key={img.url}>
              <img src={img.url} alt={`Attachment ${i + 1}`} />
              <button type="button" aria-label={`Remove attachment ${i + 1}`} onClick={() => setImages(images.filter((x) => x !== img))}>
                <Icon name="close" size={14} />
              </button>
            </figure>
          ))}
        </div>
      )}
      <div class="compose-bar">
        <input ref={picker} type="file" accept="image/png,image/jpeg,image/gif,image/webp" multiple hidden onChange={(e) => e.currentTarget.files && attach(e.currentTarget.files)} />
        <button type="button" class="subtle" onClick={() => picker.current?.click()} aria-label="Add images">
          <Icon name="image" /> Images
        </button>
        <span class="muted small">{text.length > 4500 ? `${5000 - text.length} left` : 'Ctrl+Enter to post'}</span>
        <button class="primary" type="submit" disabled={busy || (!text.trim() && images.length === 0)}>
          Post
        </button>
      </div>
    </form>
  );
}
