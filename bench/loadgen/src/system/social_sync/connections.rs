//! (c) Idle connections and (e) churn: logged-in light clients (the real client's
//! connection), the relay's memory and presence entries.

use std::time::Duration;

use super::light::{Light, identity};
use super::relay::Relay;
use crate::results::{Churn, Idle, Measured};
use crate::system::Paths;

/// Opens up to `connections` idle logged-in connections; memory per connection.
pub async fn idle(paths: &Paths, connections: usize) -> anyhow::Result<Measured> {
    let relay = Relay::start(paths)?;
    let url = relay.url();
    let before = relay.server().settled_rss_kib(Duration::from_secs(10));
    let mut open = Vec::with_capacity(connections);
    let mut stopped_by = None;
    'open: for chunk in (0..connections).collect::<Vec<_>>().chunks(250) {
        let joined = futures_util::future::join_all(chunk.iter().map(|&n| {
            let url = url.clone();
            async move { Light::connect(&url, identity(100_000 + n as u64)).await }
        }))
        .await;
        for light in joined {
            match light {
                Ok(light) => open.push(light.idle()),
                Err(e) => {
                    stopped_by = Some(format!("{e:#}"));
                    break 'open;
                }
            }
        }
    }
    let after = relay.server().settled_rss_kib(Duration::from_secs(20));
    let count = open.len();
    for task in open {
        task.abort();
    }
    Ok(Measured::Idle(Idle {
        connections: count,
        rss_before_kib: before,
        rss_after_kib: after,
        kib_per_connection: after.saturating_sub(before) as f64 / count.max(1) as f64,
        stopped_by,
    }))
}

/// `cycles` connect + log in + close cycles, `parallel` at once, after a warm-up.
pub async fn churn(paths: &Paths, cycles: usize, parallel: usize) -> anyhow::Result<Measured> {
    let relay = Relay::start(paths)?;
    let url = relay.url();
    let cycle = |from: usize, count: usize| {
        let url = url.clone();
        async move {
            for chunk in (from..from + count)
                .collect::<Vec<_>>()
                .chunks(parallel.max(1))
            {
                let joined = futures_util::future::join_all(chunk.iter().map(|&n| {
                    let url = url.clone();
                    // 1,000 users, each coming back many times, as people do.
                    async move {
                        let light =
                            Light::connect(&url, identity(200_000 + (n % 1_000) as u64)).await?;
                        light.close().await;
                        anyhow::Ok(())
                    }
                }))
                .await;
                for r in joined {
                    r?;
                }
            }
            anyhow::Ok(())
        }
    };
    cycle(0, 1_000).await?;
    let start = relay.server().settled_rss_kib(Duration::from_secs(10));
    cycle(1_000, cycles).await?;
    let end = relay.server().settled_rss_kib(Duration::from_secs(20));
    let presence = relay.metric("presence_entries")?;
    Ok(Measured::Churn(Churn {
        cycles,
        rss_start_kib: start,
        rss_end_kib: end,
        presence_left: Some(presence as u64),
    }))
}
