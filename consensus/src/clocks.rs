//! The group's clock: what a majority of the voters' clocks have reached, so that one node's
//! skewed clock moves nothing the log records.
//!
//! Every peer message (request and answer) carries its sender's clock reading. A node keeps,
//! per peer, the offset of that peer's clock from its own: the reading minus this node's clock
//! when the message arrived. The reading was taken before it arrived (an answer is stamped
//! after the peer's work, a request when sent), so the offset never overstates the peer's
//! clock; it understates it by the message's one-way delay (a millisecond on a LAN), never by
//! the time the peer took to do the work. A midpoint estimate (as NTP's) could overstate it by
//! half a slow call, and make a fast leader early. [`PeerClocks::group`] then takes this
//! node's reading and each voter's fresh estimate and returns the majority-th largest: an
//! instant that at least a majority of the voters' clocks have reached. Because Raft's leader hears from a majority to commit
//! anything, a leader always has fresh readings from one.
//!
//! Why the majority-th largest: with at most a minority of clocks wrong (fast or slow), the
//! value lies between two correct clocks, so a leader whose own clock runs five minutes fast
//! stamps and fires at the time the others agree on, and so does one that runs slow. Readings
//! from fewer voters than all can only lower it (the k-th largest of a subset is at most the
//! k-th largest of the whole), so missing readings make the group's clock late, never early.
//! With fewer fresh readings than a majority there is no group reading at all. A peer that
//! sends no reading (an older version, during a rolling upgrade) counts as reading this
//! node's own clock, which is how every node fired before readings were exchanged.
//!
//! Readings are whatever the application's clock says, in microseconds since the Unix epoch
//! (a scaled clock in tests); freshness is measured on the same clock, so no second time source
//! is read here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crate::types::NodeId;

/// Reads the local clock, in microseconds since the Unix epoch.
pub type ReadClock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// One peer's clock, as last heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Heard {
    /// The peer's reading minus this node's, in microseconds.
    offset: i64,
    /// This node's reading when it heard it.
    at: i64,
}

/// The clocks of this node's peers, shared by its client and server sides; cheap to clone.
/// A default value reads no clock: messages carry none and [`PeerClocks::group`] says nothing.
#[derive(Clone, Default)]
pub struct PeerClocks {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    read: ReadClock,
    fresh_for: i64,
    heard: Mutex<BTreeMap<NodeId, Heard>>,
    /// This node's id and the group's voters, kept current by the node.
    members: Mutex<(NodeId, BTreeSet<NodeId>)>,
}

impl std::fmt::Debug for PeerClocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let heard = self.inner.as_ref().map(|inner| inner.lock().clone());
        f.debug_struct("PeerClocks").field("heard", &heard).finish()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, Heard>> {
        self.heard.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The offsets of the peers heard within the freshness window of reading `now`.
    fn fresh(&self, now: i64) -> BTreeMap<NodeId, i64> {
        self.lock()
            .iter()
            .filter(|(_, heard)| now.saturating_sub(heard.at) <= self.fresh_for)
            .map(|(peer, heard)| (*peer, heard.offset))
            .collect()
    }
}

impl PeerClocks {
    /// Returns the clocks of a node that reads its own with `read`, and trusts a peer's reading
    /// for `fresh_for` microseconds of that clock after hearing it.
    pub fn new(read: ReadClock, fresh_for: i64) -> PeerClocks {
        PeerClocks {
            inner: Some(Arc::new(Inner {
                read,
                fresh_for,
                heard: Mutex::new(BTreeMap::new()),
                members: Mutex::new((0, BTreeSet::new())),
            })),
        }
    }

    /// Returns this node's reading, to send with a message (0 when it reads no clock, which
    /// receivers take as their own reading).
    pub fn stamp(&self) -> i64 {
        self.inner.as_ref().map_or(0, |inner| (inner.read)())
    }

    /// Notes the reading `theirs` in a message (a request or an answer) from peer `peer` that
    /// arrived now; 0 means the peer sent none.
    pub fn heard(&self, peer: NodeId, theirs: i64) {
        let Some(inner) = &self.inner else { return };
        let received = (inner.read)();
        let offset = if theirs == 0 { 0 } else { theirs.saturating_sub(received) };
        inner.lock().insert(peer, Heard { offset, at: received });
    }

    /// Returns the offsets of the peers heard within the freshness window, in microseconds.
    pub fn offsets(&self) -> BTreeMap<NodeId, i64> {
        self.inner.as_ref().map(|inner| inner.fresh((inner.read)())).unwrap_or_default()
    }

    /// Records this node's id and the group's voters (the node calls this as membership
    /// changes).
    pub fn set_members(&self, me: NodeId, voters: BTreeSet<NodeId>) {
        if let Some(inner) = &self.inner {
            *inner.members.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = (me, voters);
        }
    }

    /// Returns the instant at least a majority of the voters last given to
    /// [`PeerClocks::set_members`] have reached by their clocks, as this node estimates them,
    /// or `None` when it has fresh readings from fewer than a majority (or reads no clock).
    pub fn group(&self) -> Option<i64> {
        let inner = self.inner.as_ref()?;
        let (me, voters) =
            inner.members.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        self.quorum(me, &voters)
    }

