//! Who is connected: connections with their outbound queues, presence (one entry per
//! device, never stored; a device may have several running clients, told apart by
//! `hello.instance`), document subscriptions, and connections per address. Fan-out
//! goes through here: a frame is encoded once and queued on every recipient connection.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use social_sync_protocol::{DocId, ErrorCode, PresenceEntry, UserId};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::connection::Outbound;
use crate::interest::{Channel, Interest};
use crate::metrics::Metrics;

/// A connection's number.
pub type ConnId = u64;

/// What the hub keeps of one authenticated connection.
#[derive(Debug)]
struct Conn {
    user: UserId,
    device: String,
    instance: Option<u64>,
    out: Outbound,
    kick: Option<oneshot::Sender<ErrorCode>>,
}

#[derive(Debug, Default)]
struct Inner {
    next: ConnId,
    conns: HashMap<ConnId, Conn>,
    /// Per user, per device, per running client (`hello.instance`): the connection.
    devices: HashMap<UserId, HashMap<String, HashMap<Option<u64>, ConnId>>>,
    subscriptions: HashMap<DocId, HashSet<ConnId>>,
    subscribed: HashMap<ConnId, HashSet<DocId>>,
    per_ip: HashMap<IpAddr, usize>,
}

/// The registry of live connections.
#[derive(Debug)]
pub struct Hub {
    inner: Mutex<Inner>,
    metrics: Arc<Metrics>,
    /// The bus channels this node needs, in a cluster: a user's own channels while they
    /// have a connection here, a document's while it has a subscriber here.
    interest: Option<Arc<Interest>>,
}

/// What [`Hub::register`] found.
#[derive(Debug, Clone, Copy)]
pub struct Joined {
    /// The new connection's number.
    pub id: ConnId,
    /// The user already had a connection on this node.
    pub user_was_here: bool,
    /// This device of the user already had a connection on this node.
    pub device_was_here: bool,
}

/// What [`Hub::unregister`] left.
#[derive(Debug, Clone)]
pub struct Left {
    /// The user.
    pub user: UserId,
    /// The device.
    pub device: String,
    /// It was the device's last connection on this node.
    pub device_gone: bool,
    /// It was the user's last connection on this node.
    pub user_gone: bool,
}

