//! The container lifecycle as root (issue 5, spec §8): `envc apply [-d]`, `list`,
//! `stop`, `reboot`, `console`, `gc`, on busybox rootfs whose PID 1 is the static probe
//! (tests/probe/probe.c), busybox init with an /etc/inittab, or a busybox shell.
//!
//! Every test holds `common::serial()`, waits with deadlines, and leaves the host as it
//! found it (`HostState`: mounts, links, processes, envc cgroups, /run/envc). A `Guard`
//! per container runs `envc stop --force NAME` and, if anything is left, `envc gc` when
//! the test ends, passed or failed. Container names start with `lc-`.
//!
//! Some tests use the default directories (/run/envc, /var/log/envc) and assert /run/envc
//! is left as found; the others use a private ENVC_RUN_DIR / ENVC_LOG_DIR.

mod common;

use common::proc::Out;
use common::pty::{KillOnDrop, Pty, wait_pty_child};
use common::world::*;
use common::{HostState, set_init};
use serde_json::Value;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long the host may take to look as before once envc is done.
const SETTLE: Duration = Duration::from_secs(5);

// ------------------------------------------------------------------ profiles

/// The probe as PID 1, sleeping; `catch`: PROBE_CATCH_SIGNALS (blocked, then awaited:
/// the probe prints `ENVC-PROBE-SIGNAL N` and exits with PROBE_EXIT).
fn sleeper(catch: &str, exit: u8) -> String {
    let mut body = String::from("[init]\ncommand = [\"/sbin/probe\", \"--sleep\"]\n");
    let mut config = Vec::new();
    if !catch.is_empty() {
        config.push(format!("\"environment.PROBE_CATCH_SIGNALS\" = \"{catch}\""));
    }
    if exit != 0 {
        config.push(format!("\"environment.PROBE_EXIT\" = \"{exit}\""));
    }
    if !config.is_empty() {
        body.push_str(&format!("[config]\n{}\n", config.join("\n")));
    }
    body
}

/// Lines of `text` equal to `line` (ignoring `\r` and surrounding blanks).
fn count_lines(text: &str, line: &str) -> usize {
    text.lines().filter(|l| l.trim() == line).count()
}

/// `envc gc` worked for our containers. (While developing, other suites' containers
/// may run in other run directories: what gc says about those is not judged here.)
fn assert_gc_ok(gc: &Out) {
    for l in gc.stderr.lines().filter(|l| l.contains("could not remove")) {
        assert!(
            !l.contains("lc-"),
            "gc failed on ours: {l}\n{}",
            gc.describe()
        );
    }
    assert!(matches!(gc.code(), Some(0) | Some(1)), "{}", gc.describe());
}

fn outcome(report: &Value) -> (u64, String) {
    (
        report["outcome"]["exit_code"].as_u64().unwrap_or(999),
        report["outcome"]["summary"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    )
}

// ------------------------------------------------------------------ a systemd-like PID 1

/// A PID 1 that waits for signals the way systemd does: `sigfd-init DELAY_MS SIG...`
/// sleeps DELAY_MS, then blocks SIG... and reads them from a signalfd, so they stay in
/// SigBlk while it waits (unlike sigwaitinfo()). Prints ENVC-SIGFD-SIGNAL N, exits 0.
const SIGFD_INIT_C: &str = r#"
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    long ms = argc > 1 ? atol(argv[1]) : 0;
    printf("\nENVC-SIGFD-START\n");
    fflush(stdout);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
    sigset_t set;
    sigemptyset(&set);
    for (int i = 2; i < argc; i++)
        sigaddset(&set, atoi(argv[i]));
    sigprocmask(SIG_BLOCK, &set, NULL);
    int fd = signalfd(-1, &set, SFD_CLOEXEC);
    if (fd < 0) {
        perror("signalfd");
        return 125;
    }
    printf("ENVC-SIGFD-BLOCKED\n");
    fflush(stdout);
    struct signalfd_siginfo si;
    if (read(fd, &si, sizeof si) != (ssize_t)sizeof si)
        return 125;
    printf("ENVC-SIGFD-SIGNAL %u\n", si.ssi_signo);
    fflush(stdout);
    return 0;
}
"#;

/// Compiles `SIGFD_INIT_C` (static) once per test process and copies it to
/// `rootfs/sbin/sigfd-init`.
fn install_sigfd_init(rootfs: &Path) {
    use std::sync::OnceLock;
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    let bin = BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("envc-lifecycle");
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join(format!("sigfd-init.{}.c", std::process::id()));
        std::fs::write(&src, SIGFD_INIT_C).unwrap();
        let out = dir.join(format!("sigfd-init.{}", std::process::id()));
        let cc = Command::new("cc")
            .args(["-static", "-O2", "-Wall", "-o"])
            .arg(&out)
            .arg(&src)
            .output()
            .expect("run cc (apt-get install gcc libc6-dev)");
        assert!(
            cc.status.success(),
            "compiling sigfd-init failed:\n{}",
            String::from_utf8_lossy(&cc.stderr)
        );
        let _ = std::fs::remove_file(&src);
        out
    });
    let dst = rootfs.join("sbin/sigfd-init");
    std::fs::copy(bin, &dst).unwrap_or_else(|e| panic!("copy to {}: {e}", dst.display()));
}

