//! `envc apply` on the real kernel, as root: a busybox rootfs whose init is the static
//! probe (tests/probe/probe.c), which prints what PID 1 was handed. Every test asserts,
//! from INSIDE the container, the rows of the contract (shared/spec/environment.md §1,
//! §2, §3, §8) that issue 3 owns, and that the host is exactly as it was afterwards.
//!
//! Not tested here (their own issues; their steps report "not yet"): cgroups, LXCFS,
//! NICs, the guest API socket, reboot/restart.
//!
//! Every test holds `common::serial()` (they start processes and compare host state),
//! waits with a deadline, and kills what it started when it fails (`Envc`'s drop).

mod common;

use common::proc::{Out, Proc};
use common::{HostState, Mount, TempDir, busybox_rootfs, set_init};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The longest any single container run may take before the test kills it.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the host may take to settle after envc exits (teardown is synchronous,
/// but give the kernel a moment to reap a namespace).
const SETTLE: Duration = Duration::from_secs(2);

/// The capabilities PID 1 runs without (spec §8): CAP_SYS_MODULE 16, CAP_SYS_RAWIO 17,
/// CAP_SYS_TIME 25, CAP_MAC_OVERRIDE 32, CAP_MAC_ADMIN 33.
const DROPPED_CAPS: &[u32] = &[16, 17, 25, 32, 33];

// ------------------------------------------------------------------ running envc

/// A running `envc` whose stdout/stderr are collected by threads. Dropping it kills
/// envc (SIGKILL; the container's process dies with it: PR_SET_PDEATHSIG) and reaps it.
/// A running `envc` (the shared test process: output collected, killed on drop).
struct Envc(Proc);

/// A finished run.
#[derive(Debug)]
struct Finished {
    /// envc's exit code (None: killed by a signal, which is a test failure).
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn code(&self) -> i32 {
        self.code
            .unwrap_or_else(|| panic!("envc died of a signal\n{}", self.describe()))
    }
    fn describe(&self) -> String {
        format!(
            "--- envc exit: {:?}\n--- stderr:\n{}\n--- stdout (tail):\n{}",
            self.code,
            common::tail(&self.stderr, 6000),
            common::tail(&self.stdout, 3000)
        )
    }
    fn probe(&self) -> Value {
        assert_eq!(self.code, Some(0), "{}", self.describe());
        common::extract_probe_json(&self.stdout)
    }
}

impl From<Out> for Finished {
    fn from(o: Out) -> Finished {
        Finished {
            code: o.code(),
            stdout: o.stdout,
            stderr: o.stderr,
        }
    }
}

impl Envc {
    fn spawn(cmd: Command) -> Envc {
        Envc(Proc::spawn(cmd))
    }

    fn pid(&self) -> i32 {
        self.0.pid()
    }

    /// Waits until stdout contains `needle`; panics (killing envc) after `timeout`.
    fn wait_for_output(&mut self, needle: &str, timeout: Duration) {
        self.0.wait_stdout(needle, 1, timeout);
    }

    fn signal(&self, sig: i32) {
        self.0.signal(sig);
    }

    /// Waits for envc to exit; kills it and panics after `timeout`.
    fn wait(self, timeout: Duration) -> Finished {
        self.0.wait(timeout).into()
    }
}

// ------------------------------------------------------------------ a test's world

/// A scratch directory with a busybox rootfs (init = the probe), a run dir and a log
/// dir for envc, and profiles written next to the rootfs.
struct World {
    dir: TempDir,
    rootfs: PathBuf,
    run_dir: PathBuf,
    log_dir: PathBuf,
}

impl World {
    fn new(test: &str) -> World {
        let dir = TempDir::new(test);
        let rootfs = busybox_rootfs(dir.path());
        World {
            run_dir: dir.path().join("run"),
            log_dir: dir.path().join("log"),
            rootfs,
            dir,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `NAME.toml` with `name`, `rootfs = "rootfs"` and `body`.
    fn profile(&self, name: &str, body: &str) -> PathBuf {
        let p = self.path(&format!("{name}.toml"));
        // The privileged rows of the contract (tests/unprivileged.rs has the
        // other mode's): a layer that sets the mode, stacked under the file.
        std::fs::write(
            self.path("privileged.toml"),
            "[config]\n\"security.privileged\" = true\n",
        )
        .unwrap();
        let text = format!(
            "name = \"{name}\"\nrootfs = \"rootfs\"\nprofiles = [\"privileged.toml\"]\n{body}\n"
        );
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    fn report_path(&self, name: &str) -> PathBuf {
        self.path(&format!("{name}.report.json"))
    }

    /// `envc apply PROFILE --report R` with this world's run and log dirs.
    fn apply_cmd(&self, profile: &Path) -> Command {
        let name = profile.file_stem().unwrap().to_str().unwrap();
        let mut cmd = Command::new(common::envc_bin());
        cmd.arg("apply")
            .arg(profile)
            .arg("--report")
            .arg(self.report_path(name))
            .env("ENVC_RUN_DIR", &self.run_dir)
            .env("ENVC_LOG_DIR", &self.log_dir)
            // Must not reach PID 1 (its environment is exactly the contract's).
            .env("ENVC_TEST_LEAK", "from the host");
        cmd
    }

    fn apply(&self, profile: &Path) -> Finished {
        Envc::spawn(self.apply_cmd(profile)).wait(RUN_TIMEOUT)
    }

    fn report(&self, name: &str) -> Value {
        let p = self.report_path(name);
        let text = std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("no report at {}: {e}", p.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("report is not JSON: {e}\n{text}"))
    }
}

// ------------------------------------------------------------------ reading what the probe saw

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

/// The topmost mount at `point` (the last one listed), if any.
fn mount_at<'a>(mounts: &'a [Mount], point: &str) -> Option<&'a Mount> {
    mounts.iter().rev().find(|m| m.mount_point == point)
}

fn must_mount<'a>(mounts: &'a [Mount], point: &str) -> &'a Mount {
    mount_at(mounts, point).unwrap_or_else(|| {
        let all: Vec<String> = mounts
            .iter()
            .map(|m| format!("{} {} {}", m.mount_point, m.fs_type, m.mount_options))
            .collect();
        panic!(
            "no mount at {point} inside the container; mounts:\n{}",
            all.join("\n")
        )
    })
}

/// The probe's /dev listing: path -> entry.
fn dev_of(probe: &Value) -> BTreeMap<String, Value> {
    probe["dev"]
        .as_array()
        .expect("probe dev listing")
        .iter()
        .map(|e| (e["path"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

fn dev_entry<'a>(dev: &'a BTreeMap<String, Value>, path: &str) -> &'a Value {
    dev.get(path)
        .unwrap_or_else(|| panic!("{path} missing inside; /dev has {:?}", dev.keys()))
}

fn assert_char(dev: &BTreeMap<String, Value>, path: &str, major: u64, minor: u64) {
    let e = dev_entry(dev, path);
    assert_eq!(e["type"], "char", "{path}: {e}");
    assert_eq!(
        (e["major"].as_u64(), e["minor"].as_u64()),
        (Some(major), Some(minor)),
        "{path}: {e}"
    );
}

fn assert_node(e: &Value, mode: &str, uid: u64, gid: u64) {
    assert_eq!(e["mode"], mode, "{e}");
    assert_eq!(
        (e["uid"].as_u64(), e["gid"].as_u64()),
        (Some(uid), Some(gid)),
        "{e}"
    );
}

/// The report's step for `op` whose origin key is `key`.
fn step<'a>(report: &'a Value, op: &str, key: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["op"] == op && s["origin"]["key"] == key)
        .unwrap_or_else(|| panic!("no {op} step from {key} in the report:\n{report:#}"))
}

