//! Who follows whom among the users connected to this node, so one message on a user's
//! owner channel reaches every follower here: the node subscribes to the owner channel of
//! everyone its users follow (counted in [`Interest`]), and a post costs one publish
//! whatever its author's number of followers, instead of one per follower.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use social_sync_protocol::UserId;

use crate::interest::{Channel, Interest};

#[derive(Debug, Default)]
struct Inner {
    /// Per user connected here, whom they follow.
    following: HashMap<UserId, HashSet<UserId>>,
    /// Per followed user, who follows them among the users connected here.
    followers: HashMap<UserId, HashSet<UserId>>,
}

/// The map, and the interest it counts into.
#[derive(Debug)]
pub struct LocalFollows {
    inner: Mutex<Inner>,
    interest: Arc<Interest>,
}

impl LocalFollows {
    /// An empty map counting into `interest`.
    pub fn new(interest: Arc<Interest>) -> Self {
        Self {
            inner: Mutex::default(),
            interest,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `user` connected here for the first time, following `following` (from the store).
    pub fn arrived(&self, user: UserId, following: Vec<UserId>) {
        let mut inner = self.lock();
        if inner.following.contains_key(&user) {
            return;
        }
        inner.following.insert(user, HashSet::new());
        for followee in following {
            Self::add(&mut inner, &self.interest, user, followee);
        }
    }

    /// `user`'s last connection here closed.
    pub fn left(&self, user: UserId) {
        let mut inner = self.lock();
        let Some(following) = inner.following.remove(&user) else {
            return;
        };
        for followee in following {
            if let Some(set) = inner.followers.get_mut(&followee) {
                set.remove(&user);
                if set.is_empty() {
                    inner.followers.remove(&followee);
                }
            }
            self.interest.unwant(&Channel::Owner(followee));
        }
    }

    /// Follows made or ended (by a user connected here or not: others are ignored).
    pub fn changed(&self, follows: &[(UserId, UserId, bool)]) {
        let mut inner = self.lock();
        for &(follower, followee, on) in follows {
            if !inner.following.contains_key(&follower) {
                continue;
            }
            if on {
                Self::add(&mut inner, &self.interest, follower, followee);
            } else if inner
                .following
                .get_mut(&follower)
                .is_some_and(|f| f.remove(&followee))
            {
                if let Some(set) = inner.followers.get_mut(&followee) {
                    set.remove(&follower);
                    if set.is_empty() {
                        inner.followers.remove(&followee);
                    }
                }
                self.interest.unwant(&Channel::Owner(followee));
            }
        }
    }

    fn add(inner: &mut Inner, interest: &Interest, follower: UserId, followee: UserId) {
        let fresh = inner
            .following
            .entry(follower)
            .or_default()
            .insert(followee);
        if fresh {
            inner
                .followers
                .entry(followee)
                .or_default()
                .insert(follower);
            interest.want(Channel::Owner(followee));
        }
    }

    /// The users connected here who follow `owner`.
    pub fn followers_here(&self, owner: UserId) -> Vec<UserId> {
        self.lock()
            .followers
            .get(&owner)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::interest::Need;

    fn u(n: u8) -> UserId {
        UserId::from_bytes([n; 32])
    }

    #[test]
    fn the_owner_channel_of_a_followed_user_lives_as_long_as_a_follower_here() {
        let (interest, mut rx) = Interest::new();
        let follows = LocalFollows::new(Arc::new(interest));
        follows.arrived(u(1), vec![u(9)]);
        follows.arrived(u(2), vec![u(9)]);
        assert!(matches!(rx.try_recv().unwrap(), Need::Want(Channel::Owner(o)) if o == u(9)));
        let mut here = follows.followers_here(u(9));
        here.sort();
        assert_eq!(here, vec![u(1), u(2)]);
        // A follow by someone not connected here changes nothing.
        follows.changed(&[(u(3), u(8), true)]);
        assert!(rx.try_recv().is_err());
        follows.changed(&[(u(1), u(8), true), (u(1), u(9), false)]);
        assert!(matches!(rx.try_recv().unwrap(), Need::Want(Channel::Owner(o)) if o == u(8)));
        assert_eq!(follows.followers_here(u(9)), vec![u(2)]);
        follows.left(u(2));
        assert!(matches!(rx.try_recv().unwrap(), Need::Drop(Channel::Owner(o)) if o == u(9)));
        follows.left(u(1));
        assert!(matches!(rx.try_recv().unwrap(), Need::Drop(Channel::Owner(o)) if o == u(8)));
        assert!(follows.followers_here(u(9)).is_empty());
    }
}
