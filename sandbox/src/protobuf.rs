//! Kubernetes' protobuf request encoding, for the kinds kubectl's typed clients send that way.
//!
//! kubectl 1.32 and later send protobuf (`application/vnd.kubernetes.protobuf`) from its
//! generator commands (`kubectl create namespace|configmap|secret|deployment|service|job|…`).
//! A body is the magic `k8s\0` and a `runtime.Unknown` (type meta, then the object's own
//! protobuf). This module decodes the objects those commands build into the JSON the rest of the
//! sandbox works with, from a table of the messages and field numbers of `k8s.io/api`'s
//! `generated.proto`. Two rules keep it honest: a field the table does not know is refused with
//! its number and message unless it holds only a zero value (Go's marshaller writes every
//! non-pointer field, zero or not); and zero values are dropped as JSON's `omitempty` drops them,
//! except for the fields marked `keep` (pointers such as `replicas`, where 0 means 0).
//! Responses are always JSON, which every client accepts.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};

/// How one field's value is encoded.
#[derive(Debug, Clone, Copy)]
enum Ty {
    Str,
    Bytes,
    Int,
    Bool,
    Msg(&'static Msg),
    MapStr,
    MapBytes,
    MapQuantity,
    Time,
    IntOrString,
    Quantity,
}

#[derive(Debug)]
struct Field {
    num: u64,
    name: &'static str,
    ty: Ty,
    repeated: bool,
    /// Keep a zero value (a pointer field in Go: zero is a value, not absence).
    keep: bool,
    /// Merge the message's fields into the parent (Go's embedded, JSON-inlined structs).
    inline: bool,
}

#[derive(Debug)]
struct Msg {
    name: &'static str,
    fields: &'static [Field],
}

const fn f(num: u64, name: &'static str, ty: Ty) -> Field {
    Field { num, name, ty, repeated: false, keep: false, inline: false }
}
const fn list(num: u64, name: &'static str, ty: Ty) -> Field {
    Field { num, name, ty, repeated: true, keep: false, inline: false }
}
const fn keep(num: u64, name: &'static str, ty: Ty) -> Field {
    Field { num, name, ty, repeated: false, keep: true, inline: false }
}
const fn inline(num: u64, name: &'static str, ty: Ty) -> Field {
    Field { num, name, ty, repeated: false, keep: false, inline: true }
}

use Ty::{Bool, Bytes, Int, IntOrString, MapBytes, MapQuantity, MapStr, Msg as M, Str, Time};

static OWNER_REFERENCE: Msg = Msg {
    name: "OwnerReference",
    fields: &[
        f(1, "kind", Str),
        f(3, "name", Str),
        f(4, "uid", Str),
        f(5, "apiVersion", Str),
        keep(6, "controller", Bool),
        keep(7, "blockOwnerDeletion", Bool),
    ],
};

static OBJECT_META: Msg = Msg {
    name: "ObjectMeta",
    fields: &[
        f(1, "name", Str),
        f(2, "generateName", Str),
        f(3, "namespace", Str),
        f(5, "uid", Str),
        f(6, "resourceVersion", Str),
        f(7, "generation", Int),
        f(8, "creationTimestamp", Time),
        f(11, "labels", MapStr),
        f(12, "annotations", MapStr),
        list(13, "ownerReferences", M(&OWNER_REFERENCE)),
        list(14, "finalizers", Str),
    ],
};

static TYPE_META: Msg =
    Msg { name: "TypeMeta", fields: &[f(1, "apiVersion", Str), f(2, "kind", Str)] };

static UNKNOWN: Msg = Msg {
    name: "Unknown",
    fields: &[
        f(1, "typeMeta", M(&TYPE_META)),
        f(2, "raw", Bytes),
        f(3, "contentEncoding", Str),
        f(4, "contentType", Str),
    ],
};

static REQUIREMENT: Msg = Msg {
    name: "LabelSelectorRequirement",
    fields: &[f(1, "key", Str), f(2, "operator", Str), list(3, "values", Str)],
};

static LABEL_SELECTOR: Msg = Msg {
    name: "LabelSelector",
    fields: &[f(1, "matchLabels", MapStr), list(2, "matchExpressions", M(&REQUIREMENT))],
};

static CONTAINER_PORT: Msg = Msg {
    name: "ContainerPort",
    fields: &[
        f(1, "name", Str),
        f(2, "hostPort", Int),
        f(3, "containerPort", Int),
        f(4, "protocol", Str),
        f(5, "hostIP", Str),
    ],
};

static ENV_VAR: Msg = Msg { name: "EnvVar", fields: &[f(1, "name", Str), f(2, "value", Str)] };

static RESOURCES: Msg = Msg {
    name: "ResourceRequirements",
    fields: &[f(1, "limits", MapQuantity), f(2, "requests", MapQuantity)],
};

static CONTAINER: Msg = Msg {
    name: "Container",
    fields: &[
        f(1, "name", Str),
        f(2, "image", Str),
        list(3, "command", Str),
        list(4, "args", Str),
        f(5, "workingDir", Str),
        list(6, "ports", M(&CONTAINER_PORT)),
        list(7, "env", M(&ENV_VAR)),
        f(8, "resources", M(&RESOURCES)),
        f(13, "terminationMessagePath", Str),
        f(14, "imagePullPolicy", Str),
        f(16, "stdin", Bool),
        f(17, "stdinOnce", Bool),
        f(18, "tty", Bool),
        f(20, "terminationMessagePolicy", Str),
    ],
};

static POD_SPEC: Msg = Msg {
    name: "PodSpec",
    fields: &[
        list(2, "containers", M(&CONTAINER)),
        f(3, "restartPolicy", Str),
        keep(4, "terminationGracePeriodSeconds", Int),
        f(6, "dnsPolicy", Str),
        f(7, "nodeSelector", MapStr),
        f(8, "serviceAccountName", Str),
        f(10, "nodeName", Str),
        f(11, "hostNetwork", Bool),
        list(20, "initContainers", M(&CONTAINER)),
    ],
};

static POD_TEMPLATE_SPEC: Msg = Msg {
    name: "PodTemplateSpec",
    fields: &[f(1, "metadata", M(&OBJECT_META)), f(2, "spec", M(&POD_SPEC))],
};

static DEPLOYMENT_SPEC: Msg = Msg {
    name: "DeploymentSpec",
    fields: &[
        keep(1, "replicas", Int),
        f(2, "selector", M(&LABEL_SELECTOR)),
        f(3, "template", M(&POD_TEMPLATE_SPEC)),
        f(5, "minReadySeconds", Int),
        keep(6, "revisionHistoryLimit", Int),
        f(7, "paused", Bool),
        keep(9, "progressDeadlineSeconds", Int),
    ],
};

static SERVICE_PORT: Msg = Msg {
    name: "ServicePort",
    fields: &[
        f(1, "name", Str),
        f(2, "protocol", Str),
        f(3, "port", Int),
        f(4, "targetPort", IntOrString),
        f(5, "nodePort", Int),
        f(6, "appProtocol", Str),
    ],
};

static SERVICE_SPEC: Msg = Msg {
    name: "ServiceSpec",
    fields: &[
        list(1, "ports", M(&SERVICE_PORT)),
        f(2, "selector", MapStr),
        f(3, "clusterIP", Str),
        f(4, "type", Str),
        list(5, "externalIPs", Str),
        f(7, "sessionAffinity", Str),
        f(10, "externalName", Str),
        f(11, "externalTrafficPolicy", Str),
        f(17, "ipFamilyPolicy", Str),
        list(18, "clusterIPs", Str),
        list(19, "ipFamilies", Str),
    ],
};

static NAMESPACE_SPEC: Msg = Msg { name: "NamespaceSpec", fields: &[list(1, "finalizers", Str)] };

static JOB_SPEC: Msg = Msg {
    name: "JobSpec",
    fields: &[
        keep(1, "parallelism", Int),
        keep(2, "completions", Int),
        keep(3, "activeDeadlineSeconds", Int),
        f(4, "selector", M(&LABEL_SELECTOR)),
        keep(5, "manualSelector", Bool),
        f(6, "template", M(&POD_TEMPLATE_SPEC)),
        keep(7, "backoffLimit", Int),
        keep(8, "ttlSecondsAfterFinished", Int),
        f(9, "completionMode", Str),
        keep(10, "suspend", Bool),
    ],
};

static JOB_TEMPLATE_SPEC: Msg = Msg {
    name: "JobTemplateSpec",
    fields: &[f(1, "metadata", M(&OBJECT_META)), f(2, "spec", M(&JOB_SPEC))],
};

static CRON_JOB_SPEC: Msg = Msg {
    name: "CronJobSpec",
    fields: &[
        f(1, "schedule", Str),
        keep(2, "startingDeadlineSeconds", Int),
        f(3, "concurrencyPolicy", Str),
        keep(4, "suspend", Bool),
        f(5, "jobTemplate", M(&JOB_TEMPLATE_SPEC)),
        keep(6, "successfulJobsHistoryLimit", Int),
        keep(7, "failedJobsHistoryLimit", Int),
        f(8, "timeZone", Str),
    ],
};

static POLICY_RULE: Msg = Msg {
    name: "PolicyRule",
    fields: &[
        list(1, "verbs", Str),
        list(2, "apiGroups", Str),
        list(3, "resources", Str),
        list(4, "resourceNames", Str),
        list(5, "nonResourceURLs", Str),
    ],
};

static SUBJECT: Msg = Msg {
    name: "Subject",
    fields: &[f(1, "kind", Str), f(2, "apiGroup", Str), f(3, "name", Str), f(4, "namespace", Str)],
};

static ROLE_REF: Msg =
    Msg { name: "RoleRef", fields: &[f(1, "apiGroup", Str), f(2, "kind", Str), f(3, "name", Str)] };

static SERVICE_BACKEND_PORT: Msg =
    Msg { name: "ServiceBackendPort", fields: &[f(1, "name", Str), f(2, "number", Int)] };

static SERVICE_BACKEND: Msg = Msg {
    name: "IngressServiceBackend",
    fields: &[f(1, "name", Str), f(2, "port", M(&SERVICE_BACKEND_PORT))],
};

static INGRESS_BACKEND: Msg =
    Msg { name: "IngressBackend", fields: &[f(4, "service", M(&SERVICE_BACKEND))] };

static HTTP_PATH: Msg = Msg {
    name: "HTTPIngressPath",
    fields: &[f(1, "path", Str), f(2, "backend", M(&INGRESS_BACKEND)), f(3, "pathType", Str)],
};

static HTTP_RULE: Msg =
    Msg { name: "HTTPIngressRuleValue", fields: &[list(1, "paths", M(&HTTP_PATH))] };

static RULE_VALUE: Msg = Msg { name: "IngressRuleValue", fields: &[f(1, "http", M(&HTTP_RULE))] };

static INGRESS_TLS: Msg =
    Msg { name: "IngressTLS", fields: &[list(1, "hosts", Str), f(2, "secretName", Str)] };

static INGRESS_RULE: Msg = Msg {
    name: "IngressRule",
    fields: &[f(1, "host", Str), inline(2, "ingressRuleValue", M(&RULE_VALUE))],
};

static INGRESS_SPEC: Msg = Msg {
    name: "IngressSpec",
    fields: &[
        f(1, "defaultBackend", M(&INGRESS_BACKEND)),
        list(2, "tls", M(&INGRESS_TLS)),
        list(3, "rules", M(&INGRESS_RULE)),
        keep(4, "ingressClassName", Str),
    ],
};

static PDB_SPEC: Msg = Msg {
    name: "PodDisruptionBudgetSpec",
    fields: &[
        f(1, "minAvailable", IntOrString),
        f(2, "selector", M(&LABEL_SELECTOR)),
        f(3, "maxUnavailable", IntOrString),
        f(4, "unhealthyPodEvictionPolicy", Str),
    ],
};

const META: Field = f(1, "metadata", M(&OBJECT_META));

static NAMESPACE: Msg =
    Msg { name: "Namespace", fields: &[META, f(2, "spec", M(&NAMESPACE_SPEC))] };
static CONFIG_MAP: Msg = Msg {
    name: "ConfigMap",
    fields: &[META, f(2, "data", MapStr), f(3, "binaryData", MapBytes), keep(4, "immutable", Bool)],
};
static SECRET: Msg = Msg {
    name: "Secret",
    fields: &[
        META,
        f(2, "data", MapBytes),
        f(3, "type", Str),
        f(4, "stringData", MapStr),
        keep(5, "immutable", Bool),
    ],
};
static SERVICE_ACCOUNT: Msg =
    Msg { name: "ServiceAccount", fields: &[META, keep(4, "automountServiceAccountToken", Bool)] };
static DEPLOYMENT: Msg =
    Msg { name: "Deployment", fields: &[META, f(2, "spec", M(&DEPLOYMENT_SPEC))] };
static SERVICE: Msg = Msg { name: "Service", fields: &[META, f(2, "spec", M(&SERVICE_SPEC))] };
static POD: Msg = Msg { name: "Pod", fields: &[META, f(2, "spec", M(&POD_SPEC))] };
static JOB: Msg = Msg { name: "Job", fields: &[META, f(2, "spec", M(&JOB_SPEC))] };
static CRON_JOB: Msg = Msg { name: "CronJob", fields: &[META, f(2, "spec", M(&CRON_JOB_SPEC))] };
static ROLE: Msg = Msg { name: "Role", fields: &[META, list(2, "rules", M(&POLICY_RULE))] };
static CLUSTER_ROLE: Msg =
    Msg { name: "ClusterRole", fields: &[META, list(2, "rules", M(&POLICY_RULE))] };
static ROLE_BINDING: Msg = Msg {
    name: "RoleBinding",
    fields: &[META, list(2, "subjects", M(&SUBJECT)), f(3, "roleRef", M(&ROLE_REF))],
};
static INGRESS: Msg = Msg { name: "Ingress", fields: &[META, f(2, "spec", M(&INGRESS_SPEC))] };
static PDB: Msg = Msg { name: "PodDisruptionBudget", fields: &[META, f(2, "spec", M(&PDB_SPEC))] };

fn top_level(api_version: &str, kind: &str) -> Option<&'static Msg> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => &NAMESPACE,
        ("v1", "ConfigMap") => &CONFIG_MAP,
        ("v1", "Secret") => &SECRET,
        ("v1", "ServiceAccount") => &SERVICE_ACCOUNT,
        ("v1", "Service") => &SERVICE,
        ("v1", "Pod") => &POD,
        ("apps/v1", "Deployment") => &DEPLOYMENT,
        ("batch/v1", "Job") => &JOB,
        ("batch/v1", "CronJob") => &CRON_JOB,
        ("rbac.authorization.k8s.io/v1", "Role") => &ROLE,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => &CLUSTER_ROLE,
        ("rbac.authorization.k8s.io/v1", "RoleBinding" | "ClusterRoleBinding") => &ROLE_BINDING,
        ("networking.k8s.io/v1", "Ingress") => &INGRESS,
        ("policy/v1", "PodDisruptionBudget") => &PDB,
        _ => return None,
    })
}

