//! [`Axis`]: the time axis every part of a picture shares, and how its labels
//! read.

/// The time axis: its length in seconds and how its labels read.
pub(crate) struct Axis {
    /// Its length, in seconds.
    pub(crate) duration: f64,
    /// Seconds to the unit shown.
    pub(crate) scale: f64,
    /// The unit shown: `ms` or `s`.
    pub(crate) unit: &'static str,
    decimals: usize,
}

impl Axis {
    /// An axis `duration` seconds long (positive), in milliseconds below one
    /// second.
    pub(crate) fn new(duration: f64) -> Self {
        let (scale, unit) = if duration < 1.0 {
            (1000.0, "ms")
        } else {
            (1.0, "s")
        };
        // Enough decimals to tell about ten ticks apart.
        let step = duration * scale / 10.0;
        let decimals = if step >= 1.0 {
            0
        } else {
            // In 1..=6: the cast cannot truncate.
            (-step.log10()).ceil().clamp(1.0, 6.0) as usize
        };
        Self {
            duration,
            scale,
            unit,
            decimals,
        }
    }

    /// The label of `seconds`, in the axis' unit.
    pub(crate) fn format(&self, seconds: f64) -> String {
        format!("{:.*}", self.decimals, seconds * self.scale)
    }
}
