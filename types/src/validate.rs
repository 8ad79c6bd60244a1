//! Field paths, field errors, and the checks shared by every kind (names, labels).
//!
//! Every error names the field path and the bad value, in one shape:
//! `policy.daily.time: "25:61PM" is not a time like 10:14PM`.

use std::fmt;

/// Builds dotted field paths such as `spec.template.spec.namespaces[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(String);

impl FieldPath {
    /// Returns the empty path (the document root).
    pub fn root() -> Self {
        FieldPath(String::new())
    }

    /// Returns this path extended by an object field.
    pub fn field(&self, name: &str) -> Self {
        if self.0.is_empty() {
            FieldPath(name.to_owned())
        } else {
            FieldPath(format!("{}.{name}", self.0))
        }
    }

    /// Returns this path extended by a map key; keys that are not plain words are quoted.
    pub fn key(&self, key: &str) -> Self {
        let plain = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if plain { self.field(key) } else { FieldPath(format!("{}[{key:?}]", self.0)) }
    }

    /// Returns this path extended by a list index.
    pub fn index(&self, index: usize) -> Self {
        FieldPath(format!("{}[{index}]", self.0))
    }

    /// Returns the path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() { f.write_str("(document)") } else { f.write_str(&self.0) }
    }
}

/// Names one bad field, its value and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Says where the bad value is, e.g. `policy.daily.time`.
    pub path: String,
    /// Says what is wrong, quoting the bad value, e.g. `"25:61PM" is not a time like 10:14PM`.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Holds every problem found in one object, in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors {
    /// Lists the problems.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl ValidationErrors {
    /// Records a problem at `path`.
    pub fn push(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.errors.push(FieldError { path: path.to_string(), message: message.into() });
    }

    /// Returns whether no problem was recorded.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Returns `Ok(value)` when no problem was recorded, else the problems.
    pub fn into_result<T>(self, value: T) -> Result<T, ValidationErrors> {
        if self.errors.is_empty() { Ok(value) } else { Err(self) }
    }
}

/// Caps the length of a DNS subdomain name (RFC 1123), the rule for most object names.
pub const DNS_SUBDOMAIN_LENGTH_MAX: usize = 253;

/// Caps the length of a DNS label (RFC 1123), the rule for namespace names.
pub const DNS_LABEL_LENGTH_MAX: usize = 63;

/// Caps the length of a label value and of a label key's name part.
pub const LABEL_PART_LENGTH_MAX: usize = 63;

fn is_dns_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= DNS_LABEL_LENGTH_MAX
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Returns whether `text` is an RFC 1123 subdomain as Kubernetes checks it: at most 253
/// characters, dot-separated parts of lowercase letters, digits and '-' that start and end with a
/// letter or digit (unlike DNS itself, a part may be longer than 63 characters).
fn is_dns_subdomain(text: &str) -> bool {
    let part_ok = |part: &str| {
        let bytes = part.as_bytes();
        !bytes.is_empty()
            && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && bytes[0] != b'-'
            && bytes[bytes.len() - 1] != b'-'
    };
    text.len() <= DNS_SUBDOMAIN_LENGTH_MAX && text.split('.').all(part_ok)
}

/// Checks an object name: a DNS subdomain (lowercase letters, digits, '-' and '.').
pub fn check_object_name(errors: &mut ValidationErrors, path: &FieldPath, name: &str) {
    if name.is_empty() {
        errors.push(path, "is required");
    } else if !is_dns_subdomain(name) {
        errors.push(
            path,
            format!(
                "{name:?} is not a valid name (lowercase letters, digits, '-' and '.', \
                 starting and ending with a letter or digit, at most {DNS_SUBDOMAIN_LENGTH_MAX} characters)"
            ),
        );
    }
}

/// Checks a namespace name: a DNS label (lowercase letters, digits and '-').
pub fn check_namespace_name(errors: &mut ValidationErrors, path: &FieldPath, name: &str) {
    if name.is_empty() {
        errors.push(path, "must not be empty");
    } else if !is_dns_label(name) {
        errors.push(
            path,
            format!(
                "{name:?} is not a valid namespace name (lowercase letters, digits and '-', \
                 starting and ending with a letter or digit, at most {DNS_LABEL_LENGTH_MAX} characters)"
            ),
        );
    }
}

fn is_label_name_part(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= LABEL_PART_LENGTH_MAX
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// Checks a label key: an optional DNS-subdomain prefix and '/', then a name part.
pub fn check_label_key(errors: &mut ValidationErrors, path: &FieldPath, key: &str) {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(is_dns_subdomain);
    if !prefix_ok || !is_label_name_part(name) {
        errors.push(
            path,
            format!(
                "{key:?} is not a valid label key (an optional DNS prefix and '/', then at most \
                 {LABEL_PART_LENGTH_MAX} letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
            ),
        );
    }
}

/// Checks a label value: empty, or a name part.
pub fn check_label_value(errors: &mut ValidationErrors, path: &FieldPath, value: &str) {
    if !value.is_empty() && !is_label_name_part(value) {
        errors.push(
            path,
            format!(
                "{value:?} is not a valid label value (at most {LABEL_PART_LENGTH_MAX} letters, \
                 digits, '-', '_' or '.', starting and ending with a letter or digit)"
            ),
        );
    }
}

/// Checks a map used as a label selector: every key and value.
pub fn check_label_map<'a>(
    errors: &mut ValidationErrors,
    path: &FieldPath,
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
) {
    for (key, value) in labels {
        let entry = path.key(key);
        check_label_key(errors, &entry, key);
        check_label_value(errors, &entry, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_kubectl_explain() {
        let root = FieldPath::root();
        assert_eq!(root.field("spec").field("namespaces").index(2).as_str(), "spec.namespaces[2]");
        assert_eq!(root.field("spec").key("port").as_str(), "spec.port");
        assert_eq!(
            root.field("contexts").key("admin@kubernetes").as_str(),
            "contexts[\"admin@kubernetes\"]"
        );
        assert_eq!(root.to_string(), "(document)");
    }

    #[test]
    fn names_follow_rfc_1123() {
        let path = FieldPath::root().field("metadata").field("name");
        let long_part = "x".repeat(200);
        for good in ["a", "mysql", "my-app.v2", "0abc", &long_part] {
            let mut errors = ValidationErrors::default();
            check_object_name(&mut errors, &path, good);
            assert!(errors.is_empty(), "{good}: {errors}");
        }
        for bad in ["", "My", "-a", "a-", "a..b", "a_b", &"x".repeat(254)] {
            let mut errors = ValidationErrors::default();
            check_object_name(&mut errors, &path, bad);
            assert_eq!(errors.errors.len(), 1, "{bad} should be rejected");
            assert_eq!(errors.errors[0].path, "metadata.name");
        }
        let mut errors = ValidationErrors::default();
        check_namespace_name(&mut errors, &path, "a.b");
        assert_eq!(errors.errors.len(), 1);
    }

    #[test]
    fn labels_follow_kubernetes_syntax() {
        let path = FieldPath::root().field("spec").field("selectors");
        let mut errors = ValidationErrors::default();
        check_label_key(&mut errors, &path, "app.kubernetes.io/name");
        check_label_key(&mut errors, &path, "tier");
        check_label_value(&mut errors, &path, "");
        check_label_value(&mut errors, &path, "web_1.a-b");
        assert!(errors.is_empty(), "{errors}");
        check_label_key(&mut errors, &path, "Bad Prefix/x");
        check_label_key(&mut errors, &path, "-x");
        check_label_value(&mut errors, &path, "has space");
        assert_eq!(errors.errors.len(), 3);
    }
}
