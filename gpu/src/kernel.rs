//! The CUDA kernel source (`gpu/kernels/ntt.cu`) and its run-time compilation
//! with NVRTC.
//!
//! NVRTC needs no GPU: [`compile`] works wherever libnvrtc loads (see
//! `gpu/scripts/install-nvrtc.sh`).
//!
//! ```no_run
//! use pjp_gpu::{ComputeCapability, kernel};
//!
//! let compiled = kernel::compile(ComputeCapability::HOPPER)?;
//! assert!(compiled.ptx().contains(".entry ntt_butterflies"));
//! # Ok::<(), pjp_gpu::CudaError>(())
//! ```

use std::panic::{AssertUnwindSafe, catch_unwind};

use cudarc::nvrtc::{CompileError, CompileOptions, Ptx};

use crate::device::{ComputeCapability, CudaVersion};
use crate::error::{CudaError, nvrtc};
use crate::ffi::NvrtcLib;

/// The kernel source, compiled at run time.
pub const SOURCE: &str = include_str!("../kernels/ntt.cu");

/// Entry point of the bit-reversal permutation kernel.
pub const BIT_REVERSE: &str = "ntt_bit_reverse";
/// Entry point of the butterfly-stages kernel.
pub const BUTTERFLIES: &str = "ntt_butterflies";
/// Entry point of the scaling kernel.
pub const SCALE: &str = "ntt_scale";
/// Every entry point of [`SOURCE`].
pub const ENTRY_POINTS: [&str; 3] = [BIT_REVERSE, BUTTERFLIES, SCALE];

/// The kernels compiled to PTX for one architecture.
#[derive(Clone, Debug)]
pub struct CompiledKernels {
    arch: ComputeCapability,
    nvrtc: CudaVersion,
    text: String,
    image: Ptx,
}

impl CompiledKernels {
    /// The (virtual) architecture the PTX targets.
    pub fn arch(&self) -> ComputeCapability {
        self.arch
    }

    /// The NVRTC that compiled it.
    pub fn nvrtc_version(&self) -> CudaVersion {
        self.nvrtc
    }

    /// The PTX text.
    pub fn ptx(&self) -> &str {
        &self.text
    }

    pub(crate) fn image(&self) -> Ptx {
        self.image.clone()
    }
}

/// NVRTC's version, or [`CudaError::NvrtcMissing`].
pub fn nvrtc_version() -> Result<CudaVersion, CudaError> {
    let lib = NvrtcLib::probe().ok_or(CudaError::NvrtcMissing)?;
    nvrtc_version_of(lib)
}

fn nvrtc_version_of(lib: NvrtcLib) -> Result<CudaVersion, CudaError> {
    let (major, minor) = lib.version().map_err(nvrtc("nvrtcVersion"))?;
    Ok(CudaVersion::new(
        u32::try_from(major).unwrap_or(0),
        u32::try_from(minor).unwrap_or(0),
    ))
}

/// The newest architecture NVRTC supports that does not exceed `device`: PTX for
/// an older virtual architecture runs on newer devices (the driver JIT-compiles
/// it), so a device newer than NVRTC still gets kernels.
pub fn ptx_arch_for(device: ComputeCapability) -> Result<ComputeCapability, CudaError> {
    let lib = NvrtcLib::probe().ok_or(CudaError::NvrtcMissing)?;
    let archs = lib
        .supported_archs()
        .map_err(nvrtc("nvrtcGetSupportedArchs"))?;
    archs
        .into_iter()
        .filter_map(|a| u32::try_from(a).ok())
        .map(ComputeCapability::from_arch_number)
        .filter(|&a| a <= device)
        .max()
        .ok_or(CudaError::UnsupportedArch { device })
}

/// Compiles [`SOURCE`] to PTX for `arch` (`--gpu-architecture=compute_XY`).
///
/// Fails with [`CudaError::NvrtcMissing`] when libnvrtc cannot be loaded and
/// with [`CudaError::Compile`] (carrying NVRTC's log) when it rejects the source.
pub fn compile(arch: ComputeCapability) -> Result<CompiledKernels, CudaError> {
    compile_source(SOURCE, arch)
}

/// Compiles other CUDA source with the options [`compile`] uses (for tests and
/// experiments with kernel variants).
///
/// A source with a NUL byte cannot be handed to NVRTC and is reported as a
/// [`CudaError::Compile`].
pub fn compile_source(source: &str, arch: ComputeCapability) -> Result<CompiledKernels, CudaError> {
    if source.contains('\0') {
        return Err(CudaError::Compile {
            arch: arch.virtual_arch(),
            log: "the source contains a NUL byte".to_owned(),
        });
    }
    let lib = NvrtcLib::probe().ok_or(CudaError::NvrtcMissing)?;
    let nvrtc_version = nvrtc_version_of(lib)?;
    let opts = CompileOptions {
        name: Some("ntt.cu".to_owned()),
        options: vec![
            format!("--gpu-architecture={}", arch.virtual_arch()),
            "--std=c++14".to_owned(),
        ],
        ..CompileOptions::default()
    };
    let compiled = catch_unwind(AssertUnwindSafe(|| {
        cudarc::nvrtc::compile_ptx_with_opts(source, opts)
    }))
    .map_err(|payload| CudaError::Panicked {
        message: pjp_core::panic_message(payload.as_ref()),
    })?;
    let image = compiled.map_err(|e| match e {
        CompileError::CompileError { log, .. } => CudaError::Compile {
            arch: arch.virtual_arch(),
            log: log.to_string_lossy().into_owned(),
        },
        CompileError::CreationError(e) => nvrtc("nvrtcCreateProgram")(e),
        CompileError::GetLogError(e) => nvrtc("nvrtcGetProgramLog")(e),
        CompileError::GetPtxError(e) => nvrtc("nvrtcGetPTX")(e),
        CompileError::DestroyError(e) => nvrtc("nvrtcDestroyProgram")(e),
    })?;
    let bytes = image.as_bytes().unwrap_or_default();
    let text = String::from_utf8_lossy(bytes)
        .trim_end_matches('\0')
        .to_owned();
    Ok(CompiledKernels {
        arch,
        nvrtc: nvrtc_version,
        text,
        image,
    })
}
