//! The seeded nemesis: one seed derives a plan of faults (which, for how long, how far apart),
//! and [`soak`] runs it against a real group busy with [`crate::scenario`]'s schedule, then
//! judges the slots through the public API. The faults, after Jepsen's nemeses:
//!
//! - the leader killed (SIGKILL) and restarted, at a random moment or at the instant a slot
//!   falls due (mid-fire, mid-commit);
//! - a follower killed and restarted;
//! - the leader paused (SIGSTOP) past the election timeout, then resumed;
//! - the leader isolated, its packets to the others dropped (one-way), or it and a companion
//!   split from the majority (network namespaces, [`crate::netns`]);
//! - a rolling restart (SIGTERM, each node in turn) and a full-group restart;
//! - a follower's clock five minutes fast or slow, and the leader paused so that it may lead.
//!
//! A watcher ([`crate::watch`]) notes when the test's own clock first saw each event, and
//! [`crate::oracle::early`] judges T-1 by it, so a skewed leader cannot hide an early fire
//! behind its own readings.
//!
//! While faults come and go, a completer ends each migration in flight through the public API
//! (`avocetctl cancel migration`), so that fires keep coming instead of coalescing behind one
//! migration that never ends (no worker copies anything here; real workers come with the
//! worker faults). Failover time is measured from the fault to the moment the public API
//! shows a new leader every live node agrees on (polled every 100 ms), so it includes the
//! polling's resolution.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::harness::{Cluster, Stopwatch};
use crate::scenario;
use crate::sim::Rng;
use crate::watch::{AckWriter, EventWatch};

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL of the leader at a random moment; restarted after the hold.
    KillLeader,
    /// SIGKILL of the leader at the instant a slot falls due.
    KillLeaderAtSlot,
    /// SIGKILL of a follower; restarted after the hold.
    KillFollower,
    /// SIGSTOP of the leader for the hold, then SIGCONT.
    PauseLeader,
    /// The leader's link down for the hold.
    IsolateLeader,
    /// Every packet from the leader to the others dropped for the hold.
    OneWayFromLeader,
    /// The leader (and on five nodes a companion) split from the majority for the hold.
    SplitLeaderMinority,
    /// Every node in turn stopped with SIGTERM and started again.
    RollingRestart,
    /// Every node killed, down for the hold, then started again.
    FullRestart,
    /// A follower restarted with its clock five minutes fast or slow, the leader paused so
    /// that it may win the election, and after the hold restarted with a true clock.
    SkewClock,
}

impl Fault {
    /// Says whether the fault needs network namespaces.
    pub fn needs_network(self) -> bool {
        matches!(self, Fault::IsolateLeader | Fault::OneWayFromLeader | Fault::SplitLeaderMinority)
    }
}

/// The faults and their weights in a plan.
const WEIGHTS: [(Fault, u64); 10] = [
    (Fault::KillLeader, 4),
    (Fault::KillLeaderAtSlot, 3),
    (Fault::KillFollower, 2),
    (Fault::PauseLeader, 3),
    (Fault::IsolateLeader, 3),
    (Fault::OneWayFromLeader, 2),
    (Fault::SplitLeaderMinority, 2),
    (Fault::RollingRestart, 1),
    (Fault::FullRestart, 1),
    (Fault::SkewClock, 2),
];

/// How far [`Fault::SkewClock`] moves a node's clock, in milliseconds of real time (at the
/// soak's hour a second, 12.5 days of the group's clock).
pub const SKEW_MS: i64 = 5 * 60 * 1000;

/// One step of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The fault.
    pub fault: Fault,
    /// How long it lasts.
    pub hold: Duration,
    /// How long the group runs healthy after it heals.
    pub gap: Duration,
}

/// The plan a seed derives: an endless sequence of steps (network faults left out when
/// `network` is false).
#[derive(Debug, Clone)]
pub struct Plan {
    rng: Rng,
    network: bool,
}

impl Plan {
    /// Returns the plan of `seed`.
    pub fn new(seed: u64, network: bool) -> Plan {
        Plan { rng: Rng::new(seed), network }
    }
}

impl Iterator for Plan {
    type Item = Step;

