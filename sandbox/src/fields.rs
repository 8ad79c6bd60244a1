//! Field ownership: `metadata.managedFields` and server-side apply.
//!
//! Every write records which manager set which fields, in the `FieldsV1` format a real server
//! uses (`f:spec` / `f:replicas`, `k:{"name":"app"}` for keyed list items, `.` for an owned
//! item). Server-side apply merges the applied configuration into the live object, refuses to
//! change a field another manager owns unless `force=true` (409 with one cause per field), and
//! removes fields the manager applied before but no longer applies when nobody else owns them.
//!
//! Simplifications, documented for users of the sandbox: lists are keyed only where the
//! strategic-merge table in `patch` names a merge key (built-in kinds) and are otherwise atomic;
//! custom resources' schemas (`x-kubernetes-list-type`) are not read; sets of scalars
//! (`v:` entries) are atomic; ownership is per manager name and operation, and an Update takes
//! ownership of exactly the fields whose values it changed.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::patch::merge_key;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Step {
    /// A map field (`f:name`).
    Field(String),
    /// A keyed list item (`k:{"name":"app"}`), its key fields as canonical JSON.
    Key(String),
}

/// A path from the object root.
pub(crate) type Path = Vec<Step>;

/// A set of owned paths.
pub(crate) type FieldSet = BTreeSet<Path>;

/// Which part of an object a write touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// Everything but `status` (the main resource of a kind with a status subresource).
    Main,
    /// Only `status`.
    Status,
    /// The whole object (kinds without a status subresource).
    All,
}

const SYSTEM_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// The leaf paths and keyed items an object sets, within one part.
pub(crate) fn fields_of(obj: &Value, part: Part, keyed: bool) -> FieldSet {
    let mut set = FieldSet::new();
    let Value::Object(map) = obj else { return set };
    for (k, v) in map {
        if k == "apiVersion" || k == "kind" {
            continue;
        }
        let in_part = match part {
            Part::Main => k != "status",
            Part::Status => k == "status",
            Part::All => true,
        };
        if !in_part {
            continue;
        }
        let path = vec![Step::Field(k.clone())];
        if k == "metadata" {
            if let Value::Object(meta) = v {
                for (mk, mv) in
                    meta.iter().filter(|(mk, _)| !SYSTEM_METADATA.contains(&mk.as_str()))
                {
                    let mut p = path.clone();
                    p.push(Step::Field(mk.clone()));
                    walk(mv, mk, p, keyed, &mut set);
                }
            }
            continue;
        }
        walk(v, k, path, keyed, &mut set);
    }
    set
}

fn key_of(item: &Value, key: &str) -> Option<String> {
    let v = item.get(key)?;
    Some(json!({ key: v }).to_string())
}

fn walk(v: &Value, name: &str, path: Path, keyed: bool, set: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let mut p = path.clone();
                p.push(Step::Field(k.clone()));
                walk(child, k, p, keyed, set);
            }
        }
        Value::Array(items) if keyed && !items.is_empty() && items.iter().all(Value::is_object) => {
            match merge_key(name, items).filter(|key| items.iter().all(|i| i.get(*key).is_some())) {
                Some(key) => {
                    for item in items {
                        let Some(k) = key_of(item, key) else { continue };
                        let mut p = path.clone();
                        p.push(Step::Key(k));
                        set.insert(p.clone());
                        if let Value::Object(m) = item {
                            for (ck, child) in m {
                                let mut cp = p.clone();
                                cp.push(Step::Field(ck.clone()));
                                walk(child, ck, cp, keyed, set);
                            }
                        }
                    }
                }
                None => {
                    set.insert(path);
                }
            }
        }
        _ => {
            set.insert(path);
        }
    }
}

/// Whether a path ends at a keyed list item (`k:{...}`).
fn is_item(path: &[Step]) -> bool {
    matches!(path.last(), Some(Step::Key(_)))
}

/// The field names of the key of the item a path ends at.
fn key_fields(path: &[Step]) -> Vec<String> {
    match path.last() {
        Some(Step::Key(k)) => serde_json::from_str::<Map<String, Value>>(k)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The value at a path, resolving keyed list items.
pub(crate) fn value_at<'a>(obj: &'a Value, path: &[Step]) -> Option<&'a Value> {
    let mut at = obj;
    for step in path {
        at = match step {
            Step::Field(f) => at.get(f)?,
            Step::Key(k) => {
                let key: Map<String, Value> = serde_json::from_str(k).ok()?;
                at.as_array()?
                    .iter()
                    .find(|item| key.iter().all(|(kk, kv)| item.get(kk) == Some(kv)))?
            }
        };
    }
    Some(at)
}

