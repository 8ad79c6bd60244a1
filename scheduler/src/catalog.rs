//! The catalog: every object the scheduler group replicates, and the indexes the planner reads.
//!
//! The catalog is the replicated state machine's whole state. It changes only through
//! [`Catalog::apply`](crate::apply) with a committed [`Command`](crate::Command), and serializes
//! to the snapshot as plain data ([`CatalogData`]); the indexes (which lane is due next, which
//! migrations are in flight, which resolved policy a schedule uses) are derived from that data and
//! rebuilt when a snapshot is read, so they can never disagree with it.
//!
//! Schedules fire per *lane*: one per (schedule, policy type). A lane remembers the highest slot
//! fired or coalesced (its mark) and the instant from which slots are owed (when the lane began,
//! or when the schedule was last resumed); the planner fires the latest owed slot past the mark.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use avocet_types::clusterpair::ClusterPair;
use avocet_types::migration::{Migration, MigrationStage};
use avocet_types::policy::{ParsedPolicy, PolicyType, SchedulePolicyItem};
use avocet_types::schedule::MigrationSchedule;
use avocet_types::validate::FieldPath;
use avocet_types::{NamespacedSchedulePolicy, SchedulePolicy};

use crate::timing::Cadence;

/// Names a namespaced object (the namespace is empty for cluster-scoped kinds).
///
/// Serializes as `namespace/name` (or `name`), so maps keyed by it stay JSON objects; neither
/// part can contain a `/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Names the namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// Names the object.
    pub name: String,
}

impl ObjectKey {
    /// Returns the key of `name` in `namespace`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey { namespace: namespace.into(), name: name.into() }
    }

    /// Returns the key of a cluster-scoped object.
    pub fn cluster(name: impl Into<String>) -> Self {
        ObjectKey { namespace: String::new(), name: name.into() }
    }
}

impl Serialize for ObjectKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ObjectKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(match text.split_once('/') {
            Some((namespace, name)) => ObjectKey::new(namespace, name),
            None => ObjectKey::cluster(text),
        })
    }
}

impl fmt::Display for ObjectKey {
    /// Writes `namespace/name`, or `name` for cluster-scoped objects.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// Object-store credentials (`avocetctl credentials create`): where a pair's volumes go. The
/// secrets (access keys and the pair's data key) are `sealed` by the service before the
/// command is proposed, so neither the log nor a snapshot holds them in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    /// The name, `clusterPair_<destination cluster id>`.
    pub name: String,
    /// The provider (`s3`).
    pub provider: String,
    /// The bucket (may be empty: the service picks one per pair).
    #[serde(default)]
    pub bucket: String,
    /// The endpoint.
    pub endpoint: String,
    /// The region.
    pub region: String,
    /// The storage class (STANDARD or STANDARD-IA).
    #[serde(default)]
    pub storage_class: String,
    /// Whether the endpoint is plain HTTP.
    #[serde(default)]
    pub disable_ssl: bool,
    /// The sealed secrets, base64.
    pub sealed: String,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

impl Credential {
    /// The bucket: the one named, or `avocet-<destination cluster id>` (one per pair).
    pub fn bucket_for(&self, cluster_id: &str) -> String {
        if self.bucket.is_empty() {
            format!("avocet-{}", cluster_id.to_ascii_lowercase())
        } else {
            self.bucket.clone()
        }
    }
}

/// Holds the group-wide settings every node applies alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Names the zone of policies without `policy.timezone` (an IANA name).
    pub default_timezone: String,
    /// Bounds how long a migration may stay in one stage before it is failed, in seconds.
    pub stage_deadline_seconds: u64,
    /// Bounds how many times a migration is leased before an expired lease fails it.
    pub max_attempts: u32,
    /// Caps the events kept for `get events` and watchers.
    pub events_retained: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_timezone: "UTC".to_owned(),
            stage_deadline_seconds: 6 * 60 * 60,
            max_attempts: 3,
            events_retained: 10_000,
        }
    }
}

impl Settings {
    /// Returns the default zone; a name that does not parse (never accepted by `Configure`)
    /// falls back to UTC.
    pub fn zone(&self) -> Tz {
        self.default_timezone.parse().unwrap_or(Tz::UTC)
    }

