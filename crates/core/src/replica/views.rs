//! Reading: the feed, threads, profiles, people, search, notifications, images (each a
//! view over the index, `crate::store::queries`).

use super::*;

impl Replica {
    /// A page of the feed: own and followed users' posts, newest first.
    pub fn feed(&self, after: Option<&FeedCursor>, limit: usize) -> Result<FeedPage> {
        queries::feed(self.store.conn(), self.me, after, limit)
    }

    /// One post.
    pub fn post_view(&self, id: &PostId) -> Result<FeedItem> {
        queries::post(self.store.conn(), self.me, id)
    }

    /// A post and its comments.
    pub fn thread(&self, id: &PostId) -> Result<ThreadView> {
        queries::thread(self.store.conn(), self.me, id)
    }

    /// A user's profile.
    pub fn profile(&self, uid: UserId) -> Result<ProfileView> {
        queries::profile(self.store.conn(), self.me, uid)
    }

    /// A user's posts, newest first.
    pub fn posts_by(&self, author: UserId, limit: usize) -> Result<Vec<FeedItem>> {
        queries::posts_by(self.store.conn(), self.me, author, limit)
    }

    /// People this profile holds whose name starts with `prefix`.
    pub fn people(&self, prefix: &str, limit: usize) -> Result<Vec<queries::PersonHit>> {
        queries::people(self.store.conn(), self.me, prefix, limit)
    }

    /// Full-text search over every post this profile holds.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<FeedItem>> {
        queries::search(self.store.conn(), self.me, query, limit)
    }

    /// Notifications, newest first.
    pub fn notifications(&self, unread_only: bool, limit: usize) -> Result<Vec<Notification>> {
        notifications::list(self.store.conn(), unread_only, limit)
    }

    /// Notifications of the given kinds only (every kind when `kinds` is empty), newest
    /// first.
    pub fn notifications_of_kinds(
        &self,
        unread_only: bool,
        kinds: &[NotificationKind],
        limit: usize,
    ) -> Result<Vec<Notification>> {
        notifications::list_of_kinds(self.store.conn(), unread_only, kinds, limit)
    }

    /// Where [`Replica::notifications_stored_after`] starts: the newest notification's row
    /// number (0 when there is none).
    pub fn last_notification_row(&self) -> Result<i64> {
        notifications::last_row(self.store.conn())
    }

    /// Notifications stored after row `after`, oldest first, and the row to ask after next
    /// time. A running client uses it to show what another process on the same profile
    /// (a one-shot `sync` beside the app) stored.
    pub fn notifications_stored_after(&self, after: i64) -> Result<(Vec<Notification>, i64)> {
        notifications::stored_after(self.store.conn(), after)
    }

    /// How many notifications are unread.
    pub fn unread_count(&self) -> Result<u64> {
        notifications::unread_count(self.store.conn())
    }

    /// Marks one notification read.
    pub fn mark_read(&mut self, id: &str) -> Result<()> {
        self.store.write(|c| notifications::mark_read(c, id))
    }

    /// Marks every notification read; returns how many were unread.
    pub fn mark_all_read(&mut self) -> Result<usize> {
        self.store.write(notifications::mark_all_read)
    }

    /// An image from the local cache.
    pub fn blob(&self, hash: &BlobHash) -> Result<Option<Blob>> {
        blobs::get(self.store.conn(), hash)
    }
}
