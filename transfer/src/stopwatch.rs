//! Elapsed time for reports: the `seconds` of a push or restore and the rate a progress display
//! shows. The data plane's one clock read; nothing it decides depends on it (ARCHITECTURE.md
//! lists the sanctioned reads).

use std::time::{Duration, Instant};

/// Measures wall time from its start.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    /// Starts measuring.
    #[allow(clippy::disallowed_methods)] // Elapsed time for reports only (see the module doc).
    pub fn start() -> Stopwatch {
        Stopwatch(Instant::now())
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }

    /// Seconds since the start, to the millisecond.
    pub fn seconds(&self) -> f64 {
        (self.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
    }
}
