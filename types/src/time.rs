//! Timestamps as Kubernetes writes them: RFC 3339 in UTC, whole seconds.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Holds an instant serialized like Kubernetes' `metav1.Time` (`2019-02-14T22:16:51Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub DateTime<Utc>);

impl Time {
    /// Returns the instant.
    pub fn instant(self) -> DateTime<Utc> {
        self.0
    }
}

impl From<DateTime<Utc>> for Time {
    fn from(instant: DateTime<Utc>) -> Self {
        Time(instant)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Secs, true))
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|instant| Time(instant.with_timezone(&Utc)))
            .map_err(|error| {
                serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time: {error}"))
            })
    }
}

impl JsonSchema for Time {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Time".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "format": "date-time" })
    }
}

/// Returns `instant` as the Kubernetes `metav1.Time` that object metadata carries.
pub fn meta_time(instant: DateTime<Utc>) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    let nanos = i32::try_from(instant.timestamp_subsec_nanos()).unwrap_or(0);
    let timestamp = k8s_openapi::jiff::Timestamp::new(instant.timestamp(), nanos)
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(timestamp)
}

/// Returns a Kubernetes `metav1.Time` as a chrono instant.
pub fn from_meta_time(
    time: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> DateTime<Utc> {
    DateTime::from_timestamp(
        time.0.as_second(),
        u32::try_from(time.0.subsec_nanosecond()).unwrap_or(0),
    )
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_as_kubernetes_writes_it() {
        let time: Time = serde_json::from_str("\"2019-02-14T22:16:51Z\"").unwrap();
        assert_eq!(serde_json::to_string(&time).unwrap(), "\"2019-02-14T22:16:51Z\"");
        let offset: Time = serde_json::from_str("\"2019-02-14T23:16:51+01:00\"").unwrap();
        assert_eq!(offset, time);
        assert!(serde_json::from_str::<Time>("\"yesterday\"").is_err());
    }

    #[test]
    fn meta_time_round_trips() {
        let instant = DateTime::parse_from_rfc3339("2026-03-08T07:30:00.25Z").unwrap().to_utc();
        assert_eq!(from_meta_time(&meta_time(instant)), instant);
        let json = serde_json::to_value(meta_time(instant)).unwrap();
        assert_eq!(json, "2026-03-08T07:30:00Z", "whole seconds, as Kubernetes writes them");
    }
}
