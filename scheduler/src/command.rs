//! Commands the scheduler group replicates, and what `apply` answers to each.
//!
//! Every command carries `at`, the proposing leader's clock reading, because `apply` reads no
//! clock: followers and replays see the same instant. Commands are validated with
//! `avocet-types` before they are proposed; `apply` still re-checks what it depends on and
//! answers [`Response::Rejected`] with a sentence instead of panicking.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use avocet_types::clusterpair::{ClusterPair, ClusterPairStatusType};
use avocet_types::migration::{
    Migration, MigrationResourceInfo, MigrationStage, MigrationStatusType, MigrationVolumeInfo,
};
use avocet_types::policy::PolicyType;
use avocet_types::schedule::MigrationSchedule;
use avocet_types::{Kind, NamespacedSchedulePolicy, SchedulePolicy, StorkObject};

use crate::catalog::{CoalescedSlots, Credential, ObjectKey, Progress, Settings};

/// Holds an object of a kind the catalog stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CatalogObject {
    /// A ClusterPair.
    ClusterPair(ClusterPair),
    /// A SchedulePolicy.
    SchedulePolicy(SchedulePolicy),
    /// A NamespacedSchedulePolicy.
    NamespacedSchedulePolicy(NamespacedSchedulePolicy),
    /// A MigrationSchedule.
    MigrationSchedule(MigrationSchedule),
    /// A one-off Migration.
    Migration(Migration),
    /// A Rule (kept for the workers' pre- and post-exec hooks).
    Rule(avocet_types::Rule),
    /// An ApplicationRegistration (kept for resource collection).
    ApplicationRegistration(avocet_types::ApplicationRegistration),
}

impl CatalogObject {
    /// Returns the object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            CatalogObject::ClusterPair(_) => Kind::ClusterPair,
            CatalogObject::SchedulePolicy(_) => Kind::SchedulePolicy,
            CatalogObject::NamespacedSchedulePolicy(_) => Kind::NamespacedSchedulePolicy,
            CatalogObject::MigrationSchedule(_) => Kind::MigrationSchedule,
            CatalogObject::Migration(_) => Kind::Migration,
            CatalogObject::Rule(_) => Kind::Rule,
            CatalogObject::ApplicationRegistration(_) => Kind::ApplicationRegistration,
        }
    }

    /// Returns the object's key.
    pub fn key(&self) -> ObjectKey {
        let metadata = match self {
            CatalogObject::ClusterPair(object) => &object.metadata,
            CatalogObject::SchedulePolicy(object) => &object.metadata,
            CatalogObject::NamespacedSchedulePolicy(object) => &object.metadata,
            CatalogObject::MigrationSchedule(object) => &object.metadata,
            CatalogObject::Migration(object) => &object.metadata,
            CatalogObject::Rule(object) => &object.metadata,
            CatalogObject::ApplicationRegistration(object) => &object.metadata,
        };
        ObjectKey::new(
            metadata.namespace.clone().unwrap_or_default(),
            metadata.name.clone().unwrap_or_default(),
        )
    }

    /// Returns the catalog object of a validated document, with its namespace set (objects of
    /// namespaced kinds without one land in `default_namespace`, as with `kubectl apply`); the
    /// error names a kind the catalog does not store (none today).
    pub fn from_stork(object: StorkObject, default_namespace: &str) -> Result<Self, Kind> {
        fn place(
            metadata: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
            ns: &str,
        ) {
            if metadata.namespace.as_deref().is_none_or(str::is_empty) {
                metadata.namespace = Some(ns.to_owned());
            }
        }
        Ok(match object {
            StorkObject::ClusterPair(mut object) => {
                place(&mut object.metadata, default_namespace);
                CatalogObject::ClusterPair(object)
            }
            StorkObject::SchedulePolicy(mut object) => {
                object.metadata.namespace = None;
                CatalogObject::SchedulePolicy(object)
            }
            StorkObject::NamespacedSchedulePolicy(mut object) => {
                place(&mut object.metadata, default_namespace);
                CatalogObject::NamespacedSchedulePolicy(object)
            }
            StorkObject::MigrationSchedule(mut object) => {
                place(&mut object.metadata, default_namespace);
                CatalogObject::MigrationSchedule(object)
            }
            StorkObject::Migration(mut object) => {
                place(&mut object.metadata, default_namespace);
                CatalogObject::Migration(object)
            }
            StorkObject::Rule(mut object) => {
                place(&mut object.metadata, default_namespace);
                CatalogObject::Rule(object)
            }
            StorkObject::ApplicationRegistration(mut object) => {
                object.metadata.namespace = None;
                CatalogObject::ApplicationRegistration(object)
            }
        })
    }
}

