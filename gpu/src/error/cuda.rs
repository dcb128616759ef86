//! [`CudaError`]: why the CUDA backend is unavailable or a GPU job failed, and
//! [`CuResult`], the driver's code it carries.

use std::fmt;

use super::plan::PlanError;
use crate::device::{ComputeCapability, CudaVersion};

/// Why the CUDA backend could not start, or why a GPU job failed.
///
/// Driver failures carry the raw `CUresult` code (and its name when the driver
/// could give one): formatting cudarc's own `DriverError` calls into libcuda.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CudaError {
    /// libcuda (the driver) could not be loaded.
    #[error("no CUDA driver: libcuda could not be loaded")]
    NoDriver,
    /// The driver is present but reports no usable device.
    #[error("no CUDA device #{ordinal} ({count} present)")]
    NoDevice {
        /// The requested device ordinal.
        ordinal: usize,
        /// Devices the driver reports.
        count: usize,
    },
    /// libnvrtc could not be loaded.
    #[error(
        "NVRTC missing: libnvrtc could not be loaded (install it with \
         gpu/scripts/install-nvrtc.sh and add its directory to LD_LIBRARY_PATH)"
    )]
    NvrtcMissing,
    /// NVRTC is newer than the driver: the driver would reject its PTX.
    #[error(
        "NVRTC {nvrtc} is newer than the CUDA driver (supports CUDA {driver}); \
         the driver would reject its PTX: use an NVRTC of at most {driver}"
    )]
    NvrtcTooNew {
        /// NVRTC's version.
        nvrtc: CudaVersion,
        /// The CUDA version the driver supports.
        driver: CudaVersion,
    },
    /// NVRTC cannot target the device's architecture or any older one.
    #[error("NVRTC supports no architecture at or below the device's {device}")]
    UnsupportedArch {
        /// The device's compute capability.
        device: ComputeCapability,
    },
    /// NVRTC rejected the kernel source.
    #[error("NVRTC failed to compile the NTT kernels for {arch}:\n{log}")]
    Compile {
        /// The target architecture (`compute_XY`).
        arch: String,
        /// NVRTC's compile log.
        log: String,
    },
    /// An NVRTC call other than the compilation failed.
    #[error("NVRTC call {call} failed with nvrtcResult {code}")]
    Nvrtc {
        /// The failing call.
        call: &'static str,
        /// The raw `nvrtcResult`.
        code: u32,
    },
    /// A CUDA driver call failed.
    #[error("CUDA driver call {call} failed with {code}")]
    Driver {
        /// The failing call.
        call: &'static str,
        /// The `CUresult`.
        code: CuResult,
    },
    /// A kernel launch failed.
    #[error("launch of kernel {kernel} failed with {code}")]
    Launch {
        /// The kernel's entry point.
        kernel: &'static str,
        /// The `CUresult`.
        code: CuResult,
    },
    /// A launch was refused before reaching the driver: a buffer is smaller
    /// than the launch would touch (a bug in pjp-gpu, not in the job).
    #[error("launch of kernel {kernel} refused: a buffer is smaller than the launch")]
    LaunchRefused {
        /// The kernel's entry point.
        kernel: &'static str,
    },
    /// The job does not fit the launch plan (too many elements for one grid).
    #[error("job does not fit one launch plan: {0}")]
    Plan(#[from] PlanError),
    /// Device memory ran out.
    #[error("out of GPU memory allocating {bytes} bytes")]
    OutOfMemory {
        /// The allocation that failed.
        bytes: usize,
    },
    /// The CUDA library panicked (caught; a cudarc bug or a broken install).
    #[error("the CUDA library panicked: {message}")]
    Panicked {
        /// The panic message.
        message: String,
    },
}

impl CudaError {
    /// Whether the backend cannot run here at all (no driver, device, NVRTC,
    /// or matching versions), as opposed to a failure while running.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::NoDriver
                | Self::NoDevice { .. }
                | Self::NvrtcMissing
                | Self::NvrtcTooNew { .. }
                | Self::UnsupportedArch { .. }
        )
    }

    /// Whether running the job again may succeed (memory pressure, a transient
    /// driver failure).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::OutOfMemory { .. } | Self::Driver { .. } | Self::Launch { .. }
        )
    }
}

/// A raw `CUresult` with its name when the driver could give one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CuResult {
    /// The numeric code (`CUDA_ERROR_OUT_OF_MEMORY` = 2, …).
    pub code: u32,
    /// The name, e.g. `CUDA_ERROR_OUT_OF_MEMORY`, if known.
    pub name: Option<String>,
}

impl CuResult {
    /// `CUDA_ERROR_OUT_OF_MEMORY`.
    pub const OUT_OF_MEMORY: u32 = 2;
    /// `CUDA_ERROR_NO_DEVICE`.
    pub const NO_DEVICE: u32 = 100;
    /// `CUDA_ERROR_UNSUPPORTED_PTX_VERSION`.
    pub const UNSUPPORTED_PTX_VERSION: u32 = 222;

    /// Captures a driver error. Only called with a driver error in hand, so
    /// libcuda is loaded and asking it for the name is safe.
    pub(crate) fn from_driver(e: &cudarc::driver::DriverError) -> Self {
        Self {
            code: e.0 as u32,
            name: e
                .error_name()
                .ok()
                .map(|name| name.to_string_lossy().into_owned()),
        }
    }
}

impl fmt::Display for CuResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "CUresult {} ({name})", self.code),
            None => write!(f, "CUresult {}", self.code),
        }
    }
}

/// Maps a driver error of `call` to a [`CudaError`].
pub(crate) fn driver(call: &'static str) -> impl FnOnce(cudarc::driver::DriverError) -> CudaError {
    move |e| CudaError::Driver {
        call,
        code: CuResult::from_driver(&e),
    }
}

/// Maps an NVRTC error of `call` to a [`CudaError`].
pub(crate) fn nvrtc(
    call: &'static str,
) -> impl FnOnce(cudarc::nvrtc::result::NvrtcError) -> CudaError {
    move |e| CudaError::Nvrtc {
        call,
        code: e.0 as u32,
    }
}