/// SigBlk of `pid`, from /proc/PID/status.
fn sig_blk(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or_else(|| panic!("no SigBlk for {pid}"))
}

// ------------------------------------------------------------------ tests

/// `apply -d` returns once PID 1 runs and prints the name; `list` (text and JSON); a
/// second container of the same name is refused with 125 while the first runs; `stop`
/// of a PID 1 that handles SIGPWR is clean and quick; commands on a name that is not
/// running fail; /run/envc (the default) is left as found.
#[test]
fn detach_list_clash_and_clean_stop() {
    if !common::require_root("detach_list_clash_and_clean_stop") {
        return;
    }
    let _s = common::serial();
    let w = World::new("lc-detach", false, "lc-");
    let name = "lc-detach";
    let profile = w.profile(name, &sleeper("30", 0));
    let before = HostState::capture();
    let _g = w.guard(name);

    let out = w.apply_d(&profile, name);
    assert!(
        out.elapsed < Duration::from_secs(10),
        "apply -d took {:?}",
        out.elapsed
    );
    // PID 1 runs when apply -d returns: no waiting here.
    let info = w.info(name);
    let pid = info["pid"].as_i64().unwrap() as i32;
    assert_eq!(comm_of(pid), "probe", "PID 1 ({pid}) is not the probe yet");
    assert!(!gone_or_zombie(pid));
    let sup = info["supervisor"].as_i64().unwrap() as i32;
    assert!(!gone_or_zombie(sup), "the supervisor {sup} is not running");
    assert_ne!(
        std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap(),
        std::fs::read_link("/proc/self/ns/pid").unwrap(),
        "PID 1 is in the host's PID namespace"
    );
    let probe = common::extract_probe_json(&w.wait_console(name, common::PROBE_END, 1, WAIT));
    assert_eq!(probe["pid"], 1, "{probe:#}");
    for f in ["lock", "control", "info.json"] {
        assert!(
            w.state_dir(name).join(f).exists(),
            "no {f} in the state dir"
        );
    }

    // list --format json
    std::thread::sleep(Duration::from_millis(1100));
    let e = w
        .list_entry(name)
        .unwrap_or_else(|| panic!("{name} not in envc list --format json"));
    assert_eq!(e["state"], "running", "{e:#}");
    assert_eq!(e["pid"].as_i64(), Some(pid as i64), "{e:#}");
    let up = e["uptime_secs"].as_u64().expect("uptime_secs");
    assert!((1..60).contains(&up), "uptime {up}s: {e:#}");
    assert_eq!(
        e["rootfs"].as_str(),
        Some(w.rootfs.to_str().unwrap()),
        "{e:#}"
    );
    // list (text)
    let out = w.envc(&["list"]);
    out.expect(0, "envc list");
    let header = out.stdout.lines().next().unwrap_or("");
    for col in ["NAME", "STATE", "PID", "UPTIME", "ROOTFS"] {
        assert!(header.contains(col), "no {col} column:\n{}", out.stdout);
    }
    let row: Vec<&str> = out
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row for {name}:\n{}", out.stdout))
        .split_whitespace()
        .collect();
    assert_eq!(row[1], "running", "{row:?}");
    assert_eq!(row[2], pid.to_string(), "{row:?}");
    assert!(row[3].ends_with('s') && row[3] != "-", "uptime {row:?}");
    assert_eq!(row[4], w.rootfs.to_str().unwrap(), "{row:?}");

    // Name clash: refused, detached or not; the first container is untouched.
    let clash = w.envc(&["apply".as_ref(), "-d".as_ref(), profile.as_os_str()]);
    clash.expect(125, "a second `apply -d` of a running name");
    assert!(
        clash.stderr.contains("already running"),
        "{}",
        clash.describe()
    );
    assert!(clash.stdout.is_empty(), "{}", clash.describe());
    let clash = w.envc(&["apply".as_ref(), profile.as_os_str()]);
    clash.expect(125, "a second foreground `apply` of a running name");
    assert!(
        clash.stderr.contains("already running"),
        "{}",
        clash.describe()
    );
    assert_eq!(w.pid1(name), pid, "the clash touched the running container");
    assert!(!gone_or_zombie(pid));

    // A clean stop: the probe catches SIGPWR and exits 0 by itself.
    let stop = w.envc(&["stop", name]);
    stop.expect(0, "envc stop");
    println!("stop (probe handles SIGPWR): {:?}", stop.elapsed);
    assert!(
        stop.elapsed < Duration::from_secs(3),
        "a clean stop took {:?}\n{}",
        stop.elapsed,
        stop.describe()
    );
    assert!(
        stop.stderr.contains("stopped (exit status 0)"),
        "{}",
        stop.describe()
    );
    assert!(!stop.stderr.contains("kill"), "{}", stop.describe());
    assert!(
        !w.state_dir(name).exists(),
        "envc stop returned before teardown"
    );
    let log = w.console_log(name);
    assert!(
        log.contains("ENVC-PROBE-SIGNAL 30 "),
        "PID 1 did not get SIGPWR\n{}",
        w.describe(name)
    );
    let (code, summary) = outcome(&w.final_report(name));
    assert_eq!((code, summary.as_str()), (0, "PID 1 exited with status 0"));
    assert!(
        !w.supervisor_log(name).contains("killing it"),
        "{}",
        w.describe(name)
    );
    assert!(gone_or_zombie(pid));
    assert!(w.list_entry(name).is_none(), "{name} still listed");

    // Commands on a name that is not running.
    for args in [["stop", name], ["reboot", name], ["console", name]] {
        let out = w.envc(&args);
        out.expect(1, &format!("envc {args:?} of a stopped container"));
        assert!(
            out.stderr.contains(&format!("no container named `{name}`")),
            "{}",
            out.describe()
        );
    }
    before.assert_restored_within(SETTLE);
}

