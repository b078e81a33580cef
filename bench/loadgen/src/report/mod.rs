//! `docs/benchmarks.md` and its SVG plot, from the JSON lines of a run (`scripts/bench`).
//!
//! The figures are written from the run; the analysis (what costs what, what would fix it)
//! is `bench/notes.md`, kept by hand and copied in under the figures.
//!
//! # Layout
//! - this module: [`write`], the page's tables and the targets' verdicts.
//! - [`plot`]: the SVG of fan-out latency against followers.
//! - [`machine`]: what the run ran on.

mod machine;
mod plot;

use std::fmt::Write as _;

use anyhow::Context;

use crate::results::{Measured, Outcome};

/// What `loadgen report` reads and writes.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportPaths {
    /// The run's JSON lines (one [`Outcome`] each).
    #[arg(long)]
    pub results: std::path::PathBuf,
    /// The real app's click-to-notification line (`scripts/bench-notify`'s last line).
    #[arg(long)]
    pub notify: Option<std::path::PathBuf>,
    /// The hand-kept analysis copied under the figures.
    #[arg(long, default_value = "bench/notes.md")]
    pub notes: std::path::PathBuf,
    /// The page to write.
    #[arg(long, default_value = "docs/benchmarks.md")]
    pub out: std::path::PathBuf,
    /// The plot to write beside it.
    #[arg(long, default_value = "docs/benchmarks-fan-out.svg")]
    pub svg: std::path::PathBuf,
}

/// Reads the run's lines and writes the page and the plot.
pub fn write(paths: &ReportPaths) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&paths.results)
        .with_context(|| format!("could not read {}", paths.results.display()))?;
    let outcomes: Vec<Outcome> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| {
            format!(
                "{} holds a line that is not a result",
                paths.results.display()
            )
        })?;
    let notify = match &paths.notify {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("could not read {}", p.display()))?,
        ),
        None => None,
    };
    let notes = std::fs::read_to_string(&paths.notes).unwrap_or_default();
    let svg_name = paths
        .svg
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::write(&paths.svg, plot::fan_out(&outcomes))
        .with_context(|| format!("could not write {}", paths.svg.display()))?;
    let page = page(&outcomes, notify.as_deref(), &notes, &svg_name);
    std::fs::write(&paths.out, page)
        .with_context(|| format!("could not write {}", paths.out.display()))?;
    Ok(())
}

/// A system's name as the tables show it.
fn label(o: &Outcome) -> String {
    let name = match o.system.as_str() {
        "social_sync" => "Social Sync",
        "social_sync_engine" => "Social Sync, every client a real engine",
        "socketio" => "Socket.IO + Redis (the seed)",
        "automerge_repo" => "automerge-repo sync server",
        other => other,
    };
    if o.nodes > 1 {
        format!("{name}, {} nodes", o.nodes)
    } else {
        name.to_owned()
    }
}

