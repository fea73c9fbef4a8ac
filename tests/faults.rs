//! Faults on the real kernel, as root (issue 9): envc SIGKILLed at several points of
//! start-up (foreground, and the detached supervisor before and after PID 1 runs; with
//! a cgroup parent of the profile's own), a full disk under the state directory, a
//! rootfs on a read-only mount, ENOSPC on the container's /dev tmpfs, FIFOs where the
//! rootfs should have directories or init; what crosses into the container through PID
//! 1's executable (runc CVE-2019-5736: PID 1 must be the rootfs's own file, never envc);
//! and what the detached supervisor keeps of its caller (no fd).
//!
//! After each fault: PID 1 and the container's first process are gone (zombies count as
//! gone), `envc list` tells the truth (dead, or absent), `envc gc` leaves the host clean:
//! `HostState` (mounts, links, envc cgroups, /run/envc, envc/probe/busybox processes)
//! equal to before, and the test's private run directory empty or gone.
//!
//! Safety: every test holds `common::serial()`, uses a private ENVC_RUN_DIR and
//! ENVC_LOG_DIR under its scratch directory, container names starting `hz-`, bounded
//! loops and waits, and a `Guard` that force-stops and gc's on the way out. Mounts the
//! tests make (the tiny tmpfs, the read-only bind) are made by `unshare -m` in a private
//! mount namespace that dies with the command, never in the test's own namespace.
//! Processes are only ever signalled by the PID this test got from spawning them or from
//! the state envc wrote for this test's container.

mod common;

use common::proc::{Out, Proc};
use common::{HostState, TempDir, busybox_rootfs, set_init};
use serde_json::Value;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The longest one envc command may take before the test kills it.
const CMD_TIMEOUT: Duration = Duration::from_secs(30);
/// Bounded waits: a process to die, a container to boot.
const WAIT: Duration = Duration::from_secs(10);
/// How long the host may take to look as before (the kernel reaps namespaces lazily).
const SETTLE: Duration = Duration::from_secs(5);

// ------------------------------------------------------------------ processes

