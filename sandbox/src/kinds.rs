//! What a real API server does for particular kinds on create and update: defaults, the
//! allocations a Service gets, the binding a claim with a named volume gets, a
//! CustomResourceDefinition's status, validation of names, labels and workload selectors, and
//! the fields that may not change after creation.

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::registry::{ResourceType, crd_types};
use crate::store::Store;

fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

const SUBDOMAIN_RULE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_RULE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// Names must be DNS subdomains; namespaces and services, DNS labels.
pub(crate) fn validate_name(rt: &ResourceType, name: &str) -> ApiResult<()> {
    let label_only = rt.group.is_empty() && matches!(rt.plural.as_str(), "namespaces" | "services");
    let ok = if label_only {
        is_label(name)
    } else {
        name.len() <= 253 && name.split('.').all(is_label)
    };
    if ok {
        return Ok(());
    }
    let rule = if label_only { LABEL_RULE } else { SUBDOMAIN_RULE };
    Err(ApiError::invalid(
        &rt.kind,
        name,
        "metadata.name",
        &format!("Invalid value: {name:?}: {rule}"),
    ))
}

fn valid_label_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && v.chars().next().is_none_or(|c| c.is_ascii_alphanumeric())
        && v.chars().last().is_none_or(|c| c.is_ascii_alphanumeric())
}