    /// Returns the stage deadline.
    pub fn stage_deadline(&self) -> TimeDelta {
        let seconds = self.stage_deadline_seconds.min(STAGE_DEADLINE_MAX_SECONDS);
        TimeDelta::try_seconds(i64::try_from(seconds).unwrap_or(0)).unwrap_or(TimeDelta::zero())
    }
}

/// Holds a schedule policy of either scope with its parsed rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyEntry {
    /// Holds the object as applied, metadata stamped.
    pub object: PolicyObject,
    /// Holds the parsed rules (derived from `object`, rebuilt on load).
    #[serde(skip)]
    pub parsed: Option<ParsedPolicy>,
}

/// Holds a SchedulePolicy or a NamespacedSchedulePolicy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PolicyObject {
    /// A cluster-scoped policy.
    Cluster(SchedulePolicy),
    /// A namespaced policy.
    Namespaced(NamespacedSchedulePolicy),
}

impl PolicyObject {
    /// Returns the policy section.
    pub fn item(&self) -> &SchedulePolicyItem {
        match self {
            PolicyObject::Cluster(policy) => &policy.policy,
            PolicyObject::Namespaced(policy) => &policy.policy,
        }
    }
}

impl PolicyEntry {
    /// Returns an entry for `object`, parsing its rules.
    pub fn new(object: PolicyObject) -> Self {
        let mut entry = PolicyEntry { object, parsed: None };
        entry.reparse();
        entry
    }

    fn reparse(&mut self) {
        self.parsed = self.object.item().parse(&FieldPath::root().field("policy")).ok();
    }
}

/// Holds the firing state of one (schedule, policy type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lane {
    /// Gives the instant from which slots are owed: the lane's start or the last resume.
    pub owed_from: DateTime<Utc>,
    /// Gives the highest slot fired or coalesced.
    pub mark: Option<DateTime<Utc>>,
    /// Says whether the schedule's policy still sets this type (an inactive lane keeps its
    /// mark, so a type that comes back never fires a slot twice).
    #[serde(default = "active_default")]
    pub active: bool,
    /// Names the cadence slots are owed on (rule and zone, e.g. `every 10 min in UTC`); when
    /// a policy edit changes it, slots are owed on the new cadence from the edit on.
    #[serde(default)]
    pub cadence: String,
    /// Counts the slots fired.
    pub fired: u64,
    /// Counts the slots coalesced into another.
    pub coalesced: u64,
}

fn active_default() -> bool {
    true
}

/// Bounds the stage deadline: ten years.
pub const STAGE_DEADLINE_MAX_SECONDS: u64 = 10 * 366 * 24 * 60 * 60;

/// Describes slots that were missed and coalesced into one migration: a count and the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CoalescedSlots {
    /// Names the policy type of the slots.
    pub policy_type: PolicyType,
    /// Counts the slots.
    pub count: u64,
    /// Gives the earliest.
    pub first: DateTime<Utc>,
    /// Gives the latest.
    pub last: DateTime<Utc>,
}

/// Holds a fired slot waiting for the schedule's running migration to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BufferedFire {
    /// Names the policy type.
    pub policy_type: PolicyType,
    /// Gives the due slot.
    pub slot: DateTime<Utc>,
    /// Gives the leader's time when it fired.
    pub fired_at: DateTime<Utc>,
    /// Lists slots coalesced into this one.
    pub coalesced: Vec<CoalescedSlots>,
}

/// Holds a MigrationSchedule and its firing state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleEntry {
    /// Holds the object, metadata stamped; `status.items` is maintained by `apply`.
    pub object: MigrationSchedule,
    /// Gives the instant interval slots count from (the creation instant).
    pub anchor: DateTime<Utc>,
    /// Holds one lane per policy type the resolved policy sets.
    pub lanes: BTreeMap<PolicyType, Lane>,
    /// Names the migration in flight, if any.
    pub running: Option<ObjectKey>,
    /// Holds the slot that fired while another migration ran.
    pub buffered: Option<BufferedFire>,
}

impl ScheduleEntry {
    /// Returns the schedule's uid.
    pub fn uid(&self) -> &str {
        self.object.metadata.uid.as_deref().unwrap_or_default()
    }

