//! The command line of `pjp-sim`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use pjp_core::memory::ClaimOrder;
use pjp_runtime_sim::{
    CancelPlan, Crash, ExecFaults, Fleet, IoFaults, LatencyProfile, Mode, Outage, Scenario,
    ScenarioReport,
};
use pjp_testkit::parse_duration;

const USAGE: &str = "\
pjp-sim: simulated scenarios of prover-job-processor (deterministic, seeded)

usage: cargo xtask sim [--scenario NAME] [--seed S] [--seeds N] [--rtt PROFILE]
                       [--exec DUR] [--workers N] [--jobs N] [--check]
                       [--fleet NAME] [--nodes N] [--svg FILE] [--compare]

scenarios:
  compare      (default) the pipelined runner against a sequential
               pick-execute-save loop, side by side
  pipelined    the pipelined runner alone
  sequential   the sequential loop alone
  throughput   simulated jobs per wall second: --jobs no-op jobs (default
               100000), no latency unless --rtt is given, no ledger unless
               --ledger is given
  faults       picker and saver errors, a database outage, executor errors,
               panics and stragglers
  crash        the worker node crashes mid-run and restarts; expired leases
               bring its jobs back
  cancel       a drain at a seeded random time, then abandon
  fleet        many worker nodes in regions on one leased queue (--fleet):
                 partition  3 clouds, one partitioned for 30 s (default)
                 rolling    rolling restart of 10 workers
                 poison     poison job that kills its worker
                 trees      20 batches of proof trees, proof-first order
                            against FIFO: time to each final proof
                 large      --nodes nodes (default 20) x 4 workers, --jobs
                            jobs of 1 ms (default 100000), --rtt round trips

