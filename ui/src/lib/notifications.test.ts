import { describe, expect, it } from 'vitest';
import type { AppNotification } from '../api';
import { groupNotifications, groupText } from './notifications';

function n(id: string, kind: AppNotification['kind'], actor: string, name: string, post: string | null, at: number, read = false): AppNotification {
  return { id, kind, actor, actor_name: name, post_id: post, comment_id: null, created_at: at, read };
}

describe('groupNotifications', () => {
  it('groups likes of one post and names the first and counts the rest', () => {
    const list = ['Ana', 'Ben', 'Cara', 'Dan', 'Eve'].map((name, i) => n(`l${i}`, 'like', `u${i}`, name, 'p1', 100 - i));
    const groups = groupNotifications(list);
    expect(groups).toHaveLength(1);
    expect(groupText(groups[0])).toBe('Ana and 4 others liked your post');
    expect(groups[0].ids).toHaveLength(5);
  });

  it('keeps different posts and kinds apart, newest first', () => {
    const groups = groupNotifications([
      n('a', 'like', 'u1', 'Ana', 'p1', 1),
      n('b', 'comment', 'u2', 'Ben', 'p1', 3),
      n('c', 'follow', 'u3', 'Cara', null, 2, true),
    ]);
    expect(groups.map((g) => g.kind)).toEqual(['comment', 'follow', 'like']);
    expect(groupText(groups[0])).toBe('Ben commented on your post');
    expect(groups[1].unread).toBe(false);
    expect(groups[2].unread).toBe(true);
  });

  it('counts a person once however many times they acted', () => {
    const groups = groupNotifications([n('a', 'comment', 'u1', 'Ana', 'p1', 1), n('b', 'comment', 'u1', 'Ana', 'p1', 2)]);
    expect(groupText(groups[0])).toBe('Ana commented on your post (2 comments)');
    expect(groups[0].ids).toHaveLength(2);
  });

  it('falls back to the start of the user id without a name', () => {
    const groups = groupNotifications([{ ...n('a', 'follow', 'abcdefghijklmnop', '', null, 1), actor_name: null }]);
    expect(groupText(groups[0])).toBe('abcdefgh followed you');
  });
});