    /// Returns whether the schedule is suspended.
    pub fn suspended(&self) -> bool {
        self.object.spec.suspended()
    }
}

/// Holds a worker's lease on a migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    /// Names the worker.
    pub worker: String,
    /// Gives the fencing token: the log index of the lease entry.
    pub token: u64,
    /// Gives the instant the lease lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// Says where a scheduled migration came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FireOrigin {
    /// Names the schedule.
    pub schedule: ObjectKey,
    /// Gives the schedule's uid.
    pub schedule_uid: String,
    /// Names the policy type.
    pub policy_type: PolicyType,
    /// Gives the due slot.
    pub slot: DateTime<Utc>,
    /// Gives the leader's time when it fired.
    pub fired_at: DateTime<Utc>,
    /// Lists slots coalesced into this migration.
    pub coalesced: Vec<CoalescedSlots>,
}

/// Counts a migration's progress as the worker last reported it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Counts bytes copied.
    pub bytes_done: u64,
    /// Counts bytes to copy.
    pub bytes_total: u64,
    /// Counts objects copied.
    pub objects_done: u64,
    /// Counts objects to copy.
    pub objects_total: u64,
    /// Gives the transfer rate so far, in bytes per second (0: not known).
    #[serde(default)]
    pub bytes_per_second: u64,
    /// Gives the expected seconds left of the volume transfer (0: not known or done).
    #[serde(default)]
    pub eta_seconds: u64,
}

/// Holds a Migration and its hand-off state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationEntry {
    /// Holds the object, metadata stamped; `status` is maintained by `apply`.
    pub object: Migration,
    /// Says which schedule fired it, for scheduled migrations.
    pub origin: Option<FireOrigin>,
    /// Gives its place in the work queue while it waits for a worker.
    pub queued: Option<u64>,
    /// Holds the worker's lease while one runs it.
    pub lease: Option<Lease>,
    /// Counts the leases granted so far.
    pub attempts: u32,
    /// Gives when the current stage began (for the stage deadline).
    pub stage_since: DateTime<Utc>,
    /// Holds the latest progress report.
    pub progress: Progress,
}

impl MigrationEntry {
    /// Returns the migration's stage.
    pub fn stage(&self) -> MigrationStage {
        self.object.status.as_ref().map(|status| status.stage).unwrap_or_default()
    }

    /// Returns whether the migration has ended.
    pub fn is_terminal(&self) -> bool {
        self.object.status.as_ref().is_some_and(|status| status.status.is_terminal())
    }
}

/// Says whether an event reports routine progress or something to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// Routine.
    Normal,
    /// Needs attention.
    Warning,
}

impl EventType {
    /// Returns `Normal` or `Warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Records something that happened to an object, like a Kubernetes Event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Numbers events in the order they happened, from 1, without gaps.
    pub seq: u64,
    /// Gives the leader's time of the entry that caused it.
    pub time: DateTime<Utc>,
    /// Names the object's kind.
    pub kind: String,
    /// Names the object.
    pub object: ObjectKey,
    /// Says Normal or Warning.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Gives a CamelCase reason (`Successful`, `Failed`, `Coalesced`…).
    pub reason: String,
    /// Explains in a sentence.
    pub message: String,
}

/// Holds the catalog's replicated data: exactly what a snapshot carries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogData {
    /// Holds the group-wide settings.
    pub settings: Settings,
    /// Holds SchedulePolicies by name and NamespacedSchedulePolicies by namespace and name.
    pub policies: BTreeMap<ObjectKey, PolicyEntry>,
    /// Holds ClusterPairs.
    pub cluster_pairs: BTreeMap<ObjectKey, ClusterPair>,
    /// Holds Rules.
    #[serde(default)]
    pub rules: BTreeMap<ObjectKey, avocet_types::Rule>,
    /// Holds ApplicationRegistrations (cluster-scoped: empty namespace).
    #[serde(default)]
    pub registrations: BTreeMap<ObjectKey, avocet_types::ApplicationRegistration>,
    /// Holds object-store credentials by name (`clusterPair_<destination cluster id>`), their
    /// secrets sealed by the service's master key before they were proposed.
    #[serde(default)]
    pub credentials: BTreeMap<String, Credential>,
    /// Holds MigrationSchedules.
    pub schedules: BTreeMap<ObjectKey, ScheduleEntry>,
    /// Holds Migrations, scheduled and one-off.
    pub migrations: BTreeMap<ObjectKey, MigrationEntry>,
    /// Orders migrations waiting for a worker: queue number → migration.
    pub queue: BTreeMap<u64, ObjectKey>,
    /// Holds the newest events, oldest first.
    pub events: VecDeque<Event>,
    /// Numbers the next event.
    pub next_event_seq: u64,
    /// Numbers the next uid and queue place.
    pub next_serial: u64,
    /// Gives the latest leader time seen in any entry (time in records never goes back).
    pub clock: Option<DateTime<Utc>>,
    /// Gives the log index of the last command applied.
    pub last_index: u64,
}

