//! Builds the awkward trees the data plane must carry exactly, changes them, and compares two
//! trees entry by entry (kind, mode, owner, size, mtime, link count, link target, contents).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

pub(crate) use avocet_transfer::testing::noise;

fn set_mtime(path: &Path, secs: i64, nanos: i64) {
    let times = rustix_times(secs, nanos);
    let status = Command::new("touch")
        .arg("-h")
        .arg("-d")
        .arg(times)
        .arg(path)
        .status()
        .expect("touch runs");
    assert!(status.success(), "touch {}", path.display());
}

fn rustix_times(secs: i64, nanos: i64) -> String {
    format!("@{secs}.{nanos:09}")
}

fn write(path: &Path, data: &[u8], mode: u32, mtime: i64) {
    fs::write(path, data).expect("write");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    set_mtime(path, mtime, 123_456_789);
}

/// The sizes of the tree's large parts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    /// The large file.
    pub(crate) big: usize,
    /// The sparse file's length (data at its start and middle only).
    pub(crate) sparse: u64,
}

/// Builds the tree under `root` (which must not exist).
pub(crate) fn build(root: &Path, sizes: Sizes) {
    fs::create_dir(root).expect("root");
    for dir in ["a", "a/b", "a/b/c", "empty", "sticky", "ünïcødé ✓", "ünïcødé ✓/深い"]
    {
        fs::create_dir(root.join(dir)).expect("dir");
    }
    write(&root.join("big.bin"), &noise(sizes.big, 1), 0o640, 1_700_000_000);
    for i in 0..40u64 {
        let len = usize::try_from(i * 977 % 20_000).expect("small");
        write(
            &root.join(format!("a/b/c/small-{i:02}.dat")),
            &noise(len, 100 + i),
            0o644,
            1_700_000_100,
        );
    }
    write(
        &root.join("a/config.yaml"),
        b"replicas: 3\nimage: mysql:8\n".repeat(50).as_slice(),
        0o600,
        1_700_000_200,
    );
    write(
        &root.join("ünïcødé ✓/深い/データ.txt"),
        "日本語のテキスト\n".repeat(300).as_bytes(),
        0o644,
        1_700_000_300,
    );
    write(&root.join("a/setuid-tool"), &noise(5000, 7), 0o4755, 1_700_000_400);
    write(&root.join("a/empty-file"), b"", 0o444, 1_700_000_500);
    fs::set_permissions(root.join("sticky"), fs::Permissions::from_mode(0o1777)).expect("chmod");
    std::os::unix::fs::lchown(root.join("a/config.yaml"), Some(999), Some(999)).expect("chown");
    std::os::unix::fs::lchown(root.join("a/b"), Some(1234), Some(5678)).expect("chown");

    let sparse = File::create(root.join("sparse.img")).expect("sparse");
    sparse.set_len(sizes.sparse).expect("len");
    sparse.write_all_at(&noise(70_000, 9), 0).expect("head");
    sparse.write_all_at(&noise(70_000, 10), sizes.sparse / 2).expect("middle");
    drop(sparse);
    set_mtime(&root.join("sparse.img"), 1_700_000_600, 0);

    fs::hard_link(root.join("a/config.yaml"), root.join("a/b/config-link.yaml")).expect("link");
    std::os::unix::fs::symlink("a/b/c/small-01.dat", root.join("to-small")).expect("symlink");
    std::os::unix::fs::symlink("nowhere/at all", root.join("dangling")).expect("symlink");
    std::os::unix::fs::symlink("a/b", root.join("to-dir")).expect("symlink");
    std::os::unix::fs::lchown(root.join("to-dir"), Some(42), Some(43)).expect("chown link");
    set_mtime(&root.join("to-small"), 1_600_000_000, 5);
    for dir in ["a/b/c", "a/b", "a", "empty", "sticky", "ünïcødé ✓/深い", "ünïcødé ✓"]
    {
        set_mtime(&root.join(dir), 1_690_000_000, 0);
    }
    fs::set_permissions(root, fs::Permissions::from_mode(0o750)).expect("chmod root");
    set_mtime(root, 1_690_000_001, 0);
}