fn steps(report: &Value) -> &Vec<Value> {
    report["steps"].as_array().expect("report steps")
}

fn hex_caps(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().expect("caps are strings"), 16).expect("hex caps")
}

fn own_status_field(field: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

fn host_mounts() -> Vec<Mount> {
    common::parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap())
}

fn host_has_char_device(path: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device())
}

/// What the report must say for a conditional host path, from the host's mount table.
fn expected_path_state(path: &str, host: &[Mount]) -> &'static str {
    if host.iter().any(|m| m.mount_point == path) {
        "mounted"
    } else if Path::new(path).exists() {
        "present, not mounted"
    } else {
        "absent"
    }
}

/// Steps that belong to other issues: they may say "not yet" (or be skipped when the
/// host lacks what they need, e.g. LXCFS).
const OTHER_ISSUES: &[&str] = &[
    "CreateCgroup",
    "AttachCgroup",
    "UnshareCgroupNamespace",
    "MountCgroups",
    "OverlayLxcfs",
    "CreateNic",
    "ConfigureNic",
    "MakeGuestApiSocket",
];

/// A successful run's report: outcome `exit`, and every step done, or skipped /
/// not yet where that is allowed.
fn assert_report_ok(report: &Value, exit: u64) {
    assert_eq!(report["format"], 1, "{report:#}");
    assert_eq!(
        report["outcome"]["exit_code"].as_u64(),
        Some(exit),
        "{report:#}"
    );
    for s in steps(report) {
        let op = s["op"].as_str().unwrap();
        match s["status"].as_str().unwrap() {
            "done" => {}
            "not_yet" => assert!(OTHER_ISSUES.contains(&op), "{op} says not yet: {s}"),
            "skipped" => assert!(
                OTHER_ISSUES.contains(&op)
                    || matches!(
                        op,
                        "BindMount"
                            | "BindDevice"
                            | "BindSelf"
                            | "RemountReadOnly"
                            | "MakeLogSocket"
                            | "MakeDevice"
                    ),
                "{op} skipped: {s}"
            ),
            other => panic!("step {op} is {other} in a successful run: {s}\n{report:#}"),
        }
    }
}

/// A failed run's report: exactly the step `failed_index` (0-based) failed, fatally;
/// every step before it ran (done/skipped/not yet) and every later one is `not_run`.
fn assert_report_failed_at(report: &Value, failed_index: usize, exit: u64) {
    assert_eq!(
        report["outcome"]["exit_code"].as_u64(),
        Some(exit),
        "{report:#}"
    );
    for (i, s) in steps(report).iter().enumerate() {
        let status = s["status"].as_str().unwrap();
        if i < failed_index {
            assert!(
                matches!(status, "done" | "skipped" | "not_yet"),
                "step {} ({}) before the failure is {status}: {report:#}",
                i + 1,
                s["op"]
            );
        } else if i == failed_index {
            assert_eq!(status, "failed", "step {} ({}): {report:#}", i + 1, s["op"]);
            assert_eq!(s["fatal"], true, "{s}");
            assert!(s["error"].as_str().is_some_and(|e| !e.is_empty()), "{s}");
        } else {
            assert_eq!(
                status,
                "not_run",
                "step {} ({}) after the failure: {report:#}",
                i + 1,
                s["op"]
            );
        }
    }
}

fn index_of(report: &Value, op: &str, key: &str) -> usize {
    steps(report)
        .iter()
        .position(|s| s["op"] == op && s["origin"]["key"] == key)
        .unwrap_or_else(|| panic!("no {op} step from {key}: {report:#}"))
}

/// Runs `f` with the host state captured around it; the host must be as it was.
fn host_unchanged<T>(f: impl FnOnce() -> T) -> T {
    let before = HostState::capture();
    let out = f();
    before.assert_restored_within(SETTLE);
    out
}

/// The run and state directories envc was given are gone afterwards (logs are kept).
fn assert_state_removed(w: &World) {
    assert!(
        !w.run_dir.exists(),
        "envc left its run dir {}: {:?}",
        w.run_dir.display(),
        std::fs::read_dir(&w.run_dir).map(|d| d.count())
    );
}

// ------------------------------------------------------------------ PID 1

