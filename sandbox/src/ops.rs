//! The verbs: create, get, list, update, patch (four kinds), delete and deletecollection, and the
//! status and scale subresources, over the store. Each write is computed in full, validated, and
//! only then committed, so a refused request changes nothing; `dryRun=All` stops before the commit.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::fields::{self, Part, Writer};
use crate::kinds;
use crate::patch;
use crate::registry::ResourceType;
use crate::select::{FieldSelector, LabelSelector};
use crate::store::{Key, Store};

/// RFC 3339 UTC with seconds, as Kubernetes timestamps are.
pub(crate) fn now() -> String {
    crate::clock::now_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A random version-4 UUID.
fn new_uid() -> String {
    let (a, b) = (random_u64(), random_u64());
    let hex = format!("{a:016x}{b:016x}");
    format!("{}-{}-4{}-a{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
}

/// The five characters `generateName` appends.
fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = random_u64();
    (0..5)
        .map(|_| {
            let i = usize::try_from(n % 27).unwrap_or(0);
            n /= 27;
            char::from(ALPHABET[i])
        })
        .collect()
}

/// How a write is made.
#[derive(Debug, Clone)]
pub(crate) struct WriteOpts {
    /// `dryRun=All`: validate and answer, commit nothing.
    pub(crate) dry_run: bool,
    /// The field manager (`fieldManager`, or the client's user agent).
    pub(crate) manager: String,
    /// `force=true` on an apply.
    pub(crate) force: bool,
}

/// `DeleteOptions` that matter here.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteOpts {
    /// `Orphan`, `Background` or `Foreground`.
    pub(crate) propagation: Option<String>,
    /// Precondition on the uid.
    pub(crate) uid: Option<String>,
    /// Precondition on the resourceVersion.
    pub(crate) resource_version: Option<String>,
    /// `dryRun: ["All"]` in the body (kubectl and kube-rs send it there, not in the query).
    pub(crate) dry_run: bool,
}

impl DeleteOpts {
    /// From a DELETE body (may be empty) and the query's `propagationPolicy`.
    pub(crate) fn parse(body: &[u8], query_policy: Option<&str>) -> ApiResult<Self> {
        let mut opts = Self { propagation: query_policy.map(str::to_owned), ..Self::default() };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(opts);
        }
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("the DeleteOptions body is not JSON: {e}"))
        })?;
        if let Some(p) = v["propagationPolicy"].as_str() {
            opts.propagation = Some(p.to_owned());
        } else if v["orphanDependents"] == true {
            opts.propagation = Some("Orphan".to_owned());
        }
        opts.dry_run = v["dryRun"].as_array().is_some_and(|d| d.iter().any(|x| x == "All"));
        opts.uid = v["preconditions"]["uid"].as_str().map(str::to_owned);
        opts.resource_version = v["preconditions"]["resourceVersion"].as_str().map(str::to_owned);
        if let Some(p) = opts.propagation.as_deref()
            && !matches!(p, "Orphan" | "Background" | "Foreground")
        {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy {p:?} is not one of \"Orphan\", \"Background\", \"Foreground\""
            )));
        }
        Ok(opts)
    }
}

/// A list request.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListQuery {
    /// `labelSelector`.
    pub(crate) labels: LabelSelector,
    /// `fieldSelector`.
    pub(crate) fields: FieldSelector,
    /// `limit` (0: all).
    pub(crate) limit: usize,
    /// `continue`.
    pub(crate) continue_token: Option<String>,
}

/// The key of an object of `rt`.
pub(crate) fn key(rt: &ResourceType, namespace: Option<&str>, name: &str) -> Key {
    let ns = if rt.namespaced { namespace.unwrap_or_default() } else { "" };
    (rt.group.clone(), rt.plural.clone(), ns.to_owned(), name.to_owned())
}

/// The object as served at `rt`'s version (custom resources are stored at one version and served
/// at every served version with no conversion, as with the `None` strategy).
pub(crate) fn present(rt: &ResourceType, obj: &Value) -> Value {
    let mut out = obj.clone();
    out["apiVersion"] = json!(rt.api_version());
    out
}

