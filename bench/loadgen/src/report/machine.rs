//! What the run ran on: processor, cores, memory, kernel, file limit, tool versions.

use std::process::Command;

/// A short paragraph naming the machine and the date.
pub(super) fn describe() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown processor".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let out = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "—".into())
    };
    format!(
        "**Run** {date} on {cpu}, {cores} cores, {mem_gib:.0} GiB, Linux {kernel}; file limit {nofile} \
         per process; Node {node}; {redis}; commit {commit}. Load average when the report was \
         written: {load} (above 2, other work shared the cores and the figures are noisier).\n",
        date = out("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        kernel = out("uname", &["-r"]),
        nofile = out("sh", &["-c", "ulimit -n"]),
        node = out("node", &["--version"]),
        redis = out("redis-server", &["--version"])
            .split(" sha=")
            .next()
            .unwrap_or("—")
            .to_owned(),
        commit = out("git", &["rev-parse", "--short", "HEAD"]),
        load = std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}
