//! Latency profiles and the [`Latent`] wrapper that adds a modeled round trip
//! to every call of a picker or saver.
//!
//! Time and randomness come from the [`Runtime`]: under simulation a round
//! trip costs virtual time only, and the same seed gives the same delays.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::{
    ErrorClass, JobPicker, JobResult, JobSaver, PickManyResult, PickResult, ReleaseReason, Runtime,
    SaveBatch, SaveResults,
};

/// How long one round trip to a picker's or saver's backend takes: uniform
/// between `min` and `max`, plus, with probability `spike_rate`, a spike of
/// `spike` on top.
///
/// ```
/// use std::time::Duration;
/// use pjp_core::latency::LatencyProfile;
///
/// let p = LatencyProfile::cross_cloud();
/// assert_eq!((p.min(), p.max()), (Duration::from_millis(80), Duration::from_millis(200)));
/// let fixed: LatencyProfile = "100ms".parse().unwrap();
/// assert_eq!(fixed.sample(12345), Duration::from_millis(100));
/// assert_eq!("cross-region".parse::<LatencyProfile>().unwrap(), LatencyProfile::cross_region());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyProfile {
    name: Option<Cow<'static, str>>,
    min: Duration,
    max: Duration,
    spike_rate: f64,
    spike: Duration,
}

impl LatencyProfile {
    /// No latency at all.
    pub fn none() -> Self {
        Self::fixed(Duration::ZERO).named("none")
    }

    /// Always exactly `rtt`.
    pub fn fixed(rtt: Duration) -> Self {
        Self::uniform(rtt, rtt)
    }

    /// `rtt` ± 10 %, no spikes.
    pub fn rtt(rtt: Duration) -> Self {
        Self::uniform(rtt.mul_f64(0.9), rtt.mul_f64(1.1))
    }

    /// Uniform between `min` and `max` (swapped if given the wrong way round).
    pub fn uniform(min: Duration, max: Duration) -> Self {
        let (min, max) = if min <= max { (min, max) } else { (max, min) };
        Self {
            name: None,
            min,
            max,
            spike_rate: 0.0,
            spike: Duration::ZERO,
        }
    }

    /// A database in the same region: 0.7–1.3 ms, 0.1 % spikes of +10 ms.
    pub fn same_region() -> Self {
        Self::uniform(Duration::from_micros(700), Duration::from_micros(1_300))
            .with_spikes(0.001, Duration::from_millis(10))
            .named("same-region")
    }

    /// A database in another region of the same cloud: 30–80 ms, 0.5 % spikes
    /// of +250 ms.
    pub fn cross_region() -> Self {
        Self::uniform(Duration::from_millis(30), Duration::from_millis(80))
            .with_spikes(0.005, Duration::from_millis(250))
            .named("cross-region")
    }

    /// A database in another cloud: 80–200 ms, 1 % spikes of +500 ms.
    pub fn cross_cloud() -> Self {
        Self::uniform(Duration::from_millis(80), Duration::from_millis(200))
            .with_spikes(0.01, Duration::from_millis(500))
            .named("cross-cloud")
    }

    /// Adds spikes: with probability `rate` (clamped to `0..=1`) a call takes
    /// `extra` longer.
    pub fn with_spikes(mut self, rate: f64, extra: Duration) -> Self {
        self.spike_rate = if rate.is_finite() {
            rate.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.spike = extra;
        self
    }

    /// Renames the profile (for reports).
    pub fn named(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The profile's name, if it has one (the presets do).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The shortest round trip (without spikes).
    pub fn min(&self) -> Duration {
        self.min
    }

    /// The longest round trip (without spikes).
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The mean round trip, spikes included.
    pub fn mean(&self) -> Duration {
        (self.min + self.max) / 2 + self.spike.mul_f64(self.spike_rate)
    }

    /// Whether every round trip is zero.
    pub fn is_zero(&self) -> bool {
        self.max.is_zero() && (self.spike.is_zero() || self.spike_rate == 0.0)
    }

    /// One round trip, from one uniform random `u64` (the low half picks the
    /// delay, the high half decides a spike).
    pub fn sample(&self, random: u64) -> Duration {
        let unit = |bits: u64| bits as f64 / (1u64 << 32) as f64;
        let spread = self.max - self.min;
        let mut delay = self.min + spread.mul_f64(unit(random & 0xffff_ffff));
        if self.spike_rate > 0.0 && unit(random >> 32) < self.spike_rate {
            delay += self.spike;
        }
        delay
    }
}

impl Default for LatencyProfile {
    fn default() -> Self {
        Self::none()
    }
}

impl fmt::Display for LatencyProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let range = if self.min == self.max {
            format!("fixed {}", fmt_duration(self.min))
        } else {
            format!("{}–{}", fmt_duration(self.min), fmt_duration(self.max))
        };
        let spikes = (self.spike_rate > 0.0 && !self.spike.is_zero()).then(|| {
            format!(
                "{}% spikes +{}",
                self.spike_rate * 100.0,
                fmt_duration(self.spike)
            )
        });
        match (&self.name, spikes) {
            (Some(name), _) if self.is_zero() => f.write_str(name),
            (Some(name), Some(spikes)) => write!(f, "{name} ({range}, {spikes})"),
            (Some(name), None) => write!(f, "{name} ({range})"),
            (None, Some(spikes)) => write!(f, "{range} ({spikes})"),
            (None, None) => f.write_str(&range),
        }
    }
}

