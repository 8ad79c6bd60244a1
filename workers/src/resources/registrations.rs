//! ApplicationRegistrations built in (reference §1.6): the custom resources of common operators
//! and how each is suspended on a standby. User registrations are read the same way and win over
//! a built-in one for the same kind.

use avocet_types::registration::ApplicationResource;
use serde_json::json;

/// (group, version, kind, suspend path, suspend type, suspend value, pods path).
const BUILT_IN: &[(&str, &str, &str, &str, &str, &str, &str)] = &[
    (
        "cassandra.datastax.com",
        "v1beta1",
        "CassandraDatacenter",
        "spec.stopped",
        "bool",
        "true",
        "",
    ),
    (
        "couchbase.com",
        "v2",
        "CouchbaseCluster",
        "spec.paused",
        "bool",
        "true",
        "status.members.ready",
    ),
    ("couchbase.com", "v2", "CouchbaseBucket", "", "", "", ""),
    ("couchbase.com", "v2", "CouchbaseEphemeralBucket", "", "", "", ""),
    ("couchbase.com", "v2", "CouchbaseMemcachedBucket", "", "", "", ""),
    ("couchbase.com", "v2", "CouchbaseReplication", "", "", "", ""),
    ("couchbase.com", "v2", "CouchbaseUser", "", "", "", ""),
    ("couchbase.com", "v2", "CouchbaseGroup", "", "", "", ""),
    ("couchbase.com", "v2", "CouchbaseRoleBinding", "", "", "", ""),
    ("couchbase.com", "v2", "CouchbaseBackup", "", "", "", ""),
    ("couchbase.com", "v2", "CouchbaseBackupRestore", "", "", "", ""),
    ("ibp.com", "v1beta1", "IBPCA", "spec.replicas", "int", "", ""),
    ("ibp.com", "v1beta1", "IBPConsole", "spec.replicas", "int", "", ""),
    ("ibp.com", "v1beta1", "IBPOrderer", "spec.replicas", "int", "", ""),
    ("ibp.com", "v1beta1", "IBPPeer", "spec.replicas", "int", "", ""),
    ("app.redislabs.com", "v1", "RedisEnterpriseCluster", "", "", "", ""),
    ("app.redislabs.com", "v1alpha1", "RedisEnterpriseDatabase", "", "", "", ""),
    ("weblogic.oracle", "v8", "Domain", "spec.serverStartPolicy", "string", "NEVER", ""),
    ("rabbitmq.com", "v1beta1", "RabbitmqCluster", "spec.replicas", "int", "", ""),
    ("pxc.percona.com", "v1", "PerconaXtraDBCluster", "spec.pause", "bool", "true", ""),
];

/// The built-in registrations.
pub fn built_in() -> Vec<ApplicationResource> {
    BUILT_IN
        .iter()
        .map(|(group, version, kind, path, kind_of_value, value, pods)| {
            serde_json::from_value(json!({
                "group": group, "version": version, "kind": kind,
                "suspendOptions": {"path": path, "type": kind_of_value, "value": value},
                "podsPath": pods,
            }))
            .unwrap_or_default()
        })
        .collect()
}

/// The registration for a kind: the user's when there is one, else the built-in one.
pub fn find<'r>(
    user: &'r [ApplicationResource],
    built_in: &'r [ApplicationResource],
    group: &str,
    kind: &str,
) -> Option<&'r ApplicationResource> {
    let matches = |r: &&ApplicationResource| r.group == group && r.kind == kind;
    user.iter().find(matches).or_else(|| built_in.iter().find(matches))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_kinds_are_registered_with_their_suspend_rules() {
        let all = built_in();
        let cassandra =
            find(&[], &all, "cassandra.datastax.com", "CassandraDatacenter").expect("registered");
        assert_eq!(cassandra.suspend_options.path, "spec.stopped");
        assert_eq!(cassandra.suspend_options.value_type, "bool");
        for kind in ["IBPCA", "IBPConsole", "IBPOrderer", "IBPPeer"] {
            assert_eq!(
                find(&[], &all, "ibp.com", kind).map(|r| r.suspend_options.path.as_str()),
                Some("spec.replicas")
            );
        }
        assert!(find(&[], &all, "app.redislabs.com", "RedisEnterpriseDatabase").is_some());
        let mine: ApplicationResource = serde_json::from_value(
            json!({"group": "cassandra.datastax.com", "kind": "CassandraDatacenter",
            "version": "v1beta1", "keepStatus": true}),
        )
        .expect("registration");
        assert!(
            find(
                std::slice::from_ref(&mine),
                &all,
                "cassandra.datastax.com",
                "CassandraDatacenter"
            )
            .is_some_and(|r| r.keep_status)
        );
    }
}