/// Proposes that a lane's due slot fire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fire {
    /// Names the schedule.
    pub schedule: ObjectKey,
    /// Gives the schedule's uid as the planner saw it (a recreated schedule is another one).
    pub uid: String,
    /// Names the policy type.
    pub policy_type: PolicyType,
    /// Gives the due slot.
    pub slot: DateTime<Utc>,
    /// Gives the leader's clock reading.
    pub at: DateTime<Utc>,
}

/// Reports how a leased migration ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// Gives the result: Successful, PartialSuccess or Failed.
    pub status: MigrationStatusType,
    /// Explains a failure.
    pub reason: String,
    /// Gives the final counts.
    pub progress: Progress,
    /// Lists per-volume outcomes.
    pub volumes: Vec<MigrationVolumeInfo>,
    /// Lists per-object outcomes.
    pub resources: Vec<MigrationResourceInfo>,
}

/// Changes the catalog; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Command {
    /// Replaces the group-wide settings.
    Configure {
        /// Gives the new settings.
        settings: Settings,
        /// Gives the leader's clock reading.
        at: DateTime<Utc>,
    },
    /// Creates or updates an object, as `kubectl apply` does (status is kept, never taken
    /// from the input).
    Put {
        /// Holds the object.
        object: Box<CatalogObject>,
        /// Gives the leader's clock reading.
        at: DateTime<Utc>,
    },
    /// Stores object-store credentials under a new name.
    PutCredential {
        /// Holds the credential, its secrets sealed.
        credential: Box<Credential>,
        /// Gives the leader's clock reading.
        at: DateTime<Utc>,
    },
    /// Deletes stored credentials.
    DeleteCredential {
        /// Names them.
        name: String,
        /// Gives the leader's clock reading.
        at: DateTime<Utc>,
    },
    /// Deletes an object.
    Delete {
        /// Names the kind.
        kind: Kind,
        /// Names the object.
        key: ObjectKey,
        /// Gives the leader's clock reading.
        at: DateTime<Utc>,
    },
    /// Suspends or resumes a schedule.
    SetSuspend {
        /// Names the schedule.
        schedule: ObjectKey,
        /// Says suspend (true) or resume (false).
        suspend: bool,
        /// Gives the leader's clock reading.
        at: DateTime<Utc>,
    },
    /// Fires a due slot.
    Fire(Fire),
    /// Cancels a migration that has not ended.
    Cancel {
        /// Names the migration.
        migration: ObjectKey,
        /// Gives the leader's clock reading.
        at: DateTime<Utc>,
    },
    /// Leases the oldest queued migration to a worker.
    Lease {
        /// Names the worker.
        worker: String,
        /// Gives the lease's length in milliseconds (at least 1,000).
        duration_ms: u64,
        /// Gives the leader's clock reading.
        at: DateTime<Utc>,
    },
    /// Extends a lease.
    Renew {
        /// Names the migration.
        migration: ObjectKey,
        /// Gives the lease's fencing token.
        token: u64,
        /// Gives the new length from `at`, in milliseconds (at least 1,000).
        duration_ms: u64,
        /// Gives the leader's clock reading.
        at: DateTime<Utc>,
    },
    /// Reports a leased migration's stage and counts.
    Report {
        /// Names the migration.
        migration: ObjectKey,
        /// Gives the lease's fencing token.
        token: u64,
        /// Names the stage the worker is in.
        stage: MigrationStage,
        /// Gives the counts so far.
        progress: Progress,
        /// Gives the leader's clock reading.
        at: DateTime<Utc>,
    },
    /// Ends a leased migration.
    Complete {
        /// Names the migration.
        migration: ObjectKey,
        /// Gives the lease's fencing token.
        token: u64,
        /// Says how it ended.
        outcome: Box<Outcome>,
        /// Gives the leader's clock reading.
        at: DateTime<Utc>,
    },
    /// Takes back a lease that lapsed: the migration is queued again or, after its last
    /// attempt, failed.
    ExpireLease {
        /// Names the migration.
        migration: ObjectKey,
        /// Gives the lapsed lease's fencing token.
        token: u64,
        /// Gives the leader's clock reading.
        at: DateTime<Utc>,
    },
    /// Records what the leader's pair checker found for a ClusterPair (Stork checks once;
    /// Avocet keeps checking, so a pair that breaks later turns Error with the reason).
    PairHealth {
        /// Names the pair.
        pair: ObjectKey,
        /// Gives the generation of the pair that was checked; a result for an older spec is
        /// dropped (0: not known).
        #[serde(default)]
        generation: i64,
        /// Says whether the destination's Kubernetes API answers with the pair's credentials.
        scheduler: ClusterPairStatusType,
        /// Says whether the destination's Avocet answers at `options.ip:port` with
        /// `options.token` (NotProvided without a token).
        storage: ClusterPairStatusType,
        /// Gives the destination's cluster id, as its Avocet reported it (empty: unknown).
        #[serde(default)]
        remote_storage_id: String,
        /// Says where the pair's volumes go (empty: not checked).
        #[serde(default)]
        object_store: String,
        /// Explains a check that failed (empty when none did).
        reason: String,
        /// Gives the leader's clock reading.
        at: DateTime<Utc>,
    },
    /// Fails a migration whose stage outlived the stage deadline.
    Timeout {
        /// Names the migration.
        migration: ObjectKey,
        /// Names the stage the planner saw.
        stage: MigrationStage,
        /// Gives the leader's clock reading.
        at: DateTime<Utc>,
    },
}