/// Removes the value at a path (a map field or a keyed list item); a no-op when absent.
fn remove_at(obj: &mut Value, path: &[Step]) {
    let Some((last, parent_path)) = path.split_last() else { return };
    let mut at = obj;
    for step in parent_path {
        let next = match step {
            Step::Field(f) => at.get_mut(f),
            Step::Key(k) => {
                let Ok(key) = serde_json::from_str::<Map<String, Value>>(k) else { return };
                at.as_array_mut().and_then(|items| {
                    items
                        .iter_mut()
                        .find(|item| key.iter().all(|(kk, kv)| item.get(kk) == Some(kv)))
                })
            }
        };
        let Some(next) = next else { return };
        at = next;
    }
    match last {
        Step::Field(f) => {
            if let Some(m) = at.as_object_mut() {
                m.remove(f);
            }
        }
        Step::Key(k) => {
            let Ok(key) = serde_json::from_str::<Map<String, Value>>(k) else { return };
            if let Some(items) = at.as_array_mut() {
                items.retain(|item| !key.iter().all(|(kk, kv)| item.get(kk) == Some(kv)));
            }
        }
    }
}

/// Encodes a set as `fieldsV1`.
pub(crate) fn to_fields_v1(set: &FieldSet) -> Value {
    fn insert(node: &mut Map<String, Value>, path: &[Step]) {
        let Some((first, rest)) = path.split_first() else { return };
        let key = match first {
            Step::Field(f) => format!("f:{f}"),
            Step::Key(k) => format!("k:{k}"),
        };
        let entry = node.entry(key).or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(child) = entry {
            if rest.is_empty() {
                if matches!(first, Step::Key(_)) {
                    child.insert(".".to_owned(), json!({}));
                }
            } else {
                insert(child, rest);
            }
        }
    }
    let mut root = Map::new();
    for path in set {
        insert(&mut root, path);
    }
    Value::Object(root)
}

/// Decodes `fieldsV1`.
pub(crate) fn from_fields_v1(tree: &Value) -> FieldSet {
    fn go(tree: &Map<String, Value>, path: &mut Path, set: &mut FieldSet) {
        for (k, v) in tree {
            if k == "." {
                set.insert(path.clone());
                continue;
            }
            let step = if let Some(f) = k.strip_prefix("f:") {
                Step::Field(f.to_owned())
            } else if let Some(key) = k.strip_prefix("k:") {
                Step::Key(key.to_owned())
            } else {
                Step::Field(k.clone())
            };
            path.push(step);
            match v {
                Value::Object(m) if !m.is_empty() => go(m, path, set),
                _ => {
                    set.insert(path.clone());
                }
            }
            path.pop();
        }
    }
    let mut set = FieldSet::new();
    if let Value::Object(m) = tree {
        go(m, &mut Vec::new(), &mut set);
    }
    set
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: String,
    set: FieldSet,
}

fn read_entries(obj: &Value) -> Vec<Entry> {
    let Some(entries) = obj["metadata"]["managedFields"].as_array() else { return Vec::new() };
    entries
        .iter()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or_default().to_owned(),
            operation: e["operation"].as_str().unwrap_or("Update").to_owned(),
            api_version: e["apiVersion"].as_str().unwrap_or_default().to_owned(),
            time: e["time"].as_str().unwrap_or_default().to_owned(),
            subresource: e["subresource"].as_str().unwrap_or_default().to_owned(),
            set: from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&e.set),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".to_owned(), Value::Array(list));
        }
    }
}

/// Who is writing, for the managedFields entry.
#[derive(Debug, Clone)]
pub(crate) struct Writer<'a> {
    /// The field manager.
    pub(crate) manager: &'a str,
    /// `apps/v1` and so on.
    pub(crate) api_version: &'a str,
    /// RFC 3339 time of the write.
    pub(crate) now: &'a str,
    /// Which part of the object the write is to.
    pub(crate) part: Part,
    /// Whether lists are keyed by merge keys (built-in kinds).
    pub(crate) keyed: bool,
}

impl Writer<'_> {
    fn subresource(&self) -> &'static str {
        if self.part == Part::Status { "status" } else { "" }
    }
}

