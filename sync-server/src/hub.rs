//! Who is connected: connections with their outbound queues, presence (one entry per
//! device, never stored; a device may have several running clients, told apart by
//! `hello.instance`), document subscriptions, and connections per address. Fan-out
//! goes through here: a frame is encoded once and queued on every recipient connection.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use social_sync_protocol::{DocId, ErrorCode, PresenceEntry, ServerMessage, UserId, wire};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::connection::Outbound;
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
}

impl Hub {
    /// An empty hub reporting into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            inner: Mutex::default(),
            metrics,
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
    /// Returns the new id and whether the user was already online on some device (so no
    /// presence change is announced).
    pub fn register(
        &self,
        user: UserId,
        device: &str,
        instance: Option<u64>,
        out: Outbound,
        kick: oneshot::Sender<ErrorCode>,
    ) -> (ConnId, bool) {
        let mut inner = self.lock();
        inner.next += 1;
        let id = inner.next;
        let user_was_online = inner.devices.get(&user).is_some_and(|d| !d.is_empty());
        let previous = inner
            .devices
            .entry(user)
            .or_default()
            .entry(device.to_owned())
            .or_default()
            .insert(instance, id);
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
        (id, user_was_online)
    }

    /// Removes a connection. Returns its user and device if the user is now offline: this
    /// was their last connection (not when a newer connection of the same running client
    /// replaced it).
    pub fn unregister(&self, id: ConnId) -> Option<(UserId, String)> {
        let mut inner = self.lock();
        let conn = inner.conns.remove(&id)?;
        let subscribed = inner.subscribed.remove(&id).unwrap_or_default();
        self.metrics.subscriptions.dec_by(subscribed.len() as i64);
        for doc in subscribed {
            if let Some(set) = inner.subscriptions.get_mut(&doc) {
                set.remove(&id);
                if set.is_empty() {
                    inner.subscriptions.remove(&doc);
                }
            }
        }
        let mut offline = None;
        if let Some(devices) = inner.devices.get_mut(&conn.user) {
            if let Some(instances) = devices.get_mut(&conn.device)
                && instances.get(&conn.instance) == Some(&id)
            {
                instances.remove(&conn.instance);
                if instances.is_empty() {
                    devices.remove(&conn.device);
                }
                if devices.is_empty() {
                    offline = Some((conn.user, conn.device));
                }
            }
            if devices.is_empty() {
                inner.devices.remove(&conn.user);
            }
        }
        self.update_gauges(&inner);
        offline
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
        inner
            .subscriptions
            .entry(doc.clone())
            .or_default()
            .insert(id);
        self.metrics.subscriptions.inc();
        true
    }

    /// Queues `frame` on every connection of `users` and every subscriber of `doc`, except
    /// `except`. A connection whose outbound budget it would exceed is cut as a slow reader
    /// (the frame counts against each recipient's budget, as its own replies do).
    pub fn fan_out(&self, users: &[UserId], doc: Option<&DocId>, frame: &Bytes, except: ConnId) {
        let inner = self.lock();
        let mut targets: HashSet<ConnId> = users
            .iter()
            .filter_map(|u| inner.devices.get(u))
            .flat_map(|d| d.values().flat_map(|i| i.values().copied()))
            .collect();
        if let Some(subs) = doc.and_then(|d| inner.subscriptions.get(d)) {
            targets.extend(subs.iter().copied());
        }
        targets.remove(&except);
        for id in targets {
            if let Some(conn) = inner.conns.get(&id) {
                // Over its outbound budget, the connection cuts itself as a slow reader.
                let _ = conn.out.push(Message::Binary(frame.clone()));
            }
        }
    }

    /// Tells the connections of `watchers` that `user` came online (a first device) or
    /// went offline (the last one). Which device is never said.
    pub fn announce_presence(&self, watchers: &[UserId], user: UserId, online: bool) {
        let frame = Bytes::from(wire::encode(&ServerMessage::PresenceChanged {
            user,
            online,
        }));
        self.fan_out(watchers, None, &frame, 0);
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
