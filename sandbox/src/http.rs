//! The REST surface: routing Kubernetes paths to verbs, bearer-token auth, discovery, the
//! OpenAPI index kubectl consults before it validates, `Status` errors, and watch streams.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::error::{ApiError, ApiResult};
use crate::fields::Part;
use crate::ops::{self, DeleteOpts, ListQuery, PatchType, WriteOpts};
use crate::registry::ResourceType;
use crate::select::{FieldSelector, LabelSelector};
use crate::store::{Change, EventType, Store};
use crate::table;

/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(15);

/// The version `/version` reports: the Kubernetes API the sandbox follows (k8s-openapi v1_33).
const KUBE_MINOR: &str = "33";

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The objects.
    pub(crate) store: Mutex<Store>,
    /// The bearer token clients must present, if any.
    pub(crate) token: Option<String>,
    /// Where `pods/exec` runs commands as local processes; `None` refuses exec.
    pub(crate) exec_root: Option<std::path::PathBuf>,
}

impl Shared {
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        // A handler never panics while holding the lock (clippy forbids unwrap); recover anyway.
        self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The response body: a whole JSON document, or a watch stream.
pub(crate) type ResBody = BoxBody<Bytes, Infallible>;

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<ResBody> {
    let mut res = Response::new(Full::new(body.into()).boxed());
    *res.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        res.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    res
}

fn json_response(status: StatusCode, v: &Value) -> Response<ResBody> {
    full(status, "application/json", v.to_string())
}

fn error_response(e: &ApiError) -> Response<ResBody> {
    let status = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &e.to_status())
}

/// Percent-decodes a query component (`+` is a space).
pub(crate) fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= bytes.len() => {
                let hex =
                    std::str::from_utf8(bytes.get(i + 1..i + 3).unwrap_or_default()).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) if hex.len() == 2 => {
                        out.push(b);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// One parsed request.
struct Call {
    method: Method,
    path: String,
    query: HashMap<String, String>,
    content_type: String,
    accept: String,
    user_agent: String,
    body: Bytes,
}

impl Call {
    fn flag(&self, name: &str) -> bool {
        matches!(self.query.get(name).map(String::as_str), Some("true" | "1"))
    }

    fn write_opts(&self) -> ApiResult<WriteOpts> {
        let dry_run = match self.query.get("dryRun").map(String::as_str) {
            None | Some("") => false,
            Some("All") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "dryRun {other:?} is not supported; the only value is \"All\""
                )));
            }
        };
        let manager = match self.query.get("fieldManager") {
            Some(m) => m.clone(),
            None => self.user_agent.split('/').next().unwrap_or_default().to_owned(),
        };
        if manager.len() > 128 {
            return Err(ApiError::bad_request(format!(
                "fieldManager {manager:?} is longer than 128 characters"
            )));
        }
        Ok(WriteOpts { dry_run, manager, force: self.flag("force") })
    }

    fn list_query(&self) -> ApiResult<ListQuery> {
        let limit = match self.query.get("limit").map(String::as_str) {
            None | Some("") => 0,
            Some(l) => l.parse::<usize>().map_err(|_| {
                ApiError::bad_request(format!("limit {l:?} is not a non-negative integer"))
            })?,
        };
        Ok(ListQuery {
            labels: LabelSelector::parse(
                self.query.get("labelSelector").map_or("", String::as_str),
            )?,
            fields: FieldSelector::parse(
                self.query.get("fieldSelector").map_or("", String::as_str),
            )?,
            limit,
            continue_token: self.query.get("continue").filter(|c| !c.is_empty()).cloned(),
        })
    }

    fn body_json(&self) -> ApiResult<Value> {
        let yaml = self.content_type.starts_with("application/yaml");
        if self.content_type.starts_with("application/vnd.kubernetes.protobuf") {
            return crate::protobuf::decode(&self.body);
        }
        let parsed = if yaml {
            let text = std::str::from_utf8(&self.body)
                .map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
            serde_saphyr::from_str::<Value>(text)
                .map_err(|e| ApiError::bad_request(format!("the body is not YAML: {e}")))
        } else {
            serde_json::from_slice::<Value>(&self.body)
                .map_err(|e| ApiError::bad_request(format!("the body is not a JSON object: {e}")))
        }?;
        if !parsed.is_object() {
            return Err(ApiError::bad_request("the body must be an object"));
        }
        Ok(parsed)
    }

    fn wants_table(&self) -> bool {
        self.accept.contains("as=Table")
    }
}

