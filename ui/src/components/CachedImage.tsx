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

/**
 * An image from the local cache. Images sync after the post or profile that names them, so
 * one may be missing when first shown: it is asked for again each time synced data changes,
 * and until then the fallback (or nothing) stands in.
 */
export function CachedImage({ hash, fallback, ...props }: Props) {
  const [missingAt, setMissingAt] = useState<number | null>(null);
  const rev = revision.value;
  if (missingAt !== null && missingAt === rev) return fallback ?? null;
  const src = missingAt === null ? imageUrl(hash) : `${imageUrl(hash)}?after=${rev}`;
  return <img {...props} src={src} onError={() => setMissingAt(revision.value)} />;
}
