//! (to be written)

use crate::results::Measured;
use crate::system::{Paths, cannot_do};
use crate::workload::Workload;

/// Runs `workload` (see [`crate::system`]).
pub async fn run(_paths: &Paths, workload: &Workload, _nodes: usize) -> anyhow::Result<Measured> {
    Ok(cannot_do(workload, "not written yet"))
}