/// The whole page.
fn page(outcomes: &[Outcome], notify: Option<&str>, notes: &str, svg: &str) -> String {
    let mut p = String::new();
    let _ = writeln!(p, "# Benchmarks: Social Sync beside the seed's stack\n");
    let _ = writeln!(
        p,
        "Written by `scripts/bench` (the figures) from `bench/loadgen`; the analysis under them is \
         `bench/notes.md`. Every server ran as its real process on loopback, one workload at a \
         time, with its clients in the load generator on the same machine.\n"
    );
    let _ = writeln!(p, "{}", machine::describe());
    let _ = writeln!(p, "{}", verdicts(outcomes, notify));
    let _ = writeln!(
        p,
        "## (a) Fan-out: one author's post to every online follower\n"
    );
    let _ = writeln!(
        p,
        "![fan-out latency against followers]({svg})\n\n(Drawn: the systems run at every size; \
         the others are in the table. \"N nodes\": a cluster, the followers spread over the \
         nodes round robin, the author on the first; Social Sync's nodes share a private \
         PostgreSQL and Redis, the seed's share Redis; all of it on the same cores as the \
         clients.)\n"
    );
    let _ = writeln!(
        p,
        "| system | followers | p50 ms | p99 ms | max ms | delivered / expected | duplicates | deliveries/s (burst) | delivered when |\n|---|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for o in outcomes {
        if let Measured::FanOut(f) = &o.result {
            let _ = writeln!(
                p,
                "| {} | {} | {:.1} | {:.1} | {:.1} | {} / {} | {} | {:.0} | {} |",
                label(o),
                f.followers,
                f.latency.p50_ms,
                f.latency.p99_ms,
                f.latency.max_ms,
                f.delivered,
                f.expected,
                f.duplicates,
                f.deliveries_per_sec,
                f.delivered_when
            );
        }
    }
    let _ = writeln!(
        p,
        "\n## (b) Like storm: likes on one post within a second, watched\n"
    );
    let _ = writeln!(
        p,
        "| system | likers | viewers | sending ms | settled ms (after the last like) | exact viewers | largest count seen |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for o in outcomes {
        if let Measured::LikeStorm(l) = &o.result {
            let _ = writeln!(
                p,
                "| {} | {} | {} | {:.0} | {:.1} | {} | {} |",
                label(o),
                l.likers,
                l.viewers,
                l.sending_ms,
                l.settled_ms,
                l.exact_viewers,
                l.max_count_seen
            );
        }
    }
    let _ = writeln!(
        p,
        "\n## (c) Idle connections: server memory per connection\n"
    );
    let _ = writeln!(
        p,
        "| system | connections | RSS before KiB | RSS after KiB | KiB per connection | stopped by |\n|---|---:|---:|---:|---:|---|"
    );
    for o in outcomes {
        if let Measured::Idle(i) = &o.result {
            let _ = writeln!(
                p,
                "| {} | {} | {} | {} | {:.2} | {} |",
                label(o),
                i.connections,
                i.rss_before_kib,
                i.rss_after_kib,
                i.kib_per_connection,
                i.stopped_by.as_deref().unwrap_or("—")
            );
        }
    }
    let _ = writeln!(
        p,
        "\n## (d) Catch-up: a device back after its people wrote\n"
    );
    let _ = writeln!(
        p,
        "| system | authors | changes | ms | bytes on the wire | changes' own bytes | ratio |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for o in outcomes {
        if let Measured::CatchUp(c) = &o.result {
            let _ = writeln!(
                p,
                "| {} | {} | {} | {:.0} | {} | {} | {:.2} |",
                label(o),
                c.authors,
                c.changes,
                c.ms,
                c.wire_bytes,
                c.change_bytes,
                c.wire_bytes as f64 / c.change_bytes.max(1) as f64
            );
        }
    }
    let _ = writeln!(p, "\n## (e) Churn: connect, log in, leave\n");
    let _ = writeln!(
        p,
        "| system | cycles | RSS start KiB | RSS end KiB | change | presence entries left |\n|---|---:|---:|---:|---:|---:|"
    );
    for o in outcomes {
        if let Measured::Churn(c) = &o.result {
            let _ = writeln!(
                p,
                "| {} | {} | {} | {} | {:+.1} % | {} |",
                label(o),
                c.cycles,
                c.rss_start_kib,
                c.rss_end_kib,
                (c.rss_end_kib as f64 / c.rss_start_kib.max(1) as f64 - 1.0) * 100.0,
                c.presence_left
                    .map_or("not told".to_owned(), |n| n.to_string())
            );
        }
    }
    let _ = writeln!(
        p,
        "\n## (f) The real app: a like in Ben's window to Ana's notification\n"
    );
    match notify {
        Some(line) => {
            let _ = writeln!(p, "`scripts/bench-notify`: {}\n", line.trim());
        }
        None => {
            let _ = writeln!(
                p,
                "Not run this time (`scripts/bench` without `--quick` runs it).\n"
            );
        }
    }
    let cannot: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match &o.result {
            Measured::CannotDo { workload, reason } => Some((label(o), workload, reason)),
            _ => None,
        })
        .collect();
    if !cannot.is_empty() {
        let _ = writeln!(
            p,
            "## What a system cannot do\n\n| system | workload | why |\n|---|---|---|"
        );
        for (system, workload, reason) in cannot {
            let _ = writeln!(p, "| {system} | {workload} | {reason} |");
        }
        p.push('\n');
    }
    if !notes.trim().is_empty() {
        let _ = writeln!(p, "{}", notes.trim_end());
    }
    p
}

