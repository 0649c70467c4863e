//! synup: a declarative upload engine for Synapse data collections.
//!
//! The program is a small compiler followed by an executor:
//!
//! - [`recipe`] reads a YAML/TOML recipe into typed values with spans, and
//!   resolves it (compiled globs, regexes, the collection's specs and schema);
//! - [`plan`] compiles a resolved recipe into a [`plan::StageGraph`], has
//!   [`plan::engine`] run it, and produces a [`plan::Plan`]: sorted, hashed,
//!   deterministic;
//! - [`stages`] holds one module per stage (classify, layout inference and
//!   group, metadata, validate, checksum, content screening, diff);
//! - [`source`] is the one [`source::Source`] interface (local folders and
//!   buckets); [`target`] is what a target holds (local catalog, Synapse);
//! - [`apply`] executes a plan against an [`apply::target::Target`]:
//!   journaled, resumable, reported through events; [`ray`] runs it sharded;
//! - [`explore`] summarises a folder and suggests a recipe for it;
//! - [`serve`] is a Synapse-compatible API over a local catalog;
//! - [`spill`] sorts more than fits in the memory budget, through runs on disk;
//!   [`packed`] holds millions of short strings (paths, keys) in one allocation;
//!   [`bits`] numbers the members of a set at a bit each (which files are hashed);
//! - [`secrets`] remembers secret values so every output can mask them;
//! - [`fs_write`] writes files atomically, durably and never over what is not
//!   a regular file.
//!
//! Library code never prints: the binary's `cli` and `console` modules do.

pub mod apply;
pub mod bits;
pub mod cache_file;
pub mod crash;
pub mod error_chain;
pub mod explore;
pub mod fs_write;
pub mod init;
pub mod io_runtime;
pub mod json;
pub mod packed;
pub mod plan;
pub mod prepare;
pub mod ray;
pub mod recipe;
pub mod secrets;
pub mod serve;
pub mod source;
pub mod spill;
pub mod stages;
pub mod target;