/// Serves one HTTP request.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<ResBody>, Infallible> {
    if let Some((namespace, pod)) = crate::exec::target(req.uri().path()) {
        let presented = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if shared.token.is_some() && presented != shared.token.as_deref() {
            return Ok(error_response(&ApiError::unauthorized()));
        }
        let response = crate::exec::handle(&shared, req, namespace, pod)
            .unwrap_or_else(|e| error_response(&e));
        tracing::debug!(status = response.status().as_u16(), "sandbox exec");
        return Ok(response);
    }
    let (parts, body) = req.into_parts();
    let header = |name: hyper::header::HeaderName| {
        parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };
    let authorization = header(hyper::header::AUTHORIZATION);
    let call = Call {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: parse_query(parts.uri.query()),
        content_type: header(hyper::header::CONTENT_TYPE),
        accept: header(hyper::header::ACCEPT),
        user_agent: header(hyper::header::USER_AGENT),
        body: match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => {
                return Ok(error_response(&ApiError::bad_request(format!(
                    "cannot read the request body: {e}"
                ))));
            }
        },
    };
    if matches!(call.path.as_str(), "/healthz" | "/livez" | "/readyz") {
        return Ok(full(StatusCode::OK, "text/plain", "ok"));
    }
    if let Some(token) = &shared.token {
        let presented = authorization.strip_prefix("Bearer ").map(str::trim);
        if presented != Some(token.as_str()) {
            return Ok(error_response(&ApiError::unauthorized()));
        }
    }
    // A bug must not cost the client its connection: a panic is a 500 like any other error.
    let routed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| route(&shared, &call)))
        .unwrap_or_else(|_| {
            Err(ApiError::internal(format!("the sandbox failed on {} {}", call.method, call.path)))
        });
    // 11: a change that could not be journalled is in memory only; the client must know.
    let routed = match (routed, shared.store().take_journal_error()) {
        (Ok(_), Some(error)) => Err(ApiError::internal(format!(
            "the change was made in memory but could not be written to the data directory ({error}); it will be lost on restart"
        ))),
        (routed, _) => routed,
    };
    let response = match routed {
        Ok(Routed::Json(status, v)) => json_response(status, &v),
        Ok(Routed::Raw(status, content_type, bytes)) => full(status, content_type, bytes),
        Ok(Routed::Watch(body)) => {
            let mut res = Response::new(body);
            if let Ok(v) = "application/json".parse() {
                res.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
            }
            res
        }
        Err(e) => error_response(&e),
    };
    tracing::debug!(method = %call.method, path = %call.path, status = response.status().as_u16(), "sandbox request");
    Ok(response)
}

