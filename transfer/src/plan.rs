//! Which runs are full, and which files a run must read again.

/// The transfer mode of a ClusterPair (`options.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every 7th run of a volume re-reads everything (6 incrementals, then a full).
    Default,
    /// Every run after the first is incremental.
    DisasterRecovery,
}

/// Whether run `n` of a volume (1-based) is full: the first always is; in Default mode so is
/// every 7th after it (runs 8, 15, 22, …); `forced` (`--full`) makes any run full.
pub fn is_full(n: u64, mode: Mode, forced: bool) -> bool {
    forced || n <= 1 || (mode == Mode::Default && (n - 1).is_multiple_of(7))
}

/// What a run knows of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Inode number.
    pub inode: u64,
}

/// Whether a file must be read again: always in a full run; otherwise when the previous
/// manifest does not have it or its size, mtime or inode changed (restic's and rsync's rule).
pub fn must_read(previous: Option<Stat>, now: Stat, full: bool) -> bool {
    full || previous != Some(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mode_is_full_on_runs_1_8_15_and_disaster_recovery_only_on_the_first() {
        let full: Vec<u64> = (1..=16).filter(|n| is_full(*n, Mode::Default, false)).collect();
        assert_eq!(full, [1, 8, 15]);
        let dr: Vec<u64> =
            (1..=16).filter(|n| is_full(*n, Mode::DisasterRecovery, false)).collect();
        assert_eq!(dr, [1]);
        assert!(is_full(5, Mode::DisasterRecovery, true));
    }

    #[test]
    fn an_unchanged_file_is_not_read_unless_the_run_is_full() {
        let stat = Stat { size: 10, mtime_ns: 1, inode: 7 };
        assert!(!must_read(Some(stat), stat, false));
        assert!(must_read(Some(stat), stat, true));
        assert!(must_read(None, stat, false));
        assert!(must_read(Some(stat), Stat { mtime_ns: 2, ..stat }, false));
        assert!(must_read(Some(stat), Stat { inode: 8, ..stat }, false));
    }
}
