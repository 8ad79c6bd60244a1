//! The seeded simulation of the scheduler group (sans-IO, TigerBeetle VOPR style).
//!
//! One seed derives everything: the node count, clock skews and jumps, message loss, partitions,
//! crashes and restarts, the workers' behaviour and a schedule workload. The simulation drives
//! the real [`plan`] and [`Catalog::apply`] through an abstract replicated log:
//!
//! - The leader plans from its replica, which holds every committed entry (Raft's leader
//!   completeness), with its own skewed clock, and proposes a batch.
//! - A batch commits (every node applies it in log order, at its own pace) or stays in flight;
//!   when its leader crashes or is cut off, an in-flight batch either commits anyway (a new
//!   leader found it on a majority) or is lost. Clients re-propose batches at random.
//! - Workers lease migrations, report, renew, complete, pause past their lease and wake up
//!   with a stale token, or crash.
//!
//! After every committed entry it checks EO-1, T-1 and T-2 (a [`FireLedger`] over the answers
//! clients see) and W-1 (a stale token changes nothing; an accepted token is the newest lease's).
//! Replicas are compared for equality at the same index (determinism). At the end it heals every
//! fault, runs on, and requires every owed slot to be fired or coalesced (EO-2).

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, Utc};

use avocet_scheduler::catalog::{CatalogData, ObjectKey, Progress};
use avocet_scheduler::command::{Outcome, Rejection};
use avocet_scheduler::invariants::{FireLedger, Violation, check_stale_token};
use avocet_scheduler::planner::plan;
use avocet_scheduler::{Catalog, CatalogObject, Command, Response};
use avocet_types::migration::{MigrationStage, MigrationStatusType};
use avocet_types::{Kind, StorkObject};

/// Deterministic pseudo-random numbers (SplitMix64): the whole run follows from the seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Returns a generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_B00C)
    }

    /// Returns the next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Returns a number in `[low, high]`.
    pub fn range(&mut self, low: i64, high: i64) -> i64 {
        let span = u64::try_from(high - low + 1).unwrap_or(1).max(1);
        low + i64::try_from(self.next_u64() % span).unwrap_or(0)
    }

    /// Returns true with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        // 53 random bits as a fraction in [0, 1).
        let fraction =
            f64::from(u32::try_from(self.next_u64() >> 43).unwrap_or(0)) / f64::from(1u32 << 21);
        fraction < p
    }

    /// Returns one element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let i = usize::try_from(self.next_u64() % items.len() as u64).unwrap_or(0);
        &items[i]
    }
}

/// Plants a known bug, to prove the oracle catches what it claims to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// A new leader's state loses every lane's mark (as a broken snapshot would): old slots
    /// fire again, which EO-1 must catch.
    ForgetMarksOnLeaderChange,
    /// Clients are told nothing about coalesced slots, which EO-2 must catch after an outage.
    HideCoalesced,
}

/// Describes one simulated run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seeds the run.
    pub seed: u64,
    /// Counts the faulty steps before healing.
    pub steps: u32,
    /// Plants a bug.
    pub bug: Option<Bug>,
}

/// Reports a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Gives the seed.
    pub seed: u64,
    /// Counts the nodes.
    pub nodes: usize,
    /// Counts slots fired.
    pub fired: u64,
    /// Counts slots coalesced.
    pub coalesced: u64,
    /// Counts duplicate fires `apply` refused.
    pub duplicates_refused: u64,
    /// Counts faults injected.
    pub faults: u64,
    /// Counts leader changes.
    pub leader_changes: u64,
    /// Counts committed log entries.
    pub entries: u64,
    /// Holds the first violation, if any.
    pub violation: Option<Violation>,
    /// Holds one line per event, for replaying a failure.
    pub trace: Vec<String>,
}

struct Node {
    up: bool,
    skew: TimeDelta,
    replica: Catalog,
    applied: usize,
}

#[derive(Debug, Clone, Default)]
struct Worker {
    name: String,
    holding: Option<(ObjectKey, u64)>,
    paused_until: Option<DateTime<Utc>>,
    reported: u32,
}

