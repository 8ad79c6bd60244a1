//! The deterministic `apply`: how each committed command changes the catalog.
//!
//! Rules that make a fire happen exactly once (DESIGN.md §3):
//! - A lane's mark is the highest slot it fired or coalesced; a `Fire` at or below the mark is a
//!   [`Response::Duplicate`] and changes nothing, whichever leader proposed it and however often.
//! - A `Fire` must name a real slot of the lane's cadence, owed (at or after the lane's
//!   `owed_from`) and due by the proposer's clock (T-1); owed slots between the mark and it
//!   are recorded as coalesced into it, so nothing owed is ever silently dropped.
//! - One migration per schedule runs; a slot fired meanwhile is buffered, later ones are
//!   absorbed into the buffered one, which starts when the running one ends.
//! - Work commands carry the lease's fencing token (the log index of the lease entry); a stale
//!   token changes nothing (W-1).
//!
//! `apply` reads no clock: `at` comes from the proposing leader. Record timestamps use the
//! highest `at` seen so far, so they never go backwards; due and expiry checks use the
//! command's own `at`.

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use avocet_types::Kind;
use avocet_types::clusterpair::ClusterPairStatusType;
use avocet_types::meta::API_GROUP_VERSION;
use avocet_types::migration::{
    Migration, MigrationStage, MigrationStatus, MigrationStatusType, MigrationSummary,
};
use avocet_types::policy::PolicyType;
use avocet_types::schedule::{MigrationScheduleStatus, ScheduledMigrationStatus};
use avocet_types::time::meta_time;

use crate::catalog::{
    BufferedFire, Catalog, CatalogData, CoalescedSlots, Event, EventType, FireOrigin, Lane, Lease,
    MigrationEntry, ObjectKey, PolicyEntry, PolicyObject, Progress, ScheduleEntry,
};
use crate::command::{CatalogObject, Command, Disposition, Fire, Outcome, Rejection, Response};
use crate::timing::Cadence;

/// Names the annotation on scheduled migrations that names their schedule (Stork's key).
pub const SCHEDULE_NAME_ANNOTATION: &str = "stork.libopenstorage.org/migration-schedule-name";

/// Names the annotation that gives a scheduled migration's due slot (RFC 3339, UTC).
pub const DUE_SLOT_ANNOTATION: &str = "avocet.dev/due-slot";

/// Names the annotation that gives when the leader fired a scheduled migration's slot.
pub const FIRED_AT_ANNOTATION: &str = "avocet.dev/fired-at";

/// Names the annotation that counts the missed slots coalesced into a scheduled migration.
pub const COALESCED_ANNOTATION: &str = "avocet.dev/coalesced-slots";
/// Annotation on a running migration: its last progress report, for people
/// (`Volumes: 512.0 MiB of 1.0 GiB, 120.0 MiB/s, about 4s left`); removed when it ends.
pub const PROGRESS_ANNOTATION: &str = "avocet.dev/progress";

/// Bounds the slots counted one by one when coalescing (wall-clock rules; intervals are
/// counted arithmetically): about 270 years of daily slots. Past it the count and the range's
/// end stop at the bound.
const COALESCE_COUNT_MAX: u64 = 100_000;

/// Gives the shortest lease `apply` grants, so that a lease never lapses in its own entry.
const LEASE_MIN_MS: u64 = 1_000;

/// Gives the longest lease `apply` grants: a day of the group's clock.
pub const LEASE_MAX_MS: u64 = 24 * 60 * 60 * 1_000;

fn check_lease_ms(duration_ms: u64) -> Result<(), Rejection> {
    if (LEASE_MIN_MS..=LEASE_MAX_MS).contains(&duration_ms) {
        Ok(())
    } else {
        Err(Rejection::Invalid {
            message: format!(
                "duration_ms: {duration_ms} is not a lease length from {LEASE_MIN_MS} to {LEASE_MAX_MS} ms"
            ),
        })
    }
}

impl Catalog {
    /// Applies a committed command at log index `index` and answers it.
    pub fn apply(&mut self, index: u64, command: Command) -> Response {
        debug_assert!(index >= self.data.last_index, "indexes never decrease");
        self.data.last_index = index;
        let at = command.at();
        let now = match self.data.clock {
            Some(clock) if clock > at => clock,
            _ => at,
        };
        let result = match command {
            Command::Configure { settings, .. } => self.configure(settings, now),
            Command::Put { object, .. } => self.put(index, *object, now),
            Command::Delete { kind, key, .. } => self.delete(kind, &key, now),
            Command::PutCredential { credential, .. } => {
                match self.data.credentials.entry(credential.name.clone()) {
                    std::collections::btree_map::Entry::Occupied(taken) => {
                        Err(Rejection::CredentialExists { name: taken.key().clone() })
                    }
                    std::collections::btree_map::Entry::Vacant(free) => {
                        let mut credential = *credential;
                        credential.created_at = now;
                        free.insert(credential);
                        Ok(Response::CredentialStored)
                    }
                }
            }
            Command::DeleteCredential { name, .. } => {
                if self.data.credentials.remove(&name).is_some() {
                    Ok(Response::CredentialDeleted)
                } else {
                    Err(Rejection::NoCredential { name })
                }
            }
            Command::SetSuspend { schedule, suspend, .. } => {
                self.set_suspend(&schedule, suspend, now)
            }
            Command::Fire(fire) => self.fire(index, fire, now),
            Command::Cancel { migration, .. } => self.cancel(&migration, now),
            Command::Lease { worker, duration_ms, at } => {
                self.lease(index, worker, duration_ms, at, now)
            }
            Command::Renew { migration, token, duration_ms, at } => {
                self.renew(&migration, token, duration_ms, at)
            }
            Command::Report { migration, token, stage, progress, .. } => {
                self.report(&migration, token, stage, progress, now)
            }
            Command::Complete { migration, token, outcome, .. } => {
                self.complete(&migration, token, *outcome, now)
            }
            Command::ExpireLease { migration, token, at } => {
                self.expire_lease(&migration, token, at, now)
            }
            Command::Timeout { migration, stage, at } => self.timeout(&migration, stage, at, now),
            Command::PairHealth {
                pair,
                generation,
                scheduler,
                storage,
                reason,
                remote_storage_id,
                object_store,
                ..
            } => self.pair_health(
                &pair,
                generation,
                (scheduler, storage),
                (&remote_storage_id, &object_store),
                &reason,
                now,
            ),
        };
        match result {
            // Only a command that changed something moves the group's record clock.
            Ok(response) => {
                if !matches!(response, Response::Duplicate { .. } | Response::NoWork) {
                    self.data.clock = Some(now);
                }
                response
            }
            Err(rejection) => Response::Rejected(rejection),
        }
    }