/// A PID 1 that blocks SIGRTMIN+3 and waits on a signalfd (as systemd does) gets
/// signal 37, not SIGPWR. Second case: it blocks 37 only 1.5 s after it started (systemd
/// early in boot); envc's first SIGPWR is ignored, and envc, re-reading SigBlk about once
/// a second, sends 37 next.
///
/// Not the probe with PROBE_CATCH_SIGNALS=37: it waits in sigwaitinfo(), and while a
/// thread waits there the kernel removes the awaited signals from its blocked mask, so
/// SigBlk reads 0 and envc (rightly) sends SIGPWR. `sigfd_init` waits like systemd.
#[test]
fn stop_sends_sigrtmin3_when_pid1_blocks_it() {
    if !common::require_root("stop_sends_sigrtmin3_when_pid1_blocks_it") {
        return;
    }
    let _s = common::serial();
    let w = World::new("lc-rtmin", true, "lc-");
    install_sigfd_init(&w.rootfs);
    let before = HostState::capture();
    for (name, delay_ms) in [("lc-rtmin", 0u64), ("lc-rtmin-late", 1500)] {
        let profile = w.profile(
            name,
            &format!("[init]\ncommand = [\"/sbin/sigfd-init\", \"{delay_ms}\", \"37\"]\n"),
        );
        let _g = w.guard(name);
        w.apply_d(&profile, name);
        w.wait_console(name, "ENVC-SIGFD-START", 1, WAIT);
        let pid = w.pid1(name);
        if delay_ms == 0 {
            w.wait_console(name, "ENVC-SIGFD-BLOCKED", 1, WAIT);
            assert_ne!(
                sig_blk(pid) & (1 << 36),
                0,
                "PID 1 does not show 37 in SigBlk\n{}",
                w.describe(name)
            );
        } else {
            assert_eq!(sig_blk(pid) & (1 << 36), 0, "blocked too early");
        }
        let stop = w.envc(&["stop", name]);
        stop.expect(0, "envc stop");
        println!(
            "stop, PID 1 blocks SIGRTMIN+3 after {delay_ms} ms: {:?}",
            stop.elapsed
        );
        let log = w.console_log(name);
        assert_eq!(
            count_lines(&log, "ENVC-SIGFD-SIGNAL 37"),
            1,
            "PID 1 did not get signal 37\n{}",
            w.describe(name)
        );
        let sup = w.supervisor_log(name);
        assert!(!sup.contains("killing it"), "{}", w.describe(name));
        if delay_ms == 0 {
            assert!(stop.elapsed < Duration::from_secs(1), "{}", stop.describe());
            assert!(
                sup.contains("sent SIGRTMIN+3 to PID 1"),
                "{}",
                w.describe(name)
            );
        } else {
            assert!(
                stop.elapsed < Duration::from_secs(4),
                "envc did not re-read SigBlk and re-send\n{}",
                stop.describe()
            );
            // The first request went out as SIGPWR (37 not blocked yet).
            assert!(sup.contains("sent SIGPWR to PID 1"), "{}", w.describe(name));
        }
        let (code, summary) = outcome(&w.final_report(name));
        assert_eq!((code, summary.as_str()), (0, "PID 1 exited with status 0"));
    }
    before.assert_restored_within(SETTLE);
}

/// A PID 1 that ignores every stop signal is killed after `--timeout`, and envc says so.
#[test]
fn stop_timeout_kills() {
    if !common::require_root("stop_timeout_kills") {
        return;
    }
    let _s = common::serial();
    let w = World::new("lc-deaf", true, "lc-");
    let name = "lc-deaf";
    // No handler at all: a PID namespace's init ignores every signal but SIGKILL.
    let profile = w.profile(name, &sleeper("", 0));
    let before = HostState::capture();
    let _g = w.guard(name);
    w.apply_d(&profile, name);
    w.wait_console(name, common::PROBE_END, 1, WAIT);
    let pid = w.pid1(name);

    let stop = w.envc(&["stop", "--timeout", "1", name]);
    stop.expect(0, "envc stop --timeout 1");
    println!("stop --timeout 1 of a deaf PID 1: {:?}", stop.elapsed);
    assert!(
        stop.elapsed >= Duration::from_millis(900) && stop.elapsed < Duration::from_secs(5),
        "{}",
        stop.describe()
    );
    assert!(stop.stderr.contains("killed"), "{}", stop.describe());
    assert!(
        w.supervisor_log(name)
            .contains("did not stop within its timeout; killing it"),
        "{}",
        w.describe(name)
    );
    let (code, summary) = outcome(&w.final_report(name));
    assert_eq!(code, 137, "{summary}");
    assert!(summary.contains("killed"), "{summary}");
    assert!(gone_or_zombie(pid));
    before.assert_restored_within(SETTLE);
}

