//! Shared by the CLI's whole-process tests: the real `social-sync-cli` binary run on a
//! temporary profile, its output, moving an export between profiles, and a real relay in
//! the test process ([`relay`]), over TLS with certificates from [`tls`].

#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub mod relay;
#[path = "../../../../sync-server/tests/common/tls.rs"]
pub mod tls;

pub struct Run {
    /// What the process did.
    pub out: Output,
}

impl Run {
    pub fn ok(self) -> Self {
        assert!(
            self.out.status.success(),
            "command failed: {}\nstdout: {}",
            self.stderr(),
            String::from_utf8_lossy(&self.out.stdout)
        );
        self
    }

    pub fn json(self) -> Value {
        let out = self.ok().out;
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    /// Asserts a clean failure: non-zero exit, nothing on stdout, one line on stderr that
    /// contains `expect`.
    pub fn fails_with(self, expect: &str) {
        assert!(!self.out.status.success(), "expected a failure");
        assert!(
            self.out.stdout.is_empty(),
            "stdout: {}",
            String::from_utf8_lossy(&self.out.stdout)
        );
        let err = self.stderr();
        assert!(err.contains(expect), "stderr: {err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "one sentence, got: {err}"
        );
    }
}

/// Runs the CLI on `profile` with `stdin` as standard input.
pub fn cli_in(profile: &Path, args: &[&str], stdin: &str) -> Run {
    cli_with(profile, args, stdin, &[])
}

/// Runs the CLI on `profile` with `stdin` as standard input and `env` set.
pub fn cli_with(profile: &Path, args: &[&str], stdin: &str, env: &[(&str, &Path)]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_social-sync-cli"))
        .arg("--profile")
        .arg(profile)
        .args(args)
        .env_remove("SOCIAL_SYNC_PROFILE")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // The command may exit before reading (a refused argument): a closed pipe is fine.
    drop(input.write_all(stdin.as_bytes()));
    drop(input);
    Run {
        out: child.wait_with_output().unwrap(),
    }
}

pub fn cli(profile: &Path, args: &[&str]) -> Run {
    cli_in(profile, args, "")
}

pub fn init(root: &Path, name: &str) -> (PathBuf, String) {
    let dir = root.join(name);
    let v = cli(&dir, &["init", "--name", name, "--json"]).json();
    (dir, v["uid"].as_str().unwrap().to_owned())
}

/// Moves everything `from` holds to `to` through an export folder, as a USB stick would.
pub fn carry(root: &Path, from: &Path, to: &Path, label: &str) -> Value {
    let stick = root.join(label);
    cli(from, &["export", stick.to_str().unwrap(), "--json"]).ok();
    cli(to, &["import", stick.to_str().unwrap(), "--json"]).json()
}

/// Runs the CLI and returns its JSON output, asserting success.
pub fn json(profile: &Path, args: &[&str]) -> Value {
    cli(profile, args).json()
}
