//! [`NttExecutor`]: batched Goldilocks NTTs as a [`pjp_core::Executor`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use pjp_core::{Executor, JobContext};
use rayon::prelude::*;

use crate::backend::{Backend, BackendChoice, BackendKind};
use crate::config::{CostModel, DEFAULT_MAX_LOG_N, NttConfig};
use crate::cpu::CpuNtt;
use crate::cuda::CudaNtt;
use crate::error::{BackendError, NttError};
use crate::field;
use crate::job::{NttJob, NttOutput};

/// Inputs from this many elements up are checked for canonical form in parallel.
const PAR_CHECK_LEN: usize = 1 << 20;

/// Runs [`NttJob`]s on the CPU or a CUDA GPU, generic over the runner's job
/// metadata `M`.
///
/// The backend is chosen once, at construction ([`NttConfig::backend`], or the
/// `PJP_GPU` environment variable through [`from_env`](Self::from_env)):
/// `auto` takes CUDA when a driver, a device and NVRTC are present and the CPU
/// otherwise, logging which and why; `cuda` fails with
/// [`BackendError::CudaUnavailable`] instead of falling back.
/// [`backend`](Self::backend) tells which one runs.
///
/// Every job is validated first; bad input (wrong length, size above the maximum,
/// non-canonical elements) is an [`NttError`] result, never a panic. Clones share
/// the backend.
///
/// ```
/// use pjp_core::{Executor, JobContext, JobId};
/// use pjp_gpu::{Direction, NttExecutor, NttJob};
///
/// let executor = NttExecutor::cpu();
/// println!("NTT backend: {}", executor.backend());
/// let job = NttJob::single(Direction::Forward, vec![0, 1, 0, 0])?;
/// let out = executor.execute(job, &JobContext::new(JobId::new(1), 1))?;
/// // x ↦ (1, ω, ω², ω³) with ω = ω₄.
/// assert_eq!(out.coeffs[0], 1);
/// assert_eq!(out.coeffs[2], pjp_gpu::field::P - 1);
/// # Ok::<(), pjp_gpu::NttError>(())
/// ```
#[derive(Clone)]
pub struct NttExecutor {
    engine: Arc<Engine>,
}

struct Engine {
    backend: Backend,
    cpu: CpuNtt,
    cuda: Option<CudaNtt>,
    max_log_n: u32,
    cost_model: CostModel,
}

impl fmt::Debug for NttExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NttExecutor")
            .field("backend", &self.engine.backend)
            .field("max_log_n", &self.engine.max_log_n)
            .finish_non_exhaustive()
    }
}

impl NttExecutor {
    /// Builds an executor as `config` says.
    pub fn new(config: NttConfig) -> Result<Self, BackendError> {
        if config.max_log_n > field::TWO_ADICITY {
            return Err(BackendError::MaxSizeTooLarge {
                max_log_n: config.max_log_n,
            });
        }
        let cpu = match config.cpu_threads {
            Some(threads) => {
                CpuNtt::with_threads(threads).map_err(|e| BackendError::ThreadPool {
                    message: e.to_string(),
                })?
            }
            None => CpuNtt::new(),
        };
        let cuda = match config.backend {
            BackendChoice::Cpu => {
                tracing::info!(backend = "cpu", "NTT backend: cpu (configured)");
                None
            }
            BackendChoice::Cuda => match CudaNtt::new(config.device) {
                Ok(gpu) => Some(gpu),
                Err(e) => {
                    tracing::error!(error = %e, "NTT backend cuda required but unavailable");
                    return Err(BackendError::CudaUnavailable(e));
                }
            },
            BackendChoice::Auto => match CudaNtt::new(config.device) {
                Ok(gpu) => Some(gpu),
                Err(e) => {
                    tracing::info!(
                        backend = "cpu",
                        reason = %e,
                        "NTT backend: cpu (auto: CUDA unavailable)"
                    );
                    None
                }
            },
        };
        let backend = match &cuda {
            Some(gpu) => {
                tracing::info!(backend = "cuda", device = %gpu.info(), "NTT backend: cuda");
                Backend::Cuda(gpu.info().clone())
            }
            None => Backend::Cpu {
                threads: cpu.threads(),
            },
        };
        let cost_model = config.cost_model.unwrap_or(match backend.kind() {
            BackendKind::Cpu => CostModel::CPU,
            BackendKind::Cuda => CostModel::CUDA,
        });
        Ok(Self::from_engine(Engine {
            backend,
            cpu,
            cuda,
            max_log_n: config.max_log_n,
            cost_model,
        }))
    }

