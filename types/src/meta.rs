//! The API group, the kinds Avocet knows, and what Kubernetes needs to know about each kind.

use std::fmt;

/// Names the API group of every Stork kind.
pub const API_GROUP: &str = "stork.libopenstorage.org";

/// Names the only API version of the Stork kinds.
pub const API_VERSION: &str = "v1alpha1";

/// Names the `apiVersion` string every Stork document carries.
pub const API_GROUP_VERSION: &str = "stork.libopenstorage.org/v1alpha1";

/// Lists the Stork kinds that asynchronous DR uses.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Kind {
    /// Credentials and options for one destination cluster.
    ClusterPair,
    /// A cluster-scoped schedule policy.
    SchedulePolicy,
    /// A namespaced schedule policy that wins over a SchedulePolicy of the same name.
    NamespacedSchedulePolicy,
    /// A migration template fired on a policy's schedule.
    MigrationSchedule,
    /// One migration run.
    Migration,
    /// How to collect and suspend the custom resources of one application.
    ApplicationRegistration,
    /// Commands to run in pods before or after a migration.
    Rule,
}

/// Says whether objects of a kind live in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Objects live in a namespace.
    Namespaced,
    /// Objects are cluster-wide.
    Cluster,
}

impl Kind {
    /// Lists every kind, in the order documentation and CRD files use.
    pub const ALL: [Kind; 7] = [
        Kind::ClusterPair,
        Kind::SchedulePolicy,
        Kind::NamespacedSchedulePolicy,
        Kind::MigrationSchedule,
        Kind::Migration,
        Kind::ApplicationRegistration,
        Kind::Rule,
    ];

    /// Returns the kind's name as documents spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ClusterPair => "ClusterPair",
            Kind::SchedulePolicy => "SchedulePolicy",
            Kind::NamespacedSchedulePolicy => "NamespacedSchedulePolicy",
            Kind::MigrationSchedule => "MigrationSchedule",
            Kind::Migration => "Migration",
            Kind::ApplicationRegistration => "ApplicationRegistration",
            Kind::Rule => "Rule",
        }
    }

    /// Returns the kind named `name` exactly as documents spell it.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Returns the kind named `text` in any spelling kubectl accepts: the kind itself, its
    /// singular or plural, or a short name, in any case (`MigrationSchedule`, `migrationschedules`,
    /// `ms`).
    pub fn from_any_name(text: &str) -> Option<Kind> {
        let lower = text.to_ascii_lowercase();
        Kind::ALL.into_iter().find(|kind| {
            kind.singular() == lower
                || kind.plural() == lower
                || kind.short_names().contains(&lower.as_str())
        })
    }

    /// Returns the lowercase plural used in API paths and by kubectl.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::ClusterPair => "clusterpairs",
            Kind::SchedulePolicy => "schedulepolicies",
            Kind::NamespacedSchedulePolicy => "namespacedschedulepolicies",
            Kind::MigrationSchedule => "migrationschedules",
            Kind::Migration => "migrations",
            Kind::ApplicationRegistration => "applicationregistrations",
            Kind::Rule => "rules",
        }
    }

    /// Returns the lowercase singular name.
    pub fn singular(self) -> &'static str {
        match self {
            Kind::ClusterPair => "clusterpair",
            Kind::SchedulePolicy => "schedulepolicy",
            Kind::NamespacedSchedulePolicy => "namespacedschedulepolicy",
            Kind::MigrationSchedule => "migrationschedule",
            Kind::Migration => "migration",
            Kind::ApplicationRegistration => "applicationregistration",
            Kind::Rule => "rule",
        }
    }

    /// Returns the short names kubectl accepts (Stork's storkctl aliases).
    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Kind::ClusterPair => &["cp"],
            Kind::SchedulePolicy => &["sp"],
            Kind::NamespacedSchedulePolicy => &["nsp"],
            Kind::MigrationSchedule => &["ms"],
            Kind::Migration => &["mig"],
            Kind::ApplicationRegistration => &["ar"],
            Kind::Rule => &[],
        }
    }

    /// Returns whether the kind is namespaced or cluster-wide.
    pub fn scope(self) -> Scope {
        match self {
            Kind::SchedulePolicy | Kind::ApplicationRegistration => Scope::Cluster,
            Kind::ClusterPair
            | Kind::NamespacedSchedulePolicy
            | Kind::MigrationSchedule
            | Kind::Migration
            | Kind::Rule => Scope::Namespaced,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implements `kube_core::Resource` for a Stork kind so that kube's `Api<K>` can serve it.
macro_rules! stork_resource {
    ($ty:ty, $kind:expr, $scope:ty) => {
        impl kube_core::Resource for $ty {
            type DynamicType = ();
            type Scope = $scope;

            fn kind(_: &()) -> std::borrow::Cow<'_, str> {
                $kind.as_str().into()
            }

            fn group(_: &()) -> std::borrow::Cow<'_, str> {
                $crate::meta::API_GROUP.into()
            }

            fn version(_: &()) -> std::borrow::Cow<'_, str> {
                $crate::meta::API_VERSION.into()
            }

            fn plural(_: &()) -> std::borrow::Cow<'_, str> {
                $kind.plural().into()
            }

            fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }

            fn meta_mut(
                &mut self,
            ) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}
pub(crate) use stork_resource;

/// Returns the `apiVersion` default for typed objects built in code.
pub(crate) fn default_api_version() -> String {
    API_GROUP_VERSION.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_found_by_every_spelling_kubectl_accepts() {
        for text in ["MigrationSchedule", "migrationschedule", "MigrationSchedules", "ms"] {
            assert_eq!(Kind::from_any_name(text), Some(Kind::MigrationSchedule), "{text}");
        }
        assert_eq!(Kind::from_any_name("sp"), Some(Kind::SchedulePolicy));
        assert_eq!(Kind::from_any_name("pod"), None);
    }
}