enum Routed {
    Json(StatusCode, Value),
    Raw(StatusCode, &'static str, Bytes),
    Watch(ResBody),
}

fn ok(v: Value) -> ApiResult<Routed> {
    Ok(Routed::Json(StatusCode::OK, v))
}

fn route(shared: &Shared, call: &Call) -> ApiResult<Routed> {
    let segments: Vec<&str> =
        call.path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let not_found = || ApiError::no_route(&call.path);
    if call.method == Method::GET {
        match segments.as_slice() {
            ["version"] => {
                return ok(json!({
                    "major": "1", "minor": KUBE_MINOR, "gitVersion": format!("v1.{KUBE_MINOR}.0-avocet-sandbox"),
                    "gitCommit": "avocet-sandbox", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                    "goVersion": "none", "compiler": "rustc", "platform": "linux/amd64",
                }));
            }
            ["api"] => {
                return ok(json!({
                    "kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": "" }],
                }));
            }
            ["apis"] => return ok(shared.store().registry.api_group_list()),
            ["apis", group] => {
                return shared
                    .store()
                    .registry
                    .api_group(group)
                    .map_or_else(|| Err(not_found()), ok);
            }
            ["api", "v1"] => {
                return shared
                    .store()
                    .registry
                    .resource_list("", "v1")
                    .map_or_else(|| Err(not_found()), ok);
            }
            ["apis", group, version] => {
                return shared
                    .store()
                    .registry
                    .resource_list(group, version)
                    .map_or_else(|| Err(not_found()), ok);
            }
            ["openapi", "v2"] => {
                // An empty OpenAPI v2 document: kubectl finds no schema and skips client-side
                // validation, as the sandbox validates on the server.
                return Ok(Routed::Raw(
                    StatusCode::OK,
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                    Bytes::new(),
                ));
            }
            ["openapi", "v3"] => return ok(crate::openapi::index(&shared.store().registry)),
            ["openapi", "v3", rest @ ..] => {
                return crate::openapi::group_version(&shared.store().registry, rest)
                    .map_or_else(|| Err(not_found()), ok);
            }
            _ => {}
        }
    }
    let (group, version, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => ("", "v1", rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
        _ => return Err(not_found()),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, tail @ ..]
            if !tail.is_empty() && !matches!(tail, ["status" | "finalize"]) =>
        {
            (Some(*ns), tail)
        }
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return Err(not_found()),
    };
    let rt = shared.store().registry.find(group, version, plural).cloned().ok_or_else(not_found)?;
    if namespace.is_some() && !rt.namespaced {
        return Err(not_found());
    }
    if name.is_some() && rt.namespaced && namespace.is_none() {
        return Err(not_found());
    }
    match (name, sub) {
        (None, _) => collection(shared, call, &rt, namespace),
        (Some(name), None) => item(shared, call, &rt, namespace, name, ops::main_part(&rt)),
        (Some(name), Some("status")) if rt.status => {
            item(shared, call, &rt, namespace, name, Part::Status)
        }
        (Some(name), Some("scale")) if rt.scale => scale(shared, call, &rt, namespace, name),
        (Some(name), Some("finalize")) if rt.plural == "namespaces" && rt.group.is_empty() => {
            item(shared, call, &rt, namespace, name, ops::main_part(&rt))
        }
        _ => Err(not_found()),
    }
}

fn collection(
    shared: &Shared,
    call: &Call,
    rt: &ResourceType,
    namespace: Option<&str>,
) -> ApiResult<Routed> {
    match call.method {
        Method::GET if call.flag("watch") => watch(shared, call, rt, namespace),
        Method::GET => {
            let q = call.list_query()?;
            let list = ops::list(&shared.store(), rt, namespace, &q)?;
            if call.wants_table() { ok(table::list(rt, &list)) } else { ok(list) }
        }
        Method::POST => {
            let body = call.body_json()?;
            let opts = call.write_opts()?;
            let created = ops::create(&mut shared.store(), rt, namespace, body, &opts)?;
            Ok(Routed::Json(StatusCode::CREATED, created))
        }
        Method::DELETE => {
            let q = call.list_query()?;
            let d = DeleteOpts::parse(
                &call.body,
                call.query.get("propagationPolicy").map(String::as_str),
            )?;
            ok(ops::delete_collection(
                &mut shared.store(),
                rt,
                namespace,
                &q,
                &d,
                &call.write_opts()?,
            )?)
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{} is not supported on a collection",
            call.method
        ))),
    }
}

/// An object (`part` Main or All) or its `/status` (`part` Status: no DELETE, no Table).
fn item(
    shared: &Shared,
    call: &Call,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    part: Part,
) -> ApiResult<Routed> {
    let on_status = part == Part::Status;
    match call.method {
        Method::GET => {
            let obj = ops::get(&shared.store(), rt, namespace, name)?;
            if call.wants_table() && !on_status { ok(table::single(rt, &obj)) } else { ok(obj) }
        }
        Method::PUT => {
            let body = call.body_json()?;
            ok(ops::update(
                &mut shared.store(),
                rt,
                namespace,
                name,
                body,
                part,
                &call.write_opts()?,
            )?)
        }
        Method::PATCH => {
            let kind = PatchType::from_content_type(&call.content_type)?;
            let opts = call.write_opts()?;
            let mut store = shared.store();
            let existed = ops::get(&store, rt, namespace, name).is_ok();
            let out = ops::patch(&mut store, rt, namespace, name, kind, &call.body, part, &opts)?;
            let code = if existed { StatusCode::OK } else { StatusCode::CREATED };
            Ok(Routed::Json(code, out))
        }
        Method::DELETE if !on_status => {
            let d = DeleteOpts::parse(
                &call.body,
                call.query.get("propagationPolicy").map(String::as_str),
            )?;
            ok(ops::delete(&mut shared.store(), rt, namespace, name, &d, &call.write_opts()?)?)
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{} is not supported on {}",
            call.method,
            if on_status { "status" } else { "an object" }
        ))),
    }
}

