//! Fleets: the three ready-made scenarios, determinism, and fleet seeds with
//! random crashes, partitions, outages and rolling drains, every invariant
//! holding on each.

#![cfg(madsim)]

use std::time::Duration;

use pjp_runtime_sim::{Fleet, FleetEvent, FleetReport, LatencyProfile, ScenarioError, seeds};

fn run(fleet: &Fleet, seed: u64) -> FleetReport {
    fleet
        .simulate(seed)
        .unwrap_or_else(|e| panic!("{}: {e}", fleet.name()))
}

#[test]
fn three_clouds_one_partitioned_loses_nothing_and_fences_the_stale_saves() {
    let report = run(&Fleet::three_clouds_partitioned(), 1);
    println!("{report}");
    assert!(report.is_clean(), "{report}");
    assert_eq!((report.succeeded, report.dead), (60_000, 0), "{report}");
    // The cut-off region held leases when the link went: they expired and
    // were handed out again, and what it computed meanwhile was fenced when
    // it came back.
    assert!(report.reclaimed > 0, "{report}");
    assert!(report.wasted > 0, "{report}");
}

#[test]
fn a_rolling_restart_drains_every_node_and_strands_nothing() {
    let report = run(&Fleet::rolling_restart(), 2);
    println!("{report}");
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.succeeded, 30_000, "{report}");
    let drains = report
        .markers
        .iter()
        .filter(|m| m.label.starts_with("drain"))
        .count();
    assert_eq!(drains, 10, "{report}");
    // A drain saves what the node holds: no lease runs out, no work is wasted.
    assert_eq!((report.reclaimed, report.wasted), (0, 0), "{report}");
}

#[test]
fn a_poison_job_is_dead_lettered_after_killing_three_workers() {
    let report = run(&Fleet::poison_job(), 3);
    println!("{report}");
    assert!(report.is_clean(), "{report}");
    assert!(report.dead_jobs.contains(&1_000), "{report}");
    assert_eq!(report.succeeded + report.dead, 5_000, "{report}");
    // Three kills spend its budget of three lost leases; then no node dies.
    assert_eq!(report.crashes, 3, "{report}");
    // Collateral: only jobs claimed beside it can share its fate (a pick
    // batch is at most 64 jobs, and reclaimed jobs come back in id order).
    assert!(
        report.dead_jobs.iter().all(|&j| j.abs_diff(1_000) < 128),
        "{report}"
    );
    assert!(report.recovery.is_some(), "{report}");
}

#[test]
fn the_same_seed_gives_the_same_fleet_run() {
    let fleet = Fleet::three_clouds_partitioned()
        .jobs(3_000)
        .event(FleetEvent::Crash {
            node: 1,
            at: Duration::from_secs(1),
            down_for: Duration::from_secs(2),
        });
    let (a, b) = (run(&fleet, 9), run(&fleet, 9));
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.to_string(), b.to_string());
    assert_ne!(
        run(&fleet, 10).digest,
        a.digest,
        "another seed, another trace"
    );
}

#[test]
fn a_fleet_that_cannot_run_says_why() {
    let no_nodes = Fleet::new("empty").region("r", LatencyProfile::none());
    assert!(matches!(
        no_nodes.simulate(1),
        Err(ScenarioError::InvalidFleet(_))
    ));
    let unknown = Fleet::new("typo")
        .region("r", LatencyProfile::none())
        .nodes("elsewhere", 1, 1);
    let error = unknown.simulate(1).expect_err("unknown region");
    assert!(error.to_string().contains("unknown region"), "{error}");
    let slow_heartbeat = Fleet::new("hb")
        .region("r", LatencyProfile::none())
        .nodes("r", 1, 1)
        .leases(Duration::from_secs(1), Duration::from_secs(2));
    assert!(matches!(
        slow_heartbeat.simulate(1),
        Err(ScenarioError::InvalidFleet(_))
    ));
}

/// A small fleet with events drawn from the seed: crashes, partitions that
/// fail or hang, a queue outage, a rolling drain, a straggler node; half the
/// time its jobs are proof trees.
fn random_fleet(seed: u64) -> Fleet {
    let mut rng = fastrand::Rng::with_seed(seed);
    let ms = |rng: &mut fastrand::Rng, max: u64| Duration::from_millis(rng.u64(1..max));
    let mut fleet = Fleet::new(format!("random fleet {seed}"))
        .jobs(rng.u64(100..400))
        .exec_cost(ms(&mut rng, 20))
        .leases(Duration::from_millis(600), Duration::from_millis(200))
        .region("near", LatencyProfile::same_region())
        .region("far", LatencyProfile::cross_cloud())
        .nodes("near", rng.usize(1..3), rng.usize(1..4))
        .nodes("far", rng.usize(1..3), rng.usize(1..4));
    if rng.bool() {
        // Proof trees: every parent must still finish exactly once.
        fleet = fleet.proof_trees(rng.u64(1..6), rng.u64(1..40));
    }
    let nodes = fleet.node_count();
    if rng.bool() {
        // A straggler: its jobs take four times as long.
        fleet = fleet.straggler(rng.usize(0..nodes), 4.0);
    }
    for _ in 0..rng.usize(0..4) {
        let at = ms(&mut rng, 3_000);
        let event = match rng.u8(0..4) {
            0 => FleetEvent::Crash {
                node: rng.usize(0..nodes),
                at,
                down_for: ms(&mut rng, 2_000),
            },
            1 => FleetEvent::Partition {
                region: rng.usize(0..2),
                at,
                lasting: ms(&mut rng, 3_000),
                hang: rng.bool(),
            },
            2 => FleetEvent::QueueOutage {
                at,
                lasting: ms(&mut rng, 1_000),
            },
            _ => FleetEvent::RollingRestart {
                at,
                pause: ms(&mut rng, 300),
            },
        };
        fleet = fleet.event(event);
    }
    fleet
}