    fn next(&mut self) -> Option<Step> {
        let weights: Vec<(Fault, u64)> = WEIGHTS
            .into_iter()
            .filter(|(fault, _)| self.network || !fault.needs_network())
            .collect();
        let total: u64 = weights.iter().map(|(_, weight)| weight).sum();
        let mut pick = self.rng.next_u64() % total.max(1);
        let mut fault = weights[0].0;
        for (candidate, weight) in weights {
            if pick < weight {
                fault = candidate;
                break;
            }
            pick -= weight;
        }
        let millis = |rng: &mut Rng, low: i64, high: i64| {
            Duration::from_millis(u64::try_from(rng.range(low, high)).unwrap_or(0))
        };
        let hold = millis(&mut self.rng, 500, 3000);
        let gap = millis(&mut self.rng, 500, 2500);
        Some(Step { fault, hold, gap })
    }
}

/// What a soak saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Faults injected.
    pub faults: u64,
    /// Slots fired (the `Fired` events).
    pub fires: u64,
    /// Slots neither fired, buffered nor coalesced.
    pub missed: u64,
    /// Slots fired or accounted more than once.
    pub duplicated: u64,
    /// Slots fired before they were due by the watcher's clock (T-1).
    pub early: u64,
    /// Writes a node acknowledged that the group no longer holds.
    pub lost: u64,
    /// Writes a node acknowledged.
    pub acknowledged: u64,
    /// Times from a fault that took the leader out to a new agreed leader.
    pub failovers: Vec<Duration>,
    /// Every violation and every way the group failed to recover, in order.
    pub problems: Vec<String>,
    /// One line per fault, for the replay.
    pub log: Vec<String>,
    /// Whether the nodes said a planted bug was switched on (a test build with the
    /// `planted-bugs` feature).
    pub planted: bool,
    /// Migrations run by the data-plane phase (`None`: no such phase).
    pub migrations: Option<u64>,
    /// Migrations whose outcome changed after it was reported (a stale lease's effect).
    pub stale_commits: u64,
    /// Destination volumes that did not equal the run they name (or the last good one).
    pub corrupt_volumes: u64,
}

impl Report {
    /// The failover time at quantile `q` (0 to 1), if any failover was measured.
    pub fn failover_quantile(&self, q: f64) -> Option<Duration> {
        let mut sorted = self.failovers.clone();
        sorted.sort();
        let last = sorted.len().checked_sub(1)?;
        let rank = (q.clamp(0.0, 1.0) * last as f64).round();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // in [0, last]
        sorted.get(rank as usize).copied()
    }

    /// The summary line.
    pub fn summary(&self) -> String {
        let seconds = |q| {
            self.failover_quantile(q)
                .map_or_else(|| "-".to_owned(), |d| format!("{:.2}s", d.as_secs_f64()))
        };
        let (stale, corrupt) = match self.migrations {
            Some(_) => (self.stale_commits.to_string(), self.corrupt_volumes.to_string()),
            None => ("-".to_owned(), "-".to_owned()),
        };
        format!(
            "faults {}, fires {}, missed {}, duplicated {}, stale-commits {stale}, corrupt-volumes {corrupt}, failover p50 {} p99 {}, early {}, lost {}",
            self.faults,
            self.fires,
            self.missed,
            self.duplicated,
            seconds(0.5),
            seconds(0.99),
            self.early,
            self.lost
        )
    }
}

/// Ends every migration of the schedule still in flight, through node `id` (errors ignored:
/// the group may be mid-fault).
fn complete_in_flight(cluster: &Cluster, id: u64) {
    let Some(list) = cluster.ctl_json(id, &["get", "migration", "-n", "apps"]) else { return };
    for migration in list["items"].as_array().cloned().unwrap_or_default() {
        let status = migration["status"]["status"].as_str().unwrap_or_default();
        if matches!(status, "Successful" | "Failed" | "PartialSuccess" | "Purged") {
            continue;
        }
        if let Some(name) = migration["metadata"]["name"].as_str() {
            let _ = cluster.ctl(id, &["cancel", "migration", name, "-n", "apps"]);
        }
    }
}