struct Sim {
    rng: Rng,
    options: Options,
    now: DateTime<Utc>,
    max_skew: TimeDelta,
    nodes: Vec<Node>,
    leader: Option<usize>,
    isolated: BTreeSet<usize>,
    log: Vec<Vec<Command>>,
    in_flight: Vec<Vec<Command>>,
    recent: Vec<Vec<Command>>,
    reference: Catalog,
    ledger: FireLedger,
    newest_lease: HashMap<ObjectKey, u64>,
    planned_at: DateTime<Utc>,
    workers: Vec<Worker>,
    schedules: Vec<String>,
    policies: Vec<String>,
    report: Report,
}

const ZONES: [&str; 6] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Santiago",
];

/// Runs one seed.
pub fn run(options: Options) -> Report {
    let mut rng = Rng::new(options.seed);
    let node_count = if rng.chance(0.5) { 3 } else { 5 };
    let max_skew = TimeDelta::seconds(rng.range(0, 300));
    let start =
        DateTime::from_timestamp(1_767_225_600 + rng.range(0, 365 * 86_400), 0).unwrap_or_default();
    let nodes = (0..node_count)
        .map(|_| Node {
            up: true,
            skew: TimeDelta::zero(),
            replica: Catalog::default(),
            applied: 0,
        })
        .collect();
    let workers = (0..rng.range(1, 3))
        .map(|i| Worker { name: format!("w{i}"), ..Worker::default() })
        .collect();
    let report = Report {
        seed: options.seed,
        nodes: node_count,
        fired: 0,
        coalesced: 0,
        duplicates_refused: 0,
        faults: 0,
        leader_changes: 0,
        entries: 0,
        violation: None,
        trace: Vec::new(),
    };
    let mut sim = Sim {
        rng,
        options,
        now: start,
        max_skew,
        nodes,
        leader: None,
        isolated: BTreeSet::new(),
        log: Vec::new(),
        in_flight: Vec::new(),
        recent: Vec::new(),
        reference: Catalog::default(),
        ledger: FireLedger::default(),
        newest_lease: HashMap::new(),
        planned_at: start,
        workers,
        schedules: Vec::new(),
        policies: Vec::new(),
        report,
    };
    sim.trace(format!(
        "seed {} nodes {node_count} max skew {}s start {start}",
        sim.options.seed,
        max_skew.num_seconds()
    ));
    let outcome = sim.run_all();
    if let Err(violation) = outcome {
        sim.trace(format!("VIOLATION {violation}"));
        sim.report.violation = Some(violation);
    }
    sim.report.fired = sim.ledger.fired;
    sim.report.coalesced = sim.ledger.coalesced;
    sim.report.duplicates_refused = sim.ledger.duplicates_refused;
    sim.report.entries = sim.log.len() as u64;
    sim.report
}

impl Sim {
    fn trace(&mut self, line: String) {
        let line = format!("[{}] {line}", self.now.format("%m-%d %H:%M:%S"));
        self.report.trace.push(line);
    }

    fn run_all(&mut self) -> Result<(), Violation> {
        self.elect()?;
        self.seed_workload()?;
        for _ in 0..self.options.steps {
            self.step(true)?;
        }
        // Heal: every node up, no partition, clocks within the skew bound, and run on.
        for i in 0..self.nodes.len() {
            self.nodes[i].up = true;
        }
        self.isolated.clear();
        self.trace("heal all faults".to_owned());
        if self.leader.is_none() {
            self.elect()?;
        }
        for _ in 0..200 {
            self.step(false)?;
        }
        // Healed, every batch commits: everything owed by the last plan's clock is accounted.
        self.ledger.check_owed(&self.reference, self.planned_at)?;
        self.check_replicas(true)?;
        Ok(())
    }