fn proc_field(pid: i32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

/// Gone, or a zombie (dead; only its parent's wait is missing).
fn gone_or_zombie(pid: i32) -> bool {
    match proc_field(pid, "State") {
        None => true,
        Some(s) => s.starts_with('Z') || s.starts_with('X'),
    }
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A small pseudo-random sequence (xorshift), seeded from the clock and printed, so a
/// failing run can be repeated with ENVC_FAULT_SEED.
struct Rng(u64);

impl Rng {
    fn new(test: &str) -> Rng {
        let seed = std::env::var("ENVC_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
            | 1;
        println!("{test}: ENVC_FAULT_SEED={seed}");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Zombies named like envc's processes: orphans the host's init has not reaped yet (it
/// may take a second or two).
fn watched_zombies() -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|&pid| {
            proc_field(pid, "State").is_some_and(|s| s.starts_with('Z'))
                && proc_field(pid, "Name")
                    .is_some_and(|n| ["envc", "probe", "busybox"].iter().any(|w| n.contains(w)))
        })
        .collect()
}

/// The host state once it stopped changing (no watched zombie left, for at most 10 s;
/// then two captures 100 ms apart agree, for at most 5 s): what an earlier test left
/// dying (an orphan being reaped, a namespace being freed) must not count as this
/// test's doing.
fn settled_host_state() -> HostState {
    let start = Instant::now();
    while !watched_zombies().is_empty() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let start = Instant::now();
    let mut last = HostState::capture();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = HostState::capture();
        if now == last || start.elapsed() > Duration::from_secs(5) {
            return now;
        }
        last = now;
    }
}

// ------------------------------------------------------------------ a test's world

/// A scratch directory with a busybox rootfs (init: the probe), private run and log
/// directories, and the profiles.
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

    /// Writes `NAME.toml`: `name`, `rootfs = "rootfs"`, then `body`.
    fn profile(&self, name: &str, body: &str) -> PathBuf {
        assert!(
            name.starts_with("hz-"),
            "container names here start with hz-"
        );
        let p = self.dir.path().join(format!("{name}.toml"));
        let text = format!("name = \"{name}\"\nrootfs = \"rootfs\"\n{body}\n");
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    /// `envc ARGS` with this world's directories.
    fn cmd<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new(common::envc_bin());
        cmd.args(args)
            .env("ENVC_RUN_DIR", &self.run_dir)
            .env("ENVC_LOG_DIR", &self.log_dir);
        cmd
    }

    fn envc<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Out {
        Proc::spawn(self.cmd(args)).wait(CMD_TIMEOUT)
    }

    /// `sh -c SCRIPT` in a private mount namespace (`unshare -m`, propagation private:
    /// nothing it mounts is seen by the host, and it all goes when the command ends).
    /// The script gets this world's directories as $RUN, $LOG, $ROOTFS, $ENVC.
    fn in_private_ns(&self, script: &str) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "sh", "-ec"])
            .arg(script)
            .env("RUN", &self.run_dir)
            .env("LOG", &self.log_dir)
            .env("ROOTFS", &self.rootfs)
            .env("ENVC", common::envc_bin())
            .env("ENVC_RUN_DIR", &self.run_dir)
            .env("ENVC_LOG_DIR", &self.log_dir)
            .current_dir(self.dir.path());
        cmd
    }

    fn state_dir(&self, name: &str) -> PathBuf {
        self.run_dir.join(name)
    }

    fn info(&self, name: &str) -> Option<Value> {
        let text = std::fs::read_to_string(self.state_dir(name).join("info.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn console_log(&self, name: &str) -> String {
        std::fs::read(self.log_dir.join(name).join("console.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// `envc list --format json`'s entry for `name`.
    fn list_entry(&self, name: &str) -> Option<Value> {
        let out = self.envc(&["list", "--format", "json"]);
        out.expect(0, "envc list --format json");
        let all: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("list is not JSON: {e}\n{}", out.describe()));
        all.as_array()
            .expect("list prints an array")
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
    }

    /// `envc list` tells the truth about a container whose supervisor is dead: it is
    /// absent (the supervisor died before making its state) or listed as dead.
    fn assert_listed_dead_or_absent(&self, name: &str) {
        if let Some(e) = self.list_entry(name) {
            let state = e["state"].as_str().unwrap_or("");
            assert!(state.starts_with("dead"), "listed as {state:?}: {e:#}");
            assert!(
                e["uptime_secs"].is_null(),
                "a dead container has no uptime: {e:#}"
            );
        }
    }

    /// `envc gc`: our container's leftovers removed, no failure about it. (Other
    /// developers' containers may show in gc's output while root suites run side by
    /// side: only ours is judged.)
    fn gc(&self, name: &str) -> Out {
        let out = self.envc(&["gc"]);
        for l in out
            .stderr
            .lines()
            .filter(|l| l.contains("could not remove"))
        {
            assert!(
                !l.contains(name),
                "gc failed on ours: {l}\n{}",
                out.describe()
            );
        }
        assert!(
            matches!(out.code(), Some(0) | Some(1)),
            "{}",
            out.describe()
        );
        assert!(
            !self.state_dir(name).exists(),
            "gc left {}\n{}",
            self.state_dir(name).display(),
            out.describe()
        );
        out
    }

    /// Processes of this world's container that are alive (not zombies): PID 1 (its
    /// executable is in this rootfs) and the container's first process before its exec
    /// (envc's binary, environment naming this world's run directory).
    fn live_container_processes(&self) -> Vec<String> {
        let rootfs = self.rootfs.canonicalize().unwrap_or(self.rootfs.clone());
        let marker = format!("ENVC_RUN_DIR={}", self.run_dir.display());
        let me = std::process::id() as i32;
        let mut found = Vec::new();
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return found;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid == me || gone_or_zombie(pid) {
                continue;
            }
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            let ours = exe.starts_with(&rootfs)
                || std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()));
            if ours {
                let comm = proc_field(pid, "Name").unwrap_or_default();
                found.push(format!("pid {pid} ({comm}) exe {}", exe.display()));
            }
        }
        found
    }

    /// Waits until nothing of this world's container runs any more.
    fn wait_container_gone(&self, what: &str) {
        let start = Instant::now();
        loop {
            let live = self.live_container_processes();
            if live.is_empty() {
                return;
            }
            assert!(
                start.elapsed() < WAIT,
                "{what}: still running after {WAIT:?}: {live:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The run directory holds nothing of ours (gc removes it when it is empty).
    fn assert_run_dir_clean(&self) {
        let left: Vec<String> = std::fs::read_dir(&self.run_dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "left in the run directory: {left:?}");
    }

    /// A guard for container `name`: on drop, `envc stop --force` if its state directory
    /// is there, then gc if anything is left.
    fn guard<'a>(&'a self, name: &str) -> Guard<'a> {
        Guard {
            world: self,
            name: name.to_string(),
        }
    }
}

struct Guard<'a> {
    world: &'a World,
    name: String,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let w = self.world;
        let run = |args: &[&str]| {
            // Waits up to 20 s, then kills it; never panics in a drop.
            let _ = Proc::spawn(w.cmd(args)).finish(Duration::from_secs(20));
        };
        if w.state_dir(&self.name).exists() {
            run(&["stop", "--force", &self.name]);
        }
        if w.run_dir.exists() {
            let start = Instant::now();
            while !w.live_container_processes().is_empty()
                && start.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            run(&["gc"]);
        }
    }
}

/// The probe as PID 1, pausing after it printed what it saw, until SIGPWR or SIGRTMIN+3
/// (`envc stop`). A p2p NIC, so a host-side link exists while the container runs and
/// must not outlive it.
const SLEEPER: &str = r#"
[config]
"environment.PROBE_CATCH_SIGNALS" = "30,37"