/// A run directory whose control socket path is longer than a unix socket address
/// holds (108 bytes; a build tree deep in a CI checkout, a long `ENVC_RUN_DIR`)
/// works like any other: apply -d binds the socket, list, console and stop reach it.
#[test]
fn a_run_dir_too_long_for_a_socket_address_works() {
    if !common::require_root("a_run_dir_too_long_for_a_socket_address_works") {
        return;
    }
    let _s = common::serial();
    let mut w = World::new("lc-long", true, "lc-");
    w.run_dir = w
        .dir
        .path()
        .join("a-run-directory-with-a-long-name-".repeat(4))
        .join("run");
    let name = "lc-long";
    let control = w.state_dir(name).join("control");
    assert!(
        control.as_os_str().len() > 108,
        "{} is short enough for sun_path: the test proves nothing",
        control.display()
    );
    let profile = w.profile(name, &sleeper("30", 0));
    let before = HostState::capture();
    let _g = w.guard(name);
    w.apply_d(&profile, name);
    w.wait_console(name, common::PROBE_END, 1, WAIT);
    let meta = std::fs::symlink_metadata(&control)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", control.display(), w.describe(name)));
    assert!(
        std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()),
        "{} is not a socket",
        control.display()
    );
    assert_eq!(w.list_entry(name).expect("listed")["state"], "running");
    let stop = w.envc(&["stop", name]);
    stop.expect(0, "envc stop");
    assert!(
        w.supervisor_log(name).contains("sent SIGPWR to PID 1")
            && w.console_log(name).contains("ENVC-PROBE-SIGNAL 30"),
        "stop did not reach PID 1 through the control socket\n{}",
        w.describe(name)
    );
    assert_eq!(outcome(&w.final_report(name)).0, 0);
    w.wait_state_gone(name);
    before.assert_restored_within(SETTLE);
}

/// `stop --force` kills at once, even a PID 1 that would stop cleanly.
#[test]
fn stop_force_kills_at_once() {
    if !common::require_root("stop_force_kills_at_once") {
        return;
    }
    let _s = common::serial();
    let w = World::new("lc-force", true, "lc-");
    let name = "lc-force";
    let profile = w.profile(name, &sleeper("30,37", 0));
    let before = HostState::capture();
    let _g = w.guard(name);
    w.apply_d(&profile, name);
    w.wait_console(name, common::PROBE_END, 1, WAIT);

    let stop = w.envc(&["stop", "--force", name]);
    stop.expect(0, "envc stop --force");
    println!("stop --force: {:?}", stop.elapsed);
    assert!(stop.elapsed < Duration::from_secs(2), "{}", stop.describe());
    assert!(stop.stderr.contains("killed"), "{}", stop.describe());
    assert!(
        !w.console_log(name).contains("ENVC-PROBE-SIGNAL"),
        "--force asked PID 1 to stop instead of killing it\n{}",
        w.describe(name)
    );
    assert_eq!(outcome(&w.final_report(name)).0, 137);
    before.assert_restored_within(SETTLE);
}

/// SIGTERM, SIGINT or SIGHUP to a foreground `envc apply` stop the container cleanly
/// (PID 1 gets SIGPWR and exits by itself), and envc exits with PID 1's status.
#[test]
fn foreground_signal_stops_cleanly_with_pid1_status() {
    if !common::require_root("foreground_signal_stops_cleanly_with_pid1_status") {
        return;
    }
    let _s = common::serial();
    let w = World::new("lc-fgsig", false, "lc-");
    let before = HostState::capture();
    for (sig, sig_name, exit) in [
        (libc::SIGTERM, "term", 7u8),
        (libc::SIGINT, "int", 8),
        (libc::SIGHUP, "hup", 9),
    ] {
        let name = format!("lc-fg{sig_name}");
        let profile = w.profile(&name, &sleeper("30", exit));
        let _g = w.guard(&name);
        let mut fg = w.apply_fg(&profile);
        fg.wait_stdout(common::PROBE_END, 1, WAIT);
        let t = Instant::now();
        fg.signal(sig);
        let out = fg.wait(CMD_TIMEOUT);
        let took = t.elapsed();
        println!(
            "foreground envc, SIG{} → clean stop in {took:?}",
            sig_name.to_uppercase()
        );
        out.expect(exit as i32, "envc's exit status must be PID 1's");
        assert!(
            out.stdout.contains("ENVC-PROBE-SIGNAL 30 "),
            "PID 1 did not get SIGPWR\n{}",
            out.describe()
        );
        assert!(took < Duration::from_secs(3), "{}", out.describe());
        assert!(!out.stderr.contains("killing it"), "{}", out.describe());
        assert!(
            out.stderr
                .contains(&format!("PID 1 exited with status {exit}")),
            "{}",
            out.describe()
        );
        assert!(!w.state_dir(&name).exists());
    }
    before.assert_restored_within(SETTLE);
}

