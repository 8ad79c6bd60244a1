//! Resource copy: the Kubernetes objects of a migration, from the source cluster to a standby.
//!
//! Pure logic lives apart from IO so that it is tested without clusters: `kinds` (what is
//! collected and in which order it is applied), `select` (Stork's collection rules, owner
//! pruning, the metadata that travels), `transform` (the standby transforms with Stork's keys,
//! provenance and the resource hash) and `registrations` (built-in ApplicationRegistrations).
//! `copy` does the IO through the kube crate: discovery and paged lists on the source,
//! server-side apply under the `avocet` field manager on the destination.
//!
//! Where Avocet is better than Stork (reference §7.2): nothing is deleted and recreated — a
//! changed object is patched by server-side apply, so a PVC keeps its identity and an object a
//! user changed on the standby keeps what Avocet does not manage; DaemonSets are held off the
//! standby; purge removes only objects Avocet migrated; and every failure names the object.

pub mod activate;
pub mod copy;
pub mod kinds;
pub mod registrations;
pub mod select;
pub mod transform;
