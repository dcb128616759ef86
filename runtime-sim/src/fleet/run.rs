//! Running a [`Fleet`]: the queue, one madsim node per worker node (runner +
//! heartbeat), the event controller and the monitor.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use madsim::runtime::{Handle, NodeHandle};
use pjp_core::autoscale::{Stabilizer, desired_workers};
use pjp_core::memory::{JobOptions, JobStatus, MemoryQueue, QueueMeta};
use pjp_core::observe::Recorder;
use pjp_core::{AsyncExecutor, JobContext, JobId, JobRunner, Runtime, Shutdown};
use tokio::sync::{Notify, mpsc};

use super::liveness::Call;
use super::report::{FleetReport, Marker, NodeSpans};
use super::wire::{Cuts, Held, Link, Wire, WireStats};
use super::{Fleet, FleetEvent, Liveness};
use crate::{ScenarioError, SimRuntime};

type Queue = MemoryQueue<u64, u64, String>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How often the monitor looks at the queue (simulated time).
const TICK: Duration = Duration::from_millis(10);

/// What the controller and the monitor know of one node.
struct NodeState {
    /// The running incarnation's shutdown handle.
    shutdown: Mutex<Option<Shutdown>>,
    /// The running incarnation's leases.
    held: Mutex<Arc<Held>>,
    /// Bumped when an incarnation's runner loop ends.
    finished: Notify,
    /// Runner activity of every incarnation (when recording).
    recorder: Option<Recorder>,
    /// Left idle by the autoscaler: an incarnation that starts does nothing.
    parked: AtomicBool,
}

/// The execution times of the last jobs, for the autoscaler's p95.
#[derive(Default)]
struct Durations(Mutex<VecDeque<Duration>>);

impl Durations {
    const KEPT: usize = 1_000;

    fn record(&self, took: Duration) {
        let mut kept = lock(&self.0);
        if kept.len() == Self::KEPT {
            kept.pop_front();
        }
        kept.push_back(took);
    }

    fn p95(&self) -> Option<Duration> {
        let mut sorted: Vec<Duration> = lock(&self.0).iter().copied().collect();
        sorted.sort_unstable();
        let last = sorted.len().checked_sub(1)?;
        sorted.get((last as f64 * 0.95).round() as usize).copied()
    }
}

/// A job's modeled execution; the poison job asks for its node's death.
struct FleetExec {
    runtime: SimRuntime,
    cost: Duration,
    poison: Option<u64>,
    node: usize,
    kill: mpsc::UnboundedSender<usize>,
    durations: Arc<Durations>,
    cpu_bound: bool,
}

impl AsyncExecutor for FleetExec {
    type Input = u64;
    type Output = u64;
    type Error = String;

    async fn execute(&self, input: u64, _job: &JobContext) -> Result<u64, String> {
        if self.poison == Some(input) {
            // The process dies: nothing after this runs on the node.
            let _ = self.kill.send(self.node);
            std::future::pending::<()>().await;
        }
        let started = self.runtime.now();
        if self.cpu_bound {
            self.runtime.run_blocking(self.cost, || ()).await;
        } else if !self.cost.is_zero() {
            self.runtime.sleep(self.cost).await;
        }
        self.durations
            .record(self.runtime.now().saturating_duration_since(started));
        Ok(input)
    }
}

/// Everything a node's incarnation needs; cheap to clone.
#[derive(Clone)]
struct NodeWiring {
    fleet: Arc<Fleet>,
    index: usize,
    queue: Queue,
    cuts: Arc<Cuts>,
    stats: Arc<WireStats>,
    state: Arc<NodeState>,
    kill: mpsc::UnboundedSender<usize>,
    durations: Arc<Durations>,
}