#[test]
fn fleet_seeds_keep_every_invariant() {
    let range = seeds(1_000);
    let (mut crashes, mut wasted, mut reclaimed) = (0, 0, 0);
    for seed in range.clone() {
        let fleet = random_fleet(seed);
        let report = fleet
            .time_limit(Duration::from_secs(600))
            .simulate(seed)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(report.is_clean(), "seed {seed}: {report}");
        assert_eq!(
            report.succeeded + report.dead,
            report.jobs,
            "seed {seed}: {report}"
        );
        assert!(
            report.wasted == 0 || report.reclaimed > 0,
            "seed {seed}: a fenced save needs a reclaimed lease\n{report}"
        );
        crashes += report.crashes;
        wasted += report.wasted;
        reclaimed += report.reclaimed;
    }
    println!(
        "{} fleet seeds: {crashes} crashes, {reclaimed} leases reclaimed, {wasted} fenced saves, nothing lost or saved twice",
        range.end - range.start
    );
    assert!(
        crashes > 0 && reclaimed > 0,
        "the seeds exercised crashes and expiries"
    );
}

#[test]
fn a_recorded_fleet_draws_the_same_valid_picture_for_the_same_seed() {
    let fleet = Fleet::new("picture")
        .jobs(300)
        .region("a", LatencyProfile::same_region())
        .region("b", LatencyProfile::cross_region())
        .nodes("a", 1, 2)
        .nodes("b", 1, 2)
        .event(FleetEvent::Crash {
            node: 1,
            at: Duration::from_millis(200),
            down_for: Duration::from_millis(500),
        })
        .record(true);
    let draw = |seed| {
        run(&fleet, seed)
            .timeline()
            .render_svg()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let svg = draw(4);
    assert_eq!(svg, draw(4), "the same seed draws the same picture");
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("not XML: {e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<&str> = doc
        .descendants()
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for lane in [
        "a-0 picker 0",
        "a-0 worker 0",
        "a-0 worker 1",
        "a-0 saver 0",
        "b-0 worker 1",
    ] {
        assert!(texts.contains(&lane), "lane {lane} missing: {texts:?}");
    }
    assert!(texts.iter().any(|t| t.starts_with("crash 1")), "{texts:?}");
    assert!(
        !texts.contains(&"a-0 worker 2"),
        "a node has only its workers' lanes"
    );
}

#[test]
fn proof_first_finishes_proofs_sooner_than_fifo() {
    use pjp_core::memory::ClaimOrder;
    let first = run(&Fleet::proof_batches(ClaimOrder::ProofFirst), 1);
    let fifo = run(&Fleet::proof_batches(ClaimOrder::Fifo), 1);
    for report in [&first, &fifo] {
        assert!(report.is_clean(), "{report}");
        assert_eq!(
            (report.final_proofs.len(), report.dead),
            (20, 0),
            "{report}"
        );
    }
    let mean = |r: &FleetReport| r.final_proofs.iter().sum::<Duration>() / 20;
    let p = |r: &FleetReport, q| r.final_proof_quantile(q).unwrap_or_default();
    println!(
        "time to final proof: proof-first p10 {:?} p50 {:?} mean {:?}; FIFO p10 {:?} p50 {:?} mean {:?}",
        p(&first, 0.1),
        p(&first, 0.5),
        mean(&first),
        p(&fifo, 0.1),
        p(&fifo, 0.5),
        mean(&fifo)
    );
    // FIFO queues every aggregation behind every basic proof: the first
    // final proofs come only at the end. Proof-first spreads them over the run.
    assert!(p(&first, 0.1) * 2 < p(&fifo, 0.1), "{first}\n{fifo}");
    assert!(p(&first, 0.5) < p(&fifo, 0.5), "{first}\n{fifo}");
    assert!(mean(&first) < mean(&fifo), "{first}\n{fifo}");
}

#[test]
fn a_worker_that_dies_holding_the_last_child_still_finishes_the_tree() {
    // One node, one batch of one basic proof: the node is executing the
    // tree's last (only) child when it is killed.
    let fleet = Fleet::new("dies holding the last child")
        .exec_cost(Duration::from_secs(1))
        .region("dc", LatencyProfile::same_region())
        .nodes("dc", 1, 1)
        .proof_trees(1, 1)
        .event(FleetEvent::Crash {
            node: 0,
            at: Duration::from_millis(500),
            down_for: Duration::from_secs(1),
        });
    let report = run(&fleet, 3);
    assert!(report.is_clean(), "{report}");
    assert_eq!((report.succeeded, report.dead), (3, 0), "{report}");
    assert_eq!(report.final_proofs.len(), 1, "{report}");
    assert_eq!((report.crashes, report.reclaimed), (1, 1), "{report}");
    assert!(report.recovery.is_some(), "{report}");
}

/// The autoscaling plan replayed: a backlog of 1,000 one-second proofs on a
/// parked pool of 40 one-worker nodes, planned every second to drain within
/// a minute. The fleet grows to ceil(1,000 × 1 s / 60 s) = 17 nodes, holds
/// that peak while the backlog drains (within the window), then shrinks
/// back to none once the work is done.
#[test]
fn the_autoscaling_plan_drains_the_backlog_within_its_window() {
    use pjp_core::autoscale::ScalePolicy;

    let window = Duration::from_secs(60);
    let policy = ScalePolicy::new(window)
        .max(40)
        .fallback_duration(Duration::from_secs(1));
    let fleet = Fleet::new("autoscaled backlog")
        .jobs(1_000)
        .exec_cost(Duration::from_secs(1))
        .region("near", LatencyProfile::same_region())
        .nodes("near", 40, 1)
        .autoscale(policy, Duration::from_secs(1));
    for seed in 1..=3 {
        let report = run(&fleet, seed);
        println!("{report}");
        assert!(report.is_clean(), "{report}");
        assert_eq!((report.succeeded, report.dead), (1_000, 0), "{report}");
        assert!(report.elapsed <= window, "drained in {:?}", report.elapsed);
        let peak = report.scaling.iter().map(|&(_, n)| n).max();
        assert_eq!(peak, Some(17), "{report}");
        // Started on the first plan, and back to the policy's min (0) after.
        let first = report
            .scaling
            .first()
            .map(|&(at, _)| at)
            .unwrap_or_default();
        assert!(first < Duration::from_secs(1), "{report}");
        assert_eq!(report.scaling.last().map(|&(_, n)| n), Some(0), "{report}");
        let shrank_at = report.scaling.last().map(|&(at, _)| at).unwrap_or_default();
        assert!(shrank_at > report.elapsed, "{report}");
    }
}

/// Issue 22, item 3: 1,000 provers holding 10 CPU-bound jobs each, every
/// core busy proving. A heartbeat per process on its own thread costs the
/// queue one statement per node per interval whatever the node holds, and
/// reaches the queue well within a quarter of the interval; the baselines in
/// the same run are a heartbeat per job (ten times the statements) and a
/// heartbeat that needs one of the busy cores (it starves behind the jobs).
#[test]
fn liveness_costs_one_statement_per_process_and_never_waits_for_a_core() {
    use pjp_runtime_sim::Liveness;

    let interval = Duration::from_secs(1);
    let seed = 1;
    let [own, per_job, shared] = [
        Liveness::PerProcess,
        Liveness::PerJob,
        Liveness::SharedCores,
    ]
    .map(|liveness| {
        let fleet = Fleet::liveness_at_scale(liveness).time_limit(Duration::from_secs(600));
        let report = run(&fleet, seed);
        println!("{report}");
        report
    });
    for report in [&own, &per_job, &shared] {
        assert_eq!(report.lost, 0, "{report}");
        assert_eq!(report.saved_twice, 0, "{report}");
    }

    // At most one heartbeat statement per node per interval, and about one.
    let intervals = own.elapsed.as_secs_f64() / interval.as_secs_f64();
    let ceiling = own.nodes as f64 * intervals.ceil();
    let beats = own.calls.heartbeats as f64;
    assert!(beats <= ceiling, "{beats} beats > {ceiling}: {own}");
    assert!(
        beats >= ceiling * 0.75,
        "{beats} beats, expected about {ceiling}: {own}"
    );
    // Every core was busy, yet the beat arrived within a quarter interval.
    assert!(own.heartbeat_delay.p99 < interval / 4, "{own}");
    assert_eq!((own.wasted, own.reclaimed), (0, 0), "{own}");

    // A beat per job costs the queue about ten times as many statements.
    assert!(
        per_job.calls.heartbeats >= 8 * own.calls.heartbeats,
        "{per_job}"
    );
    // A beat that needs a busy core arrives seconds late: the test can fail.
    assert!(shared.heartbeat_delay.p99 >= interval, "{shared}");
}