/// Rewrites `regions` 64 KiB regions of the big file in place and makes small changes (one
/// file edited, one added, one removed, one chmod only); returns the bytes of content changed.
pub(crate) fn change(root: &Path, regions: u64, seed: u64) -> u64 {
    let big = OpenOptions::new().write(true).open(root.join("big.bin")).expect("big");
    let len = big.metadata().expect("meta").len();
    let region = 64 * 1024;
    for i in 0..regions {
        let offset = (i * 7_919 * 4_096 + seed * 31_337) % (len - region);
        big.write_all_at(&noise(usize::try_from(region).expect("small"), seed * 1000 + i), offset)
            .expect("rewrite");
    }
    drop(big);
    let mut f = OpenOptions::new().append(true).open(root.join("a/config.yaml")).expect("append");
    f.write_all(b"# changed\n").expect("append");
    fs::write(root.join("a/b/c/new-file.txt"), format!("added in change {seed}\n")).expect("new");
    fs::remove_file(root.join("a/b/c/small-03.dat")).expect("remove");
    fs::set_permissions(root.join("a/b/c/small-05.dat"), fs::Permissions::from_mode(0o600))
        .expect("chmod");
    regions * region + 10 + 20
}

/// What a comparison looks at for one entry.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    nlink: u64,
    target: Option<String>,
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Seen>) {
    for entry in fs::read_dir(dir).expect("list") {
        let path = entry.expect("entry").path();
        let meta = fs::symlink_metadata(&path).expect("stat");
        let relative = path.strip_prefix(root).expect("under root").to_string_lossy().into_owned();
        let kind = if meta.is_dir() {
            "dir"
        } else if meta.file_type().is_symlink() {
            "link"
        } else {
            "file"
        };
        out.insert(
            relative,
            Seen {
                kind,
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
                size: if meta.is_dir() { 0 } else { meta.size() },
                mtime: (meta.mtime(), meta.mtime_nsec()),
                nlink: if meta.is_dir() { 0 } else { meta.nlink() },
                target: fs::read_link(&path).ok().map(|t| t.to_string_lossy().into_owned()),
            },
        );
        if meta.is_dir() {
            walk(root, &path, out);
        }
    }
}

/// Asserts `b` is `a` exactly: `diff -r` finds no difference in contents, and every entry's
/// kind, mode, owner, size, mtime, link count and link target match (the top directory's too).
pub(crate) fn assert_same(a: &Path, b: &Path) {
    let diff = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(a)
        .arg(b)
        .output()
        .expect("diff runs");
    assert!(
        diff.status.success(),
        "diff -r {} {}:\n{}",
        a.display(),
        b.display(),
        String::from_utf8_lossy(&diff.stdout)
    );
    let (mut left, mut right) = (BTreeMap::new(), BTreeMap::new());
    walk(a, a, &mut left);
    walk(b, b, &mut right);
    assert_eq!(left.keys().collect::<Vec<_>>(), right.keys().collect::<Vec<_>>(), "the same paths");
    for (path, seen) in &left {
        assert_eq!(Some(seen), right.get(path), "{path}");
    }
    let (ma, mb) = (fs::metadata(a).expect("a"), fs::metadata(b).expect("b"));
    assert_eq!(
        (ma.mode(), ma.uid(), ma.gid(), ma.mtime(), ma.mtime_nsec()),
        (mb.mode(), mb.uid(), mb.gid(), mb.mtime(), mb.mtime_nsec()),
        "top directory"
    );
}

/// Allocated bytes of a file (512-byte blocks).
pub(crate) fn allocated(path: &Path) -> u64 {
    fs::metadata(path).expect("stat").blocks() * 512
}

/// Copies a tree exactly (`cp -a`), to keep a snapshot of it.
pub(crate) fn copy(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status().expect("cp runs");
    assert!(status.success());
}