    fn quorum(&self) -> bool {
        let reachable = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| n.up && !self.isolated.contains(i))
            .count();
        reachable * 2 > self.nodes.len()
    }

    fn clock(&self, node: usize) -> DateTime<Utc> {
        self.now + self.nodes[node].skew
    }

    /// Elects a leader among reachable nodes, settling the old leader's in-flight batches.
    fn elect(&mut self) -> Result<(), Violation> {
        let in_flight = std::mem::take(&mut self.in_flight);
        for batch in in_flight {
            if self.rng.chance(0.5) {
                self.trace(format!("in-flight batch of {} survives the old leader", batch.len()));
                self.commit(batch)?;
            } else {
                self.trace(format!("in-flight batch of {} lost with the old leader", batch.len()));
            }
        }
        self.leader = None;
        if !self.quorum() {
            self.trace("no quorum: no leader".to_owned());
            return Ok(());
        }
        let candidates: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].up && !self.isolated.contains(i))
            .collect();
        let leader = *self.rng.pick(&candidates);
        // Leader completeness: the new leader holds (and applies) every committed entry.
        self.catch_up(leader, usize::MAX);
        if self.options.bug == Some(Bug::ForgetMarksOnLeaderChange) {
            let mut data: CatalogData = self.nodes[leader].replica.data().clone();
            for entry in data.schedules.values_mut() {
                for lane in entry.lanes.values_mut() {
                    lane.mark = None;
                }
            }
            self.nodes[leader].replica = Catalog::from_data(data.clone());
            self.reference = Catalog::from_data(data);
        }
        self.leader = Some(leader);
        self.report.leader_changes += 1;
        self.trace(format!(
            "n{leader} leads (clock skew {}s)",
            self.nodes[leader].skew.num_seconds()
        ));
        Ok(())
    }

    fn catch_up(&mut self, node: usize, max_entries: usize) {
        let node = &mut self.nodes[node];
        let target = self.log.len().min(node.applied.saturating_add(max_entries));
        while node.applied < target {
            let index = node.applied as u64 + 1;
            for command in self.log[node.applied].clone() {
                node.replica.apply(index, command);
            }
            node.applied += 1;
        }
    }

    /// Appends a batch to the log and applies it to the reference, checking every answer.
    fn commit(&mut self, batch: Vec<Command>) -> Result<(), Violation> {
        self.log.push(batch.clone());
        let index = self.log.len() as u64;
        for command in batch {
            let cadence = match &command {
                Command::Fire(fire) => self
                    .reference
                    .schedule(&fire.schedule)
                    .and_then(|s| self.reference.cadence(s, fire.policy_type)),
                _ => None,
            };
            let token_of = match &command {
                Command::Renew { migration, token, .. }
                | Command::Report { migration, token, .. }
                | Command::Complete { migration, token, .. }
                | Command::ExpireLease { migration, token, .. } => {
                    Some((migration.clone(), *token))
                }
                _ => None,
            };
            let before =
                token_of.as_ref().and_then(|(key, _)| self.reference.migration(key).cloned());
            let mut response = self.reference.apply(index, command.clone());
            if self.options.bug == Some(Bug::HideCoalesced)
                && let Response::Fired { coalesced, .. } = &mut response
            {
                *coalesced = None;
            }
            let line = describe(&command, &response);
            self.trace(format!("#{index} {line}"));
            if let Command::Fire(fire) = &command {
                self.ledger.record(
                    fire,
                    &response,
                    cadence.as_ref(),
                    Some(self.now),
                    self.max_skew,
                )?;
            }
            if let Some((key, token)) = token_of {
                check_stale_token(before.as_ref(), self.reference.migration(&key), &response)?;
                if matches!(response, Response::Rejected(Rejection::StaleToken { .. })) {
                    // The worker learns its lease is gone and drops the job.
                    for worker in &mut self.workers {
                        if worker.holding == Some((key.clone(), token)) {
                            worker.holding = None;
                        }
                    }
                }
                let accepted = !matches!(response, Response::Rejected(_));
                if accepted && self.newest_lease.get(&key) != Some(&token) {
                    return Err(Violation {
                        invariant: "W-1",
                        detail: format!(
                            "Migration {key} accepted token {token}, the newest lease is {:?}",
                            self.newest_lease.get(&key)
                        ),
                    });
                }
            }
            if let (Response::Leased { migration, token, .. }, Command::Lease { worker, .. }) =
                (&response, &command)
            {
                let key = ObjectKey::new(
                    migration.metadata.namespace.clone().unwrap_or_default(),
                    migration.metadata.name.clone().unwrap_or_default(),
                );
                self.newest_lease.insert(key.clone(), *token);
                // The worker that asked gets it, unless it holds another (a re-proposed
                // request): then the lease is orphaned and lapses.
                if let Some(worker) =
                    self.workers.iter_mut().find(|w| &w.name == worker && w.holding.is_none())
                {
                    worker.holding = Some((key, *token));
                    worker.reported = 0;
                }
            }
        }
        Ok(())
    }

    /// Proposes a batch through the current leader: it commits, or stays in flight.
    fn propose(&mut self, batch: Vec<Command>, faulty: bool) -> Result<(), Violation> {
        let Some(leader) = self.leader else { return Ok(()) };
        if batch.is_empty() {
            return Ok(());
        }
        if faulty && self.rng.chance(0.1) {
            self.trace(format!("n{leader} batch of {} not yet committed", batch.len()));
            self.in_flight.push(batch);
            return Ok(());
        }
        if !self.recent.is_empty() && self.rng.chance(0.05) {
            // A client retry or a re-proposal: a recent batch again, with the clocks it had.
            let again = self.rng.pick(&self.recent.clone()).clone();
            self.trace(format!("re-proposing a batch of {}", again.len()));
            self.commit(again)?;
        }
        self.recent.push(batch.clone());
        if self.recent.len() > 20 {
            self.recent.remove(0);
        }
        self.commit(batch)?;
        self.catch_up(leader, usize::MAX);
        Ok(())
    }

    fn step(&mut self, faulty: bool) -> Result<(), Violation> {
        // Time moves on: mostly seconds to minutes, sometimes hours (an outage spans them).
        let delta = if faulty && self.rng.chance(0.02) {
            TimeDelta::seconds(self.rng.range(3_600, 86_400))
        } else {
            TimeDelta::seconds(self.rng.range(1, 600))
        };
        self.now += delta;
        if faulty {
            self.faults()?;
        }
        if self.leader.is_none()
            || self.leader.is_some_and(|l| !self.nodes[l].up || self.isolated.contains(&l))
        {
            self.elect()?;
        }
        let Some(leader) = self.leader else { return Ok(()) };
        if !self.quorum() {
            return Ok(());
        }
        // In-flight batches of this leader commit now, or later.
        if !self.in_flight.is_empty() && self.rng.chance(0.7) {
            for batch in std::mem::take(&mut self.in_flight) {
                self.commit(batch)?;
            }
            self.catch_up(leader, usize::MAX);
        }
        let clock = self.clock(leader);
        // Small fire limits while faulty; healed, a tick fires everything due, so that EO-2 can
        // be judged at the last tick's clock.
        let limit =
            if faulty { *self.rng.pick(&[usize::MAX, usize::MAX, 2, 16]) } else { usize::MAX };
        let planned = plan(&self.nodes[leader].replica, clock, limit);
        self.propose(planned, faulty)?;
        self.planned_at = clock;
        if faulty && self.rng.chance(0.05) {
            let command = self.workload_command(clock);
            if let Some(command) = command {
                self.propose(vec![command], faulty)?;
            }
        }
        self.work(clock, faulty)?;
        // Followers apply at their own pace.
        for i in 0..self.nodes.len() {
            if self.nodes[i].up && Some(i) != self.leader {
                let n = usize::try_from(self.rng.range(0, 8)).unwrap_or(0);
                self.catch_up(i, n);
            }
        }
        if self.rng.chance(0.02) {
            self.check_replicas(false)?;
        }
        Ok(())
    }

    fn faults(&mut self) -> Result<(), Violation> {
        let n = self.nodes.len();
        if self.rng.chance(0.02)
            && let Some(leader) = self.leader
        {
            self.nodes[leader].up = false;
            self.report.faults += 1;
            self.trace(format!("crash leader n{leader}"));
            self.elect()?;
        }
        if self.rng.chance(0.02) {
            let i =
                usize::try_from(self.rng.range(0, i64::try_from(n).unwrap_or(1) - 1)).unwrap_or(0);
            if self.nodes[i].up {
                self.nodes[i].up = false;
                self.report.faults += 1;
                self.trace(format!("crash n{i}"));
            }
        }
        if self.rng.chance(0.05) {
            let down: Vec<usize> = (0..n).filter(|i| !self.nodes[*i].up).collect();
            if !down.is_empty() {
                let i = *self.rng.pick(&down);
                // A restarted node replays its log from disk: its replica is rebuilt.
                let node = &mut self.nodes[i];
                node.up = true;
                node.replica = Catalog::default();
                node.applied = 0;
                self.catch_up(i, usize::MAX);
                self.trace(format!("restart n{i}"));
            }
        }
        if self.rng.chance(0.02) {
            self.isolated.clear();
            if self.rng.chance(0.5)
                && let Some(leader) = self.leader
            {
                self.isolated.insert(leader);
                self.trace(format!("partition: leader n{leader} isolated"));
            } else {
                let minority = (n - 1) / 2;
                let mut cut = BTreeSet::new();
                while cut.len() < minority.max(1) {
                    cut.insert(
                        usize::try_from(self.rng.range(0, i64::try_from(n).unwrap_or(1) - 1))
                            .unwrap_or(0),
                    );
                }
                self.trace(format!("partition: {cut:?} cut off"));
                self.isolated = cut;
            }
            self.report.faults += 1;
        }
        if self.rng.chance(0.03) && !self.isolated.is_empty() {
            self.isolated.clear();
            self.trace("partition healed".to_owned());
        }
        if self.rng.chance(0.03) {
            let i =
                usize::try_from(self.rng.range(0, i64::try_from(n).unwrap_or(1) - 1)).unwrap_or(0);
            let skew = self.max_skew.num_seconds();
            self.nodes[i].skew = TimeDelta::seconds(self.rng.range(-skew, skew));
            self.report.faults += 1;
            self.trace(format!("n{i} clock skew now {}s", self.nodes[i].skew.num_seconds()));
        }
        Ok(())
    }

    /// Workers ask for work, report, renew, finish, pause past their lease, or crash.
    fn work(&mut self, clock: DateTime<Utc>, faulty: bool) -> Result<(), Violation> {
        let mut batch = Vec::new();
        for i in 0..self.workers.len() {
            let worker = &mut self.workers[i];
            if let Some(until) = worker.paused_until {
                if self.now < until {
                    continue;
                }
                worker.paused_until = None;
            }
            match worker.holding.clone() {
                None => {
                    if self.rng.chance(0.6) {
                        batch.push(Command::Lease {
                            worker: worker.name.clone(),
                            duration_ms: 300_000,
                            at: clock,
                        });
                    }
                }
                Some((migration, token)) => {
                    let roll = self.rng.range(0, 99);
                    worker.reported += 1;
                    if roll < 3 {
                        // Pauses (a GC stall, a partition): the lease lapses, the token goes stale.
                        let pause = TimeDelta::seconds(self.rng.range(600, 3_600));
                        worker.paused_until = Some(self.now + pause);
                    } else if roll < 5 {
                        worker.holding = None; // crashed: forgets its lease
                    } else if roll < 50 || worker.reported < 2 {
                        let stage = if worker.reported < 3 {
                            MigrationStage::Volumes
                        } else {
                            MigrationStage::Applications
                        };
                        batch.push(Command::Renew {
                            migration: migration.clone(),
                            token,
                            duration_ms: 300_000,
                            at: clock,
                        });
                        batch.push(Command::Report {
                            migration,
                            token,
                            stage,
                            progress: Progress {
                                bytes_done: u64::from(worker.reported),
                                bytes_total: 10,
                                objects_done: 0,
                                objects_total: 5,
                                ..Progress::default()
                            },
                            at: clock,
                        });
                    } else {
                        let status = *self.rng.pick(&[
                            MigrationStatusType::Successful,
                            MigrationStatusType::Successful,
                            MigrationStatusType::PartialSuccess,
                            MigrationStatusType::Failed,
                        ]);
                        batch.push(Command::Complete {
                            migration,
                            token,
                            outcome: Box::new(Outcome {
                                status,
                                reason: String::new(),
                                progress: Progress::default(),
                                volumes: vec![],
                                resources: vec![],
                            }),
                            at: clock,
                        });
                        self.workers[i].holding = None;
                    }
                }
            }
        }
        self.propose(batch, faulty)
    }

    fn seed_workload(&mut self) -> Result<(), Violation> {
        let clock = self.leader.map_or(self.now, |l| self.clock(l));
        let mut batch = Vec::new();
        for i in 0..self.rng.range(2, 5) {
            let name = format!("p{i}");
            batch.push(self.policy_command(&name, clock));
            self.policies.push(name);
        }
        for i in 0..self.rng.range(3, 10) {
            let name = format!("s{i}");
            batch.push(self.schedule_command(&name, clock));
            self.schedules.push(name);
        }
        self.commit(batch)?;
        if let Some(leader) = self.leader {
            self.catch_up(leader, usize::MAX);
        }
        Ok(())
    }

    fn policy_command(&mut self, name: &str, at: DateTime<Utc>) -> Command {
        let zone = *self.rng.pick(&ZONES);
        let time =
            format!("{:02}:{:02}", self.rng.range(0, 23), *self.rng.pick(&[0, 15, 30, 45, 59]));
        let mut sections = Vec::new();
        if self.rng.chance(0.7) {
            let minutes = *self.rng.pick(&[1, 5, 7, 10, 15, 30, 45, 60, 90, 120]);
            sections.push(format!(
                "interval: {{intervalMinutes: {minutes}, retain: {}}}",
                self.rng.range(0, 5)
            ));
        }
        if self.rng.chance(0.4) {
            sections.push(format!("daily: {{time: \"{time}\"}}"));
        }
        if self.rng.chance(0.3) {
            let day = *self.rng.pick(&["Sun", "Mon", "thurs", "Friday", "sat"]);
            sections.push(format!("weekly: {{day: {day}, time: \"{time}\"}}"));
        }
        if self.rng.chance(0.3) || sections.is_empty() {
            sections
                .push(format!("monthly: {{date: {}, time: \"{time}\"}}", self.rng.range(1, 31)));
        }
        let yaml = format!(
            "apiVersion: stork.libopenstorage.org/v1alpha1\nkind: SchedulePolicy\nmetadata: {{name: {name}}}\npolicy:\n  timezone: {zone}\n  {}\n",
            sections.join("\n  ")
        );
        put(&yaml, at)
    }

    fn schedule_command(&mut self, name: &str, at: DateTime<Utc>) -> Command {
        let policy = self.rng.pick(&self.policies).clone();
        let yaml = format!(
            "apiVersion: stork.libopenstorage.org/v1alpha1\nkind: MigrationSchedule\nmetadata: {{name: {name}, namespace: app}}\nspec:\n  schedulePolicyName: {policy}\n  template: {{spec: {{clusterPair: remote, namespaces: [app]}}}}\n"
        );
        put(&yaml, at)
    }

    fn workload_command(&mut self, at: DateTime<Utc>) -> Option<Command> {
        let schedule = ObjectKey::new("app", self.rng.pick(&self.schedules).clone());
        Some(match self.rng.range(0, 5) {
            0 => Command::SetSuspend { schedule, suspend: true, at },
            1 => Command::SetSuspend { schedule, suspend: false, at },
            2 => {
                let name = self.rng.pick(&self.policies).clone();
                self.policy_command(&name, at)
            }
            3 => {
                let name = format!("s{}", self.schedules.len());
                self.schedules.push(name.clone());
                self.schedule_command(&name, at)
            }
            4 => Command::Delete { kind: Kind::MigrationSchedule, key: schedule, at },
            _ => {
                let name = schedule.name.clone();
                self.schedule_command(&name, at)
            }
        })
    }

    /// Checks that every replica equals the reference at the same index.
    fn check_replicas(&mut self, all: bool) -> Result<(), Violation> {
        if self.options.bug.is_some() {
            return Ok(()); // a planted bug edits state behind the log's back
        }
        for i in 0..self.nodes.len() {
            if all {
                self.catch_up(i, usize::MAX);
            }
            let node = &self.nodes[i];
            if node.applied == self.log.len() && node.replica.data() != self.reference.data() {
                return Err(Violation {
                    invariant: "determinism",
                    detail: format!(
                        "n{i} differs from the reference after {} entries",
                        self.log.len()
                    ),
                });
            }
        }
        Ok(())
    }
}