/// `envc reboot` of a busybox-init guest (reboot-signal SIGTERM): busybox init runs
/// its shutdown actions and calls reboot(2), PID 1 dies of SIGHUP, envc starts the
/// container again from the same plan: two boots on the console, a new PID 1. Then
/// `envc stop` (SIGPWR: busybox init halts) ends it with status 0.
#[test]
fn reboot_busybox_init() {
    if !common::require_root("reboot_busybox_init") {
        return;
    }
    let _s = common::serial();
    let w = World::new("lc-bbinit", true, "lc-");
    let name = "lc-bbinit";
    set_init(&w.rootfs, "/bin/init");
    std::fs::write(
        w.rootfs.join("etc/inittab"),
        "::sysinit:/bin/echo ENVC-BOOT-MARKER\n::shutdown:/bin/echo ENVC-SHUTDOWN-MARKER\n",
    )
    .unwrap();
    let profile = w.profile(name, "[init]\nreboot-signal = \"SIGTERM\"\n");
    let before = HostState::capture();
    let _g = w.guard(name);
    w.apply_d(&profile, name);
    w.wait_console(name, "ENVC-BOOT-MARKER", 1, WAIT);
    let pid = w.pid1(name);
    assert_eq!(comm_of(pid), "init");

    let t = Instant::now();
    w.envc(&["reboot", name]).expect(0, "envc reboot");
    let log = w.wait_console(name, "ENVC-BOOT-MARKER", 2, WAIT);
    let new_pid = wait_until("a new PID 1 in info.json", WAIT, || {
        let e = w.list_entry(name)?;
        let p = e["pid"].as_i64()? as i32;
        (e["state"] == "running" && p != pid).then_some(p)
    });
    println!("busybox init reboot: {:?}", t.elapsed());
    assert_eq!(count_lines(&log, "ENVC-BOOT-MARKER"), 2, "{log}");
    assert_eq!(count_lines(&log, "ENVC-SHUTDOWN-MARKER"), 1, "{log}");
    assert!(gone_or_zombie(pid), "the first PID 1 still runs");
    assert_eq!(comm_of(new_pid), "init");
    assert!(
        w.supervisor_log(name)
            .contains("PID 1 rebooted (died of SIGHUP)"),
        "{}",
        w.describe(name)
    );

    let stop = w.envc(&["stop", name]);
    stop.expect(0, "envc stop");
    println!("busybox init stop (SIGPWR → halt): {:?}", stop.elapsed);
    assert!(
        stop.elapsed < Duration::from_secs(10),
        "{}",
        stop.describe()
    );
    assert!(!stop.stderr.contains("killed"), "{}", stop.describe());
    let log = w.console_log(name);
    assert_eq!(count_lines(&log, "ENVC-SHUTDOWN-MARKER"), 2, "{log}");
    assert_eq!(count_lines(&log, "ENVC-BOOT-MARKER"), 2, "{log}");
    let (code, summary) = outcome(&w.final_report(name));
    assert_eq!(code, 0, "{summary}");
    assert!(summary.contains("halted"), "{summary}");
    before.assert_restored_within(SETTLE);
}

/// A PID 1 that ignores the reboot signal: after the stop timeout envc kills it and
/// starts the container again (LXD's restart).
#[test]
fn reboot_ignored_is_kill_and_start() {
    if !common::require_root("reboot_ignored_is_kill_and_start") {
        return;
    }
    let _s = common::serial();
    let w = World::new("lc-rbdeaf", true, "lc-");
    let name = "lc-rbdeaf";
    let profile = w.profile(
        name,
        "[init]\ncommand = [\"/sbin/probe\", \"--sleep\"]\nstop-timeout = 1\n",
    );
    let before = HostState::capture();
    let _g = w.guard(name);
    w.apply_d(&profile, name);
    w.wait_console(name, common::PROBE_END, 1, WAIT);
    let pid = w.pid1(name);
    let t = Instant::now();
    w.envc(&["reboot", name]).expect(0, "envc reboot");
    let log = w.wait_console(name, common::PROBE_END, 2, WAIT);
    let new_pid = wait_until("a new PID 1", WAIT, || {
        let p = w.list_entry(name)?["pid"].as_i64()? as i32;
        (p != pid).then_some(p)
    });
    println!(
        "reboot of a PID 1 that ignores it (timeout 1s): {:?}",
        t.elapsed()
    );
    assert!(t.elapsed() >= Duration::from_millis(900));
    assert_eq!(common::extract_all_probe_json(&log).len(), 2);
    assert!(
        w.supervisor_log(name)
            .contains("ignored the reboot request; killed and starting again"),
        "{}",
        w.describe(name)
    );
    assert!(!gone_or_zombie(new_pid));
    w.envc(&["stop", "--force", name])
        .expect(0, "envc stop --force");
    before.assert_restored_within(SETTLE);
}