fn fmt_duration(d: Duration) -> String {
    let micros = d.as_micros();
    if micros == 0 {
        "0 ms".to_owned()
    } else if micros.is_multiple_of(1_000_000) {
        format!("{} s", micros / 1_000_000)
    } else if micros.is_multiple_of(1_000) {
        format!("{} ms", micros / 1_000)
    } else if micros >= 1_000 {
        format!("{:.1} ms", micros as f64 / 1_000.0)
    } else {
        format!("{micros} µs")
    }
}

/// A latency profile or duration that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is neither a latency profile (none, same-region, cross-region, cross-cloud) nor a duration (like 100ms, 1.5s, 800us)"
)]
#[non_exhaustive]
pub struct ParseLatencyError(pub String);

/// Parses a duration such as `100ms`, `1.5s`, `800us`, `20µs` or `2m`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(pjp_core::latency::parse_duration("1.5s"), Ok(Duration::from_millis(1_500)));
/// assert!(pjp_core::latency::parse_duration("soon").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, ParseLatencyError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || ParseLatencyError(text.to_owned());
    let value: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "ns" => value / 1e9,
        "us" | "µs" => value / 1e6,
        "ms" => value / 1e3,
        "s" | "" if value == 0.0 => value,
        "s" => value,
        "m" | "min" => value * 60.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

impl FromStr for LatencyProfile {
    type Err = ParseLatencyError;

    /// `none`, `same-region`, `cross-region`, `cross-cloud`, or a duration for
    /// a fixed round trip (`100ms`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text.trim() {
            "none" | "0" => Self::none(),
            "same-region" => Self::same_region(),
            "cross-region" => Self::cross_region(),
            "cross-cloud" => Self::cross_cloud(),
            other => Self::fixed(parse_duration(other)?),
        })
    }
}

/// A picker or saver whose every call first waits one modeled round trip.
///
/// Build it with [`Latent::new`], or with `with_latency` from `pjp-testkit`'s
/// `PickerExt` and `SaverExt`. The whole round trip is spent *before* the
/// wrapped call, so the call commits when the reply arrives, like a
/// transaction: a pick dropped during the wait has claimed nothing (cancel
/// safe), and a crash during the wait leaves the source untouched.
#[derive(Debug, Clone)]
pub struct Latent<T, R> {
    inner: T,
    runtime: R,
    profile: LatencyProfile,
}

impl<T, R: Runtime> Latent<T, R> {
    /// Wraps `inner`.
    pub fn new(inner: T, runtime: &R, profile: LatencyProfile) -> Self {
        Self {
            inner,
            runtime: runtime.clone(),
            profile,
        }
    }

    /// The wrapped component.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The profile.
    pub fn profile(&self) -> &LatencyProfile {
        &self.profile
    }

    /// Runs `call` as the server would: half a round trip for the request to
    /// arrive, the call itself (the claim commits here), then half for the
    /// reply. A caller that drops the future during the reply's leg has lost a
    /// claim that the server made, as over a real network.
    async fn remote<O>(&self, call: impl Future<Output = O>) -> O {
        if self.profile.is_zero() {
            return call.await;
        }
        let delay = self.profile.sample(self.runtime.random_u64());
        let request = delay / 2;
        self.runtime.sleep(request).await;
        let reply = call.await;
        self.runtime.sleep(delay.saturating_sub(request)).await;
        reply
    }
}

