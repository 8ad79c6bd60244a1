//! `avocetctl`'s arguments and dispatch to one module per verb.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod activate;
mod catalog;
mod client;
mod cluster;
mod credentials;
mod generate;
mod preview;
mod snapshot;
mod validate;

/// Caps the size of an input file, so a wrong path (a disk image, a log) fails fast.
const INPUT_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// avocetctl: the command line of Avocet, asynchronous disaster recovery for Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "avocetctl", version, disable_help_subcommand = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    server: ServerArgs,
}

/// Says which server to talk to and with which token (for verbs that talk to a server).
#[derive(Debug, Clone, Args)]
struct ServerArgs {
    /// Talks to the Avocet server at URL.
    #[arg(
        long,
        global = true,
        env = "AVOCET_SERVER",
        default_value = "http://127.0.0.1:9001",
        value_name = "URL"
    )]
    server: String,
    /// Presents TOKEN as the bearer token.
    #[arg(long, global = true, env = "AVOCET_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    token: Option<String>,
    /// Trusts the PEM certificate authority in FILE for an https:// --server.
    #[arg(long, global = true, env = "AVOCET_CA_FILE", value_name = "FILE")]
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Checks Stork YAML or JSON documents and reports every problem at once.
    Validate(ValidateArgs),
    /// Works with schedules and their policies.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Shows and changes the membership of the scheduler group.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Creates or updates the objects of a YAML or JSON file, like kubectl apply.
    Apply {
        /// Reads the documents from FILE ('-' for standard input).
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: PathBuf,
        /// Puts namespaced objects that name no namespace in NS (default: default).
        #[arg(short = 'n', long = "namespace", value_name = "NS")]
        namespace: Option<String>,
        /// Validates against the server without storing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Lists objects (clusterpair, schedulepolicy, migrationschedule, migration, rule,
    /// applicationregistration, events).
    Get(GetCommand),
    /// Deletes objects.
    Delete {
        /// Names the kind (clusterpair, schedulepolicy, namespacedschedulepolicy,
        /// migrationschedule, migration).
        kind: String,
        /// Names the objects.
        #[arg(required = true)]
        names: Vec<String>,
        /// Looks in namespace NS (default: default).
        #[arg(short = 'n', long = "namespace", value_name = "NS")]
        namespace: Option<String>,
    },
    /// Suspends migration schedules: no new slots fire; a running migration continues.
    Suspend(SuspendArgs),
    /// Resumes suspended migration schedules: slots from now on fire.
    Resume(SuspendArgs),
    /// Creates a one-off migration.
    #[command(subcommand)]
    Create(CreateCommand),
    /// Cancels a migration that has not ended.
    #[command(subcommand)]
    Cancel(CancelCommand),
    /// Prints a ClusterPair for this (destination) cluster, to create on the source.
    Generate(generate::GenerateArgs),
    /// Starts the migrated applications on this (destination) cluster: failover.
    Activate(activate::ActivateArgs),
    /// Stops the migrated applications on this (destination) cluster again.
    Deactivate(activate::ActivateArgs),
    /// Stores, lists and deletes object-store credentials for pairs.
    #[command(subcommand)]
    Credentials(credentials::CredentialsCommand),
    /// Pushes a volume's changes to an object store, or restores a run from it.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
}

#[derive(Debug, Args)]
struct GetCommand {
    /// Names the kind: clusterpair (cp), schedulepolicy (sp), namespacedschedulepolicy,
    /// migrationschedule, migration, rule, applicationregistration, or events.
    kind: String,
    /// Shows only this object.
    name: Option<String>,
    /// Looks in namespace NS (default: default).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    namespace: Option<String>,
    /// Looks in every namespace (adds a NAMESPACE column).
    #[arg(short = 'A', long = "all-namespaces")]
    all_namespaces: bool,
    /// Prints a table, JSON or YAML.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = GetOutput::Table)]
    output: GetOutput,
    /// Shows only objects that use this ClusterPair.
    #[arg(short = 'c', long = "clusterpair", value_name = "NAME")]
    cluster_pair: Option<String>,
    /// Events only: shows those of one object, KIND/NAME.
    #[arg(long = "for", value_name = "KIND/NAME")]
    for_object: Option<String>,
    /// Events only: keeps printing new events as they happen.
    #[arg(short = 'w', long = "watch")]
    watch: bool,
}

