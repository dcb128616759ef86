//! A real NVRTC compile of the NTT kernels for compute capability 9.0 (H100,
//! H200). NVRTC needs no GPU.
//!
//! Needs libnvrtc on the library path: `gpu/scripts/install-nvrtc.sh` installs it
//! and prints the directory for `LD_LIBRARY_PATH`. Without it the tests print
//! why and pass, unless `CI=true`, where they fail.

use pjp_gpu::kernel::{self, ENTRY_POINTS};
use pjp_gpu::{ComputeCapability, CudaError};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Whether NVRTC is here; `false` means skip (outside CI).
fn nvrtc_present() -> bool {
    match kernel::nvrtc_version() {
        Ok(version) => {
            println!("NVRTC {version}");
            true
        }
        Err(CudaError::NvrtcMissing) => {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "CI=true but libnvrtc cannot be loaded: run gpu/scripts/install-nvrtc.sh and \
                 add the directory it prints to LD_LIBRARY_PATH"
            );
            println!(
                "SKIPPED: libnvrtc not found (run gpu/scripts/install-nvrtc.sh and export \
                 LD_LIBRARY_PATH=<the directory it prints>)"
            );
            false
        }
        Err(e) => panic!("NVRTC present but unusable: {e}"),
    }
}

#[test]
fn compiles_the_kernels_to_ptx_for_sm_90() -> TestResult {
    if !nvrtc_present() {
        return Ok(());
    }
    let compiled = kernel::compile(ComputeCapability::HOPPER)?;
    let ptx = compiled.ptx();
    assert_eq!(compiled.arch(), ComputeCapability::new(9, 0));
    assert!(
        ptx.contains(".target sm_90"),
        "PTX does not target sm_90:\n{ptx}"
    );
    assert!(ptx.contains(".address_size 64"));
    for entry in ENTRY_POINTS {
        assert!(
            ptx.contains(&format!(".entry {entry}(")),
            "PTX lacks the entry point {entry}"
        );
    }
    // The 128-bit product must be the hardware's mul.hi, not a call.
    assert!(ptx.contains("mul.hi.u64"), "no mul.hi.u64 in the PTX");
    println!(
        "PTX for {} by NVRTC {}: {} bytes",
        compiled.arch().virtual_arch(),
        compiled.nvrtc_version(),
        ptx.len()
    );
    Ok(())
}

#[test]
fn chooses_the_newest_supported_arch_not_above_the_device() -> TestResult {
    if !nvrtc_present() {
        return Ok(());
    }
    assert_eq!(
        kernel::ptx_arch_for(ComputeCapability::HOPPER)?,
        ComputeCapability::HOPPER
    );
    // A device newer than any NVRTC knows still gets PTX (JIT-compiled by the driver).
    let future = ComputeCapability::new(99, 9);
    assert!(kernel::ptx_arch_for(future)? <= future);
    assert!(matches!(
        kernel::ptx_arch_for(ComputeCapability::new(1, 0)),
        Err(CudaError::UnsupportedArch { .. })
    ));
    Ok(())
}

#[test]
fn compile_errors_carry_nvrtcs_log() -> TestResult {
    if !nvrtc_present() {
        return Ok(());
    }
    let err = kernel::compile_source(
        "extern \"C\" __global__ void broken() { undeclared_name = 1; }",
        ComputeCapability::HOPPER,
    )
    .err()
    .ok_or("broken source compiled")?;
    match err {
        CudaError::Compile { arch, log } => {
            assert_eq!(arch, "compute_90");
            assert!(log.contains("undeclared_name"), "log: {log}");
        }
        other => panic!("expected a compile error, got {other}"),
    }
    Ok(())
}
