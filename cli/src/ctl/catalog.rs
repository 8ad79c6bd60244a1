//! `avocetctl apply|get|delete|suspend|resume|create migration|cancel migration|get events`:
//! the Stork objects a server keeps, with storkctl's tables and messages.

use std::io::Write;
use std::process::ExitCode;

use chrono::DateTime;
use serde_json::Value;
use tonic::transport::Channel;

use avocet_proto::api::catalog_client::CatalogClient;
use avocet_proto::api::{
    ApplyRequest, CancelMigrationRequest, DeleteRequest, Event, GetRequest, ListEventsRequest,
    ListRequest, SetSuspendRequest,
};
use avocet_types::Kind;
use avocet_types::clusterpair::ClusterPair;
use avocet_types::migration::{Migration, MigrationStatusType};
use avocet_types::policy::SchedulePolicy;
use avocet_types::schedule::MigrationSchedule;

use super::client::{TokenInterceptor, failed};
use super::{CreateMigrationArgs, GetCommand, GetOutput, ServerArgs};
use crate::output::Table;

type Client =
    CatalogClient<tonic::service::interceptor::InterceptedService<Channel, TokenInterceptor>>;

async fn connect(server: &ServerArgs, streaming: bool) -> anyhow::Result<Client> {
    let (channel, interceptor) = super::client::channel(server).await?;
    let interceptor = if streaming { interceptor.streaming() } else { interceptor };
    Ok(CatalogClient::with_interceptor(channel, interceptor))
}

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Writes `DD Mon YY HH:MM UTC`, storkctl's RFC822 layout (in UTC rather than the machine's
/// zone, so output does not depend on where it runs); a missing time prints empty.
fn rfc822(time: Option<&Value>) -> String {
    time.and_then(Value::as_str)
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|time| time.to_utc().format("%d %b %y %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// Writes a duration as Go does (`1h2m3s`, `45s`, `1.5s`).
fn go_duration(seconds: f64) -> String {
    if seconds < 1.0 {
        return format!("{}ms", (seconds * 1000.0).round());
    }
    let total = seconds.round();
    let hours = (total / 3600.0).floor();
    let minutes = ((total - hours * 3600.0) / 60.0).floor();
    let secs = total - hours * 3600.0 - minutes * 60.0;
    match (hours > 0.0, minutes > 0.0) {
        (true, _) => format!("{hours}h{minutes}m{secs}s"),
        (false, true) => format!("{minutes}m{secs}s"),
        (false, false) => format!("{secs}s"),
    }
}

fn kind_of(text: &str) -> anyhow::Result<Kind> {
    Kind::from_any_name(text).ok_or_else(|| {
        anyhow::anyhow!(
            "{text:?} is not a kind avocetctl knows (clusterpair, schedulepolicy, \
             namespacedschedulepolicy, migrationschedule, migration, rule, \
             applicationregistration)"
        )
    })
}

/// Runs `avocetctl apply -f FILE`.
pub(super) fn apply(
    server: &ServerArgs,
    text: String,
    namespace: Option<String>,
    dry_run: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let mut client = connect(server, false).await?;
        let request = ApplyRequest { text, namespace: namespace.unwrap_or_default(), dry_run };
        let response =
            client.apply(request).await.map_err(|status| failed(server, status))?.into_inner();
        let mut code = ExitCode::SUCCESS;
        for object in response.objects {
            let kind = object.kind.to_ascii_lowercase();
            for warning in &object.warnings {
                writeln!(err, "warning: {}/{}: {warning}", object.kind, object.name)?;
            }
            if object.action == "rejected" {
                writeln!(
                    err,
                    "error: {kind}.stork.libopenstorage.org/{}: {}",
                    object.name, object.message
                )?;
                code = ExitCode::FAILURE;
            } else {
                let suffix = if dry_run { " (dry run)" } else { "" };
                writeln!(
                    out,
                    "{kind}.stork.libopenstorage.org/{} {}{suffix}",
                    object.name, object.action
                )?;
            }
        }
        Ok(code)
    })
}

