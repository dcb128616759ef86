//! [`PlanError`]: why no launch plan could be made.
//!
//! Here rather than in [`plan`](crate::plan): [`CudaError`](crate::CudaError)
//! carries it, and the planner sits above the errors.

use crate::field;

/// Why no plan could be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The size exceeds the field's two-adicity.
    #[error("NTT size 2^{log_n} exceeds the field's 2^{}", field::TWO_ADICITY)]
    SizeTooLarge {
        /// The requested log2 size.
        log_n: u32,
    },
    /// `batch × 2^log_n` overflows.
    #[error("batch of {batch} polynomials of size 2^{log_n} overflows")]
    Overflow {
        /// The requested log2 size.
        log_n: u32,
        /// The requested batch.
        batch: u64,
    },
    /// One launch would need more blocks than CUDA allows.
    #[error("{threads} threads exceed one launch's grid")]
    GridTooLarge {
        /// The threads the launch needs.
        threads: u64,
    },
}