/// Sleeps for `span`, ending in-flight migrations every half second through whichever node
/// leads.
fn run_for(cluster: &Cluster, span: Duration) {
    let started = Stopwatch::start();
    while started.elapsed() < span {
        if let Ok(leader) = cluster.leader(Duration::from_millis(300)) {
            complete_in_flight(cluster, leader);
        }
        std::thread::sleep(Duration::from_millis(500).min(span.saturating_sub(started.elapsed())));
    }
}

/// Injects one step's fault, heals it and waits for the group to recover; returns the
/// failover time when the fault took the leader out.
fn inject(
    cluster: &mut Cluster,
    step: Step,
    anchor: DateTime<Utc>,
) -> Result<Option<Duration>, String> {
    let timeout = Duration::from_secs(20);
    let leader = cluster.leader(timeout)?;
    let ids: Vec<u64> = cluster.nodes.keys().copied().collect();
    let others: Vec<u64> = ids.iter().copied().filter(|id| *id != leader).collect();
    let mut failover = None;
    match step.fault {
        Fault::KillLeader | Fault::KillLeaderAtSlot => {
            if step.fault == Fault::KillLeaderAtSlot {
                // Slots come every 2 real seconds from the anchor.
                let now = scenario::real_now();
                let since = (now - anchor).num_milliseconds().max(0);
                let next = anchor + chrono::TimeDelta::milliseconds((since / 2000 + 1) * 2000);
                if let Ok(wait) = (next - now).to_std() {
                    std::thread::sleep(wait);
                }
            }
            cluster.kill(leader);
            let watch = Stopwatch::start();
            cluster.leader_among(&others, timeout)?;
            failover = Some(watch.elapsed());
            run_for(cluster, step.hold);
            cluster.spawn(leader)?;
        }
        Fault::KillFollower => {
            let follower = others[0];
            cluster.kill(follower);
            run_for(cluster, step.hold);
            cluster.spawn(follower)?;
        }
        Fault::PauseLeader => {
            cluster.pause(leader);
            let watch = Stopwatch::start();
            cluster.leader_among(&others, timeout)?;
            failover = Some(watch.elapsed());
            run_for(cluster, step.hold);
            cluster.resume(leader);
        }
        Fault::IsolateLeader | Fault::OneWayFromLeader | Fault::SplitLeaderMinority => {
            let net = cluster.net().ok_or("a network fault needs namespaces")?;
            let majority: Vec<u64> = match step.fault {
                Fault::IsolateLeader => {
                    net.isolate(leader)?;
                    others.clone()
                }
                Fault::OneWayFromLeader => {
                    for other in &others {
                        net.cut(leader, *other)?;
                    }
                    others.clone()
                }
                _ => {
                    let mut side = vec![leader];
                    if ids.len() >= 5 {
                        side.push(others[0]);
                    }
                    net.split(&side)?;
                    ids.iter().copied().filter(|id| !side.contains(id)).collect()
                }
            };
            let watch = Stopwatch::start();
            let next = cluster.leader_among(&majority, timeout)?;
            failover = Some(watch.elapsed());
            // Only the majority is asked while the fault lasts.
            let started = Stopwatch::start();
            while started.elapsed() < step.hold {
                complete_in_flight(cluster, next);
                std::thread::sleep(Duration::from_millis(500));
            }
            cluster.net().ok_or("namespaces gone")?.heal()?;
        }
        Fault::RollingRestart => {
            for id in &ids {
                cluster.terminate(*id);
                cluster.leader(timeout)?;
                cluster.spawn(*id)?;
                cluster.eventually(timeout, "the restarted node following", || {
                    cluster.ctl_json(*id, &["cluster", "status"])?["leaderId"].as_u64()
                })?;
            }
        }
        Fault::FullRestart => {
            for id in &ids {
                cluster.kill(*id);
            }
            std::thread::sleep(step.hold);
            for id in &ids {
                cluster.spawn(*id)?;
            }
        }
        Fault::SkewClock => {
            // The hold's milliseconds pick the follower and the direction (seeded either way).
            let millis = usize::try_from(step.hold.as_millis()).unwrap_or(0);
            let skewed = others[millis % others.len()];
            let skew = if millis % 2 == 0 { SKEW_MS } else { -SKEW_MS };
            cluster.restart_with_flags(skewed, &["--clock-skew-ms", &skew.to_string()])?;
            cluster.eventually(timeout, "the skewed node following", || {
                cluster.ctl_json(skewed, &["cluster", "status"])?["leaderId"].as_u64()
            })?;
            cluster.pause(leader);
            let watch = Stopwatch::start();
            cluster.leader_among(&others, timeout)?;
            failover = Some(watch.elapsed());
            cluster.resume(leader);
            run_for(cluster, step.hold);
            cluster.restart_with_flags(skewed, &[])?;
        }
    }
    cluster.leader(Duration::from_secs(30)).map_err(|e| format!("after healing: {e}"))?;
    Ok(failover)
}