/// Returns a reference (shared or mutable, as `command` is) to the `at` field every command has.
macro_rules! at_of {
    ($command:expr) => {
        match $command {
            Command::Configure { at, .. }
            | Command::Put { at, .. }
            | Command::Delete { at, .. }
            | Command::PutCredential { at, .. }
            | Command::DeleteCredential { at, .. }
            | Command::SetSuspend { at, .. }
            | Command::Cancel { at, .. }
            | Command::Lease { at, .. }
            | Command::Renew { at, .. }
            | Command::Report { at, .. }
            | Command::Complete { at, .. }
            | Command::ExpireLease { at, .. }
            | Command::Timeout { at, .. }
            | Command::PairHealth { at, .. }
            | Command::Fire(Fire { at, .. }) => at,
        }
    };
}

impl Command {
    /// Replaces the clock reading the command carries (the leader stamps its own).
    pub fn stamp(&mut self, now: DateTime<Utc>) {
        *at_of!(self) = now;
    }

    /// Returns the leader's clock reading the command carries.
    pub fn at(&self) -> DateTime<Utc> {
        *at_of!(self)
    }
}

/// Says what became of an accepted fire's slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Disposition {
    /// A migration started for it.
    Started {
        /// Names the migration.
        migration: ObjectKey,
    },
    /// It waits for the running migration to end, then starts.
    Buffered {
        /// Names the running migration.
        behind: ObjectKey,
    },
    /// It was coalesced into the slot already buffered.
    Absorbed {
        /// Names the buffered slot's type.
        into_type: PolicyType,
        /// Gives the buffered slot.
        into_slot: DateTime<Utc>,
    },
}

/// Answers a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Response {
    /// The settings were replaced.
    Configured,
    /// The object was created or updated.
    Put {
        /// Names the object.
        key: ObjectKey,
        /// Gives its uid.
        uid: String,
        /// Says whether it was created (else updated or unchanged).
        created: bool,
        /// Says whether anything changed.
        changed: bool,
    },
    /// The credential was stored.
    CredentialStored,
    /// The credential was deleted.
    CredentialDeleted,
    /// The object was deleted.
    Deleted {
        /// Names the object.
        key: ObjectKey,
        /// Counts the migrations deleted with it.
        migrations: u64,
    },
    /// The schedule's suspend flag is set.
    Suspended {
        /// Says whether the flag changed.
        changed: bool,
    },
    /// The slot fired.
    Fired {
        /// Gives the slot.
        slot: DateTime<Utc>,
        /// Describes earlier missed slots of the lane coalesced into it.
        coalesced: Option<CoalescedSlots>,
        /// Says what became of it.
        disposition: Disposition,
    },
    /// The slot was fired or coalesced before: nothing changed.
    Duplicate {
        /// Gives the lane's mark.
        mark: DateTime<Utc>,
    },
    /// A migration was leased.
    Leased {
        /// Holds the migration.
        migration: Box<Migration>,
        /// Gives the fencing token.
        token: u64,
        /// Gives when the lease lapses unless renewed.
        expires_at: DateTime<Utc>,
    },
    /// No migration waits for a worker.
    NoWork,
    /// The command was applied.
    Done,
    /// A ClusterPair's health was recorded.
    PairHealth {
        /// Says whether either status changed.
        changed: bool,
    },
    /// The command was refused; nothing changed.
    Rejected(Rejection),
}

