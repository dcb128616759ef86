//! The crate's errors: [`NttError`] (why one job failed), [`BackendError`]
//! (why an executor could not be built), [`CudaError`] (why the GPU failed) and
//! [`PlanError`] (why no launch plan could be made).
//!
//! They sit below every module that returns them: they import only plain data
//! (`field`, `device`).

mod cuda;
mod plan;

pub use self::cuda::{CuResult, CudaError};
pub(crate) use self::cuda::{driver, nvrtc};
pub use self::plan::PlanError;
use crate::field;

/// Why one NTT job failed: bad input, or the GPU.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NttError {
    /// A polynomial's length is not a power of two.
    #[error("polynomial length {len} is not a power of two")]
    NotPowerOfTwo {
        /// The offending length.
        len: usize,
    },
    /// The size exceeds the configured (or the field's) maximum.
    #[error("NTT size 2^{log_n} exceeds the maximum 2^{max}")]
    TooLarge {
        /// The job's log2 size.
        log_n: u32,
        /// The largest log2 size accepted.
        max: u32,
    },
    /// The coefficients do not split into `batch` polynomials of the job's size.
    #[error(
        "{len} coefficients do not make {batch} polynomial(s){}",
        match log_n { Some(k) => format!(" of size 2^{k}"), None => String::new() }
    )]
    BatchLength {
        /// The job's batch.
        batch: usize,
        /// The job's log2 size, when it names one.
        log_n: Option<u32>,
        /// How many coefficients it holds.
        len: usize,
    },
    /// An element is not a canonical field element (≥ p).
    #[error("coefficient {index} is {value:#x}, not a canonical Goldilocks element (< p)")]
    NonCanonical {
        /// Its index in the job's coefficients.
        index: usize,
        /// Its value.
        value: u64,
    },
    /// A direction name other than `forward`/`inverse`.
    #[error("unknown NTT direction {value:?} (expected forward or inverse)")]
    InvalidDirection {
        /// What was given.
        value: String,
    },
    /// The GPU failed.
    #[error("GPU: {0}")]
    Cuda(#[from] CudaError),
}

impl NttError {
    /// Whether the job's input is at fault (running it again cannot help).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Self::Cuda(_))
    }

    /// Whether running the job again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Cuda(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// Why an [`NttExecutor`](crate::NttExecutor) could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The backend name (e.g. from `PJP_GPU`) is not `auto`, `cpu` or `cuda`.
    #[error("unknown NTT backend {value:?} (expected auto, cpu or cuda)")]
    InvalidChoice {
        /// What was given.
        value: String,
    },
    /// `cuda` was required but cannot run here.
    #[error("CUDA backend required but unavailable: {0}")]
    CudaUnavailable(#[source] CudaError),
    /// The configured maximum size exceeds the field's two-adicity.
    #[error(
        "maximum NTT size 2^{max_log_n} exceeds the field's 2^{}",
        field::TWO_ADICITY
    )]
    MaxSizeTooLarge {
        /// The configured log2 maximum.
        max_log_n: u32,
    },
    /// The CPU thread pool could not be built.
    #[error("cannot build the CPU thread pool: {message}")]
    ThreadPool {
        /// rayon's message.
        message: String,
    },
}
