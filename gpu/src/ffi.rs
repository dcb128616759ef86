//! Every `unsafe` call of this crate: library probes, version queries and kernel
//! launches.
//!
//! The rest of the crate is `deny(unsafe_code)`; each block here carries a
//! `// SAFETY:` argument. Calls into libcuda/libnvrtc are only reachable through
//! [`DriverLib`] and [`NvrtcLib`], tokens that exist only once the library was
//! found: with cudarc's dynamic loading, the first call into a missing library
//! panics.
//!
//! A leaf: it imports nothing from the rest of the crate, so every fact a
//! safety argument rests on (such as [`MAX_RADIX_LOG`]) is stated here, and it
//! returns cudarc's errors or its own [`LaunchFailure`] for the safe callers to
//! map.
#![allow(unsafe_code)]

use std::ffi::c_int;

use cudarc::driver::{
    CudaFunction, CudaSlice, CudaStream, DriverError, LaunchConfig, PushKernelArg,
    sys as driver_sys,
};
use cudarc::nvrtc::result::NvrtcError;
use cudarc::nvrtc::sys as nvrtc_sys;

/// Proof that libcuda could be loaded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DriverLib(());

impl DriverLib {
    /// Looks for libcuda under every name cudarc would try.
    pub(crate) fn probe() -> Option<Self> {
        // SAFETY: `is_culib_present` only tries to `dlopen` the candidate library
        // names and drops what it opened; it calls no CUDA function.
        let present = unsafe { driver_sys::is_culib_present() };
        present.then_some(Self(()))
    }

    /// The CUDA version the driver supports, as `1000 * major + 10 * minor`.
    pub(crate) fn version(self) -> Result<i32, DriverError> {
        let mut version: c_int = 0;
        // SAFETY: the library is present (`self` exists), `cuDriverGetVersion` may
        // be called before `cuInit`, and it writes one `int` through a pointer to a
        // live local.
        unsafe { driver_sys::cuDriverGetVersion(&mut version) }.result()?;
        Ok(version)
    }
}

/// Proof that libnvrtc could be loaded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NvrtcLib(());

impl NvrtcLib {
    /// Looks for libnvrtc under every name cudarc would try.
    pub(crate) fn probe() -> Option<Self> {
        // SAFETY: as for `DriverLib::probe`: only `dlopen` attempts.
        let present = unsafe { nvrtc_sys::is_culib_present() };
        present.then_some(Self(()))
    }

    /// NVRTC's (major, minor) version.
    pub(crate) fn version(self) -> Result<(i32, i32), NvrtcError> {
        let (mut major, mut minor): (c_int, c_int) = (0, 0);
        // SAFETY: the library is present; `nvrtcVersion` writes one `int` through
        // each pointer, both to live locals.
        unsafe { nvrtc_sys::nvrtcVersion(&mut major, &mut minor) }.result()?;
        Ok((major, minor))
    }

    /// The real architectures NVRTC can target, e.g. `[75, 80, …, 90, …]`.
    pub(crate) fn supported_archs(self) -> Result<Vec<i32>, NvrtcError> {
        let mut count: c_int = 0;
        // SAFETY: the library is present; writes one `int` to a live local.
        unsafe { nvrtc_sys::nvrtcGetNumSupportedArchs(&mut count) }.result()?;
        let mut archs: Vec<c_int> = vec![0; usize::try_from(count).unwrap_or(0)];
        if archs.is_empty() {
            return Ok(archs);
        }
        // SAFETY: `archs` holds exactly the `count` ints NVRTC writes.
        unsafe { nvrtc_sys::nvrtcGetSupportedArchs(archs.as_mut_ptr()) }.result()?;
        Ok(archs)
    }
}

/// The most stages one `ntt_butterflies` launch may run: its `switch` handles
/// `radix_log` 1 to 3 (2^3 elements per thread in registers). The launch plan
/// must stay within it (the CUDA backend asserts so at compile time).
pub(crate) const MAX_RADIX_LOG: u32 = 3;

/// Why a launch did not happen.
#[derive(Debug)]
pub(crate) enum LaunchFailure {
    /// A buffer is shorter than the launch would touch; nothing was launched.
    BufferTooSmall,
    /// The driver refused the launch.
    Driver(DriverError),
}

impl From<DriverError> for LaunchFailure {
    fn from(e: DriverError) -> Self {
        Self::Driver(e)
    }
}