/// Runs `avocetctl get KIND [NAME]`.
pub(super) fn get(
    server: &ServerArgs,
    args: GetCommand,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let kind = kind_of(&args.kind)?;
    runtime()?.block_on(async {
        let mut client = connect(server, false).await?;
        let namespace = args.namespace.clone().unwrap_or_default();
        let mut objects: Vec<Value> = match &args.name {
            Some(name) => {
                let request =
                    GetRequest { kind: kind.as_str().to_owned(), namespace, name: name.clone() };
                let object = client
                    .get(request)
                    .await
                    .map_err(|status| failed(server, status))?
                    .into_inner();
                vec![serde_json::from_str(&object.json)?]
            }
            None => {
                let request = ListRequest {
                    kind: kind.as_str().to_owned(),
                    namespace,
                    all_namespaces: args.all_namespaces,
                };
                let list = client
                    .list(request)
                    .await
                    .map_err(|status| failed(server, status))?
                    .into_inner();
                list.objects
                    .iter()
                    .map(|o| serde_json::from_str(&o.json))
                    .collect::<Result<_, _>>()?
            }
        };
        if let Some(pair) = &args.cluster_pair {
            objects.retain(|object| {
                object
                    .pointer("/spec/clusterPair")
                    .or_else(|| object.pointer("/spec/template/spec/clusterPair"))
                    == Some(&Value::String(pair.clone()))
            });
        }
        match args.output {
            GetOutput::Json | GetOutput::Yaml => {
                let value = if args.name.is_some() && objects.len() == 1 {
                    objects.remove(0)
                } else {
                    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects})
                };
                if args.output == GetOutput::Json {
                    serde_json::to_writer_pretty(&mut *out, &value)?;
                    writeln!(out)?;
                } else {
                    write!(out, "{}", serde_saphyr::to_string(&value)?)?;
                }
            }
            GetOutput::Table => {
                if objects.is_empty() {
                    writeln!(out, "No resources found.")?;
                    return Ok(ExitCode::SUCCESS);
                }
                table(kind, &objects, args.all_namespaces)?.write(out)?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Builds storkctl's table for `kind` (§5 of the reference: the exact column headers).
fn table(kind: Kind, objects: &[Value], all_namespaces: bool) -> anyhow::Result<Table> {
    let header: &[&str] = match kind {
        Kind::ClusterPair => &["NAME", "STORAGE-STATUS", "SCHEDULER-STATUS", "CREATED"],
        Kind::SchedulePolicy | Kind::NamespacedSchedulePolicy => {
            &["NAME", "INTERVAL-MINUTES", "DAILY", "WEEKLY", "MONTHLY"]
        }
        Kind::MigrationSchedule => &[
            "NAME",
            "POLICYNAME",
            "CLUSTERPAIR",
            "SUSPEND",
            "LAST-SUCCESS-TIME",
            "LAST-SUCCESS-DURATION",
        ],
        Kind::Migration => &[
            "NAME",
            "CLUSTERPAIR",
            "STAGE",
            "STATUS",
            "VOLUMES",
            "RESOURCES",
            "CREATED",
            "ELAPSED",
            "TOTAL BYTES TRANSFERRED",
        ],
        Kind::ApplicationRegistration => {
            &["NAME", "KIND", "CRD-NAME", "VERSION", "SUSPEND-OPTIONS", "KEEP-STATUS"]
        }
        Kind::Rule => &["NAME"],
    };
    let mut columns: Vec<&str> = Vec::new();
    if all_namespaces && kind.scope() == avocet_types::meta::Scope::Namespaced {
        columns.push("NAMESPACE");
    }
    columns.extend_from_slice(header);
    let mut table = Table::new(&columns);
    for object in objects {
        let mut row = Vec::new();
        if columns[0] == "NAMESPACE" {
            row.push(
                object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        let name =
            object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
        row.push(name);
        let created = rfc822(object.pointer("/metadata/creationTimestamp"));
        match kind {
            Kind::ClusterPair => {
                let pair: ClusterPair = serde_json::from_value(object.clone())?;
                let status = pair.status.unwrap_or_default();
                row.extend([
                    status.storage_status.as_str().to_owned(),
                    status.scheduler_status.as_str().to_owned(),
                    created,
                ]);
            }
            Kind::SchedulePolicy | Kind::NamespacedSchedulePolicy => {
                let policy: SchedulePolicy =
                    serde_json::from_value(object.clone()).unwrap_or_else(|_| SchedulePolicy {
                        api_version: String::new(),
                        kind: String::new(),
                        metadata: Default::default(),
                        policy: Default::default(),
                    });
                // storkctl prints the policy's own strings (Thursday@10:13PM), or Invalid.
                let item = &policy.policy;
                let valid = item.parse(&avocet_types::validate::FieldPath::root()).is_ok();
                let cell = |text: Option<String>| match text {
                    None => "N/A".to_owned(),
                    Some(_) if !valid => "Invalid".to_owned(),
                    Some(text) => text,
                };
                row.extend([
                    cell(
                        item.interval
                            .as_ref()
                            .map(|i| i.interval_minutes.unwrap_or_default().to_string()),
                    ),
                    cell(item.daily.as_ref().map(|d| d.time.clone())),
                    cell(item.weekly.as_ref().map(|w| format!("{}@{}", w.day, w.time))),
                    cell(
                        item.monthly
                            .as_ref()
                            .map(|m| format!("{}@{}", m.date.unwrap_or_default(), m.time)),
                    ),
                ]);
            }
            Kind::MigrationSchedule => {
                let schedule: MigrationSchedule = serde_json::from_value(object.clone())?;
                let last = schedule
                    .status
                    .as_ref()
                    .into_iter()
                    .flat_map(|status| status.items.values().flatten())
                    .filter(|item| item.status == MigrationStatusType::Successful)
                    .max_by_key(|item| item.creation_timestamp);
                let (time, duration) = match last {
                    Some(item) => {
                        let created = item.creation_timestamp.map(|t| t.instant());
                        let finished = item.finish_timestamp.map(|t| t.instant());
                        let duration = match (created, finished) {
                            (Some(c), Some(f)) => {
                                go_duration((f - c).num_milliseconds() as f64 / 1000.0)
                            }
                            _ => String::new(),
                        };
                        let time = finished
                            .map(|f| rfc822(Some(&Value::String(f.to_rfc3339()))))
                            .unwrap_or_default();
                        (time, duration)
                    }
                    None => (String::new(), String::new()),
                };
                row.extend([
                    schedule.spec.schedule_policy_name.clone(),
                    schedule.spec.template.spec.cluster_pair.clone(),
                    schedule.spec.suspended().to_string(),
                    time,
                    duration,
                ]);
            }
            Kind::Migration => {
                let migration: Migration = serde_json::from_value(object.clone())?;
                let status = migration.status.clone().unwrap_or_default();
                let (volumes, resources, elapsed, bytes) = match &status.summary {
                    Some(summary) => (
                        format!(
                            "{}/{}",
                            summary.num_of_migrated_volumes, summary.total_number_of_volumes
                        ),
                        format!(
                            "{}/{}",
                            summary.num_of_migrated_resources, summary.total_number_of_resources
                        ),
                        format!(
                            "Volumes ({}) Resources ({})",
                            summary.elapsed_time_for_volume_migration,
                            summary.elapsed_time_for_resource_migration
                        ),
                        summary.total_bytes_migrated.to_string(),
                    ),
                    None => (
                        "0/0".to_owned(),
                        "0/0".to_owned(),
                        String::new(),
                        "Available with stork v2.9.0+".to_owned(),
                    ),
                };
                row.extend([
                    migration.spec.cluster_pair.clone(),
                    status.stage.as_str().to_owned(),
                    status.status.as_str().to_owned(),
                    volumes,
                    resources,
                    created,
                    elapsed,
                    bytes,
                ]);
            }
            Kind::ApplicationRegistration => {
                // One row per registered resource, as storkctl prints them.
                let registration: avocet_types::ApplicationRegistration =
                    serde_json::from_value(object.clone())?;
                let prefix = row.clone();
                for (i, resource) in registration.resources.iter().enumerate() {
                    let mut cells =
                        if i == 0 { prefix.clone() } else { vec![String::new(); prefix.len()] };
                    let options = &resource.suspend_options;
                    let suspend = if options.path.is_empty() {
                        String::new()
                    } else {
                        format!("{},{}", options.path, options.value_type)
                    };
                    cells.extend([
                        resource.kind.clone(),
                        format!("{}s.{}", resource.kind.to_ascii_lowercase(), resource.group),
                        resource.version.clone(),
                        suspend,
                        resource.keep_status.to_string(),
                    ]);
                    table.row(cells);
                }
                if !registration.resources.is_empty() {
                    continue;
                }
            }
            Kind::Rule => {}
        }
        table.row(row);
    }
    Ok(table)
}

/// Runs `avocetctl delete KIND NAME`.
pub(super) fn delete(
    server: &ServerArgs,
    kind: &str,
    names: &[String],
    namespace: Option<String>,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let kind = kind_of(kind)?;
    runtime()?.block_on(async {
        let mut client = connect(server, false).await?;
        for name in names {
            let request = DeleteRequest {
                kind: kind.as_str().to_owned(),
                namespace: namespace.clone().unwrap_or_default(),
                name: name.clone(),
            };
            client.delete(request).await.map_err(|status| failed(server, status))?;
            writeln!(out, "{kind} {name} deleted successfully")?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `avocetctl suspend|resume migrationschedule NAME`.
pub(super) fn set_suspend(
    server: &ServerArgs,
    names: &[String],
    namespace: Option<String>,
    suspend: bool,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let mut client = connect(server, false).await?;
        for name in names {
            let request = SetSuspendRequest {
                namespace: namespace.clone().unwrap_or_default(),
                name: name.clone(),
                suspend,
            };
            client.set_suspend(request).await.map_err(|status| failed(server, status))?;
            let verb = if suspend { "suspended" } else { "resumed" };
            writeln!(out, "MigrationSchedule {name} {verb} successfully")?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `avocetctl create migration NAME`.
pub(super) fn create_migration(
    server: &ServerArgs,
    args: CreateMigrationArgs,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let namespace = args.namespace.clone().unwrap_or_else(|| "default".to_owned());
    let mut spec = serde_json::json!({
        "clusterPair": args.cluster_pair,
        "namespaces": args.namespaces,
        "includeResources": args.include_resources,
        "includeVolumes": args.include_volumes,
        "startApplications": args.start_applications,
    });
    if let Some(rule) = args.pre_exec_rule {
        spec["preExecRule"] = Value::String(rule);
    }
    if let Some(rule) = args.post_exec_rule {
        spec["postExecRule"] = Value::String(rule);
    }
    let document = serde_json::json!({
        "apiVersion": avocet_types::meta::API_GROUP_VERSION,
        "kind": "Migration",
        "metadata": {"name": args.name, "namespace": namespace},
        "spec": spec,
    });
    runtime()?.block_on(async {
        let mut client = connect(server, false).await?;
        let request = ApplyRequest {
            text: document.to_string(),
            namespace: namespace.clone(),
            dry_run: false,
        };
        let response =
            client.apply(request).await.map_err(|status| failed(server, status))?.into_inner();
        for object in response.objects {
            match object.action.as_str() {
                "created" => writeln!(out, "Migration {} created successfully", object.name)?,
                "unchanged" => anyhow::bail!(
                    "Migration {} already exists in namespace {namespace}",
                    object.name
                ),
                _ => anyhow::bail!("Migration {}: {}", object.name, object.message),
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `avocetctl cancel migration NAME`.
pub(super) fn cancel_migration(
    server: &ServerArgs,
    name: &str,
    namespace: Option<String>,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let mut client = connect(server, false).await?;
        let request = CancelMigrationRequest {
            namespace: namespace.unwrap_or_default(),
            name: name.to_owned(),
        };
        client.cancel_migration(request).await.map_err(|status| failed(server, status))?;
        writeln!(out, "Migration {name} cancelled")?;
        Ok(ExitCode::SUCCESS)
    })
}

fn event_json(event: &Event) -> Value {
    serde_json::json!({
        "seq": event.seq, "time": event.time, "type": event.r#type, "reason": event.reason,
        "involvedObject": {"kind": event.kind, "namespace": event.namespace, "name": event.name},
        "message": event.message,
    })
}

fn event_row(event: &Event, all_namespaces: bool) -> Vec<String> {
    let mut row = Vec::new();
    if all_namespaces {
        row.push(event.namespace.clone());
    }
    row.extend([
        event.time.clone(),
        event.r#type.clone(),
        event.reason.clone(),
        format!("{}/{}", event.kind.to_ascii_lowercase(), event.name),
        event.message.clone(),
    ]);
    row
}

/// Runs `avocetctl get events`.
pub(super) fn events(
    server: &ServerArgs,
    args: GetCommand,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let (kind, name) = match &args.for_object {
        Some(text) => {
            let (kind, name) = text.split_once('/').ok_or_else(|| {
                anyhow::anyhow!("--for: {text:?} is not KIND/NAME like migrationschedule/nightly")
            })?;
            (kind_of(kind)?.as_str().to_owned(), name.to_owned())
        }
        None => (String::new(), String::new()),
    };
    let mut request = ListEventsRequest {
        namespace: args.namespace.clone().unwrap_or_else(|| "default".to_owned()),
        all_namespaces: args.all_namespaces,
        after_seq: 0,
        kind,
        name,
    };
    let mut header = Vec::new();
    if args.all_namespaces {
        header.push("NAMESPACE");
    }
    header.extend(["TIME", "TYPE", "REASON", "OBJECT", "MESSAGE"]);
    runtime()?.block_on(async {
        let mut client = connect(server, args.watch).await?;
        let events = client
            .list_events(request.clone())
            .await
            .map_err(|status| failed(server, status))?
            .into_inner()
            .events;
        match args.output {
            GetOutput::Json | GetOutput::Yaml if !args.watch => {
                let items: Vec<Value> = events.iter().map(event_json).collect();
                let value = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
                if args.output == GetOutput::Json {
                    serde_json::to_writer_pretty(&mut *out, &value)?;
                    writeln!(out)?;
                } else {
                    write!(out, "{}", serde_saphyr::to_string(&value)?)?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            _ => {}
        }
        let mut table = Table::new(&header);
        for event in &events {
            table.row(event_row(event, args.all_namespaces));
        }
        if events.is_empty() && !args.watch {
            writeln!(out, "No resources found.")?;
        } else {
            table.write(out)?;
        }
        if !args.watch {
            return Ok(ExitCode::SUCCESS);
        }
        request.after_seq = events.last().map_or(0, |event| event.seq);
        let mut stream = client
            .watch_events(request)
            .await
            .map_err(|status| failed(server, status))?
            .into_inner();
        while let Some(event) = stream.message().await.map_err(|status| failed(server, status))? {
            if args.output == GetOutput::Json {
                writeln!(out, "{}", event_json(&event))?;
            } else {
                writeln!(out, "{}", event_row(&event, args.all_namespaces).join("   "))?;
            }
            out.flush()?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_print_as_storkctl_prints_them() {
        assert_eq!(go_duration(3723.0), "1h2m3s");
        assert_eq!(go_duration(45.0), "45s");
        assert_eq!(go_duration(0.25), "250ms");
        assert_eq!(
            rfc822(Some(&Value::String("2019-02-14T22:16:51Z".into()))),
            "14 Feb 19 22:16 UTC"
        );
        assert_eq!(rfc822(None), "");
    }

    fn render(kind: Kind, objects: &[Value], all: bool) -> String {
        let mut out = Vec::new();
        table(kind, objects, all).unwrap().write(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn tables_have_storkctls_columns() {
        let policy = serde_json::json!({
            "apiVersion": "stork.libopenstorage.org/v1alpha1", "kind": "SchedulePolicy",
            "metadata": {"name": "testpolicy"},
            "policy": {"interval": {"intervalMinutes": 60}, "daily": {"time": "10:14PM"},
                       "weekly": {"day": "Thursday", "time": "10:13PM"}}
        });
        assert_eq!(
            render(Kind::SchedulePolicy, &[policy], false),
            "NAME         INTERVAL-MINUTES   DAILY     WEEKLY             MONTHLY\n\
             testpolicy   60                 10:14PM   Thursday@10:13PM   N/A\n"
        );
        let migration = serde_json::json!({
            "metadata": {"name": "m1", "namespace": "mysql", "creationTimestamp": "2019-02-14T22:16:51Z"},
            "spec": {"clusterPair": "remotecluster", "namespaces": ["mysql"]},
            "status": {"stage": "Final", "status": "Successful", "summary": {
                "totalNumberOfVolumes": 1, "numOfMigratedVolumes": 1, "totalNumberOfResources": 5,
                "numOfMigratedResources": 5, "totalBytesMigrated": 1024,
                "elapsedTimeForVolumeMigration": "2s", "elapsedTimeForResourceMigration": "1s"}}
        });
        let text = render(Kind::Migration, &[migration], true);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("NAMESPACE   NAME   CLUSTERPAIR     STAGE   STATUS"),
            "{text}"
        );
        assert!(
            lines[0].ends_with("ELAPSED                       TOTAL BYTES TRANSFERRED"),
            "{text}"
        );
        assert!(
            lines[1].contains("Final   Successful   1/1       5/5         14 Feb 19 22:16 UTC   Volumes (2s) Resources (1s)   1024"),
            "{text}"
        );
    }
}
