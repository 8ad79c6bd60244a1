//! A watcher outside the group: it polls a namespace's events through `avocetctl` and notes
//! when, by the test's own clock, it first saw each one. The events' times are the leader's
//! readings, so only an outside clock can tell that a leader whose clock runs fast fired a slot
//! early ([`crate::oracle::early`]).

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
/// is read after it arrives, so an event is never seen before it exists; 50 ms covers the
/// leader's estimate of the group clock running up to half a loopback round trip ahead.
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
