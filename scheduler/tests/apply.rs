//! The catalog's `apply` and the planner, driven as the leader drives them: exactly-once fires,
//! coalescing, single flight, leases with fencing tokens, deadlines, suspend, retention.

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, TimeDelta, Utc};

use avocet_scheduler::catalog::{Progress, Settings};
use avocet_scheduler::command::{Disposition, Outcome};
use avocet_scheduler::invariants::{FireLedger, check_stale_token};
use avocet_scheduler::planner::plan;
use avocet_scheduler::{Catalog, CatalogObject, Command, ObjectKey, Rejection, Response};
use avocet_types::Kind;
use avocet_types::migration::{MigrationStage, MigrationStatusType};
use avocet_types::policy::PolicyType;

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

/// Drives a catalog with increasing log indexes, as the replicated log would.
struct Harness {
    catalog: Catalog,
    index: u64,
    ledger: FireLedger,
}

impl Harness {
    fn new() -> Self {
        Harness { catalog: Catalog::default(), index: 0, ledger: FireLedger::default() }
    }

    fn apply(&mut self, command: Command) -> Response {
        self.index += 1;
        let (fire, cadence, before) = match &command {
            Command::Fire(fire) => {
                let cadence = self
                    .catalog
                    .schedule(&fire.schedule)
                    .and_then(|s| self.catalog.cadence(s, fire.policy_type));
                (Some(fire.clone()), cadence, None)
            }
            Command::Report { migration, .. }
            | Command::Complete { migration, .. }
            | Command::Renew { migration, .. }
            | Command::ExpireLease { migration, .. } => {
                (None, None, Some((migration.clone(), self.catalog.migration(migration).cloned())))
            }
            _ => (None, None, None),
        };
        let response = self.catalog.apply(self.index, command);
        if let Some(fire) = fire {
            self.ledger
                .record(&fire, &response, cadence.as_ref(), None, TimeDelta::zero())
                .unwrap();
        }
        if let Some((key, before)) = before {
            check_stale_token(before.as_ref(), self.catalog.migration(&key), &response).unwrap();
        }
        response
    }

    fn put(&mut self, yaml: &str, at: DateTime<Utc>) -> Response {
        let documents = avocet_types::parse_documents(yaml).unwrap();
        let mut last = Response::Done;
        for document in documents {
            let object = CatalogObject::from_stork(document.unwrap().object, "default").unwrap();
            last = self.apply(Command::Put { object: Box::new(object), at });
        }
        last
    }

    /// Runs the planner at `now` and applies what it proposes; returns the answers.
    fn tick(&mut self, now: DateTime<Utc>) -> Vec<Response> {
        plan(&self.catalog, now, usize::MAX)
            .into_iter()
            .map(|command| self.apply(command))
            .collect()
    }

    fn lease(&mut self, worker: &str, at: DateTime<Utc>) -> Option<(ObjectKey, u64)> {
        match self.apply(Command::Lease { worker: worker.to_owned(), duration_ms: 30_000, at }) {
            Response::Leased { migration, token, .. } => Some((
                ObjectKey::new(
                    migration.metadata.namespace.unwrap(),
                    migration.metadata.name.unwrap(),
                ),
                token,
            )),
            Response::NoWork => None,
            other => panic!("lease answered {other:?}"),
        }
    }

    fn complete(
        &mut self,
        key: &ObjectKey,
        token: u64,
        status: MigrationStatusType,
        at: DateTime<Utc>,
    ) -> Response {
        self.apply(Command::Complete {
            migration: key.clone(),
            token,
            outcome: Box::new(Outcome {
                status,
                reason: String::new(),
                progress: Progress::default(),
                volumes: vec![],
                resources: vec![],
            }),
            at,
        })
    }
}

const POLICY: &str = "
apiVersion: stork.libopenstorage.org/v1alpha1
kind: SchedulePolicy
metadata: {name: every-ten}
policy:
  interval: {intervalMinutes: 10, retain: 3}
---
apiVersion: stork.libopenstorage.org/v1alpha1
kind: SchedulePolicy
metadata: {name: nightly}
policy:
  timezone: Europe/Berlin
  daily: {time: 10:14PM}
";

fn schedule(name: &str, policy: &str) -> String {
    format!(
        "
apiVersion: stork.libopenstorage.org/v1alpha1
kind: MigrationSchedule
metadata: {{name: {name}, namespace: mysql, annotations: {{team: db}}}}
spec:
  schedulePolicyName: {policy}
  template:
    spec:
      clusterPair: remotecluster
      namespaces: [mysql]
"
    )
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("mysql", name)
}

