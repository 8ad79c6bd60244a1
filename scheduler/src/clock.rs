//! The `Clock` trait: the one place Avocet reads wall-clock time, so everything else takes it as data.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// Reads the current instant; shells hold one and pass its readings to the sans-IO core.
pub trait Clock: Send + Sync {
    /// Returns the current instant.
    fn now(&self) -> DateTime<Utc>;

    /// Returns an instant the whole group agrees has been reached, or `None` when this node
    /// cannot tell yet. A node's own clock agrees with itself; the server's group clock answers
    /// what a majority of the voters' clocks have reached, and only that may fire a slot.
    fn agreed(&self) -> Option<DateTime<Utc>> {
        Some(self.now())
    }
}

/// Reads an inner clock moved by a fixed offset: a node whose clock is wrong, for the chaos
/// tests' skew fault (`avocet serve --clock-skew-ms`).
#[derive(Debug, Clone)]
pub struct OffsetClock<C> {
    inner: C,
    offset: chrono::TimeDelta,
}

impl<C: Clock> OffsetClock<C> {
    /// Returns a clock that reads `inner` plus `offset`.
    pub fn new(inner: C, offset: chrono::TimeDelta) -> Self {
        OffsetClock { inner, offset }
    }
}

impl<C: Clock> Clock for OffsetClock<C> {
    fn now(&self) -> DateTime<Utc> {
        self.inner.now() + self.offset
    }
}

/// Reads the operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // The one sanctioned wall-clock read (STYLE.md rule 4).
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Reads `epoch + (real − epoch) × scale` from an inner clock: every node given the same epoch
/// and scale agrees on the time, and minute policies fire every second at scale 60.
#[derive(Debug, Clone)]
pub struct ScaledClock<C> {
    inner: C,
    epoch: DateTime<Utc>,
    scale: f64,
}

impl<C: Clock> ScaledClock<C> {
    /// Returns a clock that runs `scale` times as fast as `inner` from `epoch` on.
    pub fn new(inner: C, epoch: DateTime<Utc>, scale: f64) -> Self {
        ScaledClock { inner, epoch, scale }
    }
}

impl<C: Clock> Clock for ScaledClock<C> {
    fn now(&self) -> DateTime<Utc> {
        let real = self.inner.now() - self.epoch;
        let nanos = real.num_nanoseconds().unwrap_or(i64::MAX) as f64 * self.scale;
        // Saturates far past any calendar a test uses.
        let nanos = if nanos.is_finite() { nanos.clamp(-9.0e18, 9.0e18) } else { 0.0 };
        #[allow(clippy::cast_possible_truncation)] // clamped into i64's range just above
        let scaled = chrono::TimeDelta::nanoseconds(nanos as i64);
        self.epoch + scaled
    }
}

/// Returns a settable instant, for tests and simulations.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// Returns a clock that reads `start` until set or advanced.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock { now: Mutex::new(start) }
    }

    /// Sets the reading to `instant`, which may be earlier (a clock jump backwards).
    pub fn set(&self, instant: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = instant;
    }

    /// Moves the reading forward by `delta`.
    pub fn advance(&self, delta: chrono::TimeDelta) {
        let mut now = self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += delta;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scaled_clock_runs_faster_from_its_epoch() {
        let epoch = DateTime::parse_from_rfc3339("2026-03-08T00:00:00Z").unwrap().to_utc();
        let real = ManualClock::new(epoch + chrono::TimeDelta::seconds(10));
        let clock = ScaledClock::new(real, epoch, 60.0);
        assert_eq!(clock.now(), epoch + chrono::TimeDelta::minutes(10));
    }

    #[test]
    fn an_offset_clock_is_skewed_before_scaling() {
        let epoch = DateTime::parse_from_rfc3339("2026-03-08T00:00:00Z").unwrap().to_utc();
        let real = ManualClock::new(epoch + chrono::TimeDelta::seconds(10));
        let skewed = OffsetClock::new(real, chrono::TimeDelta::minutes(5));
        let clock = ScaledClock::new(skewed, epoch, 60.0);
        assert_eq!(clock.now(), epoch + chrono::TimeDelta::minutes(310));
        assert_eq!(clock.agreed(), Some(clock.now()));
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = DateTime::parse_from_rfc3339("2026-03-08T00:00:00Z").unwrap().to_utc();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(chrono::TimeDelta::minutes(90));
        assert_eq!(clock.now(), start + chrono::TimeDelta::minutes(90));
        clock.set(start);
        assert_eq!(clock.now(), start);
    }
}
