//! Two chained runners, as a real prover has: a witness generator (CPU)
//! feeding a prover (GPU) through a bounded stage channel. When the prover
//! falls behind, the channel fills and the generator waits, so witnesses
//! never pile up in memory. When the generator finishes, the prover drains
//! the channel and finishes too.
//!
//! ```sh
//! cargo run -p pjp-examples --example two-stage
//! ```

use std::sync::Arc;

use pjp_core::memory::MemoryQueue;
use pjp_core::{JobRunner, Shutdown, executor_fn, stage};
use pjp_runtime_tokio::TokioRuntime;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Jobs are seeds; results are proofs (a checksum of the witness here).
    let jobs: MemoryQueue<u64, u64, String> = MemoryQueue::closed_with(0..500);
    let failed_witnesses: MemoryQueue<u64, Vec<u64>, String> = MemoryQueue::new();
    let origin = Arc::new(jobs.picker());
    // Stage A's outputs become stage B's inputs; released jobs go to `origin`.
    let (to_prover, from_witness) = stage::channel::<Vec<u64>, _, _>(8, Arc::clone(&origin));

    let witness = executor_fn(|seed: u64| {
        Ok::<_, String>(
            (0..1024)
                .map(|i| seed.wrapping_mul(31).wrapping_add(i))
                .collect::<Vec<u64>>(),
        )
    });
    let prove = executor_fn(|w: Vec<u64>| {
        w.iter()
            .try_fold(0u64, |acc, x| acc.checked_add(*x))
            .ok_or_else(|| "witness overflowed".to_string())
    });

    let a = JobRunner::builder(
        origin,
        witness,
        to_prover.on_failure(failed_witnesses.saver()),
    )
    .stage("witness")
    .workers(2)
    .build()?;
    let b = JobRunner::builder(from_witness, prove, jobs.saver())
        .stage("prove")
        .workers(2)
        .build()?;

    let runtime = TokioRuntime::current();
    let shutdown = Shutdown::new();
    // `into_run` drops A when it ends, which closes the channel for B.
    let (a, b) = tokio::join!(
        a.into_run(&runtime, shutdown.clone()),
        b.run(&runtime, shutdown.downstream()),
    );
    let (a, b) = (a?, b?);
    println!(
        "witness: {} succeeded; prove: {} succeeded",
        a.counts.succeeded, b.counts.succeeded
    );
    println!(
        "peak witnesses held by the prover stage: {}",
        b.peak_claimed
    );
    anyhow::ensure!(jobs.saved_count() == 500, "every job proved and saved once");
    anyhow::ensure!(failed_witnesses.saved_count() == 0, "no witness failed");
    Ok(())
}