fn object_map(body: &Value) -> ApiResult<()> {
    if body.is_object() {
        Ok(())
    } else {
        Err(ApiError::bad_request("the request body must be a JSON object"))
    }
}

/// The body's apiVersion and kind must be the resource's (or absent).
fn check_type(rt: &ResourceType, body: &mut Value) -> ApiResult<()> {
    object_map(body)?;
    let want = rt.api_version();
    match body["apiVersion"].as_str() {
        None | Some("") => body["apiVersion"] = json!(want),
        Some(v)
            if v == want || rt.custom && crate::registry::split_api_version(v).0 == rt.group =>
        {
            body["apiVersion"] = json!(want);
        }
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({want})"
            )));
        }
    }
    match body["kind"].as_str() {
        None | Some("") => body["kind"] = json!(rt.kind),
        Some(k) if k == rt.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                rt.kind
            )));
        }
    }
    if !body["metadata"].is_object() {
        if !body["metadata"].is_null() {
            return Err(ApiError::bad_request("metadata must be an object"));
        }
        body["metadata"] = json!({});
    }
    Ok(())
}

fn check_namespace(rt: &ResourceType, body: &mut Value, namespace: Option<&str>) -> ApiResult<()> {
    let given = body["metadata"]["namespace"].as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    if !rt.namespaced {
        if let Some(m) = body["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        return Ok(());
    }
    let url_ns = namespace.ok_or_else(|| {
        ApiError::method_not_allowed(format!("{} must be created in a namespace", rt.qualified()))
    })?;
    if let Some(given) = given
        && given != url_ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    body["metadata"]["namespace"] = json!(url_ns);
    Ok(())
}

fn namespace_usable(store: &Store, rt: &ResourceType, namespace: Option<&str>) -> ApiResult<()> {
    let Some(ns) = namespace.filter(|_| rt.namespaced) else { return Ok(()) };
    let key = (String::new(), "namespaces".to_owned(), String::new(), ns.to_owned());
    match store.get(&key) {
        None => Err(ApiError::not_found("namespaces", ns)),
        Some(n) if !n["metadata"]["deletionTimestamp"].is_null() => {
            Err(ApiError::forbidden(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                rt.qualified(),
                "",
            )))
        }
        Some(_) => Ok(()),
    }
}

fn writer<'a>(
    rt: &'a ResourceType,
    opts: &'a WriteOpts,
    api_version: &'a str,
    now: &'a str,
    part: Part,
) -> Writer<'a> {
    Writer { manager: &opts.manager, api_version, now, part, keyed: !rt.custom }
}

/// The part a write to the main resource touches: all of it, or all but status when the
/// kind has a status subresource.
pub(crate) fn main_part(rt: &ResourceType) -> Part {
    if rt.status { Part::Main } else { Part::All }
}

/// POST to a collection.
pub(crate) fn create(
    store: &mut Store,
    rt: &ResourceType,
    namespace: Option<&str>,
    mut body: Value,
    opts: &WriteOpts,
) -> ApiResult<Value> {
    check_type(rt, &mut body)?;
    check_namespace(rt, &mut body, namespace)?;
    if let Some(meta) = body["metadata"].as_object_mut() {
        meta.remove("managedFields");
    }
    let now = now();
    let api_version = rt.api_version();
    create_checked(store, rt, namespace, body, opts, |obj| {
        fields::record_update(None, obj, &writer(rt, opts, &api_version, &now, Part::All));
        Ok(())
    })
}