[init]
command = ["/sbin/probe", "--sleep"]
stop-timeout = 5

[devices.eth0]
type = "nic"
nictype = "p2p"
"#;

/// The envc cgroups named `name` in every hierarchy (parent `envc`).
fn cgroups_of(name: &str) -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    common::parse_mountinfo(&mountinfo)
        .into_iter()
        .filter(|m| m.fs_type == "cgroup" || m.fs_type == "cgroup2")
        .map(|m| Path::new(&m.mount_point).join("envc").join(name))
        .filter(|p| p.exists())
        .collect()
}

// ------------------------------------------------------------------ SIGKILL during start-up

/// What a killed start had got to, for the summary.
fn stage(w: &World, name: &str) -> &'static str {
    if w.info(name)
        .is_some_and(|i| i["pid"].as_i64().unwrap_or(0) > 0)
    {
        "PID 1 running"
    } else if !cgroups_of(name).is_empty() {
        "cgroup made"
    } else if w.state_dir(name).exists() {
        "state dir made"
    } else {
        "nothing yet"
    }
}

/// `envc apply` (foreground: envc is the supervisor) SIGKILLed 0–20 ms after it was
/// started, many times: whatever it got to, the container's processes die, `list` says
/// dead or nothing, `gc` cleans up, and the host is as before — after every kill.
#[test]
fn sigkill_of_a_starting_envc_leaves_nothing_after_gc() {
    if !common::require_root("sigkill_of_a_starting_envc_leaves_nothing_after_gc") {
        return;
    }
    let _s = common::serial();
    let w = World::new("hz-kill");
    let name = "hz-kill";
    let profile = w.profile(name, SLEEPER);
    let _g = w.guard(name);
    // A first, undisturbed run warms the caches (and proves the profile works).
    let before = settled_host_state();
    let p = Proc::spawn(w.cmd(&["apply".as_ref(), profile.as_os_str()]));
    let start = Instant::now();
    while !w.console_log(name).contains(common::PROBE_END) {
        assert!(start.elapsed() < WAIT, "the probe did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let full_start = start.elapsed();
    p.signal(libc::SIGKILL);
    let _ = p.wait(WAIT);
    w.wait_container_gone("PID 1 after its supervisor was killed");
    w.gc(name);
    before.assert_restored_within(SETTLE);

    let mut rng = Rng::new("sigkill_of_a_starting_envc");
    let mut delays: Vec<u64> = vec![0, 1, 2, 3, 5, 8, 12, 16, 20];
    delays.extend((0..7).map(|_| rng.below(21)));
    // And a few spread over the whole start-up (it may take longer than 20 ms).
    let whole = full_start.as_millis() as u64;
    delays.extend((0..4).map(|_| rng.below(whole.max(1) + 1)));
    let mut summary = Vec::new();
    for (i, d) in delays.iter().enumerate() {
        let before = settled_host_state();
        let p = Proc::spawn(w.cmd(&["apply".as_ref(), profile.as_os_str()]));
        std::thread::sleep(Duration::from_millis(*d));
        p.signal(libc::SIGKILL);
        let killed = stage(&w, name);
        let out = p.wait(WAIT);
        assert!(
            out.status.is_some_and(|s| s.code().is_none()),
            "run {i}: envc was not killed (it finished first?)\n{}",
            out.describe()
        );
        w.wait_container_gone(&format!("run {i} (killed after {d} ms, {killed})"));
        w.assert_listed_dead_or_absent(name);
        w.gc(name);
        assert!(
            cgroups_of(name).is_empty(),
            "run {i}: gc left cgroups {:?}",
            cgroups_of(name)
        );
        w.assert_run_dir_clean();
        before.assert_restored_within(SETTLE);
        summary.push(format!("{d} ms: {killed}"));
    }
    println!(
        "full start-up {full_start:?}; killed at: {}",
        summary.join(", ")
    );
}

/// The detached supervisor SIGKILLed while it starts the container (0–20 ms after it
/// appeared): `apply -d` does not hang and fails with 125; then as above.
#[test]
fn sigkill_of_a_starting_detached_supervisor() {
    if !common::require_root("sigkill_of_a_starting_detached_supervisor") {
        return;
    }
    let _s = common::serial();
    let w = World::new("hz-dkill");
    let name = "hz-dkill";
    let profile = w.profile(name, SLEEPER);
    let _g = w.guard(name);
    let mut rng = Rng::new("sigkill_of_a_starting_detached_supervisor");
    let marker = format!("ENVC_RUN_DIR={}", w.run_dir.display());
    let mut summary = Vec::new();
    for i in 0..6 {
        let before = settled_host_state();
        let mut apply = Proc::spawn(w.cmd(&["apply".as_ref(), "-d".as_ref(), profile.as_os_str()]));
        let parent = apply.pid();
        // The supervisor: apply's forked child (it has our run directory in its
        // environment; it calls setsid, but its parent stays `apply` until that exits).
        // A scan of /proc can take longer than a whole start: once `apply` has
        // returned, the supervisor is the process of ours whose parent is not ours
        // (the container's first process, before its exec, is the supervisor's
        // child), and this run kills it after PID 1 ran.
        let ours = |pid: i32| {
            pid != parent
                && std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()))
        };
        let start = Instant::now();
        let sup = loop {
            let returned = apply.exited();
            let found = std::fs::read_dir("/proc").ok().and_then(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
                    .find(|&pid| {
                        let pp = proc_field(pid, "PPid").and_then(|p| p.parse::<i32>().ok());
                        ours(pid)
                            && (pp == Some(parent) || (returned && pp.is_some_and(|p| !ours(p))))
                    })
            });
            if let Some(pid) = found {
                break pid;
            }
            assert!(start.elapsed() < WAIT, "no supervisor appeared");
            std::thread::sleep(Duration::from_micros(200));
        };
        let d = rng.below(21);
        std::thread::sleep(Duration::from_millis(d));
        let killed = stage(&w, name);
        // SAFETY: kill(2) of the supervisor this test started; it cannot have been
        // reaped yet: its parent `apply` waits for it (and we hold `apply`).
        unsafe { libc::kill(sup, libc::SIGKILL) };
        let out = apply.wait(CMD_TIMEOUT);
        w.wait_container_gone(&format!("run {i} (killed after {d} ms)"));
        match out.code() {
            // Killed before PID 1 ran: apply -d says it failed, and why.
            Some(125) => {
                assert!(
                    !out.stderr.trim().is_empty(),
                    "run {i}: apply -d failed without a word when its supervisor was \
                     killed\n{}",
                    out.describe()
                );
                summary.push(format!(
                    "{d} ms: {killed}: apply -d → 125 {:?}",
                    out.stderr.trim()
                ));
            }
            // PID 1 ran first: apply -d had already returned the name.
            Some(0) => {
                assert_eq!(out.stdout, format!("{name}\n"), "{}", out.describe());
                summary.push(format!("{d} ms: {killed}: apply -d → 0 (started)"));
            }
            _ => panic!("run {i}: apply -d\n{}", out.describe()),
        }
        w.assert_listed_dead_or_absent(name);
        w.gc(name);
        w.assert_run_dir_clean();
        before.assert_restored_within(SETTLE);
    }
    println!("killed at: {}", summary.join(", "));
}

