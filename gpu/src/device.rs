//! What a CUDA setup is: [`CudaVersion`] (of the driver or NVRTC),
//! [`ComputeCapability`] and [`DeviceInfo`]. Plain data, no CUDA calls.

use std::fmt;

/// A CUDA version, as the driver or NVRTC reports it.
///
/// ```
/// use pjp_gpu::CudaVersion;
///
/// let driver = CudaVersion::from_driver(12040);
/// assert_eq!(driver, CudaVersion::new(12, 4));
/// assert!(CudaVersion::new(13, 0) > driver);
/// assert_eq!(driver.to_string(), "12.4");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CudaVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl CudaVersion {
    /// A version from its parts.
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// Decodes `cuDriverGetVersion`'s `1000 × major + 10 × minor`.
    pub const fn from_driver(version: i32) -> Self {
        let v = if version < 0 { 0 } else { version as u32 };
        Self::new(v / 1000, (v % 1000) / 10)
    }
}

impl fmt::Display for CudaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A GPU's compute capability (H100 and H200: 9.0).
///
/// ```
/// use pjp_gpu::ComputeCapability;
///
/// let hopper = ComputeCapability::new(9, 0);
/// assert_eq!(hopper.virtual_arch(), "compute_90");
/// assert_eq!(hopper.real_arch(), "sm_90");
/// assert_eq!(ComputeCapability::from_arch_number(89), ComputeCapability::new(8, 9));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComputeCapability {
    /// Major revision.
    pub major: u32,
    /// Minor revision.
    pub minor: u32,
}

impl ComputeCapability {
    /// Hopper (H100, H200).
    pub const HOPPER: Self = Self::new(9, 0);

    /// A compute capability from its parts.
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// From NVRTC's arch numbers (`90` → 9.0, `120` → 12.0).
    pub const fn from_arch_number(arch: u32) -> Self {
        Self::new(arch / 10, arch % 10)
    }

    /// The arch number, `10 × major + minor`.
    pub const fn arch_number(self) -> u32 {
        self.major * 10 + self.minor
    }

    /// The virtual architecture NVRTC targets for PTX: `compute_XY`.
    pub fn virtual_arch(self) -> String {
        format!("compute_{}", self.arch_number())
    }

    /// The real architecture: `sm_XY` (what PTX's `.target` names).
    pub fn real_arch(self) -> String {
        format!("sm_{}", self.arch_number())
    }
}

impl fmt::Display for ComputeCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// What the CUDA backend runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Device ordinal.
    pub ordinal: usize,
    /// The device's name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// The device's compute capability.
    pub compute_capability: ComputeCapability,
    /// The architecture the kernels were compiled for (at most the device's).
    pub ptx_arch: ComputeCapability,
    /// The CUDA version the driver supports.
    pub driver: CudaVersion,
    /// NVRTC's version.
    pub nvrtc: CudaVersion,
    /// Device memory in bytes.
    pub total_memory: usize,
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (#{}, sm_{}, {} GiB, PTX {}, driver {}, NVRTC {})",
            self.name,
            self.ordinal,
            self.compute_capability.arch_number(),
            self.total_memory >> 30,
            self.ptx_arch.virtual_arch(),
            self.driver,
            self.nvrtc
        )
    }
}
