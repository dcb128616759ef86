//! The launch plan of one batched NTT on the GPU: which kernels run, in which
//! order, with which grid and block sizes and arguments.
//!
//! The CUDA backend executes exactly this plan, and the host-shim test replays it
//! (written out with [`LaunchPlan::to_text`]) against the same kernel source
//! compiled with g++, so the kernels' logic and the plan are checked on every CI
//! run without a GPU.
//!
//! Buffers: the plan works on three device buffers of the job:
//!
//! * `input`: the job's `batch × n` coefficients, as uploaded;
//! * `work`: `batch × n` elements, which hold the result at the end;
//! * `twiddles`: the `n`-entry table of [`Twiddles::table`](crate::Twiddles::table)
//!   for the job's direction.
//!
//! [`Kernel::BitReverse`] copies `input` into `work` in bit-reversed order;
//! [`Kernel::Butterflies`] run the radix-2 stages in place on `work`, up to
//! [`MAX_RADIX_LOG`] stages per launch; an inverse transform ends with
//! [`Kernel::Scale`] by n⁻¹.
//!
//! ```
//! use pjp_gpu::{Direction, plan::{Kernel, LaunchPlan}};
//!
//! let plan = LaunchPlan::new(10, 4, Direction::Inverse)?;
//! assert!(matches!(plan.launches()[0].kernel, Kernel::BitReverse { .. }));
//! assert!(matches!(plan.launches().last().map(|l| l.kernel), Some(Kernel::Scale { .. })));
//! // 10 stages at up to 3 per launch: 4 butterfly launches.
//! assert_eq!(plan.launches().len(), 1 + 4 + 1);
//! # Ok::<(), pjp_gpu::plan::PlanError>(())
//! ```

use std::fmt::Write as _;

pub use crate::error::PlanError;
use crate::field;
use crate::job::Direction;

/// Threads per block of every launch.
pub const BLOCK_DIM: u32 = 256;

/// The most radix-2 stages one butterfly launch runs (each thread then holds
/// 2^`MAX_RADIX_LOG` elements in registers).
pub const MAX_RADIX_LOG: u32 = 3;

/// The largest grid (x dimension) CUDA accepts.
pub const MAX_GRID_DIM: u32 = i32::MAX as u32;

/// One kernel launch's kernel and arguments (buffers are implied, see the
/// [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kernel {
    /// `ntt_bit_reverse(input, work, log_n, total)`.
    BitReverse {
        /// log2 of the polynomial size.
        log_n: u32,
        /// Elements of the batch (threads of the launch).
        total: u64,
    },
    /// `ntt_butterflies(work, twiddles, log_n, stage, radix_log, threads)`.
    Butterflies {
        /// log2 of the polynomial size.
        log_n: u32,
        /// The first stage this launch runs (stage s has half-size 2^s).
        stage: u32,
        /// How many consecutive stages it runs.
        radix_log: u32,
        /// Threads of the launch: `total / 2^radix_log`.
        threads: u64,
    },
    /// `ntt_scale(work, factor, total)`.
    Scale {
        /// The factor every element is multiplied by.
        factor: u64,
        /// Elements of the batch.
        total: u64,
    },
}

impl Kernel {
    /// The kernel's `extern "C"` entry point in the kernel source.
    pub const fn entry_point(&self) -> &'static str {
        match self {
            Self::BitReverse { .. } => crate::kernel::BIT_REVERSE,
            Self::Butterflies { .. } => crate::kernel::BUTTERFLIES,
            Self::Scale { .. } => crate::kernel::SCALE,
        }
    }

    /// How many threads do work (the rest of the grid returns at once).
    pub const fn threads(&self) -> u64 {
        match *self {
            Self::BitReverse { total, .. } | Self::Scale { total, .. } => total,
            Self::Butterflies { threads, .. } => threads,
        }
    }
}

/// A kernel with its launch dimensions (1-D grids and blocks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Launch {
    /// What runs.
    pub kernel: Kernel,
    /// Blocks in the grid.
    pub grid_dim: u32,
    /// Threads per block.
    pub block_dim: u32,
}

impl Launch {
    fn covering(kernel: Kernel) -> Result<Self, PlanError> {
        let threads = kernel.threads();
        let blocks = threads.div_ceil(u64::from(BLOCK_DIM)).max(1);
        let grid_dim = u32::try_from(blocks)
            .ok()
            .filter(|&g| g <= MAX_GRID_DIM)
            .ok_or(PlanError::GridTooLarge { threads })?;
        Ok(Self {
            kernel,
            grid_dim,
            block_dim: BLOCK_DIM,
        })
    }
}

/// The kernel launches of one batched NTT: see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchPlan {
    log_n: u32,
    batch: u64,
    direction: Direction,
    launches: Vec<Launch>,
}

