//! The data plane against restic and rsync on the same generated data, in one run: a full
//! push, a push with nothing changed, and a push after 1 % of the tree was rewritten in place
//! (164 random 64 KiB regions in 16 of 256 random 4 MiB files: shared/TOOLING.md §8's
//! workload). Each command runs as its own process under `/usr/bin/time` (wall time, peak
//! memory) with the page cache dropped first where the machine allows it; "written" is what the
//! tool reports storing, "device" the growth of the disk's sectors-written counter. Avocet
//! pushes to the local-directory store, restic to a local repository, rsync to a local copy
//! (`-a`, then `--no-whole-file --inplace` for the delta, its best case).
//!
//! `scripts/transfer-bench.sh [--files N]` installs restic and rsync and runs this.

// A bench binary prints its table.
#![allow(clippy::print_stdout)]

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use avocet_transfer::testing::noise;

const FILE_BYTES: usize = 4 * 1024 * 1024;
const REGION_LEN: usize = 64 * 1024;
const REGION: u64 = REGION_LEN as u64;

/// One measured command.
#[derive(Debug, Clone, Default)]
struct Measure {
    seconds: f64,
    peak_mib: f64,
    written: u64,
    device: u64,
}

fn sync_and_drop_caches() -> bool {
    let _ = Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

/// Sectors written by the block device holding `path`, in bytes.
fn device_written(path: &Path) -> u64 {
    let Ok(meta) = std::fs::metadata(path) else { return 0 };
    let dev = meta.dev();
    let (major, minor) = ((dev >> 8) & 0xfff, (dev & 0xff) | ((dev >> 12) & 0xfff00));
    std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/stat"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(6).and_then(|n| n.parse::<u64>().ok()))
        .map_or(0, |sectors| sectors * 512)
}

/// Runs `command` under /usr/bin/time; returns the measure and its stdout.
fn run(work: &Path, program: &str, args: &[&str], env: &[(&str, &str)]) -> (Measure, String) {
    sync_and_drop_caches();
    let before = device_written(work);
    let timing = work.join("time.out");
    let output = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e %M")
        .arg("-o")
        .arg(&timing)
        .arg(program)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{program} runs under /usr/bin/time: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = Command::new("sync").status();
    let device = device_written(work).saturating_sub(before);
    let text = std::fs::read_to_string(&timing).unwrap_or_default();
    let mut fields = text.split_whitespace();
    let seconds = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let peak_kib: f64 = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let measure = Measure { seconds, peak_mib: peak_kib / 1024.0, written: 0, device };
    (measure, String::from_utf8_lossy(&output.stdout).into_owned())
}

fn json_field(text: &str, field: &str) -> u64 {
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| v.get(field).and_then(serde_json::Value::as_u64))
        .next_back()
        .unwrap_or(0)
}

fn rsync_literal(text: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with("Literal data:"))
        .and_then(|l| l.split(':').nth(1))
        .map(|n| n.trim().split(' ').next().unwrap_or("0").replace(',', ""))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

struct Tools {
    avocetctl: PathBuf,
    work: PathBuf,
}

impl Tools {
    fn avocet(&self, extra: &[&str]) -> Measure {
        let src = self.work.join("src");
        let store = format!("file://{}", self.work.join("avocet-store").display());
        let key = self.work.join("key");
        let mut args =
            vec!["snapshot", "push", "--source", src.to_str().unwrap_or(""), "--store", &store];
        args.extend(["--volume", "bench", "--key-file", key.to_str().unwrap_or(""), "-o", "json"]);
        args.extend(extra);
        let (mut m, out) = run(&self.work, self.avocetctl.to_str().unwrap_or(""), &args, &[]);
        m.written = json_field(&out, "bytesUploaded");
        m
    }

    fn restic(&self) -> Measure {
        let repo = self.work.join("restic-repo");
        let src = self.work.join("src");
        let env =
            [("RESTIC_PASSWORD", "bench"), ("RESTIC_CACHE_DIR", "/tmp/avocet-bench-restic-cache")];
        let args =
            ["-r", repo.to_str().unwrap_or(""), "backup", "--json", src.to_str().unwrap_or("")];
        let (mut m, out) = run(&self.work, "restic", &args, &env);
        m.written = json_field(&out, "data_added");
        m
    }

    fn rsync(&self, delta: bool) -> Measure {
        let src = format!("{}/", self.work.join("src").display());
        let dst = format!("{}/", self.work.join("rsync-copy").display());
        let mut args = vec!["-a", "--stats"];
        if delta {
            args.extend(["--no-whole-file", "--inplace"]);
        }
        args.extend([src.as_str(), dst.as_str()]);
        let (mut m, out) = run(&self.work, "rsync", &args, &[]);
        m.written = rsync_literal(&out);
        m
    }
}

