//! Prints the NTT kernels' PTX for a compute capability (default 9.0):
//! `cargo run -p pjp-gpu --example dump_ptx -- 9.0`. Needs libnvrtc.

use pjp_gpu::{ComputeCapability, kernel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "9.0".to_owned());
    let (major, minor) = arg
        .split_once('.')
        .ok_or("expected MAJOR.MINOR, e.g. 9.0")?;
    let compiled = kernel::compile(ComputeCapability::new(major.parse()?, minor.parse()?))?;
    print!("{}", compiled.ptx());
    Ok(())
}
