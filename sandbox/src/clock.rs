//! The sandbox's one wall-clock read: object timestamps (`creationTimestamp`,
//! `deletionTimestamp`, managedFields times) and the ages `kubectl get` prints are wall time on a
//! real cluster too.

/// The current UTC time.
#[allow(clippy::disallowed_methods)] // The sanctioned wall-clock read for timestamps (STYLE.md rule 4).
pub(crate) fn now_utc() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}
