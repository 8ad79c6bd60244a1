//! The sandbox through the kube crate, as Avocet uses it: typed CRUD, paging, 409 on stale
//! writes, server-side apply with field managers, the runtime watcher, subresources, finalizers,
//! ownerReference cascades, dry runs, token auth and persistence.

use std::time::Duration;

use avocet_sandbox::{Sandbox, SandboxConfig};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}}))
        .expect("a ConfigMap")
}

fn api_code(err: &kube::Error) -> u16 {
    match err {
        kube::Error::Api(status) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn deployment(replicas: i32, labels: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}})
}

#[tokio::test]
async fn typed_crud_pages_and_refuses_stale_writes() {
    let sandbox = Sandbox::start_local().await.expect("starts");
    let client = sandbox.client().await.expect("client");
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..5 {
        cms.create(&PostParams::default(), &cm(&format!("cm-{i}"))).await.expect("created");
    }
    let mut generated = cm("");
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".to_owned());
    let made = cms.create(&PostParams::default(), &generated).await.expect("generateName");
    assert!(made.metadata.name.as_deref().is_some_and(|n| n.starts_with("gen-") && n.len() == 9));

    let mut names = Vec::new();
    let mut params = ListParams::default().limit(2);
    let mut pages = 0;
    loop {
        let page = cms.list(&params).await.expect("a page");
        pages += 1;
        names.extend(page.items.iter().filter_map(|c| c.metadata.name.clone()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 6, "{names:?}");

    let first = cms.get("cm-0").await.expect("get");
    let mut second = first.clone();
    second.data = Some([("k".to_owned(), "w".to_owned())].into());
    cms.replace("cm-0", &PostParams::default(), &second).await.expect("fresh write");
    let err = cms.replace("cm-0", &PostParams::default(), &first).await.expect_err("stale write");
    assert_eq!(api_code(&err), 409);
    assert_eq!(api_code(&cms.get("missing").await.expect_err("absent")), 404);
    assert_eq!(
        api_code(&cms.create(&PostParams::default(), &cm("cm-1")).await.expect_err("exists")),
        409
    );

    let dry = PostParams { dry_run: true, ..PostParams::default() };
    cms.create(&dry, &cm("dry")).await.expect("a dry run answers");
    assert_eq!(api_code(&cms.get("dry").await.expect_err("a dry run commits nothing")), 404);

    cms.delete("cm-0", &DeleteParams::default()).await.expect("deleted");
    assert_eq!(api_code(&cms.get("cm-0").await.expect_err("gone")), 404);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn server_side_apply_tracks_owners_and_conflicts() {
    let sandbox = Sandbox::start_local().await.expect("starts");
    let deploys: Api<Deployment> =
        Api::namespaced(sandbox.client().await.expect("client"), "default");
    let avocet = PatchParams::apply("avocet");
    let applied = deploys
        .patch(
            "web",
            &avocet,
            &Patch::Apply(deployment(3, json!({"app": "web", "stage": "standby"}))),
        )
        .await
        .expect("apply creates");
    let managed = applied.metadata.managed_fields.clone().unwrap_or_default();
    assert!(
        managed
            .iter()
            .any(|m| m.manager.as_deref() == Some("avocet")
                && m.operation.as_deref() == Some("Apply"))
    );

    // Another manager takes spec.replicas with an ordinary patch.
    let scaler =
        PatchParams { field_manager: Some("autoscaler".to_owned()), ..PatchParams::default() };
    deploys
        .patch("web", &scaler, &Patch::Merge(json!({"spec": {"replicas": 7}})))
        .await
        .expect("merge patch");

    // Applying a different value for it now conflicts, naming the field and the owner.
    let err = deploys
        .patch(
            "web",
            &avocet,
            &Patch::Apply(deployment(3, json!({"app": "web", "stage": "standby"}))),
        )
        .await
        .expect_err("conflict");
    assert_eq!(api_code(&err), 409);
    let kube::Error::Api(status) = &err else { unreachable!() };
    assert!(
        status.message.contains(".spec.replicas") && status.message.contains("autoscaler"),
        "{}",
        status.message
    );

    // Forced, it wins; a label no longer applied is removed.
    let forced = deploys
        .patch("web", &avocet.clone().force(), &Patch::Apply(deployment(3, json!({"app": "web"}))))
        .await
        .expect("forced apply");
    assert_eq!(forced.spec.as_ref().and_then(|s| s.replicas), Some(3));
    let labels = forced.metadata.labels.clone().unwrap_or_default();
    assert!(!labels.contains_key("stage"), "{labels:?}");

    // Re-applying the same configuration changes nothing, not even the resourceVersion.
    let again = deploys
        .patch("web", &avocet.clone().force(), &Patch::Apply(deployment(3, json!({"app": "web"}))))
        .await
        .expect("idempotent apply");
    assert_eq!(again.metadata.resource_version, forced.metadata.resource_version);
    assert_eq!(again.metadata.generation, forced.metadata.generation);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_runtime_watcher_lists_then_follows_changes() {
    let sandbox = Sandbox::start_local().await.expect("starts");
    let cms: Api<ConfigMap> = Api::namespaced(sandbox.client().await.expect("client"), "default");
    cms.create(&PostParams::default(), &cm("before")).await.expect("created");
    let mut events = watcher(cms.clone(), watcher::Config::default().labels("")).boxed();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .expect("an event in time")
            .expect("no error")
    };
    let mut initial = Vec::new();
    loop {
        match next().await {
            Some(watcher::Event::InitApply(c)) => initial.extend(c.metadata.name),
            Some(watcher::Event::InitDone) => break,
            _ => {}
        }
    }
    assert_eq!(initial, ["before"]);
    cms.create(&PostParams::default(), &cm("after")).await.expect("created");
    cms.delete("before", &DeleteParams::default()).await.expect("deleted");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match next().await {
            Some(watcher::Event::Apply(c)) => {
                seen.push(format!("apply {}", c.metadata.name.unwrap_or_default()))
            }
            Some(watcher::Event::Delete(c)) => {
                seen.push(format!("delete {}", c.metadata.name.unwrap_or_default()))
            }
            _ => {}
        }
    }
    assert_eq!(seen, ["apply after", "delete before"]);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn status_finalizers_and_owner_cascades() {
    let sandbox = Sandbox::start_local().await.expect("starts");
    let client = sandbox.client().await.expect("client");
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let created = deploys
        .create(
            &PostParams::default(),
            &serde_json::from_value(deployment(2, json!({"app": "web"}))).expect("valid"),
        )
        .await
        .expect("created");
    assert!(created.status.is_none(), "create drops status");

    // Status moves only through /status; the main resource ignores it.
    let status = json!({"status": {"replicas": 2, "readyReplicas": 2}});
    deploys
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status");
    deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"readyReplicas": 0}})),
        )
        .await
        .expect("ignored");
    let got = deploys.get("web").await.expect("get");
    assert_eq!(got.status.and_then(|s| s.ready_replicas), Some(2));
    assert_eq!(got.metadata.generation, Some(1), "status writes do not bump the generation");
    let scale = deploys.get_scale("web").await.expect("scale");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(2));

    // A finalizer holds a deletion until it is removed.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut held = cm("held");
    held.metadata.finalizers = Some(vec!["avocet.dev/test".to_owned()]);
    cms.create(&PostParams::default(), &held).await.expect("created");
    cms.delete("held", &DeleteParams::default()).await.expect("marked");
    let marked = cms.get("held").await.expect("still there");
    assert!(marked.metadata.deletion_timestamp.is_some());
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("finalizer removed");
    assert_eq!(api_code(&cms.get("held").await.expect_err("gone")), 404);

    // Dependents go with their owner in the background, or are orphaned on request.
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    for (owner, policy) in
        [("owner-a", DeleteParams::background()), ("owner-b", DeleteParams::orphan())]
    {
        let owner_cm = cms.create(&PostParams::default(), &cm(owner)).await.expect("owner");
        let dependent: Secret =
            serde_json::from_value(json!({"metadata": {"name": format!("{owner}-secret"),
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": owner,
                "uid": owner_cm.metadata.uid.clone().unwrap_or_default()}]}}))
            .expect("a Secret");
        secrets.create(&PostParams::default(), &dependent).await.expect("dependent");
        cms.delete(owner, &policy).await.expect("owner deleted");
    }
    assert_eq!(api_code(&secrets.get("owner-a-secret").await.expect_err("collected")), 404);
    let orphan = secrets.get("owner-b-secret").await.expect("orphaned, not deleted");
    assert!(orphan.metadata.owner_references.unwrap_or_default().is_empty());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_token_is_required_and_objects_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = SandboxConfig {
        data_dir: Some(dir.path().to_owned()),
        token: Some("t0ken".to_owned()),
        ..SandboxConfig::local()
    };
    let sandbox = Sandbox::start(config.clone()).await.expect("starts");
    let kubeconfig = sandbox.kubeconfig();
    let cms: Api<ConfigMap> = Api::namespaced(sandbox.client().await.expect("client"), "default");
    cms.create(&PostParams::default(), &cm("kept")).await.expect("created");
    let before = cms.get("kept").await.expect("get");

    let wrong =
        kube::config::Kubeconfig::from_yaml(&kubeconfig.replace("t0ken", "wrong")).expect("yaml");
    let wrong =
        kube::Config::from_custom_kubeconfig(wrong, &kube::config::KubeConfigOptions::default())
            .await
            .expect("config");
    let intruder: Api<ConfigMap> =
        Api::namespaced(kube::Client::try_from(wrong).expect("client"), "default");
    assert_eq!(api_code(&intruder.get("kept").await.expect_err("refused")), 401);

    let addr = sandbox.addr();
    sandbox.shutdown().await;
    let again = Sandbox::start(SandboxConfig { listen: addr, ..config }).await.expect("restarts");
    assert_eq!(
        again.kubeconfig(),
        kubeconfig,
        "the same CA and address: old kubeconfigs keep working"
    );
    let cms: Api<ConfigMap> = Api::namespaced(again.client().await.expect("client"), "default");
    let after = cms.get("kept").await.expect("survived");
    assert_eq!(after.metadata.uid, before.metadata.uid);
    assert_eq!(after.metadata.resource_version, before.metadata.resource_version);
    again.shutdown().await;
}

