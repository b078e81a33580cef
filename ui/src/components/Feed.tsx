import { Virtualizer, elementScroll, observeElementOffset, observeElementRect } from '@tanstack/virtual-core';
import { useEffect, useLayoutEffect, useMemo, useReducer, useRef } from 'preact/hooks';
import { feed, feedDone, feedLoading, loadFeed } from '../store';
import { Compose } from './Compose';
import { PostCard } from './PostCard';

/** The feed: a virtualised list, so 10,000 posts scroll as smoothly as 10. */
export function Feed() {
  const scroller = useRef<HTMLDivElement>(null);
  const [, rerender] = useReducer((n: number) => n + 1, 0);
  const items = feed.value;
  const now = Date.now();

  const virtualizer = useMemo(
    () =>
      new Virtualizer<HTMLDivElement, HTMLElement>({
        count: 0,
        getScrollElement: () => scroller.current,
        estimateSize: () => 150,
        overscan: 6,
        gap: 12,
        paddingStart: 0,
        scrollToFn: elementScroll,
        observeElementRect,
        observeElementOffset,
        onChange: () => rerender(0),
        getItemKey: (i) => feed.value[i]?.post_id ?? i,
      }),
    [],
  );
  virtualizer.setOptions({ ...virtualizer.options, count: items.length });
  useLayoutEffect(() => virtualizer._didMount(), [virtualizer]);
  useLayoutEffect(() => virtualizer._willUpdate());

  const virtual = virtualizer.getVirtualItems();
  const last = virtual[virtual.length - 1];
  useEffect(() => {
    if (last && last.index >= items.length - 10 && !feedDone.value && !feedLoading.value) void loadFeed(false);
  }, [last?.index, items.length]);

  return (
    <div class="feed-scroll" ref={scroller} data-testid="feed">
      <div class="column">
        <Compose />
        {items.length === 0 && !feedLoading.value && (
          <p class="empty">Nothing here yet. Post something, or find people to follow in Search.</p>
        )}
        <div class="virtual" style={{ height: `${virtualizer.getTotalSize()}px` }} role="feed" aria-busy={feedLoading.value}>
          {virtual.map((v) => {
            const post = items[v.index];
            if (!post) return null;
            return (
              <div key={v.key} data-index={v.index} ref={(el) => {
                  if (el) virtualizer.measureElement(el);
                }} class="virtual-row" style={{ transform: `translateY(${v.start}px)` }}>
                <PostCard post={post} now={now} />
              </div>
            );
          })}
        </div>
        {feedLoading.value && <p class="muted center">Loading…</p>}
      </div>
    </div>
  );
}
