import { convertFileSrc } from '@tauri-apps/api/core';
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { revision } from '../store';

/** The address of an image in the local cache (`ssimg://`, served by the shell). */
export function imageUrl(hash: string): string {
  return convertFileSrc(hash, 'ssimg');
}

interface Props {
  hash: string;
  alt: string;
  class?: string;
  style?: Record<string, string>;
  loading?: 'lazy' | 'eager';
  'data-testid'?: string;
  /** Shown instead while the image has not arrived (nothing if absent). */
  fallback?: JSX.Element;
}

/** Which address an image was last tried at (`rev`: with `?after=rev`, or plain), and how it went. */
interface Attempt {
  hash: string;
  rev: number | null;
  failed: boolean;
}

/**
 * An image from the local cache. Images sync after the post or profile that names them, so
 * one may be missing when first shown: it is asked for again each time synced data changes,
 * and until then the fallback (or nothing) stands in. Once it loads, its address stays put.
 */
export function CachedImage({ hash, fallback, ...props }: Props) {
  const [attempt, setAttempt] = useState<Attempt | null>(null);
  const rev = revision.value;
  const current: Attempt = attempt?.hash === hash ? attempt : { hash, rev: null, failed: false };
  if (current.failed && current.rev === rev) return fallback ?? null;
  const used = current.failed ? rev : current.rev;
  const base = imageUrl(hash);
  return (
    <img
      {...props}
      src={used === null ? base : `${base}?after=${used}`}
      onLoad={() => current.failed && setAttempt({ hash, rev: used, failed: false })}
      onError={() => setAttempt({ hash, rev: used ?? rev, failed: true })}
    />
  );
}
