//! `sim`: sweeps seeds of the scheduler simulation; `--seed N` replays one with its trace.

use std::process::ExitCode;

use clap::Parser;

use avocet_chaos_tests::sim::{Options, run};

/// Runs the seeded simulation of the scheduler group and checks EO-1, EO-2, T-1, T-2 and W-1.
#[derive(Debug, Parser)]
#[command(name = "sim")]
struct Args {
    /// Runs this many seeds.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// Starts the sweep at this seed.
    #[arg(long, default_value_t = 1)]
    start_seed: u64,
    /// Replays one seed and prints its trace.
    #[arg(long, conflicts_with_all = ["seeds", "start_seed"])]
    seed: Option<u64>,
    /// Counts faulty steps per seed before the faults heal.
    #[arg(long, default_value_t = 1000)]
    steps: u32,
}

#[allow(clippy::print_stdout)] // The binary's output is its report.
fn main() -> ExitCode {
    let args = Args::parse();
    let seeds: Vec<u64> = match args.seed {
        Some(seed) => vec![seed],
        None => (args.start_seed..args.start_seed.saturating_add(args.seeds)).collect(),
    };
    let (mut fired, mut coalesced, mut duplicates, mut faults, mut leaders) = (0, 0, 0, 0, 0);
    for &seed in &seeds {
        let options = Options { seed, steps: args.steps, bug: None };
        let Ok(report) = std::panic::catch_unwind(|| run(options)) else {
            println!("seed {seed}: panicked (the message is above)");
            println!(
                "replay: cargo run -p avocet-chaos-tests --release --bin sim -- --seed {seed} --steps {}",
                args.steps
            );
            return ExitCode::FAILURE;
        };
        fired += report.fired;
        coalesced += report.coalesced;
        duplicates += report.duplicates_refused;
        faults += report.faults;
        leaders += report.leader_changes;
        if args.seed.is_some() {
            for line in &report.trace {
                println!("{line}");
            }
        }
        if let Some(violation) = &report.violation {
            if args.seed.is_none() {
                for line in &report.trace {
                    println!("{line}");
                }
            }
            println!("seed {seed}: {violation}");
            println!(
                "replay: cargo run -p avocet-chaos-tests --release --bin sim -- --seed {seed} --steps {}",
                args.steps
            );
            return ExitCode::FAILURE;
        }
    }
    println!(
        "fired {fired}, coalesced {coalesced}, duplicate fires refused {duplicates}, faults {faults}, leader changes {leaders}"
    );
    println!("seeds {}, violations 0", seeds.len());
    ExitCode::SUCCESS
}