#[test]
fn pid1_process_environment_fds_and_capabilities() {
    if !common::require_root("pid1_process_environment_fds_and_capabilities") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("pid1");
    let profile = w.profile(
        "pid1",
        r#"[config]
"environment.GREETING" = "hello world"
"environment.TZ" = "UTC""#,
    );
    // envc is started with an extra fd 3 on /etc/passwd, and with signals ignored:
    // neither may reach PID 1.
    let passwd = std::fs::File::open("/etc/passwd").unwrap();
    let raw = passwd.as_raw_fd();
    let mut cmd = w.apply_cmd(&profile);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGUSR1, libc::SIG_IGN);
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let run = host_unchanged(|| Envc::spawn(cmd).wait(RUN_TIMEOUT));
    drop(passwd);
    let p = run.probe();
    let ctx = || format!("{p:#}");

    // §8 program: PID 1, root, cwd /, after setsid.
    assert_eq!(p["pid"], 1, "{}", ctx());
    assert_eq!(p["ppid"], 0, "{}", ctx());
    assert_eq!((p["uid"].as_u64(), p["euid"].as_u64()), (Some(0), Some(0)));
    assert_eq!((p["gid"].as_u64(), p["egid"].as_u64()), (Some(0), Some(0)));
    assert_eq!(p["cwd"], "/");
    assert_eq!(p["sid"], 1, "PID 1 is a session leader");
    assert_eq!(p["pgid"], 1);
    assert_eq!(p["hostname"], "pid1", "hostname = the profile's name");
    assert_eq!(p["argv"], serde_json::json!(["/sbin/init"]));

    // §8 environment: exactly container=lxc plus the profile's environment.* keys.
    let env: BTreeSet<&str> = p["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let want: BTreeSet<&str> = ["container=lxc", "GREETING=hello world", "TZ=UTC"].into();
    assert_eq!(env, want, "PID 1's environment");

    // §8 fds: exactly 0, 1, 2, all the console: a pty of the container's devpts.
    assert_eq!(p["fds_source"], "proc");
    let fds: Vec<(u64, String)> = p["fds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["fd"].as_u64().unwrap(),
                f["target"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    assert_eq!(
        fds.iter().map(|f| f.0).collect::<Vec<_>>(),
        vec![0, 1, 2],
        "PID 1 must get exactly fds 0, 1, 2 (envc had fd 3 on /etc/passwd): {fds:?}"
    );
    let console_target = &fds[0].1;
    assert!(
        console_target == "/dev/console" || is_pts_path(console_target),
        "fd 0 is {console_target}, not the console pty"
    );
    for (fd, target) in &fds {
        assert_eq!(target, console_target, "fd {fd} is not the console");
        assert!(
            !target.contains("passwd") && target.starts_with("/dev/"),
            "fd {fd} -> {target}"
        );
    }
    let stdio = p["stdio"].as_array().unwrap();
    let minor = stdio[0]["minor"].as_u64().expect("console minor");
    for s in stdio {
        assert_eq!(s["open"], true, "{s}");
        assert_eq!(s["type"], "char", "{s}");
        assert_eq!(s["isatty"], true, "{s}");
        assert_eq!(
            (s["major"].as_u64(), s["minor"].as_u64()),
            (Some(136), Some(minor)),
            "{s}"
        );
    }
    // It is PID 1's controlling terminal.
    assert_eq!(p["ctty"]["major"], 136, "{}", p["ctty"]);
    assert_eq!(p["ctty"]["minor"].as_u64(), Some(minor), "{}", p["ctty"]);
    assert_eq!(p["ctty"]["tpgid"], 1, "{}", p["ctty"]);
    // The pty is the container's own (it exists in the container's devpts).
    let dev = dev_of(&p);
    assert_char(&dev, &format!("/dev/pts/{minor}"), 136, minor);

    // §8 capabilities: the host's sets minus exactly the five, bounding set included.
    let mask: u64 = DROPPED_CAPS.iter().map(|c| 1u64 << c).sum();
    let host_bnd = u64::from_str_radix(&own_status_field("CapBnd"), 16).unwrap();
    let host_eff = u64::from_str_radix(&own_status_field("CapEff"), 16).unwrap();
    let caps = &p["caps"];
    assert_eq!(hex_caps(&caps["CapBnd"]), host_bnd & !mask, "CapBnd {caps}");
    assert_eq!(hex_caps(&caps["CapEff"]), host_eff & !mask, "CapEff {caps}");
    assert_eq!(hex_caps(&caps["CapPrm"]), host_eff & !mask, "CapPrm {caps}");
    assert_eq!(hex_caps(&caps["CapAmb"]), 0, "CapAmb {caps}");
    for c in DROPPED_CAPS {
        assert_eq!(
            hex_caps(&caps["CapBnd"]) & (1 << c),
            0,
            "capability {c} still bounding"
        );
    }

    // Signals: nothing blocked or ignored, whatever envc's caller left behind.
    assert_eq!(p["status"]["SigBlk"], "0000000000000000", "{}", p["status"]);
    assert_eq!(p["status"]["SigIgn"], "0000000000000000", "{}", p["status"]);

    // New mount, PID, UTS, IPC and network namespaces.
    for ns in ["mnt", "pid", "uts", "ipc", "net"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(
            p["ns"][ns].as_str(),
            host.to_str(),
            "{ns} namespace is the host's"
        );
    }
    assert_eq!(p["errors"], serde_json::json!([]), "the probe had errors");
    assert_state_removed(&w);
}

fn is_pts_path(s: &str) -> bool {
    s.strip_prefix("/dev/pts/")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

// ------------------------------------------------------------------ /dev (spec §2)

#[test]
fn dev_is_built_as_the_contract_says() {
    if !common::require_root("dev_is_built_as_the_contract_says") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("dev");
    let profile = w.profile("dev", "");
    let run = host_unchanged(|| w.apply(&profile));
    let p = run.probe();
    let report = w.report("dev");
    let mounts = mounts_of(&p);
    let dev = dev_of(&p);
    let host = host_mounts();

    // /dev: tmpfs, mode 0755, LXD's size (500000 bytes: 492k in mountinfo).
    let d = must_mount(&mounts, "/dev");
    assert_eq!(d.fs_type, "tmpfs", "{d:?}");
    assert!(d.has_super_option("size=492k"), "/dev size: {d:?}");
    assert!(d.has_super_option("mode=755"), "/dev mode: {d:?}");
    assert!(!d.is_read_only(), "{d:?}");
    assert_eq!(dev_entry(&dev, "/dev")["mode"], "0755");

    // The six char devices: mknod, mode 0666, root-owned.
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let path = format!("/dev/{name}");
        assert_char(&dev, &path, major, minor);
        assert_node(dev_entry(&dev, &path), "0666", 0, 0);
        assert!(
            mount_at(&mounts, &path).is_none(),
            "{path} should be a node, not a bind"
        );
        let s = step(&report, "MakeDevice", &format!("devices.{name}"));
        assert_eq!(
            (s["status"].as_str(), s["detail"].as_str()),
            (Some("done"), Some("mknod")),
            "{s}"
        );
    }

    // /dev/pts: the container's own devpts instance with the spec's options.
    let pts = must_mount(&mounts, "/dev/pts");
    assert_eq!(pts.fs_type, "devpts", "{pts:?}");
    for opt in ["gid=5", "mode=620", "ptmxmode=666", "max=1024"] {
        assert!(pts.has_super_option(opt), "/dev/pts lacks {opt}: {pts:?}");
    }
    assert!(
        pts.has_option("nosuid") && pts.has_option("noexec"),
        "{pts:?}"
    );
    if let Some(host_pts) = host.iter().find(|m| m.mount_point == "/dev/pts") {
        assert_ne!(
            pts.dev, host_pts.dev,
            "/dev/pts is the host's devpts, not a new instance"
        );
    }
    assert_char(&dev, "/dev/pts/ptmx", 5, 2);
    assert_eq!(dev_entry(&dev, "/dev/pts/ptmx")["mode"], "0666");

    // /dev/ptmx: a bind of pts/ptmx.
    let ptmx = must_mount(&mounts, "/dev/ptmx");
    assert_eq!(
        (ptmx.fs_type.as_str(), ptmx.root.as_str()),
        ("devpts", "/ptmx"),
        "{ptmx:?}"
    );
    assert_eq!(
        ptmx.dev, pts.dev,
        "/dev/ptmx is not from the container's devpts"
    );
    assert_char(&dev, "/dev/ptmx", 5, 2);
    assert_eq!(dev_entry(&dev, "/dev/ptmx")["mode"], "0666");

    // /dev/console: a pty of the container's devpts, bound; PID 1's stdio.
    let console = must_mount(&mounts, "/dev/console");
    assert_eq!(console.fs_type, "devpts", "{console:?}");
    assert_eq!(
        console.dev, pts.dev,
        "/dev/console is not a pty of the container's devpts"
    );
    let n: u64 = console
        .root
        .strip_prefix('/')
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("/dev/console is not a bind of a pts: {console:?}"));
    assert_char(&dev, "/dev/console", 136, n);
    assert_char(&dev, &format!("/dev/pts/{n}"), 136, n);
    assert_eq!(
        p["stdio"][0]["minor"].as_u64(),
        Some(n),
        "PID 1's stdin is not /dev/console"
    );

    // The four symlinks.
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let e = dev_entry(&dev, &format!("/dev/{name}"));
        assert_eq!(
            (e["type"].as_str(), e["target"].as_str()),
            (Some("symlink"), Some(target)),
            "{e}"
        );
    }

    // /dev/mqueue: a fresh mqueue.
    let mq = must_mount(&mounts, "/dev/mqueue");
    assert_eq!(mq.fs_type, "mqueue", "{mq:?}");
    assert_eq!(dev_entry(&dev, "/dev/mqueue")["type"], "dir");

    // /dev/log: a socket inode on the tmpfs (init is not systemd), served by envc.
    let log = dev_entry(&dev, "/dev/log");
    assert_eq!(log["type"], "socket", "{log}");
    assert_eq!(log["mode"], "0666", "{log}");
    assert!(
        mount_at(&mounts, "/dev/log").is_none(),
        "/dev/log must not be a mount"
    );
    assert_eq!(
        report["host"]["dev_log"], "a socket served by envc",
        "{report:#}"
    );

    // /dev/fuse and /dev/net/tun: bound from the host when it has them.
    let facts = &report["host"]["host_devices"];
    for (path, minor) in [("/dev/fuse", 229), ("/dev/net/tun", 200)] {
        let fact = facts
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("no host device fact for {path}: {report:#}"));
        if host_has_char_device(path) {
            assert_eq!(fact["state"], "found, bound", "{fact}");
            assert_char(&dev, path, 10, minor);
            let m = must_mount(&mounts, path);
            assert!(m.root.ends_with(path.rsplit('/').next().unwrap()), "{m:?}");
        } else {
            assert_eq!(fact["state"], "not found on the host", "{fact}");
            assert!(!dev.contains_key(path), "{path} inside but not on the host");
        }
    }

    // Nothing else: /dev is envc's own tmpfs, a node exists only if envc made it.
    let mut want: BTreeSet<String> = [
        "/dev",
        "/dev/console",
        "/dev/fd",
        "/dev/full",
        "/dev/log",
        "/dev/mqueue",
        "/dev/null",
        "/dev/ptmx",
        "/dev/pts",
        "/dev/pts/ptmx",
        "/dev/random",
        "/dev/stderr",
        "/dev/stdin",
        "/dev/stdout",
        "/dev/tty",
        "/dev/urandom",
        "/dev/zero",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    want.insert(format!("/dev/pts/{n}"));
    if host_has_char_device("/dev/fuse") {
        want.insert("/dev/fuse".into());
    }
    if host_has_char_device("/dev/net/tun") {
        want.extend(["/dev/net".to_string(), "/dev/net/tun".to_string()]);
    }
    let got: BTreeSet<String> = dev
        .keys()
        .filter(|k| !k.starts_with("/dev/lxd")) // the guest API: its own issue
        .cloned()
        .collect();
    assert_eq!(got, want, "the container's /dev");
    assert_report_ok(&report, 0);
}