/// Records an Update (create, PUT, or a non-apply PATCH) in `new`'s managedFields: the writer
/// takes ownership of the fields whose values changed; fields that no longer exist are owned by
/// nobody.
pub(crate) fn record_update(old: Option<&Value>, new: &mut Value, w: &Writer<'_>) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let all = fields_of(new, Part::All, w.keyed);
    for e in &mut entries {
        e.set.retain(|p| all.contains(p));
    }
    // A keyed list item changes hands only when it is added; a change inside it is a change of
    // the fields that changed, not of the item.
    let changed: FieldSet = fields_of(new, w.part, w.keyed)
        .into_iter()
        .filter(|p| {
            let before = old.and_then(|o| value_at(o, p));
            if is_item(p) { before.is_none() } else { before != value_at(new, p) }
        })
        .collect();
    if !changed.is_empty() {
        for e in entries.iter_mut() {
            e.set.retain(|p| !changed.contains(p));
        }
        let sub = w.subresource();
        match entries
            .iter_mut()
            .find(|e| e.manager == w.manager && e.operation == "Update" && e.subresource == sub)
        {
            Some(e) => {
                e.set.extend(changed);
                e.time = w.now.to_owned();
                e.api_version = w.api_version.to_owned();
            }
            None => entries.push(Entry {
                manager: w.manager.to_owned(),
                operation: "Update".to_owned(),
                api_version: w.api_version.to_owned(),
                time: w.now.to_owned(),
                subresource: sub.to_owned(),
                set: changed,
            }),
        }
    }
    write_entries(new, &entries);
}

