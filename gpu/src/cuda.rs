//! The CUDA backend: [`CudaNtt`] runs the [launch plan](crate::plan) of each job
//! on its own stream, with device buffers reused across jobs.
//!
//! Starting it never panics where CUDA is absent: libcuda and libnvrtc are probed
//! before the first cudarc call, versions are compared before PTX is loaded, and
//! every failure is a [`CudaError`].

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig};
use pjp_core::panic_message;

use crate::cpu::Twiddles;
use crate::device::{ComputeCapability, CudaVersion, DeviceInfo};
use crate::error::{self, CuResult, CudaError, NttError};
use crate::ffi::{self, DriverLib, LaunchFailure, NvrtcLib};
use crate::job::{self, Direction};
use crate::kernel;
use crate::plan::{self, Kernel, LaunchPlan};

// The plan never asks a butterfly launch for more stages than the kernel runs.
const _: () = assert!(plan::MAX_RADIX_LOG <= ffi::MAX_RADIX_LOG);

/// Goldilocks NTTs on one CUDA device.
///
/// Each job in flight gets a stream of its own (taken from a pool, created on
/// demand), so jobs on several runner workers overlap on the GPU; each stream
/// keeps its input and work buffers for the next job, growing them when a larger
/// job comes. Twiddle tables are uploaded once per size and direction.
///
/// ```no_run
/// use pjp_gpu::{CudaNtt, Direction};
///
/// let gpu = CudaNtt::new(0)?;
/// println!("running on {}", gpu.info());
/// let mut data = vec![1u64; 1 << 20];
/// gpu.transform(&mut data, 20, Direction::Forward)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CudaNtt {
    info: DeviceInfo,
    functions: Functions,
    twiddles: Mutex<TwiddleCache>,
    lanes: Mutex<Vec<Lane>>,
    streams: AtomicUsize,
    ctx: Arc<CudaContext>,
}

impl std::fmt::Debug for CudaNtt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaNtt")
            .field("info", &self.info)
            .field("streams", &self.streams())
            .finish_non_exhaustive()
    }
}

/// Device twiddle tables by (log2 size, direction).
type TwiddleCache = HashMap<(u32, Direction), Arc<CudaSlice<u64>>>;

struct Functions {
    bit_reverse: CudaFunction,
    butterflies: CudaFunction,
    scale: CudaFunction,
}

/// A stream with the buffers of the job running on it.
struct Lane {
    stream: Arc<CudaStream>,
    input: Option<CudaSlice<u64>>,
    work: Option<CudaSlice<u64>>,
}

impl CudaNtt {
    /// Opens device `ordinal` and compiles the kernels for it.
    ///
    /// Fails with [`CudaError::NoDriver`], [`CudaError::NoDevice`],
    /// [`CudaError::NvrtcMissing`] or [`CudaError::NvrtcTooNew`] where the
    /// backend cannot run ([`CudaError::is_unavailable`]), and with other
    /// variants when something breaks on the way.
    pub fn new(ordinal: usize) -> Result<Self, CudaError> {
        let driver = DriverLib::probe().ok_or(CudaError::NoDriver)?;
        NvrtcLib::probe().ok_or(CudaError::NvrtcMissing)?;
        catch_unwind(AssertUnwindSafe(|| Self::open(driver, ordinal))).unwrap_or_else(|payload| {
            Err(CudaError::Panicked {
                message: panic_message(payload.as_ref()),
            })
        })
    }