// ------------------------------------------------------------------ /proc and /sys (spec §3)

#[test]
fn proc_and_sys_are_mixed() {
    if !common::require_root("proc_and_sys_are_mixed") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("procsys");
    let profile = w.profile("procsys", "");
    let run = host_unchanged(|| w.apply(&profile));
    let p = run.probe();
    let mounts = mounts_of(&p);
    let wp = &p["write_probes"];

    let proc = must_mount(&mounts, "/proc");
    assert_eq!(proc.fs_type, "proc");
    for o in ["rw", "nosuid", "nodev", "noexec"] {
        assert!(proc.has_option(o), "/proc lacks {o}: {proc:?}");
    }
    let sys_ro = must_mount(&mounts, "/proc/sys");
    assert!(
        sys_ro.is_read_only(),
        "/proc/sys must be read-only: {sys_ro:?}"
    );
    let net = must_mount(&mounts, "/proc/sys/net");
    assert!(
        !net.is_read_only(),
        "/proc/sys/net must be writable: {net:?}"
    );
    if Path::new("/proc/sysrq-trigger").exists() {
        let t = must_mount(&mounts, "/proc/sysrq-trigger");
        assert!(t.is_read_only(), "{t:?}");
        assert_eq!(wp["/proc/sysrq-trigger"]["open_wronly"], false, "{wp:#}");
        assert_eq!(
            wp["/proc/sysrq-trigger"]["errno"].as_i64(),
            Some(libc::EROFS.into()),
            "{wp:#}"
        );
    }
    assert_eq!(
        wp["/proc/sys/kernel/hostname"]["open_wronly"], false,
        "{wp:#}"
    );
    assert_eq!(
        wp["/proc/sys/kernel/hostname"]["errno"].as_i64(),
        Some(libc::EROFS.into())
    );
    assert_eq!(
        wp["/proc/sys/net/ipv4/ip_forward"]["open_wronly"], true,
        "{wp:#}"
    );
    assert_eq!(wp["/proc"]["statvfs_rdonly"], false, "{wp:#}");
    assert_eq!(wp["/proc/sys"]["statvfs_rdonly"], true, "{wp:#}");
    assert_eq!(wp["/proc/sys/net"]["statvfs_rdonly"], false, "{wp:#}");

    let sys = must_mount(&mounts, "/sys");
    assert_eq!(sys.fs_type, "sysfs");
    for o in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(sys.has_option(o), "/sys lacks {o}: {sys:?}");
    }
    let vnet = must_mount(&mounts, "/sys/devices/virtual/net");
    assert!(
        !vnet.is_read_only(),
        "/sys/devices/virtual/net must be writable: {vnet:?}"
    );
    assert_eq!(wp["/sys"]["statvfs_rdonly"], true, "{wp:#}");
    assert_eq!(
        wp["/sys/devices/virtual/net"]["statvfs_rdonly"], false,
        "{wp:#}"
    );
    assert_eq!(wp["/dev"]["statvfs_rdonly"], false, "{wp:#}");
    assert_eq!(wp["/"]["statvfs_rdonly"], false, "{wp:#}");
    // Only lo, in the container's own network namespace.
    assert_eq!(
        p["net_links"],
        serde_json::json!(["lo"]),
        "{}",
        p["net_links"]
    );
}

#[test]
fn proc_rw_and_sys_rw() {
    if !common::require_root("proc_rw_and_sys_rw") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("procrw");
    let profile = w.profile("procrw", "[proc]\nmode = \"rw\"\n[sys]\nmode = \"rw\"");
    let run = host_unchanged(|| w.apply(&profile));
    let p = run.probe();
    let mounts = mounts_of(&p);
    let wp = &p["write_probes"];
    let proc = must_mount(&mounts, "/proc");
    assert!(!proc.is_read_only() && proc.has_option("nosuid") && proc.has_option("noexec"));
    for sub in [
        "/proc/sys",
        "/proc/sys/net",
        "/proc/sysrq-trigger",
        "/sys/devices/virtual/net",
    ] {
        assert!(
            mount_at(&mounts, sub).is_none(),
            "{sub} is a mount of its own in rw mode"
        );
    }
    assert_eq!(
        wp["/proc/sys/kernel/hostname"]["open_wronly"], true,
        "{wp:#}"
    );
    assert_eq!(wp["/proc/sys"]["statvfs_rdonly"], false, "{wp:#}");
    let sys = must_mount(&mounts, "/sys");
    assert!(
        !sys.is_read_only(),
        "/sys must be writable with sys rw: {sys:?}"
    );
    assert_eq!(wp["/sys"]["statvfs_rdonly"], false, "{wp:#}");
    assert_report_ok(&w.report("procrw"), 0);
}

// ------------------------------------------------------------------ rootfs, pivot_root

