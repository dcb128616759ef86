//! [`simulate`]: one seeded simulation on a fresh thread; [`check_determinism`]
//! and [`seeds`] for seeded test suites.

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::time::Duration;

/// How a simulation runs.
#[derive(Debug, Clone)]
#[must_use]
pub struct SimConfig {
    time_limit: Option<Duration>,
    madsim: madsim::Config,
    replay: Option<String>,
}

impl Default for SimConfig {
    /// A one-day virtual time limit (a livelock fails rather than spins), the
    /// default madsim network.
    fn default() -> Self {
        Self {
            time_limit: Some(Duration::from_secs(24 * 3600)),
            madsim: madsim::Config::default(),
            replay: None,
        }
    }
}

impl SimConfig {
    /// Fails the simulation once this much virtual time has passed (`None`:
    /// no limit).
    pub fn time_limit(mut self, limit: Option<Duration>) -> Self {
        self.time_limit = limit;
        self
    }

    /// madsim's own configuration (its simulated network).
    pub fn madsim(mut self, config: madsim::Config) -> Self {
        self.madsim = config;
        self
    }

    /// The command that replays a failing seed, printed on failure with
    /// `{seed}` replaced. By default it names the running test.
    pub fn replay_command(mut self, command: impl Into<String>) -> Self {
        self.replay = Some(command.into());
        self
    }

    fn replay_for(&self, seed: u64, caller: Option<&str>) -> String {
        if let Some(command) = &self.replay {
            return command.replace("{seed}", &seed.to_string());
        }
        let binary = std::env::args()
            .next()
            .and_then(|path| {
                std::path::Path::new(&path)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
            })
            .map(|stem| match stem.rsplit_once('-') {
                Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => {
                    name.to_owned()
                }
                _ => stem,
            });
        let filter = caller
            .filter(|name| *name != "main")
            .map(|name| format!(" -- {name} --exact"))
            .unwrap_or_default();
        let test = match binary.as_deref() {
            Some("pjp-sim") | None => String::new(),
            Some(bin) => format!(" --test {bin}"),
        };
        format!(
            "MADSIM_TEST_SEED={seed} RUSTFLAGS=\"--cfg madsim\" CARGO_TARGET_DIR=target/madsim \
             cargo test --release -p pjp-runtime-sim{test}{filter}"
        )
    }
}

/// A simulation that panicked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("simulation with seed {seed} failed: {message}\n  replay: {replay}")]
#[non_exhaustive]
pub struct SimFailure {
    /// The seed.
    pub seed: u64,
    /// The panic message.
    pub message: String,
    /// The command that replays it.
    pub replay: String,
}

/// Runs `make()`'s future in a fresh madsim simulation seeded with `seed`,
/// on a fresh thread (so that even `HashMap` iteration order is seeded), and
/// returns its output, or the failure with the command that replays it.
pub fn try_simulate<T, F, Fut>(seed: u64, config: SimConfig, make: F) -> Result<T, SimFailure>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    let caller = std::thread::current().name().map(str::to_owned);
    let replay = config.replay_for(seed, caller.as_deref());
    let (time_limit, madsim_config) = (config.time_limit, config.madsim);
    let thread = std::thread::Builder::new()
        .name(format!("madsim-seed-{seed}"))
        .spawn(move || {
            let mut runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim_config);
            if let Some(limit) = time_limit {
                runtime.set_time_limit(limit);
            }
            runtime.block_on(make())
        });
    let joined = match thread {
        Ok(thread) => thread.join(),
        Err(error) => {
            return Err(SimFailure {
                seed,
                message: format!("could not start the simulation thread: {error}"),
                replay,
            });
        }
    };
    joined.map_err(|payload| SimFailure {
        seed,
        message: pjp_core::panic_message(payload.as_ref()),
        replay,
    })
}

/// Like [`try_simulate`], but a failing simulation prints the command that
/// replays it (`MADSIM_TEST_SEED=…`) and panics: for tests.
///
/// # Panics
///
/// If the simulation panics.
pub fn simulate<T, F, Fut>(seed: u64, config: SimConfig, make: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    match try_simulate(seed, config, make) {
        Ok(value) => value,
        Err(failure) => {
            eprintln!(
                "note: simulation seed {} failed; replay with:\n    {}",
                failure.seed, failure.replay
            );
            panic!("{failure}");
        }
    }
}

/// Runs the simulation twice with the same seed, each on a fresh thread,
/// and checks that both give the same output (a [`ScenarioReport`]'s trace
/// digest, say). Returns the output.
///
/// [`ScenarioReport`]: crate::ScenarioReport
///
/// # Panics
///
/// If a run fails, or the outputs differ (with both printed and the replay
/// command).
pub fn check_determinism<T, F, Fut>(seed: u64, config: SimConfig, make: F) -> T
where
    T: PartialEq + fmt::Debug + Send + 'static,
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    let first = simulate(seed, config.clone(), make.clone());
    let second = simulate(seed, config.clone(), make);
    if first != second {
        let replay = config.replay_for(seed, std::thread::current().name());
        eprintln!("note: seed {seed} is not deterministic; replay with:\n    {replay}");
        panic!("seed {seed} gave different results:\n first: {first:?}\nsecond: {second:?}");
    }
    first
}

/// The seeds a seeded suite runs: `default_count` seeds from 0, unless the
/// environment says otherwise.
///
/// * `MADSIM_TEST_SEED=S` starts at `S` and, on its own, runs only `S` (to
///   replay a failure);
/// * `PJP_SIM_SEEDS=N` (or madsim's `MADSIM_TEST_NUM=N`) runs `N` seeds.
pub fn seeds(default_count: u64) -> Range<u64> {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let start = var("MADSIM_TEST_SEED");
    let count = var("PJP_SIM_SEEDS").or_else(|| var("MADSIM_TEST_NUM"));
    let count = match (start, count) {
        (_, Some(count)) => count,
        (Some(_), None) => 1,
        (None, None) => default_count,
    };
    let start = start.unwrap_or(0);
    start..start.saturating_add(count)
}