impl<P: JobPicker, R: Runtime> JobPicker for Latent<P, R> {
    type Input = P::Input;
    type Metadata = P::Metadata;
    type Error = P::Error;

    /// # Cancellation safety
    ///
    /// Not cancel safe, like a database pick: the wrapped pick runs half-way
    /// through the round trip, so a pick dropped during the reply's leg has
    /// claimed a job it never hands out.
    async fn pick(&self) -> PickResult<P::Input, P::Metadata, P::Error> {
        self.remote(self.inner.pick()).await
    }

    async fn pick_many(&self, max: usize) -> PickManyResult<P::Input, P::Metadata, P::Error> {
        self.remote(self.inner.pick_many(max)).await
    }

    async fn release(&self, meta: P::Metadata, reason: ReleaseReason) -> Result<(), P::Error> {
        self.remote(self.inner.release(meta, reason)).await
    }

    /// One round trip for the whole batch.
    async fn release_many(
        &self,
        metas: Vec<P::Metadata>,
        reason: ReleaseReason,
    ) -> Vec<Result<(), P::Error>> {
        self.remote(self.inner.release_many(metas, reason)).await
    }

    async fn on_abandon(&self) {
        self.inner.on_abandon().await;
    }

    fn classify(&self, error: &P::Error) -> ErrorClass {
        self.inner.classify(error)
    }

    /// The wrapped picker's answer when there is no latency; otherwise
    /// false, whatever the wrapped picker says: a pick dropped during the
    /// reply's leg has claimed a job (see [`pick`](JobPicker::pick)).
    fn pick_is_cancel_safe(&self) -> bool {
        self.profile.is_zero() && self.inner.pick_is_cancel_safe()
    }
}

impl<S: JobSaver, R: Runtime> JobSaver for Latent<S, R> {
    type Output = S::Output;
    type Failure = S::Failure;
    type Metadata = S::Metadata;
    type Error = S::Error;

    async fn save(
        &self,
        result: &JobResult<S::Output, S::Failure>,
        meta: &S::Metadata,
    ) -> Result<(), S::Error> {
        self.remote(self.inner.save(result, meta)).await
    }

    /// One round trip for the whole batch, as a batched statement would take.
    async fn save_many(
        &self,
        batch: &SaveBatch<'_, S::Output, S::Failure, S::Metadata>,
    ) -> SaveResults<S::Error> {
        self.remote(self.inner.save_many(batch)).await
    }

    fn classify(&self, error: &S::Error) -> ErrorClass {
        self.inner.classify(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_stay_in_range_and_spike() {
        let p = LatencyProfile::cross_cloud();
        let mut state = 1u64;
        let mut spikes = 0;
        for _ in 0..10_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let d = p.sample(state);
            assert!(d >= p.min() && d <= p.max() + Duration::from_millis(500));
            if d > p.max() {
                spikes += 1;
            }
        }
        // 1 % of 10,000, loosely.
        assert!((40..=200).contains(&spikes), "{spikes}");
    }

    #[test]
    fn parses_profiles_and_durations() {
        assert_eq!("none".parse::<LatencyProfile>(), Ok(LatencyProfile::none()));
        assert_eq!(
            "250us".parse::<LatencyProfile>().map(|p| p.max()),
            Ok(Duration::from_micros(250))
        );
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("12").is_err());
        assert!("far".parse::<LatencyProfile>().is_err());
    }

    #[test]
    fn displays_readably() {
        assert_eq!(
            LatencyProfile::cross_cloud().to_string(),
            "cross-cloud (80 ms–200 ms, 1% spikes +500 ms)"
        );
        assert_eq!(
            LatencyProfile::fixed(Duration::from_millis(100)).to_string(),
            "fixed 100 ms"
        );
        assert_eq!(
            LatencyProfile::fixed(Duration::from_millis(1))
                .with_spikes(0.5, Duration::from_millis(2))
                .to_string(),
            "fixed 1 ms (50% spikes +2 ms)"
        );
        assert_eq!(
            LatencyProfile::rtt(Duration::from_millis(10)).to_string(),
            "9 ms–11 ms"
        );
        assert_eq!(LatencyProfile::none().to_string(), "none");
    }
}
