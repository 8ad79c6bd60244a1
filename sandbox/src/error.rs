//! Kubernetes `Status` errors: every failure the sandbox returns is one, with the code, reason and
//! message a real API server would send, so kubectl prints what it prints against a cluster.

use serde_json::{Value, json};

/// A failed request, rendered as a `meta.k8s.io/v1` `Status` body.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// The machine-readable reason (`NotFound`, `Conflict`, `Invalid` …).
    pub reason: &'static str,
    /// The sentence a user reads.
    pub message: String,
    /// `details` of the Status (name, group, kind, causes), when there are any.
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), details: None }
    }

    /// 400: the request cannot be understood.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401: no or wrong bearer token.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 404 for a named object of a resource (`deployments.apps "web" not found`).
    pub fn not_found(resource: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{resource} \"{name}\" not found"))
            .with_details(json!({ "name": name, "kind": resource_plural(resource), "group": resource_group(resource) }))
    }

    /// 404 for a path that names no resource.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 405: the resource does not support this verb.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 409 AlreadyExists.
    pub fn already_exists(resource: &str, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{resource} \"{name}\" already exists"))
            .with_details(json!({ "name": name, "kind": resource_plural(resource), "group": resource_group(resource) }))
    }

    /// 409 Conflict: a stale resourceVersion (or a failed precondition).
    pub fn conflict(resource: &str, name: &str, why: &str) -> Self {
        Self::new(409, "Conflict", format!("Operation cannot be fulfilled on {resource} \"{name}\": {why}"))
            .with_details(json!({ "name": name, "kind": resource_plural(resource), "group": resource_group(resource) }))
    }

    /// 409 Conflict from server-side apply, with one cause per contested field.
    pub fn apply_conflicts(causes: Vec<(String, String)>) -> Self {
        let n = causes.len();
        let listed: Vec<String> =
            causes.iter().map(|(field, why)| format!("{why}: {field}")).collect();
        let plural = if n == 1 { "" } else { "s" };
        let details = json!({
            "causes": causes.iter().map(|(field, why)| json!({
                "type": "FieldManagerConflict", "message": why, "field": field,
            })).collect::<Vec<_>>()
        });
        Self::new(
            409,
            "Conflict",
            format!("Apply failed with {n} conflict{plural}: {}", listed.join("\n")),
        )
        .with_details(details)
    }

    /// 410: a watch asked for a resourceVersion older than the sandbox remembers.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 415: a patch type the resource does not support.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    /// 422 Invalid: `{Kind} "{name}" is invalid: {field}: {problem}`.
    pub fn invalid(kind: &str, name: &str, field: &str, problem: &str) -> Self {
        Self::new(422, "Invalid", format!("{kind} \"{name}\" is invalid: {field}: {problem}"))
            .with_details(json!({
                "name": name, "kind": kind,
                "causes": [{ "reason": "FieldValueInvalid", "message": problem, "field": field }],
            }))
    }

    /// 422 for a patch that parses but cannot be applied (a failed `test`, a missing path).
    pub fn invalid_patch(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }

    /// 403, for example content in a namespace being deleted.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 500: a bug in the sandbox, never a panic.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

/// `deployments.apps` → `deployments`.
fn resource_plural(resource: &str) -> &str {
    resource.split_once('.').map_or(resource, |(plural, _)| plural)
}

/// `deployments.apps` → `apps`; `configmaps` → ``.
fn resource_group(resource: &str) -> &str {
    resource.split_once('.').map_or("", |(_, group)| group)
}

/// Shorthand for handler results.
pub(crate) type ApiResult<T> = Result<T, ApiError>;
