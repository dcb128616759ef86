//! What an NTT job carries: [`Direction`], [`NttJob`] (the executor's input) and
//! [`NttOutput`].

use std::fmt;
use std::str::FromStr;

use crate::backend::BackendKind;
use crate::error::NttError;
use crate::field;

/// The size `2^log_n` of each polynomial and how many of them `len` coefficients
/// hold: the shape check both backends make before transforming.
pub(crate) fn batch_shape(len: usize, log_n: u32) -> Result<(usize, usize), NttError> {
    let n = 1usize
        .checked_shl(log_n)
        .filter(|_| log_n <= field::TWO_ADICITY)
        .ok_or(NttError::TooLarge {
            log_n,
            max: field::TWO_ADICITY,
        })?;
    if !len.is_multiple_of(n) {
        return Err(NttError::BatchLength {
            batch: len / n,
            log_n: Some(log_n),
            len,
        });
    }
    Ok((n, len / n))
}

/// Forward (coefficients → evaluations) or inverse transform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// X_k = Σ_j x_j ω^(jk), ω a primitive n-th root of unity.
    #[default]
    Forward,
    /// x_j = n⁻¹ Σ_k X_k ω^(−jk).
    Inverse,
}

impl Direction {
    /// The other direction.
    pub const fn reversed(self) -> Self {
        match self {
            Self::Forward => Self::Inverse,
            Self::Inverse => Self::Forward,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Forward => "forward",
            Self::Inverse => "inverse",
        })
    }
}

impl FromStr for Direction {
    type Err = NttError;

    fn from_str(s: &str) -> Result<Self, NttError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "forward" | "fwd" => Ok(Self::Forward),
            "inverse" | "inv" => Ok(Self::Inverse),
            _ => Err(NttError::InvalidDirection {
                value: s.to_owned(),
            }),
        }
    }
}

/// One job: `batch` polynomials of size 2^`log_n`, transformed in `direction`.
///
/// `coeffs` holds the polynomials one after another (`batch × 2^log_n`
/// canonical field elements). The executor checks all of it and answers bad input
/// with an [`NttError`], never a panic.
///
/// ```
/// use pjp_gpu::{Direction, NttJob};
///
/// let job = NttJob::from_coeffs(Direction::Forward, 2, vec![1, 2, 3, 4, 5, 6, 7, 8])?;
/// assert_eq!((job.log_n, job.batch), (2, 2));
/// assert!(NttJob::from_coeffs(Direction::Forward, 1, vec![1, 2, 3]).is_err()); // 3 ≠ 2^k
/// # Ok::<(), pjp_gpu::NttError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NttJob {
    /// log2 of the polynomial size n.
    pub log_n: u32,
    /// The transform's direction.
    pub direction: Direction,
    /// Polynomials in the job.
    pub batch: usize,
    /// `batch × n` field elements, polynomial after polynomial.
    pub coeffs: Vec<u64>,
}

impl NttJob {
    /// A job from its parts (checked when executed).
    pub fn new(log_n: u32, direction: Direction, batch: usize, coeffs: Vec<u64>) -> Self {
        Self {
            log_n,
            direction,
            batch,
            coeffs,
        }
    }

    /// A job of `batch` equally long polynomials stored in `coeffs`, inferring
    /// their size. Fails unless `coeffs` splits into `batch` polynomials whose
    /// length is a power of two.
    pub fn from_coeffs(
        direction: Direction,
        batch: usize,
        coeffs: Vec<u64>,
    ) -> Result<Self, NttError> {
        let len = coeffs.len();
        if batch == 0 || !len.is_multiple_of(batch) {
            return Err(NttError::BatchLength {
                batch,
                log_n: None,
                len,
            });
        }
        let n = len / batch;
        if !n.is_power_of_two() {
            return Err(NttError::NotPowerOfTwo { len: n });
        }
        Ok(Self::new(n.trailing_zeros(), direction, batch, coeffs))
    }

    /// A job of one polynomial.
    pub fn single(direction: Direction, coeffs: Vec<u64>) -> Result<Self, NttError> {
        Self::from_coeffs(direction, 1, coeffs)
    }

    /// The polynomial size n = 2^`log_n` (saturating).
    pub fn n(&self) -> usize {
        1usize.checked_shl(self.log_n).unwrap_or(usize::MAX)
    }
}

/// A job's result: the transformed polynomials and where they were computed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NttOutput {
    /// log2 of the polynomial size.
    pub log_n: u32,
    /// Polynomials in the batch.
    pub batch: usize,
    /// The transformed coefficients, in the input's layout.
    pub coeffs: Vec<u64>,
    /// The backend that computed them.
    pub backend: BackendKind,
}