impl PartialEq for PolicyEntry {
    fn eq(&self, other: &Self) -> bool {
        self.object == other.object
    }
}

/// Holds the replicated state and its derived indexes.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub(crate) data: CatalogData,
    /// Orders active lanes by their next owed slot.
    pub(crate) due: BTreeSet<(DateTime<Utc>, ObjectKey, PolicyType)>,
    /// Gives each indexed lane's entry in `due`.
    pub(crate) due_of: HashMap<(ObjectKey, PolicyType), DateTime<Utc>>,
    /// Gives each migration that has not ended its indexed (stage start, lease expiry).
    pub(crate) in_flight: HashMap<ObjectKey, (DateTime<Utc>, Option<DateTime<Utc>>)>,
    /// Orders migrations that have not ended by when their stage began (stage deadlines).
    pub(crate) stage_starts: BTreeSet<(DateTime<Utc>, ObjectKey)>,
    /// Orders leases by when they lapse.
    pub(crate) lease_expiries: BTreeSet<(DateTime<Utc>, ObjectKey)>,
}

impl PartialEq for Catalog {
    fn eq(&self, other: &Self) -> bool {
        self.data == other.data
    }
}

impl Serialize for Catalog {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.data.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Catalog {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Catalog::from_data(CatalogData::deserialize(deserializer)?))
    }
}

impl Catalog {
    /// Returns a catalog holding `data`, with every index rebuilt from it.
    pub fn from_data(mut data: CatalogData) -> Self {
        for entry in data.policies.values_mut() {
            entry.reparse();
        }
        let mut catalog = Catalog { data, ..Catalog::default() };
        let keys: Vec<ObjectKey> = catalog.data.schedules.keys().cloned().collect();
        for key in keys {
            catalog.reindex(&key);
        }
        let keys: Vec<ObjectKey> = catalog.data.migrations.keys().cloned().collect();
        for key in keys {
            catalog.index_migration(&key);
        }
        catalog
    }

    /// Returns the replicated data.
    pub fn data(&self) -> &CatalogData {
        &self.data
    }

    /// Returns the settings.
    pub fn settings(&self) -> &Settings {
        &self.data.settings
    }

    /// Returns the log index of the last command applied.
    pub fn last_index(&self) -> u64 {
        self.data.last_index
    }

    /// Returns the schedule at `key`.
    pub fn schedule(&self, key: &ObjectKey) -> Option<&ScheduleEntry> {
        self.data.schedules.get(key)
    }

    /// Returns every schedule.
    pub fn schedules(&self) -> impl Iterator<Item = (&ObjectKey, &ScheduleEntry)> {
        self.data.schedules.iter()
    }

    /// Returns the migration at `key`.
    pub fn migration(&self, key: &ObjectKey) -> Option<&MigrationEntry> {
        self.data.migrations.get(key)
    }

    /// Returns every migration.
    pub fn migrations(&self) -> impl Iterator<Item = (&ObjectKey, &MigrationEntry)> {
        self.data.migrations.iter()
    }

    /// Returns the migrations whose stage began at or before `cutoff`, oldest first.
    pub fn stages_begun_by(&self, cutoff: DateTime<Utc>) -> impl Iterator<Item = &ObjectKey> {
        self.stage_starts.iter().take_while(move |(since, _)| *since <= cutoff).map(|(_, key)| key)
    }

    /// Returns the leases that lapse at or before `now`, earliest first.
    pub fn leases_lapsed_by(&self, now: DateTime<Utc>) -> impl Iterator<Item = &ObjectKey> {
        self.lease_expiries.iter().take_while(move |(at, _)| *at <= now).map(|(_, key)| key)
    }