#[test]
fn an_interval_schedule_fires_at_creation_then_every_interval_and_never_twice() {
    let mut h = Harness::new();
    let start = t("2026-03-08T10:00:00.400Z");
    h.put(POLICY, start);
    h.put(&schedule("s", "every-ten"), start);
    let answers = h.tick(start);
    let [
        Response::Fired { slot, coalesced: None, disposition: Disposition::Started { migration } },
    ] = answers.as_slice()
    else {
        panic!("{answers:?}")
    };
    assert_eq!(*slot, start, "anchored at the creation instant");
    assert_eq!(migration.name, "s-interval-2026-03-08-100000");
    let created = h.catalog.migration(migration).unwrap();
    let annotations = created.object.metadata.annotations.as_ref().unwrap();
    assert_eq!(annotations["stork.libopenstorage.org/migration-schedule-name"], "s");
    assert_eq!(annotations["team"], "db");
    assert_eq!(
        created.object.metadata.owner_references.as_ref().unwrap()[0].kind,
        "MigrationSchedule"
    );
    assert_eq!(created.object.spec.cluster_pair, "remotecluster");

    // The same fire proposed again (a new leader, a retried proposal) changes nothing.
    let again = Command::Fire(avocet_scheduler::Fire {
        schedule: key("s"),
        uid: h.catalog.schedule(&key("s")).unwrap().uid().to_owned(),
        policy_type: PolicyType::Interval,
        slot: *slot,
        at: start + TimeDelta::seconds(5),
    });
    let before = h.catalog.clone();
    assert!(matches!(h.apply(again), Response::Duplicate { .. }));
    assert_eq!(h.catalog.schedule(&key("s")), before.schedule(&key("s")));
    assert!(h.tick(start + TimeDelta::minutes(9)).is_empty(), "nothing owed before the next slot");
}

#[test]
fn a_slot_in_the_future_or_off_the_cadence_is_refused() {
    let mut h = Harness::new();
    let start = t("2026-03-08T10:00:00Z");
    h.put(POLICY, start);
    h.put(&schedule("s", "every-ten"), start);
    let uid = h.catalog.schedule(&key("s")).unwrap().uid().to_owned();
    let fire = |slot, at| {
        Command::Fire(avocet_scheduler::Fire {
            schedule: key("s"),
            uid: uid.clone(),
            policy_type: PolicyType::Interval,
            slot,
            at,
        })
    };
    let early = h.apply(fire(t("2026-03-08T10:10:00Z"), t("2026-03-08T10:09:59Z")));
    assert!(matches!(early, Response::Rejected(Rejection::NotDue { .. })), "{early:?}");
    let off = h.apply(fire(t("2026-03-08T10:05:00Z"), t("2026-03-08T10:06:00Z")));
    assert!(matches!(off, Response::Rejected(Rejection::NotASlot { .. })), "{off:?}");
    let daily = h.apply(Command::Fire(avocet_scheduler::Fire {
        schedule: key("s"),
        uid: uid.clone(),
        policy_type: PolicyType::Daily,
        slot: start,
        at: start,
    }));
    assert!(matches!(daily, Response::Rejected(Rejection::NoSuchLane { .. })), "{daily:?}");
    let stale = h.apply(Command::Fire(avocet_scheduler::Fire {
        schedule: key("s"),
        uid: "someone-else".to_owned(),
        policy_type: PolicyType::Interval,
        slot: start,
        at: start,
    }));
    assert!(matches!(stale, Response::Rejected(Rejection::StaleSchedule { .. })), "{stale:?}");
    assert!(h.catalog.migrations().next().is_none());
}

