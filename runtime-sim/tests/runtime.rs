//! SimRuntime: panics become errors, blocking work takes modeled cores and
//! virtual time, sleeps are exact, randomness is seeded, node kills end
//! tasks.

#![cfg(madsim)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pjp_core::Runtime;
use pjp_runtime_sim::{NotInSimulation, SimConfig, SimRuntime, simulate, try_simulate};

fn runtime() -> SimRuntime {
    match SimRuntime::builder().cores(2).jitter(0.0).build() {
        Ok(rt) => rt,
        Err(error) => panic!("{error}"),
    }
}

#[test]
fn outside_a_simulation_there_is_no_runtime() {
    let error: NotInSimulation = SimRuntime::current().map(drop).expect_err("no simulation");
    assert!(error.to_string().contains("simulate"));
}

#[test]
fn a_panicking_task_is_an_error_not_an_aborted_simulation() {
    let (task, blocking, after) = simulate(1, SimConfig::default(), || async {
        let rt = runtime();
        let task = rt.spawn(async { panic!("task boom") }).await;
        let blocking = rt
            .spawn_blocking(Duration::from_millis(3), || -> u8 {
                panic!("blocking boom")
            })
            .await;
        // The simulation goes on.
        let after = rt.spawn_worker("w", async {}).await;
        (task, blocking.map(drop), after)
    });
    assert_eq!(task.map_err(|e| e.message), Err("task boom".to_owned()));
    assert_eq!(
        blocking.map_err(|e| e.message),
        Err("blocking boom".to_owned())
    );
    assert_eq!(after, Ok(()));
}

#[test]
fn blocking_work_takes_a_core_and_its_modeled_cost() {
    let (elapsed, busy, peak) = simulate(2, SimConfig::default(), || async {
        let rt = runtime();
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let start = rt.now();
        let jobs: Vec<_> = (0..6)
            .map(|_| {
                let (rt2, running, peak) = (rt.clone(), Arc::clone(&running), Arc::clone(&peak));
                rt.spawn(async move {
                    rt2.run_blocking(Duration::from_millis(10), || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await;
                })
            })
            .collect();
        for job in jobs {
            job.await.map_err(|e| e.message)?;
        }
        Ok::<_, String>((rt.now() - start, rt.busy(), peak.load(Ordering::SeqCst)))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    // Six 10 ms jobs on two cores: three rounds.
    assert!(
        elapsed >= Duration::from_millis(30) && elapsed < Duration::from_millis(31),
        "{elapsed:?}"
    );
    assert!(
        busy >= Duration::from_millis(60) && busy < Duration::from_millis(61),
        "{busy:?}"
    );
    // Closures run inline, one at a time (a single-threaded simulation).
    assert_eq!(peak, 1);
}

#[test]
fn sleeps_are_exact_below_a_millisecond() {
    let slept = simulate(3, SimConfig::default(), || async {
        let rt = runtime();
        let start = rt.now();
        rt.sleep(Duration::from_micros(250)).await;
        let quarter = rt.now() - start;
        let start = rt.now();
        rt.sleep(Duration::ZERO).await;
        (quarter, rt.now() - start)
    });
    // madsim adds 50–100 ns per scheduling step; its own sleep rounds up to 1 ms.
    assert!(
        slept.0 >= Duration::from_micros(250) && slept.0 < Duration::from_micros(251),
        "{:?}",
        slept.0
    );
    assert!(slept.1 < Duration::from_micros(1), "{:?}", slept.1);
}

#[test]
fn randomness_and_jitter_follow_the_seed() {
    let draw = |seed| {
        simulate(seed, SimConfig::default(), || async {
            let rt = SimRuntime::builder()
                .jitter(0.5)
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
            let numbers: Vec<u64> = (0..4).map(|_| rt.random_u64()).collect();
            let start = rt.now();
            rt.run_blocking(Duration::from_millis(100), || ()).await;
            (numbers, rt.now() - start)
        })
    };
    let (a, b, c) = (draw(7), draw(7), draw(8));
    assert_eq!(a, b);
    assert_ne!(a.0, c.0);
    // ±50 % jitter around 100 ms.
    assert!(a.1 >= Duration::from_millis(50) && a.1 <= Duration::from_millis(151));
}

#[test]
fn killing_a_node_ends_its_tasks_and_a_failure_names_its_seed() {
    let killed = simulate(4, SimConfig::default(), || async {
        let handle = madsim::runtime::Handle::current();
        let node = handle.create_node().name("victim").build();
        let rt = runtime();
        let task = node.spawn(async move {
            let inner = runtime();
            inner.spawn(std::future::pending::<()>()).await
        });
        rt.sleep(Duration::from_millis(5)).await;
        handle.kill(node.id());
        task.await.is_err()
    });
    assert!(killed);

    let failure = try_simulate(99, SimConfig::default(), || async {
        panic!("deliberate");
    })
    .expect_err("the simulation panics");
    assert_eq!((failure.seed, failure.message.as_str()), (99, "deliberate"));
    assert!(
        failure.replay.starts_with("MADSIM_TEST_SEED=99 "),
        "{}",
        failure.replay
    );

    // A deadlock is reported too, not hung on.
    let deadlock = try_simulate(5, SimConfig::default(), std::future::pending::<()>);
    assert!(deadlock.is_err());
}