    /// As [`PeerClocks::group`], for node `me` among `voters`.
    fn quorum(&self, me: NodeId, voters: &BTreeSet<NodeId>) -> Option<i64> {
        let inner = self.inner.as_ref()?;
        let now = (inner.read)();
        let offsets = inner.fresh(now);
        let readings: Vec<i64> = voters
            .iter()
            .filter_map(|voter| {
                if *voter == me {
                    Some(now)
                } else {
                    offsets.get(voter).map(|offset| now.saturating_add(*offset))
                }
            })
            .collect();
        quorum_reading(readings, voters.len())
    }

    /// Returns the earliest of this node's reading and every fresh estimate of a peer's (a
    /// reading no node is known to be behind), or `None` when it reads no clock.
    pub fn earliest(&self) -> Option<i64> {
        let inner = self.inner.as_ref()?;
        let now = (inner.read)();
        let earliest = inner.fresh(now).values().map(|offset| now.saturating_add(*offset)).min();
        Some(earliest.map_or(now, |earliest| earliest.min(now)))
    }
}

/// Returns the majority-th largest of `readings`, taken from a group of `voters` voters, or
/// `None` when there are fewer readings than a majority.
pub fn quorum_reading(mut readings: Vec<i64>, voters: usize) -> Option<i64> {
    let majority = voters / 2 + 1;
    if voters == 0 || readings.len() < majority {
        return None;
    }
    readings.sort_unstable_by(|a, b| b.cmp(a));
    readings.get(majority - 1).copied()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;

    const MINUTE: i64 = 60_000_000;

    fn clocks(now: &Arc<AtomicI64>) -> PeerClocks {
        let read = Arc::clone(now);
        PeerClocks::new(Arc::new(move || read.load(Ordering::SeqCst)), 10 * 1_000_000)
    }

    fn voters(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn the_majority_th_largest_reading_ignores_one_skewed_clock_of_three() {
        let t = 1_000 * MINUTE;
        assert_eq!(quorum_reading(vec![t + 5 * MINUTE, t, t], 3), Some(t));
        assert_eq!(quorum_reading(vec![t - 5 * MINUTE, t, t], 3), Some(t));
        assert_eq!(quorum_reading(vec![t + 5 * MINUTE, t, t, t - 5 * MINUTE, t], 5), Some(t));
        // Two of five fast: still a correct clock's reading.
        assert_eq!(quorum_reading(vec![t + 5, t + 9, t, t, t], 5), Some(t));
    }

    #[test]
    fn fewer_readings_than_a_majority_give_no_reading_and_missing_ones_only_make_it_later() {
        assert_eq!(quorum_reading(vec![7], 3), None);
        assert_eq!(quorum_reading(vec![], 1), None);
        assert_eq!(quorum_reading(vec![7], 1), Some(7));
        // A fast node and a slow one, the third unheard: the slow reading, late but not early.
        assert_eq!(quorum_reading(vec![10, 2], 3), Some(2));
    }

    #[test]
    fn a_leader_five_minutes_fast_reads_its_followers_time() {
        let now = Arc::new(AtomicI64::new(1_000 * MINUTE + 5 * MINUTE));
        let leader = clocks(&now);
        // The followers answer with the true time, stamped 1 ms before the answers arrive
        // (the leader's clock having moved 2 ms over the call): the estimate is the reading,
        // never more, however long the call took.
        now.fetch_add(2_000, Ordering::SeqCst);
        leader.heard(2, 1_000 * MINUTE + 1_000);
        leader.heard(3, 1_000 * MINUTE + 1_000);
        leader.set_members(1, voters(&[1, 2, 3]));
        assert_eq!(leader.group(), Some(1_000 * MINUTE + 1_000));
        assert_eq!(leader.earliest(), Some(1_000 * MINUTE + 1_000));
        // Alone, it cannot tell.
        assert_eq!(leader.quorum(1, &voters(&[1, 4, 5])), None);
    }

    #[test]
    fn stale_readings_do_not_count() {
        let now = Arc::new(AtomicI64::new(100 * MINUTE));
        let node = clocks(&now);
        node.heard(2, 100 * MINUTE);
        assert!(node.quorum(1, &voters(&[1, 2, 3])).is_some());
        now.fetch_add(11 * 1_000_000, Ordering::SeqCst);
        assert_eq!(node.quorum(1, &voters(&[1, 2, 3])), None, "heard 11 s ago: stale");
        node.heard(3, now.load(Ordering::SeqCst));
        assert!(node.quorum(1, &voters(&[1, 2, 3])).is_some());
    }

    #[test]
    fn a_peer_that_sends_no_reading_counts_as_this_nodes_own_clock() {
        let now = Arc::new(AtomicI64::new(500 * MINUTE));
        let node = clocks(&now);
        node.set_members(1, voters(&[1, 2, 3]));
        node.heard(2, 0);
        node.heard(3, 0);
        assert_eq!(node.group(), Some(500 * MINUTE), "as before readings were exchanged");
    }

    #[test]
    fn a_node_without_a_clock_sends_and_keeps_nothing() {
        let none = PeerClocks::default();
        assert_eq!(none.stamp(), 0);
        none.heard(2, 5);
        assert!(none.offsets().is_empty());
        assert_eq!(none.quorum(1, &voters(&[1])), None);
        assert_eq!(none.earliest(), None);
    }
}
