//! `avocet demo`: the whole story on one machine, with no Kubernetes and no cloud.
//!
//! Two sandbox clusters run in this process; a three-node scheduler group and a one-node
//! destination Avocet run as `avocet serve` processes of this executable, sharing the
//! local-directory store. The sample app (namespace `mysql`) keeps writing to its volume. The
//! reference's SchedulePolicy and MigrationSchedule are applied to the source cluster verbatim,
//! with a ClusterPair generated for the destination, on a clock running 360 times as fast so
//! that the policy's hourly interval comes every 10 s. The demo watches a few scheduled
//! migrations, kills the leader just before a slot falls due, checks through the public API
//! alone (the oracle the chaos tests use) that no slot was missed or doubled, prints what each
//! migration sent, then fails over: `activate migrations` on the destination and a byte-for-byte
//! check of its volume against the source the last migration read.
//!
//! Every command shown is run the way a user would run it: `avocetctl` verbs in this process,
//! Stork resources applied to the source cluster's API for the controller to mirror.

mod app;
mod stack;

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use avocet_scheduler::clock::{Clock as _, SystemClock};
use avocet_transfer::stopwatch::Stopwatch;

use avocet_scheduler::apply::{DUE_SLOT_ANNOTATION, FIRED_AT_ANNOTATION, SCHEDULE_NAME_ANNOTATION};
use avocet_scheduler::oracle::{self, annotation};
use avocet_workers::volumes::VolumeSent;
use chrono::{DateTime, TimeDelta, Utc};
use clap::Args;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::output::{Table, size};
use stack::{DESTINATION, ScaledTime, Stack, eventually};

/// The reference's SchedulePolicy, verbatim (an hourly interval, daily, weekly and monthly
/// slots).
const POLICY: &str = include_str!("../../../examples/asynchronous-dr/testpolicy.yaml");
/// The reference's MigrationSchedule, verbatim.
const SCHEDULE: &str = include_str!("../../../examples/asynchronous-dr/migrationschedule.yaml");
/// Names the schedule in [`SCHEDULE`].
const SCHEDULE_NAME: &str = "mysqlmigrationschedule";
/// Names the ClusterPair the schedule's template names.
const PAIR: &str = "remotecluster";
/// The policy's interval.
const INTERVAL: TimeDelta = TimeDelta::hours(1);
/// How many times as fast the group's clock runs: an hour every 10 s.
const SCALE: f64 = 360.0;
/// How long before a slot falls due the leader is killed.
const KILL_LEAD: Duration = Duration::from_millis(300);

/// Says how to run the demo.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Leaves everything running after the story, with the commands to explore it, until
    /// Ctrl-C.
    #[arg(long)]
    keep: bool,
    /// Keeps the demo's files (logs, data, store, kubeconfigs) in DIR, an empty or new folder,
    /// instead of a temporary one removed at the end.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Gives the sample app this many MiB of data.
    #[arg(long, value_name = "MIB", default_value_t = 48,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    data_mib: u32,
    /// Watches this many scheduled migrations; the leader is killed just before the third.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(3..=50))]
    slots: u32,
}

/// One scheduled migration as the demo saw it.
#[derive(Debug, Clone)]
struct Seen {
    slot: DateTime<Utc>,
    fired_at: DateTime<Utc>,
    object: Value,
    reported: bool,
    note: String,
}

impl Seen {
    fn status(&self) -> &str {
        self.object["status"]["status"].as_str().unwrap_or_default()
    }

    fn terminal(&self) -> bool {
        matches!(self.status(), "Successful" | "Failed" | "PartialSuccess")
    }

    fn sent(&self) -> Option<VolumeSent> {
        let volumes = self.object["status"]["volumes"].as_array()?;
        let reasons = volumes.iter().filter_map(|v| VolumeSent::parse(v["reason"].as_str()?));
        reasons.reduce(|a, b| VolumeSent {
            full: a.full || b.full,
            run: a.run.max(b.run),
            files_changed: a.files_changed + b.files_changed,
            bytes_sent: a.bytes_sent + b.bytes_sent,
        })
    }

    fn volume_bytes(&self) -> u64 {
        let volumes = self.object["status"]["volumes"].as_array().cloned().unwrap_or_default();
        volumes.iter().filter_map(|v| v["bytesTotal"].as_u64()).sum()
    }
}