fn main() {
    let mut files = 256usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--files" {
            files = args.next().and_then(|n| n.parse().ok()).unwrap_or(files);
        }
    }
    let here = std::env::current_exe().expect("exe");
    let avocetctl = here.with_file_name("avocetctl");
    assert!(avocetctl.exists(), "build avocetctl beside the bench: {}", avocetctl.display());
    let base = std::env::var_os("AVOCET_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let work = tempfile::tempdir_in(base).expect("work dir");
    let tools = Tools { avocetctl, work: work.path().to_path_buf() };
    let src = tools.work.join("src");
    std::fs::create_dir(&src).expect("src");
    for i in 0..files {
        std::fs::write(src.join(format!("file-{i:04}.bin")), noise(FILE_BYTES, i as u64 + 1))
            .expect("write");
    }
    std::fs::write(tools.work.join("key"), noise(32, 99)).expect("key");
    let tree = (files * FILE_BYTES) as u64;
    let status = Command::new("restic")
        .args(["-r", tools.work.join("restic-repo").to_str().unwrap_or(""), "init"])
        .env("RESTIC_PASSWORD", "bench")
        .output()
        .expect("restic runs");
    assert!(status.status.success(), "restic init");
    let dropped = sync_and_drop_caches();

    let full = [tools.avocet(&[]), tools.restic(), tools.rsync(false)];
    let same = [tools.avocet(&[]), tools.restic(), tools.rsync(false)];
    // 1 %: 164 random 64 KiB regions (at 1 GiB) spread over 16 of every 256 files, in place.
    let regions = (tree / 100 / REGION).max(1) as usize;
    let touched = (files / 16).max(1);
    let mut rng = 12_345u64;
    for r in 0..regions {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let file = (r % touched) * (files / touched);
        let offset = rng % (FILE_BYTES as u64 - REGION);
        let f = OpenOptions::new()
            .write(true)
            .open(src.join(format!("file-{file:04}.bin")))
            .expect("open");
        f.write_all_at(&noise(REGION_LEN, rng), offset).expect("rewrite");
    }
    let changed = regions as u64 * REGION;
    let incremental = [tools.avocet(&[]), tools.restic(), tools.rsync(true)];

    println!(
        "Volume transfer: {files} files x 4 MiB of random data ({:.0} MiB), then {regions} random 64 KiB regions rewritten in place ({:.2} MiB, {:.2} %). Page cache {}.",
        tree as f64 / 1048576.0,
        changed as f64 / 1048576.0,
        changed as f64 * 100.0 / tree as f64,
        if dropped { "dropped before each command" } else { "NOT dropped (no permission)" }
    );
    println!(
        "{:<12} {:<16} {:>9} {:>13} {:>12} {:>10} {:>11} {:>13}",
        "run",
        "tool",
        "seconds",
        "written MiB",
        "device MiB",
        "peak MiB",
        "time/restic",
        "written/chg"
    );
    let names = ["avocet", "restic", "rsync"];
    for (run, row) in [("full", &full), ("no-change", &same), ("1% changed", &incremental)] {
        for (i, m) in row.iter().enumerate() {
            let name = if run == "1% changed" && i == 2 { "rsync --inplace" } else { names[i] };
            let ratio = m.seconds / row[1].seconds.max(0.001);
            let per_change = if run == "1% changed" {
                format!("{:.2}", m.written as f64 / changed as f64)
            } else {
                "-".to_owned()
            };
            println!(
                "{run:<12} {name:<16} {:>9.2} {:>13.2} {:>12.2} {:>10.1} {:>11.2} {:>13}",
                m.seconds,
                m.written as f64 / 1048576.0,
                m.device as f64 / 1048576.0,
                m.peak_mib,
                ratio,
                per_change
            );
        }
    }
    let budget = changed as f64 * 1.5 + tree as f64 * 0.005;
    let checks = [
        ("full push <= 0.5x restic's time", full[0].seconds <= 0.5 * full[1].seconds),
        ("no-change push <= 0.5x restic's time", same[0].seconds <= 0.5 * same[1].seconds),
        (
            "incremental push <= 0.5x restic's time",
            incremental[0].seconds <= 0.5 * incremental[1].seconds,
        ),
        (
            "incremental bytes <= 1.5x changed + 0.5% of the tree",
            incremental[0].written as f64 <= budget,
        ),
    ];
    for (what, ok) in checks {
        println!("{} {what}", if ok { "met   " } else { "MISSED" });
    }
}