impl NodeWiring {
    /// One incarnation: a heartbeat task and the runner, restarted after a
    /// failed run (a supervisor), until the work is done or a drain stops it.
    async fn incarnation(self) {
        if self.state.parked.load(Relaxed) {
            self.state.finished.notify_waiters();
            return;
        }
        let spec = &self.fleet.nodes[self.index];
        let region = &self.fleet.regions[spec.region];
        let Ok(runtime) = SimRuntime::builder()
            .cores(spec.plan.workers.max(1))
            .jitter(0.0)
            .build()
        else {
            return;
        };
        let held = Arc::new(Held::default());
        *lock(&self.state.held) = Arc::clone(&held);
        let link = Link {
            runtime: runtime.clone(),
            latency: region.latency.clone(),
            region: spec.region,
            cuts: Arc::clone(&self.cuts),
            held: Arc::clone(&held),
            stats: Arc::clone(&self.stats),
        };
        let heartbeat = runtime.spawn(heartbeat(
            link.clone(),
            self.queue.clone(),
            self.fleet.heartbeat,
            self.fleet.liveness,
        ));
        let cost = self.fleet.exec_cost.mul_f64(spec.slowdown);
        let jobs = self.fleet.jobs as usize;
        loop {
            let executor = FleetExec {
                runtime: runtime.clone(),
                cost,
                poison: self.fleet.poison.map(|p| p.job),
                node: self.index,
                kill: self.kill.clone(),
                durations: Arc::clone(&self.durations),
                cpu_bound: self.fleet.cpu_bound,
            };
            let picker = Wire {
                inner: self.queue.picker(),
                link: link.clone(),
            };
            let saver = Wire {
                inner: self.queue.saver(),
                link: link.clone(),
            };
            let mut builder = spec
                .plan
                .apply(JobRunner::builder_async(picker, executor, saver));
            if let Some(recorder) = &self.state.recorder {
                builder = builder.observer(Arc::new(recorder.clone()));
            }
            let Ok(runner) = builder.build() else {
                break;
            };
            let shutdown = Shutdown::new();
            *lock(&self.state.shutdown) = Some(shutdown.clone());
            let _ = runner.run(&runtime, shutdown.clone()).await;
            if shutdown.is_draining() || self.queue.settled() >= jobs {
                break;
            }
            // A run that failed (saves gave up behind a cut link): start again.
            runtime.sleep(Duration::from_secs(1)).await;
        }
        drop(heartbeat);
        self.state.finished.notify_waiters();
    }
}

/// The CPU a beat needs when it shares the executors' cores.
const BEAT_COST: Duration = Duration::from_micros(100);

/// A node's heartbeat: every `every` (a beat that comes late moves the next
/// one, as tokio's `MissedTickBehavior::Delay` does), extends the leases the
/// node holds. A failed beat is retried at the next one.
async fn heartbeat(link: Link, queue: Queue, every: Duration, liveness: Liveness) {
    let runtime = link.runtime.clone();
    let mut due = runtime.now() + every;
    loop {
        let now = runtime.now();
        if due > now {
            runtime.sleep(due - now).await;
        }
        if liveness == Liveness::SharedCores {
            runtime.run_blocking(BEAT_COST, || ()).await;
        }
        let claims = link.held.snapshot();
        let statements = match liveness {
            Liveness::PerJob => claims.len() as u64,
            _ => 1,
        };
        let _ = link
            .call(Call::Heartbeat(statements), async || {
                let late = runtime.now().saturating_duration_since(due);
                link.stats.calls.heartbeat_arrived(late);
                Ok(queue.heartbeat(&claims))
            })
            .await;
        due = (due + every).max(runtime.now());
    }
}

/// Orphans of one crash: the claims the dead incarnation held.
struct Orphans {
    at: Duration,
    claims: Vec<QueueMeta>,
}

