//! Benchmarks of tagcast's push path. The binary `tagcast-bench` runs them (see bench/README.md);
//! the library holds what other benchmarks and exporters reuse: the synthetic data model, timing
//! and the commit stamp of the reports.

pub mod stamp;
pub mod stats;
pub mod synth;
