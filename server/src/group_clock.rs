//! The clock a node stamps the log and fires slots by: the instant a majority of the voters'
//! clocks have reached, not its own reading (DESIGN.md's T-1: no slot fires before it is due).
//!
//! Every peer message carries its sender's clock, and the consensus node keeps each peer's
//! offset ([`avocet_consensus::clocks`]). A leader whose clock runs five minutes fast would
//! otherwise fire every slot five minutes early, and one five minutes slow would fire them late;
//! with the group's reading, both fire on the time the majority agrees on. When this node has
//! heard from fewer than a majority lately, [`Clock::agreed`] says so and the leader loop waits,
//! while [`Clock::now`] carries on from the last agreed reading by the time its own clock has
//! moved since (or, before any agreement, answers the earliest reading it knows), so what a
//! leader cut off from its peers stamps does not jump to its own clock's time.

use std::sync::Arc;
use std::time::Duration;

use avocet_consensus::PeerClocks;
use avocet_scheduler::Clock;
use chrono::{DateTime, Utc};

/// Trusts a peer's clock reading for this long (in real time) after hearing it.
pub const READING_FRESH_FOR: Duration = Duration::from_secs(10);

/// Reads the group's clock from this node's clock and its peers' readings.
pub struct GroupClock {
    local: Arc<dyn Clock>,
    peers: PeerClocks,
    /// The last agreed reading, and this node's own reading then.
    last: std::sync::Mutex<Option<(DateTime<Utc>, DateTime<Utc>)>>,
}

impl GroupClock {
    /// Returns the group clock of a node whose own clock is `local`, running `scale` times as
    /// fast as real time, and the peer clocks to hand to the consensus node.
    pub fn new(local: Arc<dyn Clock>, scale: f64) -> (GroupClock, PeerClocks) {
        let read = {
            let local = Arc::clone(&local);
            Arc::new(move || local.now().timestamp_micros())
        };
        let fresh = READING_FRESH_FOR.as_secs_f64() * 1e6 * scale.clamp(1.0, 1e6);
        #[allow(clippy::cast_possible_truncation)] // at most 1e13, well inside i64
        let peers = PeerClocks::new(read, fresh as i64);
        (GroupClock { local, peers: peers.clone(), last: std::sync::Mutex::new(None) }, peers)
    }

    fn instant(micros: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(micros)
    }
}

impl Clock for GroupClock {
    fn now(&self) -> DateTime<Utc> {
        if let Some(agreed) = self.agreed() {
            return agreed;
        }
        let last = *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match last {
            Some((agreed, own)) => agreed + (self.local.now() - own),
            None => self
                .peers
                .earliest()
                .and_then(GroupClock::instant)
                .unwrap_or_else(|| self.local.now()),
        }
    }

    fn agreed(&self) -> Option<DateTime<Utc>> {
        #[cfg(feature = "planted-bugs")]
        if avocet_scheduler::planted::trust_own_clock() {
            return Some(self.local.now());
        }
        let agreed = self.peers.group().and_then(GroupClock::instant)?;
        *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((agreed, self.local.now()));
        Some(agreed)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use avocet_scheduler::ManualClock;
    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn a_fast_node_reads_the_time_its_peers_agree_on() {
        let t = DateTime::parse_from_rfc3339("2026-03-08T06:00:00Z").unwrap().to_utc();
        let local = Arc::new(ManualClock::new(t + TimeDelta::minutes(5)));
        let (clock, peers) = GroupClock::new(local.clone(), 1.0);
        peers.set_members(1, BTreeSet::from([1, 2, 3]));
        // Nothing heard: no agreed time, and `now` is the node's own reading.
        assert_eq!(clock.agreed(), None);
        assert_eq!(clock.now(), t + TimeDelta::minutes(5));
        peers.heard(2, t.timestamp_micros());
        // Two of three: both clocks have reached the slower reading.
        assert_eq!(clock.agreed(), Some(t));
        peers.heard(3, (t + TimeDelta::seconds(1)).timestamp_micros());
        assert_eq!(clock.agreed(), Some(t + TimeDelta::seconds(1)));
        assert_eq!(clock.now(), t + TimeDelta::seconds(1));
        // Past the freshness window the readings lapse: no agreed time, and `now` carries on
        // from the last one by the node's own elapsed time, not at its own clock's time.
        local.advance(TimeDelta::seconds(11));
        assert_eq!(clock.agreed(), None);
        assert_eq!(clock.now(), t + TimeDelta::seconds(12));
    }
}
