//! A small table of NTT timings, CPU beside GPU (when one is usable):
//!
//! ```text
//! cargo run --release -p pjp-gpu --example ntt_table [-- --max-log 22 --reps 5]
//! ```
//!
//! Columns: size, batch, best CPU ms ([`CpuNtt`], all threads), best GPU ms
//! ([`CudaNtt`], host → device, kernels, device → host), the GPU's effective
//! bandwidth (elements × 8 bytes × 2 directions / GPU time) and whether both
//! agree bit for bit. `gpu/scripts/gpu-bundle.sh` ships this binary.

use std::time::Instant;

use pjp_gpu::{CpuNtt, CudaNtt, Direction, NttError, field};

/// Best of `reps` runs of `f` on fresh copies of `input`, in ms, and the last
/// result.
fn best_ms(
    reps: usize,
    input: &[u64],
    mut f: impl FnMut(&mut [u64]) -> Result<(), NttError>,
) -> Result<(f64, Vec<u64>), NttError> {
    let mut best = f64::INFINITY;
    let mut out = Vec::new();
    for _ in 0..reps.max(1) {
        let mut data = input.to_vec();
        let start = Instant::now();
        f(&mut data)?;
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
        out = data;
    }
    Ok((best, out))
}

fn arg(name: &str, default: usize) -> Result<usize, String> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .ok_or(format!("{name} needs a value"))?
            .parse()
            .map_err(|e| format!("{name}: {e}")),
        None => Ok(default),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let max_log = u32::try_from(arg("--max-log", 22)?)?;
    let reps = arg("--reps", 5)?;
    let cpu = CpuNtt::new();
    let gpu = match CudaNtt::new(0) {
        Ok(gpu) => {
            println!("GPU: {}", gpu.info());
            Some(gpu)
        }
        Err(e) => {
            println!("GPU: none ({e}); CPU figures only");
            None
        }
    };
    println!("CPU: {} threads", cpu.threads());
    println!(
        "{:>6} {:>6} {:>10} {:>10} {:>8} {:>6}",
        "size", "batch", "CPU ms", "GPU ms", "GB/s", "match"
    );
    let mut mismatches = 0;
    for log_n in [10, 12, 14, 16, 18, 20, 22, 24]
        .into_iter()
        .filter(|&k| k <= max_log)
    {
        for batch in [1usize, 16] {
            if batch > 1 && log_n > 20 {
                continue;
            }
            let input = field::sample(batch << log_n, u64::from(log_n) * 17 + batch as u64);
            let (cpu_ms, cpu_out) = best_ms(reps, &input, |d| {
                cpu.transform(d, log_n, Direction::Forward)
            })?;
            let (gpu_ms, gbps, same) = match &gpu {
                Some(gpu) => {
                    // One untimed run: stream, buffers and twiddles are set up once.
                    let mut warm = input.clone();
                    gpu.transform(&mut warm, log_n, Direction::Forward)?;
                    let (ms, out) = best_ms(reps, &input, |d| {
                        gpu.transform(d, log_n, Direction::Forward)
                    })?;
                    let bytes = (input.len() * 8 * 2) as f64;
                    let same = out == cpu_out;
                    mismatches += usize::from(!same);
                    (
                        format!("{ms:.3}"),
                        format!("{:.1}", bytes / (ms * 1e-3) / 1e9),
                        if same { "yes" } else { "NO" },
                    )
                }
                None => ("-".to_owned(), "-".to_owned(), "-"),
            };
            println!(
                "{:>6} {batch:>6} {cpu_ms:>10.3} {gpu_ms:>10} {gbps:>8} {same:>6}",
                format!("2^{log_n}")
            );
        }
    }
    if mismatches > 0 {
        return Err(format!("{mismatches} GPU results differ from the CPU").into());
    }
    Ok(())
}
