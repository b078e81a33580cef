//! A private PostgreSQL cluster for one test: `initdb` in a temporary folder, `pg_ctl
//! start` on a free loopback port (socket in the folder too, `fsync=off` for speed: test
//! data only), stopped with `pg_ctl stop -m fast` when dropped. PostgreSQL refuses to run
//! as root, so as root it runs as the `postgres` user (`su postgres -c …`); otherwise as
//! the current user. Needs PostgreSQL's server binaries (`apt-get install -y
//! --no-install-recommends postgresql`).
//!
//! Admin queries go through `psql`, not the `postgres` crate: its blocking client cannot
//! be used inside the async tests.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use tempfile::TempDir;

/// A running private cluster; stopped when dropped.
pub struct Postgres {
    dir: TempDir,
    bin: PathBuf,
    pub port: u16,
    as_root: bool,
}

static DATABASES: AtomicU32 = AtomicU32::new(0);

fn bin_dir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| Some(e.ok()?.path().join("bin"))).collect())
        .unwrap_or_default();
    versions.retain(|d| d.join("initdb").exists());
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!(
            "these tests start a real PostgreSQL: no initdb found in /usr/lib/postgresql/*/bin; \
             apt-get install -y --no-install-recommends postgresql"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Postgres {
    /// Starts a fresh cluster (about 2 s).
    pub fn start() -> Self {
        Self::start_with(tempfile::tempdir().unwrap())
    }

    /// Starts a fresh cluster whose files are in a new folder inside `parent` (a small
    /// disk, say).
    #[allow(dead_code)] // not every test binary needs it
    pub fn start_in(parent: &Path) -> Self {
        Self::start_with(tempfile::tempdir_in(parent).unwrap())
    }

    fn start_with(dir: TempDir) -> Self {
        let as_root = is_root();
        if as_root {
            let ok = Command::new("chown")
                .args(["postgres:"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(ok.success(), "chown postgres {}", dir.path().display());
        }
        let mut pg = Self {
            bin: bin_dir(),
            port: 0,
            as_root,
            dir,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        // The port is free when picked; another process may take it before PostgreSQL
        // does, so a failed start tries another.
        for attempt in 0..5 {
            pg.port = free_port();
            let opts = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40",
                pg.port,
                pg.dir.path().display()
            );
            let log = format!("{}/pg.log", pg.dir.path().display());
            let out = pg.try_run(
                "pg_ctl",
                &["-D", &data, "-o", &opts, "-l", &log, "-w", "start"],
            );
            if out.status.success() {
                return pg;
            }
            assert!(
                attempt < 4,
                "pg_ctl start failed: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        unreachable!()
    }

    /// Stops the server (a fast shutdown: sessions are cut), keeping its data.
    #[allow(dead_code)] // not every test binary stops it
    pub fn stop(&self) {
        let data = self.data();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
    }

    /// Stops the server as a crash does (`-m immediate`: no checkpoint, recovery from
    /// the write-ahead log at the next start), keeping its data.
    #[allow(dead_code)] // not every test binary crashes it
    pub fn crash(&self) {
        let data = self.data();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }

    /// Whether the server is running (it stops by itself when it cannot write its log).
    #[allow(dead_code)] // not every test binary needs it
    pub fn is_running(&self) -> bool {
        let data = self.data();
        self.try_run("pg_ctl", &["-D", &data, "status"])
            .status
            .success()
    }

    /// Starts the stopped server again, on the same port.
    #[allow(dead_code)] // not every test binary stops it
    pub fn start_again(&self) {
        let data = self.data();
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40",
            self.port,
            self.dir.path().display()
        );
        let log = format!("{}/pg.log", self.dir.path().display());
        self.run(
            "pg_ctl",
            &["-D", &data, "-o", &opts, "-l", &log, "-w", "start"],
        );
    }

    fn data(&self) -> String {
        format!("{}/pg", self.dir.path().display())
    }

    fn try_run(&self, tool: &str, args: &[&str]) -> Output {
        let tool = self.bin.join(tool);
        if self.as_root {
            let line = std::iter::once(tool.display().to_string())
                .chain(args.iter().map(|a| format!("'{a}'")))
                .collect::<Vec<_>>()
                .join(" ");
            Command::new("su")
                .args(["postgres", "-c", &line])
                .current_dir(Path::new("/"))
                .output()
                .unwrap()
        } else {
            Command::new(tool).args(args).output().unwrap()
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self.try_run(tool, args);
        assert!(
            out.status.success(),
            "{tool} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a new, empty database; returns its URL.
    pub fn fresh_db(&self) -> String {
        let name = format!(
            "relay_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Runs `sql` in the database of `url` (or named so) with `psql`; returns its
    /// unaligned, tuples-only output (`|` between columns, a line per row).
    pub fn sql(&self, db_or_url: &str, sql: &str) -> String {
        let db = db_or_url.rsplit('/').next().unwrap();
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-U",
                "postgres",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-Atc",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.try_run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
    }
}