    fn configure(
        &mut self,
        settings: crate::catalog::Settings,
        now: DateTime<Utc>,
    ) -> Result<Response, Rejection> {
        if settings.default_timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(Rejection::Invalid {
                message: format!(
                    "timezone: {:?} is not an IANA time zone name like Europe/Berlin",
                    settings.default_timezone
                ),
            });
        }
        if settings.stage_deadline_seconds == 0
            || settings.stage_deadline_seconds > crate::catalog::STAGE_DEADLINE_MAX_SECONDS
            || settings.max_attempts == 0
        {
            return Err(Rejection::Invalid {
                message: format!(
                    "stage deadline {} s must be from 1 s to {} s, and max attempts at least 1",
                    settings.stage_deadline_seconds,
                    crate::catalog::STAGE_DEADLINE_MAX_SECONDS
                ),
            });
        }
        self.data.settings = settings;
        let keys: Vec<ObjectKey> = self.data.schedules.keys().cloned().collect();
        for key in keys {
            self.reconcile_lanes(&key, now);
        }
        self.trim_events();
        Ok(Response::Configured)
    }

    // ----- objects ---------------------------------------------------------------------------

    fn next_uid(&mut self, index: u64) -> String {
        self.data.next_serial += 1;
        // Deterministic and unique within the group: the log index and a serial, shaped like
        // the UUIDs Kubernetes uses.
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            index >> 32 & 0xffff_ffff,
            index >> 16 & 0xffff,
            index & 0xfff,
            (index >> 12) & 0xf,
            self.data.next_serial
        )
    }

    fn put(
        &mut self,
        index: u64,
        object: CatalogObject,
        now: DateTime<Utc>,
    ) -> Result<Response, Rejection> {
        let key = object.key();
        if key.name.is_empty() {
            return Err(Rejection::Invalid { message: "metadata.name is required".to_owned() });
        }
        if key.name.contains('/') || key.namespace.contains('/') {
            return Err(Rejection::Invalid {
                message: format!("metadata: {key:?} is not a Kubernetes name (no '/' allowed)"),
            });
        }
        let version = index.to_string();
        match object {
            CatalogObject::ClusterPair(pair) => {
                Ok(self.put_plain(|data| &mut data.cluster_pairs, index, key, pair, now, &version))
            }
            CatalogObject::Rule(rule) => {
                Ok(self.put_plain(|data| &mut data.rules, index, key, rule, now, &version))
            }
            CatalogObject::ApplicationRegistration(registration) => {
                let key = ObjectKey::cluster(&key.name);
                Ok(self.put_plain(
                    |data| &mut data.registrations,
                    index,
                    key,
                    registration,
                    now,
                    &version,
                ))
            }
            CatalogObject::SchedulePolicy(policy) => {
                self.put_policy(index, key, PolicyObject::Cluster(policy), now, &version)
            }
            CatalogObject::NamespacedSchedulePolicy(policy) => {
                self.put_policy(index, key, PolicyObject::Namespaced(policy), now, &version)
            }
            CatalogObject::MigrationSchedule(schedule) => {
                self.put_schedule(index, key, schedule, now, &version)
            }
            CatalogObject::Migration(migration) => {
                self.put_migration(index, key, migration, now, &version)
            }
        }
    }

    /// Creates or updates an object kept as it is (ClusterPair, Rule, ApplicationRegistration):
    /// metadata stamped, status kept from the stored object, unchanged objects left alone.
    fn put_plain<T: Stored>(
        &mut self,
        select: fn(&mut CatalogData) -> &mut BTreeMap<ObjectKey, T>,
        index: u64,
        key: ObjectKey,
        mut object: T,
        now: DateTime<Utc>,
        version: &str,
    ) -> Response {
        let old = select(&mut self.data).get(&key).map(|old| {
            let changed = !old.same_spec(&object)
                || old.meta().labels != object.meta().labels
                || old.meta().annotations != object.meta().annotations;
            object.keep_status(old);
            (old.meta().clone(), changed)
        });
        let (uid, created, changed) = match old {
            Some((old_meta, changed)) => {
                carry_meta(object.meta_mut(), &old_meta, changed, version);
                (old_meta.uid.unwrap_or_default(), false, changed)
            }
            None => {
                let uid = self.next_uid(index);
                object.clear_status();
                new_meta(object.meta_mut(), &uid, now, version);
                (uid, true, true)
            }
        };
        if changed {
            select(&mut self.data).insert(key.clone(), object);
        }
        Response::Put { key, uid, created, changed }
    }

    fn put_policy(
        &mut self,
        index: u64,
        key: ObjectKey,
        mut object: PolicyObject,
        now: DateTime<Utc>,
        version: &str,
    ) -> Result<Response, Rejection> {
        if let Err(errors) =
            object.item().parse(&avocet_types::validate::FieldPath::root().field("policy"))
        {
            return Err(Rejection::Invalid { message: errors.to_string() });
        }
        let (uid, created, changed) = match self.data.policies.get(&key) {
            Some(old) => {
                let changed = old.object.item() != object.item();
                let uid = policy_meta(&old.object).uid.clone().unwrap_or_default();
                let old_meta = policy_meta(&old.object).clone();
                let changed = changed
                    || old_meta.labels != policy_meta(&object).labels
                    || old_meta.annotations != policy_meta(&object).annotations;
                carry_meta(policy_meta_mut(&mut object), &old_meta, changed, version);
                (uid, false, changed)
            }
            None => {
                let uid = self.next_uid(index);
                new_meta(policy_meta_mut(&mut object), &uid, now, version);
                (uid, true, true)
            }
        };
        if changed {
            self.data.policies.insert(key.clone(), PolicyEntry::new(object));
            self.policy_changed(&key, now);
        }
        Ok(Response::Put { key, uid, created, changed })
    }

    /// Refreshes the lanes of every schedule that may resolve to the policy at `key`.
    fn policy_changed(&mut self, key: &ObjectKey, now: DateTime<Utc>) {
        let users: Vec<ObjectKey> = self
            .data
            .schedules
            .iter()
            .filter(|(schedule_key, entry)| {
                entry.object.spec.schedule_policy_name == key.name
                    && (key.namespace.is_empty() || key.namespace == schedule_key.namespace)
            })
            .map(|(schedule_key, _)| schedule_key.clone())
            .collect();
        for user in users {
            self.reconcile_lanes(&user, now);
        }
    }

    /// Gives a schedule one lane per policy type its policy sets (new lanes owe slots from
    /// `now`), drops lanes of types the policy no longer sets, and reindexes it.
    fn reconcile_lanes(&mut self, key: &ObjectKey, now: DateTime<Utc>) {
        if let Some(schedule) = self.data.schedules.get(key) {
            let types = self.policy_types(schedule);
            let cadences: Vec<String> =
                types.iter().map(|policy_type| self.cadence_name(schedule, *policy_type)).collect();
            let missing = types.is_empty();
            let policy_name = schedule.object.spec.schedule_policy_name.clone();
            let start = now;
            // The index still holds each lane's next owed slot under the cadence before this
            // change: one already due is dropped by the change, and an event says so.
            let overdue: Vec<(PolicyType, DateTime<Utc>)> = PolicyType::ALL
                .into_iter()
                .filter_map(|t| self.due_of.get(&(key.clone(), t)).map(|slot| (t, *slot)))
                .filter(|(_, slot)| *slot <= now)
                .collect();
            let mut dropped = Vec::new();
            if let Some(schedule) = self.data.schedules.get_mut(key) {
                // A type the policy no longer sets keeps its lane, inactive, so that its mark
                // still guards every slot it fired if the type comes back.
                for (policy_type, lane) in &mut schedule.lanes {
                    if !types.contains(policy_type) && lane.active {
                        lane.active = false;
                        dropped.extend(overdue.iter().filter(|(t, _)| t == policy_type));
                    }
                }
                for (policy_type, cadence) in types.into_iter().zip(cadences) {
                    let lane = schedule.lanes.entry(policy_type).or_insert(Lane {
                        owed_from: start,
                        mark: None,
                        cadence: cadence.clone(),
                        active: true,
                        fired: 0,
                        coalesced: 0,
                    });
                    if !lane.active {
                        lane.active = true;
                        lane.owed_from = lane.owed_from.max(start);
                    }
                    // A policy edit that changes the cadence owes its slots from the edit on;
                    // the mark stays, so no slot fired before can fire again.
                    if lane.cadence != cadence {
                        lane.cadence = cadence;
                        lane.owed_from = lane.owed_from.max(start);
                        dropped.extend(overdue.iter().filter(|(t, _)| *t == policy_type));
                    }
                }
            }
            for (policy_type, slot) in dropped {
                self.push_event(
                    Kind::MigrationSchedule,
                    key,
                    EventType::Warning,
                    "Missed",
                    format!(
                        "{policy_type} slots owed from {} were not fired: the schedule's policy \
                         changed at {}, and slots of the new policy are owed from then on",
                        rfc3339(slot),
                        rfc3339(now)
                    ),
                    now,
                );
            }
            if missing {
                self.push_event(
                    Kind::MigrationSchedule,
                    key,
                    EventType::Warning,
                    "Failed",
                    format!(
                        "Error checking if migration should be triggered: no SchedulePolicy or \
                         NamespacedSchedulePolicy named {policy_name:?} with a valid policy"
                    ),
                    now,
                );
            }
        }
        self.reindex(key);
    }

    fn put_schedule(
        &mut self,
        index: u64,
        key: ObjectKey,
        mut object: avocet_types::MigrationSchedule,
        now: DateTime<Utc>,
        version: &str,
    ) -> Result<Response, Rejection> {
        match self.data.schedules.get_mut(&key) {
            Some(entry) => {
                let old = &entry.object;
                let changed = old.spec != object.spec
                    || old.metadata.labels != object.metadata.labels
                    || old.metadata.annotations != object.metadata.annotations;
                let uid = old.metadata.uid.clone().unwrap_or_default();
                if !changed {
                    return Ok(Response::Put { key, uid, created: false, changed: false });
                }
                let was_suspended = old.spec.suspended();
                object.status.clone_from(&old.status);
                carry_meta(&mut object.metadata, &old.metadata, true, version);
                let now_suspended = object.spec.suspended();
                entry.object = object;
                if was_suspended && !now_suspended {
                    self.resumed(&key, now);
                } else if !was_suspended && now_suspended {
                    self.suspended_event(&key, now);
                }
                self.reconcile_lanes(&key, now);
                Ok(Response::Put { key, uid, created: false, changed: true })
            }
            None => {
                let uid = self.next_uid(index);
                new_meta(&mut object.metadata, &uid, now, version);
                object.status = Some(MigrationScheduleStatus::default());
                // The creation instant itself, so the first interval slot is due the moment the
                // schedule exists (whole seconds would put it up to a second in the past).
                let anchor = now;
                let entry = ScheduleEntry {
                    object,
                    anchor,
                    lanes: Default::default(),
                    running: None,
                    buffered: None,
                };
                self.data.schedules.insert(key.clone(), entry);
                self.reconcile_lanes(&key, now);
                Ok(Response::Put { key, uid, created: true, changed: true })
            }
        }
    }

    fn put_migration(
        &mut self,
        index: u64,
        key: ObjectKey,
        mut object: Migration,
        now: DateTime<Utc>,
        version: &str,
    ) -> Result<Response, Rejection> {
        if let Some(old) = self.data.migrations.get(&key) {
            let uid = old.object.metadata.uid.clone().unwrap_or_default();
            if old.object.spec != object.spec {
                return Err(Rejection::Invalid {
                    message: format!(
                        "Migration {key} exists and its spec cannot change; delete it and create \
                         it again, or use another name"
                    ),
                });
            }
            return Ok(Response::Put { key, uid, created: false, changed: false });
        }
        let uid = self.next_uid(index);
        new_meta(&mut object.metadata, &uid, now, version);
        object.status = Some(MigrationStatus {
            stage: MigrationStage::Initial,
            status: MigrationStatusType::Pending,
            ..MigrationStatus::default()
        });
        self.enqueue_new(key.clone(), object, None, now);
        Ok(Response::Put { key, uid, created: true, changed: true })
    }

    fn enqueue_new(
        &mut self,
        key: ObjectKey,
        object: Migration,
        origin: Option<FireOrigin>,
        now: DateTime<Utc>,
    ) {
        self.data.next_serial += 1;
        let place = self.data.next_serial;
        self.data.queue.insert(place, key.clone());
        self.data.migrations.insert(
            key.clone(),
            MigrationEntry {
                object,
                origin,
                queued: Some(place),
                lease: None,
                attempts: 0,
                stage_since: now,
                progress: Progress::default(),
            },
        );
        self.index_migration(&key);
    }

    fn delete(
        &mut self,
        kind: Kind,
        key: &ObjectKey,
        now: DateTime<Utc>,
    ) -> Result<Response, Rejection> {
        let not_found = || Rejection::NotFound { kind, key: key.clone() };
        match kind {
            Kind::ClusterPair => {
                self.data.cluster_pairs.remove(key).ok_or_else(not_found)?;
                Ok(Response::Deleted { key: key.clone(), migrations: 0 })
            }
            Kind::SchedulePolicy | Kind::NamespacedSchedulePolicy => {
                let policy_key = if kind == Kind::SchedulePolicy {
                    ObjectKey::cluster(&key.name)
                } else {
                    key.clone()
                };
                if !self.data.policies.contains_key(&policy_key) {
                    return Err(not_found());
                }
                // Refused while a schedule resolves to it and nothing would take its place.
                for (schedule_key, entry) in &self.data.schedules {
                    if entry.object.spec.schedule_policy_name != policy_key.name {
                        continue;
                    }
                    let resolved = self
                        .resolve_policy(&schedule_key.namespace, &policy_key.name)
                        .map(|(resolved, _)| resolved.clone());
                    let fallback = policy_key.namespace.is_empty()
                        || !self.data.policies.contains_key(&ObjectKey::cluster(&policy_key.name));
                    if resolved.as_ref() == Some(&policy_key) && fallback {
                        return Err(Rejection::InUse {
                            kind,
                            key: policy_key,
                            user: schedule_key.clone(),
                        });
                    }
                }
                self.data.policies.remove(&policy_key);
                self.policy_changed(&policy_key, now);
                Ok(Response::Deleted { key: policy_key, migrations: 0 })
            }
            Kind::MigrationSchedule => {
                let entry = self.data.schedules.get(key).ok_or_else(not_found)?;
                let owned: Vec<ObjectKey> = self
                    .data
                    .migrations
                    .iter()
                    .filter(|(_, migration)| {
                        migration.origin.as_ref().is_some_and(|origin| {
                            &origin.schedule == key && origin.schedule_uid == entry.uid()
                        })
                    })
                    .map(|(migration_key, _)| migration_key.clone())
                    .collect();
                let count = owned.len() as u64;
                for migration in owned {
                    self.remove_migration(&migration, now);
                }
                self.data.schedules.remove(key);
                self.reindex(key);
                Ok(Response::Deleted { key: key.clone(), migrations: count })
            }
            Kind::Migration => {
                if !self.data.migrations.contains_key(key) {
                    return Err(not_found());
                }
                let schedule = self.remove_migration(key, now);
                if let Some(schedule) = schedule {
                    self.start_buffered(&schedule, now);
                }
                Ok(Response::Deleted { key: key.clone(), migrations: 1 })
            }
            Kind::Rule => {
                self.data.rules.remove(key).ok_or_else(not_found)?;
                Ok(Response::Deleted { key: key.clone(), migrations: 0 })
            }
            Kind::ApplicationRegistration => {
                let key = ObjectKey::cluster(&key.name);
                self.data.registrations.remove(&key).ok_or_else(not_found)?;
                Ok(Response::Deleted { key, migrations: 0 })
            }
        }
    }

    /// Removes a migration and every trace of it; returns the schedule it was running for.
    fn remove_migration(&mut self, key: &ObjectKey, now: DateTime<Utc>) -> Option<ObjectKey> {
        let entry = self.data.migrations.remove(key)?;
        self.index_migration(key);
        if let Some(lease) = &entry.lease {
            // The lease dies with the migration; say so, so that W-1 can be judged from the
            // events when a migration of the same name is leased again.
            self.push_event(
                Kind::Migration,
                key,
                EventType::Warning,
                "LeaseRevoked",
                format!(
                    "the migration was deleted while worker {} held its lease (token {})",
                    lease.worker, lease.token
                ),
                now,
            );
        }
        if let Some(place) = entry.queued {
            self.data.queue.remove(&place);
        }
        let origin = entry.origin?;
        let schedule = self.data.schedules.get_mut(&origin.schedule)?;
        if let Some(items) = schedule
            .object
            .status
            .as_mut()
            .and_then(|status| status.items.get_mut(&origin.policy_type))
        {
            items.retain(|item| item.name != key.name);
        }
        if schedule.running.as_ref() == Some(key) {
            schedule.running = None;
            return Some(origin.schedule);
        }
        None
    }

    // ----- suspend -----------------------------------------------------------------------------

    fn set_suspend(
        &mut self,
        key: &ObjectKey,
        suspend: bool,
        now: DateTime<Utc>,
    ) -> Result<Response, Rejection> {
        let entry = self.data.schedules.get_mut(key).ok_or_else(|| Rejection::NotFound {
            kind: Kind::MigrationSchedule,
            key: key.clone(),
        })?;
        if entry.suspended() == suspend {
            return Ok(Response::Suspended { changed: false });
        }
        entry.object.spec.suspend = Some(suspend);
        if suspend {
            self.suspended_event(key, now);
        } else {
            self.resumed(key, now);
        }
        self.reindex(key);
        Ok(Response::Suspended { changed: true })
    }

    /// Records a pair's checked health; an event marks each status that changes.
    fn pair_health(
        &mut self,
        key: &ObjectKey,
        generation: i64,
        (scheduler, storage): (ClusterPairStatusType, ClusterPairStatusType),
        (remote_storage_id, object_store): (&str, &str),
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Response, Rejection> {
        let pair = self
            .data
            .cluster_pairs
            .get_mut(key)
            .ok_or_else(|| Rejection::NotFound { kind: Kind::ClusterPair, key: key.clone() })?;
        // A check of a spec that has since changed says nothing about the new one.
        if generation != 0 && pair.metadata.generation.is_some_and(|g| g != generation) {
            return Ok(Response::PairHealth { changed: false });
        }
        let status = pair.status.get_or_insert_with(Default::default);
        let before = (status.scheduler_status, status.storage_status);
        let new_id = !remote_storage_id.is_empty() && status.remote_storage_id != remote_storage_id;
        if new_id {
            status.remote_storage_id = remote_storage_id.to_owned();
        }
        let new_store = !object_store.is_empty() && status.object_store != object_store;
        if new_store {
            status.object_store = object_store.to_owned();
        }
        if new_store {
            let message = format!("Volumes of this pair go to {object_store}");
            self.push_event(Kind::ClusterPair, key, EventType::Normal, "ObjectStore", message, now);
        }
        let pair = self
            .data
            .cluster_pairs
            .get_mut(key)
            .ok_or_else(|| Rejection::NotFound { kind: Kind::ClusterPair, key: key.clone() })?;
        let status = pair.status.get_or_insert_with(Default::default);
        if before == (scheduler, storage) {
            return Ok(Response::PairHealth { changed: new_id || new_store });
        }
        status.scheduler_status = scheduler;
        status.storage_status = storage;
        let why = |fallback: &str| {
            if reason.is_empty() { fallback.to_owned() } else { reason.to_owned() }
        };
        if before.0 != scheduler {
            let (event_type, message) = match scheduler {
                ClusterPairStatusType::Ready => {
                    (EventType::Normal, "Scheduler successfully paired".to_owned())
                }
                _ => (EventType::Warning, why("the destination's Kubernetes API does not answer")),
            };
            self.push_event(Kind::ClusterPair, key, event_type, scheduler.as_str(), message, now);
        }
        if before.1 != storage {
            let (event_type, message) = match storage {
                ClusterPairStatusType::Ready => {
                    (EventType::Normal, "Storage successfully paired".to_owned())
                }
                ClusterPairStatusType::NotProvided => (
                    EventType::Normal,
                    "Skipping storage pairing since no storage options provided".to_owned(),
                ),
                _ => (EventType::Warning, why("the destination's Avocet does not answer")),
            };
            self.push_event(Kind::ClusterPair, key, event_type, storage.as_str(), message, now);
        }
        Ok(Response::PairHealth { changed: true })
    }

    fn suspended_event(&mut self, key: &ObjectKey, now: DateTime<Utc>) {
        self.push_event(
            Kind::MigrationSchedule,
            key,
            EventType::Normal,
            "Suspended",
            "Schedule suspended: no new slots fire; a running migration and a slot already \
             waiting behind it continue"
                .to_owned(),
            now,
        );
    }

    /// Slots that fell due while suspended are not owed: lanes owe slots from `now` again.
    fn resumed(&mut self, key: &ObjectKey, now: DateTime<Utc>) {
        if let Some(entry) = self.data.schedules.get_mut(key) {
            for lane in entry.lanes.values_mut() {
                lane.owed_from = now;
            }
        }
        self.push_event(
            Kind::MigrationSchedule,
            key,
            EventType::Normal,
            "Resumed",
            "Schedule resumed: slots from now on fire".to_owned(),
            now,
        );
    }

    // ----- fires -------------------------------------------------------------------------------

    fn fire(&mut self, index: u64, fire: Fire, now: DateTime<Utc>) -> Result<Response, Rejection> {
        let Fire { schedule: key, uid, policy_type, slot, at } = fire;
        let entry = self.data.schedules.get(&key).ok_or_else(|| Rejection::NotFound {
            kind: Kind::MigrationSchedule,
            key: key.clone(),
        })?;
        if entry.uid() != uid {
            return Err(Rejection::StaleSchedule { key, uid });
        }
        if entry.suspended() {
            return Err(Rejection::Suspended { key });
        }
        let lane = entry.lanes.get(&policy_type).filter(|lane| lane.active).cloned();
        let cadence = self.cadence(entry, policy_type);
        let (Some(lane), Some(cadence)) = (lane, cadence) else {
            return Err(Rejection::NoSuchLane { key, policy_type });
        };
        #[cfg(feature = "planted-bugs")]
        let checked = !crate::planted::double_fire();
        #[cfg(not(feature = "planted-bugs"))]
        let checked = true;
        if let Some(mark) = lane.mark
            && slot <= mark
            && checked
        {
            return Ok(Response::Duplicate { mark });
        }
        if slot > at {
            return Err(Rejection::NotDue { slot, at });
        }
        if cadence.first_at_or_after(slot) != Some(slot) {
            return Err(Rejection::NotASlot { key, policy_type, slot });
        }
        if slot < lane.owed_from {
            return Err(Rejection::NotOwed { key, slot, owed_from: lane.owed_from });
        }
        // Owed slots before this one that never fired are coalesced into it.
        let from = match lane.mark {
            Some(mark) if mark >= lane.owed_from => cadence.first_after(mark),
            _ => cadence.first_at_or_after(lane.owed_from),
        };
        let coalesced = from.and_then(|from| count_slots(&cadence, from, slot, policy_type));
        let running = entry.running.clone();
        let buffered = entry.buffered.clone();
        let absorbing = entry.running.is_some() && entry.buffered.is_some();
        if let Some(entry) = self.data.schedules.get_mut(&key)
            && let Some(lane) = entry.lanes.get_mut(&policy_type)
        {
            lane.mark = Some(slot);
            lane.coalesced += coalesced.map_or(0, |c| c.count);
            if absorbing {
                lane.coalesced += 1;
            } else {
                lane.fired += 1;
            }
        }
        let late = (at - slot).num_seconds();
        let disposition = match (running, buffered) {
            (None, _) => {
                let migration = self.start_migration(
                    index,
                    &key,
                    BufferedFire {
                        policy_type,
                        slot,
                        fired_at: at,
                        coalesced: coalesced.into_iter().collect(),
                    },
                    now,
                );
                Disposition::Started { migration }
            }
            (Some(behind), None) => {
                if let Some(entry) = self.data.schedules.get_mut(&key) {
                    entry.buffered = Some(BufferedFire {
                        policy_type,
                        slot,
                        fired_at: at,
                        coalesced: coalesced.into_iter().collect(),
                    });
                }
                self.push_event(
                    Kind::MigrationSchedule,
                    &key,
                    EventType::Normal,
                    "Buffered",
                    format!(
                        "{policy_type} slot {} fired while migration ({}) runs; it starts \
                         when that one ends",
                        rfc3339(slot),
                        behind.name
                    ),
                    now,
                );
                Disposition::Buffered { behind }
            }
            (Some(_), Some(buffered)) => {
                let absorbed = CoalescedSlots {
                    policy_type,
                    count: 1 + coalesced.map_or(0, |c| c.count),
                    first: coalesced.map_or(slot, |c| c.first),
                    last: slot,
                };
                if let Some(entry) = self.data.schedules.get_mut(&key)
                    && let Some(buffer) = entry.buffered.as_mut()
                {
                    buffer.coalesced.push(absorbed);
                }
                self.push_event(
                    Kind::MigrationSchedule,
                    &key,
                    EventType::Warning,
                    "Coalesced",
                    format!(
                        "{} {policy_type} slot(s) from {} to {} coalesced into the {} slot {} \
                         waiting to start",
                        absorbed.count,
                        rfc3339(absorbed.first),
                        rfc3339(slot),
                        buffered.policy_type,
                        rfc3339(buffered.slot)
                    ),
                    now,
                );
                Disposition::Absorbed { into_type: buffered.policy_type, into_slot: buffered.slot }
            }
        };
        if let (
            Some(coalesced),
            Disposition::Started { migration } | Disposition::Buffered { behind: migration },
        ) = (coalesced, &disposition)
        {
            let into = match &disposition {
                Disposition::Started { .. } => format!("scheduled migration ({})", migration.name),
                _ => format!("the {policy_type} slot {}", rfc3339(slot)),
            };
            self.push_event(
                Kind::MigrationSchedule,
                &key,
                EventType::Warning,
                "Coalesced",
                format!(
                    "{} missed {policy_type} slot(s) from {} to {} coalesced into {into}",
                    coalesced.count,
                    rfc3339(coalesced.first),
                    rfc3339(coalesced.last)
                ),
                now,
            );
        }
        if late > 60
            && let Disposition::Started { migration } = &disposition
        {
            self.push_event(
                Kind::MigrationSchedule,
                &key,
                EventType::Warning,
                "FiredLate",
                format!(
                    "Scheduled migration ({}) for slot {} fired {late} s late",
                    migration.name,
                    rfc3339(slot)
                ),
                now,
            );
        }
        self.reindex(&key);
        Ok(Response::Fired { slot, coalesced, disposition })
    }

    /// Creates the Migration of a fired slot and queues it; the schedule must have none running.
    fn start_migration(
        &mut self,
        index: u64,
        key: &ObjectKey,
        fire: BufferedFire,
        now: DateTime<Utc>,
    ) -> ObjectKey {
        let Some(entry) = self.data.schedules.get(key) else { return key.clone() };
        let label = match self.cadence(entry, fire.policy_type) {
            Some(cadence) => cadence.slot_label(fire.slot),
            // The policy went away while the slot waited: the group's default zone.
            None => fire
                .slot
                .with_timezone(&self.data.settings.zone())
                .format("%Y-%m-%d-%H%M%S")
                .to_string(),
        };
        let base = format!("{}-{}-{label}", key.name, fire.policy_type.lowercase());
        let mut name = base.clone();
        let mut n = 2;
        while self.data.migrations.contains_key(&ObjectKey::new(&key.namespace, &name)) {
            name = format!("{base}-{n}");
            n += 1;
        }
        let migration_key = ObjectKey::new(&key.namespace, &name);
        let schedule = &entry.object;
        let mut annotations = schedule.metadata.annotations.clone().unwrap_or_default();
        annotations.insert(SCHEDULE_NAME_ANNOTATION.to_owned(), key.name.clone());
        annotations.insert(DUE_SLOT_ANNOTATION.to_owned(), rfc3339(fire.slot));
        annotations.insert(FIRED_AT_ANNOTATION.to_owned(), rfc3339(fire.fired_at));
        let coalesced: u64 = fire.coalesced.iter().map(|c| c.count).sum();
        if coalesced > 0 {
            annotations.insert(COALESCED_ANNOTATION.to_owned(), coalesced.to_string());
        }
        let uid = self.next_uid(index);
        let Some(entry) = self.data.schedules.get(key) else { return migration_key };
        let schedule = &entry.object;
        let mut object = Migration {
            api_version: API_GROUP_VERSION.to_owned(),
            kind: Kind::Migration.as_str().to_owned(),
            metadata: Default::default(),
            spec: schedule.spec.template.spec.clone(),
            status: Some(MigrationStatus {
                stage: MigrationStage::Initial,
                status: MigrationStatusType::Pending,
                ..MigrationStatus::default()
            }),
        };
        object.metadata.name = Some(name.clone());
        object.metadata.namespace = Some(key.namespace.clone());
        object.metadata.annotations = Some(annotations);
        object.metadata.owner_references = Some(vec![OwnerReference {
            api_version: API_GROUP_VERSION.to_owned(),
            kind: Kind::MigrationSchedule.as_str().to_owned(),
            name: key.name.clone(),
            uid: entry.uid().to_owned(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        new_meta(&mut object.metadata, &uid, now, &index.to_string());
        let origin = FireOrigin {
            schedule: key.clone(),
            schedule_uid: entry.uid().to_owned(),
            policy_type: fire.policy_type,
            slot: fire.slot,
            fired_at: fire.fired_at,
            coalesced: fire.coalesced,
        };
        self.enqueue_new(migration_key.clone(), object, Some(origin), now);
        if let Some(entry) = self.data.schedules.get_mut(key) {
            entry.running = Some(migration_key.clone());
            let status = entry.object.status.get_or_insert_with(Default::default);
            status.items.entry(fire.policy_type).or_default().push(ScheduledMigrationStatus {
                name: name.clone(),
                creation_timestamp: Some(now.into()),
                finish_timestamp: None,
                status: MigrationStatusType::Pending,
            });
        }
        let late = (fire.fired_at - fire.slot).num_milliseconds();
        self.push_event(
            Kind::MigrationSchedule,
            key,
            EventType::Normal,
            "Fired",
            format!(
                "Scheduled migration ({name}) created for the {} slot {} ({}.{:03} s after it was due)",
                fire.policy_type,
                rfc3339(fire.slot),
                late / 1000,
                late % 1000
            ),
            now,
        );
        self.prune(key, fire.policy_type);
        migration_key
    }

    /// Starts the schedule's buffered slot, if it has one and nothing runs.
    fn start_buffered(&mut self, key: &ObjectKey, now: DateTime<Utc>) {
        let index = self.data.last_index;
        let Some(entry) = self.data.schedules.get_mut(key) else { return };
        if entry.running.is_some() {
            return;
        }
        if let Some(buffered) = entry.buffered.take() {
            self.start_migration(index, key, buffered, now);
        }
    }

    // ----- work hand-off -----------------------------------------------------------------------

    fn lease(
        &mut self,
        index: u64,
        worker: String,
        duration_ms: u64,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Response, Rejection> {
        check_lease_ms(duration_ms)?;
        let Some((&place, key)) = self.data.queue.first_key_value() else {
            return Ok(Response::NoWork);
        };
        let key = key.clone();
        self.data.queue.remove(&place);
        let Some(entry) = self.data.migrations.get_mut(&key) else { return Ok(Response::NoWork) };
        let expires_at = at.checked_add_signed(millis(duration_ms)).unwrap_or(at);
        entry.queued = None;
        entry.attempts += 1;
        entry.lease = Some(Lease { worker: worker.clone(), token: index, expires_at });
        entry.stage_since = now;
        if let Some(status) = entry.object.status.as_mut() {
            status.status = MigrationStatusType::InProgress;
        }
        let migration = Box::new(entry.object.clone());
        let attempt = entry.attempts;
        self.index_migration(&key);
        self.set_schedule_item(&key, MigrationStatusType::InProgress, None);
        // Every grant, completion and expiry names its token, so W-1 can be judged from the
        // events alone (the chaos tests' oracle does).
        self.push_event(
            Kind::Migration,
            &key,
            EventType::Normal,
            "Leased",
            format!(
                "worker {} leased the migration with token {index} until {} (attempt {attempt})",
                worker,
                expires_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            ),
            now,
        );
        Ok(Response::Leased { migration, token: index, expires_at })
    }

    /// Returns the migration's entry when `token` is its current lease's.
    fn leased(&mut self, key: &ObjectKey, token: u64) -> Result<&mut MigrationEntry, Rejection> {
        let entry = self
            .data
            .migrations
            .get_mut(key)
            .ok_or_else(|| Rejection::NotFound { kind: Kind::Migration, key: key.clone() })?;
        let current = entry.lease.as_ref().map(|lease| lease.token);
        if current != Some(token) {
            return Err(Rejection::StaleToken { migration: key.clone(), token, current });
        }
        Ok(entry)
    }

    fn renew(
        &mut self,
        key: &ObjectKey,
        token: u64,
        duration_ms: u64,
        at: DateTime<Utc>,
    ) -> Result<Response, Rejection> {
        check_lease_ms(duration_ms)?;
        let entry = self.leased(key, token)?;
        if let Some(lease) = entry.lease.as_mut() {
            let renewed = at.checked_add_signed(millis(duration_ms)).unwrap_or(at);
            lease.expires_at = lease.expires_at.max(renewed);
        }
        self.index_migration(key);
        Ok(Response::Done)
    }

    fn report(
        &mut self,
        key: &ObjectKey,
        token: u64,
        stage: MigrationStage,
        progress: Progress,
        now: DateTime<Utc>,
    ) -> Result<Response, Rejection> {
        if stage == MigrationStage::Final {
            return Err(Rejection::Invalid {
                message: "stage Final is reached by completing the migration, not by a report"
                    .to_owned(),
            });
        }
        let entry = self.leased(key, token)?;
        let status = entry.object.status.get_or_insert_with(Default::default);
        if status.stage != stage {
            if status.stage == MigrationStage::Volumes {
                status.volume_migration_finish_timestamp = Some(now.into());
            }
            status.stage = stage;
            entry.stage_since = now;
        }
        entry.progress = progress;
        status.summary = Some(summary(&progress, None));
        let line = progress_line(stage, &progress);
        entry
            .object
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(PROGRESS_ANNOTATION.to_owned(), line);
        self.index_migration(key);
        Ok(Response::Done)
    }

    fn complete(
        &mut self,
        key: &ObjectKey,
        token: u64,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<Response, Rejection> {
        if !outcome.status.is_terminal() || outcome.status == MigrationStatusType::Purged {
            return Err(Rejection::Invalid {
                message: format!(
                    "outcome status {:?} is not Successful, PartialSuccess or Failed",
                    outcome.status.as_str()
                ),
            });
        }
        let entry = self.leased(key, token)?;
        let worker = entry.lease.as_ref().map(|lease| lease.worker.clone()).unwrap_or_default();
        entry.progress = outcome.progress;
        if let Some(annotations) = entry.object.metadata.annotations.as_mut() {
            annotations.remove(PROGRESS_ANNOTATION);
        }
        let status = entry.object.status.get_or_insert_with(Default::default);
        status.volumes = outcome.volumes;
        status.resources = outcome.resources;
        status.summary = Some(summary(&outcome.progress, Some(&status.volumes)));
        if status.stage == MigrationStage::Volumes {
            status.volume_migration_finish_timestamp = Some(now.into());
        }
        if status.stage == MigrationStage::Applications {
            status.resource_migration_finish_timestamp = Some(now.into());
        }
        self.push_event(
            Kind::Migration,
            key,
            EventType::Normal,
            "Completed",
            format!("worker {worker} reported {} with token {token}", outcome.status),
            now,
        );
        self.finish(key, outcome.status, &outcome.reason, now);
        Ok(Response::Done)
    }

    fn expire_lease(
        &mut self,
        key: &ObjectKey,
        token: u64,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Response, Rejection> {
        let max_attempts = self.data.settings.max_attempts;
        let entry = self.leased(key, token)?;
        let Some(lease) = entry.lease.clone() else { return Ok(Response::Done) };
        if lease.expires_at > at {
            return Err(Rejection::LeaseLive {
                migration: key.clone(),
                expires_at: lease.expires_at,
            });
        }
        entry.lease = None;
        let attempts = entry.attempts;
        let gave_up = attempts >= max_attempts;
        let then = if gave_up {
            format!("gave up after {attempts} attempt(s)")
        } else {
            format!("queued again (attempt {attempts} of {max_attempts} used)")
        };
        self.push_event(
            Kind::Migration,
            key,
            EventType::Warning,
            "LeaseExpired",
            format!("worker {} stopped renewing its lease (token {token}); {then}", lease.worker),
            now,
        );
        if gave_up {
            let reason = format!("worker {} stopped renewing its lease; {then}", lease.worker);
            self.finish(key, MigrationStatusType::Failed, &reason, now);
        } else {
            self.data.next_serial += 1;
            let place = self.data.next_serial;
            if let Some(entry) = self.data.migrations.get_mut(key) {
                entry.queued = Some(place);
                entry.stage_since = now;
                if let Some(status) = entry.object.status.as_mut() {
                    status.status = MigrationStatusType::Pending;
                }
            }
            self.data.queue.insert(place, key.clone());
            self.index_migration(key);
            self.set_schedule_item(key, MigrationStatusType::Pending, None);
        }
        Ok(Response::Done)
    }

    fn timeout(
        &mut self,
        key: &ObjectKey,
        stage: MigrationStage,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Response, Rejection> {
        let deadline = self.data.settings.stage_deadline();
        let entry = self
            .data
            .migrations
            .get(key)
            .ok_or_else(|| Rejection::NotFound { kind: Kind::Migration, key: key.clone() })?;
        if entry.is_terminal() {
            let status = entry.object.status.as_ref().map(|s| s.status).unwrap_or_default();
            return Err(Rejection::Ended { migration: key.clone(), status });
        }
        let overdue = entry.stage_since.checked_add_signed(deadline).is_some_and(|due| due <= at);
        if entry.stage() != stage || !overdue {
            return Err(Rejection::NotOverdue { migration: key.clone(), stage });
        }
        let name = if stage == MigrationStage::Initial {
            "waiting to start".to_owned()
        } else {
            format!("stage {stage}")
        };
        let reason = format!(
            "{name} did not finish within the stage deadline of {} s",
            deadline.num_seconds()
        );
        self.finish(key, MigrationStatusType::Failed, &reason, now);
        Ok(Response::Done)
    }

    fn cancel(&mut self, key: &ObjectKey, now: DateTime<Utc>) -> Result<Response, Rejection> {
        let entry = self
            .data
            .migrations
            .get(key)
            .ok_or_else(|| Rejection::NotFound { kind: Kind::Migration, key: key.clone() })?;
        if entry.is_terminal() {
            let status = entry.object.status.as_ref().map(|s| s.status).unwrap_or_default();
            return Err(Rejection::Ended { migration: key.clone(), status });
        }
        self.finish(key, MigrationStatusType::Failed, "Migration cancelled", now);
        Ok(Response::Done)
    }

    /// Ends a migration: final status, lease and queue place dropped, the schedule's item
    /// updated and pruned, events, and the schedule's buffered slot started.
    fn finish(
        &mut self,
        key: &ObjectKey,
        result: MigrationStatusType,
        reason: &str,
        now: DateTime<Utc>,
    ) {
        let Some(entry) = self.data.migrations.get_mut(key) else { return };
        entry.lease = None;
        if let Some(place) = entry.queued.take() {
            self.data.queue.remove(&place);
        }
        let status = entry.object.status.get_or_insert_with(Default::default);
        status.stage = MigrationStage::Final;
        status.status = result;
        status.finish_timestamp = Some(now.into());
        let origin = entry.origin.clone();
        self.index_migration(key);
        let (event_type, event_reason, message) = match (&origin, result) {
            (Some(_), MigrationStatusType::Successful) => (
                EventType::Normal,
                "Successful",
                format!("Scheduled migration ({}) completed successfully", key.name),
            ),
            (Some(_), _) => (
                EventType::Warning,
                "Failed",
                format!("Scheduled migration ({}) status {}{}", key.name, result, suffix(reason)),
            ),
            (None, MigrationStatusType::Successful) => {
                (EventType::Normal, "Successful", "Migration completed successfully".to_owned())
            }
            (None, _) => (
                EventType::Warning,
                "Failed",
                format!("Migration status {result}{}", suffix(reason)),
            ),
        };
        match &origin {
            Some(origin) => {
                let schedule = origin.schedule.clone();
                self.push_event(
                    Kind::MigrationSchedule,
                    &schedule,
                    event_type,
                    event_reason,
                    message,
                    now,
                );
                self.set_schedule_item(key, result, Some(now));
                if let Some(entry) = self.data.schedules.get_mut(&schedule)
                    && entry.running.as_ref() == Some(key)
                {
                    entry.running = None;
                }
                self.prune(&schedule, origin.policy_type);
                self.start_buffered(&schedule, now);
            }
            None => self.push_event(Kind::Migration, key, event_type, event_reason, message, now),
        }
    }

    /// Mirrors a scheduled migration's status into its schedule's `status.items`.
    fn set_schedule_item(
        &mut self,
        key: &ObjectKey,
        status: MigrationStatusType,
        finished: Option<DateTime<Utc>>,
    ) {
        let Some(origin) = self.data.migrations.get(key).and_then(|entry| entry.origin.clone())
        else {
            return;
        };
        let Some(schedule) = self.data.schedules.get_mut(&origin.schedule) else { return };
        let Some(items) =
            schedule.object.status.as_mut().and_then(|s| s.items.get_mut(&origin.policy_type))
        else {
            return;
        };
        if let Some(item) = items.iter_mut().find(|item| item.name == key.name) {
            item.status = status;
            if finished.is_some() {
                item.finish_timestamp = finished.map(Into::into);
            }
        }
    }

    /// Keeps, per policy type, the last Successful/PartialSuccess migration and everything
    /// newer, at most `retain` of them (never dropping one that has not ended); deletes the
    /// Migrations of the items dropped.
    fn prune(&mut self, key: &ObjectKey, policy_type: PolicyType) {
        let Some(entry) = self.data.schedules.get(key) else { return };
        let retain = usize::try_from(self.retain(entry, policy_type)).unwrap_or(usize::MAX).max(1);
        let Some(items) = entry.object.status.as_ref().and_then(|s| s.items.get(&policy_type))
        else {
            return;
        };
        let last_success = items.iter().rposition(|item| item.status.is_success());
        let mut keep: Vec<bool> =
            (0..items.len()).map(|i| last_success.is_none_or(|s| i >= s)).collect();
        let mut kept = keep.iter().filter(|k| **k).count();
        for (i, item) in items.iter().enumerate() {
            if kept <= retain {
                break;
            }
            if keep[i] && item.status.is_terminal() && Some(i) != last_success {
                keep[i] = false;
                kept -= 1;
            }
        }
        if kept > retain
            && let Some(s) = last_success
            && items.len() > s + 1
        {
            keep[s] = false;
        }
        let dropped: Vec<String> = items
            .iter()
            .zip(&keep)
            .filter(|(_, keep)| !**keep)
            .map(|(item, _)| item.name.clone())
            .collect();
        if dropped.is_empty() {
            return;
        }
        if let Some(items) = self
            .data
            .schedules
            .get_mut(key)
            .and_then(|entry| entry.object.status.as_mut())
            .and_then(|s| s.items.get_mut(&policy_type))
        {
            items.retain(|item| !dropped.contains(&item.name));
        }
        for name in dropped {
            let migration = ObjectKey::new(&key.namespace, name);
            if self.data.migrations.get(&migration).is_some_and(MigrationEntry::is_terminal) {
                self.data.migrations.remove(&migration);
                self.index_migration(&migration);
            }
        }
    }

    // ----- events ------------------------------------------------------------------------------

    pub(crate) fn push_event(
        &mut self,
        kind: Kind,
        key: &ObjectKey,
        event_type: EventType,
        reason: &str,
        message: String,
        now: DateTime<Utc>,
    ) {
        self.data.next_event_seq += 1;
        self.data.events.push_back(Event {
            seq: self.data.next_event_seq,
            time: now,
            kind: kind.as_str().to_owned(),
            object: key.clone(),
            event_type,
            reason: reason.to_owned(),
            message,
        });
        self.trim_events();
    }

    fn trim_events(&mut self) {
        let cap = usize::try_from(self.data.settings.events_retained).unwrap_or(usize::MAX);
        while self.data.events.len() > cap {
            self.data.events.pop_front();
        }
    }
}

/// An object the catalog keeps as it is, apart from its metadata and status.
trait Stored {
    fn meta(&self) -> &ObjectMeta;
    fn meta_mut(&mut self) -> &mut ObjectMeta;
    /// Says whether the user-owned part equals `other`'s.
    fn same_spec(&self, other: &Self) -> bool;
    /// Keeps the stored object's status (controllers own it, never `apply` input).
    fn keep_status(&mut self, _old: &Self) {}
    /// Drops any status given with a new object.
    fn clear_status(&mut self) {}
}

impl Stored for avocet_types::ClusterPair {
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn same_spec(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    fn keep_status(&mut self, old: &Self) {
        self.status.clone_from(&old.status);
    }
    fn clear_status(&mut self) {
        self.status = None;
    }
}

impl Stored for avocet_types::Rule {
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn same_spec(&self, other: &Self) -> bool {
        self.rules == other.rules
    }
}

impl Stored for avocet_types::ApplicationRegistration {
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn same_spec(&self, other: &Self) -> bool {
        self.resources == other.resources
    }
}

fn rfc3339(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A progress report for people.
fn progress_line(stage: MigrationStage, p: &Progress) -> String {
    let mut line = format!("{}: ", stage.as_str());
    if p.bytes_total > 0 {
        line.push_str(&format!("{} of {}", size(p.bytes_done), size(p.bytes_total)));
    } else {
        line.push_str(&format!("{} of {} objects", p.objects_done, p.objects_total));
    }
    if p.bytes_per_second > 0 {
        line.push_str(&format!(", {}/s", size(p.bytes_per_second)));
    }
    if p.eta_seconds > 0 {
        line.push_str(&format!(", about {}s left", p.eta_seconds));
    }
    line
}

/// A byte count for people.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut whole = bytes;
    let mut tenths = 0;
    while whole >= 1024 && unit < UNITS.len() - 1 {
        tenths = (whole % 1024) * 10 / 1024;
        whole /= 1024;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{whole}.{tenths} {}", UNITS[unit]) }
}

fn suffix(reason: &str) -> String {
    if reason.is_empty() { String::new() } else { format!(": {reason}") }
}

fn millis(ms: u64) -> TimeDelta {
    TimeDelta::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX / 1_000_000))
}

fn summary(
    progress: &Progress,
    volumes: Option<&Vec<avocet_types::migration::MigrationVolumeInfo>>,
) -> MigrationSummary {
    let bytes = match volumes {
        Some(volumes) if !volumes.is_empty() => volumes
            .iter()
            .filter(|volume| volume.status == MigrationStatusType::Successful)
            .fold(0u64, |sum, volume| sum.saturating_add(volume.bytes_total)),
        _ => progress.bytes_done,
    };
    MigrationSummary {
        total_number_of_volumes: volumes.map_or(0, |v| v.len() as u64),
        num_of_migrated_volumes: volumes.map_or(0, |v| {
            v.iter().filter(|volume| volume.status == MigrationStatusType::Successful).count()
                as u64
        }),
        total_number_of_resources: progress.objects_total,
        num_of_migrated_resources: progress.objects_done,
        total_bytes_migrated: bytes,
        elapsed_time_for_volume_migration: "NA".to_owned(),
        elapsed_time_for_resource_migration: "NA".to_owned(),
    }
}

/// Counts the slots of `cadence` in `[from, before)`, or `None` when there are none.
pub fn count_slots(
    cadence: &Cadence,
    from: DateTime<Utc>,
    before: DateTime<Utc>,
    policy_type: PolicyType,
) -> Option<CoalescedSlots> {
    if from >= before {
        return None;
    }
    if let avocet_types::PolicyRule::Interval { minutes } = cadence.rule() {
        let step = TimeDelta::minutes(i64::from(minutes));
        let span = before - from;
        // Slots from, from+step, …, strictly before `before`.
        let count =
            u64::try_from((span.num_milliseconds() - 1) / step.num_milliseconds()).unwrap_or(0) + 1;
        let last = from + step * i32::try_from(count - 1).unwrap_or(i32::MAX);
        return Some(CoalescedSlots { policy_type, count, first: from, last });
    }
    let mut count = 0;
    let mut last = from;
    for slot in cadence.due_slots(from) {
        if slot >= before || count >= COALESCE_COUNT_MAX {
            break;
        }
        count += 1;
        last = slot;
    }
    (count > 0).then_some(CoalescedSlots { policy_type, count, first: from, last })
}

fn new_meta(
    metadata: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    uid: &str,
    now: DateTime<Utc>,
    version: &str,
) {
    metadata.uid = Some(uid.to_owned());
    metadata.creation_timestamp = Some(meta_time(now.with_nanosecond(0).unwrap_or(now)));
    metadata.resource_version = Some(version.to_owned());
    metadata.generation = Some(1);
    metadata.managed_fields = None;
    metadata.deletion_timestamp = None;
    metadata.self_link = None;
}

fn carry_meta(
    metadata: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    old: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    changed: bool,
    version: &str,
) {
    metadata.uid.clone_from(&old.uid);
    metadata.creation_timestamp.clone_from(&old.creation_timestamp);
    metadata.owner_references.clone_from(&old.owner_references);
    metadata.managed_fields = None;
    metadata.self_link = None;
    if changed {
        metadata.resource_version = Some(version.to_owned());
        metadata.generation = Some(old.generation.unwrap_or(1) + 1);
    } else {
        metadata.resource_version.clone_from(&old.resource_version);
        metadata.generation = old.generation;
    }
}

fn policy_meta(
    object: &PolicyObject,
) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    match object {
        PolicyObject::Cluster(policy) => &policy.metadata,
        PolicyObject::Namespaced(policy) => &policy.metadata,
    }
}

fn policy_meta_mut(
    object: &mut PolicyObject,
) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    match object {
        PolicyObject::Cluster(policy) => &mut policy.metadata,
        PolicyObject::Namespaced(policy) => &mut policy.metadata,
    }
}
