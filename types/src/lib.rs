//! Stork's `stork.libopenstorage.org/v1alpha1` API, as Rust types that parse users' YAML verbatim.
//!
//! Avocet accepts the Stork async-DR API unchanged, so the shapes here follow Stork's Go structs
//! field by field: the exact JSON names, the pointer-bool defaults (`startApplications` false,
//! `includeResources`/`includeVolumes` true, `skipDeletedNamespaces` true), the enum strings of
//! stages and statuses (including the empty "Initial" string), and `status.items` keyed by policy
//! type. Everything else in Avocet names these types, so this crate does no IO and pulls in no
//! async runtime.
//!
//! Three jobs live here besides the shapes:
//!
//! - **Validation that names every bad field.** [`document::parse_documents`] reads YAML or JSON
//!   with one or more documents and returns, per document, either a typed [`StorkObject`] or every
//!   problem found in it at once. Checking runs in two passes: a structural pass walks the raw
//!   value against the same OpenAPI schema the CRDs carry (types, unknown fields, enum strings),
//!   so `avocetctl validate` agrees with what a Kubernetes API server would accept; a semantic pass
//!   then checks what a schema cannot say (Kitchen times, weekday aliases, label syntax, a
//!   kubeconfig whose current context exists). Each error is `path: message` with the bad value,
//!   e.g. `policy.daily.time: "25:61PM" is not a time like 10:14PM`.
//! - **Parsed policy rules.** [`policy::PolicyRule`] is the validated form of a policy section
//!   (parse, don't validate): the scheduler computes due slots only from these.
//! - **CRD manifests.** [`crd::custom_resource_definitions`] builds the CRDs in `deploy/base/crds/`
//!   from these types; a test fails when the committed files are stale.
//!
//! The trade-off: Stork's own CRDs accept anything (`x-kubernetes-preserve-unknown-fields`), so a
//! typo such as `intervalMinute` silently disables a policy there. Ours carry structural schemas
//! and reject unknown fields, which is what `kubectl apply` users of any modern CRD expect.

pub mod clusterpair;
pub mod crd;
pub mod document;
pub mod meta;
pub mod migration;
pub mod policy;
pub mod registration;
pub mod rule;
pub mod schedule;
pub mod schema;
pub mod time;
pub mod validate;

pub use clusterpair::ClusterPair;
pub use document::{Document, DocumentError, StorkObject, parse_documents};
pub use meta::{API_GROUP, API_VERSION, Kind};
pub use migration::Migration;
pub use policy::{NamespacedSchedulePolicy, PolicyRule, PolicyType, SchedulePolicy};
pub use registration::ApplicationRegistration;
pub use rule::Rule;
pub use schedule::MigrationSchedule;
pub use validate::{FieldError, ValidationErrors};