#[test]
fn slots_missed_during_an_outage_coalesce_into_one_late_fire() {
    let mut h = Harness::new();
    let start = t("2026-03-08T10:00:00Z");
    h.put(POLICY, start);
    h.put(&schedule("s", "every-ten"), start);
    h.tick(start);
    let (first, token) = h.lease("w1", start).unwrap();
    h.complete(&first, token, MigrationStatusType::Successful, start + TimeDelta::minutes(1));
    // No leader from 10:05 to 10:47: slots 10:10 … 10:40 were never fired.
    let answers = h.tick(t("2026-03-08T10:47:00Z"));
    let [
        Response::Fired {
            slot,
            coalesced: Some(coalesced),
            disposition: Disposition::Started { .. },
        },
    ] = answers.as_slice()
    else {
        panic!("{answers:?}")
    };
    assert_eq!(*slot, t("2026-03-08T10:40:00Z"));
    assert_eq!(
        (coalesced.count, coalesced.first, coalesced.last),
        (3, t("2026-03-08T10:10:00Z"), t("2026-03-08T10:30:00Z"))
    );
    assert_eq!(h.ledger.coalesced, 3);
    let events: Vec<_> =
        h.catalog.events().map(|e| (e.reason.as_str(), e.message.as_str())).collect();
    assert!(
        events.iter().any(|(reason, message)| *reason == "Coalesced"
            && message.contains("3 missed Interval slot(s)")
            && message.contains("s-interval-2026-03-08-104000")),
        "{events:#?}"
    );
    h.ledger.check_owed(&h.catalog, t("2026-03-08T10:47:00Z")).unwrap();
}

#[test]
fn one_migration_runs_per_schedule_one_slot_waits_and_later_ones_join_it() {
    let mut h = Harness::new();
    let start = t("2026-03-08T10:00:00Z");
    h.put(POLICY, start);
    h.put(&schedule("s", "every-ten"), start);
    h.tick(start);
    let (running, token) = h.lease("w1", start).unwrap();
    h.apply(Command::Renew {
        migration: running.clone(),
        token,
        duration_ms: 3_600_000,
        at: start,
    });
    let buffered = h.tick(t("2026-03-08T10:10:00Z"));
    assert!(
        matches!(buffered[0], Response::Fired { disposition: Disposition::Buffered { .. }, .. }),
        "{buffered:?}"
    );
    let absorbed = h.tick(t("2026-03-08T10:20:00Z"));
    assert!(
        matches!(absorbed[0], Response::Fired { disposition: Disposition::Absorbed { .. }, .. }),
        "{absorbed:?}"
    );
    assert_eq!(h.catalog.migrations().count(), 1, "still one migration");
    assert!(h.lease("w2", t("2026-03-08T10:20:01Z")).is_none(), "nothing else to run");
    h.complete(&running, token, MigrationStatusType::Successful, t("2026-03-08T10:21:00Z"));
    let (next, _) = h.lease("w2", t("2026-03-08T10:21:01Z")).unwrap();
    assert_eq!(
        next.name, "s-interval-2026-03-08-101000",
        "the buffered slot starts, named for its slot"
    );
    let origin = h.catalog.migration(&next).unwrap().origin.clone().unwrap();
    assert_eq!(origin.coalesced.len(), 1);
    assert_eq!(origin.coalesced[0].last, t("2026-03-08T10:20:00Z"));
    h.ledger.check_owed(&h.catalog, t("2026-03-08T10:21:01Z")).unwrap();
}

#[test]
fn a_stale_fencing_token_changes_nothing_and_an_expired_lease_requeues() {
    let mut h = Harness::new();
    let start = t("2026-03-08T10:00:00Z");
    h.put(POLICY, start);
    h.put(&schedule("s", "every-ten"), start);
    h.tick(start);
    let (migration, old) = h.lease("w1", start).unwrap();
    // The worker goes quiet; the planner takes the lease back after it lapses.
    assert!(h.tick(start + TimeDelta::seconds(29)).is_empty());
    h.tick(start + TimeDelta::seconds(31));
    let entry = h.catalog.migration(&migration).unwrap();
    assert_eq!(entry.object.status.as_ref().unwrap().status, MigrationStatusType::Pending);
    assert!(entry.lease.is_none() && entry.queued.is_some());
    assert!(h.catalog.events().any(|e| e.reason == "LeaseExpired"));
    let (again, new) = h.lease("w2", start + TimeDelta::seconds(32)).unwrap();
    assert_eq!(again, migration);
    assert!(new > old);
    // The first worker wakes up and reports: refused, nothing changes (checked by the harness).
    let late = h.complete(
        &migration,
        old,
        MigrationStatusType::Successful,
        start + TimeDelta::seconds(33),
    );
    assert!(
        matches!(late, Response::Rejected(Rejection::StaleToken { current: Some(c), .. }) if c == new),
        "{late:?}"
    );
    let report = h.apply(Command::Report {
        migration: migration.clone(),
        token: new,
        stage: MigrationStage::Volumes,
        progress: Progress {
            bytes_done: 10,
            bytes_total: 100,
            objects_done: 0,
            objects_total: 4,
            bytes_per_second: 2048,
            eta_seconds: 3,
        },
        at: start + TimeDelta::seconds(34),
    });
    assert_eq!(report, Response::Done);
    assert_eq!(h.catalog.migration(&migration).unwrap().stage(), MigrationStage::Volumes);
    let annotation = |h: &Harness| {
        let entry = h.catalog.migration(&migration).unwrap();
        entry
            .object
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .get("avocet.dev/progress")
            .cloned()
    };
    assert_eq!(annotation(&h).as_deref(), Some("Volumes: 10 B of 100 B, 2.0 KiB/s, about 3s left"));
    assert_eq!(
        h.complete(
            &migration,
            new,
            MigrationStatusType::Successful,
            start + TimeDelta::seconds(40)
        ),
        Response::Done
    );
    assert_eq!(annotation(&h), None, "an ended migration has no progress line");
    let status = h.catalog.schedule(&key("s")).unwrap().object.status.clone().unwrap();
    assert_eq!(status.items[&PolicyType::Interval][0].status, MigrationStatusType::Successful);
    assert!(h.catalog.events().any(|e| e.message
        == "Scheduled migration (s-interval-2026-03-08-100000) completed successfully"));
}