fn create_checked(
    store: &mut Store,
    rt: &ResourceType,
    namespace: Option<&str>,
    mut obj: Value,
    opts: &WriteOpts,
    manage: impl FnOnce(&mut Value) -> ApiResult<()>,
) -> ApiResult<Value> {
    let meta = &mut obj["metadata"];
    let name = match meta["name"].as_str().filter(|n| !n.is_empty()) {
        Some(n) => n.to_owned(),
        None => match meta["generateName"].as_str().filter(|g| !g.is_empty()) {
            Some(prefix) => format!("{prefix}{}", name_suffix()),
            None => {
                return Err(ApiError::invalid(
                    &rt.kind,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
        },
    };
    meta["name"] = json!(name);
    kinds::validate_name(rt, &name)?;
    namespace_usable(store, rt, namespace)?;
    let key = key(rt, namespace, &name);
    if store.get(&key).is_some() {
        return Err(ApiError::already_exists(&rt.qualified(), &name));
    }
    let meta =
        obj["metadata"].as_object_mut().ok_or_else(|| ApiError::internal("metadata vanished"))?;
    for system in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"]
    {
        meta.remove(system);
    }
    meta.insert("uid".to_owned(), json!(new_uid()));
    meta.insert("creationTimestamp".to_owned(), json!(now()));
    meta.insert("generation".to_owned(), json!(1));
    if rt.status
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    kinds::normalize(rt, &mut obj);
    kinds::on_create(rt, &mut obj, store)?;
    kinds::validate(rt, &obj)?;
    manage(&mut obj)?;
    if opts.dry_run {
        return Ok(present(rt, &obj));
    }
    if rt.group == "apiextensions.k8s.io" {
        store.registry.install_crd(&obj)?;
    }
    Ok(present(rt, &store.put(key, obj)))
}

/// GET one object.
pub(crate) fn get(
    store: &Store,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
) -> ApiResult<Value> {
    let obj = store
        .get(&key(rt, namespace, name))
        .ok_or_else(|| ApiError::not_found(&rt.qualified(), name))?;
    Ok(present(rt, obj))
}

/// Whether an object passes a list or watch filter.
pub(crate) fn selected(labels: &LabelSelector, fields: &FieldSelector, obj: &Value) -> bool {
    labels.matches(&obj["metadata"]["labels"]) && fields.matches(obj)
}

/// GET a collection, one page at a time when `limit` is set.
pub(crate) fn list(
    store: &Store,
    rt: &ResourceType,
    namespace: Option<&str>,
    q: &ListQuery,
) -> ApiResult<Value> {
    let (start_after, list_rv) = match &q.continue_token {
        Some(token) => decode_continue(token)?,
        None => (None, store.rv()),
    };
    let mut matching = store
        .range(&rt.group, &rt.plural, namespace)
        .filter(|(k, _)| start_after.as_ref().is_none_or(|(ns, name)| (&k.2, &k.3) > (ns, name)))
        .filter(|(_, obj)| selected(&q.labels, &q.fields, obj));
    let mut items = Vec::new();
    let mut last: Option<&Key> = None;
    for (k, obj) in matching.by_ref() {
        if q.limit > 0 && items.len() == q.limit {
            break;
        }
        items.push(present(rt, obj));
        last = Some(k);
    }
    let mut metadata = json!({ "resourceVersion": list_rv.to_string() });
    let remaining = if q.limit > 0 && items.len() == q.limit {
        store
            .range(&rt.group, &rt.plural, namespace)
            .filter(|(k, _)| last.is_some_and(|l| (&k.2, &k.3) > (&l.2, &l.3)))
            .filter(|(_, obj)| selected(&q.labels, &q.fields, obj))
            .count()
    } else {
        0
    };
    if let (Some(last), true) = (last, remaining > 0) {
        metadata["continue"] = json!(encode_continue(&last.2, &last.3, list_rv));
        metadata["remainingItemCount"] = json!(remaining);
    }
    Ok(json!({
        "kind": format!("{}List", rt.kind),
        "apiVersion": rt.api_version(),
        "metadata": metadata,
        "items": items,
    }))
}

fn encode_continue(namespace: &str, name: &str, rv: u64) -> String {
    let token = json!({ "v": 1, "ns": namespace, "name": name, "rv": rv });
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> ApiResult<(Option<(String, String)>, u64)> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token:?}"));
    let bytes =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let ns = v["ns"].as_str().ok_or_else(bad)?.to_owned();
    let name = v["name"].as_str().ok_or_else(bad)?.to_owned();
    Ok((Some((ns, name)), v["rv"].as_u64().ok_or_else(bad)?))
}

fn conflict(rt: &ResourceType, name: &str) -> ApiError {
    ApiError::conflict(
        &rt.qualified(),
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

/// The comparison that decides whether a write changed anything: managedFields timestamps and
/// the resourceVersion do not count.
fn comparable(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(meta) = v["metadata"].as_object_mut() {
        meta.remove("resourceVersion");
        if let Some(Value::Array(entries)) = meta.get_mut("managedFields") {
            for e in entries {
                if let Some(e) = e.as_object_mut() {
                    e.remove("time");
                }
            }
        }
    }
    v
}

fn spec_of(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

/// How the managedFields of a replacement are computed.
enum Manage {
    /// A plain update by the writer.
    Update,
    /// Server-side apply already computed them.
    Done,
}

/// The shared tail of PUT, PATCH, status and scale writes: carry over what clients cannot
/// change, enforce the version precondition and immutable fields, bump the generation when the
/// spec changed, skip no-op writes, and commit.
#[allow(clippy::too_many_arguments)]
fn replace(
    store: &mut Store,
    rt: &ResourceType,
    key: Key,
    current: &Value,
    mut new: Value,
    part: Part,
    opts: &WriteOpts,
    manage: Manage,
) -> ApiResult<Value> {
    check_type(rt, &mut new)?;
    let name = key.3.clone();
    match new["metadata"]["name"].as_str() {
        Some(n) if n != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        _ => new["metadata"]["name"] = json!(name),
    }
    if rt.namespaced {
        match new["metadata"]["namespace"].as_str() {
            Some(ns) if !ns.is_empty() && ns != key.2 => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => new["metadata"]["namespace"] = json!(key.2),
        }
    }
    if let Some(rv) = new["metadata"]["resourceVersion"].as_str().filter(|rv| !rv.is_empty())
        && Some(rv) != current["metadata"]["resourceVersion"].as_str()
    {
        return Err(conflict(rt, &name));
    }
    if part == Part::Status {
        let status = new.get("status").cloned();
        let managed = new["metadata"]["managedFields"].clone();
        new = current.clone();
        match (status, new.as_object_mut()) {
            (Some(status), Some(m)) => {
                m.insert("status".to_owned(), status);
            }
            (None, Some(m)) => {
                m.remove("status");
            }
            _ => {}
        }
        if matches!(manage, Manage::Done) {
            new["metadata"]["managedFields"] = managed;
        }
    } else {
        for carried in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match current["metadata"].get(carried) {
                Some(v) => new["metadata"][carried] = v.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(carried);
                    }
                }
            }
        }
        if rt.status {
            match current.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        if !current["metadata"]["deletionTimestamp"].is_null() {
            let added = new["metadata"]["finalizers"].as_array().into_iter().flatten().any(|f| {
                !current["metadata"]["finalizers"].as_array().is_some_and(|old| old.contains(f))
            });
            if added {
                return Err(ApiError::invalid(
                    &rt.kind,
                    &name,
                    "metadata.finalizers",
                    "Forbidden: no new finalizers can be added if the object is being deleted",
                ));
            }
        }
    }
    kinds::normalize(rt, &mut new);
    kinds::validate(rt, &new)?;
    kinds::on_update(rt, current, &mut new, store)?;
    kinds::validate_update(rt, current, &new)?;
    if matches!(manage, Manage::Update) {
        let (now, api_version) = (now(), rt.api_version());
        fields::record_update(Some(current), &mut new, &writer(rt, opts, &api_version, &now, part));
    }
    if spec_of(&new) != spec_of(current) {
        let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
        new["metadata"]["generation"] = json!(generation + 1);
    }
    if comparable(&new) == comparable(current) {
        return Ok(present(rt, current));
    }
    // Being deleted and no finalizer left but the collector's: it goes now, unless it is a
    // namespace or definition that still has contents.
    let finalized = !new["metadata"]["deletionTimestamp"].is_null()
        && user_finalizers(&new) == 0
        && !contents_remain(store, &key);
    if opts.dry_run {
        return Ok(present(rt, &new));
    }
    if rt.group == "apiextensions.k8s.io" {
        store.registry.install_crd(&new)?;
    }
    if finalized {
        let policy = policy_from_finalizers(&new);
        if let Some(list) = new["metadata"]["finalizers"].as_array_mut() {
            list.retain(|f| f != ORPHAN_FINALIZER && f != FOREGROUND_FINALIZER);
        }
        let gone = store.put(key.clone(), new);
        remove_now(store, rt, &key, policy);
        return Ok(present(rt, &gone));
    }
    Ok(present(rt, &store.put(key, new)))
}

/// PUT (main resource or status).
pub(crate) fn update(
    store: &mut Store,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    body: Value,
    part: Part,
    opts: &WriteOpts,
) -> ApiResult<Value> {
    let key = key(rt, namespace, name);
    let current =
        store.get(&key).cloned().ok_or_else(|| ApiError::not_found(&rt.qualified(), name))?;
    replace(store, rt, key, &current, body, part, opts, Manage::Update)
}

/// The content types PATCH accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchType {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchType {
    /// From a Content-Type header.
    pub(crate) fn from_content_type(content_type: &str) -> ApiResult<Self> {
        let base = content_type.split(';').next().unwrap_or_default().trim();
        match base {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(Self::Apply),
            other => Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
            ))),
        }
    }
}