/// A PID 1 that calls reboot(2) RESTART dies of SIGHUP and envc starts the container
/// again from the same plan. The init (a shell) counts its boots in the rootfs and
/// reboots twice, then sleeps: three boots, then a clean stop.
#[test]
fn reboot_syscall_restart_starts_again() {
    if !common::require_root("reboot_syscall_restart_starts_again") {
        return;
    }
    let _s = common::serial();
    let w = World::new("lc-rbsys", true, "lc-");
    let name = "lc-rbsys";
    let profile = w.profile(
        name,
        r#"[init]
command = ["/bin/sh", "-c", '''
n=$(cat /var/boots 2>/dev/null || echo 0); n=$((n + 1)); echo $n > /var/boots
echo ENVC-BOOT-$n
if test $n -lt 3; then exec /sbin/probe --reboot restart; fi
exec /sbin/probe --sleep
''']
[config]
"environment.PROBE_CATCH_SIGNALS" = "30"
"#,
    );
    let before = HostState::capture();
    let _g = w.guard(name);
    let t = Instant::now();
    w.apply_d(&profile, name);
    let log = w.wait_console(name, common::PROBE_END, 3, WAIT);
    println!("3 boots (2 reboot(2) RESTART): {:?}", t.elapsed());
    let probes = common::extract_all_probe_json(&log);
    assert_eq!(probes.len(), 3, "{}", w.describe(name));
    for (i, p) in probes.iter().enumerate() {
        assert_eq!(p["pid"], 1, "boot {}: {p:#}", i + 1);
        assert_eq!(p["hostname"], probes[0]["hostname"], "boot {}", i + 1);
        assert_eq!(
            p["env"],
            probes[0]["env"],
            "boot {}: not the same plan",
            i + 1
        );
    }
    for n in 1..=3 {
        assert_eq!(count_lines(&log, &format!("ENVC-BOOT-{n}")), 1, "{log}");
    }
    assert!(!log.contains("ENVC-PROBE-REFUSED-REBOOT"), "{log}");
    assert_eq!(
        w.supervisor_log(name)
            .matches("PID 1 rebooted (died of SIGHUP); starting it again")
            .count(),
        2,
        "{}",
        w.describe(name)
    );
    assert_eq!(w.list_entry(name).expect("listed")["state"], "running");
    let stop = w.envc(&["stop", name]);
    stop.expect(0, "envc stop");
    assert!(
        stop.stderr.contains("stopped (exit status 0)"),
        "{}",
        stop.describe()
    );
    before.assert_restored_within(SETTLE);
}

/// A PID 1 that calls reboot(2) POWER_OFF or HALT dies of SIGINT: a clean stop, envc
/// exits 0, no second boot.
#[test]
fn reboot_syscall_poweroff_and_halt_stop() {
    if !common::require_root("reboot_syscall_poweroff_and_halt_stop") {
        return;
    }
    let _s = common::serial();
    let w = World::new("lc-poweroff", true, "lc-");
    let before = HostState::capture();
    for how in ["poweroff", "halt"] {
        let name = format!("lc-{how}");
        let profile = w.profile(
            &name,
            &format!("[init]\ncommand = [\"/sbin/probe\", \"--reboot\", \"{how}\"]\n"),
        );
        let _g = w.guard(&name);
        let out = w.apply_fg(&profile).wait(CMD_TIMEOUT);
        out.expect(0, &format!("reboot(2) {how} inside"));
        assert_eq!(common::extract_all_probe_json(&out.stdout).len(), 1);
        assert!(
            !out.stdout.contains("ENVC-PROBE-REFUSED-REBOOT"),
            "{}",
            out.describe()
        );
        assert!(
            out.stderr
                .contains("PID 1 halted (died of SIGINT: halt or poweroff)"),
            "{}",
            out.describe()
        );
        assert!(
            !out.stderr.contains("starting it again"),
            "{}",
            out.describe()
        );
    }
    before.assert_restored_within(SETTLE);
}

/// A PID 1 that reboots at once every time: envc gives up after more than 5 reboots
/// in 10 s (6 boots), exits, and the host is clean.
#[test]
fn reboot_storm_gives_up() {
    if !common::require_root("reboot_storm_gives_up") {
        return;
    }
    let _s = common::serial();
    let w = World::new("lc-storm", true, "lc-");
    let name = "lc-storm";
    let profile = w.profile(
        name,
        "[init]\ncommand = [\"/sbin/probe\", \"--reboot\", \"restart\"]\n",
    );
    let before = HostState::capture();
    let _g = w.guard(name);
    let out = w.apply_fg(&profile).wait(CMD_TIMEOUT);
    println!("reboot storm: gave up after {:?}", out.elapsed);
    let boots = common::extract_all_probe_json(&out.stdout).len();
    assert_eq!(boots, 6, "{}", out.describe());
    assert_eq!(
        out.stderr
            .matches("PID 1 rebooted (died of SIGHUP); starting it again")
            .count(),
        5,
        "{}",
        out.describe()
    );
    assert!(
        out.stderr
            .contains("rebooted more than 5 times in 10s, not starting it again"),
        "{}",
        out.describe()
    );
    // envc exits on its own: PID 1 died of SIGHUP and was not restarted, 128+1.
    assert_eq!(out.code(), Some(129), "{}", out.describe());
    assert!(!w.state_dir(name).exists());
    before.assert_restored_within(SETTLE);
}