/// The wire-level reader.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

/// One raw field value.
enum Raw<'a> {
    Varint(u64),
    Fixed(u64),
    Bytes(&'a [u8]),
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, at: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0_u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.buf.get(self.at).ok_or("a varint runs past the end")?;
            self.at += 1;
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a varint is longer than ten bytes".to_owned())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or("a field runs past the end")?;
        let slice = &self.buf[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn next(&mut self) -> Result<Option<(u64, Raw<'a>)>, String> {
        if self.at == self.buf.len() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let raw = match tag & 7 {
            0 => Raw::Varint(self.varint()?),
            1 => Raw::Fixed(u64::from_le_bytes(
                self.take(8)?.try_into().map_err(|_| "short fixed64")?,
            )),
            2 => {
                let n = usize::try_from(self.varint()?)
                    .map_err(|_| "a length does not fit in memory")?;
                Raw::Bytes(self.take(n)?)
            }
            5 => Raw::Fixed(u64::from(u32::from_le_bytes(
                self.take(4)?.try_into().map_err(|_| "short fixed32")?,
            ))),
            other => return Err(format!("wire type {other} is not supported")),
        };
        Ok(Some((tag >> 3, raw)))
    }
}

/// Whether an unknown field carries only a zero value (0, "", or a message of zeros).
fn is_zero(raw: &Raw<'_>) -> bool {
    match raw {
        Raw::Varint(v) | Raw::Fixed(v) => *v == 0,
        Raw::Bytes(b) => {
            if b.is_empty() {
                return true;
            }
            let mut inner = Reader::new(b);
            loop {
                match inner.next() {
                    Ok(None) => return true,
                    Ok(Some((_, raw))) if is_zero(&raw) => {}
                    _ => return false,
                }
            }
        }
    }
}

fn zero_json(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
    }
}