fn valid_qualified_name(k: &str) -> bool {
    let (prefix, name) = k.rsplit_once('/').map_or((None, k), |(p, n)| (Some(p), n));
    prefix.is_none_or(|p| !p.is_empty() && p.len() <= 253 && p.split('.').all(is_label))
        && !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// Labels, annotations, workload selectors and replica counts.
pub(crate) fn validate(rt: &ResourceType, obj: &Value) -> ApiResult<()> {
    let name = name_of(obj);
    let invalid = |field: &str, problem: String| ApiError::invalid(&rt.kind, name, field, &problem);
    if let Some(labels) = obj["metadata"]["labels"].as_object() {
        for (k, v) in labels {
            if !valid_qualified_name(k) {
                return Err(invalid(
                    "metadata.labels",
                    format!(
                        "Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                    ),
                ));
            }
            match v.as_str() {
                Some(s) if valid_label_value(s) => {}
                _ => {
                    return Err(invalid(
                        "metadata.labels",
                        format!(
                            "Invalid value: {v}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                        ),
                    ));
                }
            }
        }
    }
    if let Some(annotations) = obj["metadata"]["annotations"].as_object() {
        if let Some((k, _)) = annotations.iter().find(|(k, _)| !valid_qualified_name(k)) {
            return Err(invalid(
                "metadata.annotations",
                format!(
                    "Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.'"
                ),
            ));
        }
        if let Some((k, v)) = annotations.iter().find(|(_, v)| !v.is_string()) {
            return Err(invalid(
                &format!("metadata.annotations[{k}]"),
                format!("Invalid value: {v}: must be a string"),
            ));
        }
    }
    if !rt.custom && rt.group == "apps" {
        let spec = &obj["spec"];
        if !spec["selector"].is_object() {
            return Err(invalid("spec.selector", "Required value".to_owned()));
        }
        if let Some(want) = spec["selector"]["matchLabels"].as_object() {
            let have = &spec["template"]["metadata"]["labels"];
            if want.iter().any(|(k, v)| have.get(k) != Some(v)) {
                return Err(invalid(
                    "spec.template.metadata.labels",
                    format!("Invalid value: {have}: `selector` does not match template `labels`"),
                ));
            }
        }
    }
    if rt.scale {
        match &obj["spec"]["replicas"] {
            Value::Null => {}
            Value::Number(n)
                if n.as_i64().is_some_and(|r| (0..=i64::from(i32::MAX)).contains(&r)) => {}
            other => {
                return Err(invalid(
                    "spec.replicas",
                    format!("Invalid value: {other}: must be greater than or equal to 0"),
                ));
            }
        }
    }
    if let Some(data) =
        obj["data"].as_object().filter(|_| rt.group.is_empty() && rt.plural == "secrets")
    {
        use base64::Engine as _;
        for (k, v) in data {
            let decodes = v
                .as_str()
                .is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
            if !decodes {
                return Err(invalid(
                    &format!("data[{k}]"),
                    format!("Invalid value: {v}: must be base64-encoded"),
                ));
            }
        }
    }
    Ok(())
}

/// What the server does to every write of some kinds: a Secret's `stringData` is folded into
/// `data` (base64) and dropped, and its type defaults to `Opaque`.
pub(crate) fn normalize(rt: &ResourceType, obj: &mut Value) {
    if rt.custom || !rt.group.is_empty() || rt.plural != "secrets" {
        return;
    }
    use base64::Engine as _;
    if let Some(Value::Object(string_data)) =
        obj.as_object_mut().and_then(|m| m.remove("stringData"))
    {
        if !obj["data"].is_object() {
            obj["data"] = json!({});
        }
        for (k, v) in string_data {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
        }
    }
    if obj["type"].as_str().is_none_or(str::is_empty) {
        obj["type"] = json!("Opaque");
    }
}

/// Defaults and allocations on create.
pub(crate) fn on_create(rt: &ResourceType, obj: &mut Value, store: &Store) -> ApiResult<()> {
    if rt.scale && obj["spec"].is_object() && obj["spec"]["replicas"].is_null() {
        obj["spec"]["replicas"] = json!(1);
    }
    if rt.custom || !(rt.group.is_empty() || rt.group == "apiextensions.k8s.io") {
        return Ok(());
    }
    match rt.plural.as_str() {
        "namespaces" => {
            let name = name_of(obj).to_owned();
            if !obj["metadata"]["labels"].is_object() {
                obj["metadata"]["labels"] = json!({});
            }
            if let Some(labels) = obj["metadata"]["labels"].as_object_mut() {
                labels.insert("kubernetes.io/metadata.name".to_owned(), json!(name));
            }
            obj["spec"] = json!({ "finalizers": ["kubernetes"] });
            obj["status"] = json!({ "phase": "Active" });
        }
        "services" => allocate_service(obj, store)?,
        "persistentvolumes" => {
            let phase = if obj["spec"]["claimRef"].is_object() { "Bound" } else { "Available" };
            obj["status"] = json!({ "phase": phase });
        }
        "persistentvolumeclaims" => {
            let volume = obj["spec"]["volumeName"].as_str().unwrap_or_default();
            let key =
                (String::new(), "persistentvolumes".to_owned(), String::new(), volume.to_owned());
            obj["status"] = match store.get(&key) {
                Some(pv) if !volume.is_empty() => json!({
                    "phase": "Bound",
                    "accessModes": pv["spec"]["accessModes"],
                    "capacity": pv["spec"]["capacity"],
                }),
                _ => json!({ "phase": "Pending" }),
            };
        }
        "customresourcedefinitions" => {
            let types = crd_types(obj)?;
            let first = types.first().ok_or_else(|| {
                ApiError::invalid(
                    &rt.kind,
                    name_of(obj),
                    "spec.versions",
                    "Required value: at least one version must be served",
                )
            })?;
            if store.registry.builtin_claims(&first.group, &first.plural) {
                return Err(ApiError::invalid(
                    &rt.kind,
                    name_of(obj),
                    "spec.group",
                    &format!("Invalid value: {:?}: is a built-in group", first.group),
                ));
            }
            let storage = obj["spec"]["versions"]
                .as_array()
                .and_then(|vs| vs.iter().find(|v| v["storage"] == true))
                .map(|v| v["name"].clone())
                .unwrap_or(Value::Null);
            obj["status"] = crd_status(&obj["spec"]["names"], &storage, &crate::ops::now());
        }
        _ => {}
    }
    Ok(())
}

fn crd_status(names: &Value, storage: &Value, now: &str) -> Value {
    let condition = |kind: &str, reason: &str, message: &str| json!({"type": kind, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message});
    let mut accepted = names.clone();
    if accepted["singular"].is_null() {
        accepted["singular"] = json!(names["kind"].as_str().unwrap_or_default().to_lowercase());
    }
    if accepted["listKind"].is_null() {
        accepted["listKind"] = json!(format!("{}List", names["kind"].as_str().unwrap_or_default()));
    }
    json!({
        "acceptedNames": accepted,
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": [storage],
    })
}

/// Cluster IPs and node ports every other Service holds.
fn used_by_services(store: &Store, this: (&str, &str)) -> (Vec<String>, Vec<u64>) {
    let mut ips = Vec::new();
    let mut ports = Vec::new();
    for (key, svc) in store.range("", "services", None) {
        if (key.2.as_str(), key.3.as_str()) == this {
            continue;
        }
        if let Some(ip) = svc["spec"]["clusterIP"].as_str() {
            ips.push(ip.to_owned());
        }
        for port in svc["spec"]["ports"].as_array().into_iter().flatten() {
            if let Some(p) = port["nodePort"].as_u64() {
                ports.push(p);
            }
        }
    }
    (ips, ports)
}

/// A Service gets a cluster IP from 10.96.0.0/12 and node ports from 30000–32767, as from a
/// default kube-apiserver; a requested one already in use is refused.
fn allocate_service(obj: &mut Value, store: &Store) -> ApiResult<()> {
    let name = name_of(obj).to_owned();
    let namespace = obj["metadata"]["namespace"].as_str().unwrap_or_default().to_owned();
    let (ips, node_ports) = used_by_services(store, (&namespace, &name));
    let spec = &mut obj["spec"];
    if !spec.is_object() {
        *spec = json!({});
    }
    let kind = spec["type"].as_str().unwrap_or("ClusterIP").to_owned();
    spec["type"] = json!(kind);
    if spec["sessionAffinity"].is_null() {
        spec["sessionAffinity"] = json!("None");
    }
    if kind != "ExternalName" {
        match spec["clusterIP"].as_str() {
            Some("None") => {}
            Some(ip) if !ip.is_empty() => {
                if ips.iter().any(|used| used == ip) {
                    return Err(ApiError::invalid(
                        "Service",
                        &name,
                        "spec.clusterIPs",
                        &format!(
                            "Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated"
                        ),
                    ));
                }
            }
            _ => {
                let ip = (1..0xF_FFFE_u32)
                    .map(|n| format!("10.{}.{}.{}", 96 + (n >> 16), (n >> 8) & 0xFF, n & 0xFF))
                    .find(|ip| !ips.contains(ip))
                    .ok_or_else(|| ApiError::internal("the sandbox has no cluster IPs left"))?;
                spec["clusterIP"] = json!(ip);
            }
        }
        spec["clusterIPs"] = json!([spec["clusterIP"].clone()]);
        spec["ipFamilies"] = json!(["IPv4"]);
        spec["ipFamilyPolicy"] = json!("SingleStack");
    }
    let wants_node_ports = kind == "NodePort" || kind == "LoadBalancer";
    let mut taken = node_ports;
    if let Some(ports) = spec["ports"].as_array_mut() {
        for (i, port) in ports.iter_mut().enumerate() {
            if !port.is_object() || !port["port"].as_i64().is_some_and(|p| (1..=65535).contains(&p))
            {
                return Err(ApiError::invalid(
                    "Service",
                    &name,
                    &format!("spec.ports[{i}].port"),
                    &format!(
                        "Invalid value: {}: must be between 1 and 65535, inclusive",
                        port.get("port").unwrap_or(port)
                    ),
                ));
            }
            if port["protocol"].is_null() {
                port["protocol"] = json!("TCP");
            }
            if port["targetPort"].is_null() {
                port["targetPort"] = port["port"].clone();
            }
            if !wants_node_ports {
                continue;
            }
            match port["nodePort"].as_u64() {
                Some(p) if taken.contains(&p) => {
                    return Err(ApiError::invalid(
                        "Service",
                        &name,
                        &format!("spec.ports[{i}].nodePort"),
                        &format!("Invalid value: {p}: provided port is already allocated"),
                    ));
                }
                Some(p) if !(30000..=32767).contains(&p) => {
                    return Err(ApiError::invalid(
                        "Service",
                        &name,
                        &format!("spec.ports[{i}].nodePort"),
                        &format!(
                            "Invalid value: {p}: provided port is not in the valid range. The range of valid ports is 30000-32767"
                        ),
                    ));
                }
                Some(p) => taken.push(p),
                None => {
                    let p = (30000..=32767_u64)
                        .find(|p| !taken.contains(p))
                        .ok_or_else(|| ApiError::internal("the sandbox has no node ports left"))?;
                    port["nodePort"] = json!(p);
                    taken.push(p);
                }
            }
        }
    }
    Ok(())
}

/// What a real server fills in on update: a Service keeps the cluster IP and node ports it was
/// allocated when the update leaves them out, and gets node ports for new ports of a NodePort
/// or LoadBalancer type.
pub(crate) fn on_update(
    rt: &ResourceType,
    old: &Value,
    new: &mut Value,
    store: &Store,
) -> ApiResult<()> {
    if rt.custom || !rt.group.is_empty() || rt.plural != "services" || !new["spec"].is_object() {
        return Ok(());
    }
    let (old_spec, spec) = (&old["spec"], &mut new["spec"]);
    if spec["clusterIP"].as_str().is_none_or(str::is_empty) && old_spec["clusterIP"].is_string() {
        for carried in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if !old_spec[carried].is_null() {
                spec[carried] = old_spec[carried].clone();
            }
        }
    }
    if let Some(ports) = spec["ports"].as_array_mut() {
        for port in ports.iter_mut().filter(|p| p.is_object() && p["nodePort"].is_null()) {
            let same = old_spec["ports"].as_array().into_iter().flatten().find(|o| {
                o["port"] == port["port"]
                    && o["protocol"].as_str().unwrap_or("TCP")
                        == port["protocol"].as_str().unwrap_or("TCP")
            });
            if let Some(node_port) = same.map(|o| &o["nodePort"]).filter(|n| !n.is_null()) {
                port["nodePort"] = node_port.clone();
            }
        }
    }
    let kind = spec["type"].as_str().unwrap_or("ClusterIP");
    let needs_ports = (kind == "NodePort" || kind == "LoadBalancer")
        && spec["ports"]
            .as_array()
            .is_some_and(|ports| ports.iter().any(|p| p["nodePort"].is_null()));
    if needs_ports {
        // Allocate as on create; this Service's own ports are already counted as taken.
        allocate_service(new, store)?;
    }
    Ok(())
}

/// Fields a real server refuses to change after creation.
pub(crate) fn validate_update(rt: &ResourceType, old: &Value, new: &Value) -> ApiResult<()> {
    let name = name_of(new);
    let immutable = |field: &str, value: &Value| {
        ApiError::invalid(
            &rt.kind,
            name,
            field,
            &format!("Invalid value: {value}: field is immutable"),
        )
    };
    if rt.custom {
        return Ok(());
    }
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("apps", "deployments" | "daemonsets" | "replicasets")
            if old["spec"]["selector"] != new["spec"]["selector"] =>
        {
            return Err(immutable("spec.selector", &new["spec"]["selector"]));
        }
        ("apps", "statefulsets") => {
            let strip = |v: &Value| {
                let mut spec = v["spec"].clone();
                if let Some(m) = spec.as_object_mut() {
                    for allowed in [
                        "replicas",
                        "ordinals",
                        "template",
                        "updateStrategy",
                        "persistentVolumeClaimRetentionPolicy",
                        "minReadySeconds",
                    ] {
                        m.remove(allowed);
                    }
                }
                spec
            };
            if strip(old) != strip(new) {
                return Err(ApiError::invalid(
                    "StatefulSet",
                    name,
                    "spec",
                    "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                ));
            }
        }
        ("", "services") => {
            let (was, now) = (&old["spec"]["clusterIP"], &new["spec"]["clusterIP"]);
            if was.as_str().is_some_and(|s| !s.is_empty()) && was != now {
                return Err(ApiError::invalid(
                    "Service",
                    name,
                    "spec.clusterIPs[0]",
                    &format!("Invalid value: {now}: may not change once set"),
                ));
            }
        }
        ("", "persistentvolumeclaims") => {
            let strip = |v: &Value| {
                let mut spec = v["spec"].clone();
                if let Some(m) = spec.as_object_mut() {
                    m.remove("resources");
                    m.remove("volumeAttributesClassName");
                }
                spec
            };
            let (mut before, after) = (strip(old), strip(new));
            if before["volumeName"].is_null() {
                before["volumeName"] = after["volumeName"].clone();
            }
            if before != after {
                return Err(ApiError::invalid(
                    "PersistentVolumeClaim",
                    name,
                    "spec",
                    "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
                ));
            }
        }
        ("", "configmaps" | "secrets") if old["immutable"] == true => {
            for field in ["data", "binaryData", "stringData"] {
                if old[field] != new[field] {
                    return Err(ApiError::invalid(
                        &rt.kind,
                        name,
                        field,
                        "Forbidden: field is immutable when `immutable` is set",
                    ));
                }
            }
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            for field in ["group", "scope"] {
                if old["spec"][field] != new["spec"][field] {
                    return Err(immutable(&format!("spec.{field}"), &new["spec"][field]));
                }
            }
            if old["spec"]["names"]["plural"] != new["spec"]["names"]["plural"] {
                return Err(immutable("spec.names.plural", &new["spec"]["names"]["plural"]));
            }
            crd_types(new)?;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn rt(group: &str, plural: &str) -> ResourceType {
        Registry::default().find(group, "v1", plural).cloned().expect("built in")
    }

    #[test]
    fn names_follow_the_dns_rules_of_their_kind() {
        assert!(validate_name(&rt("", "configmaps"), "a.b-c").is_ok());
        assert!(validate_name(&rt("", "namespaces"), "a.b").is_err());
        let err = validate_name(&rt("", "configmaps"), "Bad_Name").expect_err("upper case");
        assert_eq!(err.code, 422);
        assert!(
            err.message.contains("metadata.name: Invalid value: \"Bad_Name\""),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_deployment_whose_selector_misses_its_template_is_invalid() {
        let d = json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "api"}}}}});
        let err = validate(&rt("apps", "deployments"), &d).expect_err("mismatch");
        assert!(err.message.contains("spec.template.metadata.labels"), "{}", err.message);
    }

    #[test]
    fn services_get_distinct_ips_and_node_ports() {
        let store = Store::open(None).expect("store");
        let mut svc = json!({"metadata": {"name": "db"}, "spec": {"type": "NodePort", "ports": [{"port": 3306}]}});
        allocate_service(&mut svc, &store).expect("allocates");
        assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1");
        assert_eq!(svc["spec"]["ports"][0]["nodePort"], 30000);
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 3306);
    }

    #[test]
    fn statefulset_spec_is_immutable_outside_the_allowed_fields() {
        let old = json!({"metadata": {"name": "db"}, "spec": {"serviceName": "db", "replicas": 1}});
        let scaled =
            json!({"metadata": {"name": "db"}, "spec": {"serviceName": "db", "replicas": 3}});
        let renamed =
            json!({"metadata": {"name": "db"}, "spec": {"serviceName": "other", "replicas": 1}});
        assert!(validate_update(&rt("apps", "statefulsets"), &old, &scaled).is_ok());
        assert_eq!(
            validate_update(&rt("apps", "statefulsets"), &old, &renamed)
                .expect_err("forbidden")
                .code,
            422
        );
    }
}
