//! One integration-test binary (as ripgrep does): shared helpers in `util`,
//! one module per topic. Every test runs the real `tap-gleap` binary against
//! the fake Gleap API started in process.

#[macro_use]
mod util;

mod backfill;
mod batch;
mod cli;
mod connect;
mod docs;
mod evolution;
mod failures;
mod faults;
mod fuzz;
mod incremental;
mod maps;
mod modes;
mod reconcile;
mod reliability;
mod selection;
mod settle;
mod streams;
mod sync;