/// Set (by the `chaos` binary on Ctrl-C or SIGTERM) to end a soak early: it stops injecting,
/// judges what happened so far and removes everything it started.
pub static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Heals the network, resumes paused nodes and starts stopped ones.
fn recover(cluster: &mut Cluster) {
    if let Some(net) = cluster.net() {
        let _ = net.heal();
    }
    let ids: Vec<u64> = cluster.nodes.keys().copied().collect();
    for id in ids {
        cluster.resume(id);
        if !cluster.nodes[&id].running() {
            let _ = cluster.spawn(id);
        }
    }
}

/// How to soak.
#[derive(Debug, Clone)]
pub struct Options {
    /// The seed of the plan.
    pub seed: u64,
    /// How long to inject faults.
    pub duration: Duration,
    /// The group's size.
    pub nodes: u64,
    /// Runs the nodes in network namespaces (needed for partitions).
    pub network: bool,
    /// Switches on a planted bug (`double-fire`) in every node: test builds only, to prove
    /// the oracle catches it.
    pub planted: Option<String>,
    /// How long the data-plane phase runs after the scheduler phase (zero: none).
    pub data_duration: Duration,
}

/// Starts a group, applies the schedule, runs the seed's plan for `options.duration`, then
/// judges every slot through the public API.
pub fn soak(options: &Options, mut progress: impl FnMut(&str)) -> Result<Report, String> {
    let epoch = scenario::epoch_now();
    let flags = scenario::fast_flags(epoch);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut cluster = if options.network {
        Cluster::start_in_namespaces(options.nodes, &flags)?
    } else {
        Cluster::start(options.nodes, &flags)?
    };
    let mut report = Report::default();
    if let Some(bug) = &options.planted {
        cluster.set_env("AVOCET_PLANTED_BUG", bug);
        let ids: Vec<u64> = cluster.nodes.keys().copied().collect();
        for id in ids {
            cluster.kill(id);
            cluster.spawn(id)?;
        }
    }
    let leader = cluster.leader(Duration::from_secs(30))?;
    report.planted = options.planted.is_some() && cluster.logs_contain("PLANTED BUG");
    let anchor = scenario::schedule(&cluster, leader, epoch)?;
    let watch = EventWatch::start(cluster.ctl_runner(), "apps", Duration::from_millis(250));
    let writer = AckWriter::start(cluster.ctl_runner(), Duration::from_millis(300));
    let started = Stopwatch::start();
    for step in Plan::new(options.seed, options.network) {
        if started.elapsed() >= options.duration || STOP.load(std::sync::atomic::Ordering::Relaxed)
        {
            break;
        }
        let line = format!(
            "{:>7.1}s {:?} for {:.1}s, then {:.1}s healthy",
            started.elapsed().as_secs_f64(),
            step.fault,
            step.hold.as_secs_f64(),
            step.gap.as_secs_f64()
        );
        progress(&line);
        report.log.push(line);
        report.faults += 1;
        match inject(&mut cluster, step, anchor) {
            Ok(Some(failover)) => report.failovers.push(failover),
            Ok(None) => {}
            Err(problem) => {
                report.problems.push(format!("{:?}: {problem}", step.fault));
                // Undo whatever the step left (a partition, a pause, a node down), so what
                // happened can still be judged.
                recover(&mut cluster);
                break;
            }
        }
        run_for(&cluster, step.gap);
    }
    // Let what is owed fire, then judge: first T-1 by the watcher's clock, then the rest
    // through the public API.
    run_for(&cluster, Duration::from_secs(2));
    let early = crate::watch::early(&watch.finish(), epoch);
    report.early = early.len() as u64;
    report.problems.extend(early);
    let acknowledged = writer.finish();
    report.acknowledged = acknowledged.len() as u64;
    let leader = cluster.leader(Duration::from_secs(30))?;
    let lost = crate::watch::lost(&cluster.ctl_runner(), leader, &acknowledged);
    report.lost = lost.iter().filter(|problem| problem.starts_with("lost")).count() as u64;
    report.problems.extend(lost);
    let (tallied, _) = scenario::tally(&cluster)?;
    for (accounting, violations) in tallied {
        if let Some(accounting) = accounting {
            report.fires += accounting.fired as u64;
            report.missed += accounting.expected.saturating_sub(accounting.accounted);
            report.duplicated += accounting.accounted.saturating_sub(accounting.expected);
        }
        report.duplicated += violations.iter().filter(|v| v.starts_with("EO-1")).count() as u64;
        report.problems.extend(violations);
    }
    drop(cluster);
    if !options.data_duration.is_zero() && !STOP.load(std::sync::atomic::Ordering::Relaxed) {
        data_soak(options.seed, options.data_duration, &mut report, progress)?;
    }
    Ok(report)
}

