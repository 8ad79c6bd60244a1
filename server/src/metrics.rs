//! Prometheus metrics: counters the leader loop keeps, gauges read from the catalog, and a
//! plain HTTP endpoint (`GET /metrics`) on its own port.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use avocet_scheduler::Catalog;
use avocet_types::migration::MigrationStatusType;

/// Bounds of the fire-lag histogram, in seconds (due slot → fire committed).
pub const LAG_BUCKETS: [f64; 12] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0, 300.0];

/// Holds the counters of one node.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Counts slots this node fired as leader.
    pub fires: AtomicU64,
    /// Counts slots coalesced into fires this node proposed.
    pub coalesced: AtomicU64,
    /// Counts fires refused as duplicates.
    pub duplicates: AtomicU64,
    /// Counts the times this node became leader.
    pub leader_changes: AtomicU64,
    /// Counts fire lags per bucket (the last is +Inf).
    lag_buckets: [AtomicU64; LAG_BUCKETS.len() + 1],
    /// Sums fire lags in microseconds.
    lag_sum_micros: AtomicU64,
    /// Keeps the most recent fire lags, for the quantiles.
    recent_lags: std::sync::Mutex<std::collections::VecDeque<f64>>,
}

/// Bounds the fire lags kept for quantiles.
const RECENT_LAGS: usize = 10_000;

impl Metrics {
    /// Records one fire's lag (scheduled time to commit, in the group's clock).
    pub fn observe_lag(&self, seconds: f64) {
        let bucket =
            LAG_BUCKETS.iter().position(|bound| seconds <= *bound).unwrap_or(LAG_BUCKETS.len());
        self.lag_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = (seconds.max(0.0) * 1e6).min(1e15);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped just above
        self.lag_sum_micros.fetch_add(micros as u64, Ordering::Relaxed);
        let mut recent = self.recent_lags.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if recent.len() == RECENT_LAGS {
            recent.pop_front();
        }
        recent.push_back(seconds);
    }

    /// Returns the p50, p90 and p99 of the recent fire lags, in seconds.
    pub fn lag_quantiles(&self) -> Option<[f64; 3]> {
        let mut lags: Vec<f64> = self
            .recent_lags
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        if lags.is_empty() {
            return None;
        }
        lags.sort_by(f64::total_cmp);
        let at = |q: usize| lags[((lags.len() - 1) * q + 50) / 100];
        Some([at(50), at(90), at(99)])
    }

    /// Writes the Prometheus text exposition of the counters and of `catalog` at `now`.
    pub fn render(&self, catalog: &Catalog, now: DateTime<Utc>, leader: bool) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        counter(
            &mut out,
            "avocet_fires_total",
            "Slots fired by this node as leader.",
            self.fires.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "avocet_coalesced_slots_total",
            "Missed slots coalesced into fires this node proposed.",
            self.coalesced.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "avocet_duplicate_fires_total",
            "Fires refused because the slot was already fired.",
            self.duplicates.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "avocet_leader_changes_total",
            "Times this node became leader.",
            self.leader_changes.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP avocet_is_leader 1 when this node leads the group.\n# TYPE avocet_is_leader gauge\navocet_is_leader {}",
            u8::from(leader)
        );
        let _ = writeln!(
            out,
            "# HELP avocet_fire_lag_seconds From a slot's due time to its fire being committed.\n# TYPE avocet_fire_lag_seconds histogram"
        );
        let mut cumulative = 0;
        for (i, bound) in LAG_BUCKETS.iter().enumerate() {
            cumulative += self.lag_buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "avocet_fire_lag_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.lag_buckets[LAG_BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "avocet_fire_lag_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.lag_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "avocet_fire_lag_seconds_sum {sum}\navocet_fire_lag_seconds_count {cumulative}"
        );

        if let Some([p50, p90, p99]) = self.lag_quantiles() {
            let count =
                self.recent_lags.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len();
            let _ = writeln!(
                out,
                "# HELP avocet_fire_lag_recent_seconds Fire lag quantiles over the last {RECENT_LAGS} fires.\n# TYPE avocet_fire_lag_recent_seconds summary"
            );
            let _ = writeln!(
                out,
                "avocet_fire_lag_recent_seconds{{quantile=\"0.5\"}} {p50}\navocet_fire_lag_recent_seconds{{quantile=\"0.9\"}} {p90}\navocet_fire_lag_recent_seconds{{quantile=\"0.99\"}} {p99}\navocet_fire_lag_recent_seconds_count {count}"
            );
        }
        let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
        for status in ["Pending", "InProgress", "Failed", "PartialSuccess", "Successful"] {
            by_status.insert(status, 0);
        }
        for (_, entry) in catalog.migrations() {
            let status = entry.object.status.as_ref().map(|s| s.status).unwrap_or_default();
            let name =
                if status == MigrationStatusType::Initial { "Pending" } else { status.as_str() };
            *by_status.entry(name).or_default() += 1;
        }
        let _ = writeln!(
            out,
            "# HELP avocet_migrations Migrations kept, by status.\n# TYPE avocet_migrations gauge"
        );
        for (status, count) in by_status {
            let _ = writeln!(out, "avocet_migrations{{status=\"{status}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "# HELP avocet_schedule_rpo_seconds Now minus the due slot of the schedule's last successful migration.\n# TYPE avocet_schedule_rpo_seconds gauge"
        );
        let mut last_success: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        for (key, entry) in catalog.migrations() {
            let (Some(origin), Some(status)) = (&entry.origin, &entry.object.status) else {
                continue;
            };
            if status.status.is_success() {
                let name = format!(
                    "namespace=\"{}\",schedule=\"{}\"",
                    key.namespace, origin.schedule.name
                );
                let slot = last_success.entry(name).or_insert(origin.slot);
                *slot = (*slot).max(origin.slot);
            }
        }
        for (labels, slot) in last_success {
            let seconds = (now - slot).num_milliseconds() as f64 / 1000.0;
            let _ = writeln!(out, "avocet_schedule_rpo_seconds{{{labels}}} {seconds}");
        }
        out
    }
}

/// Says whether the node is ready (a line saying why, either way).
pub type Readiness = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// Serves `GET /metrics`, `GET /healthz` (liveness: the process answers) and `GET /readyz`
/// (readiness: 200 or 503 with the reason) until the task is dropped; `render` makes the
/// metrics body.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    ready: Readiness,
) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let render = Arc::clone(&render);
        let ready = Arc::clone(&ready);
        tokio::spawn(async move {
            let mut buffer = [0u8; 2048];
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buffer))
                    .await;
            let Ok(Ok(n)) = read else { return };
            let request = String::from_utf8_lossy(&buffer[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path {
                "/metrics" => ("200 OK", render()),
                "/healthz" => ("200 OK", "ok\n".to_owned()),
                "/readyz" => match ready() {
                    Ok(line) => ("200 OK", format!("{line}\n")),
                    Err(line) => ("503 Service Unavailable", format!("{line}\n")),
                },
                _ => ("404 Not Found", "try /metrics, /healthz or /readyz\n".to_owned()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
