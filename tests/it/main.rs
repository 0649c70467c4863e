//! synup's integration tests: one binary, one module per area.

// Tests report skips and fuzzing progress on stderr.
#![allow(clippy::print_stderr, clippy::print_stdout, clippy::unwrap_used)]

mod apply;
mod cli_plan;
mod cli_surface;
mod datasets;
mod determinism;
mod examples;
mod excel;
mod explore;
mod fuzz;
mod harness;
mod init;
mod ray;
mod recipe_errors;
mod remote;
mod schema;
mod screening;
mod serve_hardening;
mod server;
mod sources;
mod synapse;
mod trust;
