//! Extension traits that build the testkit's wrappers, like tower layers:
//! `picker.with_ledger(&ledger).with_latency(&runtime, profile)`.
//!
//! Order matters: the wrapper written last is outermost. Put the ledger
//! innermost on pickers and savers (it records what reached the source) and
//! faults outside latency (a failing call fails at once) or inside it (it
//! fails after a round trip), as the scenario needs.

use pjp_core::{Executor, JobPicker, JobSaver, Runtime};

use crate::{
    ExecFaults, Faulty, FaultyExecutor, IoFaults, LatencyProfile, Latent, Ledger, Recorded,
};

/// Wrappers for any [`JobPicker`], like tower layers:
/// `picker.with_ledger(&ledger).with_latency(&runtime, profile)`.
///
/// Order matters: the wrapper written last is outermost. Put the ledger
/// innermost on pickers and savers (it records what reached the source) and
/// faults inside latency (a call fails after its round trip) or outside it
/// (it fails at once), as the scenario needs.
pub trait PickerExt: JobPicker + Sized {
    /// Records picks and releases in `ledger`.
    fn with_ledger(self, ledger: &Ledger) -> Recorded<Self> {
        Recorded::new(self, ledger)
    }

    /// Waits one modeled round trip per call.
    fn with_latency<R: Runtime>(self, runtime: &R, profile: LatencyProfile) -> Latent<Self, R> {
        Latent::new(self, runtime, profile)
    }

    /// Fails calls per `faults`.
    fn with_faults<R: Runtime>(self, runtime: &R, faults: IoFaults) -> Faulty<Self, R> {
        Faulty::new(self, runtime, faults)
    }
}

impl<P: JobPicker> PickerExt for P {}

/// Wrappers for any [`JobSaver`].
pub trait SaverExt: JobSaver + Sized {
    /// Records saves in `ledger`.
    fn with_ledger(self, ledger: &Ledger) -> Recorded<Self> {
        Recorded::new(self, ledger)
    }

    /// Waits one modeled round trip per save.
    fn with_latency<R: Runtime>(self, runtime: &R, profile: LatencyProfile) -> Latent<Self, R> {
        Latent::new(self, runtime, profile)
    }

    /// Fails saves per `faults`.
    fn with_faults<R: Runtime>(self, runtime: &R, faults: IoFaults) -> Faulty<Self, R> {
        Faulty::new(self, runtime, faults)
    }
}

impl<S: JobSaver> SaverExt for S {}

/// Wrappers for any [`Executor`].
pub trait ExecutorExt: Executor + Sized {
    /// Records executions in `ledger`.
    fn with_ledger(self, ledger: &Ledger) -> Recorded<Self> {
        Recorded::new(self, ledger)
    }

    /// Fails, panics or straggles per `faults`.
    fn with_faults<R: Runtime>(self, runtime: &R, faults: ExecFaults) -> FaultyExecutor<Self, R> {
        FaultyExecutor::new(self, runtime, faults)
    }
}

impl<E: Executor> ExecutorExt for E {}