#[derive(Debug, Args)]
struct SuspendArgs {
    /// Names the kind: migrationschedule (or migrationschedules).
    kind: String,
    /// Names the schedules.
    #[arg(required = true)]
    names: Vec<String>,
    /// Looks in namespace NS (default: default).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    namespace: Option<String>,
}

#[derive(Debug, Subcommand)]
enum CreateCommand {
    /// Creates a one-off Migration.
    #[command(alias = "migrations")]
    Migration(CreateMigrationArgs),
}

/// Says what `create migration` builds.
#[derive(Debug, Args)]
struct CreateMigrationArgs {
    /// Names the migration.
    name: String,
    /// Puts it in namespace NS (default: default).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    namespace: Option<String>,
    /// Names the ClusterPair to migrate to.
    #[arg(short = 'c', long = "clusterPair", value_name = "NAME")]
    cluster_pair: String,
    /// Lists the namespaces to migrate.
    #[arg(long, value_delimiter = ',', required = true, value_name = "NS,...")]
    namespaces: Vec<String>,
    /// Copies Kubernetes objects (default true).
    #[arg(short = 'r', long = "includeResources", default_value_t = true, action = clap::ArgAction::Set)]
    include_resources: bool,
    /// Copies volume data (default true).
    #[arg(long = "includeVolumes", default_value_t = true, action = clap::ArgAction::Set)]
    include_volumes: bool,
    /// Starts applications on the destination (storkctl's default: true).
    #[arg(short = 'a', long = "startApplications", default_value_t = true, action = clap::ArgAction::Set)]
    start_applications: bool,
    /// Names a Rule to run before the migration.
    #[arg(long = "preExecRule", value_name = "RULE")]
    pre_exec_rule: Option<String>,
    /// Names a Rule to run after the migration.
    #[arg(long = "postExecRule", value_name = "RULE")]
    post_exec_rule: Option<String>,
}

#[derive(Debug, Subcommand)]
enum CancelCommand {
    /// Cancels a Migration that has not ended: it fails, and its worker's lease is revoked.
    #[command(alias = "migrations")]
    Migration {
        /// Names the migration.
        name: String,
        /// Looks in namespace NS (default: default).
        #[arg(short = 'n', long = "namespace", value_name = "NS")]
        namespace: Option<String>,
    },
}

/// Names an output format of `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GetOutput {
    /// A table for people, with storkctl's columns.
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Shows the leader, term, commit index and every member as the server sees them.
    Status {
        /// Prints a table or JSON.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Adds a node as a learner: it receives the log but does not vote yet.
    AddLearner {
        /// Names the new node (1 or more, unique in the group).
        id: u64,
        /// Gives the new node's Raft address, host:port.
        address: String,
    },
    /// Promotes a caught-up learner to a voter.
    Promote {
        /// Names the learner.
        id: u64,
    },
    /// Removes a node from the group.
    Remove {
        /// Names the node.
        id: u64,
    },
    /// Commits a no-op entry through the leader: proof that the group accepts writes.
    Barrier,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// Reads the documents from FILE ('-' for standard input).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    file: PathBuf,
}

#[derive(Debug, Subcommand)]
enum ScheduleCommand {
    /// Lists the due slots of the policies in a file, computed by the scheduler's own timing core.
    ///
    /// Interval slots are anchored at --from here; a running schedule anchors them at its creation.
    Preview(PreviewArgs),
}

/// Names an output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    /// A table for people.
    Table,
    /// JSON for scripts.
    Json,
}

#[derive(Debug, Args)]
struct PreviewArgs {
    /// Reads SchedulePolicy and NamespacedSchedulePolicy documents from FILE ('-' for standard input).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    file: PathBuf,
    /// Lists slots at or after this RFC 3339 instant (default: now); interval slots are anchored here.
    #[arg(long, value_name = "RFC3339")]
    from: Option<String>,
    /// Lists this many slots per policy type.
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=preview::COUNT_MAX))]
    count: u32,
    /// Uses this IANA time zone for policies without policy.timezone (default: UTC).
    #[arg(long, value_name = "ZONE")]
    timezone: Option<String>,
    /// Prints a table or JSON.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