/// The detached supervisor SIGKILLed after PID 1 runs (0–20 ms after `apply -d`
/// returned, and once after the probe printed): PID 1 dies with it, `list` says dead,
/// `stop` points at gc, gc cleans up.
#[test]
fn sigkill_of_a_running_supervisor() {
    if !common::require_root("sigkill_of_a_running_supervisor") {
        return;
    }
    let _s = common::serial();
    let w = World::new("hz-rkill");
    let name = "hz-rkill";
    let profile = w.profile(name, SLEEPER);
    let _g = w.guard(name);
    let mut rng = Rng::new("sigkill_of_a_running_supervisor");
    for i in 0..4 {
        let before = settled_host_state();
        let out = w.envc(&["apply".as_ref(), "-d".as_ref(), profile.as_os_str()]);
        out.expect(0, "envc apply -d");
        let info = w.info(name).expect("info.json once apply -d returned");
        let (pid, sup) = (
            info["pid"].as_i64().unwrap() as i32,
            info["supervisor"].as_i64().unwrap() as i32,
        );
        assert_eq!(
            w.list_entry(name).expect("listed")["state"],
            "running",
            "run {i}"
        );
        if i == 0 {
            let start = Instant::now();
            while !w.console_log(name).contains(common::PROBE_END) {
                assert!(start.elapsed() < WAIT, "the probe did not print");
                std::thread::sleep(Duration::from_millis(10));
            }
        } else {
            std::thread::sleep(Duration::from_millis(rng.below(21)));
        }
        assert_eq!(proc_field(sup, "Name").as_deref(), Some("envc"));
        // SAFETY: kill(2) of the supervisor this test started (its PID from the state
        // it wrote a moment ago, checked to be an envc process).
        unsafe { libc::kill(sup, libc::SIGKILL) };
        wait_until("the supervisor to die", WAIT, || gone_or_zombie(sup));
        wait_until("PID 1 to die with its supervisor", WAIT, || {
            gone_or_zombie(pid)
        });
        w.wait_container_gone(&format!("run {i}"));
        let e = w.list_entry(name).expect("a dead container stays listed");
        assert!(e["state"].as_str().unwrap().starts_with("dead"), "{e:#}");
        let stop = w.envc(&["stop", name]);
        stop.expect(1, "envc stop of a dead container");
        assert!(stop.stderr.contains("envc gc"), "{}", stop.describe());
        let gc = w.gc(name);
        assert!(gc.stdout.contains("removed state"), "{}", gc.describe());
        assert!(cgroups_of(name).is_empty(), "{:?}", cgroups_of(name));
        w.assert_run_dir_clean();
        before.assert_restored_within(SETTLE);
    }
}

