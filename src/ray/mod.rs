//! Sharded apply on a Ray cluster: the Jobs API client and the driver that
//! submits one `synup apply PLAN --shard K/N` job per shard and follows them.

pub mod client;
pub mod driver;

pub use client::{JobRow, RayClient, RayError};
pub use driver::{RayEvent, Sharded, Submission, drive, last_dashboard};