pub(super) async fn run(fleet: &Fleet) -> Result<FleetReport, ScenarioError> {
    validate(fleet)?;
    let seed = Handle::try_current()
        .map_err(|_| crate::NotInSimulation)?
        .seed();
    let runtime = SimRuntime::builder().cores(1).jitter(0.0).build()?;
    let handle = Handle::current();
    let queue: Queue = MemoryQueue::new();
    queue.set_order(fleet.order);
    let max_lost = fleet.poison.map_or(3, |p| p.max_lost_leases);
    let options = JobOptions::new().max_lost_leases(max_lost);
    // Each batch's final proof, when trees are asked for.
    let mut finals: Vec<JobId> = Vec::new();
    match fleet.trees {
        None => {
            for job in 0..fleet.jobs {
                queue.push_with(job, options);
            }
        }
        Some(trees) => {
            // Basic proofs of every batch first (a producer's order), each
            // batch's aggregation and final proof waiting above them.
            let mut input = 0..;
            for batch in 0..trees.batches {
                let at = |depth| {
                    options
                        .batch(i64::try_from(batch).unwrap_or(i64::MAX))
                        .depth(depth)
                };
                let next = |input: &mut std::ops::RangeFrom<u64>| input.next().unwrap_or(0);
                let root = queue.push_group(next(&mut input), at(0), None);
                let basics = (0..trees.circuits)
                    .map(|_| (next(&mut input), at(2)))
                    .collect();
                queue.push_tree((next(&mut input), at(1)), basics, Some(root));
                finals.push(root);
            }
        }
    }
    queue.close();
    queue.set_lease(&runtime, fleet.lease);
    let origin = runtime.now();
    let cuts = Arc::new(Cuts {
        origin: Some(origin),
        windows: fleet
            .events
            .iter()
            .filter_map(|event| match *event {
                FleetEvent::Partition {
                    region,
                    at,
                    lasting,
                    hang,
                } => Some((Some(region), at, at + lasting, hang)),
                FleetEvent::QueueOutage { at, lasting } => Some((None, at, at + lasting, false)),
                _ => None,
            })
            .collect(),
    });
    let stats = Arc::new(WireStats::default());
    let (kill_tx, mut kill_rx) = mpsc::unbounded_channel::<usize>();
    let durations = Arc::new(Durations::default());
    let fleet_arc = Arc::new(fleet.clone());
    let states: Vec<Arc<NodeState>> = fleet
        .nodes
        .iter()
        .map(|_| {
            Arc::new(NodeState {
                shutdown: Mutex::default(),
                held: Mutex::default(),
                finished: Notify::new(),
                recorder: fleet.record.then(Recorder::new),
                // With an autoscaler, every node waits to be asked for.
                parked: AtomicBool::new(fleet.autoscale.is_some()),
            })
        })
        .collect();
    let nodes: Vec<NodeHandle> = (0..fleet.nodes.len())
        .map(|index| {
            let wiring = NodeWiring {
                fleet: Arc::clone(&fleet_arc),
                index,
                queue: queue.clone(),
                cuts: Arc::clone(&cuts),
                stats: Arc::clone(&stats),
                state: Arc::clone(&states[index]),
                kill: kill_tx.clone(),
                durations: Arc::clone(&durations),
            };
            handle
                .create_node()
                .name(fleet.nodes[index].name.clone())
                .init(move || wiring.clone().incarnation())
                .build()
        })
        .collect();
    let node_ids: Vec<_> = nodes.iter().map(NodeHandle::id).collect();

    let markers: Arc<Mutex<Vec<Marker>>> = Arc::default();
    let orphans: Arc<Mutex<Vec<Orphans>>> = Arc::default();
    let crashes = Arc::new(AtomicU64::new(0));
    let since = {
        let rt = runtime.clone();
        move || rt.now().saturating_duration_since(origin)
    };
    // A crash: kill, remember what it held, restart later.
    let crash = {
        let (handle, rt, states, ids) = (
            handle.clone(),
            runtime.clone(),
            states.clone(),
            node_ids.clone(),
        );
        let (orphans, markers, crashes, since) = (
            Arc::clone(&orphans),
            Arc::clone(&markers),
            Arc::clone(&crashes),
            since.clone(),
        );
        move |node: usize, down_for: Duration, why: &str| {
            let Some(&id) = ids.get(node) else { return };
            let at = since();
            let held = lock(&states[node].held).snapshot();
            handle.kill(id);
            crashes.fetch_add(1, Relaxed);
            lock(&orphans).push(Orphans { at, claims: held });
            lock(&markers).push(Marker::instant(at, format!("{why} {}", node)));
            let (handle, rt) = (handle.clone(), rt.clone());
            drop(rt.clone().spawn(async move {
                rt.sleep(down_for).await;
                handle.restart(id);
            }));
        }
    };
    for event in &fleet.events {
        match *event {
            FleetEvent::Partition {
                region,
                at,
                lasting,
                ..
            } => lock(&markers).push(Marker::range(
                at,
                at + lasting,
                format!("{} cut off", fleet.regions[region].name),
            )),
            FleetEvent::QueueOutage { at, lasting } => {
                lock(&markers).push(Marker::range(at, at + lasting, "queue outage".to_owned()));
            }
            _ => {}
        }
    }
    // The timeline of crashes and rolling restarts.
    let mut controllers = Vec::new();
    for event in fleet.events.clone() {
        let (rt, crash) = (runtime.clone(), crash.clone());
        match event {
            FleetEvent::Crash { node, at, down_for } => {
                controllers.push(runtime.spawn(async move {
                    rt.sleep(at).await;
                    crash(node, down_for, "crash");
                }));
            }
            FleetEvent::RollingRestart { at, pause } => {
                let (states, handle, ids, markers, since) = (
                    states.clone(),
                    handle.clone(),
                    node_ids.clone(),
                    Arc::clone(&markers),
                    since.clone(),
                );
                controllers.push(runtime.spawn(async move {
                    rt.sleep(at).await;
                    for (node, state) in states.iter().enumerate() {
                        let finished = state.finished.notified();
                        let shutdown = lock(&state.shutdown).clone();
                        lock(&markers).push(Marker::instant(since(), format!("drain {node}")));
                        if let Some(shutdown) = shutdown {
                            shutdown.drain();
                            finished.await;
                        }
                        handle.restart(ids[node]);
                        rt.sleep(pause).await;
                    }
                }));
            }
            _ => {}
        }
    }
    // The autoscaler: plans, holds each peak, starts and drains nodes.
    let scaling: Arc<Mutex<Vec<(Duration, usize)>>> = Arc::default();
    if let Some(autoscale) = fleet.autoscale {
        let (rt, handle, states, ids) = (
            runtime.clone(),
            handle.clone(),
            states.clone(),
            node_ids.clone(),
        );
        let (queue, durations, scaling, since) = (
            queue.clone(),
            Arc::clone(&durations),
            Arc::clone(&scaling),
            since.clone(),
        );
        let jobs = fleet.jobs as usize;
        controllers.push(runtime.spawn(async move {
            let mut stabilizer = Stabilizer::new(autoscale.hold);
            let mut running = 0;
            loop {
                let now = since();
                let work = jobs.saturating_sub(queue.settled()) as u64;
                let desired = desired_workers(work, durations.p95(), &autoscale.policy);
                let target = (stabilizer.recommend(now, desired) as usize).min(ids.len());
                // Up: the lowest parked nodes start; down: the highest
                // running ones drain (finish what they hold, pick nothing).
                for node in running..target {
                    states[node].parked.store(false, Relaxed);
                    handle.restart(ids[node]);
                }
                for state in states.iter().take(running).skip(target) {
                    state.parked.store(true, Relaxed);
                    if let Some(shutdown) = lock(&state.shutdown).clone() {
                        shutdown.drain();
                    }
                }
                if target != running {
                    lock(&scaling).push((now, target));
                    running = target;
                }
                rt.sleep(autoscale.every).await;
            }
        }));
    }
    // The poison job's victims.
    if let Some(poison) = fleet.poison {
        let crash = crash.clone();
        controllers.push(runtime.spawn(async move {
            while let Some(node) = kill_rx.recv().await {
                crash(node, poison.down_for, "poisoned");
            }
        }));
    }

    // The monitor: throughput per second, recovery of each crash's orphans,
    // and the end (every job settled).
    let jobs = fleet.jobs as usize;
    let mut throughput = Vec::new();
    let mut last_second = (Duration::ZERO, 0usize);
    let mut recovery: Option<Duration> = None;
    let mut final_at: Vec<Option<Duration>> = vec![None; finals.len()];
    let mut settled_at: Option<Duration> = None;
    loop {
        let now = since();
        if now > fleet.time_limit {
            return Err(ScenarioError::Stalled {
                after: fleet.time_limit,
                settled: queue.settled(),
                jobs,
            });
        }
        let settled = queue.settled();
        if settled_at.is_none()
            && (now >= last_second.0 + Duration::from_secs(1) || settled >= jobs)
        {
            let span = now.saturating_sub(last_second.0).as_secs_f64();
            if span > 0.0 {
                throughput.push((last_second.0, (settled - last_second.1) as f64 / span));
            }
            last_second = (now, settled);
        }
        for (batch, id) in finals.iter().enumerate() {
            if final_at[batch].is_none()
                && queue
                    .state(*id)
                    .is_some_and(|s| matches!(s.status, JobStatus::Succeeded | JobStatus::Dead))
            {
                final_at[batch] = Some(now);
            }
        }
        lock(&orphans).retain(|crash| {
            let back = crash.claims.iter().all(|claim| {
                queue.state(claim.id).is_none_or(|s| {
                    s.claims > claim.attempt || !matches!(s.status, JobStatus::Running)
                })
            });
            if back {
                let took = now.saturating_sub(crash.at);
                recovery = Some(recovery.map_or(took, |r| r.max(took)));
            }
            !back
        });
        if settled >= jobs {
            let done = *settled_at.get_or_insert(now);
            // An autoscaled fleet is watched one drain window (and one
            // plan) longer: the report shows it shrink back.
            let watch = fleet.autoscale.map_or(Duration::ZERO, |a| a.hold + a.every);
            if now >= done + watch {
                break;
            }
        }
        runtime.sleep(TICK).await;
    }
    let elapsed = settled_at.unwrap_or_else(&since);
    drop(controllers);

    let saves = queue.saved();
    let mut ids: Vec<JobId> = saves.iter().map(|s| s.meta.id).collect();
    ids.sort_unstable();
    let distinct = {
        let mut d = ids.clone();
        d.dedup();
        d.len()
    };
    let dead_jobs: Vec<u64> = (0..fleet.jobs)
        .filter(|&j| {
            queue
                .state(JobId::new(j))
                .is_some_and(|s| s.status == JobStatus::Dead)
        })
        .collect();
    let dead = dead_jobs.len() as u64;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for save in &saves {
        for word in [save.meta.id.get(), u64::from(save.meta.attempt)] {
            for byte in word.to_le_bytes() {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    }
    let digest = hash ^ u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    let spans = if fleet.record {
        fleet
            .nodes
            .iter()
            .zip(&states)
            .map(|(spec, state)| NodeSpans {
                node: spec.name.clone(),
                spans: state
                    .recorder
                    .as_ref()
                    .map(Recorder::take)
                    .unwrap_or_default(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut markers = std::mem::take(&mut *lock(&markers));
    markers.sort_by_key(|m| m.at);
    Ok(FleetReport {
        name: fleet.name.clone(),
        seed,
        jobs: fleet.jobs,
        nodes: fleet.nodes.len(),
        workers: fleet.nodes.iter().map(|n| n.plan.workers).sum(),
        elapsed,
        succeeded: distinct as u64,
        dead,
        dead_jobs,
        final_proofs: final_at.into_iter().flatten().collect(),
        lost: (fleet.jobs).saturating_sub(distinct as u64 + dead),
        saved_twice: (saves.len() - distinct) as u64,
        wasted: stats.fenced.load(Relaxed),
        reclaimed: queue.reclaimed(),
        crashes: crashes.load(Relaxed),
        recovery,
        throughput,
        digest,
        origin,
        spans,
        markers,
        scaling: std::mem::take(&mut *lock(&scaling)),
        calls: stats.calls.calls(),
        heartbeat_delay: stats.calls.heartbeat_delay(),
        wall: None,
    })
}

fn validate(fleet: &Fleet) -> Result<(), ScenarioError> {
    let invalid = |why: String| Err(ScenarioError::InvalidFleet(why));
    if fleet.regions.is_empty() || fleet.nodes.is_empty() {
        return invalid("a fleet needs at least one region and one node".to_owned());
    }
    if let Some(node) = fleet.nodes.iter().find(|n| n.region >= fleet.regions.len()) {
        return invalid(format!("node {} is in an unknown region", node.name));
    }
    if fleet.heartbeat.is_zero() || fleet.heartbeat >= fleet.lease {
        return invalid(format!(
            "the heartbeat ({:?}) must be above zero and shorter than the lease ({:?})",
            fleet.heartbeat, fleet.lease
        ));
    }
    for event in &fleet.events {
        match *event {
            FleetEvent::Crash { node, .. } if node >= fleet.nodes.len() => {
                return invalid(format!("a crash of node {node}, which does not exist"));
            }
            FleetEvent::Partition { region, .. } if region >= fleet.regions.len() => {
                return invalid(format!(
                    "a partition of region {region}, which does not exist"
                ));
            }
            _ => {}
        }
    }
    if let Some(poison) = fleet.poison
        && poison.job >= fleet.jobs
    {
        return invalid(format!(
            "poison job {} is not among the {} jobs",
            poison.job, fleet.jobs
        ));
    }
    Ok(())
}