    /// Returns the earliest stage start and lease expiry among migrations that have not ended.
    pub fn next_migration_deadlines(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        (
            self.stage_starts.first().map(|(at, _)| *at),
            self.lease_expiries.first().map(|(at, _)| *at),
        )
    }

    /// Brings the migration indexes up to date for `key` (after any change to it).
    pub(crate) fn index_migration(&mut self, key: &ObjectKey) {
        if let Some((since, lease)) = self.in_flight.remove(key) {
            self.stage_starts.remove(&(since, key.clone()));
            if let Some(expiry) = lease {
                self.lease_expiries.remove(&(expiry, key.clone()));
            }
        }
        let Some(entry) = self.data.migrations.get(key) else { return };
        if entry.is_terminal() {
            return;
        }
        let lease = entry.lease.as_ref().map(|lease| lease.expires_at);
        self.stage_starts.insert((entry.stage_since, key.clone()));
        if let Some(expiry) = lease {
            self.lease_expiries.insert((expiry, key.clone()));
        }
        self.in_flight.insert(key.clone(), (entry.stage_since, lease));
    }

    /// Returns the policy at `key` (empty namespace: a SchedulePolicy).
    pub fn policy(&self, key: &ObjectKey) -> Option<&PolicyEntry> {
        self.data.policies.get(key)
    }

    /// Returns every policy of both scopes.
    pub fn policies(&self) -> impl Iterator<Item = (&ObjectKey, &PolicyEntry)> {
        self.data.policies.iter()
    }

    /// Returns the ClusterPair at `key`.
    pub fn cluster_pair(&self, key: &ObjectKey) -> Option<&ClusterPair> {
        self.data.cluster_pairs.get(key)
    }

    /// Returns the Rule at `key`.
    pub fn rule(&self, key: &ObjectKey) -> Option<&avocet_types::Rule> {
        self.data.rules.get(key)
    }

    /// Returns every Rule.
    pub fn rules(&self) -> impl Iterator<Item = (&ObjectKey, &avocet_types::Rule)> {
        self.data.rules.iter()
    }

    /// Returns the ApplicationRegistration named `name`.
    pub fn registration(&self, name: &str) -> Option<&avocet_types::ApplicationRegistration> {
        self.data.registrations.get(&ObjectKey::cluster(name))
    }

    /// Returns every ApplicationRegistration.
    pub fn registrations(
        &self,
    ) -> impl Iterator<Item = (&ObjectKey, &avocet_types::ApplicationRegistration)> {
        self.data.registrations.iter()
    }

    /// Returns every stored credential, by name.
    pub fn credentials(&self) -> impl Iterator<Item = &Credential> {
        self.data.credentials.values()
    }

    /// Returns the credential `name`.
    pub fn credential(&self, name: &str) -> Option<&Credential> {
        self.data.credentials.get(name)
    }

    /// Returns every ClusterPair.
    pub fn cluster_pairs(&self) -> impl Iterator<Item = (&ObjectKey, &ClusterPair)> {
        self.data.cluster_pairs.iter()
    }

    /// Returns the events kept, oldest first.
    pub fn events(&self) -> impl DoubleEndedIterator<Item = &Event> {
        self.data.events.iter()
    }

    /// Returns the events with `seq` greater than `after`.
    pub fn events_after(&self, after: u64) -> impl Iterator<Item = &Event> {
        let first = self.data.events.front().map_or(0, |event| event.seq);
        let skip = usize::try_from(after.saturating_add(1).saturating_sub(first)).unwrap_or(0);
        self.data.events.iter().skip(skip)
    }

    /// Returns the policy a schedule named `policy` in `namespace` uses: the
    /// NamespacedSchedulePolicy of that name in the namespace, else the SchedulePolicy.
    pub fn resolve_policy(
        &self,
        namespace: &str,
        policy: &str,
    ) -> Option<(&ObjectKey, &PolicyEntry)> {
        self.data
            .policies
            .get_key_value(&ObjectKey::new(namespace, policy))
            .or_else(|| self.data.policies.get_key_value(&ObjectKey::cluster(policy)))
    }

