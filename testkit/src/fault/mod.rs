//! Fault injection: [`IoFaults`] for pickers and savers (error rates, outage
//! windows), [`ExecFaults`] for executors (errors, panics, slow stragglers),
//! and the wrappers that apply them, [`Faulty`] and [`FaultyExecutor`].
//!
//! Every decision draws from the [`Runtime`](pjp_core::Runtime)'s random
//! source, so under simulation the same seed injects the same faults.

mod error;
mod wrap;

use std::fmt;
use std::time::Duration;

pub use error::{ExecFault, FaultError};
pub use wrap::{Faulty, FaultyExecutor};

/// A window during which a backend is unreachable: every call fails with
/// [`FaultError::Outage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// When it starts, from the moment the wrapper was created.
    pub start: Duration,
    /// How long it lasts.
    pub duration: Duration,
}

impl Outage {
    /// An outage from `start` lasting `duration`.
    pub fn new(start: Duration, duration: Duration) -> Self {
        Self { start, duration }
    }

    /// Whether `at` (from the wrapper's creation) falls inside the window.
    pub fn covers(&self, at: Duration) -> bool {
        at >= self.start && at < self.start.saturating_add(self.duration)
    }
}

fn clamp_rate(rate: f64) -> f64 {
    if rate.is_finite() {
        rate.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// Faults of a picker's or saver's backend.
///
/// ```
/// use std::time::Duration;
/// use pjp_testkit::{ExecFaults, IoFaults, Outage};
///
/// // 5 % of picks fail, and the database is unreachable from 2 s to 5 s.
/// let picker_faults = IoFaults::none()
///     .error_rate(0.05)
///     .outage(Outage::new(Duration::from_secs(2), Duration::from_secs(3)));
/// assert!(picker_faults.in_outage(Duration::from_secs(4)));
/// // 1 % of jobs panic, 2 % take ten times their cost.
/// let exec_faults = ExecFaults::none().panic_rate(0.01).stragglers(0.02, 10);
/// assert_eq!(exec_faults.to_string(), "1% panics, 2% stragglers ×10");
/// assert_eq!(picker_faults.to_string(), "5% errors, outage 2s–5s");
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IoFaults {
    error_rate: f64,
    outages: Vec<Outage>,
    releases: bool,
}

impl IoFaults {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// The probability (clamped to `0..=1`) that a call fails with
    /// [`FaultError::Injected`].
    pub fn error_rate(mut self, rate: f64) -> Self {
        self.error_rate = clamp_rate(rate);
        self
    }

    /// Adds an outage window.
    pub fn outage(mut self, outage: Outage) -> Self {
        self.outages.push(outage);
        self
    }

    /// Whether releases fail too (default: only picks and saves do). A
    /// release that keeps failing leaves its job claimed — lost, unless the
    /// source has leases.
    pub fn failing_releases(mut self, fail: bool) -> Self {
        self.releases = fail;
        self
    }

    /// The error rate.
    pub fn get_error_rate(&self) -> f64 {
        self.error_rate
    }

    /// The outage windows.
    pub fn outages(&self) -> &[Outage] {
        &self.outages
    }

    /// Whether releases fail too.
    pub fn fails_releases(&self) -> bool {
        self.releases
    }

    /// Whether `at` falls in an outage.
    pub fn in_outage(&self, at: Duration) -> bool {
        self.outages.iter().any(|o| o.covers(at))
    }

    /// Whether this injects anything.
    pub fn is_none(&self) -> bool {
        self.error_rate == 0.0 && self.outages.is_empty()
    }
}

/// Faults of an executor.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ExecFaults {
    error_rate: f64,
    panic_rate: f64,
    straggler_rate: f64,
    straggler_factor: u32,
}

impl ExecFaults {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// The probability that a job fails with [`ExecFault::Injected`].
    pub fn error_rate(mut self, rate: f64) -> Self {
        self.error_rate = clamp_rate(rate);
        self
    }

    /// The probability that a job panics.
    pub fn panic_rate(mut self, rate: f64) -> Self {
        self.panic_rate = clamp_rate(rate);
        self
    }

    /// The probability that a job is a straggler whose modeled cost
    /// ([`Executor::cost_hint`](pjp_core::Executor::cost_hint)) is `factor`
    /// times the usual. Stragglers cost virtual time under simulation; real
    /// runtimes ignore cost hints.
    pub fn stragglers(mut self, rate: f64, factor: u32) -> Self {
        self.straggler_rate = clamp_rate(rate);
        self.straggler_factor = factor.max(1);
        self
    }

    /// The error rate.
    pub fn get_error_rate(&self) -> f64 {
        self.error_rate
    }

    /// The panic rate.
    pub fn get_panic_rate(&self) -> f64 {
        self.panic_rate
    }

    /// The straggler rate and cost factor.
    pub fn get_stragglers(&self) -> (f64, u32) {
        (self.straggler_rate, self.straggler_factor)
    }

    /// Whether this injects anything.
    pub fn is_none(&self) -> bool {
        self.error_rate == 0.0 && self.panic_rate == 0.0 && self.straggler_rate == 0.0
    }
}

fn percent(rate: f64) -> String {
    format!("{}%", (rate * 1000.0).round() / 10.0)
}

impl fmt::Display for Outage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "outage {:?}–{:?}",
            self.start,
            self.start.saturating_add(self.duration)
        )
    }
}

impl fmt::Display for IoFaults {
    /// `none`, or e.g. `5% errors, outage 1s–2.5s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.error_rate > 0.0 {
            parts.push(format!("{} errors", percent(self.error_rate)));
        }
        parts.extend(self.outages.iter().map(ToString::to_string));
        if self.releases && !parts.is_empty() {
            parts.push("releases fail too".to_owned());
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

impl fmt::Display for ExecFaults {
    /// `none`, or e.g. `2% errors, 1% panics, 2% stragglers ×10`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.error_rate > 0.0 {
            parts.push(format!("{} errors", percent(self.error_rate)));
        }
        if self.panic_rate > 0.0 {
            parts.push(format!("{} panics", percent(self.panic_rate)));
        }
        if self.straggler_rate > 0.0 {
            parts.push(format!(
                "{} stragglers ×{}",
                percent(self.straggler_rate),
                self.straggler_factor
            ));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

pub(crate) use pjp_core::random_fraction as unit;
