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
}