    /// Builds an executor with the backend named by `PJP_GPU` (`auto` when unset)
    /// and otherwise default settings.
    pub fn from_env() -> Result<Self, BackendError> {
        Self::new(NttConfig::from_env()?)
    }

    /// A CPU executor on rayon's global pool with default settings.
    pub fn cpu() -> Self {
        let cpu = CpuNtt::new();
        tracing::info!(backend = "cpu", "NTT backend: cpu (configured)");
        Self::from_engine(Engine {
            backend: Backend::Cpu {
                threads: cpu.threads(),
            },
            cpu,
            cuda: None,
            max_log_n: DEFAULT_MAX_LOG_N,
            cost_model: CostModel::CPU,
        })
    }

    fn from_engine(engine: Engine) -> Self {
        Self {
            engine: Arc::new(engine),
        }
    }

    /// The active backend.
    pub fn backend(&self) -> &Backend {
        &self.engine.backend
    }

    /// The largest log2 size accepted.
    pub fn max_log_n(&self) -> u32 {
        self.engine.max_log_n
    }

    /// The cost model behind [`cost_hint`](Executor::cost_hint).
    pub fn cost_model(&self) -> CostModel {
        self.engine.cost_model
    }

    /// The CPU transform (the reference; also used by the CPU backend).
    pub fn cpu_ntt(&self) -> &CpuNtt {
        &self.engine.cpu
    }

    /// Checks a job without running it.
    pub fn validate(&self, job: &NttJob) -> Result<(), NttError> {
        let max = self.engine.max_log_n;
        if job.log_n > max {
            return Err(NttError::TooLarge {
                log_n: job.log_n,
                max,
            });
        }
        let len = job.coeffs.len();
        if job.batch.checked_mul(job.n()) != Some(len) {
            return Err(NttError::BatchLength {
                batch: job.batch,
                log_n: Some(job.log_n),
                len,
            });
        }
        let bad = if len >= PAR_CHECK_LEN {
            job.coeffs
                .par_iter()
                .position_first(|&x| !field::is_canonical(x))
        } else {
            job.coeffs.iter().position(|&x| !field::is_canonical(x))
        };
        match bad {
            Some(index) => Err(NttError::NonCanonical {
                index,
                value: job.coeffs[index],
            }),
            None => Ok(()),
        }
    }

    /// Runs one job (what [`Executor::execute`] does, without metadata).
    pub fn run(&self, job: NttJob) -> Result<NttOutput, NttError> {
        self.validate(&job)?;
        let NttJob {
            log_n,
            direction,
            batch,
            mut coeffs,
        } = job;
        let backend = match &self.engine.cuda {
            Some(gpu) => {
                gpu.transform(&mut coeffs, log_n, direction)?;
                BackendKind::Cuda
            }
            None => {
                self.engine.cpu.transform(&mut coeffs, log_n, direction)?;
                BackendKind::Cpu
            }
        };
        Ok(NttOutput {
            log_n,
            batch,
            coeffs,
            backend,
        })
    }
}

impl Executor for NttExecutor {
    type Input = NttJob;
    type Output = NttOutput;
    type Error = NttError;

    fn execute(&self, input: NttJob, job: &JobContext) -> Result<NttOutput, NttError> {
        tracing::trace!(
            job_id = %job.id(),
            log_n = input.log_n,
            batch = input.batch,
            direction = %input.direction,
            backend = %self.engine.backend.kind(),
            "NTT"
        );
        self.run(input)
    }

    /// `fixed + elements × (per_element + log2(n) × per_element_stage)` from the
    /// active backend's [`CostModel`]: the NTT's n·log n·batch work.
    fn cost_hint(&self, input: &NttJob) -> Duration {
        self.engine.cost_model.estimate(input.log_n, input.batch)
    }
}
