//! [`NttConfig`]: how an [`NttExecutor`](crate::NttExecutor) is set up, and the
//! [`CostModel`] it reports to simulations.

use std::time::Duration;

use crate::backend::BackendChoice;
use crate::error::BackendError;

/// The default largest accepted size: 2^24 elements per polynomial.
pub const DEFAULT_MAX_LOG_N: u32 = 24;

/// Configuration of an [`NttExecutor`](crate::NttExecutor).
///
/// ```
/// use pjp_gpu::{BackendChoice, NttConfig};
///
/// let config = NttConfig::new()
///     .backend(BackendChoice::Cpu)
///     .max_log_n(20)
///     .cpu_threads(2);
/// assert_eq!(config.max_log_n, 20);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct NttConfig {
    /// Which backend to use. Default [`BackendChoice::Auto`].
    pub backend: BackendChoice,
    /// The largest log2 polynomial size accepted (at most 32). Default
    /// [`DEFAULT_MAX_LOG_N`].
    pub max_log_n: u32,
    /// The CUDA device ordinal. Default 0.
    pub device: usize,
    /// CPU threads: `None` uses rayon's global pool. Default `None`.
    pub cpu_threads: Option<usize>,
    /// The cost model for [`Executor::cost_hint`](pjp_core::Executor::cost_hint);
    /// `None` picks the active backend's default.
    pub cost_model: Option<CostModel>,
}

impl Default for NttConfig {
    fn default() -> Self {
        Self {
            backend: BackendChoice::Auto,
            max_log_n: DEFAULT_MAX_LOG_N,
            device: 0,
            cpu_threads: None,
            cost_model: None,
        }
    }
}

impl NttConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The defaults, with the backend read from `PJP_GPU`
    /// ([`BackendChoice::from_env`]).
    pub fn from_env() -> Result<Self, BackendError> {
        Ok(Self::default().backend(BackendChoice::from_env()?))
    }

    /// Sets the backend.
    pub fn backend(mut self, backend: BackendChoice) -> Self {
        self.backend = backend;
        self
    }

    /// Sets the largest log2 size accepted.
    pub fn max_log_n(mut self, max_log_n: u32) -> Self {
        self.max_log_n = max_log_n;
        self
    }

    /// Sets the CUDA device ordinal.
    pub fn device(mut self, ordinal: usize) -> Self {
        self.device = ordinal;
        self
    }

    /// Runs CPU transforms on a dedicated pool of `threads` threads.
    pub fn cpu_threads(mut self, threads: usize) -> Self {
        self.cpu_threads = Some(threads);
        self
    }

    /// Sets the cost model.
    pub fn cost_model(mut self, model: CostModel) -> Self {
        self.cost_model = Some(model);
        self
    }
}

/// Models how long a job takes, for simulated runtimes: `fixed +
/// elements × per_element + elements × log2(n) × per_element_stage`, where
/// `elements = batch × n`. The stage term is the NTT's n·log n work; the
/// element term covers transfers, permutation and input checks.
///
/// ```
/// use std::time::Duration;
/// use pjp_gpu::CostModel;
///
/// let model = CostModel::new(Duration::from_micros(10), 0.0, 1.0);
/// // 4 × 2^10 elements × 10 stages × 1 ns + 10 µs.
/// assert_eq!(model.estimate(10, 4), Duration::from_nanos(10_000 + 40_960));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostModel {
    /// Per-job overhead.
    pub fixed: Duration,
    /// Nanoseconds per element.
    pub per_element_ns: f64,
    /// Nanoseconds per element per radix-2 stage.
    pub per_element_stage_ns: f64,
}

impl CostModel {
    /// The CPU backend on this project's 2-core reference machine, fitted to
    /// `cargo bench -p pjp-benches --bench ntt` (2^16 × 16: ~10 ms; 2^22: ~50 ms).
    pub const CPU: Self = Self::new(Duration::from_micros(5), 1.0, 0.55);

    /// An H100 over PCIe with pageable host memory: ~10 GB/s each way dominates
    /// (8 bytes up and 8 down per element, plus the input check); the kernels
    /// add ~9 passes over device memory at ~2.5 TB/s. An estimate: replace it
    /// with figures from `gpu/scripts/gpu-bundle.sh` on the target machine.
    pub const CUDA: Self = Self::new(Duration::from_micros(50), 1.8, 0.003);

    /// A model from its coefficients.
    pub const fn new(fixed: Duration, per_element_ns: f64, per_element_stage_ns: f64) -> Self {
        Self {
            fixed,
            per_element_ns,
            per_element_stage_ns,
        }
    }

    /// The modeled time of `batch` transforms of size 2^`log_n`.
    pub fn estimate(&self, log_n: u32, batch: usize) -> Duration {
        let elements = batch as f64 * 2f64.powi(log_n.min(64) as i32);
        let ns = elements * (self.per_element_ns + f64::from(log_n) * self.per_element_stage_ns);
        // Saturates (as casts do) for absurd sizes; NaN cannot arise.
        self.fixed
            .saturating_add(Duration::from_nanos(ns.max(0.0).min(u64::MAX as f64) as u64))
    }
}