fn patched(rt: &ResourceType, kind: PatchType, target: &Value, body: &[u8]) -> ApiResult<Value> {
    match kind {
        PatchType::Json => patch::json_patch(target, body),
        PatchType::Merge => patch::merge_patch(target, body),
        PatchType::Strategic if rt.custom => Err(ApiError::unsupported_media_type(
            "strategic merge patch is not supported for custom resources; use a merge patch or JSON patch",
        )),
        PatchType::Strategic => patch::strategic_merge_patch(target, body),
        PatchType::Apply => Err(ApiError::internal("apply patches are not plain patches")),
    }
}

/// Parses an apply body (YAML or JSON) into an object.
fn apply_config(body: &[u8]) -> ApiResult<Value> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the apply body is not UTF-8"))?;
    let v: Value = serde_saphyr::from_str(text).map_err(|e| {
        ApiError::bad_request(format!("the apply body is not a YAML or JSON object: {e}"))
    })?;
    object_map(&v)?;
    Ok(v)
}

/// PATCH (main resource or status); an apply creates the object when it is absent.
#[allow(clippy::too_many_arguments)]
pub(crate) fn patch(
    store: &mut Store,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    kind: PatchType,
    body: &[u8],
    part: Part,
    opts: &WriteOpts,
) -> ApiResult<Value> {
    let key = key(rt, namespace, name);
    let current = store.get(&key).cloned();
    if kind != PatchType::Apply {
        let current = current.ok_or_else(|| ApiError::not_found(&rt.qualified(), name))?;
        let new = patched(rt, kind, &present(rt, &current), body)?;
        return replace(store, rt, key, &current, new, part, opts, Manage::Update);
    }
    if opts.manager.is_empty() {
        return Err(ApiError::bad_request("fieldManager is required for apply requests"));
    }
    let mut config = apply_config(body)?;
    check_type(rt, &mut config)?;
    match config["metadata"]["name"].as_str() {
        Some(n) if n == name => {}
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        None => config["metadata"]["name"] = json!(name),
    }
    let (now, api_version) = (now(), rt.api_version());
    let w = writer(
        rt,
        opts,
        &api_version,
        &now,
        if part == Part::Status { Part::Status } else { main_part(rt) },
    );
    match current {
        None => {
            if part == Part::Status {
                return Err(ApiError::not_found(&rt.qualified(), name));
            }
            check_namespace(rt, &mut config, namespace)?;
            let merged = fields::apply(None, &config, &w, opts.force)?;
            // The applier's managedFields entry is already in `merged`.
            create_checked(store, rt, namespace, merged, opts, |_| Ok(()))
        }
        Some(current) => {
            if let Some(rv) =
                config["metadata"]["resourceVersion"].as_str().filter(|rv| !rv.is_empty())
                && Some(rv) != current["metadata"]["resourceVersion"].as_str()
            {
                return Err(conflict(rt, name));
            }
            let merged = fields::apply(Some(&present(rt, &current)), &config, &w, opts.force)?;
            replace(store, rt, key, &current, merged, part, opts, Manage::Done)
        }
    }
}

