//! Type-erased pickers and savers: choose the queue at run time and write the
//! pipeline once.
//!
//! A [`JobRunner`](crate::JobRunner) is generic over its picker and saver, which
//! is what makes it fast and what lets the compiler check the wiring. A binary
//! that picks its queue from a flag (an in-process queue for a laptop run, a
//! database queue in the fleet) would otherwise need one pipeline per queue
//! type. Like tower's `BoxService`, [`BoxPicker`] and [`BoxSaver`] hide the
//! concrete type behind a box, keeping only what the pipeline needs to know:
//!
//! * the input ([`BoxPicker<I>`]) and the output and failure
//!   ([`BoxSaver<O, F>`]) types, which the executors share;
//! * the metadata, erased to [`AnyMeta`]: a job's id and attempt, and the
//!   original metadata inside, which the boxed picker and saver take back out
//!   (by type, checked) when they release or save the job;
//! * the errors, boxed as [`BoxError`], which keeps the
//!   [`ErrorClass`](crate::ErrorClass) the concrete picker or saver gave it, so
//!   the runner still retries, gives up or counts a lost claim exactly as it
//!   would without the box (no downcasting).
//!
//! The cost is one allocation per call (the boxed future) and a dynamic call:
//! nothing next to a database round trip, but measurable on no-op jobs, so
//! keep concrete types where there is only one queue.
//!
//! Executors need nothing to run behind a boxed picker: they see a
//! [`JobContext`](crate::JobContext) (id, attempt, cancellation) whatever the
//! queue. A saver behind the box gets its own metadata back from
//! [`AnyMeta`] ([`AnyMeta::downcast_ref`]).
//!
//! ```
//! use std::convert::Infallible;
//! use pjp_core::boxed::{BoxPicker, BoxSaver};
//! use pjp_core::memory::MemoryQueue;
//! use pjp_core::{Executor, JobContext, JobRunner, Shutdown};
//!
//! struct Double; // whatever the queue: an executor sees a JobContext
//! impl Executor for Double {
//!     type Input = u64;
//!     type Output = u64;
//!     type Error = Infallible;
//!     fn execute(&self, n: u64, job: &JobContext) -> Result<u64, Infallible> {
//!         assert_eq!(job.id().get(), n);
//!         Ok(2 * n)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> anyhow::Result<()> {
//! let queue: MemoryQueue<u64, u64> = MemoryQueue::closed_with(0..100);
//! // Chosen at run time: any picker of u64 inputs, any saver of u64 outputs.
//! let use_memory = std::env::args().count() > 0;
//! let (picker, saver): (BoxPicker<u64>, BoxSaver<u64, Infallible>) = if use_memory {
//!     (BoxPicker::new(queue.picker()), BoxSaver::new(queue.saver()))
//! } else {
//!     unreachable!("a database picker and saver, boxed the same way")
//! };
//! // One pipeline, whatever the queue.
//! let runner = JobRunner::builder(picker, Double, saver).build()?;
//! let report = runner.run(&pjp_runtime_tokio::TokioRuntime::current(), Shutdown::new()).await?;
//! assert_eq!(report.counts.succeeded, 100);
//! assert_eq!(queue.saved_count(), 100);
//! # Ok(())
//! # }
//! ```

mod error;
mod meta;
mod picker;
mod saver;

pub use error::{BoxError, ForeignMeta};
pub use meta::AnyMeta;
pub use picker::BoxPicker;
pub use saver::BoxSaver;
