//! # social-sync-cli
//!
//! A headless Social Sync client over [`social_sync_core`], for scripting, tests and
//! benchmarks. Every command takes `--profile DIR`; with `--json` the only thing on stdout
//! is JSON, and errors go to stderr as one sentence with a non-zero exit.
//!
//! # Layout
//!
//! - [`args`]: the command line ([`Cli`], [`Command`]), as clap parses it.
//! - [`commands`]: runs one [`Command`] against a [`social_sync_core::Replica`].
//! - [`output`]: prints results as JSON or as lines for people.
//! - [`error`]: [`Error`], what a command can fail with.

pub mod args;
pub mod commands;
pub mod error;
pub mod output;

pub use args::{Cli, Command};
pub use commands::run;
pub use error::Error;
