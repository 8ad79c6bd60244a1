//! `avocetctl snapshot push` and `snapshot restore`: the data plane as a tool. A push stores
//! the next run of a volume (a directory) in an object store; a restore writes a run back out.
//! Both need the key file the store was created with. A progress line is drawn on a terminal.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use avocet_transfer::plan::Mode;
use avocet_transfer::push::{self, PushOptions};
use avocet_transfer::repo::Repository;
use avocet_transfer::restore;
use avocet_transfer::seal::{KEY_MATERIAL_MIN, Key};
use avocet_transfer::stopwatch::Stopwatch;
use avocet_transfer::store::StoreUrl;
use clap::{Args, Subcommand, ValueEnum};

use super::OutputFormat;
use crate::output::size;

/// The largest key file read.
const KEY_FILE_MAX: u64 = 1024 * 1024;

#[derive(Debug, Subcommand)]
pub(super) enum SnapshotCommand {
    /// Stores the next run of a volume (a directory): only what changed since the last run.
    Push(PushArgs),
    /// Writes a run of a volume out into a directory, switching it in atomically.
    Restore(RestoreArgs),
}

/// The transfer mode of `snapshot push --mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum ModeArg {
    /// Every 7th run reads every file again.
    #[value(name = "Default")]
    Default,
    /// Only the first run reads every file.
    #[value(name = "DisasterRecovery")]
    DisasterRecovery,
}

