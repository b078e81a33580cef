//! Presence across the cluster, in Redis: per user, a sorted set of `node/device` entries
//! scored by when they expire. A node adds an entry when a device connects to it, removes
//! it when the device's last connection there closes, and renews its entries every
//! a third of `--presence-ttl`; an entry not renewed within it (its node died) no longer counts,
//! and the first node to see a dead node tells the watchers of its users who went
//! offline with it. A user comes online with the cluster's first entry and goes offline
//! with its last, whichever nodes they are on.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

use redis::{AsyncCommands, RedisResult, Script};
use social_sync_protocol::{PresenceEntry, UserId};
use tokio::sync::watch;

use super::Bus;
use crate::interest::PREFIX;
use crate::shared::Shared;

fn key(user: UserId) -> String {
    format!("{PREFIX}p:{user}")
}

fn node_users(node: u64) -> String {
    format!("{PREFIX}n:{node:016x}")
}

fn nodes() -> String {
    format!("{PREFIX}nodes")
}

fn member(node: u64, device: &str) -> String {
    format!("{node:016x}/{device}")
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Adds an entry (dropping expired ones); returns how many live entries the user has.
static UP: LazyLock<Script> = LazyLock::new(|| Script::new(UP_LUA));
const UP_LUA: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[5])
return redis.call('ZCARD', KEYS[1])
";

/// Removes entries (and expired ones); returns how many live entries the user has left.
static DOWN: LazyLock<Script> = LazyLock::new(|| Script::new(DOWN_LUA));
const DOWN_LUA: &str = r"
for i = 2, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZCARD', KEYS[1])
";

impl Bus {
    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.presence_ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// How long Redis keeps a user's entries key: well beyond the entries' own expiry, so
    /// the node that sweeps a dead node still finds that node's entries (and announces
    /// their users offline) instead of a key Redis already dropped. Readers go by the
    /// entries' scores, never by the key's life.
    fn key_ttl_ms(&self) -> u64 {
        self.ttl_ms().saturating_mul(4)
    }

    /// `device` of `user` connected to this node; true if it is the user's first entry
    /// in the cluster (they came online).
    pub async fn device_up(&self, user: UserId, device: &str) -> RedisResult<bool> {
        let now = now_ms();
        let live: u64 = UP
            .key(key(user))
            .key(node_users(self.node))
            .arg(now + self.ttl_ms())
            .arg(member(self.node, device))
            .arg(now)
            .arg(self.key_ttl_ms())
            .arg(user.to_string())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(live == 1)
    }

    /// `device` of `user` has no connection left on this node; true if the user has no
    /// entry left in the cluster (they went offline).
    pub async fn device_down(&self, user: UserId, device: &str) -> RedisResult<bool> {
        let left: u64 = DOWN
            .key(key(user))
            .arg(now_ms())
            .arg(member(self.node, device))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(left == 0)
    }

    /// Which of `users` are online anywhere in the cluster, with how many devices.
    pub async fn online(&self, users: &[UserId]) -> RedisResult<Vec<PresenceEntry>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let mut pipe = redis::pipe();
        for u in users {
            pipe.zrangebyscore(key(*u), now, "+inf");
        }
        let found: Vec<Vec<String>> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(users
            .iter()
            .zip(found)
            .filter_map(|(user, members)| {
                let devices: HashSet<&str> = members
                    .iter()
                    .filter_map(|m| m.split_once('/').map(|(_, d)| d))
                    .collect();
                (!devices.is_empty()).then(|| PresenceEntry {
                    user: *user,
                    devices: u32::try_from(devices.len()).unwrap_or(u32::MAX),
                })
            })
            .collect())
    }

    /// Renews this node's entries and its own liveness.
    async fn renew(&self, devices: &[(UserId, String)]) -> RedisResult<()> {
        let expiry = now_ms() + self.ttl_ms();
        let mut pipe = redis::pipe();
        pipe.zadd(nodes(), format!("{:016x}", self.node), expiry)
            .ignore();
        pipe.pexpire(
            node_users(self.node),
            i64::try_from(self.ttl_ms() * 4).unwrap_or(i64::MAX),
        )
        .ignore();
        for (user, device) in devices {
            pipe.zadd(key(*user), member(self.node, device), expiry)
                .ignore();
            pipe.pexpire(
                key(*user),
                i64::try_from(self.key_ttl_ms()).unwrap_or(i64::MAX),
            )
            .ignore();
            pipe.sadd(node_users(self.node), user.to_string()).ignore();
        }
        pipe.query_async(&mut self.conn.clone()).await
    }

    /// Nodes whose liveness expired, each claimed by this node (only one node cleans up
    /// after a dead one), with the users whose last entry was there.
    async fn sweep(&self) -> RedisResult<Vec<UserId>> {
        let mut conn = self.conn.clone();
        let dead: Vec<String> = conn.zrangebyscore(nodes(), "-inf", now_ms()).await?;
        let mut offline = Vec::new();
        for node in dead {
            let claimed: u64 = conn.zrem(nodes(), &node).await?;
            if claimed == 0 {
                continue;
            }
            let Ok(number) = u64::from_str_radix(&node, 16) else {
                continue;
            };
            let users: Vec<String> = conn.smembers(node_users(number)).await?;
            for user in users.iter().filter_map(|u| u.parse::<UserId>().ok()) {
                let members: Vec<String> = conn.zrange(key(user), 0, -1).await?;
                let theirs: Vec<&String> = members
                    .iter()
                    .filter(|m| m.starts_with(&format!("{node}/")))
                    .collect();
                let mut down = DOWN.prepare_invoke();
                down.key(key(user)).arg(now_ms());
                for m in &theirs {
                    down.arg(*m);
                }
                let left: u64 = down.invoke_async(&mut conn).await?;
                if left == 0 && !theirs.is_empty() {
                    offline.push(user);
                }
            }
            let _: () = conn.del(node_users(number)).await?;
            tracing::warn!(
                node,
                users = users.len(),
                "a relay node stopped renewing its presence entries; its users are offline unless connected elsewhere"
            );
        }
        Ok(offline)
    }
}

/// Renews this node's entries three times per `--presence-ttl` and tells the watchers of users who went
/// offline with a dead node.
pub(super) async fn heartbeat(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let Some(bus) = &shared.bus else { return };
    let mut tick = tokio::time::interval(bus.presence_ttl / 3);
    // Since when this node's renewals have all gone through. A node sweeps only after a
    // whole TTL of them: right after an outage (its own, or Redis reloading old data), the
    // other nodes have not renewed yet either, and would be taken for dead.
    let mut renewing_since: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let renewed =
            tokio::time::timeout(bus.presence_ttl / 3, bus.renew(&shared.hub.devices())).await;
        if !matches!(renewed, Ok(Ok(()))) {
            tracing::warn!(outcome = ?renewed, "cannot renew presence on the bus");
            renewing_since = None;
            continue;
        }
        let since = *renewing_since.get_or_insert_with(std::time::Instant::now);
        if since.elapsed() < bus.presence_ttl {
            continue;
        }
        match bus.sweep().await {
            Ok(offline) if !offline.is_empty() => {
                // Told from a task of its own: a large dead node's users take many store
                // reads, and this loop must keep renewing this node's own entries.
                let shared = shared.clone();
                tokio::spawn(async move {
                    for user in offline {
                        crate::presence::announce(&shared, user, false).await;
                    }
                });
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot look for dead nodes on the bus"),
        }
    }
}
