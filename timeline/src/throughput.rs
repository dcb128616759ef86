//! Jobs saved per second over time, in bins: the strip below the lanes.

use pjp_core::observe::Activity;

use crate::span::SpanEntry;

/// Roughly how many bins a strip has.
const BINS: f64 = 60.0;

/// Jobs saved per second in consecutive bins from 0.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Throughput {
    /// The width of a bin, in seconds.
    pub(crate) bin_s: f64,
    /// Jobs per second in each bin.
    pub(crate) rates: Vec<f64>,
}

impl Throughput {
    /// Bins the jobs of the save spans at their end times over `duration`
    /// seconds (positive), in about [`BINS`] bins of a round width (1, 2 or 5
    /// times a power of ten).
    pub(crate) fn of(spans: &[SpanEntry], duration: f64) -> Self {
        let bin_s = round_up(duration / BINS);
        // At least one bin; the float-to-int cast saturates.
        let bins = ((duration / bin_s).ceil() as usize).max(1);
        let mut counts = vec![0u64; bins];
        let saves = spans
            .iter()
            .filter(|s| s.activity == Activity::Save && s.jobs > 0);
        for span in saves {
            let bin = ((span.end / bin_s) as usize).min(bins - 1);
            counts[bin] += u64::from(span.jobs);
        }
        Self {
            bin_s,
            rates: counts.into_iter().map(|n| n as f64 / bin_s).collect(),
        }
    }

    /// The highest rate, 0 if nothing was saved.
    pub(crate) fn peak(&self) -> f64 {
        self.rates.iter().copied().fold(0.0, f64::max)
    }
}

/// The smallest of 1, 2 or 5 times a power of ten that is at least `x`
/// (positive).
fn round_up(x: f64) -> f64 {
    let x = if x.is_finite() && x > 0.0 { x } else { 1.0 };
    let mut power = 10f64.powf(x.log10().floor());
    // `log10` may land one power off for exact powers of ten.
    if power > x {
        power /= 10.0;
    }
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&w| w >= x * (1.0 - 1e-12))
        .unwrap_or(10.0 * power)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lane::LaneId;

    fn save(end: f64, jobs: u32) -> SpanEntry {
        SpanEntry {
            lane: LaneId(0),
            start: end,
            end,
            activity: Activity::Save,
            jobs,
        }
    }

    #[test]
    fn bin_widths_are_round() {
        assert_eq!(round_up(0.13), 0.2);
        assert_eq!(round_up(1.0), 1.0);
        assert_eq!(round_up(0.01), 0.01);
        assert_eq!(round_up(3.0), 5.0);
        assert_eq!(round_up(7.0), 10.0);
        assert_eq!(round_up(0.0), 1.0);
    }

    #[test]
    fn saved_jobs_are_binned_at_their_end() {
        // 6 s over ~60 bins: 0.1 s bins.
        let spans = [
            save(0.05, 2),
            save(0.07, 1),
            save(1.05, 4),
            save(6.0, 1),
            SpanEntry {
                activity: Activity::Execute,
                ..save(0.05, 1)
            },
        ];
        let throughput = Throughput::of(&spans, 6.0);
        assert!((throughput.bin_s - 0.1).abs() < 1e-12);
        assert_eq!(throughput.rates.len(), 60);
        assert!((throughput.rates[0] - 30.0).abs() < 1e-9);
        assert!((throughput.rates[10] - 40.0).abs() < 1e-9);
        // A save at the very end falls in the last bin.
        assert!((throughput.rates[59] - 10.0).abs() < 1e-9);
        let total: f64 = throughput.rates.iter().map(|r| r * throughput.bin_s).sum();
        assert!((total - 8.0).abs() < 1e-9);
        assert!((throughput.peak() - 40.0).abs() < 1e-9);
    }
}
