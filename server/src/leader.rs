//! The leader loop: while this node leads, plan from committed state and propose what is due.
//!
//! On gaining leadership the loop first makes a linearizable read, which commits an entry of the
//! new term and applies everything committed before it: the plan then starts from every fire
//! the old leader committed (DESIGN.md §3 step 3). Each tick reads the node's own catalog, asks
//! the planner for the commands due at the group clock's agreed reading (the instant a majority
//! of the voters' clocks have reached, see `group_clock.rs`), proposes them as one batch and
//! records fire lag from the answers. Between ticks it sleeps until the next owed slot, lease
//! expiry or stage deadline (converted from the group's clock to real time), at most
//! [`IDLE_TICK`], and wakes early when this node commits a change.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::TimeDelta;
use tokio::sync::Notify;

use avocet_scheduler::catalog::Settings;
use avocet_scheduler::command::Disposition;
use avocet_scheduler::planner::{FIRES_PER_TICK, next_wake, plan};
use avocet_scheduler::{Clock, Command, Response};

use crate::machine::SchedulerNode;
use crate::metrics::Metrics;

/// Bounds the sleep between ticks, in real time.
pub const IDLE_TICK: Duration = Duration::from_millis(250);

/// Waits between checks while this node follows.
const FOLLOWER_POLL: Duration = Duration::from_millis(100);

/// Holds what the loop needs.
pub struct LeaderLoop {
    /// Holds the node.
    pub node: Arc<SchedulerNode>,
    /// Reads the group's clock (scaled in tests).
    pub clock: Arc<dyn Clock>,
    /// Gives how many times faster than real time the clock runs.
    pub scale: f64,
    /// Holds the settings this node proposes when it leads and the catalog's differ.
    pub settings: Settings,
    /// Holds the counters.
    pub metrics: Arc<Metrics>,
    /// Wakes the loop when this node commits a change (a new schedule may be due at once).
    pub wake: Arc<Notify>,
}

impl LeaderLoop {
    /// Runs until the task is aborted.
    pub async fn run(self) {
        let mut led_term = None;
        let mut configure = false;
        loop {
            let status = self.node.status();
            if status.leader_id != Some(self.node.id()) {
                led_term = None;
                tokio::time::sleep(FOLLOWER_POLL).await;
                continue;
            }
            if led_term != Some(status.term) {
                if let Err(error) = self.node.read(|_| ()).await {
                    tracing::debug!(%error, "leading, but not settled yet");
                    tokio::time::sleep(FOLLOWER_POLL).await;
                    continue;
                }
                led_term = Some(status.term);
                configure = true;
                self.metrics.leader_changes.fetch_add(1, Ordering::Relaxed);
                tracing::info!(term = status.term, "leading: planning from committed state");
                #[cfg(feature = "planted-bugs")]
                {
                    let now = self.clock.now();
                    let refires =
                        self.node.read_local(|s| avocet_scheduler::planted::refires(&s.0, now));
                    if !refires.is_empty() {
                        tracing::warn!(count = refires.len(), "PLANTED BUG double-fire: re-firing");
                        let _ = self.node.write_batch(refires).await;
                    }
                }
            } else if configure {
                // After the first tick, so slots owed from before a failover fire on the
                // cadence they were owed on before a settings change can move it.
                configure = false;
                let current = self.node.read_local(|s| s.0.settings().clone());
                if current != self.settings {
                    tracing::info!(
                        "the group's settings differ from this node's --timezone or \
                         --stage-deadline; proposing this node's (configure every node alike)"
                    );
                    let command = Command::Configure {
                        settings: self.settings.clone(),
                        at: self.clock.now(),
                    };
                    match self.node.write(command).await {
                        Ok(Response::Rejected(rejection)) => {
                            tracing::error!(%rejection, "settings refused")
                        }
                        Ok(_) => {
                            tracing::info!("group settings updated from this node's configuration")
                        }
                        Err(error) => tracing::warn!(%error, "cannot update the group settings"),
                    }
                }
            }
            // Plan only by a time a majority of the voters' clocks have reached, so a fast
            // clock here fires nothing early (group_clock.rs).
            let Some(now) = self.clock.agreed() else {
                tracing::debug!("leading, but the group's clock is unknown: too few peers heard");
                tokio::time::sleep(FOLLOWER_POLL).await;
                continue;
            };
            let commands = self.node.read_local(|s| plan(&s.0, now, FIRES_PER_TICK));
            if !commands.is_empty() {
                let full = commands.len() >= FIRES_PER_TICK;
                let slots: Vec<_> = commands
                    .iter()
                    .map(|command| match command {
                        Command::Fire(fire) => Some(fire.slot),
                        _ => None,
                    })
                    .collect();
                match self.node.write_batch(commands).await {
                    Ok(responses) => {
                        let committed = self.clock.now();
                        if let Some(earliest) = slots.iter().flatten().min() {
                            let ms = |delta: TimeDelta| {
                                delta.num_microseconds().unwrap_or(i64::MAX) as f64
                                    / 1e3
                                    / self.scale.max(1e-9)
                            };
                            tracing::debug!(
                                commands = slots.len(),
                                planned_after_ms = ms(now - *earliest),
                                committed_after_ms = ms(committed - now),
                                "due commands committed"
                            );
                        }
                        for (response, slot) in responses.iter().zip(slots) {
                            self.record(response, slot, committed);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "proposing due commands failed; retrying");
                        tokio::time::sleep(FOLLOWER_POLL).await;
                        continue;
                    }
                }
                if full {
                    continue;
                }
            }
            let now = self.clock.now();
            let wait = self.node.read_local(|s| next_wake(&s.0, now, TimeDelta::hours(1)));
            let real = wait.to_std().unwrap_or_default().div_f64(self.scale.max(1e-9));
            let real = real.clamp(Duration::from_millis(1), IDLE_TICK);
            // Trace: how the loop sleeps and wakes (a fire planned late shows up here).
            let target = now + wait;
            tracing::trace!(
                wait_us = wait.num_microseconds(),
                sleep_us = real.as_micros(),
                "sleeping"
            );
            let woke = tokio::select! {
                () = tokio::time::sleep(real) => "timer",
                () = self.wake.notified() => "commit",
            };
            if tracing::enabled!(tracing::Level::TRACE) {
                let late = self.clock.now() - target;
                tracing::trace!(woke, late_us = late.num_microseconds(), "woke");
            }
        }
    }

    fn record(
        &self,
        response: &Response,
        slot: Option<chrono::DateTime<chrono::Utc>>,
        committed: chrono::DateTime<chrono::Utc>,
    ) {
        match response {
            Response::Fired { slot: fired, coalesced, disposition } => {
                self.metrics.fires.fetch_add(1, Ordering::Relaxed);
                if let Some(coalesced) = coalesced {
                    self.metrics.coalesced.fetch_add(coalesced.count, Ordering::Relaxed);
                }
                let lag =
                    (committed - slot.unwrap_or(*fired)).num_microseconds().unwrap_or(i64::MAX);
                self.metrics.observe_lag(lag as f64 / 1e6 / self.scale.max(1e-9));
                if let Disposition::Started { migration } = disposition {
                    tracing::info!(migration = %migration, slot = %fired, "fired");
                }
            }
            Response::Duplicate { .. } => {
                self.metrics.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            Response::Rejected(rejection) => tracing::debug!(%rejection, "planned command refused"),
            _ => {}
        }
    }
}