/// The autoscaling/v1 Scale of a Deployment, StatefulSet or ReplicaSet.
pub(crate) fn scale_of(rt: &ResourceType, obj: &Value) -> ApiResult<Value> {
    if !rt.scale {
        return Err(ApiError::no_route(&format!("{}/scale", rt.qualified())));
    }
    let meta = &obj["metadata"];
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": { "replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1) },
        "status": { "replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector },
    }))
}

/// PUT or PATCH of `/scale`: only `spec.replicas` moves.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_scale(
    store: &mut Store,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    patch_kind: Option<PatchType>,
    body: &[u8],
    opts: &WriteOpts,
) -> ApiResult<Value> {
    let key = key(rt, namespace, name);
    let current =
        store.get(&key).cloned().ok_or_else(|| ApiError::not_found(&rt.qualified(), name))?;
    let scale = scale_of(rt, &current)?;
    let new_scale = match patch_kind {
        None => serde_json::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("the Scale body is not JSON: {e}")))?,
        Some(PatchType::Apply) => apply_config(body)?,
        Some(kind) => patched(rt, kind, &scale, body)?,
    };
    if let Some(rv) = new_scale["metadata"]["resourceVersion"].as_str().filter(|rv| !rv.is_empty())
        && Some(rv) != current["metadata"]["resourceVersion"].as_str()
    {
        return Err(conflict(rt, name));
    }
    let replicas = &new_scale["spec"]["replicas"];
    if replicas.as_i64().is_none_or(|r| r < 0) {
        return Err(ApiError::invalid(
            "Scale",
            name,
            "spec.replicas",
            &format!("Invalid value: {replicas}: must be greater than or equal to 0"),
        ));
    }
    let mut new = present(rt, &current);
    match new.get_mut("spec").and_then(Value::as_object_mut) {
        Some(spec) => {
            spec.insert("replicas".to_owned(), replicas.clone());
        }
        None => {
            return Err(ApiError::invalid(
                &rt.kind,
                name,
                "spec",
                "Required value: the object has no spec to scale",
            ));
        }
    }
    let done = replace(store, rt, key, &current, new, main_part(rt), opts, Manage::Update)?;
    scale_of(rt, &done)
}