#[test]
fn a_migration_whose_worker_keeps_dying_fails_after_its_attempts() {
    let mut h = Harness::new();
    let start = t("2026-03-08T10:00:00Z");
    h.put(POLICY, start);
    h.put(&schedule("s", "every-ten"), start);
    h.tick(start);
    let mut now = start;
    for _ in 0..3 {
        h.lease("w", now).unwrap();
        now += TimeDelta::seconds(31);
        h.tick(now);
    }
    let entry = h.catalog.migrations().next().unwrap().1;
    let status = entry.object.status.as_ref().unwrap();
    assert_eq!(status.status, MigrationStatusType::Failed);
    assert_eq!(status.stage, MigrationStage::Final);
    assert!(
        h.catalog
            .events()
            .any(|e| e.reason == "Failed" && e.message.contains("gave up after 3 attempt(s)"))
    );
    // The schedule is free again: the next slot starts a migration at once.
    let answers = h.tick(t("2026-03-08T10:10:00Z"));
    assert!(
        matches!(answers[0], Response::Fired { disposition: Disposition::Started { .. }, .. }),
        "{answers:?}"
    );
}

#[test]
fn a_stuck_stage_is_failed_at_its_deadline_and_the_buffered_slot_starts() {
    let mut h = Harness::new();
    let start = t("2026-03-08T10:00:00Z");
    h.apply(Command::Configure {
        settings: Settings { stage_deadline_seconds: 15 * 60, ..Settings::default() },
        at: start,
    });
    h.put(POLICY, start);
    h.put(&schedule("s", "every-ten"), start);
    h.tick(start);
    let (migration, token) = h.lease("w1", start).unwrap();
    let mut now = start;
    // The worker renews but never leaves the Volumes stage.
    h.apply(Command::Report {
        migration: migration.clone(),
        token,
        stage: MigrationStage::Volumes,
        progress: Progress::default(),
        at: now,
    });
    while now < t("2026-03-08T10:16:00Z") {
        now += TimeDelta::seconds(20);
        h.apply(Command::Renew {
            migration: migration.clone(),
            token,
            duration_ms: 30_000,
            at: now,
        });
        h.tick(now);
    }
    let entry = h.catalog.migration(&migration).unwrap();
    assert_eq!(entry.object.status.as_ref().unwrap().status, MigrationStatusType::Failed);
    assert!(
        h.catalog.events().any(|e| e
            .message
            .contains("stage Volumes did not finish within the stage deadline of 900 s")),
        "{:#?}",
        h.catalog.events().collect::<Vec<_>>()
    );
    // 10:10 fired while it ran and was buffered; it started when the stuck one failed.
    let running = h.catalog.schedule(&key("s")).unwrap().running.clone().unwrap();
    assert_eq!(running.name, "s-interval-2026-03-08-101000");
}