#[test]
fn the_rootfs_is_root_and_the_host_is_gone() {
    if !common::require_root("the_rootfs_is_root_and_the_host_is_gone") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("pivot");
    let profile = w.profile("pivot", "");
    let run = host_unchanged(|| w.apply(&profile));
    let p = run.probe();
    let report = w.report("pivot");
    let mounts = mounts_of(&p);
    let host = host_mounts();

    // "/" is the rootfs (bound onto itself): the host mount holding it, at its path.
    let holder = host
        .iter()
        .filter(|m| w.rootfs.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.len())
        .expect("a host mount holds the rootfs");
    let rel = w.rootfs.strip_prefix(&holder.mount_point).unwrap();
    let want_root = Path::new(&holder.root).join(rel);
    let root = must_mount(&mounts, "/");
    assert_eq!(
        Path::new(&root.root),
        want_root,
        "/ is not the rootfs: {root:?}"
    );
    assert_eq!(root.dev, holder.dev, "{root:?}");
    assert!(!root.is_read_only(), "{root:?}");

    // pivot_root happened and the old root is detached: every mount the container
    // sees is one envc made (or a conditional host path the report says it bound).
    let mut allowed: BTreeSet<String> = [
        "/",
        "/proc",
        "/proc/sys",
        "/proc/sys/net",
        "/proc/sysrq-trigger",
        "/proc/sys/kernel/random/boot_id",
        "/sys",
        "/sys/devices/virtual/net",
        "/dev",
        "/dev/pts",
        "/dev/ptmx",
        "/dev/console",
        "/dev/mqueue",
        "/dev/fuse",
        "/dev/net/tun",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for f in report["host"]["conditional_paths"].as_array().unwrap() {
        assert_eq!(
            f["state"],
            expected_path_state(f["path"].as_str().unwrap(), &host),
            "conditional path {f}"
        );
        if f["state"] == "mounted" {
            allowed.insert(f["path"].as_str().unwrap().to_string());
        }
    }
    for m in &mounts {
        let mp = m.mount_point.as_str();
        let others = mp.starts_with("/sys/fs/cgroup") // cgroups: their own issue
            || mp.starts_with("/dev/lxd")
            || (mp.starts_with("/proc/") && Path::new("/var/lib/lxcfs/proc").exists())
            || allowed.iter().any(|a| a != "/" && mp.starts_with(&format!("{a}/")) && report_mounted(&report, a));
        assert!(
            allowed.contains(mp) || others,
            "a mount envc did not make is visible inside (old root not detached?): {m:?}"
        );
    }
    // Nothing of the host's tree: no mount has a host path as its mount point.
    for h in host.iter().filter(|h| h.mount_point != "/") {
        if !allowed.contains(&h.mount_point) {
            assert!(
                mount_at(&mounts, &h.mount_point).is_none()
                    || h.mount_point.starts_with("/sys/fs/cgroup"),
                "host mount {} visible inside",
                h.mount_point
            );
        }
    }
    assert_eq!(
        report["host"]["init"], "/sbin/probe",
        "/sbin/init resolved inside the rootfs"
    );
    assert_report_ok(&report, 0);
}

/// Whether the report says a conditional host path was bound (submounts come along).
fn report_mounted(report: &Value, path: &str) -> bool {
    report["host"]["conditional_paths"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"] == path && f["state"] == "mounted")
}

// ------------------------------------------------------------------ report, console, logs

#[test]
fn console_goes_to_stdout_and_the_log_and_dev_log_to_syslog() {
    if !common::require_root("console_goes_to_stdout_and_the_log_and_dev_log_to_syslog") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("console");
    std::os::unix::fs::symlink("busybox", w.rootfs.join("bin/logger")).unwrap();
    let profile = w.profile(
        "console",
        r#"[init]
command = ["/bin/sh", "-c", "logger -t envctest hello-from-the-guest && echo console-line-1 && exec /sbin/probe"]"#,
    );
    let run = host_unchanged(|| w.apply(&profile));
    let p = run.probe();
    assert!(run.stdout.contains("console-line-1"), "{}", run.describe());
    let console_log = w.log_dir.join("console/console.log");
    let log = std::fs::read_to_string(&console_log)
        .unwrap_or_else(|e| panic!("no console log at {}: {e}", console_log.display()));
    assert!(log.contains("console-line-1"), "console.log: {log}");
    assert_eq!(
        common::extract_probe_json(&log),
        p,
        "console.log differs from stdout"
    );
    let syslog = std::fs::read_to_string(w.log_dir.join("console/syslog.log")).unwrap();
    assert!(
        syslog.contains("envctest") && syslog.contains("hello-from-the-guest"),
        "what the guest logged to /dev/log is not in syslog.log: {syslog:?}"
    );
    // The human summary on stderr.
    assert!(run.stderr.contains("envc: console:"), "{}", run.describe());
    assert!(run.stderr.contains("outcome"), "{}", run.describe());
    assert_state_removed(&w);
    assert!(w.log_dir.join("console").is_dir(), "logs are kept");
}

#[test]
fn a_saved_plan_replays_with_another_rootfs() {
    if !common::require_root("a_saved_plan_replays_with_another_rootfs") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("saved");
    let profile = w.profile("saved", "[config]\n\"environment.FROM\" = \"plan\"");
    let plan = w.path("saved.plan.json");
    let out = Command::new(common::envc_bin())
        .args(["plan", "--format", "json", "-o"])
        .arg(&plan)
        .arg(&profile)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // Move the rootfs: the plan's relative "rootfs" no longer finds it; --rootfs does.
    let moved = w.path("elsewhere");
    std::fs::rename(&w.rootfs, &moved).unwrap();
    let mut cmd = Command::new(common::envc_bin());
    cmd.arg("apply")
        .arg("--plan")
        .arg(&plan)
        .arg("--rootfs")
        .arg(&moved)
        .env("ENVC_RUN_DIR", &w.run_dir)
        .env("ENVC_LOG_DIR", &w.log_dir);
    let run = host_unchanged(|| Envc::spawn(cmd).wait(RUN_TIMEOUT));
    let p = run.probe();
    assert_eq!(p["hostname"], "saved");
    assert!(
        p["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "FROM=plan"),
        "{}",
        p["env"]
    );
}

// ------------------------------------------------------------------ exit status (spec §8)

#[test]
fn exit_status_is_pid1_s() {
    if !common::require_root("exit_status_is_pid1_s") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("exit7");
    let profile = w.profile(
        "exit7",
        "[init]\ncommand = [\"/sbin/probe\", \"--exit\", \"7\"]",
    );
    let run = host_unchanged(|| w.apply(&profile));
    assert_eq!(run.code(), 7, "{}", run.describe());
    assert_eq!(common::extract_probe_json(&run.stdout)["argv"][2], "7");
    let report = w.report("exit7");
    assert_report_ok(&report, 7);
    assert_state_removed(&w);
}

#[test]
fn poweroff_inside_is_a_clean_halt() {
    if !common::require_root("poweroff_inside_is_a_clean_halt") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("halt");
    let profile = w.profile(
        "halt",
        "[init]\ncommand = [\"/sbin/probe\", \"--reboot\", \"poweroff\"]",
    );
    let run = host_unchanged(|| w.apply(&profile));
    assert!(
        !run.stdout.contains("ENVC-PROBE-REFUSED-REBOOT"),
        "{}",
        run.describe()
    );
    assert!(
        !run.stdout.contains("ENVC-PROBE-REBOOT-FAILED"),
        "{}",
        run.describe()
    );
    assert_eq!(
        run.code(),
        0,
        "PID 1 dying of SIGINT is a halt: {}",
        run.describe()
    );
    let report = w.report("halt");
    assert_report_ok(&report, 0);
    assert!(
        report["outcome"]["summary"]
            .as_str()
            .unwrap()
            .contains("halt"),
        "{report:#}"
    );
}

/// The host PID of envc's child (the container's PID 1).
fn child_of(pid: i32) -> Option<i32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

#[test]
fn pid1_killed_by_a_signal_is_128_plus_n() {
    if !common::require_root("pid1_killed_by_a_signal_is_128_plus_n") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("killed");
    // SIGKILL from the host (PID 1 ignores signals it has no handler for, even from
    // the host; SIGKILL is the exception).
    let profile = w.profile("killed", "[init]\ncommand = [\"/sbin/probe\", \"--sleep\"]");
    let run = host_unchanged(|| {
        let mut envc = Envc::spawn(w.apply_cmd(&profile));
        envc.wait_for_output(common::PROBE_END, RUN_TIMEOUT);
        let pid1 = child_of(envc.pid()).expect("envc has a child");
        // SAFETY: kill(2) on the container's PID 1, envc's child, which is alive
        // (envc has not reaped it: it is still waiting).
        assert_eq!(unsafe { libc::kill(pid1, libc::SIGKILL) }, 0);
        envc.wait(RUN_TIMEOUT)
    });
    assert_eq!(run.code(), 128 + 9, "{}", run.describe());
    let report = w.report("killed");
    assert_report_ok(&report, 137);
    assert!(
        report["outcome"]["summary"]
            .as_str()
            .unwrap()
            .contains("SIGKILL"),
        "{report:#}"
    );

    // A fault kills PID 1 with a forced signal: SIGSEGV from a stack overflow.
    let w = World::new("segv");
    let profile = w.profile(
        "segv",
        "[init]\ncommand = [\"/bin/sh\", \"-c\", \"ulimit -s 256; exec /bin/sh -c 'f() { f; }; f'\"]",
    );
    let run = host_unchanged(|| w.apply(&profile));
    assert_eq!(run.code(), 128 + 11, "{}", run.describe());
    assert_report_ok(&w.report("segv"), 139);
}

// ------------------------------------------------------------------ init problems (spec §1, §8)

/// Asserts a run failed at step `op`/`key` with `exit`, left nothing behind, and that
/// no step after it ran.
fn assert_failed_cleanly(
    w: &World,
    name: &str,
    run: &Finished,
    op: &str,
    key: &str,
    exit: i32,
) -> Value {
    assert_eq!(run.code(), exit, "{}", run.describe());
    let report = w.report(name);
    let i = index_of(&report, op, key);
    assert_report_failed_at(&report, i, exit as u64);
    assert!(
        run.stderr
            .contains(&format!("step {} ({op}) failed", i + 1)),
        "stderr does not name the failed step:\n{}",
        run.describe()
    );
    assert!(
        !run.stdout.contains(common::PROBE_BEGIN),
        "init ran: {}",
        run.describe()
    );
    assert_state_removed(w);
    report
}

/// A rootfs that does not exist fails the first step, and the diagnostic
/// points at the profile's own `rootfs = ...` line: the key a user changes.
#[test]
fn a_missing_rootfs_points_at_the_profiles_rootfs_key() {
    if !common::require_root("a_missing_rootfs_points_at_the_profiles_rootfs_key") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("norootfs");
    let profile = w.path("norootfs.toml");
    std::fs::write(&profile, "name = \"norootfs\"\nrootfs = \"no-such-dir\"\n").unwrap();
    let run = host_unchanged(|| w.apply(&profile));
    let report = assert_failed_cleanly(&w, "norootfs", &run, "OpenRootfs", "rootfs", 125);
    assert_eq!(index_of(&report, "OpenRootfs", "rootfs"), 0);
    assert!(
        run.stderr.contains("norootfs.toml:2:1") && run.stderr.contains("no-such-dir"),
        "the diagnostic must point at the profile's rootfs line:\n{}",
        run.describe()
    );
    assert!(!run.stderr.contains("builtin:lxd:"), "{}", run.describe());
}

#[test]
fn init_not_found_is_127_before_anything_is_done() {
    if !common::require_root("init_not_found_is_127_before_anything_is_done") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("noinit");
    let profile = w.profile("noinit", "[init]\ncommand = [\"/sbin/nonexistent\"]");
    let run = host_unchanged(|| w.apply(&profile));
    let report = assert_failed_cleanly(&w, "noinit", &run, "CheckInit", "init.command", 127);
    assert!(
        run.stderr.contains("/sbin/nonexistent"),
        "{}",
        run.describe()
    );
    // Nothing was created: not even the container's process.
    assert_eq!(step(&report, "CloneChild", "name")["status"], "not_run");
    assert!(report.get("pid").is_none_or(Value::is_null), "{report:#}");

    // The default /sbin/init, dangling inside the rootfs.
    let w = World::new("dangling");
    set_init(&w.rootfs, "/sbin/missing");
    let profile = w.profile("dangling", "");
    let run = host_unchanged(|| w.apply(&profile));
    assert_failed_cleanly(&w, "dangling", &run, "CheckInit", "init.command", 127);
    assert!(run.stderr.contains("/sbin/init"), "{}", run.describe());
}

#[test]
fn init_not_executable_is_126() {
    if !common::require_root("init_not_executable_is_126") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("noexec");
    let f = w.rootfs.join("sbin/plain");
    std::fs::write(&f, "#!/bin/sh\necho never\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    set_init(&w.rootfs, "/sbin/plain");
    let profile = w.profile("noexec", "");
    let run = host_unchanged(|| w.apply(&profile));
    assert_failed_cleanly(&w, "noexec", &run, "CheckInit", "init.command", 126);

    // A directory is not executable either.
    let w = World::new("initdir");
    let profile = w.profile("initdir", "[init]\ncommand = [\"/tmp\"]");
    let run = host_unchanged(|| w.apply(&profile));
    assert_failed_cleanly(&w, "initdir", &run, "CheckInit", "init.command", 126);
}

#[test]
fn exec_failure_after_the_setup_is_reported_and_undone() {
    if !common::require_root("exec_failure_after_the_setup_is_reported_and_undone") {
        return;
    }
    let _serial = common::serial();
    // An executable script whose interpreter is missing: the checks pass, execve
    // fails with ENOENT once everything is mounted: 127.
    let w = World::new("nointerp");
    let f = w.rootfs.join("sbin/script");
    std::fs::write(&f, "#!/nonexistent/interpreter\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
    set_init(&w.rootfs, "/sbin/script");
    let profile = w.profile("nointerp", "");
    let run = host_unchanged(|| w.apply(&profile));
    let report = w.report("nointerp");
    assert_eq!(run.code(), 127, "{}", run.describe());
    let last = steps(&report).len() - 1;
    assert_eq!(steps(&report)[last]["op"], "ExecInit");
    assert_report_failed_at(&report, last, 127);
    assert_state_removed(&w);

    // A file the kernel cannot execute (no #!, not ELF): ENOEXEC, 126.
    let w = World::new("garbage");
    let f = w.rootfs.join("sbin/garbage");
    std::fs::write(&f, [0u8, 1, 2, 3, 4, 5, 6, 7]).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
    set_init(&w.rootfs, "/sbin/garbage");
    let profile = w.profile("garbage", "");
    let run = host_unchanged(|| w.apply(&profile));
    let report = w.report("garbage");
    assert_eq!(run.code(), 126, "{}", run.describe());
    assert_report_failed_at(&report, steps(&report).len() - 1, 126);
}

#[test]
fn invalid_profile_is_125_for_apply_and_2_for_check_and_plan() {
    if !common::require_root("invalid_profile_is_125_for_apply_and_2_for_check_and_plan") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("invalid");
    let profile = w.profile(
        "invalid",
        "[devices.x]\ntype = \"unix-char\"\npath = \"/etc/x\"\nmajor = 1\nminor = 3",
    );
    let run = host_unchanged(|| w.apply(&profile));
    assert_eq!(run.code(), 125, "{}", run.describe());
    assert!(run.stderr.contains("/etc/x"), "{}", run.describe());
    assert!(
        !w.report_path("invalid").exists(),
        "a report for a profile that never compiled"
    );
    assert_state_removed(&w);
    for sub in ["check", "plan"] {
        let out = Command::new(common::envc_bin())
            .arg(sub)
            .arg(&profile)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "envc {sub}: {out:?}");
    }
    let out = Command::new(common::envc_bin())
        .args(["apply", "--dry-run"])
        .arg(&profile)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "envc apply --dry-run: {out:?}");
}

// ------------------------------------------------------------------ profiles: devices

#[test]
fn profiles_mask_override_and_add_devices() {
    if !common::require_root("profiles_mask_override_and_add_devices") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("devices");
    let profile = w.profile(
        "devices",
        r#"[devices.fuse]
type = "none"

[devices.zero]
type = "none"

[devices.null]
type = "unix-char"
path = "/dev/null"
major = 1
minor = 3
mode = "0600"
uid = 12
gid = 34

[devices.mytun]
type = "unix-char"
path = "/dev/net/mytun"
major = 10
minor = 200

[devices.loop]
type = "unix-block"
path = "/dev/myloop"
major = 7
minor = 0
mode = "0640"
gid = 6

[devices.fromhost]
type = "unix-char"
path = "/dev/hostnull"
source = "/dev/null"
mode = "0604"

[devices.optional]
type = "unix-char"
path = "/dev/optional"
source = "/dev/envc-test-no-such-node"
required = false

[devices.link]
type = "symlink"
path = "/dev/core"
target = "/proc/kcore""#,
    );
    let run = host_unchanged(|| w.apply(&profile));
    let p = run.probe();
    let dev = dev_of(&p);
    let report = w.report("devices");

    assert!(!dev.contains_key("/dev/fuse"), "masked /dev/fuse is there");
    assert!(!dev.contains_key("/dev/zero"), "masked /dev/zero is there");
    assert!(
        steps(&report)
            .iter()
            .all(|s| s["origin"]["key"] != "devices.fuse" && s["origin"]["key"] != "devices.zero"),
        "masked devices still have steps"
    );
    assert_char(&dev, "/dev/null", 1, 3);
    assert_node(dev_entry(&dev, "/dev/null"), "0600", 12, 34);
    assert_char(&dev, "/dev/net/mytun", 10, 200);
    assert_node(dev_entry(&dev, "/dev/net/mytun"), "0660", 0, 0);
    let blk = dev_entry(&dev, "/dev/myloop");
    assert_eq!(
        (
            blk["type"].as_str(),
            blk["major"].as_u64(),
            blk["minor"].as_u64()
        ),
        (Some("block"), Some(7), Some(0))
    );
    assert_node(blk, "0640", 0, 6);
    assert_char(&dev, "/dev/hostnull", 1, 3);
    assert_node(dev_entry(&dev, "/dev/hostnull"), "0604", 0, 0);
    assert!(!dev.contains_key("/dev/optional"));
    let s = step(&report, "MakeDevice", "devices.optional");
    assert_eq!(s["status"], "skipped", "{s}");
    let l = dev_entry(&dev, "/dev/core");
    assert_eq!(
        (l["type"].as_str(), l["target"].as_str()),
        (Some("symlink"), Some("/proc/kcore"))
    );
    // The other defaults are untouched.
    assert_char(&dev, "/dev/full", 1, 7);
    assert_node(dev_entry(&dev, "/dev/full"), "0666", 0, 0);
    assert_report_ok(&report, 0);
}

// ------------------------------------------------------------------ profiles: mounts

#[test]
fn profiles_add_binds_and_tmpfs() {
    if !common::require_root("profiles_add_binds_and_tmpfs") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("mounts");
    let ro = w.path("src-ro");
    let rw = w.path("src-rw");
    let file = w.path("src-file");
    for d in [&ro, &rw] {
        std::fs::create_dir(d).unwrap();
        std::fs::write(d.join("hello"), "data").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
    }
    std::fs::write(&file, "a file").unwrap();
    let missing = w.path("no-such-source");
    let profile = w.profile(
        "mounts",
        &format!(
            r#"[devices.ro]
type = "disk"
source = "{ro}"
path = "/mnt/ro"
readonly = true

[devices.rw]
type = "disk"
source = "{rw}"
path = "/srv/deep/rw"

[devices.file]
type = "disk"
source = "{file}"
path = "/etc/injected"
readonly = true

[devices.rec]
type = "disk"
source = "{ro}"
path = "/mnt/rec"
recursive = true
readonly = true

[devices.flat]
type = "disk"
source = "{ro}"
path = "/mnt/flat"

[devices.optional]
type = "disk"
source = "{missing}"
path = "/mnt/optional"
required = false

[devices.scratch]
type = "tmpfs"
path = "/var/scratch"
size = "1MiB"
mode = "0750"

[devices.rotmp]
type = "tmpfs"
path = "/mnt/rotmp"
readonly = true"#,
            ro = ro.display(),
            rw = rw.display(),
            file = file.display(),
            missing = missing.display(),
        ),
    );
    // A filesystem mounted below the source, only in a private mount namespace made
    // for this run (`unshare -m`), so the host's mount table is never touched: the
    // recursive bind shows it, the plain one does not.
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-ec"])
        .arg(r#"mount -t tmpfs -o size=64k,mode=0711 envc-test-sub "$0/sub"; exec "$@""#)
        .arg(&ro)
        .arg(common::envc_bin());
    let inner = w.apply_cmd(&profile);
    cmd.args(inner.get_args());
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let run = host_unchanged(|| Envc::spawn(cmd).wait(RUN_TIMEOUT));
    let p = run.probe();
    let mounts = mounts_of(&p);
    let report = w.report("mounts");

    let m = must_mount(&mounts, "/mnt/ro");
    assert!(m.is_read_only(), "{m:?}");
    assert!(m.root.ends_with("/src-ro"), "{m:?}");
    let m = must_mount(&mounts, "/srv/deep/rw");
    assert!(!m.is_read_only(), "{m:?}");
    assert!(
        w.rootfs.join("srv/deep/rw").is_dir(),
        "mount point made inside the rootfs"
    );
    let m = must_mount(&mounts, "/etc/injected");
    assert!(m.is_read_only() && m.root.ends_with("/src-file"), "{m:?}");
    // Recursive (and read-only all the way down) vs. not.
    let m = must_mount(&mounts, "/mnt/rec/sub");
    assert_eq!(m.fs_type, "tmpfs", "{m:?}");
    assert!(
        m.is_read_only(),
        "a recursive read-only bind leaves a submount writable: {m:?}"
    );
    assert!(
        mount_at(&mounts, "/mnt/flat/sub").is_none(),
        "a plain bind brought a submount"
    );
    assert!(
        mount_at(&mounts, "/mnt/ro/sub").is_none(),
        "a plain bind brought a submount"
    );
    assert!(!must_mount(&mounts, "/mnt/flat").is_read_only());
    // The optional missing source: skipped, the container started.
    assert!(mount_at(&mounts, "/mnt/optional").is_none());
    let s = step(&report, "BindMount", "devices.optional");
    assert_eq!(s["status"], "skipped", "{s}");
    // tmpfs with size and mode.
    let m = must_mount(&mounts, "/var/scratch");
    assert_eq!(m.fs_type, "tmpfs");
    assert!(
        m.has_super_option("size=1024k") && m.has_super_option("mode=750"),
        "{m:?}"
    );
    assert!(m.has_option("nosuid") && m.has_option("nodev"), "{m:?}");
    let m = must_mount(&mounts, "/mnt/rotmp");
    assert!(m.is_read_only(), "{m:?}");
    assert_report_ok(&report, 0);
    // The sources are as they were.
    assert_eq!(std::fs::read_to_string(rw.join("hello")).unwrap(), "data");
    assert_eq!(std::fs::read_dir(&ro).unwrap().count(), 2);
}

// ------------------------------------------------------------------ one container per name

#[test]
fn a_second_apply_of_a_running_name_is_refused_and_sigterm_stops_cleanly() {
    if !common::require_root(
        "a_second_apply_of_a_running_name_is_refused_and_sigterm_stops_cleanly",
    ) {
        return;
    }
    let _serial = common::serial();
    let w = World::new("twice");
    // The default run dir (/run/envc): it must be left exactly as found.
    let name = format!("envc-test-twice-{}", std::process::id());
    let profile = w.profile(
        &name,
        "[init]\ncommand = [\"/sbin/probe\", \"--sleep\"]\n[config]\n\"environment.PROBE_CATCH_SIGNALS\" = \"30\"",
    );
    let default_cmd = || {
        let mut c = w.apply_cmd(&profile);
        c.env_remove("ENVC_RUN_DIR");
        c
    };
    let run_envc_existed = Path::new("/run/envc").exists();
    let state_dir = Path::new("/run/envc").join(&name);
    assert!(
        !state_dir.exists(),
        "{} exists before the test",
        state_dir.display()
    );
    let (first, second) = host_unchanged(|| {
        let mut first = Envc::spawn(default_cmd());
        first.wait_for_output(common::PROBE_END, RUN_TIMEOUT);
        assert!(
            state_dir.is_dir(),
            "no state dir {} while running",
            state_dir.display()
        );
        let second = Envc::spawn(default_cmd()).wait(RUN_TIMEOUT);
        assert!(
            state_dir.is_dir(),
            "the refused apply removed the running one's state"
        );
        assert!(
            !first.0.exited(),
            "the first container stopped when the second was refused"
        );
        first.signal(libc::SIGTERM);
        (first.wait(RUN_TIMEOUT), second)
    });
    assert_eq!(second.code(), 125, "{}", second.describe());
    assert!(
        second.stderr.contains("already running"),
        "{}",
        second.describe()
    );
    assert!(
        !second.stdout.contains(common::PROBE_BEGIN),
        "{}",
        second.describe()
    );
    // SIGTERM to envc: a clean stop (SIGPWR to PID 1, which exits 0).
    assert_eq!(first.code(), 0, "{}", first.describe());
    assert!(
        first.stdout.contains("ENVC-PROBE-SIGNAL 30 0"),
        "PID 1 did not get SIGPWR from the host: {}",
        first.describe()
    );
    assert_eq!(
        Path::new("/run/envc").exists(),
        run_envc_existed,
        "/run/envc not left as found"
    );
    assert!(!state_dir.exists());
    assert_report_ok(&w.report(&name), 0);
}

// ------------------------------------------------------------------ failures with the real kernel

/// A step that fails after /proc, /sys and /dev are mounted: everything is undone (the
/// mounts lived in the container's namespace), the report names the step, later steps
/// did not run, and envc exits 125.
fn failing_step(test: &str, body: &str, op: &str, key: &str, prepare: impl FnOnce(&World)) {
    let w = World::new(test);
    prepare(&w);
    let profile = w.profile(test, body);
    let run = host_unchanged(|| w.apply(&profile));
    let report = assert_failed_cleanly(&w, test, &run, op, key, 125);
    let i = index_of(&report, op, key);
    let mount_proc = index_of(&report, "MountProc", "proc.mode");
    assert!(mount_proc < i, "expected a failure after /proc is mounted");
    assert_eq!(steps(&report)[mount_proc]["status"], "done");
    assert!(
        run.stderr
            .contains(&format!("devices.{}", key.trim_start_matches("devices."))),
        "the diagnostic does not point at the profile key {key}:\n{}",
        run.describe()
    );
}

#[test]
fn failures_after_the_mounts_leave_the_host_as_it_was() {
    if !common::require_root("failures_after_the_mounts_leave_the_host_as_it_was") {
        return;
    }
    let _serial = common::serial();
    // A directory bound onto a path that is a file in the rootfs.
    failing_step(
        "dirontofile",
        "[devices.bad]\ntype = \"disk\"\nsource = \"/usr\"\npath = \"/etc/passwd\"\nreadonly = true",
        "BindMount",
        "devices.bad",
        |_| {},
    );
    // A required source that does not exist.
    failing_step(
        "nosource",
        "[devices.bad]\ntype = \"disk\"\nsource = \"/nonexistent/envc-test\"\npath = \"/mnt/x\"",
        "BindMount",
        "devices.bad",
        |_| {},
    );
    // A file bound onto a path that is a directory in the rootfs.
    failing_step(
        "fileontodir",
        "[devices.bad]\ntype = \"disk\"\nsource = \"/etc/hostname\"\npath = \"/tmp\"",
        "BindMount",
        "devices.bad",
        |_| {},
    );
    // mknod below a device node (its parent is not a directory).
    failing_step(
        "mknod",
        "[devices.bad]\ntype = \"unix-char\"\npath = \"/dev/null/x\"\nmajor = 1\nminor = 3",
        "MakeDevice",
        "devices.bad",
        |_| {},
    );
    // (A device on a path envc's own /dev setup uses, like /dev/ptmx, is
    // refused when the profile is checked: see the diagnostics corpus.)
    // A tmpfs whose mount point is a file in the rootfs.
    failing_step(
        "tmpfsfile",
        "[devices.bad]\ntype = \"tmpfs\"\npath = \"/etc/hostname/x\"",
        "MountTmpfs",
        "devices.bad",
        |_| {},
    );
}
