//! Observers outside the group, each a thread that talks to it only through `avocetctl`:
//!
//! - [`EventWatch`] polls a namespace's events and notes when, by the test's own clock, it
//!   first saw each one. The events' times are the leader's readings, so only an outside clock
//!   can tell that a leader whose clock runs fast fired a slot early ([`early`]).
//! - [`AckWriter`] keeps writing new objects through the nodes in turn and remembers each one a
//!   node acknowledged; [`lost`] then finds any acknowledged write the group no longer holds
//!   (nothing acknowledged may be lost, whatever the faults).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::harness::CtlRunner;
use crate::oracle;
use crate::scenario::{SCALE, group_time, real_now};

/// The real time of error allowed when T-1 is judged by the watcher's clock: a poll's answer
/// is read after it arrives, so an event is never seen before it exists, and the leader's
/// estimate of the group clock never runs ahead of its peers' clocks; 50 ms is a margin for
/// the test's own clock reads, not for the system under test.
pub const SEEN_TOLERANCE: chrono::TimeDelta = chrono::TimeDelta::milliseconds(50);

/// Judges T-1 by the watcher's clock for a group on [`crate::scenario::fast_flags`] from
/// `epoch`: one violation for each event in `seen` (from [`EventWatch::finish`]) that
/// accounts for a slot not yet due when it was first seen.
pub fn early(seen: &[(Value, DateTime<Utc>)], epoch: DateTime<Utc>) -> Vec<String> {
    let at_group_time: Vec<_> =
        seen.iter().map(|(event, at)| (event.clone(), group_time(epoch, *at))).collect();
    oracle::early(&at_group_time, SEEN_TOLERANCE * SCALE)
}

/// Each event seen, by `seq`, with the real instant it was first seen.
type Seen = BTreeMap<u64, (Value, DateTime<Utc>)>;

/// Polls the events of one namespace in the background until finished or dropped.
#[derive(Debug)]
pub struct EventWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Seen>>,
}

impl EventWatch {
    /// Starts polling the events of `namespace` through the nodes of `runner` in turn (a node
    /// down is skipped), every `every`.
    pub fn start(runner: CtlRunner, namespace: &str, every: Duration) -> EventWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let namespace = namespace.to_owned();
        let thread = std::thread::spawn(move || {
            let mut seen = Seen::new();
            let ids = runner.ids();
            let mut turn = 0usize;
            while !stopping.load(Ordering::Relaxed) {
                let id = ids[turn % ids.len().max(1)];
                turn += 1;
                let list = runner.json(id, &["get", "events", "-n", &namespace]);
                // Read after the answer: the event existed by then (a later reading only
                // makes the judgement more lenient, never wrongly strict).
                let now = real_now();
                for event in list.iter().flat_map(|list| list["items"].as_array()).flatten() {
                    if let Some(seq) = event["seq"].as_u64() {
                        seen.entry(seq).or_insert_with(|| (event.clone(), now));
                    }
                }
                std::thread::sleep(every);
            }
            seen
        });
        EventWatch { stop, thread: Some(thread) }
    }

    /// Stops polling and returns every event seen, in commit order, with the real instant it
    /// was first seen.
    pub fn finish(mut self) -> Vec<(Value, DateTime<Utc>)> {
        self.stop.store(true, Ordering::Relaxed);
        let seen = self.thread.take().and_then(|thread| thread.join().ok()).unwrap_or_default();
        seen.into_values().collect()
    }
}

impl Drop for EventWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes a new SchedulePolicy (`ack-<n>`, on no schedule, so it never fires) through the
/// nodes in turn until finished or dropped, remembering each one a node acknowledged.
#[derive(Debug)]
pub struct AckWriter {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<String>>>,
}

impl AckWriter {
    /// Starts writing through the nodes of `runner`, one write every `every`.
    pub fn start(runner: CtlRunner, every: Duration) -> AckWriter {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let ids = runner.ids();
            let mut acknowledged = Vec::new();
            let mut n = 0usize;
            while !stopping.load(Ordering::Relaxed) {
                n += 1;
                let name = format!("ack-{n}");
                let yaml = format!(
                    "apiVersion: stork.libopenstorage.org/v1alpha1\nkind: SchedulePolicy\n\
                     metadata: {{name: {name}}}\npolicy: {{interval: {{intervalMinutes: 60}}}}\n"
                );
                let id = ids[n % ids.len().max(1)];
                let (ok, _, _) = runner.run_with_input(id, &["apply", "-f", "-"], Some(&yaml));
                if ok {
                    acknowledged.push(name);
                }
                std::thread::sleep(every);
            }
            acknowledged
        });
        AckWriter { stop, thread: Some(thread) }
    }

    /// Stops writing and returns the names of the policies a node acknowledged.
    pub fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|thread| thread.join().ok()).unwrap_or_default()
    }
}

impl Drop for AckWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Returns one problem for each policy of `acknowledged` that node `id` (the leader, for a
/// linearizable read) no longer lists, or the reason the list could not be read.
pub fn lost(runner: &CtlRunner, id: u64, acknowledged: &[String]) -> Vec<String> {
    match runner.json(id, &["get", "schedulepolicy"]) {
        Some(list) => missing(&list, acknowledged),
        None => vec!["the SchedulePolicies cannot be read back".to_owned()],
    }
}

/// Returns one problem for each name of `acknowledged` that `list` (a `get -o json` list)
/// lacks.
fn missing(list: &Value, acknowledged: &[String]) -> Vec<String> {
    let held: std::collections::BTreeSet<&str> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|policy| policy["metadata"]["name"].as_str())
        .collect();
    acknowledged
        .iter()
        .filter(|name| !held.contains(name.as_str()))
        .map(|name| format!("lost: SchedulePolicy {name} was acknowledged, and is gone"))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_acknowledged_write_missing_from_the_list_is_lost() {
        let list =
            json!({"items": [{"metadata": {"name": "ack-1"}}, {"metadata": {"name": "ack-3"}}]});
        let acknowledged: Vec<String> = ["ack-1", "ack-3"].map(str::to_owned).to_vec();
        assert!(missing(&list, &acknowledged).is_empty());
        let acknowledged: Vec<String> = ["ack-1", "ack-2"].map(str::to_owned).to_vec();
        let lost = missing(&list, &acknowledged);
        assert!(lost.len() == 1 && lost[0].contains("ack-2"), "{lost:?}");
    }
}