#[test]
fn a_suspended_schedule_fires_nothing_and_owes_nothing_for_the_pause() {
    let mut h = Harness::new();
    let start = t("2026-03-08T10:00:00Z");
    h.put(POLICY, start);
    h.put(&schedule("s", "every-ten"), start);
    h.tick(start);
    let (first, token) = h.lease("w", start).unwrap();
    h.complete(&first, token, MigrationStatusType::Successful, start);
    h.apply(Command::SetSuspend {
        schedule: key("s"),
        suspend: true,
        at: t("2026-03-08T10:05:00Z"),
    });
    assert!(h.tick(t("2026-03-08T11:00:00Z")).is_empty());
    h.apply(Command::SetSuspend {
        schedule: key("s"),
        suspend: false,
        at: t("2026-03-08T11:05:00Z"),
    });
    assert!(h.tick(t("2026-03-08T11:09:00Z")).is_empty(), "the pause's slots are not owed");
    let answers = h.tick(t("2026-03-08T11:10:00Z"));
    assert!(matches!(answers[0], Response::Fired { coalesced: None, .. }), "{answers:?}");
    let reasons: Vec<_> = h.catalog.events().map(|e| e.reason.clone()).collect();
    assert!(reasons.contains(&"Suspended".to_owned()) && reasons.contains(&"Resumed".to_owned()));
    h.ledger.check_owed(&h.catalog, t("2026-03-08T11:10:00Z")).unwrap();
}

#[test]
fn a_namespaced_policy_wins_over_a_schedule_policy_of_the_same_name() {
    let mut h = Harness::new();
    let start = t("2026-03-08T10:00:00Z");
    h.put(POLICY, start);
    h.put(&schedule("s", "nightly"), start);
    h.put(
        "
apiVersion: stork.libopenstorage.org/v1alpha1
kind: NamespacedSchedulePolicy
metadata: {name: nightly, namespace: mysql}
policy:
  weekly: {day: Thu, time: 01:15am}
",
        start,
    );
    let entry = h.catalog.schedule(&key("s")).unwrap();
    let active: Vec<_> =
        entry.lanes.iter().filter(|(_, lane)| lane.active).map(|(t, _)| *t).collect();
    assert_eq!(active, [PolicyType::Weekly], "the Daily lane is kept, inactive, with its mark");
    // Thursday 2026-03-12 01:15 UTC (no timezone on the namespaced policy: the default, UTC).
    assert_eq!(h.catalog.next_due(), Some(t("2026-03-12T01:15:00Z")));
    let refused = h.apply(Command::Delete {
        kind: Kind::NamespacedSchedulePolicy,
        key: key("nightly"),
        at: start,
    });
    assert_eq!(
        refused,
        Response::Deleted { key: key("nightly"), migrations: 0 },
        "the SchedulePolicy takes over"
    );
    // Back on the cluster policy: daily 22:14 in Berlin (21:14 UTC in March).
    assert_eq!(h.catalog.next_due(), Some(t("2026-03-08T21:14:00Z")));
    let refused = h.apply(Command::Delete {
        kind: Kind::SchedulePolicy,
        key: ObjectKey::cluster("nightly"),
        at: start,
    });
    assert!(matches!(refused, Response::Rejected(Rejection::InUse { .. })), "{refused:?}");
    let answers = h.tick(t("2026-03-08T21:14:00Z"));
    let [Response::Fired { disposition: Disposition::Started { migration }, .. }] =
        answers.as_slice()
    else {
        panic!("{answers:?}")
    };
    assert_eq!(migration.name, "s-daily-2026-03-08-221400", "named in the policy's zone");
}

#[test]
fn history_keeps_the_last_success_and_newer_capped_by_retain() {
    let mut h = Harness::new();
    let mut now = t("2026-03-08T10:00:00Z");
    h.put(POLICY, now);
    h.put(&schedule("s", "every-ten"), now);
    let results = [
        MigrationStatusType::Successful,
        MigrationStatusType::Failed,
        MigrationStatusType::Successful,
        MigrationStatusType::Failed,
        MigrationStatusType::Failed,
        MigrationStatusType::Failed,
    ];
    for result in results {
        h.tick(now);
        let (migration, token) = h.lease("w", now).unwrap();
        h.complete(&migration, token, result, now + TimeDelta::minutes(1));
        now += TimeDelta::minutes(10);
    }
    let items = &h.catalog.schedule(&key("s")).unwrap().object.status.clone().unwrap().items
        [&PolicyType::Interval];
    let kept: Vec<_> = items.iter().map(|item| (item.name.as_str(), item.status)).collect();
    assert_eq!(
        kept,
        [
            ("s-interval-2026-03-08-102000", MigrationStatusType::Successful),
            ("s-interval-2026-03-08-104000", MigrationStatusType::Failed),
            ("s-interval-2026-03-08-105000", MigrationStatusType::Failed),
        ],
        "retain 3: the last success and the two newest failures"
    );
    assert_eq!(h.catalog.migrations().count(), 3, "pruned Migrations are deleted");
}

