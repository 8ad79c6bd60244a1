//! Label and field selectors, parsed as the API server parses them.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed `labelSelector`: every requirement must hold (AND).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LabelSelector {
    requirements: Vec<Requirement>,
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0_i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 317
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && key.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

fn valid_value(value: &str) -> bool {
    value.len() <= 63
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),h notin (i),j,!k`.
    pub(crate) fn parse(text: &str) -> ApiResult<Self> {
        let bad = |why: &str| {
            ApiError::bad_request(format!(
                "unable to parse requirement: labelSelector {text:?}: {why}"
            ))
        };
        let mut requirements = Vec::new();
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        for part in split_top(text) {
            let part = part.trim();
            if part.is_empty() {
                return Err(bad("empty requirement"));
            }
            let req = if let Some(key) = part.strip_prefix('!') {
                Requirement::DoesNotExist(key.trim().to_owned())
            } else if let Some((key, rest)) = split_set_op(part, " notin ") {
                Requirement::NotIn(
                    key,
                    parse_set(rest).ok_or_else(|| bad("expected a (value,...) set"))?,
                )
            } else if let Some((key, rest)) = split_set_op(part, " in ") {
                Requirement::In(
                    key,
                    parse_set(rest).ok_or_else(|| bad("expected a (value,...) set"))?,
                )
            } else if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, value)) =
                part.split_once("==").or_else(|| part.split_once('='))
            {
                Requirement::Equals(key.trim().to_owned(), value.trim().to_owned())
            } else {
                Requirement::Exists(part.to_owned())
            };
            let (key, values): (&str, Vec<&str>) = match &req {
                Requirement::Equals(k, v) | Requirement::NotEquals(k, v) => (k, vec![v.as_str()]),
                Requirement::In(k, vs) | Requirement::NotIn(k, vs) => {
                    (k, vs.iter().map(String::as_str).collect())
                }
                Requirement::Exists(k) | Requirement::DoesNotExist(k) => (k, Vec::new()),
            };
            if !valid_key(key) {
                return Err(bad(&format!("invalid label key {key:?}")));
            }
            if let Some(v) = values.iter().find(|v| !valid_value(v)) {
                return Err(bad(&format!("invalid label value {v:?}")));
            }
            requirements.push(req);
        }
        Ok(Self { requirements })
    }

    /// Whether an object's labels satisfy every requirement.
    pub(crate) fn matches(&self, labels: &Value) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }
}

fn split_set_op(part: &str, op: &str) -> Option<(String, String)> {
    let (key, rest) = part.split_once(op)?;
    Some((key.trim().to_owned(), rest.trim().to_owned()))
}

fn parse_set(text: String) -> Option<Vec<String>> {
    let inner = text.strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect())
}

/// A parsed `fieldSelector`: `path=value` / `path!=value` terms over the object's fields
/// (`metadata.name`, `metadata.namespace`, `status.phase`, `type` …), ANDed.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parses `metadata.name=web,status.phase!=Running`.
    pub(crate) fn parse(text: &str) -> ApiResult<Self> {
        let mut terms = Vec::new();
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        for part in text.split(',') {
            let (path, equal, value) = if let Some((p, v)) = part.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (p, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: fieldSelector {text:?}: {part:?} is not of the form field=value"
                )));
            };
            let path = path.trim();
            if path.is_empty() || !path.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
                return Err(ApiError::bad_request(format!("field label not supported: {path}")));
            }
            terms.push((path.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self { terms })
    }

    /// Whether the object satisfies every term (a missing field reads as the empty string).
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|(path, equal, value)| {
            let mut at = obj;
            for seg in path.split('.') {
                at = &at[seg];
            }
            let actual = match at {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (actual == *value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_operator_matches_as_kubernetes_does() {
        let labels = json!({"app": "web", "tier": "db"});
        for (sel, want) in [
            ("app=web", true),
            ("app==web,tier=db", true),
            ("app!=web", false),
            ("app in (web, api)", true),
            ("tier notin (db)", false),
            ("missing notin (x)", true),
            ("app", true),
            ("!app", false),
            ("!missing,app in (web)", true),
            ("", true),
        ] {
            assert_eq!(LabelSelector::parse(sel).expect(sel).matches(&labels), want, "{sel}");
        }
    }

    #[test]
    fn a_malformed_selector_is_a_bad_request_naming_it() {
        for bad in ["app in web", "a=b,,c", "bad key=x", "a=not valid"] {
            let err = LabelSelector::parse(bad).expect_err(bad);
            assert_eq!(err.code, 400);
            assert!(err.message.contains("labelSelector"), "{}", err.message);
        }
        assert_eq!(FieldSelector::parse("metadata.name").expect_err("no value").code, 400);
    }

    #[test]
    fn field_selectors_read_dotted_paths() {
        let obj = json!({"metadata": {"name": "web", "namespace": "prod"}, "type": "Opaque"});
        assert!(
            FieldSelector::parse("metadata.name=web,metadata.namespace==prod")
                .expect("ok")
                .matches(&obj)
        );
        assert!(!FieldSelector::parse("type!=Opaque").expect("ok").matches(&obj));
    }
}