options:
  --rtt PROFILE  round trip of picks and saves: same-region, cross-region,
                 cross-cloud, none, or a fixed duration like 100ms
                 (default cross-cloud)
  --exec DUR     modeled cost of one job (default 20ms)
  --workers N    executor workers (default 4)
  --jobs N       jobs (default 2000; throughput: 100000)
  --seed S       first seed (default 1)
  --seeds N      seeds to run from S (default 1); with more, one line each
  --check        run every seed twice and compare trace digests
  --ledger       keep the ledger in the throughput scenario too
  --svg FILE     draw the (first seed's) run as an SVG timeline; with
                 --scenario compare (or --compare), the pipelined run above
                 the sequential one on one time axis
  --compare      the same as --scenario compare
";

struct Args {
    scenario: String,
    seed: u64,
    seeds: u64,
    rtt: LatencyProfile,
    rtt_given: bool,
    exec: Duration,
    workers: usize,
    jobs: Option<u64>,
    check: bool,
    ledger: bool,
    fleet: String,
    nodes: usize,
    svg: Option<std::path::PathBuf>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        scenario: "compare".to_owned(),
        seed: 1,
        seeds: 1,
        rtt: LatencyProfile::cross_cloud(),
        rtt_given: false,
        exec: Duration::from_millis(20),
        workers: 4,
        jobs: None,
        check: false,
        ledger: false,
        fleet: "partition".to_owned(),
        nodes: 20,
        svg: None,
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let number = |name: &str, text: String| {
            text.replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("{name}: `{text}` is not a number"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--scenario" => parsed.scenario = value("--scenario")?,
            "--seed" => parsed.seed = number("--seed", value("--seed")?)?,
            "--seeds" => parsed.seeds = number("--seeds", value("--seeds")?)?.max(1),
            "--rtt" => {
                parsed.rtt = value("--rtt")?.parse().map_err(|e| format!("--rtt: {e}"))?;
                parsed.rtt_given = true;
            }
            "--exec" => {
                parsed.exec =
                    parse_duration(&value("--exec")?).map_err(|e| format!("--exec: {e}"))?;
            }
            "--workers" => {
                let n = number("--workers", value("--workers")?)?;
                parsed.workers =
                    usize::try_from(n).map_err(|_| "--workers: too large".to_owned())?;
            }
            "--jobs" => parsed.jobs = Some(number("--jobs", value("--jobs")?)?),
            "--check" => parsed.check = true,
            "--ledger" => parsed.ledger = true,
            "--fleet" => parsed.fleet = value("--fleet")?,
            "--nodes" => {
                let n = number("--nodes", value("--nodes")?)?;
                parsed.nodes = usize::try_from(n)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| "--nodes: must be 1 or more".to_owned())?;
            }
            "--svg" => parsed.svg = Some(value("--svg")?.into()),
            "--compare" => parsed.scenario = "compare".to_owned(),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Some(parsed))
}

fn base(args: &Args, name: &str) -> Scenario {
    Scenario::new(name)
        .jobs(args.jobs.unwrap_or(2_000))
        .workers(args.workers)
        .exec_cost(args.exec)
        .latency(args.rtt.clone())
        .record(args.svg.is_some())
}

fn fleet(args: &Args) -> Result<Fleet, String> {
    let fleet = match args.fleet.as_str() {
        "partition" => Fleet::three_clouds_partitioned(),
        "rolling" => Fleet::rolling_restart(),
        "poison" => Fleet::poison_job(),
        "trees" => Fleet::proof_batches(ClaimOrder::ProofFirst),
        "large" => Fleet::large(args.nodes, args.jobs.unwrap_or(100_000), args.rtt.clone()),
        other => {
            return Err(format!(
                "unknown fleet `{other}` (partition, rolling, poison, large)"
            ));
        }
    };
    let fleet = match args.jobs {
        Some(jobs) => fleet.jobs(jobs),
        None => fleet,
    };
    Ok(fleet.record(args.svg.is_some()))
}

/// Runs `--seeds` seeds of the fleet; one report each (a table for one seed).
fn run_fleet(args: &Args) -> Result<bool, String> {
    if args.fleet == "trees" {
        return compare_orders(args);
    }
    let fleet = fleet(args)?;
    let mut clean = true;
    for seed in args.seed..args.seed + args.seeds {
        let report = fleet.simulate(seed).map_err(|e| e.to_string())?;
        if args.check {
            let again = fleet.simulate(seed).map_err(|e| e.to_string())?;
            if again.digest != report.digest {
                return Err(format!(
                    "seed {seed} is not deterministic: digest {:016x} then {:016x}",
                    report.digest, again.digest
                ));
            }
        }
        clean &= report.is_clean();
        println!("{report}");
        if let (Some(wall), Some(rate)) = (report.wall, report.jobs_per_wall_second()) {
            println!(
                "  wall {:.0} ms: {rate:.0} simulated jobs per wall second\n",
                wall.as_secs_f64() * 1e3
            );
        }
        if seed == args.seed
            && let Some(path) = &args.svg
        {
            report
                .timeline()
                .write_svg(path)
                .map_err(|e| e.to_string())?;
            println!("timeline written to {}", path.display());
        }
    }
    if args.check {
        println!("determinism: every seed gave the same digest twice");
    }
    Ok(clean)
}

fn scenarios(args: &Args) -> Result<Vec<Scenario>, String> {
    let name = |s: &str| format!("{s}, {} round trips", args.rtt);
    Ok(match args.scenario.as_str() {
        "compare" => vec![
            base(args, &name("compare")),
            base(args, &name("compare")).mode(Mode::Sequential),
        ],
        "pipelined" => vec![base(args, &name("pipelined"))],
        "sequential" => vec![base(args, &name("sequential")).mode(Mode::Sequential)],
        "throughput" => {
            let rtt = if args.rtt_given {
                args.rtt.clone()
            } else {
                LatencyProfile::none()
            };
            vec![
                Scenario::new(format!("throughput: no-op jobs, {rtt} round trips"))
                    .jobs(args.jobs.unwrap_or(100_000))
                    .workers(args.workers)
                    .exec_cost(Duration::ZERO)
                    .latency(rtt)
                    .ledger(args.ledger),
            ]
        }
        "faults" => vec![
            base(args, &name("faults"))
                .picker_faults(IoFaults::none().error_rate(0.05))
                .saver_faults(IoFaults::none().error_rate(0.05).outage(Outage::new(
                    Duration::from_secs(1),
                    Duration::from_millis(1_500),
                )))
                .exec_faults(
                    ExecFaults::none()
                        .error_rate(0.02)
                        .panic_rate(0.02)
                        .stragglers(0.02, 10),
                ),
        ],
        "crash" => vec![base(args, &name("crash")).crash(Crash {
            at: Duration::from_millis(700),
            down_for: Duration::from_secs(2),
            lease: Duration::from_secs(3),
        })],
        "cancel" => vec![
            base(args, &name("cancel")).cancel(CancelPlan::DrainThenAbandon {
                drain_after: Duration::from_millis(500 + args.seed % 1_000),
                abandon_after: Duration::from_millis(5),
            }),
        ],
        other => return Err(format!("unknown scenario `{other}`")),
    })
}

fn run_one(scenario: &Scenario, seed: u64, check: bool) -> Result<ScenarioReport, String> {
    let report = scenario.simulate(seed).map_err(|e| e.to_string())?;
    if check {
        let again = scenario.simulate(seed).map_err(|e| e.to_string())?;
        if again.digest != report.digest {
            return Err(format!(
                "seed {seed} is not deterministic: digest {:016x} then {:016x}",
                report.digest, again.digest
            ));
        }
    }
    Ok(report)
}

fn throughput(args: &Args, scenario: &Scenario) -> Result<bool, String> {
    let mut best: Option<f64> = None;
    for seed in args.seed..args.seed + args.seeds.max(1) {
        let started = Instant::now();
        let report = run_one(scenario, seed, args.check)?;
        let wall = started.elapsed();
        let rate = report.saved as f64 / wall.as_secs_f64();
        if seed == args.seed {
            println!("{report}\n");
        }
        println!(
            "seed {seed}: {} jobs in {:.3} ms simulated, {:.1} ms wall -> {:.0} simulated jobs per wall second{}",
            report.saved,
            report.elapsed.as_secs_f64() * 1e3,
            wall.as_secs_f64() * 1e3,
            rate,
            if report.is_clean() {
                ""
            } else {
                "  (NOT CLEAN)"
            }
        );
        best = Some(best.map_or(rate, |b: f64| b.max(rate)));
        if !report.is_clean() {
            return Ok(false);
        }
    }
    if let Some(best) = best {
        println!("best: {best:.0} simulated jobs per wall second");
    }
    Ok(true)
}

pub(crate) fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("pjp-sim: {error}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    pjp_testkit::quiet_injected_panics();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!(
                "pjp-sim: a scenario broke a promise (see VIOLATION / lost / duplicated above)"
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("pjp-sim: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<bool, String> {
    if args.scenario == "fleet" {
        return run_fleet(args);
    }
    let scenarios = scenarios(args)?;
    if args.scenario == "throughput" {
        return throughput(args, &scenarios[0]);
    }
    let mut clean = true;
    let mut rows: Vec<(u64, Vec<ScenarioReport>)> = Vec::new();
    for seed in args.seed..args.seed + args.seeds {
        let mut reports = Vec::new();
        for scenario in &scenarios {
            let report = run_one(scenario, seed, args.check)?;
            clean &= report.is_clean();
            if args.seeds == 1 {
                println!("{report}\n");
            } else {
                println!("{}", report.summary_line());
            }
            reports.push(report);
        }
        rows.push((seed, reports));
    }
    if args.scenario == "compare" {
        print_comparison(args, &scenarios[0], &rows);
    }
    if let (Some(path), Some((_, reports))) = (&args.svg, rows.first()) {
        write_svg(path, reports)?;
    }
    if args.check {
        println!("determinism: every seed gave the same digest twice");
    }
    Ok(clean)
}

/// The proof-tree fleet under both claim orders, side by side.
fn compare_orders(args: &Args) -> Result<bool, String> {
    let mut clean = true;
    let mut lines = Vec::new();
    for order in [ClaimOrder::ProofFirst, ClaimOrder::Fifo] {
        let fleet = Fleet::proof_batches(order);
        let mut p10s = Vec::new();
        let mut p50s = Vec::new();
        let mut p99s = Vec::new();
        for seed in args.seed..args.seed + args.seeds {
            let report = fleet.simulate(seed).map_err(|e| e.to_string())?;
            clean &= report.is_clean();
            if args.seeds == 1 {
                println!("{report}\n");
            }
            p10s.extend(report.final_proof_quantile(0.1));
            p50s.extend(report.final_proof_quantile(0.5));
            p99s.extend(report.final_proof_quantile(0.99));
        }
        let mean = |v: &[Duration]| {
            v.iter().sum::<Duration>() / u32::try_from(v.len().max(1)).unwrap_or(1)
        };
        lines.push(format!(
            "  {order:?}: time to final proof p10 {:.2?}, p50 {:.2?}, p99 {:.2?} (mean over {} seed(s))",
            mean(&p10s),
            mean(&p50s),
            mean(&p99s),
            args.seeds
        ));
    }
    println!("20 batches x (64 basic proofs + aggregation + final proof), 4 nodes x 4 workers:");
    for line in lines {
        println!("{line}");
    }
    Ok(clean)
}

/// The first seed's run as a picture; two runs (compare) one above the other.
fn write_svg(path: &std::path::Path, reports: &[ScenarioReport]) -> Result<(), String> {
    let svg = match reports {
        [one] => one.timeline().render_svg(),
        [top, bottom, ..] => pjp_timeline::compare(&top.timeline(), &bottom.timeline()),
        [] => return Ok(()),
    }
    .map_err(|e| e.to_string())?;
    std::fs::write(path, svg).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("timeline written to {}", path.display());
    Ok(())
}

fn print_comparison(args: &Args, scenario: &Scenario, rows: &[(u64, Vec<ScenarioReport>)]) {
    let bound = scenario.executor_bound().unwrap_or(0.0);
    println!(
        "{} jobs × {:?} on {} workers, {} round trips: executor-bound {bound:.1} jobs/s",
        args.jobs.unwrap_or(2_000),
        args.exec,
        args.workers,
        args.rtt
    );
    for mode in [Mode::Pipelined, Mode::Sequential] {
        let reports: Vec<&ScenarioReport> = rows
            .iter()
            .flat_map(|(_, r)| r.iter())
            .filter(|r| r.mode == mode)
            .collect();
        if reports.is_empty() {
            continue;
        }
        let n = reports.len() as f64;
        let throughput = reports.iter().map(|r| r.throughput).sum::<f64>() / n;
        let worst = reports
            .iter()
            .filter_map(|r| r.efficiency())
            .fold(f64::INFINITY, f64::min);
        let best = reports
            .iter()
            .filter_map(|r| r.efficiency())
            .fold(0.0, f64::max);
        let p99 = reports.iter().map(|r| r.p99).max().unwrap_or_default();
        println!(
            "  {:<10} {:>7.1} jobs/s = {:>5.1} % of executor-bound (range {:.1}–{:.1} % over {} seed(s)), worst p99 {:.0} ms",
            mode.as_str(),
            throughput,
            if bound > 0.0 {
                throughput / bound * 100.0
            } else {
                0.0
            },
            worst * 100.0,
            best * 100.0,
            reports.len(),
            p99.as_secs_f64() * 1e3
        );
    }
}