impl Hub {
    /// An empty hub reporting into `metrics`, telling `interest` (in a cluster) which bus
    /// channels its connections need.
    pub fn new(metrics: Arc<Metrics>, interest: Option<Arc<Interest>>) -> Self {
        Self {
            inner: Mutex::default(),
            metrics,
            interest,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a new connection from `ip`; false if `ip` already has `max`.
    pub fn admit(&self, ip: IpAddr, max: usize) -> bool {
        let mut inner = self.lock();
        let n = inner.per_ip.entry(ip).or_default();
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    /// Forgets a connection from `ip`.
    pub fn release(&self, ip: IpAddr) {
        let mut inner = self.lock();
        if let Some(n) = inner.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                inner.per_ip.remove(&ip);
            }
        }
    }

    /// Registers an authenticated connection. A connection of the same device and instance
    /// (the same running client reconnecting) is replaced: it is told why and closed.
    /// Other instances of the device (a one-shot command beside a running app) stay.
    /// Says whether the user and the device already had a connection on this node (if
    /// not, the node announces the user online, after asking the cluster in a cluster).
    pub fn register(
        &self,
        user: UserId,
        device: &str,
        instance: Option<u64>,
        out: Outbound,
        kick: oneshot::Sender<ErrorCode>,
    ) -> Joined {
        let mut inner = self.lock();
        inner.next += 1;
        let id = inner.next;
        let user_was_here = inner.devices.get(&user).is_some_and(|d| !d.is_empty());
        let instances = inner
            .devices
            .entry(user)
            .or_default()
            .entry(device.to_owned())
            .or_default();
        let device_was_here = !instances.is_empty();
        let previous = instances.insert(instance, id);
        if !user_was_here && let Some(interest) = &self.interest {
            interest.want(Channel::User(user));
            interest.want(Channel::Owner(user));
        }
        if let Some(old) = previous.and_then(|old| inner.conns.get_mut(&old))
            && let Some(kick) = old.kick.take()
        {
            let _ = kick.send(ErrorCode::Replaced);
        }
        inner.conns.insert(
            id,
            Conn {
                user,
                device: device.to_owned(),
                instance,
                out,
                kick: Some(kick),
            },
        );
        self.update_gauges(&inner);
        Joined {
            id,
            user_was_here,
            device_was_here,
        }
    }

    /// Removes a connection. Returns its user and device, and whether they have any
    /// connection left on this node, unless a newer connection of the same running client
    /// replaced it (then nothing changed for them).
    pub fn unregister(&self, id: ConnId) -> Option<Left> {
        let mut inner = self.lock();
        let conn = inner.conns.remove(&id)?;
        let subscribed = inner.subscribed.remove(&id).unwrap_or_default();
        self.metrics.subscriptions.dec_by(subscribed.len() as i64);
        for doc in subscribed {
            if let Some(set) = inner.subscriptions.get_mut(&doc) {
                set.remove(&id);
                if set.is_empty() {
                    inner.subscriptions.remove(&doc);
                    if let Some(interest) = &self.interest {
                        interest.unwant(&Channel::Doc(doc));
                    }
                }
            }
        }
        let mut left = None;
        if let Some(devices) = inner.devices.get_mut(&conn.user) {
            if let Some(instances) = devices.get_mut(&conn.device)
                && instances.get(&conn.instance) == Some(&id)
            {
                instances.remove(&conn.instance);
                let device_gone = instances.is_empty();
                if device_gone {
                    devices.remove(&conn.device);
                }
                left = Some(Left {
                    user: conn.user,
                    device: conn.device,
                    device_gone,
                    user_gone: devices.is_empty(),
                });
            }
            if devices.is_empty() {
                inner.devices.remove(&conn.user);
                if let Some(interest) = &self.interest {
                    interest.unwant(&Channel::User(conn.user));
                    interest.unwant(&Channel::Owner(conn.user));
                }
            }
        }
        self.update_gauges(&inner);
        left
    }

    /// Every (user, device) connected here: what a node tells the cluster it holds.
    pub fn devices(&self) -> Vec<(UserId, String)> {
        let inner = self.lock();
        inner
            .devices
            .iter()
            .flat_map(|(u, d)| d.keys().map(|device| (*u, device.clone())))
            .collect()
    }

    /// Closes every connection, telling each client `code` (it reconnects and catches up):
    /// what a node does when it missed more live messages than it can pass on.
    pub fn kick_all(&self, code: ErrorCode) {
        let mut inner = self.lock();
        for conn in inner.conns.values_mut() {
            if let Some(kick) = conn.kick.take() {
                let _ = kick.send(code);
            }
        }
    }

    fn update_gauges(&self, inner: &Inner) {
        self.metrics.users.set(inner.devices.len() as i64);
        self.metrics
            .presence_entries
            .set(inner.devices.values().map(|d| d.len() as i64).sum());
    }

    /// Subscribes a connection to live changes of `doc`, unless it already has `max`
    /// subscriptions (then false).
    pub fn subscribe(&self, id: ConnId, doc: &DocId, max: usize) -> bool {
        let mut inner = self.lock();
        let mine = inner.subscribed.entry(id).or_default();
        if mine.contains(doc) {
            return true;
        }
        if mine.len() >= max {
            return false;
        }
        mine.insert(doc.clone());
        let subscribers = inner.subscriptions.entry(doc.clone()).or_default();
        if subscribers.is_empty()
            && let Some(interest) = &self.interest
        {
            interest.want(Channel::Doc(doc.clone()));
        }
        subscribers.insert(id);
        self.metrics.subscriptions.inc();
        true
    }

    /// Queues `frame` on every connection of `users` and every subscriber of `doc`, except
    /// `except`. A connection whose outbound budget it would exceed is cut as a slow reader
    /// (the frame counts against each recipient's budget, as its own replies do).
    pub fn fan_out(&self, users: &[UserId], doc: Option<&DocId>, frame: &Bytes, except: ConnId) {
        self.fan_out_once(users, doc, frame, &mut HashSet::from([except]));
    }

    /// [`Self::fan_out`] to the connections not in `done`, adding those it queued on: one
    /// message coming to this node on several bus channels reaches each connection once.
    pub fn fan_out_once(
        &self,
        users: &[UserId],
        doc: Option<&DocId>,
        frame: &Bytes,
        done: &mut HashSet<ConnId>,
    ) {
        let inner = self.lock();
        let mut targets: HashSet<ConnId> = users
            .iter()
            .filter_map(|u| inner.devices.get(u))
            .flat_map(|d| d.values().flat_map(|i| i.values().copied()))
            .collect();
        if let Some(subs) = doc.and_then(|d| inner.subscriptions.get(d)) {
            targets.extend(subs.iter().copied());
        }
        for id in targets {
            if done.insert(id)
                && let Some(conn) = inner.conns.get(&id)
            {
                // Over its outbound budget, the connection cuts itself as a slow reader.
                let _ = conn.out.push(Message::Binary(frame.clone()));
            }
        }
    }

    /// Whether `user` has a device connected.
    pub fn is_online(&self, user: UserId) -> bool {
        self.lock()
            .devices
            .get(&user)
            .is_some_and(|d| !d.is_empty())
    }

    /// Which of `users` are online, with how many devices (never which).
    pub fn online(&self, users: &[UserId]) -> Vec<PresenceEntry> {
        let inner = self.lock();
        users
            .iter()
            .filter_map(|u| {
                let devices = inner.devices.get(u).filter(|d| !d.is_empty())?;
                Some(PresenceEntry {
                    user: *u,
                    devices: u32::try_from(devices.len()).unwrap_or(u32::MAX),
                })
            })
            .collect()
    }
}