fn put(yaml: &str, at: DateTime<Utc>) -> Command {
    let document = avocet_types::parse_documents(yaml)
        .ok()
        .and_then(|documents| documents.into_iter().next())
        .and_then(Result::ok);
    let object = match document {
        Some(document) => document.object,
        None => unreachable_document(yaml),
    };
    match CatalogObject::from_stork(object, "app") {
        Ok(object) => Command::Put { object: Box::new(object), at },
        Err(kind) => Command::Delete { kind, key: ObjectKey::cluster("none"), at },
    }
}

/// The workload only writes valid documents; a broken one is a bug in the simulation itself.
fn unreachable_document(yaml: &str) -> StorkObject {
    panic!("the simulation wrote an invalid document:\n{yaml}")
}

fn describe(command: &Command, response: &Response) -> String {
    let mut line = String::new();
    let _ = match command {
        Command::Fire(fire) => {
            write!(line, "Fire {} {} {}", fire.schedule, fire.policy_type, fire.slot)
        }
        Command::Put { object, .. } => write!(line, "Put {object}"),
        Command::Delete { kind, key, .. } => write!(line, "Delete {kind:?} {key}"),
        Command::SetSuspend { schedule, suspend, .. } => {
            write!(line, "SetSuspend {schedule} {suspend}")
        }
        Command::Lease { worker, .. } => write!(line, "Lease {worker}"),
        Command::Renew { migration, token, .. } => write!(line, "Renew {migration} token {token}"),
        Command::Report { migration, token, stage, .. } => {
            write!(line, "Report {migration} token {token} {stage:?}")
        }
        Command::Complete { migration, token, outcome, .. } => {
            write!(line, "Complete {migration} token {token} {:?}", outcome.status)
        }
        Command::ExpireLease { migration, token, .. } => {
            write!(line, "ExpireLease {migration} token {token}")
        }
        Command::Timeout { migration, stage, .. } => write!(line, "Timeout {migration} {stage:?}"),
        Command::Cancel { migration, .. } => write!(line, "Cancel {migration}"),
        Command::Configure { .. } => write!(line, "Configure"),
        Command::PairHealth { pair, scheduler, storage, .. } => {
            write!(line, "PairHealth {pair} {scheduler:?} {storage:?}")
        }
        Command::PutCredential { credential, .. } => {
            write!(line, "PutCredential {}", credential.name)
        }
        Command::DeleteCredential { name, .. } => write!(line, "DeleteCredential {name}"),
    };
    let _ = match response {
        Response::Fired { coalesced, disposition, .. } => {
            write!(line, " -> Fired {disposition:?} coalesced {}", coalesced.map_or(0, |c| c.count))
        }
        Response::Leased { migration, token, .. } => {
            write!(
                line,
                " -> Leased {} token {token}",
                migration.metadata.name.clone().unwrap_or_default()
            )
        }
        Response::Rejected(Rejection::StaleToken { current, .. }) => {
            write!(line, " -> stale (current {current:?})")
        }
        Response::Rejected(rejection) => write!(line, " -> rejected: {rejection}"),
        other => write!(line, " -> {other:?}"),
    };
    if line.len() > 240 {
        let mut end = 240;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    line
}