#[tokio::test]
async fn deletion_policies_hold_through_finalizers_and_dry_runs() {
    let sandbox = Sandbox::start_local().await.expect("starts");
    let client = sandbox.client().await.expect("client");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");

    // A dry-run delete (dryRun in the body, as kube and kubectl send it) deletes nothing.
    cms.create(&PostParams::default(), &cm("dry")).await.expect("created");
    let dry = DeleteParams { dry_run: true, ..DeleteParams::default() };
    cms.delete("dry", &dry).await.expect("a dry run answers");
    cms.get("dry").await.expect("still there");

    // Orphan through a finalizer: the owner waits, then goes, and its dependent stays.
    let mut owner = cm("owner");
    owner.metadata.finalizers = Some(vec!["avocet.dev/hold".to_owned()]);
    let owner = cms.create(&PostParams::default(), &owner).await.expect("owner");
    let dependent: Secret = serde_json::from_value(json!({"metadata": {"name": "dependent",
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
            "uid": owner.metadata.uid.clone().unwrap_or_default()}]}}))
    .expect("a Secret");
    secrets.create(&PostParams::default(), &dependent).await.expect("dependent");
    cms.delete("owner", &DeleteParams::orphan()).await.expect("marked");
    let marked = cms.get("owner").await.expect("held by its finalizer");
    let finalizers = marked.metadata.finalizers.clone().unwrap_or_default();
    assert_eq!(finalizers, ["avocet.dev/hold", "orphan"]);
    cms.patch(
        "owner",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(json!([
        {"op": "remove", "path": "/metadata/finalizers/0"}]))
            .expect("a JSON patch"),
        ),
    )
    .await
    .expect("finalizer removed");
    assert_eq!(api_code(&cms.get("owner").await.expect_err("gone")), 404);
    let orphan = secrets.get("dependent").await.expect("orphaned, not deleted");
    assert!(orphan.metadata.owner_references.unwrap_or_default().is_empty());

    // A namespace being deleted waits for what is inside, whatever else is written to it.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": "doomed"}})).expect("a Namespace");
    namespaces.create(&PostParams::default(), &ns).await.expect("namespace");
    let inside: Api<ConfigMap> = Api::namespaced(client, "doomed");
    let mut held = cm("held");
    held.metadata.finalizers = Some(vec!["avocet.dev/hold".to_owned()]);
    inside.create(&PostParams::default(), &held).await.expect("held object");
    namespaces.delete("doomed", &DeleteParams::default()).await.expect("terminating");
    namespaces
        .patch(
            "doomed",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"k": "v"}}})),
        )
        .await
        .expect("a terminating namespace can still be labelled");
    let terminating = namespaces.get("doomed").await.expect("still there");
    assert_eq!(terminating.status.and_then(|s| s.phase).as_deref(), Some("Terminating"));
    inside
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("released");
    assert_eq!(api_code(&inside.get("held").await.expect_err("gone")), 404);
    assert_eq!(
        api_code(&namespaces.get("doomed").await.expect_err("gone with its last object")),
        404
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_service_update_keeps_its_allocations() {
    use k8s_openapi::api::core::v1::Service;
    let sandbox = Sandbox::start_local().await.expect("starts");
    let services: Api<Service> =
        Api::namespaced(sandbox.client().await.expect("client"), "default");
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "db"},
        "spec": {"type": "NodePort", "ports": [{"port": 3306}]}}))
    .expect("a Service");
    let created = services.create(&PostParams::default(), &svc).await.expect("created");
    let spec = created.spec.clone().expect("spec");
    let (ip, node_port) =
        (spec.cluster_ip.clone(), spec.ports.as_ref().and_then(|p| p[0].node_port));
    assert!(ip.is_some() && node_port.is_some());

    // A replace that leaves the allocations out keeps them, and a new port gets a node port.
    let mut replacement: Service = serde_json::from_value(json!({"metadata": {"name": "db"},
        "spec": {"type": "NodePort", "ports": [{"port": 3306}, {"port": 33060, "name": "x"}]}}))
    .expect("a Service");
    replacement.metadata.resource_version = created.metadata.resource_version.clone();
    let replaced =
        services.replace("db", &PostParams::default(), &replacement).await.expect("replaced");
    let spec = replaced.spec.expect("spec");
    assert_eq!(spec.cluster_ip, ip);
    let ports = spec.ports.expect("ports");
    assert_eq!(ports[0].node_port, node_port);
    assert!(ports[1].node_port.is_some_and(|p| Some(p) != node_port));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn custom_resources_survive_restarts_after_their_definition_changes_version() {
    use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
    let dir = tempfile::tempdir().expect("tempdir");
    let config = SandboxConfig { data_dir: Some(dir.path().to_owned()), ..SandboxConfig::local() };
    let crd = |versions: serde_json::Value| {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"}, "versions": versions}})
    };
    let crd_api = |client: kube::Client| {
        let gvk = GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition");
        Api::<DynamicObject>::all_with(
            client,
            &ApiResource::from_gvk_with_plural(&gvk, "customresourcedefinitions"),
        )
    };
    let widgets = |client: kube::Client, version: &str| {
        let gvk = GroupVersionKind::gvk("example.com", version, "Widget");
        Api::<DynamicObject>::namespaced_with(
            client,
            "default",
            &ApiResource::from_gvk_with_plural(&gvk, "widgets"),
        )
    };
    let sandbox = Sandbox::start(config.clone()).await.expect("starts");
    let client = sandbox.client().await.expect("client");
    let v1beta1 = json!([{"name": "v1beta1", "served": true, "storage": true}]);
    let definition: DynamicObject = serde_json::from_value(crd(v1beta1)).expect("a CRD");
    crd_api(client.clone()).create(&PostParams::default(), &definition).await.expect("CRD");
    let widget: DynamicObject = serde_json::from_value(json!({"apiVersion": "example.com/v1beta1",
        "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}))
    .expect("a Widget");
    widgets(client.clone(), "v1beta1")
        .create(&PostParams::default(), &widget)
        .await
        .expect("widget");
    let v1_only = json!({"spec": {"versions": [{"name": "v1", "served": true, "storage": true}]}});
    crd_api(client)
        .patch("widgets.example.com", &PatchParams::default(), &Patch::Merge(v1_only))
        .await
        .expect("served at v1 only");
    let client = sandbox.client().await.expect("client");
    widgets(client, "v1").get("w").await.expect("served at the new version");
    let addr = sandbox.addr();
    sandbox.shutdown().await;
    for _ in 0..2 {
        let again = Sandbox::start(SandboxConfig { listen: addr, ..config.clone() })
            .await
            .expect("restarts");
        let kept =
            widgets(again.client().await.expect("client"), "v1").get("w").await.expect("survived");
        assert_eq!(kept.data["spec"]["size"], 1);
        again.shutdown().await;
    }
}