/// Says why a command changed nothing, as a sentence naming the object and the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
pub enum Rejection {
    /// A credential of that name exists.
    #[error("credentials {name:?} already exist; delete them first to replace them")]
    CredentialExists {
        /// Names them.
        name: String,
    },
    /// No credential of that name exists.
    #[error("credentials {name:?} not found")]
    NoCredential {
        /// Names them.
        name: String,
    },
    /// The object does not exist.
    #[error("{kind:?} {key} not found")]
    NotFound {
        /// Names the kind.
        kind: Kind,
        /// Names the object.
        key: ObjectKey,
    },
    /// The schedule was deleted and created again since the planner looked.
    #[error("MigrationSchedule {key} was recreated (uid {uid} is gone)")]
    StaleSchedule {
        /// Names the schedule.
        key: ObjectKey,
        /// Gives the stale uid.
        uid: String,
    },
    /// The schedule is suspended.
    #[error("MigrationSchedule {key} is suspended")]
    Suspended {
        /// Names the schedule.
        key: ObjectKey,
    },
    /// The schedule's policy has no section of the type.
    #[error("MigrationSchedule {key} has no {policy_type} policy")]
    NoSuchLane {
        /// Names the schedule.
        key: ObjectKey,
        /// Names the type.
        policy_type: PolicyType,
    },
    /// The slot lies after the leader's clock reading (T-1).
    #[error("slot {slot} is not due yet at {at}")]
    NotDue {
        /// Gives the slot.
        slot: DateTime<Utc>,
        /// Gives the clock reading.
        at: DateTime<Utc>,
    },
    /// The instant is not a slot of the lane's cadence.
    #[error("{slot} is not a {policy_type} slot of MigrationSchedule {key}")]
    NotASlot {
        /// Names the schedule.
        key: ObjectKey,
        /// Names the type.
        policy_type: PolicyType,
        /// Gives the instant.
        slot: DateTime<Utc>,
    },
    /// The slot precedes the lane's start or the schedule's last resume.
    #[error("slot {slot} is before {owed_from}, when MigrationSchedule {key} began owing slots")]
    NotOwed {
        /// Names the schedule.
        key: ObjectKey,
        /// Gives the slot.
        slot: DateTime<Utc>,
        /// Gives when slots became owed.
        owed_from: DateTime<Utc>,
    },
    /// The fencing token is not the current lease's.
    #[error("token {token} for Migration {migration} is stale{}", current.map(|c| format!(" (the current lease is {c})")).unwrap_or_else(|| " (no lease is held)".to_owned()))]
    StaleToken {
        /// Names the migration.
        migration: ObjectKey,
        /// Gives the token offered.
        token: u64,
        /// Gives the current lease's token.
        current: Option<u64>,
    },
    /// The lease has not lapsed yet.
    #[error("the lease on Migration {migration} lasts until {expires_at}")]
    LeaseLive {
        /// Names the migration.
        migration: ObjectKey,
        /// Gives when it lapses.
        expires_at: DateTime<Utc>,
    },
    /// The migration already ended.
    #[error("Migration {migration} already ended ({status})")]
    Ended {
        /// Names the migration.
        migration: ObjectKey,
        /// Gives its result.
        status: MigrationStatusType,
    },
    /// The migration left the stage the planner saw, or has time left in it.
    #[error("Migration {migration} is not past its deadline in stage {stage:?}")]
    NotOverdue {
        /// Names the migration.
        migration: ObjectKey,
        /// Names the stage.
        stage: MigrationStage,
    },
    /// Other objects use this one.
    #[error("{kind:?} {key} is used by MigrationSchedule {user}")]
    InUse {
        /// Names the kind.
        kind: Kind,
        /// Names the object.
        key: ObjectKey,
        /// Names one user.
        user: ObjectKey,
    },
    /// The object or value is not acceptable.
    #[error("{message}")]
    Invalid {
        /// Explains, naming the field and the value.
        message: String,
    },
}

impl fmt::Display for CatalogObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}", self.kind(), self.key())
    }
}
