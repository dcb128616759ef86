//! Latency histograms: one per task while it runs, merged into the run's at the end.

use std::sync::Mutex;

use hdrhistogram::Histogram;

use crate::guard::lock;

/// A latency histogram in microseconds, from 1 µs to one day, 2 significant digits.
pub(crate) fn latency_histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts (low >= 1, high >= 2 * low,
    // sigfig <= 5): this cannot fail at run time.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 86_400_000_000, 2).expect("valid histogram bounds")
}

/// Adds a task's histogram to the run's.
pub(crate) fn merge(into: &Mutex<Histogram<u64>>, from: &Histogram<u64>) {
    // Both histograms auto-resize or share bounds, so `add` cannot fail on range.
    let _ = lock(into).add(from);
}

/// Records a duration in microseconds, saturating.
pub(crate) fn record(histogram: &mut Histogram<u64>, took: std::time::Duration) {
    histogram.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
}