/// `envc console NAME` under a pseudo-terminal: a busybox shell as PID 1 runs what is
/// typed; Ctrl-a q detaches and the container keeps running; attaching again works;
/// `exit` typed into the shell ends PID 1 and the console client with it.
#[test]
fn console_attach_detach_reattach() {
    if !common::require_root("console_attach_detach_reattach") {
        return;
    }
    let _s = common::serial();
    let w = World::new("lc-console", true, "lc-");
    let name = "lc-console";
    let profile = w.profile(name, "[init]\ncommand = [\"/bin/sh\"]\n");
    let before = HostState::capture();
    let _g = w.guard(name);
    w.apply_d(&profile, name);
    let pid = w.pid1(name);
    let sup = w.info(name)["supervisor"].as_i64().unwrap() as i32;

    // (typed, expected output): the arithmetic makes output differ from the echo.
    for (round, (typed, expect)) in [
        ("echo lc-$((6 * 7))-ok\r", "lc-42-ok"),
        ("echo lc-$((7 * 8))-again\r", "lc-56-again"),
    ]
    .into_iter()
    .enumerate()
    {
        let (mut pty, slave) = Pty::open(40, 120);
        let mut client = KillOnDrop(Pty::spawn(w.cmd(&["console", name]), &slave));
        drop(slave);
        let at = pty.wait_for("attached to", 0, WAIT);
        pty.write(typed.as_bytes());
        let at = pty.wait_for(expect, at, WAIT);
        // Ctrl-a q: detach.
        pty.write(b"\x01q");
        let st = wait_pty_child(&mut client.0, &mut pty, WAIT);
        assert_eq!(
            st.code(),
            Some(0),
            "envc console after Ctrl-a q\n{}",
            pty.text()
        );
        pty.wait_for("detached from", at, Duration::from_secs(2));
        // Detaching left the container alone.
        let e = w.list_entry(name).expect("still listed");
        assert_eq!(e["state"], "running", "round {round}: {e:#}");
        assert_eq!(w.pid1(name), pid, "round {round}: PID 1 changed");
        assert!(
            !gone_or_zombie(pid) && !gone_or_zombie(sup),
            "round {round}"
        );
    }
    assert!(
        w.console_log(name).contains("lc-56-again"),
        "console.log misses what the shell printed\n{}",
        w.describe(name)
    );

    // Third attach: `exit` ends PID 1; the client ends with the container.
    let (mut pty, slave) = Pty::open(40, 120);
    let mut client = KillOnDrop(Pty::spawn(w.cmd(&["console", name]), &slave));
    drop(slave);
    pty.wait_for("attached to", 0, WAIT);
    pty.write(b"exit 0\r");
    let st = wait_pty_child(&mut client.0, &mut pty, WAIT);
    assert_eq!(st.code(), Some(0), "{}", pty.text());
    w.wait_state_gone(name);
    let (code, summary) = outcome(&w.final_report(name));
    assert_eq!((code, summary.as_str()), (0, "PID 1 exited with status 0"));
    before.assert_restored_within(SETTLE);
}

/// A foreground `envc apply` on a terminal attaches it to the console: Ctrl-C goes to
/// the guest (envc keeps running), Ctrl-a q stops the container cleanly, envc exits 0
/// and restores the terminal's modes.
#[test]
fn foreground_terminal_ctrl_a_q_stops() {
    if !common::require_root("foreground_terminal_ctrl_a_q_stops") {
        return;
    }
    let _s = common::serial();
    let w = World::new("lc-fgtty", true, "lc-");
    let name = "lc-fgtty";
    let profile = w.profile(name, &sleeper("30", 0));
    let before = HostState::capture();
    let _g = w.guard(name);
    let (mut pty, slave) = Pty::open(30, 100);
    let modes = pty.lflag();
    let mut envc = KillOnDrop(Pty::spawn(
        w.cmd(&["apply".as_ref(), profile.as_os_str()]),
        &slave,
    ));
    drop(slave);
    let at = pty.wait_for("Ctrl-a q stops it", 0, WAIT);
    let at = pty.wait_for(common::PROBE_END, at, WAIT);
    assert_eq!(
        pty.lflag() & libc::ICANON,
        0,
        "envc did not put the terminal in raw mode"
    );
    let probe = common::extract_probe_json(&pty.text());
    assert_eq!(probe["pid"], 1);

    // Ctrl-C (and Ctrl-a followed by another key) go to the guest, not to envc.
    pty.write(b"\x03\x01x");
    std::thread::sleep(Duration::from_millis(500));
    pty.pump(0);
    assert!(
        envc.0.try_wait().unwrap().is_none(),
        "Ctrl-C stopped envc\n{}",
        pty.text()
    );
    assert!(w.state_dir(name).exists());

    let t = Instant::now();
    pty.write(b"\x01q");
    let st = wait_pty_child(&mut envc.0, &mut pty, WAIT);
    println!("Ctrl-a q → clean stop in {:?}", t.elapsed());
    assert_eq!(st.code(), Some(0), "{}", pty.text());
    pty.wait_for("ENVC-PROBE-SIGNAL 30 ", at, Duration::from_secs(1));
    assert_eq!(pty.lflag(), modes, "envc left the terminal's modes changed");
    assert!(!pty.text().contains("killing it"), "{}", pty.text());
    before.assert_restored_within(SETTLE);
}