    fn open(driver: DriverLib, ordinal: usize) -> Result<Self, CudaError> {
        let driver_version = CudaVersion::from_driver(
            driver
                .version()
                .map_err(error::driver("cuDriverGetVersion"))?,
        );
        let nvrtc_version = kernel::nvrtc_version()?;
        cudarc::driver::result::init().map_err(|e| {
            if e.0 as u32 == CuResult::NO_DEVICE {
                CudaError::NoDevice { ordinal, count: 0 }
            } else {
                error::driver("cuInit")(e)
            }
        })?;
        let count = cudarc::driver::result::device::get_count()
            .map_err(error::driver("cuDeviceGetCount"))?;
        let count = usize::try_from(count).unwrap_or(0);
        if ordinal >= count {
            return Err(CudaError::NoDevice { ordinal, count });
        }
        if nvrtc_version > driver_version {
            return Err(CudaError::NvrtcTooNew {
                nvrtc: nvrtc_version,
                driver: driver_version,
            });
        }
        let ctx = CudaContext::new(ordinal).map_err(error::driver("cuDevicePrimaryCtxRetain"))?;
        // Workers waiting for their jobs sleep instead of spinning a core each.
        // Best effort: cuCtxSetFlags exists from CUDA 12.1 on.
        if driver_version >= CudaVersion::new(12, 1)
            && let Err(e) = ctx.set_blocking_synchronize()
        {
            tracing::debug!(
                code = e.0 as u32,
                "cannot make stream synchronization blocking"
            );
        }
        let (major, minor) = ctx
            .compute_capability()
            .map_err(error::driver("cuDeviceGetAttribute"))?;
        let compute_capability = ComputeCapability::new(
            u32::try_from(major).unwrap_or(0),
            u32::try_from(minor).unwrap_or(0),
        );
        let name = ctx.name().map_err(error::driver("cuDeviceGetName"))?;
        let total_memory = ctx.total_mem().map_err(error::driver("cuDeviceTotalMem"))?;
        let ptx_arch = kernel::ptx_arch_for(compute_capability)?;
        let compiled = kernel::compile(ptx_arch)?;
        let module = ctx.load_module(compiled.image()).map_err(|e| {
            if e.0 as u32 == CuResult::UNSUPPORTED_PTX_VERSION {
                CudaError::NvrtcTooNew {
                    nvrtc: nvrtc_version,
                    driver: driver_version,
                }
            } else {
                error::driver("cuModuleLoadData")(e)
            }
        })?;
        let load = |name: &'static str| {
            module
                .load_function(name)
                .map_err(error::driver("cuModuleGetFunction"))
        };
        let functions = Functions {
            bit_reverse: load(kernel::BIT_REVERSE)?,
            butterflies: load(kernel::BUTTERFLIES)?,
            scale: load(kernel::SCALE)?,
        };
        let info = DeviceInfo {
            ordinal,
            name,
            compute_capability,
            ptx_arch,
            driver: driver_version,
            nvrtc: nvrtc_version,
            total_memory,
        };
        tracing::debug!(device = %info, "CUDA NTT backend ready");
        Ok(Self {
            info,
            functions,
            twiddles: Mutex::new(HashMap::new()),
            lanes: Mutex::new(Vec::new()),
            streams: AtomicUsize::new(0),
            ctx,
        })
    }

    /// The device and versions in use.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Streams created so far: the most jobs that were in flight at once.
    pub fn streams(&self) -> usize {
        self.streams.load(Ordering::Relaxed)
    }

    /// Transforms every polynomial of size 2^`log_n` in `data` in place.
    ///
    /// Elements must be canonical (the [executor](crate::NttExecutor) checks).
    /// Blocks until the result is back in `data`; call it from several threads to
    /// overlap jobs.
    pub fn transform(
        &self,
        data: &mut [u64],
        log_n: u32,
        direction: Direction,
    ) -> Result<(), NttError> {
        let (_, batch) = job::batch_shape(data.len(), log_n)?;
        if batch == 0 {
            return Ok(());
        }
        let batch = batch as u64;
        let plan = LaunchPlan::new(log_n, batch, direction).map_err(CudaError::from)?;
        let mut lane = self.take_lane()?;
        let twiddles = self.device_twiddles(log_n, direction, &lane.stream)?;
        self.run(&mut lane, data, &plan, &twiddles)?;
        // A lane whose job failed is dropped: its stream may be in an error state.
        self.lock_lanes().push(lane);
        Ok(())
    }

    fn lock_lanes(&self) -> MutexGuard<'_, Vec<Lane>> {
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take_lane(&self) -> Result<Lane, CudaError> {
        if let Some(lane) = self.lock_lanes().pop() {
            return Ok(lane);
        }
        let stream = self
            .ctx
            .new_stream()
            .map_err(error::driver("cuStreamCreate"))?;
        self.streams.fetch_add(1, Ordering::Relaxed);
        Ok(Lane {
            stream,
            input: None,
            work: None,
        })
    }

    fn device_twiddles(
        &self,
        log_n: u32,
        direction: Direction,
        stream: &Arc<CudaStream>,
    ) -> Result<Arc<CudaSlice<u64>>, NttError> {
        let mut cache = self.twiddles.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(table) = cache.get(&(log_n, direction)) {
            return Ok(Arc::clone(table));
        }
        let host = Twiddles::new(log_n, direction)?;
        // Other streams that use the table wait for this upload through the
        // slice's write event (cudarc's event tracking).
        let table = Arc::new(
            stream
                .clone_htod(host.table())
                .map_err(error::driver("cuMemcpyHtoDAsync"))?,
        );
        cache.insert((log_n, direction), Arc::clone(&table));
        Ok(table)
    }

    fn run(
        &self,
        lane: &mut Lane,
        data: &mut [u64],
        plan: &LaunchPlan,
        twiddles: &CudaSlice<u64>,
    ) -> Result<(), CudaError> {
        let total = data.len();
        let Lane {
            stream,
            input,
            work,
        } = lane;
        let input = ensure_capacity(stream, input, total)?;
        let work = ensure_capacity(stream, work, total)?;
        stream
            .memcpy_htod(&*data, input)
            .map_err(error::driver("cuMemcpyHtoDAsync"))?;
        let f = &self.functions;
        for launch in plan.launches() {
            let cfg = LaunchConfig {
                grid_dim: (launch.grid_dim, 1, 1),
                block_dim: (launch.block_dim, 1, 1),
                shared_mem_bytes: 0,
            };
            let result = match launch.kernel {
                Kernel::BitReverse { log_n, total } => {
                    ffi::launch_bit_reverse(stream, &f.bit_reverse, cfg, input, work, log_n, total)
                }
                Kernel::Butterflies {
                    log_n,
                    stage,
                    radix_log,
                    threads,
                } => ffi::launch_butterflies(
                    stream,
                    &f.butterflies,
                    cfg,
                    work,
                    twiddles,
                    log_n,
                    stage,
                    radix_log,
                    threads,
                ),
                Kernel::Scale { factor, total } => {
                    ffi::launch_scale(stream, &f.scale, cfg, work, factor, total)
                }
            };
            result.map_err(|failure| launch_error(launch.kernel.entry_point(), failure))?;
        }
        // `work` holds at least `total` elements (ensure_capacity above).
        let result = work
            .try_slice(0..total)
            .ok_or(CudaError::OutOfMemory { bytes: total * 8 })?;
        stream
            .memcpy_dtoh(&result, data)
            .map_err(error::driver("cuMemcpyDtoHAsync"))?;
        stream
            .synchronize()
            .map_err(error::driver("cuStreamSynchronize"))?;
        Ok(())
    }
}

/// Makes `slot` hold at least `len` elements, reallocating when it is too small.
fn ensure_capacity<'a>(
    stream: &Arc<CudaStream>,
    slot: &'a mut Option<CudaSlice<u64>>,
    len: usize,
) -> Result<&'a mut CudaSlice<u64>, CudaError> {
    let bytes = len.saturating_mul(std::mem::size_of::<u64>());
    if slot.as_ref().is_none_or(|s| s.len() < len) {
        // Free the old buffer before allocating the larger one.
        *slot = None;
        let fresh = stream.alloc_zeros::<u64>(len).map_err(|e| {
            if e.0 as u32 == CuResult::OUT_OF_MEMORY {
                CudaError::OutOfMemory { bytes }
            } else {
                error::driver("cuMemAlloc")(e)
            }
        })?;
        *slot = Some(fresh);
    }
    slot.as_mut().ok_or(CudaError::OutOfMemory { bytes })
}

fn launch_error(kernel: &'static str, failure: LaunchFailure) -> CudaError {
    match failure {
        LaunchFailure::Driver(e) => CudaError::Launch {
            kernel,
            code: CuResult::from_driver(&e),
        },
        LaunchFailure::BufferTooSmall => CudaError::LaunchRefused { kernel },
    }
}
