//! Which kinds a migration collects, and in which order they are applied on the destination.

/// Where a kind falls in the apply order: definitions and namespaces first, then identities and
/// configuration, storage, network endpoints, workloads, and what points at workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    /// CustomResourceDefinitions of registered kinds.
    Definitions = 0,
    /// ServiceAccounts and RBAC.
    Identity = 1,
    /// ConfigMaps, Secrets, quotas, limits, priority classes.
    Configuration = 2,
    /// PersistentVolumes.
    Volumes = 3,
    /// PersistentVolumeClaims.
    Claims = 4,
    /// Services and Endpoints.
    Network = 5,
    /// Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs.
    Workloads = 6,
    /// Ingresses, NetworkPolicies, PodDisruptionBudgets, webhooks.
    Edges = 7,
    /// Registered custom resources.
    Custom = 8,
}

/// The built-in kinds Stork collects (reference §4.3), by API group and kind, with their rank.
/// Pods and VolumeSnapshots are never collected; Jobs only when the migration opts in.
const BUILT_IN: &[(&str, &str, Rank)] = &[
    ("", "ServiceAccount", Rank::Identity),
    ("rbac.authorization.k8s.io", "ClusterRole", Rank::Identity),
    ("rbac.authorization.k8s.io", "Role", Rank::Identity),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding", Rank::Identity),
    ("rbac.authorization.k8s.io", "RoleBinding", Rank::Identity),
    ("", "ConfigMap", Rank::Configuration),
    ("", "Secret", Rank::Configuration),
    ("", "ResourceQuota", Rank::Configuration),
    ("", "LimitRange", Rank::Configuration),
    ("scheduling.k8s.io", "PriorityClass", Rank::Configuration),
    ("", "PersistentVolume", Rank::Volumes),
    ("", "PersistentVolumeClaim", Rank::Claims),
    ("", "Service", Rank::Network),
    ("", "Endpoints", Rank::Network),
    ("apps", "Deployment", Rank::Workloads),
    ("apps", "StatefulSet", Rank::Workloads),
    ("apps", "DaemonSet", Rank::Workloads),
    ("apps", "ReplicaSet", Rank::Workloads),
    ("apps.openshift.io", "DeploymentConfig", Rank::Workloads),
    ("batch", "CronJob", Rank::Workloads),
    ("batch", "Job", Rank::Workloads),
    ("networking.k8s.io", "Ingress", Rank::Edges),
    ("networking.k8s.io", "NetworkPolicy", Rank::Edges),
    ("policy", "PodDisruptionBudget", Rank::Edges),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", Rank::Edges),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration", Rank::Edges),
    ("route.openshift.io", "Route", Rank::Edges),
    ("image.openshift.io", "ImageStream", Rank::Edges),
    ("template.openshift.io", "Template", Rank::Edges),
];

/// The rank of a built-in kind Stork collects, or `None` for kinds it does not.
pub fn built_in_rank(group: &str, kind: &str) -> Option<Rank> {
    BUILT_IN.iter().find(|(g, k, _)| *g == group && *k == kind).map(|(_, _, rank)| *rank)
}

/// Kinds that are cluster-scoped but collected for the namespaces they serve.
pub fn cluster_scoped_collected(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        ("", "PersistentVolume")
            | ("rbac.authorization.k8s.io", "ClusterRole" | "ClusterRoleBinding")
            | ("scheduling.k8s.io", "PriorityClass")
            | (
                "admissionregistration.k8s.io",
                "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration"
            )
    )
}

/// Workload kinds whose replicas go to 0 on a standby.
pub fn scaled(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        ("apps", "Deployment" | "StatefulSet" | "ReplicaSet")
            | ("apps.openshift.io", "DeploymentConfig")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_put_storage_before_workloads_and_workloads_before_edges() {
        let rank = |g, k| built_in_rank(g, k).expect("collected");
        assert!(rank("", "ConfigMap") < rank("", "PersistentVolume"));
        assert!(rank("", "PersistentVolume") < rank("", "PersistentVolumeClaim"));
        assert!(rank("", "PersistentVolumeClaim") < rank("apps", "StatefulSet"));
        assert!(rank("apps", "Deployment") < rank("networking.k8s.io", "Ingress"));
        assert_eq!(built_in_rank("", "Pod"), None);
    }
}
