//! kubectl's generator commands (`kubectl create namespace|configmap|deployment|…`): what the
//! sandbox stores is what kubectl itself renders with `--dry-run=client`. kubectl 1.32 and later
//! send these bodies as protobuf, so this is the oracle for the sandbox's protobuf table.

use serde_json::Value;

use crate::harness::Sandbox;

/// (generator words, name, flags), as a user types them.
const GENERATORS: &[(&str, &str, &[&str])] = &[
    ("namespace", "n1", &[]),
    ("configmap", "c1", &["--from-literal=a=1", "--from-literal=b=two words"]),
    ("secret generic", "s1", &["--from-literal=p=x", "--type=kubernetes.io/basic-auth"]),
    ("serviceaccount", "sa1", &[]),
    ("deployment", "d1", &["--image=nginx", "--replicas=2", "--port=80"]),
    ("deployment", "d0", &["--image=nginx", "--replicas=0"]),
    ("service clusterip", "svc1", &["--tcp=80:8080", "--tcp=443:https"]),
    ("service nodeport", "np1", &["--tcp=80:8080", "--node-port=30080"]),
    ("service externalname", "en1", &["--external-name=db.example.com"]),
    ("job", "j1", &["--image=busybox", "--", "echo", "hi"]),
    ("cronjob", "cj1", &["--image=busybox", "--schedule=*/5 * * * *", "--restart=OnFailure"]),
    ("role", "r1", &["--verb=get,list", "--resource=pods,deployments.apps", "--resource-name=x"]),
    ("clusterrole", "cr1", &["--verb=get", "--non-resource-url=/logs/*"]),
    ("rolebinding", "rb1", &["--role=r1", "--user=u1", "--serviceaccount=default:sa1"]),
    ("clusterrolebinding", "crb1", &["--clusterrole=cr1", "--group=g1"]),
    (
        "ingress",
        "ing1",
        &["--rule=foo.com/bar*=svc1:80,tls=sec", "--class=nginx", "--default-backend=svc2:http"],
    ),
    ("poddisruptionbudget", "pdb1", &["--selector=app=x", "--min-available=50%"]),
];

/// Drops what only a server or a controller fills in.
fn rendered(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
    }
    for path in [
        &["metadata"][..],
        &["spec", "template", "metadata"],
        &["spec", "jobTemplate", "metadata"],
        &["spec", "jobTemplate", "spec", "template", "metadata"],
    ] {
        let at = path.iter().try_fold(&mut v, |at, seg| at.get_mut(*seg));
        if let Some(m) = at.and_then(Value::as_object_mut) {
            m.remove("creationTimestamp");
        }
    }
    v
}

/// Like `harness::contains`, but an empty object kubectl renders (`resources: {}`) may be absent.
fn stored_as_rendered(actual: &Value, expected: &Value, path: &str) -> Result<(), String> {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e.iter().try_for_each(|(k, ev)| match a.get(k) {
            Some(av) => stored_as_rendered(av, ev, &format!("{path}.{k}")),
            None if ev.as_object().is_some_and(serde_json::Map::is_empty) => Ok(()),
            None => Err(format!("{path}.{k} is missing")),
        }),
        (Value::Array(a), Value::Array(e)) if a.len() == e.len() => a
            .iter()
            .zip(e)
            .enumerate()
            .try_for_each(|(i, (av, ev))| stored_as_rendered(av, ev, &format!("{path}[{i}]"))),
        (a, e) if a == e => Ok(()),
        (a, e) => Err(format!("{path} is {a}, kubectl rendered {e}")),
    }
}

#[test]
fn generator_commands_store_what_kubectl_renders() {
    let sandbox = Sandbox::start();
    let served = sandbox.ok(&["api-versions"]);
    for (generator, name, flags) in GENERATORS {
        let mut dry: Vec<&str> = vec!["create"];
        dry.extend(generator.split(' '));
        dry.extend([*name, "--dry-run=client", "-o", "json"]);
        dry.extend(*flags);
        let want = rendered(serde_json::from_str(&sandbox.ok(&dry)).unwrap());

        let mut real: Vec<&str> = vec!["create"];
        real.extend(generator.split(' '));
        real.push(name);
        real.extend(*flags);
        // An old kubectl builds some kinds at versions a Kubernetes 1.33 server no longer serves
        // (kubectl 1.20: CronJob at batch/v1beta1); the sandbox refuses them as such a server does.
        let api_version = want["apiVersion"].as_str().unwrap();
        if !served.lines().any(|line| line == api_version) {
            let err = sandbox.fails(&real);
            let refused = ["could not find the requested resource", "no matches for kind"];
            assert!(refused.iter().any(|r| err.contains(r)), "{err}");
            continue;
        }
        sandbox.ok(&real);

        let kind = want["kind"].as_str().unwrap().to_lowercase();
        let group = want["apiVersion"]
            .as_str()
            .unwrap()
            .split_once('/')
            .map(|(g, _)| g)
            .unwrap_or_default();
        let resource = if group.is_empty() { kind } else { format!("{kind}.{group}") };
        let cluster_scoped = matches!(
            resource.as_str(),
            "namespace"
                | "clusterrole.rbac.authorization.k8s.io"
                | "clusterrolebinding.rbac.authorization.k8s.io"
        );
        let mut get = vec![resource.as_str(), name];
        if !cluster_scoped {
            get.extend(["-n", "default"]);
        }
        let got = sandbox.get_json(&get);
        stored_as_rendered(&got, &want, "")
            .unwrap_or_else(|e| panic!("kubectl create {generator}: {e}\n{got:#}"));
    }
}
