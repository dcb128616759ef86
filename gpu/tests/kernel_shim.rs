//! The CUDA kernel source (`kernels/ntt.cu`), compiled with g++ under the host
//! shim (`shim/`), replays the CUDA backend's launch plan ([`LaunchPlan`]) and
//! must match the CPU reference bit for bit — plain and under AddressSanitizer
//! with UndefinedBehaviorSanitizer. This checks the kernels' logic and the plan
//! on every CI run, without a GPU.
//!
//! The compiler is `$CXX` or `g++`. Without one the tests print why and pass,
//! unless `CI=true`, where they fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use pjp_gpu::plan::LaunchPlan;
use pjp_gpu::{CpuNtt, Direction, Twiddles, field};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Clone, Copy, Debug)]
enum Flavor {
    /// -O2.
    Plain,
    /// -O1 -fsanitize=address,undefined.
    Sanitized,
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Sanitized => "asan",
        }
    }

    fn flags(self) -> &'static [&'static str] {
        match self {
            Self::Plain => &["-O2"],
            Self::Sanitized => &[
                "-O1",
                "-g",
                "-fno-omit-frame-pointer",
                "-fsanitize=address,undefined",
                "-fno-sanitize-recover=all",
            ],
        }
    }
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where builds and case files go: under target/, never the source tree.
fn work_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ntt-shim")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Builds the shim binary once per flavor; `None` (test skipped) when there is
/// no C++ compiler outside CI.
fn shim(flavor: Flavor) -> Option<&'static Path> {
    static PLAIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    static SANITIZED: OnceLock<Option<PathBuf>> = OnceLock::new();
    let cell = match flavor {
        Flavor::Plain => &PLAIN,
        Flavor::Sanitized => &SANITIZED,
    };
    cell.get_or_init(|| build(flavor)).as_deref()
}

fn build(flavor: Flavor) -> Option<PathBuf> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".to_owned());
    if Command::new(&cxx).arg("--version").output().is_err() {
        assert!(
            !in_ci(),
            "CI=true but no C++ compiler ({cxx}) to build the kernel shim"
        );
        println!("SKIPPED: no C++ compiler `{cxx}`: kernel shim tests not run");
        return None;
    }
    let dir = work_dir();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let binary = dir.join(format!("ntt_shim_{}", flavor.name()));
    // Built under a private name and renamed, so concurrent test runs never see
    // a half-written binary.
    let partial = dir.join(format!(
        "ntt_shim_{}.{}.partial",
        flavor.name(),
        std::process::id()
    ));
    let output = Command::new(&cxx)
        .args([
            "-std=c++17",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wno-unknown-pragmas",
        ])
        .args(flavor.flags())
        .arg("-I")
        .arg(crate_dir().join("shim"))
        .arg("-I")
        .arg(crate_dir().join("kernels"))
        .arg(crate_dir().join("shim/ntt_shim.cpp"))
        .arg("-o")
        .arg(&partial)
        .output()
        .unwrap_or_else(|e| panic!("run {cxx}: {e}"));
    assert!(
        output.status.success(),
        "{cxx} failed to build the {} shim:\n{}",
        flavor.name(),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::rename(&partial, &binary)
        .unwrap_or_else(|e| panic!("rename to {}: {e}", binary.display()));
    Some(binary)
}

fn random_elements(len: usize, seed: u64) -> Vec<u64> {
    let mut elements = field::sample(len, seed);
    // Include the field's top edge now and then.
    for x in elements.iter_mut().step_by(97) {
        *x = field::P - 1;
    }
    elements
}

fn write_u64s(path: &Path, values: &[u64]) -> std::io::Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes)
}

fn read_u64s(path: &Path) -> std::io::Result<Vec<u64>> {
    let bytes = std::fs::read(path)?;
    Ok(bytes
        .chunks_exact(8)
        .map(|c| {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            u64::from_le_bytes(word)
        })
        .collect())
}