/// The targets against this run's figures.
fn verdicts(outcomes: &[Outcome], notify: Option<&str>) -> String {
    let fan_out = |system: &str, followers: usize| {
        outcomes.iter().find_map(|o| match &o.result {
            Measured::FanOut(f)
                if o.system == system && o.nodes == 1 && f.followers == followers =>
            {
                Some(f.clone())
            }
            _ => None,
        })
    };
    let best_rate = |system: &str| {
        outcomes
            .iter()
            .filter_map(|o| match &o.result {
                Measured::FanOut(f) if o.system == system && o.nodes == 1 => {
                    Some(f.deliveries_per_sec)
                }
                _ => None,
            })
            .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))))
    };
    let mut rows = Vec::new();
    let mut row = |target: &str, measured: String, met: Option<bool>| {
        let verdict = match met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "not measured",
        };
        rows.push(format!("| {target} | {measured} | {verdict} |"));
    };
    match notify.and_then(parse_notify) {
        Some((p50, p99)) => row(
            "click → other desktop's notification: p50 < 30 ms, p99 < 100 ms",
            format!("p50 {p50:.1} ms, p99 {p99:.1} ms"),
            Some(p50 < 30.0 && p99 < 100.0),
        ),
        None => row(
            "click → other desktop's notification: p50 < 30 ms, p99 < 100 ms",
            "—".into(),
            None,
        ),
    }
    // At 1,000 followers, or the largest count both ran below it (a quick run).
    let mut counts: Vec<usize> = outcomes
        .iter()
        .filter_map(|o| match &o.result {
            Measured::FanOut(f) if f.followers <= 1_000 => Some(f.followers),
            _ => None,
        })
        .collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let pair = counts
        .iter()
        .find_map(|&n| Some((n, fan_out("social_sync", n)?, fan_out("socketio", n)?)));
    match pair {
        Some((n, ours, theirs)) => row(
            "fan-out p99 ≤ ⅓ of Socket.IO's (1,000 followers)",
            format!(
                "{:.1} ms against {:.1} ms at {n} followers: {:.2}×",
                ours.latency.p99_ms,
                theirs.latency.p99_ms,
                ours.latency.p99_ms / theirs.latency.p99_ms.max(1e-9)
            ),
            Some(ours.latency.p99_ms * 3.0 <= theirs.latency.p99_ms),
        ),
        None => row(
            "fan-out p99 ≤ ⅓ of Socket.IO's (1,000 followers)",
            "—".into(),
            None,
        ),
    }
    match (best_rate("social_sync"), best_rate("socketio")) {
        (Some(ours), Some(theirs)) => row(
            "deliveries per second ≥ 3× Socket.IO's",
            format!(
                "{ours:.0}/s against {theirs:.0}/s: {:.2}×",
                ours / theirs.max(1e-9)
            ),
            Some(ours >= 3.0 * theirs),
        ),
        _ => row("deliveries per second ≥ 3× Socket.IO's", "—".into(), None),
    }
    let ours = |f: &dyn Fn(&Measured) -> Option<(String, bool)>| {
        outcomes
            .iter()
            .filter(|o| o.system == "social_sync" && o.nodes == 1)
            .find_map(|o| f(&o.result))
    };
    let mut measured = |target: &str, f: &dyn Fn(&Measured) -> Option<(String, bool)>| match ours(f)
    {
        Some((text, met)) => row(target, text, Some(met)),
        None => row(target, "—".into(), None),
    };
    measured(
        "< 8 KiB of relay memory per idle connection",
        &|m| match m {
            Measured::Idle(i) => Some((
                format!(
                    "{:.2} KiB at {} connections",
                    i.kib_per_connection, i.connections
                ),
                i.kib_per_connection < 8.0,
            )),
            _ => None,
        },
    );
    measured(
        "like storm: exact count everywhere within 1 s of the last like",
        &|m| match m {
            Measured::LikeStorm(l) => Some((
                format!(
                    "{:.0} ms; {} of {} viewers exact",
                    l.settled_ms, l.exact_viewers, l.viewers
                ),
                l.settled_ms < 1_000.0 && l.exact_viewers == l.viewers,
            )),
            _ => None,
        },
    );
    measured(
        "catch-up: 10,000 changes in < 1 s, ≤ 1.5× their bytes",
        &|m| match m {
            Measured::CatchUp(c) => {
                let ratio = c.wire_bytes as f64 / c.change_bytes.max(1) as f64;
                Some((
                    format!(
                        "{} changes in {:.0} ms, {ratio:.2}× their bytes",
                        c.changes, c.ms
                    ),
                    c.ms < 1_000.0 && ratio <= 1.5,
                ))
            }
            _ => None,
        },
    );
    measured(
        "churn: memory within 10 % of its start, no presence left",
        &|m| match m {
            Measured::Churn(c) => {
                let change = c.rss_end_kib as f64 / c.rss_start_kib.max(1) as f64 - 1.0;
                Some((
                    format!(
                        "{:+.1} % after {} cycles, {} presence entries",
                        change * 100.0,
                        c.cycles,
                        c.presence_left.unwrap_or(0)
                    ),
                    change <= 0.10 && c.presence_left == Some(0),
                ))
            }
            _ => None,
        },
    );
    format!(
        "## Targets (issue 12)\n\n| target | this run | verdict |\n|---|---|---|\n{}\n",
        rows.join("\n")
    )
}

/// `(p50, p99)` in ms from `scripts/bench-notify`'s line ("… p50 16.3 ms, p99 91.9 ms …").
fn parse_notify(line: &str) -> Option<(f64, f64)> {
    let after = |key: &str| -> Option<f64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.split_whitespace()
            .next()?
            .trim_end_matches(',')
            .parse()
            .ok()
    };
    Some((after("p50 ")?, after("p99 ")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_notify_line() {
        let line = "click in Ben's window to the Notify call on Ana's desktop, 50 likes: p50 16.3 ms, p99 91.9 ms, min 9.0 ms, max 95.2 ms";
        assert_eq!(parse_notify(line), Some((16.3, 91.9)));
        assert_eq!(parse_notify("nothing here"), None);
    }
}
