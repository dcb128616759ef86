//! A component under deterministic simulation (madsim): every pick and save
//! crosses clouds (≈100 ms round trips), and the worker node crashes at 2 s
//! and comes back 1 s later. Its claims were leases: they expire and are
//! handed out again, so every job is saved exactly once. Same seed, same run.
//! Run: `cargo xtask example simulate [SEED]` (it needs `--cfg madsim`).

#[cfg(madsim)]
fn main() -> anyhow::Result<()> {
    use std::{collections::BTreeSet, sync::Arc, time::Duration};

    use pjp_core::{JobMeta, JobRunner, Runtime, Shutdown, executor_fn, memory::MemoryQueue};
    use pjp_runtime_sim::{LatencyProfile, SimConfig, SimRuntime, simulate};
    use pjp_testkit::{PickerExt, SaverExt};

    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    println!("seed {seed} (replay: cargo xtask example simulate {seed})");
    let (saved, distinct, picks, elapsed) = simulate(seed, SimConfig::default(), || async {
        let rt = SimRuntime::builder().cores(4).build()?;
        let queue: MemoryQueue<u64, u64, String> = MemoryQueue::closed_with(0..400);
        queue.set_lease(&rt, Duration::from_secs(1));
        let done = Arc::new(tokio::sync::Notify::new());
        let handle = madsim::runtime::Handle::current();
        let (rt2, queue2, done2) = (rt.clone(), queue.clone(), Arc::clone(&done));
        let init = move || {
            let (rt, queue, done) = (rt2.clone(), queue2.clone(), Arc::clone(&done2));
            async move {
                let cloud = LatencyProfile::cross_cloud();
                let picker = queue.picker().with_latency(&rt, cloud.clone());
                let saver = queue.saver().with_latency(&rt, cloud);
                let square = executor_fn(|n: u64| n.checked_mul(n).ok_or("overflow".to_owned()));
                let runner = JobRunner::builder(picker, square, saver)
                    .workers(4)
                    .pickers(4)
                    .savers(4)
                    .prefetch(16);
                if let Ok(runner) = runner.build() {
                    let _ = runner.run(&rt, Shutdown::new()).await; // checked by the counts below
                }
                done.notify_one();
            }
        };
        let node = handle.create_node().name("worker").init(init).build();
        rt.sleep(Duration::from_secs(2)).await;
        handle.kill(node.id());
        println!(
            "worker node killed at {:?}, {} jobs saved",
            rt.elapsed(),
            queue.saved_count()
        );
        rt.sleep(Duration::from_secs(1)).await;
        handle.restart(node.id());
        done.notified().await;
        let saved = queue.saved();
        let distinct: BTreeSet<_> = saved.iter().map(|s| s.meta.job_id()).collect();
        let picks: u32 = queue.pick_counts().iter().sum();
        anyhow::Ok((saved.len(), distinct.len(), picks, rt.elapsed()))
    })?;
    println!("{saved} saves of {distinct} distinct jobs, {picks} picks, {elapsed:?} simulated");
    anyhow::ensure!(
        saved == 400 && distinct == 400,
        "every job saved exactly once"
    );
    anyhow::ensure!(
        picks > 400,
        "the crashed node's claims were handed out again"
    );
    Ok(())
}

#[cfg(not(madsim))]
fn main() {
    eprintln!("this example runs under madsim: `cargo xtask example simulate`");
    std::process::exit(2);
}
