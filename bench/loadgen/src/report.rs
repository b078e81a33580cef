//! `docs/benchmarks.md` and its SVG plot, from the JSON lines of a run. (to be written)