impl LaunchPlan {
    /// Plans a transform of `batch` polynomials of size 2^`log_n`.
    pub fn new(log_n: u32, batch: u64, direction: Direction) -> Result<Self, PlanError> {
        if log_n > field::TWO_ADICITY {
            return Err(PlanError::SizeTooLarge { log_n });
        }
        let total = batch
            .checked_mul(1u64 << log_n)
            .ok_or(PlanError::Overflow { log_n, batch })?;
        let mut launches = Vec::new();
        if total > 0 {
            launches.push(Launch::covering(Kernel::BitReverse { log_n, total })?);
            let mut stage = 0;
            while stage < log_n {
                let radix_log = MAX_RADIX_LOG.min(log_n - stage);
                launches.push(Launch::covering(Kernel::Butterflies {
                    log_n,
                    stage,
                    radix_log,
                    threads: total >> radix_log,
                })?);
                stage += radix_log;
            }
            if direction == Direction::Inverse {
                let factor = field::inverse_of_power_of_two(log_n)
                    .ok_or(PlanError::SizeTooLarge { log_n })?;
                launches.push(Launch::covering(Kernel::Scale { factor, total })?);
            }
        }
        Ok(Self {
            log_n,
            batch,
            direction,
            launches,
        })
    }

    /// log2 of the polynomial size.
    pub fn log_n(&self) -> u32 {
        self.log_n
    }

    /// Polynomials in the batch.
    pub fn batch(&self) -> u64 {
        self.batch
    }

    /// The transform's direction.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Elements of the batch: `batch × 2^log_n`.
    pub fn elements(&self) -> u64 {
        self.batch << self.log_n
    }

    /// The launches, in order.
    pub fn launches(&self) -> &[Launch] {
        &self.launches
    }

    /// The plan as text, for the host shim (`gpu/shim/ntt_shim.cpp`):
    ///
    /// ```text
    /// pjp-ntt-plan 1 <log_n> <batch> <forward|inverse> <elements>
    /// <entry point> <grid_dim> <block_dim> <kernel arguments…>
    /// …
    /// ```
    ///
    /// Kernel arguments are the scalar parameters in declaration order.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "pjp-ntt-plan 1 {} {} {} {}\n",
            self.log_n,
            self.batch,
            self.direction,
            self.elements()
        );
        for launch in &self.launches {
            let _ = write!(
                out,
                "{} {} {}",
                launch.kernel.entry_point(),
                launch.grid_dim,
                launch.block_dim
            );
            let _ = match launch.kernel {
                Kernel::BitReverse { log_n, total } => writeln!(out, " {log_n} {total}"),
                Kernel::Butterflies {
                    log_n,
                    stage,
                    radix_log,
                    threads,
                } => writeln!(out, " {log_n} {stage} {radix_log} {threads}"),
                Kernel::Scale { factor, total } => writeln!(out, " {factor} {total}"),
            };
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stages_cover_every_level_once() {
        for log_n in 0..=24 {
            let plan = LaunchPlan::new(log_n, 3, Direction::Forward).unwrap();
            let mut next = 0;
            for launch in plan.launches() {
                if let Kernel::Butterflies {
                    stage, radix_log, ..
                } = launch.kernel
                {
                    assert_eq!(stage, next);
                    next += radix_log;
                }
                assert!(
                    u64::from(launch.grid_dim) * u64::from(launch.block_dim)
                        >= launch.kernel.threads()
                );
            }
            assert_eq!(next, log_n);
        }
    }

    #[test]
    fn empty_batch_plans_nothing() {
        assert!(
            LaunchPlan::new(5, 0, Direction::Inverse)
                .unwrap()
                .launches()
                .is_empty()
        );
    }

    #[test]
    fn rejects_oversized() {
        assert!(matches!(
            LaunchPlan::new(33, 1, Direction::Forward),
            Err(PlanError::SizeTooLarge { .. })
        ));
        assert!(matches!(
            LaunchPlan::new(32, u64::MAX, Direction::Forward),
            Err(PlanError::Overflow { .. })
        ));
        assert!(matches!(
            LaunchPlan::new(32, 1 << 20, Direction::Forward),
            Err(PlanError::GridTooLarge { .. })
        ));
    }

    #[test]
    fn text_form() {
        let text = LaunchPlan::new(4, 2, Direction::Inverse).unwrap().to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "pjp-ntt-plan 1 4 2 inverse 32");
        assert_eq!(lines[1], "ntt_bit_reverse 1 256 4 32");
        assert_eq!(lines[2], "ntt_butterflies 1 256 4 0 3 4");
        assert_eq!(lines[3], "ntt_butterflies 1 256 4 3 1 16");
        assert!(lines[4].starts_with("ntt_scale 1 256 "));
    }
}
