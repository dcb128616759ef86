//! # pjp-gpu
//!
//! A real prover primitive for **prover-job-processor**: the number-theoretic
//! transform (NTT) over the Goldilocks field (p = 2^64 − 2^32 + 1), with a
//! multi-threaded CPU reference and a CUDA backend, exposed as a
//! [`pjp_core::Executor`].
//!
//! * [`field`]: Goldilocks arithmetic and roots of unity.
//! * [`CpuNtt`]: iterative radix-2 NTT, twiddles cached per size, batches spread
//!   over threads (rayon). The reference, and the fallback executor.
//! * [`CudaNtt`]: the same transform on a GPU through cudarc. The kernels
//!   ([`kernel::SOURCE`]) are compiled at run time by NVRTC for the device; each
//!   job runs the [launch plan](plan) on a stream of its own, reusing device
//!   buffers across jobs.
//! * [`NttExecutor`]: the executor, with backend selection `auto | cpu | cuda`
//!   ([`BackendChoice`], env var `PJP_GPU`) and [`backend`](NttExecutor::backend)
//!   telling which runs.
//!
//! Nothing panics where CUDA is absent: libcuda and libnvrtc are probed before
//! the first cudarc call, and every failure is a typed error ([`CudaError`],
//! [`NttError`], [`BackendError`]).
//!
//! ## A job through the runner
//!
//! ```
//! use pjp_core::{JobRunner, Shutdown};
//! use pjp_gpu::{BackendChoice, Direction, NttConfig, NttExecutor, NttJob};
//! use pjp_testkit::MemoryQueue;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> anyhow::Result<()> {
//! // `NttConfig::from_env()` would honour PJP_GPU=auto|cpu|cuda.
//! let executor = NttExecutor::new(NttConfig::new().backend(BackendChoice::Cpu))?;
//! println!("NTT backend: {}", executor.backend());
//!
//! let jobs = (0..4u64).map(|k| NttJob::new(10, Direction::Forward, 2, vec![k; 2 << 10]));
//! let queue = MemoryQueue::closed_with(jobs);
//! let runner = JobRunner::builder(queue.picker(), executor, queue.saver())
//!     .workers(2)
//!     .build()?;
//! let report = runner
//!     .run(&pjp_runtime_tokio::TokioRuntime::current(), Shutdown::new())
//!     .await?;
//! assert_eq!(report.counts.succeeded, 4);
//! # Ok(())
//! # }
//! ```
//!
//! ## Running on a GPU
//!
//! The CUDA backend needs libcuda (the driver) and libnvrtc at run time; neither
//! is needed to build. `gpu/scripts/install-nvrtc.sh` installs NVRTC from PyPI
//! and prints the directory to add to `LD_LIBRARY_PATH`.

#![deny(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

// Layers, each module importing only from layers below its own:
//   executor
//   config, cuda
//   cpu, plan
//   job, kernel
//   backend
//   error               every error type
//   field, device, ffi  leaves; ffi holds all the `unsafe` code
mod backend;
mod config;
mod cpu;
mod cuda;
mod device;
mod error;
mod executor;
mod ffi;
pub mod field;
mod job;
pub mod kernel;
pub mod plan;

pub use backend::{BACKEND_ENV, Backend, BackendChoice, BackendKind};
pub use config::{CostModel, DEFAULT_MAX_LOG_N, NttConfig};
pub use cpu::{CpuNtt, Twiddles};
pub use cuda::CudaNtt;
pub use device::{ComputeCapability, CudaVersion, DeviceInfo};
pub use error::{BackendError, CuResult, CudaError, NttError};
pub use executor::NttExecutor;
pub use job::{Direction, NttJob, NttOutput};