/// Reads the wall clock (the demo is a shell: it shows real and group times).
fn wall() -> DateTime<Utc> {
    SystemClock.now()
}

/// Set by Ctrl-C: the demo stops, cleaning up as it goes.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn check_interrupt() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        anyhow::bail!("interrupted");
    }
    Ok(())
}

/// Runs the demo.
pub(crate) fn run(args: DemoArgs, out: &mut dyn std::io::Write) -> anyhow::Result<ExitCode> {
    let started = Stopwatch::start();
    // The group's clock reads 07:50 UTC (of the coming morning) as the demo starts, so the
    // schedule is created near 08:00 and the policy's daily, weekly and monthly times (10:14PM,
    // Thursday 10:13PM, the 14th at 8:05PM) stay ahead of the slots watched.
    let now = wall();
    let mut start = now.date_naive().and_hms_opt(7, 50, 0).unwrap_or_default().and_utc();
    if start < now {
        start += TimeDelta::days(1);
    }
    let clock = ScaledTime::reading(start, SCALE);
    let mut stack = Stack::start(args.dir.clone(), clock)?;
    // Ctrl-C or SIGTERM: the demo stops and still removes everything it started.
    let ctrl_c = stack.runtime.spawn(async {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = terminate => {}
        }
        INTERRUPTED.store(true, Ordering::Relaxed);
    });
    let result = story(&mut stack, &args, started, out);
    let code = match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            writeln!(out, "\nThe demo stopped: {error:#}")?;
            if !INTERRUPTED.load(Ordering::Relaxed) {
                for id in stack.nodes.keys() {
                    writeln!(out, "--- the end of node {id}'s log:\n{}", stack.log_tail(*id, 15))?;
                }
            }
            ExitCode::FAILURE
        }
    };
    if args.keep && code == ExitCode::SUCCESS && !INTERRUPTED.load(Ordering::Relaxed) {
        explore(&stack, out)?;
        stack.runtime.block_on(async {
            while !INTERRUPTED.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    ctrl_c.abort();
    let temporary = stack.temporary();
    let dir = stack.dir.clone();
    stack.shut_down();
    if temporary {
        writeln!(
            out,
            "Stopped every process and removed {} ({:.0} s in all).",
            dir.display(),
            started.seconds()
        )?;
    } else {
        writeln!(out, "Stopped every process; the files stay in {}.", dir.display())?;
    }
    Ok(code)
}

/// Prints the commands to explore a kept demo.
fn explore(stack: &Stack, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let leader = stack.leader().unwrap_or(1);
    let server = format!("http://{}", stack.nodes[&leader].api);
    writeln!(
        out,
        "\nEverything keeps running until Ctrl-C. To look around (from the repository):"
    )?;
    writeln!(out, "  export AVOCET_SERVER={server} AVOCET_TOKEN={}", stack.token)?;
    writeln!(out, "  cargo run --bin avocetctl -- get migrationschedule -n mysql")?;
    writeln!(out, "  cargo run --bin avocetctl -- get migrations -n mysql")?;
    writeln!(out, "  cargo run --bin avocetctl -- get events -n mysql")?;
    writeln!(out, "  cargo run --bin avocetctl -- cluster status")?;
    writeln!(
        out,
        "  kubectl --kubeconfig {} get deploy,pvc,pv -n mysql",
        stack.source.1.display()
    )?;
    writeln!(
        out,
        "  kubectl --kubeconfig {} get deploy,pvc,pv -n mysql",
        stack.destination.1.display()
    )?;
    writeln!(
        out,
        "  (the schedule is suspended: kubectl --kubeconfig {} patch migrationschedule {SCHEDULE_NAME} -n mysql --type merge -p '{{\"spec\":{{\"suspend\":false}}}}' resumes it)",
        stack.source.1.display()
    )?;
    writeln!(out, "  logs: {}/node-*.log", stack.dir.display())?;
    Ok(())
}

/// Applies one Stork document to the source cluster, as `kubectl apply -f` would.
fn apply_stork(stack: &Stack, client: &kube::Client, text: &str) -> anyhow::Result<String> {
    let mut value: Value = serde_saphyr::from_str(text)?;
    let kind_name = value["kind"].as_str().unwrap_or_default().to_owned();
    let kind = avocet_types::Kind::from_any_name(&kind_name)
        .ok_or_else(|| anyhow::anyhow!("kind {kind_name:?} is not a Stork kind"))?;
    if let Some(object) = value.as_object_mut() {
        object.remove("status");
    }
    let object: DynamicObject = serde_json::from_value(value)?;
    let resource = kube::discovery::ApiResource {
        group: avocet_types::API_GROUP.to_owned(),
        version: avocet_types::API_VERSION.to_owned(),
        api_version: avocet_types::meta::API_GROUP_VERSION.to_owned(),
        kind: kind.as_str().to_owned(),
        plural: kind.plural().to_owned(),
    };
    let name = object.metadata.name.clone().unwrap_or_default();
    let api: Api<DynamicObject> = match &object.metadata.namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    stack.runtime.block_on(api.create(&PostParams::default(), &object))?;
    Ok(format!("{}/{name}", kind.as_str().to_ascii_lowercase()))
}

/// Creates the CRDs and the app on the source cluster.
fn create_source(
    stack: &Stack,
    client: &kube::Client,
    data: &std::path::Path,
) -> anyhow::Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    stack.runtime.block_on(async {
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in avocet_types::crd::custom_resource_definitions() {
            crds.create(&PostParams::default(), &crd).await?;
        }
        for object in app::objects(data) {
            let object: DynamicObject = serde_json::from_value(object)?;
            let types = object.types.clone().unwrap_or_default();
            let (group, version) = match types.api_version.split_once('/') {
                Some((group, version)) => (group.to_owned(), version.to_owned()),
                None => (String::new(), types.api_version.clone()),
            };
            let plural = match types.kind.as_str() {
                "PersistentVolume" => "persistentvolumes".to_owned(),
                "PersistentVolumeClaim" => "persistentvolumeclaims".to_owned(),
                kind => format!("{}s", kind.to_ascii_lowercase()),
            };
            let resource = kube::discovery::ApiResource {
                group,
                version,
                api_version: types.api_version.clone(),
                kind: types.kind.clone(),
                plural,
            };
            let api: Api<DynamicObject> = match &object.metadata.namespace {
                Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
                None => Api::all_with(client.clone(), &resource),
            };
            api.create(&PostParams::default(), &object).await?;
        }
        anyhow::Ok(())
    })
}

/// Returns a byte count with its unit.
fn hours(instant: DateTime<Utc>) -> String {
    instant.format("%H:%M").to_string()
}

fn story(
    stack: &mut Stack,
    args: &DemoArgs,
    started: Stopwatch,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<bool> {
    let tty = std::io::stdout().is_terminal();
    writeln!(out, "Avocet demo: asynchronous disaster recovery on one machine.")?;
    writeln!(
        out,
        "  clock        the scheduler group's clock runs {SCALE}x as fast (the policy's hourly slot every {:.0} s), reading {} UTC now",
        INTERVAL.as_seconds_f64() / SCALE,
        stack.clock.group(wall()).format("%Y-%m-%d %H:%M")
    )?;

    // The app on the source cluster.
    let data = stack.dir.join("source-volumes").join("mysql-data");
    let bytes = app::seed_data(&data, args.data_mib)?;
    let source = stack.client(true)?;
    create_source(stack, &source, &data)?;
    writeln!(
        out,
        "  source       sandbox cluster at {} (kubeconfig {}): namespace mysql with Deployment, Service, ConfigMap, Secret,\n               PVC mysql-data on a hostPath PV holding {} that the app keeps changing",
        stack.source.0,
        stack.source.1.display(),
        size(bytes)
    )?;
    let mut writer = app::Writer::start(data.clone());

    // The store both sides share, and the Avocets.
    let key = stack.dir.join("store.key");
    std::fs::write(&key, format!("{}{}", stack.token, stack.token))?;
    let store = format!("file://{}", stack.dir.join("store").display());
    stack.start_avocets(3, &store, &key)?;
    let leader = eventually(Duration::from_secs(30), || stack.leader())
        .ok_or_else(|| anyhow::anyhow!("the source group elected no leader in 30 s"))?;
    eventually(Duration::from_secs(30), || {
        stack.ctl_json(DESTINATION, &["cluster", "status"])?["leaderId"].as_u64()
    })
    .ok_or_else(|| anyhow::anyhow!("the destination Avocet did not start in 30 s"))?;
    let apis: Vec<String> =
        (1..=3).map(|id| format!("node {id} at {}", stack.nodes[&id].api)).collect();
    writeln!(
        out,
        "  scheduler    3 `avocet serve` processes, {}; node {leader} leads",
        apis.join(", ")
    )?;
    writeln!(
        out,
        "  destination  sandbox cluster at {}; an Avocet at {} restores volumes into {}",
        stack.destination.0,
        stack.nodes[&DESTINATION].api,
        stack.dir.join("destination-volumes").display()
    )?;
    writeln!(out, "  store        {store} (encrypted, content-defined chunks)")?;

    // The Stork resources, applied to the source cluster as a user would.
    let (_, port) = stack.nodes[&DESTINATION].api.rsplit_once(':').unwrap_or_default();
    let options = format!("ip=127.0.0.1,port={port},token={},mode=DisasterRecovery", stack.token);
    let dest_config = stack.destination.1.to_string_lossy().into_owned();
    let (ok, pair, err) = stack.ctl(
        leader,
        &[
            "generate",
            "clusterpair",
            PAIR,
            "-n",
            app::NAMESPACE,
            "--kubeconfig",
            &dest_config,
            "-s",
            &options,
        ],
    );
    if !ok {
        anyhow::bail!("avocetctl generate clusterpair: {err}");
    }
    std::fs::write(stack.dir.join("clusterpair.yaml"), &pair)?;
    writeln!(
        out,
        "\n$ avocetctl generate clusterpair {PAIR} -n mysql --kubeconfig destination.kubeconfig -s ip=…,port={port},token=…,mode=DisasterRecovery > clusterpair.yaml"
    )?;
    writeln!(
        out,
        "$ kubectl apply -f clusterpair.yaml -f testpolicy.yaml -f migrationschedule.yaml   (the reference's files, verbatim)"
    )?;
    let created = apply_stork(stack, &source, &pair)?;
    writeln!(out, "  {created} created")?;
    let ready = eventually(Duration::from_secs(30), || {
        let pair = stack.ctl_json(leader, &["get", "clusterpair", PAIR, "-n", app::NAMESPACE])?;
        let status = &pair["status"];
        (status["schedulerStatus"] == "Ready" && status["storageStatus"] == "Ready")
            .then(|| status.clone())
    });
    let Some(ready) = ready else {
        anyhow::bail!("the ClusterPair did not become Ready in 30 s");
    };
    writeln!(
        out,
        "  clusterpair {PAIR}: scheduler Ready, storage Ready (destination cluster id {})",
        ready["remoteStorageId"].as_str().unwrap_or_default()
    )?;
    let created = apply_stork(stack, &source, POLICY)?;
    writeln!(out, "  {created} created")?;
    eventually(Duration::from_secs(30), || {
        stack.ctl_json(leader, &["get", "schedulepolicy", "testpolicy"])
    })
    .ok_or_else(|| anyhow::anyhow!("the SchedulePolicy did not reach the catalog in 30 s"))?;
    let created = apply_stork(stack, &source, SCHEDULE)?;
    writeln!(out, "  {created} created")?;

    writeln!(
        out,
        "\nScheduled migrations (slot in the group's clock, migration, what it moved; the volume is {}):",
        size(bytes)
    )?;
    let watched = watch(stack, args, bytes, &mut writer, tty, out)?;

    // Judge the run through the public API, as the chaos tests do.
    let leader = eventually(Duration::from_secs(30), || stack.leader())
        .ok_or_else(|| anyhow::anyhow!("no leader to read the events from"))?;
    let patch = json!({"spec": {"suspend": true}});
    let resource = kube::discovery::ApiResource {
        group: avocet_types::API_GROUP.to_owned(),
        version: avocet_types::API_VERSION.to_owned(),
        api_version: avocet_types::meta::API_GROUP_VERSION.to_owned(),
        kind: "MigrationSchedule".to_owned(),
        plural: "migrationschedules".to_owned(),
    };
    let schedules: Api<DynamicObject> =
        Api::namespaced_with(source.clone(), app::NAMESPACE, &resource);
    stack.runtime.block_on(schedules.patch(
        SCHEDULE_NAME,
        &PatchParams::default(),
        &Patch::Merge(&patch),
    ))?;
    eventually(Duration::from_secs(30), || {
        let schedule = stack
            .ctl_json(leader, &["get", "migrationschedule", SCHEDULE_NAME, "-n", app::NAMESPACE])?;
        (schedule["spec"]["suspend"] == true).then_some(())
    })
    .ok_or_else(|| anyhow::anyhow!("the schedule was not suspended in 30 s"))?;
    let events = stack.ctl_json(leader, &["get", "events", "-n", app::NAMESPACE]);
    let migrations = stack.ctl_json(leader, &["get", "migrations", "-n", app::NAMESPACE]);
    let (Some(events), Some(migrations)) = (events, migrations) else {
        anyhow::bail!("cannot read the events and migrations from node {leader}");
    };
    let items = |list: &Value| list["items"].as_array().cloned().unwrap_or_default();
    let (events, migrations) = (items(&events), items(&migrations));
    let mut clean = true;
    let mut due = 0;
    let mut fired = 0;
    for (policy_type, step) in [
        ("Interval", INTERVAL),
        ("Daily", TimeDelta::days(1)),
        ("Weekly", TimeDelta::weeks(1)),
        ("Monthly", TimeDelta::days(31)),
    ] {
        match oracle::judge(&events, &migrations, policy_type, step) {
            Ok(Some(accounting)) => {
                due += accounting.expected;
                fired += accounting.fired as u64;
            }
            Ok(None) => {}
            Err(violations) => {
                clean = false;
                for violation in violations {
                    writeln!(out, "  VIOLATION {violation}")?;
                }
            }
        }
    }

    // The table.
    writeln!(out)?;
    let mut table = Table::new(&["SLOT", "MIGRATION", "STATUS", "VOLUME", "SENT", "RUN", "NOTE"]);
    let mut full_sent = Vec::new();
    let mut incremental_sent = Vec::new();
    for seen in watched.values() {
        let sent = seen.sent();
        if let Some(sent) = sent {
            if sent.full {
                full_sent.push(sent.bytes_sent)
            } else {
                incremental_sent.push(sent.bytes_sent)
            }
        }
        table.row(vec![
            seen.slot.format("%Y-%m-%d %H:%M").to_string(),
            seen.object["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
            seen.status().to_owned(),
            size(seen.volume_bytes()),
            sent.map_or_else(|| "-".to_owned(), |s| size(s.bytes_sent)),
            sent.map_or_else(
                || "-".to_owned(),
                |s| format!("{} #{}", if s.full { "full" } else { "incremental" }, s.run),
            ),
            seen.note.clone(),
        ]);
    }
    table.write(out)?;
    let failed = watched.values().filter(|s| s.status() != "Successful").count();
    clean &= failed == 0;
    let duplicated = watched
        .values()
        .filter(|a| watched.values().filter(|b| b.slot == a.slot).count() > 1)
        .count();
    writeln!(
        out,
        "  {due} slots due, {fired} fired, {} missed, {duplicated} duplicated, {failed} failed (EO-1, EO-2 and T-1 judged from `avocetctl get events` by the chaos tests' oracle)",
        due.saturating_sub(fired)
    )?;
    if let (Some(full), false) = (full_sent.first(), incremental_sent.is_empty()) {
        let average = incremental_sent.iter().sum::<u64>() / incremental_sent.len() as u64;
        writeln!(
            out,
            "  the full run sent {}; incremental runs sent {} on average ({:.1}% of it): only changed chunks cross the wire",
            size(*full),
            size(average),
            average as f64 * 100.0 / (*full).max(1) as f64
        )?;
    }

    // Fail over.
    clean &= failover(stack, &data, out)?;
    if clean {
        writeln!(out, "\nThe demo passed in {:.0} s.", started.seconds())?;
    } else {
        writeln!(out, "\nThe demo FAILED: see above.")?;
    }
    Ok(clean)
}

/// Watches the schedule's migrations until `args.slots` have ended, killing the leader just
/// before the third slot and stopping the app's writes before the last; returns them by slot.
fn watch(
    stack: &mut Stack,
    args: &DemoArgs,
    bytes: u64,
    writer: &mut app::Writer,
    tty: bool,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<BTreeMap<DateTime<Utc>, Seen>> {
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let mut leader = stack.leader().unwrap_or(1);
    let mut killed: Option<(u64, DateTime<Utc>, DateTime<Utc>)> = None;
    let mut restarted = false;
    let mut writer_stopped = false;
    let slots = args.slots as usize;
    let watching = Stopwatch::start();
    let limit = Duration::from_secs(60)
        + Duration::from_secs_f64(INTERVAL.as_seconds_f64() / SCALE) * args.slots;
    let mut drawn = false;
    loop {
        check_interrupt()?;
        if watching.elapsed() > limit {
            anyhow::bail!(
                "{} of {slots} scheduled migrations ended in time",
                seen.values().filter(|s| s.terminal()).count()
            );
        }
        let list = stack.ctl_json(leader, &["get", "migrations", "-n", app::NAMESPACE]);
        let Some(list) = list else {
            // The leader moved (or was killed): find the new one.
            if let Some(next) = stack.leader() {
                leader = next;
            }
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        for object in list["items"].as_array().cloned().unwrap_or_default() {
            let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            let schedule = object.pointer(&format!(
                "/metadata/annotations/{}",
                SCHEDULE_NAME_ANNOTATION.replace('/', "~1")
            ));
            if schedule.and_then(Value::as_str) != Some(SCHEDULE_NAME) {
                continue;
            }
            let (Some(slot), Some(fired_at)) = (
                annotation(&object, DUE_SLOT_ANNOTATION),
                annotation(&object, FIRED_AT_ANNOTATION),
            ) else {
                continue;
            };
            let entry = seen.entry(name).or_insert_with(|| Seen {
                slot,
                fired_at,
                object: Value::Null,
                reported: false,
                note: String::new(),
            });
            entry.object = object;
        }
        // The one in flight, drawn on a terminal.
        if tty {
            let running = seen.values().find(|s| !s.terminal());
            if let Some(running) = running {
                let line = running
                    .object
                    .pointer("/metadata/annotations/avocet.dev~1progress")
                    .and_then(Value::as_str)
                    .unwrap_or("Pending");
                let done = running.object["status"]["summary"]["totalBytesMigrated"]
                    .as_u64()
                    .unwrap_or_default();
                let bar = progress_bar(done, bytes, 24);
                write!(
                    out,
                    "\r\x1b[2K  {}  {}  {bar} {line}",
                    hours(running.slot),
                    running.object["metadata"]["name"].as_str().unwrap_or_default()
                )?;
                out.flush()?;
                drawn = true;
            }
        }
        for entry in seen.values_mut().filter(|s| s.terminal() && !s.reported) {
            entry.reported = true;
            if let Some((id, due, at)) = killed
                && entry.slot == due
            {
                let late = (entry.fired_at - entry.slot).as_seconds_f64() / SCALE;
                entry.note = format!(
                    "node {id} killed {:.1} s before it fell due; fired {late:.1} s late by the new leader",
                    (due_real(stack, due) - at).as_seconds_f64()
                );
            }
            if drawn {
                write!(out, "\r\x1b[2K")?;
                drawn = false;
            }
            let sent = entry.sent().map_or_else(String::new, |s| {
                format!(
                    ", {} run #{}, {} files changed, {} sent",
                    if s.full { "full" } else { "incremental" },
                    s.run,
                    s.files_changed,
                    size(s.bytes_sent)
                )
            });
            writeln!(
                out,
                "  {}  {}  {}{sent}",
                hours(entry.slot),
                entry.object["metadata"]["name"].as_str().unwrap_or_default(),
                entry.status()
            )?;
        }
        let ended = seen.values().filter(|s| s.terminal()).count();
        let last_slot = seen.values().map(|s| s.slot).max();
        let next_due = last_slot.map(|slot| slot + INTERVAL);
        // Kill the leader just before the third slot falls due.
        if killed.is_none()
            && seen.len() == 2
            && let Some(due) = next_due
        {
            let at = due_real(stack, due) - TimeDelta::from_std(KILL_LEAD).unwrap_or_default();
            if wall() >= at {
                if drawn {
                    write!(out, "\r\x1b[2K")?;
                    drawn = false;
                }
                let victim = stack.leader().unwrap_or(leader);
                stack.kill(victim);
                let killed_at = Stopwatch::start();
                let now = wall();
                killed = Some((victim, due, now));
                writeln!(
                    out,
                    "  ** SIGKILL to the leader, node {victim}, {:.1} s before the {} slot falls due",
                    (due_real(stack, due) - now).as_seconds_f64(),
                    hours(due)
                )?;
                let next =
                    eventually(Duration::from_secs(20), || stack.leader().filter(|l| *l != victim))
                        .ok_or_else(|| {
                            anyhow::anyhow!("no new leader within 20 s of killing node {victim}")
                        })?;
                leader = next;
                writeln!(
                    out,
                    "  ** node {next} leads, {:.2} s after the kill",
                    killed_at.seconds()
                )?;
            }
        }
        // Once the slot after the kill has fired, the killed node comes back.
        if let Some((victim, due, _)) = killed
            && !restarted
            && seen.values().any(|s| s.slot == due && s.terminal())
        {
            stack.spawn(victim)?;
            restarted = true;
            let back = eventually(Duration::from_secs(20), || stack.leader());
            writeln!(
                out,
                "  ** node {victim} restarted; {}",
                match back {
                    Some(l) => format!("it follows node {l}"),
                    None => "it has not caught up yet".to_owned(),
                }
            )?;
        }
        // The app stops writing a second before the last slot (a planned failover: quiesce,
        // migrate once more, switch), so that the last migration reads the final data.
        if !writer_stopped
            && seen.len() + 1 == slots
            && let Some(due) = next_due
            && wall() >= due_real(stack, due) - TimeDelta::seconds(1)
        {
            {
                let writes = writer.stop();
                writer_stopped = true;
                if drawn {
                    write!(out, "\r\x1b[2K")?;
                    drawn = false;
                }
                writeln!(
                    out,
                    "  ** the app stops writing ({writes} page writes so far) before the last slot, to fail over"
                )?;
            }
        }
        if ended >= slots {
            if killed.is_none() {
                anyhow::bail!(
                    "the leader was never killed: the third slot fired before the demo could aim at it"
                );
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    Ok(seen.into_values().map(|s| (s.slot, s)).collect())
}

/// Draws `done` of `total` as a bar `width` cells wide: `[#########...............]`.
fn progress_bar(done: u64, total: u64, width: usize) -> String {
    let cells = done.min(total).saturating_mul(width as u64).checked_div(total).unwrap_or(0);
    let filled = usize::try_from(cells).unwrap_or(width).min(width);
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

/// The real instant the group's clock reaches `group`.
fn due_real(stack: &Stack, group: DateTime<Utc>) -> DateTime<Utc> {
    stack.clock.real(group)
}

/// Activates the standby and checks its volume; returns whether both went well.
fn failover(
    stack: &Stack,
    data: &std::path::Path,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<bool> {
    let destination = stack.client(false)?;
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(destination.clone(), app::NAMESPACE);
    let replicas = || -> anyhow::Result<i32> {
        let deployment = stack.runtime.block_on(deployments.get("mysql"))?;
        Ok(deployment.spec.and_then(|s| s.replicas).unwrap_or_default())
    };
    let standby = replicas()?;
    writeln!(out, "\nFailover to the destination:")?;
    writeln!(out, "$ avocetctl activate migrations -n mysql --kubeconfig destination.kubeconfig")?;
    let dest_config = stack.destination.1.to_string_lossy().into_owned();
    let (ok, printed, complaints) = stack.ctl(
        DESTINATION,
        &["activate", "migrations", "-n", app::NAMESPACE, "--kubeconfig", &dest_config],
    );
    for line in printed.lines().chain(complaints.lines()) {
        writeln!(out, "  {line}")?;
    }
    let replicas_after = replicas()?;
    let mut clean = ok;
    let replicas = replicas_after;
    writeln!(
        out,
        "  deployment mysql/mysql on the destination: {standby} replicas as a standby, {replicas} now"
    )?;
    clean &= standby == 0 && replicas == 1;
    let volumes: Api<k8s_openapi::api::core::v1::PersistentVolume> = Api::all(destination);
    let pv = stack.runtime.block_on(volumes.get("pv-mysql"))?;
    let path = pv.spec.and_then(|s| s.host_path).map(|h| PathBuf::from(h.path)).unwrap_or_default();
    match app::compare_trees(data, &path) {
        Ok((files, bytes)) => writeln!(
            out,
            "  data check: the destination's volume ({}) equals the source as the last migration read it, byte for byte ({files} files, {})",
            path.display(),
            size(bytes)
        )?,
        Err(difference) => {
            clean = false;
            writeln!(
                out,
                "  DATA CHECK FAILED: {} against {}: {difference}",
                path.display(),
                data.display()
            )?;
        }
    }
    Ok(clean)
}