/// Checks that `grid × block` threads cover `threads`, the count the kernel
/// bounds its indexes by.
fn covers(cfg: &LaunchConfig, threads: u64) -> bool {
    u64::from(cfg.grid_dim.0) * u64::from(cfg.block_dim.0) >= threads
}

/// Launches `ntt_bit_reverse(const u64 *src, u64 *dst, u32 log_n, u64 total)`.
///
/// Thread `t < total` moves `src[t]` to `dst[(t & !(n−1)) | rev(t mod n)]`.
pub(crate) fn launch_bit_reverse(
    stream: &CudaStream,
    func: &CudaFunction,
    cfg: LaunchConfig,
    src: &CudaSlice<u64>,
    dst: &mut CudaSlice<u64>,
    log_n: u32,
    total: u64,
) -> Result<(), LaunchFailure> {
    let fits = |len: usize| u64::try_from(len).is_ok_and(|len| len >= total);
    if !fits(src.len()) || !fits(dst.len()) || !covers(&cfg, total) || log_n > 32 {
        return Err(LaunchFailure::BufferTooSmall);
    }
    let mut launch = stream.launch_builder(func);
    launch.arg(src).arg(dst).arg(&log_n).arg(&total);
    // SAFETY: the arguments match the kernel's parameters in number, order and
    // type (two device pointers to u64, a u32, a u64). The kernel reads
    // `src[t]` and writes `dst[j]` only for t < total, with j < total because
    // `total` is a multiple of n = 2^log_n (the caller's plan) and j differs from t
    // only in its low log_n bits; both buffers hold at least `total` elements
    // (checked above). cudarc orders the launch after earlier writes to both
    // buffers through their events.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

/// Launches `ntt_butterflies(u64 *data, const u64 *twiddles, u32 log_n,
/// u32 stage, u32 radix_log, u64 threads)`.
///
/// Thread `t < threads` runs `radix_log` radix-2 stages, from `stage` on, over one
/// group of `2^radix_log` elements of one polynomial.
#[allow(clippy::too_many_arguments)]
pub(crate) fn launch_butterflies(
    stream: &CudaStream,
    func: &CudaFunction,
    cfg: LaunchConfig,
    data: &mut CudaSlice<u64>,
    twiddles: &CudaSlice<u64>,
    log_n: u32,
    stage: u32,
    radix_log: u32,
    threads: u64,
) -> Result<(), LaunchFailure> {
    let n = 1u64.checked_shl(log_n).unwrap_or(u64::MAX);
    let elements = threads.checked_shl(radix_log).unwrap_or(u64::MAX);
    let valid = (1..=MAX_RADIX_LOG).contains(&radix_log)
        && stage + radix_log <= log_n
        && log_n <= 32
        && u64::try_from(data.len()).is_ok_and(|len| len >= elements)
        && u64::try_from(twiddles.len()).is_ok_and(|len| len >= n)
        && covers(&cfg, threads);
    if !valid {
        return Err(LaunchFailure::BufferTooSmall);
    }
    let mut launch = stream.launch_builder(func);
    launch
        .arg(data)
        .arg(twiddles)
        .arg(&log_n)
        .arg(&stage)
        .arg(&radix_log)
        .arg(&threads);
    // SAFETY: the arguments match the kernel's parameters in number, order and
    // type. Thread t < threads touches the 2^radix_log elements of its group,
    // which lie inside polynomial p = t / 2^(log_n − radix_log), so below
    // (p + 1) · n ≤ threads · 2^radix_log ≤ data.len(); it reads twiddles below
    // 2^(stage + radix_log) ≤ n ≤ twiddles.len() (both checked above). Groups are
    // disjoint, so no two threads write the same element.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

/// Launches `ntt_scale(u64 *data, u64 factor, u64 total)`: `data[t] *= factor`
/// for `t < total`.
pub(crate) fn launch_scale(
    stream: &CudaStream,
    func: &CudaFunction,
    cfg: LaunchConfig,
    data: &mut CudaSlice<u64>,
    factor: u64,
    total: u64,
) -> Result<(), LaunchFailure> {
    if !u64::try_from(data.len()).is_ok_and(|len| len >= total) || !covers(&cfg, total) {
        return Err(LaunchFailure::BufferTooSmall);
    }
    let mut launch = stream.launch_builder(func);
    launch.arg(data).arg(&factor).arg(&total);
    // SAFETY: the arguments match the kernel's parameters in number, order and
    // type; thread t touches only data[t], t < total ≤ data.len() (checked above).
    unsafe { launch.launch(cfg) }?;
    Ok(())
}