/// The supervisor is SIGKILLed: PID 1 dies with it (PR_SET_PDEATHSIG), `envc list` says
/// dead, `stop` refuses pointing at gc, `envc gc` removes the state directory and the
/// cgroups, and the host (default /run/envc) is as it was.
#[test]
fn killed_supervisor_dead_then_gc() {
    if !common::require_root("killed_supervisor_dead_then_gc") {
        return;
    }
    let _s = common::serial();
    let w = World::new("lc-orphan", false, "lc-");
    let name = "lc-orphan";
    let profile = w.profile(name, &sleeper("30", 0));
    let before = HostState::capture();
    let _g = w.guard(name);
    w.apply_d(&profile, name);
    w.wait_console(name, common::PROBE_END, 1, WAIT);
    let info = w.info(name);
    let (pid, sup) = (
        info["pid"].as_i64().unwrap() as i32,
        info["supervisor"].as_i64().unwrap() as i32,
    );
    assert_eq!(comm_of(sup), "envc");
    let cgroups = envc_cgroups_of(name);
    assert!(!cgroups.is_empty(), "no envc/{name} cgroup while it runs");

    // SAFETY: kill(2) of the supervisor this test started.
    assert_eq!(unsafe { libc::kill(sup, libc::SIGKILL) }, 0);
    wait_until("the supervisor to die", WAIT, || {
        gone_or_zombie(sup).then_some(())
    });
    wait_until("PID 1 to die with its supervisor", WAIT, || {
        gone_or_zombie(pid).then_some(())
    });

    let e = w
        .list_entry(name)
        .expect("a dead container is still listed");
    assert!(e["state"].as_str().unwrap().starts_with("dead"), "{e:#}");
    assert!(e["uptime_secs"].is_null(), "{e:#}");
    let out = w.envc(&["list"]);
    let row = out
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("{}", out.describe()));
    assert_eq!(row.split_whitespace().nth(1), Some("dead"), "{row}");
    let stop = w.envc(&["stop", name]);
    stop.expect(1, "envc stop of a dead container");
    assert!(stop.stderr.contains("envc gc"), "{}", stop.describe());
    let gc = w.envc(&["gc"]);
    println!("envc gc:\n{}{}", gc.stdout, gc.stderr);
    let state = w.state_dir(name);
    assert!(
        gc.stdout
            .contains(&format!("removed state {}", state.display())),
        "{}",
        gc.describe()
    );
    for cg in &cgroups {
        assert!(
            gc.stdout
                .contains(&format!("removed cgroup {}", cg.display())),
            "gc did not say it removed {}\n{}",
            cg.display(),
            gc.describe()
        );
        assert!(!cg.exists(), "{} is still there", cg.display());
    }
    assert_gc_ok(&gc);
    assert!(!state.exists());
    before.assert_restored_within(SETTLE);
}

/// A state directory nobody holds the lock of does not block a new container of that
/// name: first a made-up one (lock file, a leftover control socket, an info.json of
/// processes that do not exist): `list` says dead, `apply -d` takes it over. Then the
/// real thing: the supervisor is SIGKILLed and the name is applied again without gc.
#[test]
fn stale_state_dir_is_taken_over() {
    if !common::require_root("stale_state_dir_is_taken_over") {
        return;
    }
    let _s = common::serial();
    let w = World::new("lc-stale", true, "lc-");
    let name = "lc-stale";
    let profile = w.profile(name, &sleeper("30", 0));
    let before = HostState::capture();
    let _g = w.guard(name);
    let state = w.state_dir(name);
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("lock"), "").unwrap();
    // A socket file nobody listens on, as a killed supervisor leaves it.
    drop(envc::sys::bind_unix(&state.join("control")).unwrap());
    let stale_info = serde_json::json!({
        "name": name, "pid": 999_999_999, "supervisor": 999_999_998, "started": 1,
        "rootfs": w.rootfs, "console_log": "/nonexistent", "cgroup_parent": "envc",
        "host_links": [],
    });
    std::fs::write(state.join("info.json"), stale_info.to_string()).unwrap();
    let e = w.list_entry(name).expect("the stale dir is listed");
    assert!(e["state"].as_str().unwrap().starts_with("dead"), "{e:#}");
    let stop = w.envc(&["stop", name]);
    stop.expect(1, "envc stop of a stale name");
    assert!(stop.stderr.contains("not running"), "{}", stop.describe());

    w.apply_d(&profile, name);
    w.wait_console(name, common::PROBE_END, 1, WAIT);
    let e = w.list_entry(name).expect("listed");
    assert_eq!(e["state"], "running", "{e:#}");
    let pid = w.pid1(name);
    assert_eq!(comm_of(pid), "probe");

    // The real thing: kill -9 the supervisor, apply again at once (no gc).
    let sup = w.info(name)["supervisor"].as_i64().unwrap() as i32;
    // SAFETY: kill(2) of the supervisor this test started.
    assert_eq!(unsafe { libc::kill(sup, libc::SIGKILL) }, 0);
    wait_until("PID 1 to die with its supervisor", WAIT, || {
        gone_or_zombie(pid).then_some(())
    });
    w.apply_d(&profile, name);
    w.wait_console(name, common::PROBE_END, 2, WAIT);
    let new_pid = w.pid1(name);
    assert_ne!(new_pid, pid);
    assert_eq!(w.list_entry(name).expect("listed")["state"], "running");

    let stop = w.envc(&["stop", name]);
    stop.expect(0, "envc stop");
    assert!(
        stop.stderr.contains("stopped (exit status 0)"),
        "{}",
        stop.describe()
    );
    assert!(!state.exists(), "the state dir outlived the stop");
    assert!(
        envc_cgroups_of(name).is_empty(),
        "{:?}",
        envc_cgroups_of(name)
    );
    // The killed supervisor never tore down: the cgroup parent it created is gc's.
    let gc = w.envc(&["gc"]);
    println!("envc gc after the takeover:\n{}{}", gc.stdout, gc.stderr);
    assert_gc_ok(&gc);
    before.assert_restored_within(SETTLE);
}