fn scalar(raw: &Raw<'_>, ty: Ty, path: &str) -> Result<Value, String> {
    let wrong = || format!("{path} has the wrong wire type for its field");
    Ok(match (ty, raw) {
        (Ty::Str, Raw::Bytes(b)) => Value::String(
            String::from_utf8(b.to_vec()).map_err(|_| format!("{path} is not UTF-8"))?,
        ),
        (Ty::Bytes, Raw::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        // Two's complement: int32 and int64 negatives arrive as ten-byte varints.
        #[allow(clippy::cast_possible_wrap)]
        (Ty::Int, Raw::Varint(v)) => json!(*v as i64),
        (Ty::Bool, Raw::Varint(v)) => Value::Bool(*v != 0),
        (Ty::Msg(m), Raw::Bytes(b)) => Value::Object(message(b, m, path)?),
        (Ty::Time, Raw::Bytes(b)) => time(b, path)?,
        (Ty::IntOrString, Raw::Bytes(b)) => int_or_string(b, path)?,
        (Ty::Quantity, Raw::Bytes(b)) => quantity(b, path)?,
        _ => return Err(wrong()),
    })
}

fn time(b: &[u8], path: &str) -> Result<Value, String> {
    let (mut seconds, mut nanos) = (0_i64, 0_u32);
    let mut r = Reader::new(b);
    while let Some((num, raw)) = r.next()? {
        #[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
        match (num, raw) {
            (1, Raw::Varint(v)) => seconds = v as i64,
            (2, Raw::Varint(v)) => nanos = v as u32,
            _ => return Err(format!("{path} is not a Time")),
        }
    }
    // Go's zero time, which JSON writes as null.
    if seconds == -62_135_596_800 {
        return Ok(Value::Null);
    }
    let t = chrono::DateTime::from_timestamp(seconds, nanos)
        .ok_or_else(|| format!("{path} is out of range"))?;
    Ok(json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

fn int_or_string(b: &[u8], path: &str) -> Result<Value, String> {
    let (mut kind, mut int, mut text) = (0_u64, 0_i64, String::new());
    let mut r = Reader::new(b);
    while let Some((num, raw)) = r.next()? {
        #[allow(clippy::cast_possible_wrap)]
        match (num, raw) {
            (1, Raw::Varint(v)) => kind = v,
            (2, Raw::Varint(v)) => int = v as i64,
            (3, Raw::Bytes(s)) => {
                text = String::from_utf8(s.to_vec()).map_err(|_| format!("{path} is not UTF-8"))?
            }
            _ => return Err(format!("{path} is not an IntOrString")),
        }
    }
    Ok(if kind == 1 { json!(text) } else { json!(int) })
}

fn quantity(b: &[u8], path: &str) -> Result<Value, String> {
    let mut r = Reader::new(b);
    let mut text = String::new();
    while let Some((num, raw)) = r.next()? {
        match (num, raw) {
            (1, Raw::Bytes(s)) => {
                text = String::from_utf8(s.to_vec()).map_err(|_| format!("{path} is not UTF-8"))?
            }
            _ => return Err(format!("{path} is not a Quantity")),
        }
    }
    Ok(json!(text))
}

fn map_entry(b: &[u8], ty: Ty, path: &str) -> Result<(String, Value), String> {
    let mut r = Reader::new(b);
    let (mut key, mut value) = (String::new(), None);
    while let Some((num, raw)) = r.next()? {
        match (num, raw) {
            (1, Raw::Bytes(k)) => {
                key = String::from_utf8(k.to_vec())
                    .map_err(|_| format!("a key in {path} is not UTF-8"))?
            }
            (2, raw) => value = Some(scalar(&raw, ty, &format!("{path}[{key}]"))?),
            _ => return Err(format!("{path} holds a malformed map entry")),
        }
    }
    let empty = match ty {
        Ty::Str | Ty::Bytes | Ty::Quantity => json!(""),
        _ => Value::Null,
    };
    Ok((key, value.unwrap_or(empty)))
}

fn message(buf: &[u8], msg: &Msg, path: &str) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let mut r = Reader::new(buf);
    while let Some((num, raw)) = r.next()? {
        let Some(field) = msg.fields.iter().find(|f| f.num == num) else {
            if is_zero(&raw) {
                continue;
            }
            return Err(format!(
                "{path} carries field {num} of {}, which the sandbox's protobuf table does not know",
                msg.name
            ));
        };
        let here = format!("{path}.{}", field.name);
        let map_ty = match field.ty {
            Ty::MapStr => Some(Ty::Str),
            Ty::MapBytes => Some(Ty::Bytes),
            Ty::MapQuantity => Some(Ty::Quantity),
            _ => None,
        };
        if let Some(value_ty) = map_ty {
            let Raw::Bytes(entry) = raw else { return Err(format!("{here} is not a map")) };
            let (k, v) = map_entry(entry, value_ty, &here)?;
            let slot = out.entry(field.name).or_insert_with(|| json!({}));
            slot[k] = v;
            continue;
        }
        let value = scalar(&raw, field.ty, &here)?;
        if field.repeated {
            match out.entry(field.name).or_insert_with(|| json!([])) {
                Value::Array(items) => items.push(value),
                _ => return Err(format!("{here} repeats a field that is not a list")),
            }
        } else if field.inline {
            if let Value::Object(inner) = value {
                out.extend(inner);
            }
        } else if field.keep || !zero_json(&value) {
            out.insert(field.name.to_owned(), value);
        }
    }
    Ok(out)
}

/// Decodes a `application/vnd.kubernetes.protobuf` request body into a JSON object.
pub(crate) fn decode(body: &[u8]) -> ApiResult<Value> {
    let bad =
        |why: String| ApiError::bad_request(format!("the protobuf body cannot be decoded: {why}"));
    let envelope = body
        .strip_prefix(b"k8s\0")
        .ok_or_else(|| bad("it does not start with the k8s magic".to_owned()))?;
    let unknown = message(envelope, &UNKNOWN, "").map_err(bad)?;
    let api_version = unknown["typeMeta"]["apiVersion"].as_str().unwrap_or_default().to_owned();
    let kind = unknown["typeMeta"]["kind"].as_str().unwrap_or_default().to_owned();
    let Some(msg) = top_level(&api_version, &kind) else {
        return Err(ApiError::unsupported_media_type(format!(
            "the sandbox decodes protobuf only for the kinds kubectl's create commands build, not {kind} {api_version}; send JSON"
        )));
    };
    let raw = unknown.get("raw").and_then(Value::as_str).unwrap_or_default();
    let raw =
        base64::engine::general_purpose::STANDARD.decode(raw).map_err(|e| bad(e.to_string()))?;
    let mut object = message(&raw, msg, "").map_err(|why| {
        ApiError::unsupported_media_type(format!(
            "the protobuf {kind} cannot be read: {why}; send JSON"
        ))
    })?;
    object.insert("apiVersion".to_owned(), json!(api_version));
    object.insert("kind".to_owned(), json!(kind));
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = u8::try_from(v & 0x7F).unwrap_or(0);
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn bytes_field(num: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(num << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    fn int_field(num: u64, v: u64, out: &mut Vec<u8>) {
        varint(num << 3, out);
        varint(v, out);
    }

    #[test]
    fn a_deployment_decodes_with_zero_replicas_kept_and_zero_fields_dropped() {
        let mut meta = Vec::new();
        bytes_field(1, b"web", &mut meta);
        bytes_field(4, b"", &mut meta); // selfLink: unknown but empty
        let mut spec = Vec::new();
        int_field(1, 0, &mut spec); // replicas: 0 is a value
        int_field(5, 0, &mut spec); // minReadySeconds: 0 is absence
        let mut object = Vec::new();
        bytes_field(1, &meta, &mut object);
        bytes_field(2, &spec, &mut object);
        let mut type_meta = Vec::new();
        bytes_field(1, b"apps/v1", &mut type_meta);
        bytes_field(2, b"Deployment", &mut type_meta);
        let mut body = b"k8s\0".to_vec();
        bytes_field(1, &type_meta, &mut body);
        bytes_field(2, &object, &mut body);
        let v = decode(&body).expect("decodes");
        assert_eq!(
            v,
            json!({"metadata": {"name": "web"}, "spec": {"replicas": 0}, "apiVersion": "apps/v1", "kind": "Deployment"})
        );
    }

    #[test]
    fn an_unknown_field_with_a_value_is_refused_by_number() {
        let mut object = Vec::new();
        int_field(9, 7, &mut object);
        let mut type_meta = Vec::new();
        bytes_field(1, b"v1", &mut type_meta);
        bytes_field(2, b"ConfigMap", &mut type_meta);
        let mut body = b"k8s\0".to_vec();
        bytes_field(1, &type_meta, &mut body);
        bytes_field(2, &object, &mut body);
        let err = decode(&body).expect_err("unknown field");
        assert_eq!(err.code, 415);
        assert!(err.message.contains("field 9 of ConfigMap"), "{}", err.message);
    }
}