#[test]
fn a_snapshot_round_trip_keeps_state_and_rebuilds_the_due_index() {
    let mut h = Harness::new();
    let start = t("2026-03-08T10:00:00Z");
    h.put(POLICY, start);
    h.put(&schedule("a", "every-ten"), start);
    h.put(&schedule("b", "nightly"), start);
    h.tick(start);
    h.lease("w", start).unwrap();
    let json = serde_json::to_string(&h.catalog).unwrap();
    let restored: Catalog = serde_json::from_str(&json).unwrap();
    assert_eq!(restored, h.catalog);
    let later = t("2026-03-09T00:00:00Z");
    assert_eq!(plan(&restored, later, usize::MAX), plan(&h.catalog, later, usize::MAX));
    assert_eq!(restored.next_due(), h.catalog.next_due());
}

#[test]
fn deleting_a_schedule_deletes_its_migrations_and_a_one_off_migration_queues() {
    let mut h = Harness::new();
    let start = t("2026-03-08T10:00:00Z");
    h.put(POLICY, start);
    h.put(&schedule("s", "every-ten"), start);
    h.tick(start);
    let deleted =
        h.apply(Command::Delete { kind: Kind::MigrationSchedule, key: key("s"), at: start });
    assert_eq!(deleted, Response::Deleted { key: key("s"), migrations: 1 });
    assert!(h.catalog.migrations().next().is_none() && h.catalog.next_due().is_none());
    let put = h.put(
        "
apiVersion: stork.libopenstorage.org/v1alpha1
kind: Migration
metadata: {name: once, namespace: mysql}
spec: {clusterPair: remotecluster, namespaces: [mysql]}
",
        start,
    );
    assert!(matches!(put, Response::Put { created: true, .. }));
    let (migration, _) = h.lease("w", start).unwrap();
    assert_eq!(migration, key("once"));
    let cancel = h.apply(Command::Cancel { migration: key("once"), at: start });
    assert_eq!(cancel, Response::Done);
    let again = h.apply(Command::Cancel { migration: key("once"), at: start });
    assert!(matches!(again, Response::Rejected(Rejection::Ended { .. })));
}

#[test]
fn rules_and_application_registrations_are_kept_updated_and_deleted() {
    let mut h = Harness::new();
    let start = t("2026-03-08T10:00:00Z");
    let rule = "
apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata: {name: mysql-pre, namespace: mysql}
rules:
- podSelector: {app: mysql}
  actions:
  - {type: command, value: mysql -e 'flush tables'}
";
    let registration = "
apiVersion: stork.libopenstorage.org/v1alpha1
kind: ApplicationRegistration
metadata: {name: cassandra}
resources:
- {group: cassandra.datastax.com, version: v1beta1, kind: CassandraDatacenter, keepStatus: false,
   suspendOptions: {path: spec.stopped, type: bool}}
";
    assert!(matches!(h.put(rule, start), Response::Put { created: true, .. }));
    assert!(matches!(h.put(rule, start), Response::Put { created: false, changed: false, .. }));
    assert!(matches!(h.put(registration, start), Response::Put { created: true, .. }));
    let kept = h.catalog.rule(&key("mysql-pre")).unwrap();
    assert_eq!(kept.metadata.uid.as_deref().map(str::len), Some(36));
    assert_eq!(
        h.catalog.registration("cassandra").unwrap().resources[0].kind,
        "CassandraDatacenter"
    );
    let deleted = h.apply(Command::Delete { kind: Kind::Rule, key: key("mysql-pre"), at: start });
    assert!(matches!(deleted, Response::Deleted { .. }));
    let again = h.apply(Command::Delete { kind: Kind::Rule, key: key("mysql-pre"), at: start });
    assert!(matches!(again, Response::Rejected(Rejection::NotFound { .. })), "{again:?}");
    let json = serde_json::to_string(&h.catalog).unwrap();
    assert_eq!(serde_json::from_str::<Catalog>(&json).unwrap(), h.catalog);
}