/// DELETE one object: with finalizers it is marked (deletionTimestamp) and stays until they are
/// gone; otherwise it goes now, with its dependents per the propagation policy.
pub(crate) fn delete(
    store: &mut Store,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    d: &DeleteOpts,
    opts: &WriteOpts,
) -> ApiResult<Value> {
    let key = key(rt, namespace, name);
    let current =
        store.get(&key).cloned().ok_or_else(|| ApiError::not_found(&rt.qualified(), name))?;
    for (field, label, wanted) in
        [("uid", "UID", &d.uid), ("resourceVersion", "ResourceVersion", &d.resource_version)]
    {
        let actual = current["metadata"][field].as_str();
        if let Some(wanted) = wanted
            && Some(wanted.as_str()) != actual
        {
            let why = format!(
                "Precondition failed: {label} in precondition: {wanted}, {label} in object meta: {}",
                actual.unwrap_or_default()
            );
            return Err(ApiError::conflict(&rt.qualified(), name, &why));
        }
    }
    if opts.dry_run || d.dry_run {
        return Ok(present(rt, &current));
    }
    let policy = d.propagation.clone().unwrap_or_else(|| "Background".to_owned());
    Ok(present(rt, &delete_key(store, &key, &policy)))
}

fn rt_of(store: &Store, key: &Key) -> Option<ResourceType> {
    store.registry.versions_of(&key.0, &key.1).next().cloned()
}