/// Merges an applied configuration into a live object (maps recursively, keyed lists by key,
/// everything else replaced).
fn merge_applied(live: &mut Value, config: &Value, name: &str, keyed: bool) {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) => {
            for (k, cv) in c {
                match l.get_mut(k) {
                    Some(lv) => merge_applied(lv, cv, k, keyed),
                    None => {
                        l.insert(k.clone(), cv.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(c))
            if keyed
                && l.iter().chain(c.iter()).all(Value::is_object)
                && merge_key(name, c).is_some() =>
        {
            let key = merge_key(name, c).unwrap_or("name");
            for item in c {
                match l.iter_mut().find(|li| li.get(key).is_some() && li.get(key) == item.get(key))
                {
                    Some(li) => merge_applied(li, item, name, keyed),
                    None => l.push(item.clone()),
                }
            }
            // Applied items come in the configuration's order; items others own follow.
            let mut ordered: Vec<Value> = Vec::with_capacity(l.len());
            for item in c {
                if let Some(i) = l.iter().position(|li| li.get(key) == item.get(key)) {
                    ordered.push(l.remove(i));
                }
            }
            ordered.append(l);
            *l = ordered;
        }
        (l, c) => *l = c.clone(),
    }
}

/// Server-side apply of `config` by `w.manager` onto `live` (absent: the object is created).
/// Returns the merged object with its managedFields, or a 409 naming each contested field.
pub(crate) fn apply(
    live: Option<&Value>,
    config: &Value,
    w: &Writer<'_>,
    force: bool,
) -> ApiResult<Value> {
    let mut entries = live.map(read_entries).unwrap_or_default();
    let applied = fields_of(config, w.part, w.keyed);
    let sub = w.subresource();
    let mine = |e: &Entry| e.manager == w.manager && e.operation == "Apply" && e.subresource == sub;
    let previous: FieldSet =
        entries.iter().find(|e| mine(e)).map(|e| e.set.clone()).unwrap_or_default();

    let mut conflicts: Vec<(String, String)> = Vec::new();
    let mut contested: FieldSet = FieldSet::new();
    if let Some(live) = live {
        // Items are never contested themselves: their fields are.
        for path in applied.iter().filter(|p| !is_item(p)) {
            let live_value = value_at(live, path);
            if live_value.is_none() || live_value == value_at(config, path) {
                continue;
            }
            for e in entries.iter().filter(|e| !mine(e) && e.set.contains(path)) {
                conflicts.push((
                    render(path),
                    format!("conflict with \"{}\" using {}", e.manager, e.api_version),
                ));
                contested.insert(path.clone());
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(ApiError::apply_conflicts(conflicts));
    }

    let mut merged = live.cloned().unwrap_or_else(|| json!({}));
    let mut body = config.clone();
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        meta.remove("resourceVersion");
    }
    if w.part == Part::Main
        && let Some(m) = body.as_object_mut()
    {
        m.remove("status");
    }
    merge_applied(&mut merged, &body, "", w.keyed);

    for e in entries.iter_mut().filter(|e| !mine(e)) {
        e.set.retain(|p| !contested.contains(p));
    }
    let owned_by_others: FieldSet =
        entries.iter().filter(|e| !mine(e)).flat_map(|e| e.set.iter().cloned()).collect();
    let mut dropped: Vec<&Path> = previous
        .iter()
        .filter(|p| !applied.contains(*p) && !owned_by_others.contains(*p))
        .collect();
    // Remove deeper paths first so a removed item's children never linger.
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for path in dropped {
        // Keep a map or item whose children others still own, and the merge key of any item
        // that stays (an item without its key would be corrupt).
        let others_below =
            owned_by_others.iter().any(|o| o.len() > path.len() && o.starts_with(path));
        let merge_key_of_kept_item = match path.split_last() {
            Some((Step::Field(field), parent))
                if parent.last().is_some_and(|s| matches!(s, Step::Key(_))) =>
            {
                key_fields(parent).contains(field) && value_at(&merged, parent).is_some() && {
                    let item_dropped = previous.contains(parent) && !applied.contains(parent);
                    let others_own_item = owned_by_others.iter().any(|o| o.starts_with(parent));
                    !item_dropped || others_own_item
                }
            }
            _ => false,
        };
        if !others_below && !merge_key_of_kept_item {
            remove_at(&mut merged, path);
        }
    }

    entries.retain(|e| !mine(e));
    entries.push(Entry {
        manager: w.manager.to_owned(),
        operation: "Apply".to_owned(),
        api_version: w.api_version.to_owned(),
        time: w.now.to_owned(),
        subresource: sub.to_owned(),
        set: applied,
    });
    write_entries(&mut merged, &entries);
    Ok(merged)
}

/// `.spec.template.spec.containers[name="app"].image`, as the API server names fields.
fn render(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Field(f) => {
                out.push('.');
                out.push_str(f);
            }
            Step::Key(k) => {
                let key: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let inner: Vec<String> = key.iter().map(|(kk, kv)| format!("{kk}={kv}")).collect();
                out.push_str(&format!("[{}]", inner.join(",")));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            api_version: "apps/v1",
            now: "2026-11-29T00:00:00Z",
            part: Part::Main,
            keyed: true,
        }
    }

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})
    }

    #[test]
    fn fields_v1_round_trips_with_keyed_items() {
        let set = fields_of(&deployment(3, "a:1"), Part::Main, true);
        let encoded = to_fields_v1(&set);
        assert!(
            encoded["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"]["."]
                .is_object()
        );
        assert_eq!(from_fields_v1(&encoded), set);
    }

    #[test]
    fn apply_creates_then_removes_what_is_no_longer_applied() {
        let created = apply(None, &deployment(3, "a:1"), &writer("avocet"), false).expect("create");
        let mut smaller = deployment(3, "a:1");
        smaller["metadata"]["labels"] = json!({});
        let updated = apply(Some(&created), &smaller, &writer("avocet"), false).expect("update");
        assert!(updated["metadata"]["labels"].get("app").is_none(), "{updated}");
        assert_eq!(updated["spec"]["replicas"], 3);
        assert_eq!(updated["metadata"]["managedFields"][0]["operation"], "Apply");
    }

    #[test]
    fn apply_conflicts_with_another_owner_unless_forced() {
        let created = apply(None, &deployment(3, "a:1"), &writer("avocet"), false).expect("create");
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(5);
        record_update(Some(&created), &mut scaled, &writer("kubectl-scale"));
        let err = apply(Some(&scaled), &deployment(3, "a:1"), &writer("avocet"), false)
            .expect_err("conflict");
        assert_eq!(err.code, 409);
        assert!(
            err.message.contains(".spec.replicas") && err.message.contains("kubectl-scale"),
            "{}",
            err.message
        );
        let forced =
            apply(Some(&scaled), &deployment(3, "a:1"), &writer("avocet"), true).expect("forced");
        assert_eq!(forced["spec"]["replicas"], 3);
        // A field the applier drops but another manager owns stays.
        let mut no_replicas = deployment(3, "a:2");
        no_replicas["spec"].as_object_mut().map(|s| s.remove("replicas"));
        let kept =
            apply(Some(&scaled), &no_replicas, &writer("avocet"), false).expect("no conflict");
        assert_eq!(kept["spec"]["replicas"], 5);
        assert_eq!(kept["spec"]["template"]["spec"]["containers"][0]["image"], "a:2");
    }

    #[test]
    fn a_keyed_item_edited_by_another_manager_keeps_its_key_and_conflicts_only_on_the_field() {
        let created = apply(None, &deployment(3, "a:1"), &writer("avocet"), false).expect("create");
        let mut set_image = created.clone();
        set_image["spec"]["template"]["spec"]["containers"][0]["image"] = json!("b:1");
        record_update(Some(&created), &mut set_image, &writer("kubectl-set"));
        let err = apply(Some(&set_image), &deployment(3, "c:1"), &writer("avocet"), false)
            .expect_err("the image is contested");
        let causes = err.details.as_ref().and_then(|d| d["causes"].as_array()).map(Vec::len);
        assert_eq!(causes, Some(1), "{}", err.message);
        assert!(err.message.contains("].image"), "{}", err.message);
        // Applying without the container: the item stays (kubectl-set owns its image), named.
        let mut no_containers = deployment(3, "a:1");
        no_containers["spec"]["template"]["spec"]["containers"] = json!([]);
        let kept =
            apply(Some(&set_image), &no_containers, &writer("avocet"), false).expect("applies");
        let containers = &kept["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["name"], "app", "{kept}");
        assert_eq!(containers[0]["image"], "b:1", "{kept}");
    }
}