    /// Returns the cadence of a schedule's lane, or `None` when its policy is missing, invalid
    /// or has no section of that type.
    pub fn cadence(&self, schedule: &ScheduleEntry, policy_type: PolicyType) -> Option<Cadence> {
        let namespace = schedule.object.metadata.namespace.as_deref().unwrap_or_default();
        let (_, policy) =
            self.resolve_policy(namespace, &schedule.object.spec.schedule_policy_name)?;
        let parsed = policy.parsed.as_ref()?;
        let rule = *parsed.rule(policy_type)?;
        let zone = parsed.timezone.unwrap_or_else(|| self.data.settings.zone());
        Some(Cadence::new(rule, zone, schedule.anchor))
    }

    /// Returns the fingerprint of a lane's cadence (rule and zone), or an empty string.
    pub fn cadence_name(&self, schedule: &ScheduleEntry, policy_type: PolicyType) -> String {
        self.cadence(schedule, policy_type)
            .map(|cadence| match cadence.rule() {
                // Interval slots are absolute: the zone does not move them.
                avocet_types::PolicyRule::Interval { .. } => cadence.rule().to_string(),
                rule => format!("{rule} in {}", cadence.zone()),
            })
            .unwrap_or_default()
    }

    /// Returns the policy types a schedule's resolved policy sets, in evaluation order.
    pub fn policy_types(&self, schedule: &ScheduleEntry) -> Vec<PolicyType> {
        let namespace = schedule.object.metadata.namespace.as_deref().unwrap_or_default();
        self.resolve_policy(namespace, &schedule.object.spec.schedule_policy_name)
            .and_then(|(_, policy)| policy.parsed.as_ref())
            .map(|parsed| parsed.rules.iter().map(|rule| rule.policy_type()).collect())
            .unwrap_or_default()
    }

    /// Returns the `retain` cap of a schedule's policy type (the type's default when unknown).
    pub fn retain(&self, schedule: &ScheduleEntry, policy_type: PolicyType) -> u32 {
        let namespace = schedule.object.metadata.namespace.as_deref().unwrap_or_default();
        self.resolve_policy(namespace, &schedule.object.spec.schedule_policy_name)
            .and_then(|(_, policy)| policy.parsed.as_ref())
            .and_then(|parsed| parsed.retain.get(&policy_type).copied())
            .unwrap_or_else(|| policy_type.default_retain())
    }

    /// Returns the next slot a lane owes: the first at or after `owed_from` beyond its mark.
    pub fn next_owed(
        &self,
        schedule: &ScheduleEntry,
        policy_type: PolicyType,
    ) -> Option<DateTime<Utc>> {
        let lane = schedule.lanes.get(&policy_type)?;
        let cadence = self.cadence(schedule, policy_type)?;
        match lane.mark {
            Some(mark) if mark >= lane.owed_from => cadence.first_after(mark),
            _ => cadence.first_at_or_after(lane.owed_from),
        }
    }

    /// Returns the lanes whose next owed slot is at or before `now`, earliest first.
    pub fn due_lanes(
        &self,
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = &(DateTime<Utc>, ObjectKey, PolicyType)> {
        self.due.iter().take_while(move |(slot, _, _)| *slot <= now)
    }

    /// Returns the earliest next owed slot of any active lane.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.due.first().map(|(slot, _, _)| *slot)
    }

    /// Recomputes the due index of one schedule's lanes (none when suspended or gone).
    pub(crate) fn reindex(&mut self, key: &ObjectKey) {
        for policy_type in PolicyType::ALL {
            if let Some(slot) = self.due_of.remove(&(key.clone(), policy_type)) {
                self.due.remove(&(slot, key.clone(), policy_type));
            }
        }
        let Some(schedule) = self.data.schedules.get(key) else { return };
        if schedule.suspended() {
            return;
        }
        let mut entries = Vec::new();
        for (&policy_type, _) in schedule.lanes.iter().filter(|(_, lane)| lane.active) {
            if let Some(slot) = self.next_owed(schedule, policy_type) {
                entries.push((slot, policy_type));
            }
        }
        for (slot, policy_type) in entries {
            self.due.insert((slot, key.clone(), policy_type));
            self.due_of.insert((key.clone(), policy_type), slot);
        }
    }
}
