//! Hostile rootfs cases, as root: symlinks in the rootfs that point at DECOY host
//! directories made by the test (never a real host path like /etc). Every container
//! path must resolve inside the rootfs (openat2 RESOLVE_IN_ROOT semantics: absolute
//! targets and `..` stay inside); each case either works inside the rootfs or fails
//! cleanly, and afterwards the decoys are byte-for-byte unchanged (contents, modes,
//! mtimes) and the host (mount table, processes, cgroups, /run/envc) is as it was.

mod common;

use common::{HostState, Mount, TempDir, busybox_rootfs, set_init};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUN_TIMEOUT: Duration = Duration::from_secs(20);

// ------------------------------------------------------------------ running envc

/// envc's exit code, stdout, stderr. envc is killed if it outlives `RUN_TIMEOUT`.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "--- envc exit: {:?}\n--- stderr:\n{}\n--- stdout (tail):\n{}",
            self.code,
            common::tail(&self.stderr, 6000),
            common::tail(&self.stdout, 3000)
        )
    }
}

/// Kills and reaps the child on drop (a failed assertion must not leave envc behind).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

fn run_envc(cmd: &mut Command) -> Run {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().expect("start envc"));
    let mut out = child.0.stdout.take().unwrap();
    let mut err = child.0.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break Some(st);
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.0.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let run = Run {
        code: status.and_then(|s| s.code()),
        stdout: String::from_utf8_lossy(&t_out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&t_err.join().unwrap()).into_owned(),
    };
    assert!(
        status.is_some(),
        "envc did not finish within {RUN_TIMEOUT:?}\n{}",
        run.describe()
    );
    run
}

// ------------------------------------------------------------------ decoys

/// A decoy host directory: a few files, a subdirectory, a symlink. Snapshot it with
/// [`fingerprint`] before and after.
fn make_decoy(at: &Path) -> PathBuf {
    std::fs::create_dir_all(at.join("sub")).unwrap();
    std::fs::write(at.join("secret"), "decoy: must never change\n").unwrap();
    std::fs::write(at.join("sub/file"), [0u8, 1, 2, 255]).unwrap();
    symlink("secret", at.join("link")).unwrap();
    // A host "init" that must never run: resolving init against the host would find it.
    std::fs::write(at.join("init"), "#!/bin/sh\necho HOST-INIT-RAN\n").unwrap();
    std::fs::set_permissions(at.join("init"), std::fs::Permissions::from_mode(0o755)).unwrap();
    at.to_path_buf()
}