/// Deletes (or marks) one object by key and returns what was stored last.
fn delete_key(store: &mut Store, key: &Key, policy: &str) -> Value {
    let Some(current) = store.get(key).cloned() else { return Value::Null };
    let is_namespace = key.0.is_empty() && key.1 == "namespaces";
    let is_crd = key.0 == "apiextensions.k8s.io";
    let has_finalizers = user_finalizers(&current) > 0;
    if has_finalizers || is_namespace || is_crd {
        let mut marked = current.clone();
        let mut changed = false;
        if marked["metadata"]["deletionTimestamp"].is_null() {
            if let Some(meta) = marked["metadata"].as_object_mut() {
                meta.insert("deletionTimestamp".to_owned(), json!(now()));
                meta.insert("deletionGracePeriodSeconds".to_owned(), json!(0));
            }
            if is_namespace {
                match marked.get_mut("status").and_then(Value::as_object_mut) {
                    Some(status) => {
                        status.insert("phase".to_owned(), json!("Terminating"));
                    }
                    None => marked["status"] = json!({ "phase": "Terminating" }),
                }
            }
            changed = true;
        }
        // The garbage collector's own finalizers say how to treat dependents once the others
        // are gone, as on a real server.
        let gc = match policy {
            "Orphan" => Some(ORPHAN_FINALIZER),
            "Foreground" => Some(FOREGROUND_FINALIZER),
            _ => None,
        };
        if let (true, Some(gc)) = (has_finalizers, gc)
            && let Some(list) = marked["metadata"]["finalizers"].as_array_mut()
            && !list.iter().any(|f| f == gc)
        {
            list.push(json!(gc));
            changed = true;
        }
        if changed {
            marked = store.put(key.clone(), marked);
        }
        if is_namespace {
            for inner in store.in_namespace(&key.3) {
                delete_key(store, &inner, "Background");
            }
        }
        if is_crd {
            let (group, plural) =
                (current["spec"]["group"].as_str(), current["spec"]["names"]["plural"].as_str());
            if let (Some(group), Some(plural)) = (group, plural) {
                let keys: Vec<Key> =
                    store.range(group, plural, None).map(|(k, _)| k.clone()).collect();
                for inner in keys {
                    delete_key(store, &inner, "Background");
                }
            }
        }
        if has_finalizers {
            return marked;
        }
        // Removing the last object inside may already have removed the container.
        if let Some(rt) = rt_of(store, key).filter(|_| store.get(key).is_some())
            && !contents_remain(store, key)
        {
            return remove_now(store, &rt, key, policy);
        }
        return marked;
    }
    match rt_of(store, key) {
        Some(rt) => remove_now(store, &rt, key, policy),
        None => store.remove(key).unwrap_or(Value::Null),
    }
}

/// The garbage collector's finalizer for an orphaning deletion.
const ORPHAN_FINALIZER: &str = "orphan";
/// The garbage collector's finalizer for a foreground deletion.
const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// Finalizers other than the garbage collector's.
fn user_finalizers(obj: &Value) -> usize {
    obj["metadata"]["finalizers"].as_array().map_or(0, |f| {
        f.iter().filter(|f| *f != ORPHAN_FINALIZER && *f != FOREGROUND_FINALIZER).count()
    })
}

/// The propagation policy the garbage collector's finalizers record.
fn policy_from_finalizers(obj: &Value) -> &'static str {
    let has = |name: &str| {
        obj["metadata"]["finalizers"].as_array().is_some_and(|f| f.iter().any(|x| x == name))
    };
    if has(ORPHAN_FINALIZER) {
        "Orphan"
    } else if has(FOREGROUND_FINALIZER) {
        "Foreground"
    } else {
        "Background"
    }
}

fn contents_remain(store: &Store, key: &Key) -> bool {
    if key.0.is_empty() && key.1 == "namespaces" {
        return !store.in_namespace(&key.3).is_empty();
    }
    if key.0 == "apiextensions.k8s.io"
        && let Some(crd) = store.get(key)
    {
        let (group, plural) =
            (crd["spec"]["group"].as_str(), crd["spec"]["names"]["plural"].as_str());
        if let (Some(group), Some(plural)) = (group, plural) {
            return store.range(group, plural, None).next().is_some();
        }
    }
    false
}