/// Runs the shim on `plan` text; returns the output buffer or the shim's stderr.
fn run_shim(
    binary: &Path,
    name: &str,
    plan: &str,
    input: &[u64],
    twiddles: &[u64],
) -> Result<Vec<u64>, String> {
    let dir = work_dir();
    let io = |e: std::io::Error| e.to_string();
    std::fs::create_dir_all(&dir).map_err(io)?;
    // Case files carry the process id (concurrent runs); removed afterwards.
    let stem = format!("{name}.{}", std::process::id());
    let plan_path = dir.join(format!("{stem}.plan"));
    let input_path = dir.join(format!("{stem}.in"));
    let twiddles_path = dir.join(format!("{stem}.tw"));
    let output_path = dir.join(format!("{stem}.out"));
    std::fs::write(&plan_path, plan).map_err(io)?;
    write_u64s(&input_path, input).map_err(io)?;
    write_u64s(&twiddles_path, twiddles).map_err(io)?;
    let output = Command::new(binary)
        .args([&plan_path, &input_path, &twiddles_path, &output_path])
        .output()
        .map_err(io);
    let result = match output {
        Ok(output) if output.status.success() => read_u64s(&output_path).map_err(io),
        Ok(output) => Err(format!(
            "shim exited with {} on plan\n{plan}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )),
        Err(e) => Err(e),
    };
    for path in [plan_path, input_path, twiddles_path, output_path] {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Replays the backend's plan for each case and compares with the CPU.
fn check_cases(flavor: Flavor, cases: &[(u32, usize)]) -> TestResult {
    let Some(binary) = shim(flavor) else {
        return Ok(());
    };
    let cpu = CpuNtt::new();
    for &(log_n, batch) in cases {
        for direction in [Direction::Forward, Direction::Inverse] {
            let input = random_elements(batch << log_n, u64::from(log_n) * 1000 + batch as u64);
            let plan = LaunchPlan::new(log_n, batch as u64, direction)?;
            let twiddles = Twiddles::new(log_n, direction)?;
            let name = format!("{}-{log_n}-{batch}-{direction}", flavor.name());
            let gpu = run_shim(binary, &name, &plan.to_text(), &input, twiddles.table())?;
            let mut expected = input;
            cpu.transform(&mut expected, log_n, direction)?;
            assert!(
                gpu == expected,
                "{name}: shim result differs from the CPU reference (first difference at {:?})",
                gpu.iter().zip(&expected).position(|(a, b)| a != b)
            );
        }
    }
    Ok(())
}

#[test]
fn kernels_match_cpu_reference() -> TestResult {
    let mut cases: Vec<(u32, usize)> = (0..=14).map(|k| (k, 1)).collect();
    cases.extend([
        (1, 7),
        (3, 5),
        (5, 16),
        (9, 3),
        (12, 4),
        (16, 2),
        (18, 1),
        (20, 1),
    ]);
    check_cases(Flavor::Plain, &cases)
}

#[test]
fn kernels_match_cpu_reference_under_sanitizers() -> TestResult {
    let mut cases: Vec<(u32, usize)> = (0..=12).map(|k| (k, 1)).collect();
    cases.extend([(1, 5), (2, 3), (4, 7), (7, 3), (10, 2), (15, 1)]);
    check_cases(Flavor::Sanitized, &cases)
}

#[test]
fn shim_rejects_a_grid_that_does_not_cover_the_work() -> TestResult {
    let Some(binary) = shim(Flavor::Plain) else {
        return Ok(());
    };
    let plan = LaunchPlan::new(12, 1, Direction::Forward)?;
    // Shrink the bit-reversal launch to one block: 256 of 4096 threads.
    let text = plan
        .to_text()
        .replacen("ntt_bit_reverse 16 ", "ntt_bit_reverse 1 ", 1);
    assert_ne!(text, plan.to_text(), "plan text changed its format");
    let twiddles = Twiddles::new(12, Direction::Forward)?;
    let input = random_elements(1 << 12, 1);
    let err = run_shim(binary, "short-grid", &text, &input, twiddles.table())
        .err()
        .ok_or("the shim accepted a grid that does not cover the work")?;
    assert!(err.contains("does not cover"), "{err}");
    Ok(())
}