fn scale(
    shared: &Shared,
    call: &Call,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
) -> ApiResult<Routed> {
    match call.method {
        Method::GET => ok(ops::scale_of(rt, &ops::get(&shared.store(), rt, namespace, name)?)?),
        Method::PUT => ok(ops::write_scale(
            &mut shared.store(),
            rt,
            namespace,
            name,
            None,
            &call.body,
            &call.write_opts()?,
        )?),
        Method::PATCH => {
            let kind = PatchType::from_content_type(&call.content_type)?;
            ok(ops::write_scale(
                &mut shared.store(),
                rt,
                namespace,
                name,
                Some(kind),
                &call.body,
                &call.write_opts()?,
            )?)
        }
        _ => {
            Err(ApiError::method_not_allowed(format!("{} is not supported on scale", call.method)))
        }
    }
}

/// A body fed from a channel, one watch event per frame.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

/// What one watch selects.
struct WatchFilter {
    group: String,
    plural: String,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl WatchFilter {
    fn covers(&self, change: &Change) -> bool {
        change.key.0 == self.group
            && change.key.1 == self.plural
            && self.namespace.as_ref().is_none_or(|ns| *ns == change.key.2)
    }

    fn selects(&self, obj: &Value) -> bool {
        ops::selected(&self.labels, &self.fields, obj)
    }

    /// The event a watcher sees for a change, and the object it carries: an object entering the
    /// selection is ADDED; one leaving it is DELETED, carrying its last selected state at the
    /// change's resourceVersion, as a real server's watch cache does.
    fn event(&self, change: &Change) -> Option<(&'static str, Value)> {
        if !self.covers(change) {
            return None;
        }
        let now = self.selects(&change.object);
        let before = change.previous.as_ref().filter(|p| self.selects(p));
        match change.kind {
            EventType::Added if now => Some(("ADDED", change.object.clone())),
            EventType::Modified if now && before.is_some() => {
                Some(("MODIFIED", change.object.clone()))
            }
            EventType::Modified if now => Some(("ADDED", change.object.clone())),
            EventType::Modified => before.map(|p| {
                let mut last = p.clone();
                last["metadata"]["resourceVersion"] = json!(change.rv.to_string());
                ("DELETED", last)
            }),
            EventType::Deleted if now => Some(("DELETED", change.object.clone())),
            _ => None,
        }
    }
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut text = json!({ "type": kind, "object": object }).to_string();
    text.push('\n');
    Bytes::from(text)
}

fn watch(
    shared: &Shared,
    call: &Call,
    rt: &ResourceType,
    namespace: Option<&str>,
) -> ApiResult<Routed> {
    let q = call.list_query()?;
    let filter = WatchFilter {
        group: rt.group.clone(),
        plural: rt.plural.clone(),
        namespace: namespace.map(str::to_owned),
        labels: q.labels,
        fields: q.fields,
    };
    let requested = call.query.get("resourceVersion").map(String::as_str).unwrap_or_default();
    let initial_events = call.flag("sendInitialEvents");
    let bookmarks = call.flag("allowWatchBookmarks");
    let timeout = match call.query.get("timeoutSeconds") {
        Some(t) => Duration::from_secs(t.parse().map_err(|_| {
            ApiError::bad_request(format!("timeoutSeconds {t:?} is not a whole number"))
        })?),
        None => Duration::from_secs(1800),
    };
    let as_table = call.wants_table();
    let render = move |rt: &ResourceType, obj: &Value| {
        let obj = ops::present(rt, obj);
        if as_table { table::single(rt, &obj) } else { obj }
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut first: Vec<Bytes> = Vec::new();
    let resume_from: u64;
    let receiver = {
        let store = shared.store();
        let from = if requested.is_empty() || requested == "0" || initial_events {
            for (_, obj) in store.range(&rt.group, &rt.plural, namespace) {
                if filter.selects(obj) {
                    first.push(line("ADDED", &render(rt, obj)));
                }
            }
            store.rv()
        } else {
            requested.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "resourceVersion {requested:?} is not a valid resource version"
                ))
            })?
        };
        if initial_events {
            first.push(line("BOOKMARK", &bookmark(rt, store.rv(), true)));
        }
        resume_from = store.rv();
        match store.watch_from(from) {
            Some((past, receiver)) => {
                for change in past {
                    if let Some((kind, object)) = filter.event(&change) {
                        first.push(line(kind, &render(rt, &object)));
                    }
                }
                Some(receiver)
            }
            None => {
                let expired =
                    ApiError::gone(format!("too old resource version: {from} ({})", store.rv()));
                first.push(line("ERROR", &expired.to_status()));
                None
            }
        }
    };
    let rt = rt.clone();
    tokio::spawn(async move {
        for chunk in first {
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
        let Some(mut receiver) = receiver else { return };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        // Every change reaches this task, selected or not, so after each one the watcher is
        // up to date to its version; bookmarks tell it so even when nothing it selects moves.
        let mut last_rv = resume_from;
        let mut bookmark_every = tokio::time::interval(BOOKMARK_EVERY);
        bookmark_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        bookmark_every.tick().await;
        loop {
            let next = tokio::select! {
                () = &mut deadline => return,
                () = tx.closed() => return,
                _ = bookmark_every.tick(), if bookmarks => {
                    if tx.send(line("BOOKMARK", &bookmark(&rt, last_rv, false))).await.is_err() {
                        return;
                    }
                    continue;
                }
                next = receiver.recv() => next,
            };
            match next {
                Ok(change) => {
                    last_rv = last_rv.max(change.rv);
                    if let Some((kind, object)) = filter.event(&change)
                        && tx.send(line(kind, &render(&rt, &object))).await.is_err()
                    {
                        return;
                    }
                }
                // A watcher that fell behind is closed; clients re-watch from their last version.
                Err(
                    broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed,
                ) => return,
            }
        }
    });
    Ok(Routed::Watch(ChannelBody(rx).boxed()))
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Value {
    let mut metadata = json!({ "resourceVersion": rv.to_string() });
    if initial_end {
        metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    json!({ "kind": rt.kind, "apiVersion": rt.api_version(), "metadata": metadata })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_leaving_a_selection_is_deleted_with_its_last_selected_state() {
        let filter = WatchFilter {
            group: String::new(),
            plural: "configmaps".to_owned(),
            namespace: None,
            labels: LabelSelector::parse("app=web").expect("selector"),
            fields: FieldSelector::default(),
        };
        let labelled = |app: &str| json!({"metadata": {"name": "a", "labels": {"app": app}, "resourceVersion": "4"}});
        let change = Change {
            rv: 5,
            kind: EventType::Modified,
            key: (String::new(), "configmaps".to_owned(), "default".to_owned(), "a".to_owned()),
            object: labelled("api"),
            previous: Some(labelled("web")),
        };
        let (kind, object) = filter.event(&change).expect("an event");
        assert_eq!(kind, "DELETED");
        assert_eq!(object["metadata"]["labels"]["app"], "web");
        assert_eq!(object["metadata"]["resourceVersion"], "5");
        let back = Change { object: labelled("web"), previous: Some(labelled("api")), ..change };
        assert_eq!(filter.event(&back).map(|(k, _)| k), Some("ADDED"));
    }

    #[test]
    fn query_strings_decode_selectors() {
        let q = parse_query(Some("labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29&limit=5&watch=1"));
        assert_eq!(q["labelSelector"], "app=web,tier in (a,b)");
        assert_eq!(q["limit"], "5");
        assert_eq!(decode("100%"), "100%");
    }
}