/// What the garbage collector does for a deleted owner: dependents that have no other owner are
/// deleted with the same policy (Background, Foreground) or kept without the reference (Orphan).
fn collect_dependents(store: &mut Store, uid: &str, policy: &str) {
    let dependents: Vec<(Key, Value)> = store
        .all()
        .filter(|(_, obj)| {
            obj["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
        })
        .map(|(k, obj)| (k.clone(), obj.clone()))
        .collect();
    for (dep_key, mut dep) in dependents {
        let refs = dep["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
        let rest: Vec<Value> = refs.into_iter().filter(|r| r["uid"] != uid).collect();
        if policy == "Orphan" || !rest.is_empty() {
            if let Some(m) = dep["metadata"].as_object_mut() {
                if rest.is_empty() {
                    m.remove("ownerReferences");
                } else {
                    m.insert("ownerReferences".to_owned(), Value::Array(rest));
                }
            }
            store.put(dep_key, dep);
        } else {
            delete_key(store, &dep_key, policy);
        }
    }
}

/// Removes an object now, then its dependents (ownerReferences) per the policy, then any
/// namespace or definition that was waiting for it.
fn remove_now(store: &mut Store, rt: &ResourceType, key: &Key, policy: &str) -> Value {
    let Some(uid) =
        store.get(key).map(|o| o["metadata"]["uid"].as_str().unwrap_or_default().to_owned())
    else {
        return Value::Null;
    };
    // Foreground: the dependents go first, then the owner.
    if policy == "Foreground" {
        collect_dependents(store, &uid, policy);
    }
    let Some(gone) = store.remove(key) else { return Value::Null };
    if rt.group == "apiextensions.k8s.io"
        && let (Some(group), Some(plural)) =
            (gone["spec"]["group"].as_str(), gone["spec"]["names"]["plural"].as_str())
    {
        store.registry.remove_crd(group, plural);
    }
    if policy != "Foreground" {
        collect_dependents(store, &uid, policy);
    }
    // A namespace or definition being deleted goes once its last object has.
    let waiting: Vec<Key> = if key.2.is_empty() {
        Vec::new()
    } else {
        vec![(String::new(), "namespaces".to_owned(), String::new(), key.2.clone())]
    };
    let crd_waiting: Vec<Key> = store
        .range("apiextensions.k8s.io", "customresourcedefinitions", None)
        .filter(|(_, crd)| {
            crd["spec"]["group"] == key.0.as_str()
                && crd["spec"]["names"]["plural"] == key.1.as_str()
        })
        .map(|(k, _)| k.clone())
        .collect();
    for container in waiting.into_iter().chain(crd_waiting) {
        let terminating = store.get(&container).is_some_and(|c| {
            !c["metadata"]["deletionTimestamp"].is_null()
                && c["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty)
        });
        if terminating
            && !contents_remain(store, &container)
            && let Some(crt) = rt_of(store, &container)
        {
            remove_now(store, &crt, &container, "Background");
        }
    }
    gone
}

/// DELETE a collection: every selected object, as single deletes would.
pub(crate) fn delete_collection(
    store: &mut Store,
    rt: &ResourceType,
    namespace: Option<&str>,
    q: &ListQuery,
    d: &DeleteOpts,
    opts: &WriteOpts,
) -> ApiResult<Value> {
    let keys: Vec<Key> = store
        .range(&rt.group, &rt.plural, namespace)
        .filter(|(_, obj)| selected(&q.labels, &q.fields, obj))
        .map(|(k, _)| k.clone())
        .collect();
    let mut items = Vec::new();
    for k in keys {
        items.push(delete(
            store,
            rt,
            if rt.namespaced { Some(&k.2) } else { None },
            &k.3,
            d,
            opts,
        )?);
    }
    Ok(json!({
        "kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
        "metadata": { "resourceVersion": store.rv().to_string() }, "items": items,
    }))
}
