//! The host-dependent parts of the contract (shared/spec/environment.md §3 cgroups, §4
//! conditional host paths, §5 LXCFS, §8 devices allow-list; issue 4), for real, as root,
//! from INSIDE the container, on this hybrid cgroup host (v1 controllers + cgroup2 at
//! /sys/fs/cgroup/unified). The pure-cgroup2 writer is covered by tests/cgroup_recording.rs.
//!
//! The host's own mounts are never touched: whatever a test mounts (binfmt_misc, debugfs,
//! securityfs, pstore, fusectl, tracefs, LXCFS, a tmpfs over /run) lives in a private
//! mount namespace the test makes ([`PrivateNs`]: a holder process that unshared its mount
//! namespace and made `/` private); envc, `mount` and lxcfs run in it via `setns`. The
//! namespace ends with its holder.
//!
//! Every test holds `common::serial()`, captures [`HostState`] first and checks the host is
//! as it was afterwards, bounds every wait, and kills what it started in `Drop` guards.
//! Container names start with `hd-`.
//!
//! LXCFS: the Debian package `lxcfs` must be installed (scripts/test.sh and .ci/run
//! install it); without it the LXCFS test fails under ENVC_REQUIRE_ROOT=1 and is skipped
//! loudly otherwise.

mod common;

use common::proc::{Out, Proc};
use common::{HostState, Mount, TempDir, busybox_rootfs};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The longest one container run may take before the test kills it.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the host may take to settle after envc exits.
const SETTLE: Duration = Duration::from_secs(3);
/// A helper command (mount, umount) in the private namespace.
const HELPER_TIMEOUT: Duration = Duration::from_secs(10);
/// LXCFS must be serving its files within this.
const LXCFS_START: Duration = Duration::from_secs(10);
const LXCFS_BIN: &str = "/usr/bin/lxcfs";

/// The eight conditional host paths of spec §4.
const CONDITIONAL: &[&str] = &[
    "/proc/sys/fs/binfmt_misc",
    "/sys/firmware/efi/efivars",
    "/sys/fs/fuse/connections",
    "/sys/fs/pstore",
    "/sys/kernel/debug",
    "/sys/kernel/security",
    "/sys/kernel/config",
    "/sys/kernel/tracing",
];

/// What the test mounts for the "mounted" case: fs type, mount point, options. The
/// options differ on purpose, so "the host's nosuid/nodev/noexec are kept" means
/// something. All five work on these machines; tracefs and configfs are tried.
const MOUNTED: &[(&str, &str, &str)] = &[
    ("binfmt_misc", "/proc/sys/fs/binfmt_misc", "noexec"),
    ("debugfs", "/sys/kernel/debug", "nosuid,nodev,noexec"),
    ("securityfs", "/sys/kernel/security", "nosuid,nodev,noexec"),
    ("pstore", "/sys/fs/pstore", "nosuid,nodev"),
    ("fusectl", "/sys/fs/fuse/connections", "nosuid"),
];
const MOUNTED_IF_POSSIBLE: &[(&str, &str, &str)] = &[
    ("tracefs", "/sys/kernel/tracing", "nosuid,nodev,noexec"),
    ("configfs", "/sys/kernel/config", "nosuid,nodev,noexec"),
];

// ------------------------------------------------------------------ processes

/// A child whose stdout/stderr are collected by threads (the shared test process).
/// Dropping it kills it (SIGKILL) and reaps it; envc's container dies with envc
/// (PR_SET_PDEATHSIG).
struct Running {
    what: String,
    proc: Proc,
}

/// A finished process.
#[derive(Debug)]
struct Finished {
    what: String,
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
    fn describe(&self) -> String {
        format!(
            "--- {}: {:?}\n--- stderr:\n{}\n--- stdout (tail):\n{}",
            self.what,
            self.status,
            common::tail(&self.stderr, 6000),
            common::tail(&self.stdout, 4000)
        )
    }
    /// Asserts exit status 0.
    fn ok(self) -> Finished {
        assert_eq!(self.code(), Some(0), "{}", self.describe());
        self
    }
    /// The console's `HD key=value` lines (the shell inits below print them).
    fn values(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for line in self.stdout.lines() {
            let line = line.trim_end_matches('\r');
            if let Some((k, v)) = line.strip_prefix("HD ").and_then(|r| r.split_once('=')) {
                m.insert(k.to_string(), v.to_string());
            }
        }
        m
    }
    fn value(&self, key: &str) -> String {
        self.values()
            .remove(key)
            .unwrap_or_else(|| panic!("the container printed no `HD {key}=`\n{}", self.describe()))
    }
}

impl Finished {
    fn of(what: &str, o: Out) -> Finished {
        Finished {
            what: what.to_string(),
            status: o.status,
            stdout: o.stdout,
            stderr: o.stderr,
        }
    }
}

impl Running {
    fn spawn(cmd: Command) -> Running {
        let what = format!("{cmd:?}");
        Running {
            what,
            proc: Proc::spawn(cmd),
        }
    }

    fn pid(&self) -> i32 {
        self.proc.pid()
    }

    fn exited(&mut self) -> bool {
        self.proc.exited()
    }

    /// Waits until stdout contains `needle`; panics (killing the process) after `timeout`.
    fn wait_for_output(&mut self, needle: &str, timeout: Duration) {
        self.proc.wait_stdout(needle, 1, timeout);
    }

    fn signal(&self, sig: i32) {
        self.proc.signal(sig);
    }

    /// Waits for the exit; kills and panics after `timeout`.
    fn wait(self, timeout: Duration) -> Finished {
        Finished::of(&self.what, self.proc.wait(timeout))
    }

    /// Kills it now (if it still runs) and reaps it.
    fn kill(&mut self) -> Finished {
        Finished::of(&self.what, self.proc.finish(Duration::ZERO))
    }
}