#[derive(Debug, Args)]
pub(super) struct PushArgs {
    /// Reads the volume from directory DIR.
    #[arg(long, value_name = "DIR")]
    source: PathBuf,
    /// Stores into URL: file:///PATH or s3://BUCKET[/PREFIX]?endpoint=URL&region=R.
    #[arg(long, value_name = "URL")]
    store: String,
    /// Names the volume in the store.
    #[arg(long, value_name = "NAME")]
    volume: String,
    /// Reads every file, even those unchanged since the last run.
    #[arg(long)]
    full: bool,
    /// Says which runs are full: Default (every 7th) or DisasterRecovery (only the first).
    #[arg(long, value_enum, default_value_t = ModeArg::Default)]
    mode: ModeArg,
    /// Derives the encryption key from FILE (at least 32 bytes of secret).
    #[arg(long, value_name = "FILE")]
    key_file: PathBuf,
    /// Prints a summary line or JSON.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

#[derive(Debug, Args)]
pub(super) struct RestoreArgs {
    /// Reads from URL: file:///PATH or s3://BUCKET[/PREFIX]?endpoint=URL&region=R.
    #[arg(long, value_name = "URL")]
    store: String,
    /// Names the volume in the store.
    #[arg(long, value_name = "NAME")]
    volume: String,
    /// Writes into directory DIR (replaced as a whole; its parent must exist).
    #[arg(long, value_name = "DIR")]
    target: PathBuf,
    /// Restores run N (default: the newest).
    #[arg(long, value_name = "N")]
    run: Option<u64>,
    /// Derives the encryption key from FILE (at least 32 bytes of secret).
    #[arg(long, value_name = "FILE")]
    key_file: PathBuf,
    /// Prints a summary line or JSON.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

/// Runs a snapshot verb.
pub(super) fn run(command: SnapshotCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let (store, key_file) = match &command {
        SnapshotCommand::Push(a) => (&a.store, &a.key_file),
        SnapshotCommand::Restore(a) => (&a.store, &a.key_file),
    };
    let url = StoreUrl::parse(store).map_err(|e| anyhow::anyhow!("--store: {e}"))?;
    let key = read_key(key_file)?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let store = url.open().await?;
        match command {
            SnapshotCommand::Push(args) => {
                let repo = Repository::open(store, key, true).await?;
                let mut options = PushOptions::new(&args.volume);
                options.full = args.full;
                options.mode = match args.mode {
                    ModeArg::Default => Mode::Default,
                    ModeArg::DisasterRecovery => Mode::DisasterRecovery,
                };
                let progress = Arc::new(push::Progress::default());
                let shown = progress.clone();
                let bar = show_progress(move || {
                    let scanned = shown.scanned.load(Ordering::Relaxed);
                    let uploaded = shown.uploaded.load(Ordering::Relaxed);
                    (scanned, format!("scanned {}, stored {}", size(scanned), size(uploaded)))
                });
                let report = push::push(&repo, &args.source, &options, progress).await;
                end_progress(bar);
                let report = report?;
                if args.output == OutputFormat::Json {
                    writeln!(out, "{}", serde_json::to_string(&report)?)?;
                } else {
                    writeln!(
                        out,
                        "volume {} run {} ({}): {} of {} files changed, {} scanned, {} stored ({} new chunks, {} reused) in {:.1}s",
                        report.volume,
                        report.run,
                        if report.full { "full" } else { "incremental" },
                        report.files_changed,
                        report.files,
                        size(report.bytes_scanned),
                        size(report.bytes_uploaded),
                        report.chunks_new,
                        report.chunks_reused,
                        report.seconds
                    )?;
                    for skipped in &report.skipped {
                        writeln!(out, "skipped {skipped}: not a file, directory or symlink")?;
                    }
                }
            }
            SnapshotCommand::Restore(args) => {
                let repo = Repository::open(store, key, false).await?;
                let progress = Arc::new(restore::Progress::default());
                let shown = progress.clone();
                let bar = show_progress(move || {
                    let downloaded = shown.downloaded.load(Ordering::Relaxed);
                    (downloaded, format!("fetched {}", size(downloaded)))
                });
                let report =
                    restore::restore(&repo, &args.volume, args.run, &args.target, progress).await;
                end_progress(bar);
                let report = report?;
                if args.output == OutputFormat::Json {
                    writeln!(out, "{}", serde_json::to_string(&report)?)?;
                } else {
                    writeln!(
                        out,
                        "volume {} run {} restored into {}: {} files ({} written, {} kept), {} fetched, {} reused locally in {:.1}s",
                        report.volume,
                        report.run,
                        args.target.display(),
                        report.files,
                        report.files_written,
                        report.files_reused,
                        size(report.bytes_downloaded),
                        size(report.bytes_reused),
                        report.seconds
                    )?;
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Reads the key file, refusing one too short to derive a key from.
fn read_key(path: &Path) -> anyhow::Result<Key> {
    use std::io::Read;
    let mut material = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(KEY_FILE_MAX).read_to_end(&mut material))
        .map_err(|e| anyhow::anyhow!("--key-file {}: {e}", path.display()))?;
    if material.len() < KEY_MATERIAL_MIN {
        anyhow::bail!(
            "--key-file {} holds {} bytes; at least {KEY_MATERIAL_MIN} bytes of secret are needed (for example: head -c 32 /dev/urandom > {})",
            path.display(),
            material.len(),
            path.display()
        );
    }
    Ok(Key::derive(&material)?)
}

/// Draws `line()` on standard error every 200 ms with a rate, when it is a terminal.
fn show_progress(line: impl Fn() -> (u64, String) + Send + 'static) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if !std::io::stderr().is_terminal() {
            return;
        }
        let watch = Stopwatch::start();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (bytes, text) = line();
            let millis = u64::try_from(watch.elapsed().as_millis()).unwrap_or(u64::MAX).max(1);
            let rate = bytes.saturating_mul(1000) / millis;
            let _ = write!(std::io::stderr(), "\r\x1b[K{text} ({}/s)", size(rate));
        }
    })
}

/// Stops the progress line and clears it.
fn end_progress(bar: tokio::task::JoinHandle<()>) {
    bar.abort();
    if std::io::stderr().is_terminal() {
        let _ = write!(std::io::stderr(), "\r\x1b[K");
    }
}
