//! A server process started for one workload: its address, its memory, stopped on drop.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running server that printed `listening on ADDR` as its first line of output.
pub struct Server {
    child: Child,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// What it is, for messages.
    pub name: String,
}

impl Server {
    /// Starts `command` and waits (up to 60 s) for its `listening on ADDR` line; the rest
    /// of its output is drained in a thread so it never blocks on a full pipe.
    pub fn start(name: &str, mut command: Command) -> anyhow::Result<Self> {
        let mut child = command
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("could not start {name} ({command:?})"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(Ok(line))) => line,
            other => {
                let _ = child.kill();
                bail!("{name} did not say where it listens: {other:?}")
            }
        };
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .with_context(|| format!("{name} said {line:?}, not `listening on ADDR`"))?
            .parse()
            .with_context(|| format!("{name}'s address in {line:?}"))?;
        Ok(Self {
            child,
            addr,
            name: name.to_owned(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory, KiB (0 when it cannot be read).
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// Waits until resident memory stops moving (two readings 500 ms apart within 1 %,
    /// at most `limit`), and returns it.
    pub fn settled_rss_kib(&self, limit: Duration) -> u64 {
        settle(|| self.rss_kib(), limit)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory of a process, KiB (0 when it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Reads `read` every 500 ms until two readings are within 1 % (or `limit` passed).
pub fn settle(read: impl Fn() -> u64, limit: Duration) -> u64 {
    let start = Instant::now();
    let mut last = read();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = read();
        if now.abs_diff(last) * 100 <= last.max(1) || start.elapsed() > limit {
            return now;
        }
        last = now;
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A private `redis-server` on a free loopback port, nothing saved, stopped on drop.
pub struct Redis {
    child: Child,
    /// Its port.
    pub port: u16,
}

impl Redis {
    /// Starts `redis-server` (from PATH) and waits until it accepts connections.
    pub fn start() -> anyhow::Result<Self> {
        let port = free_port()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .context("could not start redis-server: is it installed (apt install redis-server)?")?;
        let redis = Self { child, port };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if start.elapsed() > Duration::from_secs(10) {
                bail!("redis-server did not listen on port {port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(redis)
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of `GET path` from a loopback HTTP server (HTTP/1.1, `Connection: close`).
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .with_context(|| format!("GET {path} on {addr}: no HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!(
            "GET {path} on {addr}: {}",
            head.lines().next().unwrap_or("")
        );
    }
    Ok(body.to_owned())
}

/// A private PostgreSQL cluster on a free loopback port in a temporary folder (as the
/// `postgres` user when run as root: PostgreSQL refuses to run as root), one database
/// `relay`, no fsync (a benchmark of the relay, not of the disk), stopped on drop.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
    as_root: bool,
}

impl Postgres {
    /// Starts one (about 2 s) with an empty database `relay`.
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let as_root = std::env::var("USER").is_ok_and(|u| u == "root")
            || Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if as_root {
            let ok = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()?;
            anyhow::ensure!(ok.success(), "chown postgres {}", dir.path().display());
        }
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .context("no /usr/lib/postgresql: apt install postgresql")?
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .max()
            .context("no initdb in /usr/lib/postgresql/*/bin: apt install postgresql")?;
        let pg = Self {
            dir,
            bin,
            port: free_port()?,
            as_root,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        )?;
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            pg.port,
            pg.dir.path().display()
        );
        let log = format!("{}/pg.log", pg.dir.path().display());
        pg.run(
            "pg_ctl",
            &["-D", &data, "-o", &opts, "-l", &log, "-w", "start"],
        )?;
        pg.run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                "postgres",
                "-qc",
                "CREATE DATABASE relay",
            ],
        )?;
        Ok(pg)
    }

    /// The `relay` database's URL.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/relay", self.port)
    }

    fn data(&self) -> String {
        format!("{}/pg", self.dir.path().display())
    }

    fn run(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let tool = self.bin.join(tool);
        let out = if self.as_root {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&tool)
                .args(args)
                .current_dir("/")
                .output()?
        } else {
            Command::new(&tool).args(args).output()?
        };
        anyhow::ensure!(
            out.status.success(),
            "{} failed: {}",
            tool.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}
