//! `chaos`: soaks a real group under the seeded nemesis and prints one summary line; exit 1 on
//! any violation, with the command that replays the seed.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use avocet_chaos_tests::nemesis::{Options, soak};

/// Runs real `avocet serve` processes through a seeded plan of kills, pauses, partitions and
/// restarts, then judges every slot through the public API (EO-1, EO-2, T-1); then runs
/// migrations through worker kills and freezes, S3 faults and the destination down, judging
/// every volume byte for byte and every outcome for a stale lease's late effect (W-1).
#[derive(Debug, Parser)]
#[command(name = "chaos")]
struct Args {
    /// Injects faults for this many minutes: three quarters into the scheduler group, then a
    /// quarter into the data plane (workers, S3, the destination).
    #[arg(long, default_value_t = 5.0)]
    minutes: f64,
    /// Derives the plan from this seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Runs this many nodes (3 or 5).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(3..=5))]
    nodes: u64,
    /// Runs the nodes on loopback instead of in network namespaces (no root needed; no
    /// partitions).
    #[arg(long)]
    loopback: bool,
    /// Prints each fault as it is injected.
    #[arg(short, long)]
    verbose: bool,
}

/// Under `cargo run`, builds `avocet` and `avocetctl` in this binary's profile first: they are
/// another package's binaries, which cargo does not build for this one, and a soak of stale
/// ones would measure the wrong code. Run directly, it uses what is beside it.
fn build_the_service() -> Result<(), String> {
    let Some(cargo) = std::env::var_os("CARGO") else { return Ok(()) };
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let release = exe.parent().is_some_and(|dir| dir.ends_with("release"));
    let mut build = std::process::Command::new(cargo);
    build.args(["build", "-p", "avocet-cli", "--bin", "avocet", "--bin", "avocetctl"]);
    if release {
        build.arg("--release");
    }
    let status = build.status().map_err(|e| format!("cargo build: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("building avocet and avocetctl failed ({status})"))
    }
}

#[allow(clippy::print_stdout)] // The binary's output is its report.
fn main() -> ExitCode {
    let args = Args::parse();
    if !(args.minutes.is_finite() && args.minutes > 0.0 && args.minutes <= 24.0 * 60.0) {
        println!("--minutes {}: give a number of minutes above 0 and at most 1440", args.minutes);
        return ExitCode::from(2);
    }
    if let Err(problem) = build_the_service() {
        println!("{problem}");
        return ExitCode::FAILURE;
    }
    let options = Options {
        seed: args.seed,
        duration: Duration::from_secs_f64(args.minutes * 45.0),
        data_duration: Duration::from_secs_f64(args.minutes * 15.0),
        nodes: args.nodes,
        network: !args.loopback,
        planted: None,
    };
    let replay = format!(
        "cargo run -p avocet-chaos-tests --release --bin chaos -- --minutes {} --seed {} --nodes {}{}",
        args.minutes,
        args.seed,
        args.nodes,
        if args.loopback { " --loopback" } else { "" }
    );
    // Ctrl-C or SIGTERM ends the soak early but cleanly: it judges what ran, and every
    // process, namespace and folder it made is removed.
    std::thread::spawn(|| {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        runtime.block_on(async {
            let Ok(mut terminate) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            avocet_chaos_tests::nemesis::STOP.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    });
    let report = match soak(&options, |line| {
        if args.verbose {
            println!("{line}");
        }
    }) {
        Ok(report) => report,
        Err(error) => {
            println!("the soak could not run: {error}");
            println!("replay: {replay}");
            return ExitCode::FAILURE;
        }
    };
    if args.verbose {
        println!("writes acknowledged during the soak: {}", report.acknowledged);
    }
    println!("{}", report.summary());
    if report.problems.is_empty() {
        return ExitCode::SUCCESS;
    }
    for problem in &report.problems {
        println!("  {problem}");
    }
    if !args.verbose {
        println!("the plan so far:");
        for line in &report.log {
            println!("  {line}");
        }
    }
    println!("replay: {replay}");
    ExitCode::FAILURE
}