/// Sets PR_SET_PDEATHSIG = SIGKILL in the child, so nothing outlives a killed test.
fn die_with_test(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

// ------------------------------------------------------------------ a private mount namespace

/// A mount namespace of the test's own: a `sleep` that unshared its mount namespace and
/// made every mount in it private holds it; commands join it with `setns`. Nothing
/// mounted in it reaches the host, and it ends with the holder (killed on drop).
struct PrivateNs {
    holder: Child,
    ns: File,
}

impl PrivateNs {
    fn new() -> PrivateNs {
        let mut cmd = Command::new("sleep");
        cmd.arg("600").stdin(Stdio::null()).stdout(Stdio::null());
        die_with_test(&mut cmd);
        // SAFETY: unshare and mount are async-signal-safe; the strings are static.
        unsafe {
            cmd.pre_exec(|| {
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let flags = libc::MS_REC | libc::MS_PRIVATE;
                if libc::mount(
                    c"none".as_ptr(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    flags,
                    std::ptr::null(),
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let holder = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the namespace holder: {e}"));
        let ns_path = format!("/proc/{}/ns/mnt", holder.id());
        let ns = File::open(&ns_path).unwrap_or_else(|e| panic!("open {ns_path}: {e}"));
        let me = std::fs::read_link("/proc/self/ns/mnt").unwrap();
        assert_ne!(
            std::fs::read_link(&ns_path).unwrap(),
            me,
            "the holder is in the host's mount namespace"
        );
        PrivateNs { holder, ns }
    }

    fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// `program` to be run inside this namespace (and killed with the test).
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        die_with_test(&mut cmd);
        let fd = self.ns.as_raw_fd();
        // SAFETY: setns is async-signal-safe; the fd stays open until the exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNS) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Runs a shell script in the namespace; panics if it fails.
    fn sh(&self, script: &str) -> Finished {
        let mut cmd = self.command("/bin/sh");
        cmd.args(["-ec", script]);
        Running::spawn(cmd).wait(HELPER_TIMEOUT).ok()
    }

    /// Tries a shell script in the namespace; its result.
    fn try_sh(&self, script: &str) -> Finished {
        let mut cmd = self.command("/bin/sh");
        cmd.args(["-ec", script]);
        Running::spawn(cmd).wait(HELPER_TIMEOUT)
    }

    /// Runs a shell script in the namespace for cleanup: never panics, bounded.
    fn sh_quietly(&self, script: &str) {
        let mut cmd = self.command("/bin/sh");
        cmd.args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let Ok(mut child) = cmd.spawn() else { return };
        let start = Instant::now();
        while child.try_wait().ok().flatten().is_none() {
            if start.elapsed() > HELPER_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The namespace's mounts.
    fn mounts(&self) -> Vec<Mount> {
        let p = format!("/proc/{}/mountinfo", self.pid());
        common::parse_mountinfo(
            &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {p}: {e}")),
        )
    }

    /// A path as seen in the namespace (through the holder's root).
    fn path(&self, p: &Path) -> PathBuf {
        let rel = p.strip_prefix("/").unwrap_or(p);
        Path::new(&format!("/proc/{}/root", self.pid())).join(rel)
    }

    /// Mounts a filesystem in the namespace; false (and why, on stderr) if it fails.
    fn try_mount(&self, fstype: &str, at: &str, options: &str) -> bool {
        let f = self.try_sh(&format!("mount -t {fstype} -o {options} {fstype} {at}"));
        if f.code() != Some(0) {
            eprintln!("(mount {fstype} at {at} failed: {})", f.stderr.trim());
        }
        f.code() == Some(0)
    }
}

impl Drop for PrivateNs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// The expected report state of a conditional path in a namespace with `mounts`.
fn expected_state(path: &str, mounts: &[Mount]) -> &'static str {
    if mounts.iter().any(|m| m.mount_point == path) {
        "mounted"
    } else if Path::new(path).exists() {
        "present, not mounted"
    } else {
        "absent"
    }
}

// ------------------------------------------------------------------ LXCFS

/// LXCFS running in a private namespace at `dir`. Dropping it unmounts it and kills it.
struct Lxcfs<'ns> {
    ns: &'ns PrivateNs,
    dir: PathBuf,
    process: Option<Running>,
}

impl<'ns> Lxcfs<'ns> {
    fn start(ns: &'ns PrivateNs, dir: &Path, pidfile: &Path) -> Lxcfs<'ns> {
        std::fs::create_dir_all(dir).unwrap();
        let mut cmd = ns.command(LXCFS_BIN);
        cmd.arg("-f").arg("-p").arg(pidfile).arg(dir);
        let mut lx = Lxcfs {
            ns,
            dir: dir.to_path_buf(),
            process: Some(Running::spawn(cmd)),
        };
        let ready = ns.path(&dir.join("proc/meminfo"));
        let start = Instant::now();
        while !ready.exists() {
            let p = lx.process.as_mut().unwrap();
            if p.exited() {
                let f = p.kill();
                panic!(
                    "lxcfs exited before serving {}\n{}",
                    dir.display(),
                    f.describe()
                );
            }
            if start.elapsed() > LXCFS_START {
                let f = p.kill();
                panic!(
                    "lxcfs did not serve {} within {LXCFS_START:?}\n{}",
                    ready.display(),
                    f.describe()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        lx
    }

    fn pid(&self) -> i32 {
        self.process.as_ref().unwrap().pid()
    }

    /// Names in a directory of the LXCFS mount.
    fn list(&self, rel: &str) -> Vec<String> {
        let d = self.ns.path(&self.dir.join(rel));
        let mut v: Vec<String> = std::fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("list {}: {e}", d.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Unmounts and stops it (bounded), then asserts it is gone: its process, and its
    /// mount in the namespace.
    fn stop(mut self) {
        let pid = self.pid();
        let f = self.ns.try_sh(&format!("umount {}", self.dir.display()));
        assert_eq!(f.code(), Some(0), "umount lxcfs: {}", f.describe());
        let mut p = self.process.take().unwrap();
        // Unmounted, lxcfs ends its FUSE loop and exits; SIGTERM if it does not.
        let start = Instant::now();
        while !p.exited() && start.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !p.exited() {
            p.signal(libc::SIGTERM);
        }
        let f = p.wait(Duration::from_secs(5));
        assert!(f.status.is_some(), "lxcfs not reaped: {}", f.describe());
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "lxcfs (pid {pid}) still exists"
        );
        let left: Vec<String> = self
            .ns
            .mounts()
            .iter()
            .filter(|m| m.fs_type.contains("lxcfs") || Path::new(&m.mount_point) == self.dir)
            .map(|m| format!("{} {}", m.mount_point, m.fs_type))
            .collect();
        assert!(left.is_empty(), "LXCFS mounts left: {left:?}");
    }
}

impl Drop for Lxcfs<'_> {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            // Killed first, so the (then dead) FUSE mount cannot hang the unmount.
            p.kill();
            self.ns
                .sh_quietly(&format!("umount -l {}", self.dir.display()));
        }
    }
}

/// Pids of processes named lxcfs.
fn lxcfs_processes() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(comm) = std::fs::read_to_string(e.path().join("comm"))
            && comm.trim() == "lxcfs"
        {
            found.insert(name);
        }
    }
    found
}

/// Whether LXCFS is installed; if not, fails under ENVC_REQUIRE_ROOT=1, else skips loudly.
fn require_lxcfs(test: &str) -> bool {
    if Path::new(LXCFS_BIN).exists() {
        return true;
    }
    if std::env::var("ENVC_REQUIRE_ROOT").as_deref() == Ok("1") {
        panic!(
            "{test}: {LXCFS_BIN} is missing (apt-get install lxcfs; scripts/test.sh and \
             .ci/run must install it), and ENVC_REQUIRE_ROOT=1 forbids skipping"
        );
    }
    eprintln!(
        "\n**************** SKIPPED (needs lxcfs: apt-get install lxcfs): {test} ****************\n"
    );
    false
}

// ------------------------------------------------------------------ a test's world

/// A scratch directory with a busybox rootfs (init = the probe), run/log dirs for envc,
/// and profiles written next to the rootfs.
struct World {
    dir: TempDir,
}

impl World {
    fn new(test: &str) -> World {
        let dir = TempDir::new(test);
        busybox_rootfs(dir.path());
        World { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `NAME.toml` (name, `rootfs = "rootfs"`, `body`).
    fn profile(&self, name: &str, body: &str) -> PathBuf {
        assert!(name.starts_with("hd-"));
        let p = self.path(&format!("{name}.toml"));
        std::fs::write(
            &p,
            format!(
                "name = \"{name}\"\nrootfs = \"rootfs\"\nprofiles = [\"privileged.toml\"]\n{body}\n"
            ),
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        // These rows are the privileged ones (device allow-list, host paths
        // shared as they are): a layer that sets the mode.
        std::fs::write(
            self.path("privileged.toml"),
            "[config]\n\"security.privileged\" = true\n",
        )
        .unwrap();
        p
    }

    fn report_path(&self, profile: &Path) -> PathBuf {
        profile.with_extension("report.json")
    }

    /// `envc apply PROFILE --report R`, in `ns` if given.
    fn apply_cmd(&self, profile: &Path, ns: Option<&PrivateNs>) -> Command {
        let mut cmd = match ns {
            Some(ns) => ns.command(common::envc_bin()),
            None => {
                let mut c = Command::new(common::envc_bin());
                die_with_test(&mut c);
                c
            }
        };
        cmd.arg("apply")
            .arg(profile)
            .arg("--report")
            .arg(self.report_path(profile))
            .env("ENVC_RUN_DIR", self.path("run"))
            .env("ENVC_LOG_DIR", self.path("log"));
        cmd
    }

    fn apply(&self, profile: &Path, ns: Option<&PrivateNs>) -> Finished {
        Running::spawn(self.apply_cmd(profile, ns)).wait(RUN_TIMEOUT)
    }

    fn report(&self, profile: &Path) -> Value {
        let p = self.report_path(profile);
        let text = std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("no report at {}: {e}", p.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("report is not JSON: {e}\n{text}"))
    }
}

/// Runs `f` between two host-state captures and asserts the host is as it was.
fn host_unchanged<T>(f: impl FnOnce() -> T) -> T {
    let before = HostState::capture();
    let r = f();
    before.assert_restored_within(SETTLE);
    r
}

// ------------------------------------------------------------------ reading results

fn mounts_of(probe: &Value) -> Vec<Mount> {
    probe["mountinfo"]
        .as_array()
        .unwrap_or_else(|| panic!("probe has no mountinfo: {probe:#}"))
        .iter()
        .map(|l| {
            let l = l.as_str().unwrap();
            common::parse_mountinfo_line(l).unwrap_or_else(|| panic!("bad mountinfo line {l:?}"))
        })
        .collect()
}

fn mounts_in_text(text: &str) -> Vec<Mount> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter_map(|l| l.strip_prefix("HDM "))
        .map(|l| common::parse_mountinfo_line(l).unwrap_or_else(|| panic!("bad line {l:?}")))
        .collect()
}

fn describe_mounts(mounts: &[Mount]) -> String {
    mounts
        .iter()
        .map(|m| {
            format!(
                "{} root={} {} {}",
                m.mount_point, m.root, m.fs_type, m.mount_options
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The topmost mount at `point`.
fn mount_at<'a>(mounts: &'a [Mount], point: &str) -> Option<&'a Mount> {
    mounts.iter().rev().find(|m| m.mount_point == point)
}

fn must_mount<'a>(mounts: &'a [Mount], point: &str) -> &'a Mount {
    mount_at(mounts, point).unwrap_or_else(|| {
        panic!(
            "no mount at {point} inside; mounts:\n{}",
            describe_mounts(mounts)
        )
    })
}

fn conditional_states(report: &Value) -> BTreeMap<String, String> {
    report["host"]["conditional_paths"]
        .as_array()
        .unwrap_or_else(|| panic!("report has no host.conditional_paths:\n{report:#}"))
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The report says a clean run: outcome exit `exit`, no step failed, nothing left.
fn assert_report_clean(report: &Value, exit: u64) {
    assert_eq!(
        report["outcome"]["exit_code"].as_u64(),
        Some(exit),
        "{report:#}"
    );
    for s in report["steps"].as_array().unwrap() {
        assert!(
            !matches!(s["status"].as_str(), Some("failed" | "not_run" | "not_yet")),
            "step {s} in a clean run"
        );
    }
    assert!(report.get("teardown_left").is_none(), "{report:#}");
}

/// The host's cgroup hierarchies (mounts of cgroup/cgroup2 at their root).
fn cgroup_mounts() -> Vec<Mount> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    common::parse_mountinfo(&text)
        .into_iter()
        .filter(|m| (m.fs_type == "cgroup" || m.fs_type == "cgroup2") && m.root == "/")
        .collect()
}

/// [`cgroup_mounts`], on the hybrid host this suite is for.
fn host_hierarchies() -> Vec<Mount> {
    let v = cgroup_mounts();
    assert!(
        v.iter().any(|m| m.fs_type == "cgroup"),
        "this suite expects a hybrid cgroup host (v1 controllers + cgroup2)"
    );
    v
}

fn host_cpus() -> Vec<u32> {
    let s = std::fs::read_to_string("/sys/fs/cgroup/cpuset/cpuset.cpus")
        .expect("the host's v1 cpuset root");
    envc::exec::cgroup::parse_cpu_list(&s)
}

// ------------------------------------------------------------------ §4 conditional host paths

#[test]
fn conditional_paths_mounted_in_the_hosts_namespace_are_bound_read_only() {
    if !common::require_root("conditional_paths_mounted_in_the_hosts_namespace_are_bound_read_only")
    {
        return;
    }
    let _serial = common::serial();
    let w = World::new("hd-paths-mounted");
    let profile = w.profile("hd-paths", "");
    let (ns_mounts, f, report) = host_unchanged(|| {
        let ns = PrivateNs::new();
        for (fstype, at, opts) in MOUNTED {
            assert!(
                ns.try_mount(fstype, at, opts),
                "mounting {fstype} at {at} failed (works on these machines)"
            );
        }
        for (fstype, at, opts) in MOUNTED_IF_POSSIBLE {
            ns.try_mount(fstype, at, opts);
        }
        // debugfs auto-mounts tracefs at tracing/ when it is first looked at: a
        // submount, which must come out read-only too.
        let _ = ns.try_sh("ls /sys/kernel/debug/tracing >/dev/null");
        let ns_mounts = ns.mounts();
        let f = w.apply(&profile, Some(&ns));
        (ns_mounts, f, w.report(&profile))
    });
    let f = f.ok();
    let probe = common::extract_probe_json(&f.stdout);
    let inside = mounts_of(&probe);
    assert_report_clean(&report, 0);
    let states = conditional_states(&report);

    for path in CONDITIONAL {
        let want = expected_state(path, &ns_mounts);
        assert_eq!(
            states.get(*path).map(String::as_str),
            Some(want),
            "report for {path}: {states:#?}"
        );
    }
    let mut checked = Vec::new();
    for host in ns_mounts
        .iter()
        .filter(|m| CONDITIONAL.iter().any(|p| m.mount_point.starts_with(p)))
    {
        let m = must_mount(&inside, &host.mount_point);
        assert_eq!(m.fs_type, host.fs_type, "{}", host.mount_point);
        assert!(
            m.is_read_only(),
            "{} is not read-only inside: {}",
            m.mount_point,
            m.mount_options
        );
        for flag in ["nosuid", "nodev", "noexec"] {
            if host.has_option(flag) {
                assert!(
                    m.has_option(flag),
                    "{}: the host's {flag} was dropped ({} inside, {} on the host)",
                    m.mount_point,
                    m.mount_options,
                    host.mount_options
                );
            }
        }
        checked.push(host.mount_point.clone());
    }
    for (_, at, _) in MOUNTED {
        assert_eq!(states[*at], "mounted");
        assert!(checked.iter().any(|c| c == at));
    }
    eprintln!("checked read-only inside: {checked:?}");
    // The recursion: a submount (tracefs under debugfs) comes out read-only as well.
    if ns_mounts
        .iter()
        .any(|m| m.mount_point == "/sys/kernel/debug/tracing")
    {
        assert!(checked.iter().any(|c| c == "/sys/kernel/debug/tracing"));
    } else {
        eprintln!("(no tracefs auto-mounted under debugfs here: submount not checked)");
    }
    // The text summary says the same.
    assert!(
        f.stderr.lines().any(|l| l.contains("/sys/kernel/debug")
            && l.trim_end().ends_with("mounted")
            && !l.contains("not mounted")),
        "{}",
        f.describe()
    );
}

#[test]
fn conditional_paths_not_mounted_are_reported_and_not_bound() {
    if !common::require_root("conditional_paths_not_mounted_are_reported_and_not_bound") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("hd-paths-absent");
    let profile = w.profile("hd-nopaths", "");
    let (ns_mounts, f, report) = host_unchanged(|| {
        let ns = PrivateNs::new();
        // This host's defaults: none of them mounted. Make sure of it in our namespace.
        for path in CONDITIONAL {
            if ns.mounts().iter().any(|m| m.mount_point == *path) {
                ns.sh(&format!("umount -R {path}"));
            }
        }
        let ns_mounts = ns.mounts();
        let f = w.apply(&profile, Some(&ns));
        (ns_mounts, f, w.report(&profile))
    });
    let f = f.ok();
    let inside = mounts_of(&common::extract_probe_json(&f.stdout));
    assert_report_clean(&report, 0);
    let states = conditional_states(&report);
    assert_eq!(states.len(), CONDITIONAL.len(), "{states:#?}");
    for path in CONDITIONAL {
        let want = expected_state(path, &ns_mounts);
        assert_ne!(want, "mounted");
        assert_eq!(
            states.get(*path).map(String::as_str),
            Some(want),
            "{states:#?}"
        );
        assert!(
            !inside
                .iter()
                .any(|m| m.mount_point == *path || m.mount_point.starts_with(&format!("{path}/"))),
            "{path} is mounted inside though the host has nothing there:\n{}",
            describe_mounts(&inside)
        );
    }
    // On these machines: the documented "present, not mounted" and "absent" (non-EFI).
    assert_eq!(states["/sys/firmware/efi/efivars"], "absent");
    assert_eq!(states["/sys/kernel/debug"], "present, not mounted");
    for path in CONDITIONAL {
        assert!(
            f.stderr.lines().any(|l| l.contains(path)),
            "the summary has no line for {path}: {}",
            f.describe()
        );
    }
}

#[test]
fn a_profile_can_make_a_conditional_path_writable() {
    if !common::require_root("a_profile_can_make_a_conditional_path_writable") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("hd-paths-rw");
    let profile = w.profile(
        "hd-rw",
        r#"
[devices.debugfs]
type = "disk"
source = "/sys/kernel/debug"
path = "/sys/kernel/debug"
only_if_mounted = true
required = false
recursive = true
readonly = false
"#,
    );
    let (ns_mounts, f, report) = host_unchanged(|| {
        let ns = PrivateNs::new();
        assert!(ns.try_mount("debugfs", "/sys/kernel/debug", "nosuid,nodev,noexec"));
        assert!(ns.try_mount("securityfs", "/sys/kernel/security", "nosuid,nodev,noexec"));
        let _ = ns.try_sh("ls /sys/kernel/debug/tracing >/dev/null");
        let ns_mounts = ns.mounts();
        let f = w.apply(&profile, Some(&ns));
        (ns_mounts, f, w.report(&profile))
    });
    let f = f.ok();
    let inside = mounts_of(&common::extract_probe_json(&f.stdout));
    assert_report_clean(&report, 0);
    let states = conditional_states(&report);
    assert_eq!(states["/sys/kernel/debug"], "mounted");
    assert_eq!(states["/sys/kernel/security"], "mounted");
    let debug = must_mount(&inside, "/sys/kernel/debug");
    assert_eq!(debug.fs_type, "debugfs");
    assert!(
        !debug.is_read_only(),
        "made writable, yet read-only: {}",
        debug.mount_options
    );
    for flag in ["nosuid", "nodev", "noexec"] {
        assert!(
            debug.has_option(flag),
            "{flag} dropped: {}",
            debug.mount_options
        );
    }
    if ns_mounts
        .iter()
        .any(|m| m.mount_point == "/sys/kernel/debug/tracing")
    {
        let t = must_mount(&inside, "/sys/kernel/debug/tracing");
        assert!(!t.is_read_only(), "submount: {}", t.mount_options);
    }
    // The others keep the default.
    let sec = must_mount(&inside, "/sys/kernel/security");
    assert!(sec.is_read_only(), "{}", sec.mount_options);
}

// ------------------------------------------------------------------ §3 cgroups

#[test]
fn the_container_sees_only_its_own_cgroup_and_the_host_sees_it_while_it_runs() {
    if !common::require_root(
        "the_container_sees_only_its_own_cgroup_and_the_host_sees_it_while_it_runs",
    ) {
        return;
    }
    let _serial = common::serial();
    let w = World::new("hd-cgroup-inside");
    let name = "hd-cg";
    let profile = w.profile(
        name,
        "[init]\ncommand = [\"/sbin/probe\", \"--sleep\"]\n\
         [config]\n\"environment.PROBE_CATCH_SIGNALS\" = \"30\"",
    );
    let hierarchies = host_hierarchies();
    let (f, while_running) = host_unchanged(|| {
        let mut envc = Running::spawn(w.apply_cmd(&profile, None));
        envc.wait_for_output(common::PROBE_END, RUN_TIMEOUT);
        // From the host: envc/NAME in every hierarchy, holding PID 1 and only it.
        let mut pids = BTreeSet::new();
        let mut seen = Vec::new();
        for h in &hierarchies {
            let cg = Path::new(&h.mount_point).join("envc").join(name);
            let procs = std::fs::read_to_string(cg.join("cgroup.procs"))
                .unwrap_or_else(|e| panic!("{}: {e}", cg.display()));
            let procs: Vec<&str> = procs.split_whitespace().collect();
            assert_eq!(procs.len(), 1, "{}: {procs:?}", cg.display());
            pids.insert(procs[0].to_string());
            seen.push(cg);
        }
        assert_eq!(pids.len(), 1, "not the same process everywhere: {pids:?}");
        let pid = pids.into_iter().next().unwrap();
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        assert_eq!(comm.trim(), "probe");
        let host_view = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        for line in host_view.lines() {
            assert!(
                line.ends_with(&format!(":/envc/{name}")),
                "the host sees PID 1 in {line}"
            );
        }
        envc.signal(libc::SIGTERM);
        let f = envc.wait(RUN_TIMEOUT);
        (f, seen)
    });
    // After the stop: gone from every hierarchy (HostState checked envc* too).
    for cg in &while_running {
        assert!(!cg.exists(), "{} left after the stop", cg.display());
    }
    let f = f.ok();
    let probe = common::extract_probe_json(&f.stdout);

    // /proc/self/cgroup: "/" in every hierarchy, as many lines as the host has.
    let cgroup: Vec<&str> = probe["cgroup"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let host_lines = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .count();
    assert_eq!(cgroup.len(), host_lines, "{cgroup:?}");
    for l in &cgroup {
        assert!(l.ends_with(":/"), "inside, /proc/self/cgroup says {l}");
    }

    // /sys/fs/cgroup: a read-only tmpfs with every hierarchy, each rooted at the
    // container's own cgroup.
    let inside = mounts_of(&probe);
    let top = must_mount(&inside, "/sys/fs/cgroup");
    assert_eq!(top.fs_type, "tmpfs");
    assert!(top.is_read_only(), "{}", top.mount_options);
    for flag in ["nosuid", "nodev", "noexec"] {
        assert!(top.has_option(flag), "{}", top.mount_options);
    }
    for h in &hierarchies {
        let m = must_mount(&inside, &h.mount_point);
        assert_eq!(m.fs_type, h.fs_type, "{}", h.mount_point);
        assert_eq!(
            m.root, "/",
            "{} inside is not the container's own",
            h.mount_point
        );
        // Its own cgroup: writable (a systemd guest makes its tree there), and secure.
        assert!(!m.is_read_only(), "{}: {}", h.mount_point, m.mount_options);
        for flag in ["nosuid", "nodev", "noexec"] {
            assert!(m.has_option(flag), "{}: {}", h.mount_point, m.mount_options);
        }
        if h.fs_type == "cgroup" {
            for opt in h.super_options.split(',').filter(|o| *o != "rw") {
                assert!(
                    m.has_super_option(opt),
                    "{}: {opt} missing inside ({})",
                    h.mount_point,
                    m.super_options
                );
            }
        }
    }
    let unified = must_mount(&inside, "/sys/fs/cgroup/unified");
    assert_eq!(unified.fs_type, "cgroup2");

    let report = w.report(&profile);
    assert_report_clean(&report, 0);
    let cg = report["host"]["cgroup"].as_str().unwrap();
    assert!(cg.starts_with("hybrid"), "{cg}");
    assert!(cg.contains("devices: deny all"), "{cg}");
    let step = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["op"] == "UnshareCgroupNamespace")
        .expect("an UnshareCgroupNamespace step");
    assert_eq!(step["status"], "done", "{step}");
}

#[test]
fn limits_are_written_in_v1_names_and_read_inside() {
    if !common::require_root("limits_are_written_in_v1_names_and_read_inside") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("hd-limits");
    let profile = w.profile(
        "hd-limits",
        r#"
[config]
"limits.memory" = "256MiB"
"limits.cpu" = "1"
"limits.cpu.allowance" = "25ms/100ms"
"limits.processes" = "10"
[init]
command = ["/bin/sh", "-c", '''
c=/sys/fs/cgroup
echo "HD mem=$(cat $c/memory/memory.limit_in_bytes)"
echo "HD cpus=$(cat $c/cpuset/cpuset.cpus)"
echo "HD quota=$(cat $c/cpu/cpu.cfs_quota_us)"
echo "HD period=$(cat $c/cpu/cpu.cfs_period_us)"
echo "HD pids=$(cat $c/pids/pids.max)"
echo "HD procs=$(cat $c/pids/cgroup.procs | busybox tr '\n' ' ')"
echo "HD done=1"
''']
"#,
    );
    let f = host_unchanged(|| w.apply(&profile, None)).ok();
    assert_eq!(f.value("mem"), "268435456", "{}", f.describe());
    let cpus = envc::exec::cgroup::parse_cpu_list(&f.value("cpus"));
    assert_eq!(cpus.len(), 1, "limits.cpu = 1 gave {cpus:?}");
    assert_eq!(
        cpus[0],
        host_cpus()[0],
        "a count takes the parent's first CPUs"
    );
    assert_eq!(f.value("quota"), "25000");
    assert_eq!(f.value("period"), "100000");
    // pids.max exists only below the root: the mount's root is the container's cgroup.
    assert_eq!(f.value("pids"), "10");
    // PID 1 (and the helpers of the line that printed this) in its own cgroup's root.
    let procs = f.value("procs");
    assert!(
        procs.split_whitespace().any(|p| p == "1"),
        "PID 1 is not in the cgroup mounted at /sys/fs/cgroup/pids: {procs}"
    );
    let report = w.report(&profile);
    assert_report_clean(&report, 0);
    let cg = report["host"]["cgroup"].as_str().unwrap();
    for want in [
        "memory.limit_in_bytes=268435456",
        "cpu.cfs_quota_us=25000",
        "cpu.cfs_period_us=100000",
        "pids.max=10",
    ] {
        assert!(cg.contains(want), "{want} not in {cg}");
    }
}

#[test]
fn a_fork_loop_stops_at_limits_processes() {
    if !common::require_root("a_fork_loop_stops_at_limits_processes") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("hd-pids");
    // A child shell forks sleepers, counting each success in a file; its fork fails at
    // the limit (busybox sh then exits). PID 1 reads the count and exits cleanly; the
    // sleepers die with the PID namespace.
    let profile = w.profile(
        "hd-pids",
        r#"
[config]
"limits.processes" = "10"
[init]
command = ["/bin/sh", "-c", '''
busybox sh -c 'n=0; while [ $n -lt 30 ]; do busybox sleep 30 & n=$((n+1)); echo $n > /tmp/forks; done' 2>/dev/null
echo "HD child=$?"
echo "HD forks=$(cat /tmp/forks)"
echo "HD events=$(cat /sys/fs/cgroup/pids/pids.events)"
echo "HD done=1"
''']
"#,
    );
    let start = Instant::now();
    let f = host_unchanged(|| w.apply(&profile, None)).ok();
    let forks: u32 = f.value("forks").parse().unwrap();
    eprintln!(
        "{forks} forks succeeded under limits.processes = 10 ({:?})",
        start.elapsed()
    );
    assert!(
        (1..10).contains(&forks),
        "{forks} forks under a limit of 10 (PID 1 and the shell count too)"
    );
    assert_ne!(f.value("child"), "0", "the fork loop never hit the limit");
    let refused: u64 = f
        .value("events")
        .strip_prefix("max ")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("pids.events: {}", f.value("events")));
    assert!(refused >= 1, "pids.events counted no refused fork");
    assert_eq!(f.value("done"), "1");
    assert_report_clean(&w.report(&profile), 0);
}

#[test]
fn a_process_allocating_past_limits_memory_is_killed() {
    if !common::require_root("a_process_allocating_past_limits_memory_is_killed") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("hd-oom");
    // tail keeps everything after the last newline: /dev/zero has none, so it holds all
    // 300 MiB. (memsw set too, in case the host has swap.)
    let profile = w.profile(
        "hd-oom",
        r#"
[config]
"limits.memory" = "64MiB"
[init]
command = ["/bin/sh", "-c", '''
m=/sys/fs/cgroup/memory
echo 67108864 > $m/memory.memsw.limit_in_bytes 2>/dev/null
busybox head -c 314572800 /dev/zero | busybox tail > /dev/null
echo "HD rc=$?"
echo "HD oom_kill=$(grep oom_kill $m/memory.oom_control | grep -v disable | busybox cut -d' ' -f2)"
echo "HD max_usage=$(cat $m/memory.max_usage_in_bytes)"
echo "HD done=1"
''']
"#,
    );
    let f = host_unchanged(|| w.apply(&profile, None)).ok();
    assert_eq!(
        f.value("rc"),
        "137",
        "tail was not killed (SIGKILL) past 64MiB\n{}",
        f.describe()
    );
    let kills: u64 = f.value("oom_kill").parse().unwrap();
    assert!(kills >= 1, "no OOM kill counted");
    let max: u64 = f.value("max_usage").parse().unwrap();
    assert!(max <= 64 << 20, "used {max} bytes");
    assert_eq!(f.value("done"), "1", "PID 1 itself must survive");
    assert_report_clean(&w.report(&profile), 0);
}

#[test]
fn an_init_allocating_past_limits_memory_is_killed_and_envc_tears_down() {
    if !common::require_root("an_init_allocating_past_limits_memory_is_killed_and_envc_tears_down")
    {
        return;
    }
    let _serial = common::serial();
    let w = World::new("hd-oom-init");
    // PID 1 itself grows past the limit (tail buffers /dev/zero, which has no newline).
    let profile = w.profile(
        "hd-oom-init",
        r#"
[config]
"limits.memory" = "64MiB"
[init]
command = ["/bin/sh", "-c", "echo 67108864 > /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes 2>/dev/null; exec busybox tail < /dev/zero"]
"#,
    );
    let f = host_unchanged(|| w.apply(&profile, None));
    assert_eq!(
        f.code(),
        Some(137),
        "PID 1 must die of SIGKILL\n{}",
        f.describe()
    );
    let report = w.report(&profile);
    assert_eq!(report["outcome"]["exit_code"], 137, "{report:#}");
    assert!(report.get("teardown_left").is_none(), "{report:#}");
}

#[test]
fn more_cpus_than_the_host_has_fail_clearly_and_leave_nothing() {
    if !common::require_root("more_cpus_than_the_host_has_fail_clearly_and_leave_nothing") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("hd-cpus");
    let n = host_cpus().len() + 1;
    let profile = w.profile("hd-cpus", &format!("[config]\n\"limits.cpu\" = \"{n}\"\n"));
    let f = host_unchanged(|| w.apply(&profile, None));
    assert_eq!(f.code(), Some(125), "{}", f.describe());
    assert!(
        f.stderr.contains(&format!("limits.cpu asks for {n} CPUs")),
        "unclear: {}",
        f.describe()
    );
    assert!(!f.stdout.contains(common::PROBE_BEGIN), "init ran");
    let report = w.report(&profile);
    let steps = report["steps"].as_array().unwrap();
    let i = steps
        .iter()
        .position(|s| s["op"] == "CreateCgroup")
        .unwrap();
    assert_eq!(steps[i]["status"], "failed", "{}", steps[i]);
    assert_eq!(steps[i]["fatal"], true);
    assert!(steps[i + 1..].iter().all(|s| s["status"] == "not_run"));
    assert!(report.get("teardown_left").is_none(), "{report:#}");
}

/// On drop, removes the cgroup `.0` (and its children `.1` first) in every hierarchy,
/// where it exists; rmdir only removes empty cgroups. So a failing test leaves nothing
/// to other suites.
struct CgroupCleanup(&'static str, &'static [&'static str]);

impl Drop for CgroupCleanup {
    fn drop(&mut self) {
        for h in cgroup_mounts() {
            let parent = Path::new(&h.mount_point).join(self.0);
            for c in self.1 {
                let _ = std::fs::remove_dir(parent.join(c));
            }
            let _ = std::fs::remove_dir(&parent);
        }
    }
}

/// A cgroup parent is shared: start A, then B (B finds the parent there), stop A (the
/// parent is busy: kept), stop B (the last one out removes it): nothing is left.
#[test]
fn a_shared_cgroup_parent_is_removed_by_the_last_container_out() {
    if !common::require_root("a_shared_cgroup_parent_is_removed_by_the_last_container_out") {
        return;
    }
    let _serial = common::serial();
    const PARENT: &str = "envc-hd-shared";
    let _cleanup = CgroupCleanup(PARENT, &["hd-first", "hd-second"]);
    let w = World::new("hd-shared-parent");
    let body = format!(
        "[cgroup]\nparent = \"{PARENT}\"\n[init]\ncommand = [\"/sbin/probe\", \"--sleep\"]\n\
         [config]\n\"environment.PROBE_CATCH_SIGNALS\" = \"30\""
    );
    let first = w.profile("hd-first", &body);
    let second = w.profile("hd-second", &body);
    let hierarchies = host_hierarchies();
    for h in &hierarchies {
        let p = Path::new(&h.mount_point).join(PARENT);
        assert!(!p.exists(), "{} exists before the test", p.display());
    }
    host_unchanged(|| {
        let mut a = Running::spawn(w.apply_cmd(&first, None));
        a.wait_for_output(common::PROBE_END, RUN_TIMEOUT);
        let mut b = Running::spawn(w.apply_cmd(&second, None));
        b.wait_for_output(common::PROBE_END, RUN_TIMEOUT);
        a.signal(libc::SIGTERM);
        a.wait(RUN_TIMEOUT).ok();
        b.signal(libc::SIGTERM);
        b.wait(RUN_TIMEOUT).ok();
        let left: Vec<String> = hierarchies
            .iter()
            .map(|h| Path::new(&h.mount_point).join(PARENT))
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        assert!(left.is_empty(), "the shared parent was left: {left:?}");
    });
}

#[test]
fn unlisted_devices_can_be_made_but_not_opened() {
    if !common::require_root("unlisted_devices_can_be_made_but_not_opened") {
        return;
    }
    let _serial = common::serial();
    assert!(
        Path::new("/dev/loop1").exists(),
        "this test needs the loop driver (/dev/loop1)"
    );
    let w = World::new("hd-devices");
    let profile = w.profile(
        "hd-devices",
        r#"
# The profile's own device joins the allow-list.
[devices.hdloop]
type = "unix-block"
path = "/dev/hd-loop1"
major = 7
minor = 1
[init]
command = ["/bin/sh", "-c", '''
busybox rm -f /tmp/hd-loop0
if busybox mknod /tmp/hd-loop0 b 7 0; then echo "HD mknod=ok"; else echo "HD mknod=failed"; fi
if ( : < /tmp/hd-loop0 ); then echo "HD loop0=opened"; fi
if ( : < /dev/hd-loop1 ); then echo "HD loop1=opened"; fi
if ( : < /dev/null ) && echo x > /dev/null; then echo "HD null=opened"; fi
echo "HD done=1"
''']
"#,
    );
    // The v1 devices controller here; a cgroup2 device program on the pure layout.
    for (pure, how) in [
        (false, "(v1 devices controller)"),
        (true, "(cgroup2 device program"),
    ] {
        let mut apply = w.apply_cmd(&profile, None);
        if pure {
            apply = common::cgroup2::on_pure_cgroup2(&apply);
            die_with_test(&mut apply);
        }
        let f = host_unchanged(|| Running::spawn(apply).wait(RUN_TIMEOUT)).ok();
        assert_eq!(f.value("mknod"), "ok", "privileged: mknod works");
        assert!(
            !f.values().contains_key("loop0"),
            "an unlisted block device could be opened\n{}",
            f.describe()
        );
        assert!(
            f.stdout.contains("/tmp/hd-loop0: Operation not permitted")
                || f.stdout
                    .contains("can't open '/tmp/hd-loop0': Operation not permitted"),
            "opening the unlisted device must fail with EPERM (the devices cgroup)\n{}",
            f.describe()
        );
        assert_eq!(
            f.values().get("loop1").map(String::as_str),
            Some("opened"),
            "the profile's own device is allowed\n{}",
            f.describe()
        );
        assert_eq!(f.value("null"), "opened");
        let report = w.report(&profile);
        assert_report_clean(&report, 0);
        let cg = report["host"]["cgroup"].as_str().unwrap();
        assert!(cg.contains("devices: deny all") && cg.contains(how), "{cg}");
    }
}

#[test]
fn without_a_cgroup_namespace_the_host_tree_is_read_only_and_the_own_cgroup_writable() {
    if !common::require_root(
        "without_a_cgroup_namespace_the_host_tree_is_read_only_and_the_own_cgroup_writable",
    ) {
        return;
    }
    let _serial = common::serial();
    let w = World::new("hd-nocgns");
    let name = "hd-nocgns";
    let own = format!("envc/{name}");
    let profile = w.profile(
        name,
        &format!(
            r#"
[cgroup]
namespace = false
[config]
"limits.processes" = "50"
[init]
command = ["/bin/sh", "-c", '''
p=/sys/fs/cgroup/pids
busybox sed 's/^/HDM /' /proc/self/mountinfo | grep ' /sys/fs/cgroup'
echo "HD cgroup=$(busybox tr '\n' ' ' < /proc/self/cgroup)"
if echo 40 > $p/{own}/pids.max; then echo "HD own_write=ok"; fi
echo "HD own_max=$(cat $p/{own}/pids.max)"
if echo $$ > $p/{own}/cgroup.procs; then echo "HD own_procs=ok"; fi
echo 40 > $p/pids.max 2>/dev/null || echo "HD root_write=refused"
echo $$ > $p/cgroup.procs 2>/dev/null || echo "HD root_procs=refused"
busybox mkdir $p/envc-hd-escape 2>/dev/null || echo "HD root_mkdir=refused"
echo "HD done=1"
''']
"#
        ),
    );
    let hierarchies = host_hierarchies();
    // Should the read-only bind fail, the escape attempt made a host cgroup: remove it.
    let _cleanup = CgroupCleanup("envc-hd-escape", &[]);
    let f = host_unchanged(|| w.apply(&profile, None)).ok();
    let v = f.values();
    assert_eq!(
        v.get("own_write").map(String::as_str),
        Some("ok"),
        "{}",
        f.describe()
    );
    assert_eq!(v["own_max"], "40");
    assert_eq!(v.get("own_procs").map(String::as_str), Some("ok"));
    assert_eq!(v.get("root_write").map(String::as_str), Some("refused"));
    assert_eq!(v.get("root_procs").map(String::as_str), Some("refused"));
    assert_eq!(v.get("root_mkdir").map(String::as_str), Some("refused"));
    // No namespace: the container sees its real place.
    for l in v["cgroup"].split_whitespace() {
        assert!(l.ends_with(&format!(":/{own}")), "{l}");
    }
    let inside = mounts_in_text(&f.stdout);
    let top = must_mount(&inside, "/sys/fs/cgroup");
    assert_eq!(top.fs_type, "tmpfs");
    assert!(top.is_read_only(), "{}", top.mount_options);
    for h in &hierarchies {
        let m = must_mount(&inside, &h.mount_point);
        assert_eq!(m.fs_type, h.fs_type);
        assert_eq!(m.root, "/", "{}: the host's whole hierarchy", h.mount_point);
        assert!(
            m.is_read_only(),
            "{} writable: {}",
            h.mount_point,
            m.mount_options
        );
        let own_at = format!("{}/{own}", h.mount_point);
        let o = must_mount(&inside, &own_at);
        assert_eq!(o.root, format!("/{own}"));
        assert!(!o.is_read_only(), "{own_at} read-only: {}", o.mount_options);
    }
    let report = w.report(&profile);
    assert_report_clean(&report, 0);
    assert!(
        !report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["op"] == "UnshareCgroupNamespace" && s["status"] == "done"),
        "cgroup.namespace = false, yet a cgroup namespace was made"
    );
    let mounts = report["host"]["cgroup_mounts"].as_str().unwrap();
    assert!(
        mounts.contains("read-only, own cgroup writable"),
        "{mounts}"
    );
}

// ------------------------------------------------------------------ §5 LXCFS

#[test]
fn lxcfs_files_are_overlaid_and_show_the_containers_limits() {
    let test = "lxcfs_files_are_overlaid_and_show_the_containers_limits";
    if !common::require_root(test) || !require_lxcfs(test) {
        return;
    }
    let _serial = common::serial();
    let w = World::new("hd-lxcfs");
    let lxdir = w.path("lxcfs");
    let profile = w.profile(
        "hd-lxcfs",
        &format!(
            r#"
[config]
"limits.memory" = "256MiB"
"limits.cpu" = "1"
[lxcfs]
path = "{}"
[init]
command = ["/bin/sh", "-c", '''
echo "HD memtotal=$(grep ^MemTotal: /proc/meminfo | busybox tr -s ' ')"
echo "HD uptime=$(busybox cut -d' ' -f1 /proc/uptime)"
echo "HD processors=$(grep -c ^processor /proc/cpuinfo)"
echo "HD online=$(cat /sys/devices/system/cpu/online)"
busybox sed 's/^/HDM /' /proc/self/mountinfo | grep lxcfs
echo "HD done=1"
''']
"#,
            lxdir.display()
        ),
    );
    let lxcfs_before = lxcfs_processes();
    let start = Instant::now();
    let (f, offered, sys_cpu) = host_unchanged(|| {
        let ns = PrivateNs::new();
        // lxcfs makes /run/lxcfs (and a pidfile): keep that off the host's /run.
        ns.sh("mount -t tmpfs -o mode=755,size=1m tmpfs /run");
        let lx = Lxcfs::start(&ns, &lxdir, &w.path("lxcfs.pid"));
        eprintln!("lxcfs (pid {}) up after {:?}", lx.pid(), start.elapsed());
        let offered = lx.list("proc");
        let sys_cpu = lx.list("sys/devices/system/cpu");
        let f = w.apply(&profile, Some(&ns));
        lx.stop();
        (f, offered, sys_cpu)
    });
    eprintln!("LXCFS test took {:?}", start.elapsed());
    assert_eq!(lxcfs_processes(), lxcfs_before, "an lxcfs process remains");
    let f = f.ok();

    // /proc/meminfo: the container's limit.
    assert_eq!(
        f.value("memtotal"),
        "MemTotal: 262144 kB",
        "{}",
        f.describe()
    );
    // /proc/uptime: the container's (its PID namespace's init), not the host's.
    let uptime: f64 = f.value("uptime").parse().unwrap();
    let host_uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(uptime < 10.0, "container uptime {uptime}");
    if host_uptime > 60.0 {
        assert!(
            uptime + 30.0 < host_uptime,
            "{uptime} vs host {host_uptime}"
        );
    }
    // CPUs: one (limits.cpu = 1), in cpuinfo and in /sys/devices/system/cpu.
    assert_eq!(f.value("processors"), "1");
    let online = envc::exec::cgroup::parse_cpu_list(&f.value("online"));
    assert_eq!(online.len(), 1, "online: {online:?}");

    // Every file LXCFS offers (that this kernel's /proc has) is an LXCFS mount inside.
    const OFFERED: &[&str] = &[
        "cpuinfo",
        "meminfo",
        "stat",
        "uptime",
        "diskstats",
        "swaps",
        "loadavg",
        "slabinfo",
        "pressure",
    ];
    let inside = mounts_in_text(&f.stdout);
    let mut expected: Vec<String> = offered
        .iter()
        .filter(|n| OFFERED.contains(&n.as_str()))
        .filter(|n| Path::new("/proc").join(n).exists())
        .map(|n| format!("/proc/{n}"))
        .collect();
    assert!(expected.len() >= 4, "LXCFS offers {offered:?}");
    if sys_cpu.iter().any(|e| e == "uevent") {
        expected.push("/sys/devices/system/cpu".into());
    }
    for p in &expected {
        let m = must_mount(&inside, p);
        assert!(m.fs_type.contains("lxcfs"), "{p}: {}", m.fs_type);
    }
    let report = w.report(&profile);
    assert_report_clean(&report, 0);
    let fact = report["host"]["lxcfs"].as_str().unwrap();
    assert!(fact.starts_with("LXCFS found"), "{fact}");
    for p in &expected {
        assert!(
            fact.split_whitespace().any(|w| w == p),
            "{p} not listed in the report: {fact}"
        );
    }
    assert!(
        f.stderr.contains("LXCFS found"),
        "the summary: {}",
        f.describe()
    );
}

#[test]
fn lxcfs_not_running_is_reported_as_not_found() {
    if !common::require_root("lxcfs_not_running_is_reported_as_not_found") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("hd-nolxcfs");
    // The default location (/var/lib/lxcfs): empty here (no LXCFS running; the Debian
    // package only makes the directory). Made sure of in a private namespace.
    let profile = w.profile(
        "hd-nolxcfs",
        r#"
[init]
command = ["/bin/sh", "-c", '''
busybox sed 's/^/HDM /' /proc/self/mountinfo
echo "HD done=1"
''']
"#,
    );
    let f = host_unchanged(|| {
        let ns = PrivateNs::new();
        if Path::new("/var/lib/lxcfs").is_dir() {
            ns.sh("mount -t tmpfs -o mode=755,size=64k tmpfs /var/lib/lxcfs");
        }
        w.apply(&profile, Some(&ns))
    })
    .ok();
    let inside = mounts_in_text(&f.stdout);
    assert!(
        !inside.iter().any(|m| m.fs_type.contains("lxcfs")),
        "{}",
        describe_mounts(&inside)
    );
    let report = w.report(&profile);
    assert_report_clean(&report, 0);
    let fact = report["host"]["lxcfs"].as_str().unwrap();
    assert!(fact.starts_with("LXCFS not found"), "{fact}");
    assert!(fact.contains("/var/lib/lxcfs"), "{fact}");
    let step = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["op"] == "OverlayLxcfs")
        .unwrap();
    assert_eq!(step["status"], "skipped", "{step}");
    assert!(f.stderr.contains("LXCFS not found"), "{}", f.describe());
}

/// A pure cgroup2 host, for real (`common::cgroup2`: this machine's cgroup2 hierarchy
/// alone at `/sys/fs/cgroup` in a private mount namespace; it has no controllers here,
/// the v1 hierarchies hold them), so envc runs that path on the kernel: the
/// clone starts PID 1 in its cgroup (no PID is written), PID 1 sees `0::/` and a fresh
/// cgroup2 on `/sys/fs/cgroup`, and the cgroup (in the host's unified hierarchy) is gone
/// afterwards.
#[test]
fn a_pure_cgroup2_layout_runs_for_real() {
    if !common::require_root("a_pure_cgroup2_layout_runs_for_real") {
        return;
    }
    let _serial = common::serial();
    let unified = Path::new("/sys/fs/cgroup/unified");
    let unified_is_cgroup2 = cgroup_mounts()
        .iter()
        .any(|m| m.mount_point == "/sys/fs/cgroup/unified" && m.fs_type == "cgroup2");
    if !unified_is_cgroup2 {
        // A pure cgroup2 host runs this path in every other root test already.
        let pure = cgroup_mounts()
            .iter()
            .any(|m| m.mount_point == "/sys/fs/cgroup" && m.fs_type == "cgroup2");
        assert!(
            pure,
            "neither hybrid nor pure cgroup2: {:?}",
            cgroup_mounts()
        );
        return;
    }
    let w = World::new("hd-pure2");
    let name = "hd-pure2";
    let profile = w.profile(
        name,
        r#"
[init]
command = ["/bin/sh", "-c", '''
busybox sed 's/^/HDM /' /proc/self/mountinfo | grep ' /sys/fs/cgroup'
echo "HD cgroup=$(busybox tr '\n' ' ' < /proc/self/cgroup)"
echo "HD procs=$(busybox tr '\n' ' ' < /sys/fs/cgroup/cgroup.procs)"
echo "HD done=1"
''']
"#,
    );
    let mut apply = common::cgroup2::on_pure_cgroup2(&w.apply_cmd(&profile, None));
    die_with_test(&mut apply);
    let f = host_unchanged(|| Running::spawn(apply).wait(RUN_TIMEOUT)).ok();
    let v = f.values();
    assert_eq!(
        v.get("done").map(String::as_str),
        Some("1"),
        "{}",
        f.describe()
    );
    // At the root of its cgroup2 namespace. (The kernel lists this machine's v1
    // hierarchies too, whatever the mounts say: there PID 1 stayed where envc was.)
    assert!(
        v["cgroup"].split_whitespace().any(|l| l == "0::/"),
        "{}",
        f.describe()
    );
    // PID 1 (and the shell's pipeline) in its own cgroup, from the clone on.
    assert!(
        v["procs"].split_whitespace().any(|p| p == "1"),
        "{}",
        f.describe()
    );
    let inside = mounts_in_text(&f.stdout);
    let at = must_mount(&inside, "/sys/fs/cgroup");
    assert_eq!(at.fs_type, "cgroup2", "{}", describe_mounts(&inside));
    assert_eq!(
        inside
            .iter()
            .filter(|m| m.mount_point.starts_with("/sys/fs/cgroup"))
            .count(),
        1,
        "{}",
        describe_mounts(&inside)
    );

    let report = w.report(&profile);
    let step = |op: &str| {
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["op"] == op)
            .unwrap_or_else(|| panic!("no {op} in {report:#}"))
            .clone()
    };
    let create = step("CreateCgroup");
    assert_eq!(create["status"], "done", "{create}");
    assert!(
        create["detail"]
            .as_str()
            .unwrap_or("")
            .contains("pure cgroup2"),
        "{create}"
    );
    let attach = step("AttachCgroup");
    assert_eq!(attach["status"], "done", "{attach}");
    assert_eq!(
        attach["detail"], "joined cgroup2 from the clone",
        "{attach}"
    );
    assert!(
        !unified.join("envc").join(name).exists(),
        "the container's cgroup is left in the unified hierarchy"
    );
}

/// The cgroup's v1 part fails after the clone (the container's cgroup is left busy in
/// one v1 hierarchy by a process the test put there): the start fails at CreateCgroup
/// with a clear message, what the container's process did before is in the report,
/// and nothing envc made is left in any hierarchy.
#[test]
fn a_busy_leftover_v1_cgroup_fails_the_start_after_the_clone_cleanly() {
    if !common::require_root("a_busy_leftover_v1_cgroup_fails_the_start_after_the_clone_cleanly") {
        return;
    }
    let _serial = common::serial();
    let name = "hd-busycg";
    let v1 = host_hierarchies()
        .into_iter()
        .find(|m| m.fs_type == "cgroup")
        .expect("a v1 hierarchy");
    let busy = Path::new(&v1.mount_point).join("envc").join(name);
    let _cleanup = CgroupCleanup("envc", &["hd-busycg"]);
    std::fs::create_dir_all(&busy).unwrap();
    let mut sleeper = Command::new("sleep");
    sleeper.arg("60");
    die_with_test(&mut sleeper);
    let mut sleeper = sleeper.spawn().unwrap();
    std::fs::write(busy.join("cgroup.procs"), sleeper.id().to_string()).unwrap();

    let w = World::new(name);
    let profile = w.profile(name, "");
    let f = host_unchanged(|| w.apply(&profile, None));
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(f.code(), Some(125), "{}", f.describe());
    assert!(
        f.stderr.contains("exists and cannot be removed"),
        "{}",
        f.describe()
    );
    let report = w.report(&profile);
    let steps = report["steps"].as_array().unwrap();
    let status = |op: &str| {
        steps
            .iter()
            .find(|s| s["op"] == op)
            .unwrap_or_else(|| panic!("no {op}: {report:#}"))["status"]
            .clone()
    };
    assert_eq!(status("CreateCgroup"), "failed", "{report:#}");
    assert_eq!(status("CloneChild"), "done", "{report:#}");
    // The container's process worked meanwhile, and stopped at the join.
    assert_eq!(status("MountProc"), "done", "{report:#}");
    assert_eq!(status("AttachCgroup"), "not_run", "{report:#}");
    assert_eq!(status("ExecInit"), "not_run", "{report:#}");
    assert!(report.get("teardown_left").is_none(), "{report:#}");
    assert!(!f.stdout.contains(common::PROBE_BEGIN), "init ran");
}