/// The faults of the data-plane phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFault {
    /// No fault: the baseline.
    None,
    /// Every worker killed (SIGKILL) while the migration is leased, then restarted.
    KillWorkers,
    /// Every worker frozen (SIGSTOP) past its lease, a new one added, the frozen woken.
    FreezeWorkers,
    /// S3 answers 503, stalls or resets one connection in three.
    FlakyS3,
    /// The destination's API refuses connections during the migration.
    DestinationDown,
}

const DATA_FAULTS: [DataFault; 5] = [
    DataFault::None,
    DataFault::KillWorkers,
    DataFault::FreezeWorkers,
    DataFault::FlakyS3,
    DataFault::DestinationDown,
];

/// Runs one-off migrations through the data plane under a seeded mix of [`DataFault`]s for
/// `duration`, judging each: a Successful one's destination equals the run it names, byte for
/// byte, with whole standby objects; a failed one left the last good copy; and at the end no
/// reported outcome has changed since (a stale lease committing late).
pub fn data_soak(
    seed: u64,
    duration: Duration,
    report: &mut Report,
    mut progress: impl FnMut(&str),
) -> Result<(), String> {
    use crate::dataplane::DataWorld;
    use crate::proxy::Mode;
    let mut rng = Rng::new(seed ^ 0xDA7A);
    let mut world = DataWorld::start(16)?;
    let started = Stopwatch::start();
    let mut reported: Vec<(String, serde_json::Value)> = Vec::new();
    let mut last_good: Option<serde_json::Value> = None;
    let mut n = 0u64;
    while started.elapsed() < duration && !STOP.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        let fault = DATA_FAULTS[usize::try_from(rng.next_u64() % 5).unwrap_or(0)];
        let name = format!("m{n}");
        let line = format!("{:>7.1}s data: {name} with {fault:?}", started.elapsed().as_secs_f64());
        progress(&line);
        report.log.push(line);
        if fault != DataFault::None {
            report.faults += 1;
        }
        if n.is_multiple_of(4) {
            world.rewrite_all(n)?
        } else {
            world.change_data(n, rng.next_u64() % 8 + 1)?
        }
        if fault == DataFault::FlakyS3 {
            world.s3_proxy.set(Mode::Flaky { every: 3 });
        }
        if fault == DataFault::DestinationDown {
            world.destination_proxy.set(Mode::Reset);
        }
        if fault == DataFault::KillWorkers {
            // S3 answers 503 until the kill, so it lands mid-transfer.
            world.s3_proxy.set(Mode::Unavailable);
        }
        world.create_migration(&name)?;
        if matches!(fault, DataFault::KillWorkers | DataFault::FreezeWorkers) {
            world.wait_leased(&name)?;
            let workers = world.worker_count();
            if fault == DataFault::KillWorkers {
                for i in 0..workers {
                    world.kill_worker(i);
                }
                world.s3_proxy.set(Mode::Pass);
                std::thread::sleep(Duration::from_secs(1));
                for i in 0..workers {
                    world.start_worker(i)?;
                }
            } else {
                for i in 0..workers {
                    world.signal_worker(i, "STOP");
                }
                std::thread::sleep(Duration::from_secs(4));
                let fresh = world.add_worker()?;
                let _ = world.wait_ended(&name, Duration::from_secs(90));
                for i in 0..workers {
                    world.signal_worker(i, "CONT");
                }
                // Time for the woken workers to do whatever they would with their lapsed
                // lease (a lease and two renewals), before they are retired.
                std::thread::sleep(Duration::from_secs(5));
                // The woken workers are retired: the pool keeps a bounded number.
                for i in 0..workers {
                    world.kill_worker(i);
                }
                world.retire_to(fresh)?;
            }
        }
        let ended = world.wait_ended(&name, Duration::from_secs(120));
        world.s3_proxy.set(Mode::Pass);
        world.destination_proxy.set(Mode::Pass);
        let migration = ended.map_err(|e| format!("{e}\n{}", world.logs()))?;
        let status = migration["status"]["status"].as_str().unwrap_or_default().to_owned();
        let judged = if status == "Successful" {
            last_good = Some(migration.clone());
            world.check_successful(&migration)
        } else {
            match &last_good {
                Some(good) => world
                    .check_successful(good)
                    .map_err(|e| format!("after a failed migration: {e}")),
                None => Ok(()),
            }
        };
        if let Err(problem) = judged {
            report.corrupt_volumes += 1;
            report
                .problems
                .push(format!("corrupt volume after {name} ({fault:?}, {status}): {problem}"));
        }
        reported.push((name, migration["status"].clone()));
    }
    // Let any woken worker finish what it would, then look again at every outcome reported,
    // and at the destination: it must still hold the last good run.
    std::thread::sleep(Duration::from_secs(3));
    if let Some(good) = &last_good
        && let Err(problem) = world.check_successful(good)
    {
        report.corrupt_volumes += 1;
        report.problems.push(format!("corrupt volume at the end: {problem}"));
    }
    for (name, status) in &reported {
        let now = world.migration(name).map(|m| m["status"].clone());
        if now.as_ref() != Some(status) {
            report.stale_commits += 1;
            report.problems.push(format!("W-1: {name}'s outcome changed after it was reported"));
        }
    }
    // And from the events: every completion by the lease current at the time.
    for violation in crate::oracle::stale_leases(&world.events()?) {
        report.stale_commits += 1;
        report.problems.push(violation);
    }
    report.migrations = Some(n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_derives_the_same_plan_and_plans_without_network_leave_partitions_out() {
        let a: Vec<Step> = Plan::new(7, true).take(50).collect();
        let b: Vec<Step> = Plan::new(7, true).take(50).collect();
        assert_eq!(a, b);
        assert_ne!(a, Plan::new(8, true).take(50).collect::<Vec<_>>());
        assert!(a.iter().any(|s| s.fault.needs_network()));
        assert!(Plan::new(7, false).take(200).all(|s| !s.fault.needs_network()));
        assert!(
            a.iter()
                .all(|s| s.hold >= Duration::from_millis(500)
                    && s.gap <= Duration::from_millis(2500))
        );
    }

    #[test]
    fn quantiles_and_the_summary_line() {
        let report = Report {
            faults: 3,
            fires: 10,
            failovers: [400, 500, 1200].map(Duration::from_millis).to_vec(),
            ..Report::default()
        };
        assert_eq!(
            report.summary(),
            "faults 3, fires 10, missed 0, duplicated 0, stale-commits -, corrupt-volumes -, failover p50 0.50s p99 1.20s, early 0, lost 0"
        );
        assert_eq!(Report::default().failover_quantile(0.5), None);
    }
}
