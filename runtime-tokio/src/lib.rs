//! # pjp-runtime-tokio
//!
//! The production [`Runtime`] for prover-job-processor, on tokio.
//!
//! * Async tasks run on the ambient tokio runtime.
//! * Executor workers get **dedicated OS threads**: a synchronous executor runs
//!   inline on its worker, so handing a job over costs one channel send, not a
//!   `spawn_blocking` round trip per job.
//! * [`shutdown_on_signals`] wires `SIGTERM`/`SIGINT` to a [`Shutdown`]: the first
//!   signal drains, the second abandons.
//!
//! ```no_run
//! use pjp_core::Shutdown;
//! use pjp_runtime_tokio::{TokioRuntime, shutdown_on_signals};
//!
//! # #[tokio::main] async fn main() {
//! let runtime = TokioRuntime::current();
//! let shutdown = Shutdown::new();
//! shutdown_on_signals(shutdown.clone());
//! // runner.run(&runtime, shutdown).await
//! # let _ = runtime;
//! # }
//! ```

#![forbid(unsafe_code)]

mod runtime;
mod signals;

pub use runtime::TokioRuntime;
pub use signals::shutdown_on_signals;

#[doc(no_inline)]
pub use pjp_core::{Runtime, Shutdown};