/// Everything about a tree that a mount, node, file or permission change would alter:
/// per entry its type, mode, owner, mtime, ctime, size, contents or link target.
fn fingerprint(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, p: &Path, out: &mut BTreeMap<String, String>) {
        let md = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let ft = md.file_type();
        let what = if ft.is_symlink() {
            format!("link {}", std::fs::read_link(p).unwrap().display())
        } else if ft.is_file() {
            format!("file {:?}", std::fs::read(p).unwrap())
        } else if ft.is_dir() {
            "dir".to_string()
        } else {
            format!("other rdev={}", md.rdev())
        };
        out.insert(
            rel,
            format!(
                "{what} mode={:o} uid={} gid={} dev={} ino={} mtime={}.{} ctime={}.{}",
                md.mode(),
                md.uid(),
                md.gid(),
                md.dev(),
                md.ino(),
                md.mtime(),
                md.mtime_nsec(),
                md.ctime(),
                md.ctime_nsec()
            ),
        );
        if ft.is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            names.sort();
            for n in names {
                walk(root, &n, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

// ------------------------------------------------------------------ one hostile case

struct Case {
    dir: TempDir,
    rootfs: PathBuf,
    decoy: PathBuf,
    name: String,
}

impl Case {
    fn new(name: &str) -> Case {
        let dir = TempDir::new(name);
        let rootfs = busybox_rootfs(dir.path());
        let decoy = make_decoy(&dir.path().join("decoy"));
        Case {
            rootfs,
            decoy,
            name: name.to_string(),
            dir,
        }
    }

    /// The decoy's absolute path as a container path would name it, inside the rootfs.
    fn decoy_inside(&self) -> PathBuf {
        self.rootfs.join(self.decoy.strip_prefix("/").unwrap())
    }

    fn profile(&self, rootfs: &str, body: &str) -> PathBuf {
        let p = self.dir.path().join(format!("{}.toml", self.name));
        let text = format!("name = \"{}\"\nrootfs = \"{rootfs}\"\n{body}\n", self.name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn report_path(&self) -> PathBuf {
        self.dir.path().join(format!("{}.report.json", self.name))
    }

    /// Runs `envc apply` on the profile; the host and the decoy must be unchanged.
    fn apply(&self, profile: &Path) -> (Run, Option<Value>) {
        let decoy_before = fingerprint(&self.decoy);
        let host_before = HostState::capture();
        let run = run_envc(
            Command::new(common::envc_bin())
                .arg("apply")
                .arg(profile)
                .arg("--report")
                .arg(self.report_path())
                .env("ENVC_RUN_DIR", self.dir.path().join("run"))
                .env("ENVC_LOG_DIR", self.dir.path().join("log")),
        );
        host_before.assert_restored_within(Duration::from_secs(2));
        let decoy_after = fingerprint(&self.decoy);
        assert_eq!(
            decoy_before,
            decoy_after,
            "the decoy changed\n{}",
            run.describe()
        );
        assert!(!run.stdout.contains("HOST-INIT-RAN"), "the host's init ran");
        assert!(
            !self.dir.path().join("run").exists(),
            "envc left its run dir"
        );
        let report = std::fs::read_to_string(self.report_path())
            .ok()
            .map(|t| serde_json::from_str(&t).expect("report JSON"));
        (run, report)
    }
}

fn steps(report: &Value) -> &Vec<Value> {
    report["steps"].as_array().unwrap()
}

/// The run failed cleanly at step `op` from `key`: exit `code`, that step failed, every
/// later one not run, no init started. Returns the step's error.
fn assert_failed_at(run: &Run, report: &Option<Value>, op: &str, key: &str, code: i32) -> String {
    assert_eq!(run.code, Some(code), "{}", run.describe());
    let report = report.as_ref().expect("a report");
    let i = steps(report)
        .iter()
        .position(|s| s["op"] == op && s["origin"]["key"] == key)
        .unwrap_or_else(|| panic!("no {op} from {key}: {report:#}"));
    for (j, s) in steps(report).iter().enumerate() {
        let st = s["status"].as_str().unwrap();
        match j.cmp(&i) {
            std::cmp::Ordering::Less => assert_ne!(st, "failed", "{report:#}"),
            std::cmp::Ordering::Equal => assert_eq!(st, "failed", "{report:#}"),
            std::cmp::Ordering::Greater => assert_eq!(st, "not_run", "{report:#}"),
        }
    }
    assert!(
        !run.stdout.contains(common::PROBE_BEGIN),
        "init ran: {}",
        run.describe()
    );
    steps(report)[i]["error"].as_str().unwrap().to_string()
}

fn probe_of(run: &Run) -> Value {
    assert_eq!(run.code, Some(0), "{}", run.describe());
    common::extract_probe_json(&run.stdout)
}

fn mounts_of(probe: &Value) -> Vec<Mount> {
    probe["mountinfo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| common::parse_mountinfo_line(l.as_str().unwrap()).unwrap())
        .collect()
}

/// A relative symlink target from `link` (a path in the rootfs) that reaches `target`
/// on the HOST (`..` up to `/`, then down), and inside the rootfs stays inside.
fn escaping(link: &Path, target: &Path) -> String {
    let ups = link.parent().unwrap().components().count() - 1;
    format!(
        "{}{}",
        "../".repeat(ups),
        target.strip_prefix("/").unwrap().display()
    )
}

// ------------------------------------------------------------------ /dev, /proc, /sys

#[test]
fn dev_proc_sys_symlinked_to_a_decoy_are_refused() {
    if !common::require_root("dev_proc_sys_symlinked_to_a_decoy_are_refused") {
        return;
    }
    let _serial = common::serial();
    for (dir, key, extra) in [
        ("dev", "dev.create", ""),
        ("proc", "proc.create", ""),
        ("sys", "sys.create", ""),
        ("dev", "dev.create", "[dev]\ncreate = true"),
    ] {
        for relative in [false, true] {
            let c = Case::new(&format!(
                "{dir}link{}",
                if relative { "rel" } else { "abs" }
            ));
            let link = c.rootfs.join(dir);
            std::fs::remove_dir(&link).unwrap();
            let target = if relative {
                escaping(&link, &c.decoy)
            } else {
                c.decoy.display().to_string()
            };
            symlink(&target, &link).unwrap();
            // Even where the link resolves inside the rootfs, /dev must be a real dir.
            std::fs::create_dir_all(c.decoy_inside()).unwrap();
            let profile = c.profile("rootfs", extra);
            let (run, report) = c.apply(&profile);
            let error = assert_failed_at(&run, &report, "CheckDirectory", key, 125);
            assert!(
                error.contains("not a directory"),
                "/{dir} -> {target}: {error}"
            );
            assert!(
                run.stderr.contains(&format!("/{dir}")),
                "{}",
                run.describe()
            );
            assert!(
                std::fs::symlink_metadata(&link)
                    .unwrap()
                    .file_type()
                    .is_symlink()
            );
        }
    }
}

// ------------------------------------------------------------------ disk mount targets

#[test]
fn disk_targets_through_symlinks_land_inside_the_rootfs() {
    if !common::require_root("disk_targets_through_symlinks_land_inside_the_rootfs") {
        return;
    }
    let _serial = common::serial();
    // The disk's source: a directory of the test's, with a marker.
    let disk = |c: &Case, path: &str| {
        let src = c.dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("marker"), "bound").unwrap();
        format!(
            "[devices.data]\ntype = \"disk\"\nsource = \"{}\"\npath = \"{path}\"",
            src.display()
        )
    };

    // 1. The target is an absolute symlink to the decoy; inside the rootfs that path
    //    exists, so the bind lands there.
    let c = Case::new("targetabs");
    std::fs::create_dir_all(c.rootfs.join("mnt")).unwrap();
    symlink(&c.decoy, c.rootfs.join("mnt/link")).unwrap();
    std::fs::create_dir_all(c.decoy_inside()).unwrap();
    let (run, _) = c.apply(&c.profile("rootfs", &disk(&c, "/mnt/link")));
    let mounts = mounts_of(&probe_of(&run));
    let inside = c.decoy.display().to_string();
    let m = mounts
        .iter()
        .find(|m| m.mount_point == inside)
        .unwrap_or_else(|| panic!("the bind is not at {inside} inside: {mounts:?}"));
    assert!(m.root.ends_with("/src"), "{m:?}");

    // 2. The same, through `..` past the root: inside, `..` stops at the rootfs.
    let c = Case::new("targetrel");
    std::fs::create_dir_all(c.rootfs.join("mnt")).unwrap();
    let link = c.rootfs.join("mnt/link");
    symlink(escaping(&link, &c.decoy), &link).unwrap();
    std::fs::create_dir_all(c.decoy_inside()).unwrap();
    let (run, _) = c.apply(&c.profile("rootfs", &disk(&c, "/mnt/link")));
    let mounts = mounts_of(&probe_of(&run));
    let inside = c.decoy.display().to_string();
    assert!(
        mounts
            .iter()
            .any(|m| m.mount_point == inside && m.root.ends_with("/src")),
        "the bind is not at {inside} inside: {mounts:?}"
    );

    // 3. A parent of the target is the symlink: the missing directory is made inside
    //    the rootfs, never in the decoy.
    let c = Case::new("parentabs");
    std::fs::create_dir_all(c.rootfs.join("mnt")).unwrap();
    symlink(&c.decoy, c.rootfs.join("mnt/evil")).unwrap();
    std::fs::create_dir_all(c.decoy_inside()).unwrap();
    let (run, _) = c.apply(&c.profile("rootfs", &disk(&c, "/mnt/evil/newdir")));
    let mounts = mounts_of(&probe_of(&run));
    let want = format!("{}/newdir", c.decoy.display());
    assert!(
        mounts.iter().any(|m| m.mount_point == want),
        "the bind is not at {want} inside: {mounts:?}"
    );
    assert!(c.decoy_inside().join("newdir").is_dir());
    assert!(!c.decoy.join("newdir").exists());

    // 4. The symlink's target does not exist inside the rootfs: the bind either lands
    //    inside or fails cleanly; the decoy (checked by `apply`) is untouched.
    for (name, rel) in [("danglingabs", false), ("danglingrel", true)] {
        let c = Case::new(name);
        std::fs::create_dir_all(c.rootfs.join("mnt")).unwrap();
        let link = c.rootfs.join("mnt/link");
        let target = if rel {
            escaping(&link, &c.decoy)
        } else {
            c.decoy.display().to_string()
        };
        symlink(&target, &link).unwrap();
        let (run, report) = c.apply(&c.profile("rootfs", &disk(&c, "/mnt/link/x")));
        if run.code == Some(0) {
            let mounts = mounts_of(&probe_of(&run));
            assert!(
                mounts.iter().any(|m| m.root.ends_with("/src")),
                "{mounts:?}"
            );
            let host_side = if rel {
                c.rootfs.join("decoy")
            } else {
                c.decoy_inside()
            };
            assert!(
                host_side.join("x").is_dir(),
                "the mount point is not inside the rootfs"
            );
        } else {
            assert_failed_at(&run, &report, "BindMount", "devices.data", 125);
        }
    }
}

// ------------------------------------------------------------------ tmpfs through a symlink

#[test]
fn tmpfs_through_a_symlinked_parent_stays_inside() {
    if !common::require_root("tmpfs_through_a_symlinked_parent_stays_inside") {
        return;
    }
    let _serial = common::serial();
    let tmpfs = |path: &str| {
        format!("[devices.scratch]\ntype = \"tmpfs\"\npath = \"{path}\"\nsize = \"1MiB\"")
    };
    // The parent resolves inside the rootfs (its in-rootfs counterpart exists).
    let c = Case::new("tmpfsin");
    std::fs::create_dir_all(c.rootfs.join("var")).unwrap();
    symlink(&c.decoy, c.rootfs.join("var/evil")).unwrap();
    std::fs::create_dir_all(c.decoy_inside()).unwrap();
    let (run, _) = c.apply(&c.profile("rootfs", &tmpfs("/var/evil/scratch")));
    let mounts = mounts_of(&probe_of(&run));
    let want = format!("{}/scratch", c.decoy.display());
    assert!(
        mounts
            .iter()
            .any(|m| m.mount_point == want && m.fs_type == "tmpfs"),
        "the tmpfs is not at {want} inside: {mounts:?}"
    );
    assert!(!c.decoy.join("scratch").exists());

    // Dangling inside the rootfs, absolute and relative: inside or a clean failure.
    for (name, rel) in [("tmpfsabs", false), ("tmpfsrel", true)] {
        let c = Case::new(name);
        std::fs::create_dir_all(c.rootfs.join("var")).unwrap();
        let link = c.rootfs.join("var/evil");
        let target = if rel {
            escaping(&link, &c.decoy)
        } else {
            c.decoy.display().to_string()
        };
        symlink(&target, &link).unwrap();
        let (run, report) = c.apply(&c.profile("rootfs", &tmpfs("/var/evil/scratch")));
        if run.code != Some(0) {
            assert_failed_at(&run, &report, "MountTmpfs", "devices.scratch", 125);
        }
        // The tmpfs itself on the symlink.
        let c = Case::new(&format!("{name}self"));
        std::fs::create_dir_all(c.rootfs.join("var")).unwrap();
        let link = c.rootfs.join("var/evil");
        let target = if rel {
            escaping(&link, &c.decoy)
        } else {
            c.decoy.display().to_string()
        };
        symlink(&target, &link).unwrap();
        let (run, report) = c.apply(&c.profile("rootfs", &tmpfs("/var/evil")));
        if run.code != Some(0) {
            assert_failed_at(&run, &report, "MountTmpfs", "devices.scratch", 125);
        }
    }
}

// ------------------------------------------------------------------ init

#[test]
fn init_symlinks_resolve_inside_the_rootfs() {
    if !common::require_root("init_symlinks_resolve_inside_the_rootfs") {
        return;
    }
    let _serial = common::serial();
    // The default: /sbin/init -> /sbin/probe (absolute), resolved inside.
    let c = Case::new("initabs");
    let (run, report) = c.apply(&c.profile("rootfs", ""));
    assert_eq!(probe_of(&run)["argv"][0], "/sbin/init");
    assert_eq!(report.unwrap()["host"]["init"], "/sbin/probe");

    // Relative, with more `..` than there are directories: stops at the rootfs.
    let c = Case::new("initdotdot");
    set_init(&c.rootfs, "../../../../../../../../../../sbin/probe");
    let (run, report) = c.apply(&c.profile("rootfs", ""));
    probe_of(&run);
    assert_eq!(report.unwrap()["host"]["init"], "/sbin/probe");

    // Pointing at a host program that does not exist inside the rootfs: not found
    // (127), never the host's program.
    for (name, rel) in [("inithostabs", false), ("inithostrel", true)] {
        let c = Case::new(name);
        let host_init = c.decoy.join("init");
        let target = if rel {
            escaping(&c.rootfs.join("sbin/init"), &host_init)
        } else {
            host_init.display().to_string()
        };
        set_init(&c.rootfs, &target);
        let (run, report) = c.apply(&c.profile("rootfs", ""));
        assert_failed_at(&run, &report, "CheckInit", "init.command", 127);
        assert!(run.stderr.contains("/sbin/init"), "{}", run.describe());
    }
    // The init command itself naming the host program by its host path.
    let c = Case::new("initcmd");
    let body = format!("[init]\ncommand = [\"{}\"]", c.decoy.join("init").display());
    let (run, report) = c.apply(&c.profile("rootfs", &body));
    assert_failed_at(&run, &report, "CheckInit", "init.command", 127);
}

// ------------------------------------------------------------------ the rootfs itself

#[test]
fn a_rootfs_that_is_a_symlink_works() {
    if !common::require_root("a_rootfs_that_is_a_symlink_works") {
        return;
    }
    let _serial = common::serial();
    let c = Case::new("rootlink");
    symlink("rootfs", c.dir.path().join("rootlink")).unwrap();
    let (run, report) = c.apply(&c.profile("rootlink", ""));
    let probe = probe_of(&run);
    assert_eq!(probe["hostname"], "rootlink");
    let root = mounts_of(&probe)
        .into_iter()
        .find(|m| m.mount_point == "/")
        .unwrap();
    assert!(
        root.root.ends_with("/rootfs"),
        "/ is not the real rootfs: {root:?}"
    );
    assert_eq!(report.unwrap()["host"]["init"], "/sbin/probe");
    assert!(
        std::fs::symlink_metadata(c.dir.path().join("rootlink"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}
