//! # pjp-testkit
//!
//! Test doubles for prover-job-processor components: an in-memory job queue
//! whose picker and saver halves plug into a [`JobRunner`](pjp_core::JobRunner)
//! on any runtime, and that records what happened to every job.

#![forbid(unsafe_code)]

mod queue;

pub use queue::{MemoryQueue, QueueError, QueueMeta, QueuePicker, QueueSaver, SavedJob};
