//! Backend selection: [`BackendChoice`] (what was asked for: `auto`, `cpu`,
//! `cuda`), [`Backend`] (what runs) and [`BackendKind`].

use std::fmt;
use std::str::FromStr;

use crate::device::DeviceInfo;
use crate::error::BackendError;

/// The environment variable [`BackendChoice::from_env`] reads: `auto`, `cpu` or
/// `cuda`.
pub const BACKEND_ENV: &str = "PJP_GPU";

/// Which backend to use.
///
/// ```
/// use pjp_gpu::BackendChoice;
///
/// assert_eq!("cuda".parse::<BackendChoice>()?, BackendChoice::Cuda);
/// assert_eq!("CPU".parse::<BackendChoice>()?, BackendChoice::Cpu);
/// assert_eq!("".parse::<BackendChoice>()?, BackendChoice::Auto);
/// assert!("tpu".parse::<BackendChoice>().is_err());
/// # Ok::<(), pjp_gpu::BackendError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum BackendChoice {
    /// CUDA when a driver, a device and NVRTC are present; the CPU otherwise.
    #[default]
    Auto,
    /// Always the CPU.
    Cpu,
    /// CUDA, or fail with a typed error.
    Cuda,
}

impl BackendChoice {
    /// Reads [`BACKEND_ENV`] (`PJP_GPU`); unset or empty means [`Auto`](Self::Auto).
    pub fn from_env() -> Result<Self, BackendError> {
        match std::env::var(BACKEND_ENV) {
            Ok(value) => value.parse(),
            Err(std::env::VarError::NotPresent) => Ok(Self::Auto),
            Err(std::env::VarError::NotUnicode(value)) => Err(BackendError::InvalidChoice {
                value: value.to_string_lossy().into_owned(),
            }),
        }
    }
}

impl FromStr for BackendChoice {
    type Err = BackendError;

    fn from_str(s: &str) -> Result<Self, BackendError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda),
            _ => Err(BackendError::InvalidChoice {
                value: s.to_owned(),
            }),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        })
    }
}

/// Where NTTs run: the CPU or a CUDA device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// The CPU reference (rayon).
    Cpu,
    /// A CUDA GPU.
    Cuda,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        })
    }
}

/// The active backend of an [`NttExecutor`](crate::NttExecutor), with details.
///
/// Its `Display` is one line for logs and banners, e.g. `cpu (2 threads)` or
/// `cuda: NVIDIA H100 80GB HBM3 (#0, sm_90, 79 GiB, PTX compute_90, driver 13.0, NVRTC 13.0)`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// The CPU.
    Cpu {
        /// Threads the transforms spread over.
        threads: usize,
    },
    /// A CUDA device.
    Cuda(DeviceInfo),
}

impl Backend {
    /// CPU or CUDA.
    pub fn kind(&self) -> BackendKind {
        match self {
            Self::Cpu { .. } => BackendKind::Cpu,
            Self::Cuda(_) => BackendKind::Cuda,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu { threads } => write!(f, "cpu ({threads} threads)"),
            Self::Cuda(info) => write!(f, "cuda: {info}"),
        }
    }
}