// ------------------------------------------------------------------ full disks, read-only rootfs

/// Runs `envc apply PROFILE` in a private mount namespace whose run directory is a tiny
/// tmpfs filled by `fill` (shell), and returns envc's result.
fn apply_with_full_run_dir(w: &World, profile: &Path, tmpfs_opts: &str, fill: &str) -> Out {
    std::fs::create_dir_all(&w.run_dir).unwrap();
    let script = format!(
        "mount -t tmpfs -o {tmpfs_opts},mode=0755 hz-full \"$RUN\"\n\
         {fill}\n\
         exec \"$ENVC\" apply \"$1\""
    );
    let mut cmd = w.in_private_ns(&script);
    cmd.arg("sh").arg(profile);
    Proc::spawn(cmd).wait(CMD_TIMEOUT)
}

fn assert_clean_125(out: &Out, what: &str) {
    out.expect(125, what);
    assert!(
        out.stderr.contains("No space left on device"),
        "{what}: the error does not say why\n{}",
        out.describe()
    );
    assert!(
        !out.stdout.contains(common::PROBE_BEGIN),
        "{what}: PID 1 ran\n{}",
        out.describe()
    );
}

/// The state directory's filesystem has no inode left: envc cannot make its state, says
/// so, exits 125, and nothing is left (the tmpfs goes with its namespace: what is checked
/// is the host, the processes and the cgroups).
#[test]
fn no_inodes_under_the_state_dir_is_a_clear_125() {
    if !common::require_root("no_inodes_under_the_state_dir_is_a_clear_125") {
        return;
    }
    let _s = common::serial();
    let w = World::new("hz-full");
    let name = "hz-full";
    let profile = w.profile(name, SLEEPER);
    let _g = w.guard(name);
    let before = settled_host_state();
    let out = apply_with_full_run_dir(
        &w,
        &profile,
        "size=64k,nr_inodes=8",
        "i=0; while [ $i -lt 64 ] && touch \"$RUN/fill$i\" 2>/dev/null; do i=$((i+1)); done",
    );
    assert_clean_125(&out, "no inodes under the state dir");
    w.wait_container_gone("after a full state dir");
    assert!(cgroups_of(name).is_empty(), "{:?}", cgroups_of(name));
    before.assert_restored_within(SETTLE);
}

/// The state directory's filesystem has inodes but no byte left: envc cannot write its
/// state (info.json, which `list`, `stop` and `gc` depend on): a clear error, 125, and
/// nothing left — not a container that runs without its state.
#[test]
fn no_space_under_the_state_dir_is_a_clear_125() {
    if !common::require_root("no_space_under_the_state_dir_is_a_clear_125") {
        return;
    }
    let _s = common::serial();
    let w = World::new("hz-nospc");
    let name = "hz-nospc";
    // An init that exits at once: if envc wrongly starts it anyway, the test ends.
    let profile = w.profile(name, "");
    let _g = w.guard(name);
    let before = settled_host_state();
    let out = apply_with_full_run_dir(
        &w,
        &profile,
        "size=16k",
        "dd if=/dev/zero of=\"$RUN/fill\" bs=4096 2>/dev/null || true",
    );
    assert_clean_125(&out, "no space under the state dir");
    w.wait_container_gone("after a full state dir");
    assert!(cgroups_of(name).is_empty(), "{:?}", cgroups_of(name));
    before.assert_restored_within(SETTLE);
}

/// A rootfs on a read-only mount: /dev, /proc and /sys exist in it and everything envc
/// makes goes on its own mounts (the /dev tmpfs, proc, sysfs), so the container works;
/// its root stays read-only inside (envc does not make it writable).
#[test]
fn a_rootfs_on_a_read_only_mount_works() {
    if !common::require_root("a_rootfs_on_a_read_only_mount_works") {
        return;
    }
    let _s = common::serial();
    let w = World::new("hz-ro");
    let name = "hz-ro";
    let profile = w.profile(name, "");
    let _g = w.guard(name);
    let before = settled_host_state();
    let script = "mount --bind \"$ROOTFS\" \"$ROOTFS\"\n\
                  mount -o remount,bind,ro \"$ROOTFS\"\n\
                  if touch \"$ROOTFS/rw-check\" 2>/dev/null; then echo 'rootfs is writable'; exit 99; fi\n\
                  exec \"$ENVC\" apply \"$1\"";
    let mut cmd = w.in_private_ns(script);
    cmd.arg("sh").arg(&profile);
    let out = Proc::spawn(cmd).wait(CMD_TIMEOUT);
    out.expect(0, "envc apply on a read-only rootfs");
    let probe = common::extract_probe_json(&out.stdout);
    let root = probe["mountinfo"]
        .as_array()
        .expect("probe mountinfo")
        .iter()
        .filter_map(|l| common::parse_mountinfo_line(l.as_str().unwrap()))
        .rfind(|m| m.mount_point == "/")
        .expect("a root mount inside");
    assert!(root.is_read_only(), "the root is writable inside: {root:?}");
    assert!(!w.rootfs.join("rw-check").exists());
    w.wait_container_gone("after the run");
    before.assert_restored_within(SETTLE);
}