#[test]
fn a_policy_type_removed_and_added_back_never_fires_a_slot_twice() {
    let mut h = Harness::new();
    let start = t("2026-03-08T10:00:00Z");
    h.put(POLICY, start);
    h.put(&schedule("s", "every-ten"), start);
    let fired = h.tick(start);
    assert!(matches!(fired[0], Response::Fired { .. }));
    let daily_only = "
apiVersion: stork.libopenstorage.org/v1alpha1
kind: SchedulePolicy
metadata: {name: every-ten}
policy: {daily: {time: 10:14PM}}
";
    // Remove the interval section and add it back within the same instant: slot 10:00 stays
    // fired (the lane keeps its mark while inactive).
    h.put(daily_only, start);
    h.put(POLICY, start);
    let again = h.tick(start);
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn refused_commands_leave_the_clock_alone_and_leases_are_bounded() {
    let mut h = Harness::new();
    let start = t("2026-03-08T10:00:00Z");
    h.put(POLICY, start);
    h.put(&schedule("s", "every-ten"), start);
    h.tick(start);
    let before = h.catalog.data().clock;
    let far = t("2030-01-01T00:00:00Z");
    let refused = h.apply(Command::Delete { kind: Kind::Migration, key: key("nope"), at: far });
    assert!(matches!(refused, Response::Rejected(_)));
    assert_eq!(h.catalog.data().clock, before, "a refusal does not move the group's clock");
    let huge = h.apply(Command::Lease {
        worker: "w".into(),
        duration_ms: 10_000_000_000_000_000,
        at: start,
    });
    assert!(matches!(huge, Response::Rejected(Rejection::Invalid { .. })), "{huge:?}");
    assert!(h.lease("w", start).is_some(), "the migration is still queued");
}

#[test]
fn interval_names_use_the_policys_zone_and_a_repeated_autumn_hour_gets_a_suffix() {
    let mut h = Harness::new();
    let start = t("2026-11-01T04:10:00Z"); // 00:10 in New York, the night clocks go back
    h.put(
        "
apiVersion: stork.libopenstorage.org/v1alpha1
kind: SchedulePolicy
metadata: {name: hourly-ny}
policy: {timezone: America/New_York, interval: {intervalMinutes: 60}}
",
        start,
    );
    h.put(&schedule("s", "hourly-ny"), start);
    let mut names = Vec::new();
    for hour in 0..3 {
        let now = start + TimeDelta::hours(hour);
        for answer in h.tick(now) {
            if let Response::Fired { disposition: Disposition::Started { migration }, .. } = answer
            {
                names.push(migration.name.clone());
                let token = h.lease("w", now).unwrap().1;
                h.complete(&migration, token, MigrationStatusType::Successful, now);
            }
        }
    }
    assert_eq!(
        names,
        [
            "s-interval-2026-11-01-001000",
            "s-interval-2026-11-01-011000",
            "s-interval-2026-11-01-011000-2"
        ],
        "01:10 EDT and 01:10 EST share a local label"
    );
}

#[test]
fn a_policy_edit_that_drops_an_owed_slot_says_so() {
    let mut h = Harness::new();
    let start = t("2026-03-08T10:00:00Z");
    h.put(POLICY, start);
    h.put(&schedule("s", "every-ten"), start);
    h.tick(start);
    // No leader ticks at 10:10; at 10:15 the interval changes to 60 minutes.
    let hourly = "
apiVersion: stork.libopenstorage.org/v1alpha1
kind: SchedulePolicy
metadata: {name: every-ten}
policy: {interval: {intervalMinutes: 60}}
";
    h.put(hourly, t("2026-03-08T10:15:00Z"));
    let missed: Vec<_> = h.catalog.events().filter(|e| e.reason == "Missed").collect();
    assert_eq!(missed.len(), 1, "{missed:?}");
    assert!(
        missed[0]
            .message
            .starts_with("Interval slots owed from 2026-03-08T10:10:00.000Z were not fired")
    );
    // An edit with nothing owed says nothing.
    h.put(POLICY, t("2026-03-08T10:16:00Z"));
    assert_eq!(h.catalog.events().filter(|e| e.reason == "Missed").count(), 1);
}

#[test]
fn pair_health_changes_status_with_one_event_per_change_and_repeats_are_quiet() {
    use avocet_types::clusterpair::ClusterPairStatusType::{Error, NotProvided, Ready};
    let mut h = Harness::new();
    let start = t("2026-03-08T10:00:00Z");
    let pair = "
apiVersion: stork.libopenstorage.org/v1alpha1
kind: ClusterPair
metadata: {name: remote, namespace: mysql}
spec:
  config:
    clusters: {dest: {server: 'https://10.0.0.1:6443'}}
    users: {admin: {token: t}}
    contexts: {dest-admin: {cluster: dest, user: admin}}
    current-context: dest-admin
";
    assert!(matches!(h.put(pair, start), Response::Put { created: true, .. }));
    let health = |scheduler, storage, reason: &str| Command::PairHealth {
        pair: key("remote"),
        generation: 1,
        scheduler,
        storage,
        reason: reason.to_owned(),
        remote_storage_id: String::new(),
        object_store: String::new(),
        at: start,
    };
    assert_eq!(h.apply(health(Ready, NotProvided, "")), Response::PairHealth { changed: true });
    assert_eq!(h.apply(health(Ready, NotProvided, "")), Response::PairHealth { changed: false });
    let broken =
        h.apply(health(Error, NotProvided, "the destination API server does not answer: refused"));
    assert_eq!(broken, Response::PairHealth { changed: true });
    let status = h.catalog.cluster_pair(&key("remote")).unwrap().status.clone().unwrap();
    assert_eq!((status.scheduler_status, status.storage_status), (Error, NotProvided));
    let events: Vec<(String, String)> = h
        .catalog
        .events()
        .filter(|e| e.kind == "ClusterPair")
        .map(|e| (e.reason.clone(), e.message.clone()))
        .collect();
    assert_eq!(
        events,
        [
            ("Ready".to_owned(), "Scheduler successfully paired".to_owned()),
            (
                "NotProvided".to_owned(),
                "Skipping storage pairing since no storage options provided".to_owned()
            ),
            ("Error".to_owned(), "the destination API server does not answer: refused".to_owned()),
        ]
    );
    // Re-applying the pair keeps the checked status.
    assert!(matches!(h.put(pair, start), Response::Put { changed: false, .. }));
    assert!(h.catalog.cluster_pair(&key("remote")).unwrap().status.is_some());
    let missing = h.apply(Command::PairHealth {
        pair: key("nope"),
        generation: 1,
        scheduler: Ready,
        storage: Ready,
        reason: String::new(),
        remote_storage_id: String::new(),
        object_store: String::new(),
        at: start,
    });
    assert!(matches!(missing, Response::Rejected(Rejection::NotFound { .. })));
    // A check of an older spec of the pair is dropped.
    let stale = h.apply(Command::PairHealth {
        pair: key("remote"),
        generation: 7,
        scheduler: Ready,
        storage: Ready,
        reason: String::new(),
        remote_storage_id: String::new(),
        object_store: String::new(),
        at: start,
    });
    assert_eq!(stale, Response::PairHealth { changed: false });
    assert_eq!(
        h.catalog.cluster_pair(&key("remote")).unwrap().status.clone().unwrap().scheduler_status,
        Error
    );
}

#[test]
fn credentials_are_stored_once_by_name_and_deleted_by_name() {
    use avocet_scheduler::catalog::Credential;
    let mut h = Harness::new();
    let at = t("2026-12-06T00:00:00Z");
    let credential = Credential {
        name: "clusterPair_4f1c".to_owned(),
        provider: "s3".to_owned(),
        bucket: String::new(),
        endpoint: "http://127.0.0.1:9000".to_owned(),
        region: "us-east-1".to_owned(),
        storage_class: "STANDARD".to_owned(),
        disable_ssl: true,
        sealed: "c2VhbGVk".to_owned(),
        created_at: DateTime::<Utc>::UNIX_EPOCH,
    };
    let put = || Command::PutCredential { credential: Box::new(credential.clone()), at };
    assert_eq!(h.apply(put()), Response::CredentialStored);
    assert_eq!(
        h.apply(put()),
        Response::Rejected(Rejection::CredentialExists { name: "clusterPair_4f1c".to_owned() })
    );
    let stored = h.catalog.credential("clusterPair_4f1c").unwrap();
    assert_eq!((stored.created_at, stored.sealed.as_str()), (at, "c2VhbGVk"));
    let delete = || Command::DeleteCredential { name: "clusterPair_4f1c".to_owned(), at };
    assert_eq!(h.apply(delete()), Response::CredentialDeleted);
    assert_eq!(
        h.apply(delete()),
        Response::Rejected(Rejection::NoCredential { name: "clusterPair_4f1c".to_owned() })
    );
    assert_eq!(h.catalog.credentials().count(), 0);
}