/// Runs `avocetctl` with `args` (the program name first) and returns its exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    run(args, &mut io::stdout().lock(), &mut io::stderr().lock())
}

/// Runs `avocetctl` with `args` (the program name first), writing to `out` and `err`, and
/// returns its exit code; `avocet demo` runs the commands it shows this way. Call it outside
/// an async runtime: the server verbs run their own.
pub fn run(
    args: impl IntoIterator<Item = OsString>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version go to stdout with exit 0; usage errors to stderr with exit 2.
            let text = error.render().to_string();
            let _ = if error.use_stderr() {
                err.write_all(text.as_bytes())
            } else {
                out.write_all(text.as_bytes())
            };
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    let result = match cli.command {
        Command::Validate(args) => validate::run(&args, out, err),
        Command::Schedule(ScheduleCommand::Preview(args)) => preview::run(&args, out, err),
        Command::Cluster(command) => cluster::run(&cli.server, command, out),
        Command::Apply { file, namespace, dry_run } => read_input(&file)
            .and_then(|text| catalog::apply(&cli.server, text, namespace, dry_run, out, err)),
        Command::Get(get)
            if get.kind.eq_ignore_ascii_case("events")
                || get.kind.eq_ignore_ascii_case("event") =>
        {
            catalog::events(&cli.server, get, out)
        }
        Command::Get(get) => catalog::get(&cli.server, get, out),
        Command::Delete { kind, names, namespace } => {
            catalog::delete(&cli.server, &kind, &names, namespace, out)
        }
        Command::Suspend(args) | Command::Resume(args) if !is_schedule_kind(&args.kind) => Err(
            anyhow::anyhow!("{:?}: only migrationschedule can be suspended or resumed", args.kind),
        ),
        Command::Suspend(args) => {
            catalog::set_suspend(&cli.server, &args.names, args.namespace, true, out)
        }
        Command::Resume(args) => {
            catalog::set_suspend(&cli.server, &args.names, args.namespace, false, out)
        }
        Command::Create(CreateCommand::Migration(args)) => {
            catalog::create_migration(&cli.server, args, out)
        }
        Command::Cancel(CancelCommand::Migration { name, namespace }) => {
            catalog::cancel_migration(&cli.server, &name, namespace, out)
        }
        Command::Generate(args) => generate::run(&args, out),
        Command::Activate(args) => {
            activate::run(&args, avocet_workers::resources::activate::Direction::Activate, out)
        }
        Command::Snapshot(command) => snapshot::run(command, out),
        Command::Credentials(command) => credentials::run(&cli.server, command, out),
        Command::Deactivate(args) => {
            activate::run(&args, avocet_workers::resources::activate::Direction::Deactivate, out)
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            let _ = writeln!(err, "error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_schedule_kind(kind: &str) -> bool {
    avocet_types::Kind::from_any_name(kind) == Some(avocet_types::Kind::MigrationSchedule)
}

/// Reads a whole input file, or standard input for `-`.
fn read_input(path: &Path) -> anyhow::Result<String> {
    let shown = path.display();
    let mut text = String::new();
    let read = if path == Path::new("-") {
        io::stdin().lock().take(INPUT_BYTES_MAX + 1).read_to_string(&mut text)
    } else {
        std::fs::File::open(path)
            .and_then(|file| file.take(INPUT_BYTES_MAX + 1).read_to_string(&mut text))
    };
    read.map_err(|error| anyhow::anyhow!("cannot read {shown}: {error}"))?;
    if text.len() as u64 > INPUT_BYTES_MAX {
        anyhow::bail!(
            "cannot read {shown}: it is larger than {} MiB",
            INPUT_BYTES_MAX / 1024 / 1024
        );
    }
    Ok(text)
}

/// Writes every problem of an invalid document, one `error:` line per field.
fn report_invalid(error: &avocet_types::DocumentError, err: &mut dyn Write) -> io::Result<()> {
    match error {
        avocet_types::DocumentError::Invalid { errors, .. } => {
            let label = error.label().unwrap_or_default();
            for field in &errors.errors {
                writeln!(err, "error: {label}: {field}")?;
            }
            Ok(())
        }
        avocet_types::DocumentError::Syntax { .. } => writeln!(err, "error: {error}"),
    }
}