/// The container's /dev tmpfs is full (one page; symlinks with long targets take a page
/// each): the step that hits ENOSPC fails, pointing at the device that asked for it; exit
/// 125; everything done is undone.
#[test]
fn enospc_on_the_dev_tmpfs_fails_at_the_right_device() {
    if !common::require_root("enospc_on_the_dev_tmpfs_fails_at_the_right_device") {
        return;
    }
    let _s = common::serial();
    let w = World::new("hz-devfull");
    let name = "hz-devfull";
    let target = format!("/{}", "x".repeat(3000));
    // Two pages: the boot id's file and the first long symlink.
    let mut body = String::from("[dev]\nsize = 8192\n");
    for i in 0..4 {
        body.push_str(&format!(
            "[devices.long{i}]\ntype = \"symlink\"\npath = \"/dev/long{i}\"\ntarget = \"{target}\"\n"
        ));
    }
    let profile = w.profile(name, &body);
    let _g = w.guard(name);
    let before = settled_host_state();
    let report = w.dir.path().join("report.json");
    let out = w.envc(&[
        "apply".as_ref(),
        profile.as_os_str(),
        "--report".as_ref(),
        report.as_os_str(),
    ]);
    out.expect(125, "ENOSPC on /dev");
    assert!(
        out.stderr.contains("No space left on device"),
        "{}",
        out.describe()
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let steps = report["steps"].as_array().unwrap();
    let failed: Vec<&Value> = steps.iter().filter(|s| s["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{report:#}");
    let f = failed[0];
    assert_eq!(f["op"], "MakeSymlink", "{f:#}");
    let key = f["origin"]["key"].as_str().unwrap();
    assert!(
        key.starts_with("devices.long") && key != "devices.long0",
        "the first long symlink fits; a later one fails: {f:#}"
    );
    // The diagnostic points at that device in the profile.
    assert!(
        out.stderr.contains(&format!("[{}]", key)) || out.stderr.contains(key),
        "{}",
        out.describe()
    );
    let i = steps.iter().position(|s| s["status"] == "failed").unwrap();
    for s in &steps[i + 1..] {
        assert_eq!(s["status"], "not_run", "after the failure: {s:#}");
    }
    assert!(!out.stdout.contains(common::PROBE_BEGIN), "PID 1 ran");
    w.wait_container_gone("after the failure");
    assert!(cgroups_of(name).is_empty(), "{:?}", cgroups_of(name));
    assert!(!w.state_dir(name).exists());
    before.assert_restored_within(SETTLE);
}

// ------------------------------------------------------------------ PID 1's executable

/// runc CVE-2019-5736: a container that can reach the runtime's binary through
/// /proc/PID/exe can overwrite it. envc never execs itself in the container: PID 1 is
/// exec'd from the rootfs. From inside: /proc/1/exe is the rootfs's busybox (the same
/// inode the host sees in the rootfs), no process in the container has envc's binary
/// as its executable, envc's host path does not exist inside; after the container has
/// tried to append to every /proc/*/exe it can see, envc's binary is unchanged.
#[test]
fn pid1_executable_is_the_rootfs_file_never_envc() {
    if !common::require_root("pid1_executable_is_the_rootfs_file_never_envc") {
        return;
    }
    let _s = common::serial();
    let w = World::new("hz-exe");
    let name = "hz-exe";
    set_init(&w.rootfs, "/bin/busybox");
    let envc = common::envc_bin().canonicalize().unwrap();
    let envc_md = std::fs::metadata(&envc).unwrap();
    let envc_bytes = std::fs::read(&envc).unwrap();
    let script = r#"
echo "exe1=$(readlink /proc/1/exe)"
echo "exe1id=$(stat -L -c %d:%i /proc/1/exe)"
for p in /proc/[0-9]*; do
  [ -e "$p/exe" ] || continue
  echo "exeid=$(stat -L -c %d:%i "$p/exe" 2>/dev/null)"
  if (echo x >> "$p/exe") 2>/dev/null; then echo "writable=$p/exe"; fi
done
if [ -e "$ENVC_HOST_BIN" ]; then echo "envc-visible=$ENVC_HOST_BIN"; fi
echo done-exe-check
"#;
    let body = format!(
        "[init]\ncommand = [\"/bin/sh\", \"-c\", {script:?}]\n[config]\n\"environment.ENVC_HOST_BIN\" = {:?}\n",
        envc.display().to_string()
    );
    let profile = w.profile(name, &body);
    let _g = w.guard(name);
    let before = settled_host_state();
    let out = w.envc(&["apply".as_ref(), profile.as_os_str()]);
    out.expect(0, "the exe check");
    let text = out.stdout.replace('\r', "");
    assert!(text.contains("done-exe-check"), "{}", out.describe());
    let field = |k: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(field("exe1"), vec!["/bin/busybox".to_string()], "{text}");
    let busybox = std::fs::metadata(w.rootfs.join("bin/busybox")).unwrap();
    let busybox_id = format!("{}:{}", busybox.dev(), busybox.ino());
    let envc_id = format!("{}:{}", envc_md.dev(), envc_md.ino());
    assert_eq!(field("exe1id"), vec![busybox_id.clone()], "{text}");
    let ids = field("exeid");
    assert!(!ids.is_empty(), "{text}");
    assert!(
        !ids.contains(&envc_id),
        "a process in the container runs envc's binary ({envc_id}): {text}"
    );
    // (Writing through /proc/N/exe reaches only the rootfs's own files, which are the
    // container's; the attempt is there to hit envc's binary if it were reachable.)
    println!("writable from inside: {:?}", field("writable"));
    assert!(field("envc-visible").is_empty(), "{text}");
    let after = std::fs::metadata(&envc).unwrap();
    assert_eq!(
        (after.len(), after.mtime(), after.mtime_nsec()),
        (envc_md.len(), envc_md.mtime(), envc_md.mtime_nsec()),
        "envc's binary changed"
    );
    assert!(
        std::fs::read(&envc).unwrap() == envc_bytes,
        "envc's binary changed"
    );
    w.wait_container_gone("after the run");
    before.assert_restored_within(SETTLE);
}

// ------------------------------------------------------------------ the detached supervisor's fds

/// `envc apply -d` leaves a supervisor behind for as long as the container runs; it may
/// keep none of its caller's fds (0–2 go to /dev/null and the log). A caller that passed
/// a pipe (a CI runner's log pipe, `$(…)`, `3>&1`) must see its end of file once
/// `apply -d` returned, not when the container stops.
#[test]
fn a_detached_supervisor_keeps_no_fd_of_its_caller() {
    if !common::require_root("a_detached_supervisor_keeps_no_fd_of_its_caller") {
        return;
    }
    let _s = common::serial();
    let w = World::new("hz-fds");
    let name = "hz-fds";
    let profile = w.profile(name, SLEEPER);
    let _g = w.guard(name);
    let before = settled_host_state();
    let mut fds = [0; 2];
    // SAFETY: pipe2 into a valid array; both ends close-on-exec in this process.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh fds, owned from here on.
    let (rd, wr) = unsafe {
        use std::os::fd::FromRawFd;
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    let mut cmd = w.cmd(&["apply".as_ref(), "-d".as_ref(), profile.as_os_str()]);
    let raw = {
        use std::os::fd::AsRawFd;
        wr.as_raw_fd()
    };
    // SAFETY: only async-signal-safe calls between fork and exec (dup2 clears
    // close-on-exec on fd 3: envc gets the pipe as its fd 3).
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = Proc::spawn(cmd).wait(CMD_TIMEOUT);
    drop(wr);
    out.expect(0, "envc apply -d with a pipe on fd 3");
    let sup = w.info(name).expect("info.json")["supervisor"]
        .as_i64()
        .unwrap() as i32;
    // End of file on the pipe within a few seconds: nobody else holds its write end.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rd = rd;
        let mut buf = Vec::new();
        let _ = rd.read_to_end(&mut buf);
        let _ = tx.send(buf.len());
    });
    let eof = rx.recv_timeout(Duration::from_secs(3)).is_ok();
    let sup_fds: Vec<String> = std::fs::read_dir(format!("/proc/{sup}/fd"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    let target = std::fs::read_link(e.path()).unwrap_or_default();
                    format!(
                        "{} -> {}",
                        e.file_name().to_string_lossy(),
                        target.display()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let stop = w.envc(&["stop", name]);
    stop.expect(0, "envc stop");
    // (If the supervisor held the pipe, the reader thread ends now, at the stop.)
    assert!(
        eof,
        "the detached supervisor ({sup}) holds its caller's pipe; its fds: {sup_fds:#?}"
    );
    w.wait_container_gone("after the stop");
    before.assert_restored_within(SETTLE);
}

// ------------------------------------------------------------------ FIFOs in a hostile rootfs

/// A FIFO where the rootfs should have a directory (/dev, /proc, /sys, a mount target's
/// parent) or init's file: envc never opens it for reading (which would block for ever),
/// fails with a clear error naming the path (125; 126 for init) and leaves nothing.
#[test]
fn fifos_where_directories_or_init_are_expected_fail_cleanly() {
    if !common::require_root("fifos_where_directories_or_init_are_expected_fail_cleanly") {
        return;
    }
    let _s = common::serial();
    let w = World::new("hz-fifo");
    let name = "hz-fifo";
    let _g = w.guard(name);
    let mkfifo = |p: &Path| {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a valid C string, in the test's own rootfs.
        assert_eq!(
            unsafe { libc::mkfifo(c.as_ptr(), 0o644) },
            0,
            "mkfifo {p:?}"
        );
    };
    // (what is replaced by a FIFO, the profile's body, exit code, what the error names)
    let cases: [(&str, &str, i32, &str); 5] = [
        ("dev", "", 125, "/dev"),
        ("proc", "", 125, "/proc"),
        ("sys", "", 125, "/sys"),
        ("sbin/init", "", 126, "/sbin/init"),
        (
            "srv",
            "[devices.t]\ntype = \"tmpfs\"\npath = \"/srv/x\"\n",
            125,
            "/srv",
        ),
    ];
    for (what, body, code, names) in cases {
        let before = settled_host_state();
        let p = w.rootfs.join(what);
        let was_dir = p.is_dir();
        if was_dir {
            std::fs::remove_dir(&p).unwrap();
        } else if p.symlink_metadata().is_ok() {
            std::fs::remove_file(&p).unwrap();
        }
        mkfifo(&p);
        let profile = w.profile(name, body);
        let out = w.envc(&["apply".as_ref(), profile.as_os_str()]);
        out.expect(code, &format!("a FIFO at /{what}"));
        assert!(out.stderr.contains(names), "{what}: {}", out.describe());
        assert!(
            !out.stdout.contains(common::PROBE_BEGIN),
            "{what}: PID 1 ran"
        );
        w.wait_container_gone(what);
        assert!(!w.state_dir(name).exists(), "{what}: state left");
        before.assert_restored_within(SETTLE);
        std::fs::remove_file(&p).unwrap();
        if was_dir {
            std::fs::create_dir(&p).unwrap();
        } else if what == "sbin/init" {
            set_init(&w.rootfs, "/sbin/probe");
        }
    }
}

// ------------------------------------------------------------------ a custom cgroup parent

/// envc SIGKILLed after it made the container's cgroup but before PID 1 ran, with a
/// cgroup parent of the profile's own (`envc-hz`, not the default `envc` that gc always
/// looks in): gc must still find and remove the cgroups (the state must name the parent
/// from the start, not only once PID 1 runs).
#[test]
fn sigkill_before_pid1_with_a_custom_cgroup_parent_is_cleaned_by_gc() {
    if !common::require_root("sigkill_before_pid1_with_a_custom_cgroup_parent_is_cleaned_by_gc") {
        return;
    }
    let _s = common::serial();
    let w = World::new("hz-cgparent");
    let name = "hz-cgparent";
    let body = format!("{SLEEPER}\n[cgroup]\nparent = \"envc-hz\"\n");
    let profile = w.profile(name, &body);
    let _g = w.guard(name);
    let custom = |name: &str| -> Vec<PathBuf> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        common::parse_mountinfo(&mountinfo)
            .into_iter()
            .filter(|m| m.fs_type == "cgroup" || m.fs_type == "cgroup2")
            .map(|m| Path::new(&m.mount_point).join("envc-hz").join(name))
            .filter(|p| p.exists())
            .collect()
    };
    /// Until gc does it: removes (rmdir, so only empty ones) the cgroups this test made.
    struct RemoveCgroups;
    impl Drop for RemoveCgroups {
        fn drop(&mut self) {
            let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            for m in common::parse_mountinfo(&mountinfo)
                .into_iter()
                .filter(|m| m.fs_type == "cgroup" || m.fs_type == "cgroup2")
            {
                let parent = Path::new(&m.mount_point).join("envc-hz");
                for _ in 0..50 {
                    let _ = std::fs::remove_dir(parent.join("hz-cgparent"));
                    if std::fs::remove_dir(&parent).is_ok() || !parent.exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
    let _cleanup = RemoveCgroups;
    let before = settled_host_state();
    let mut rng = Rng::new("sigkill_before_pid1_with_a_custom_cgroup_parent");
    let mut hit = false;
    // Kill until once it happened between the cgroup and PID 1 (bounded).
    for i in 0..12 {
        let p = Proc::spawn(w.cmd(&["apply".as_ref(), profile.as_os_str()]));
        let start = Instant::now();
        while custom(name).is_empty() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_micros(500));
        }
        std::thread::sleep(Duration::from_millis(rng.below(3)));
        // PID 1 ran once the state names it (a state written earlier says pid 0).
        let info = w
            .info(name)
            .is_some_and(|i| i["pid"].as_i64().unwrap_or(0) > 0);
        p.signal(libc::SIGKILL);
        let _ = p.wait(WAIT);
        w.wait_container_gone(&format!("run {i}"));
        hit = hit || (!info && !custom(name).is_empty());
        w.assert_listed_dead_or_absent(name);
        let gc = w.gc(name);
        assert!(
            custom(name).is_empty(),
            "run {i} (killed {} PID 1 ran): gc left {:?}\n{}",
            if info { "after" } else { "before" },
            custom(name),
            gc.describe()
        );
        before.assert_restored_within(SETTLE);
        if hit {
            break;
        }
    }
    assert!(hit, "never killed between the cgroup and PID 1");
}
