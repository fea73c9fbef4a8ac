//! Working inside a running container as root: `envc exec`, `envc shell`,
//! `envc info`, `envc logs`, on busybox containers, unprivileged (the
//! default) and privileged. Each test holds `common::serial()`, starts its
//! containers detached in a private run and log directory, stops them with
//! a guard whatever happens, and checks the host is as it found it.
//! Container names start with `xc-`.

mod common;

use common::proc::{Out, Proc};
use common::pty::{KillOnDrop, Pty, wait_pty_child};
use common::world::{CMD_TIMEOUT, World, wait_until};
use common::{HostState, set_init};
use std::os::fd::AsRawFd;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const SETTLE: Duration = Duration::from_secs(5);

/// Busybox applets the tests use beyond the common rootfs's.
const MORE_APPLETS: [&str; 8] = ["tty", "stty", "logger", "kill", "wc", "sort", "cut", "pwd"];

/// A world whose rootfs has a user 1000 with a home, the extra applets, and
/// init a shell that waits for SIGTERM.
fn world(test: &str) -> World {
    let w = World::new(test, true, "xc-");
    for a in MORE_APPLETS {
        let _ = symlink("busybox", w.rootfs.join("bin").join(a));
    }
    std::fs::write(
        w.rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1001:A User:/home/user:/bin/sh\n",
    )
    .unwrap();
    std::fs::create_dir_all(w.rootfs.join("home/user")).unwrap();
    std::os::unix::fs::chown(w.rootfs.join("home/user"), Some(1000), Some(1001)).unwrap();
    set_init(&w.rootfs, "/bin/sh");
    w
}

/// A profile body: a shell as PID 1 that says it booted and stops on SIGTERM.
fn body(privileged: bool, extra: &str) -> String {
    format!(
        "[config]\n\"security.privileged\" = {privileged}\n\"environment.FOO\" = \"from-profile\"\n{extra}\n\
         [init]\ncommand = [\"/bin/sh\", \"-c\", \"echo booted; trap 'echo bye; exit 0' TERM PWR; while :; do sleep 0.2; done\"]\n"
    )
}

/// `envc exec NAME ARGS...` to the end.
fn exec(w: &World, name: &str, args: &[&str]) -> Out {
    let mut all = vec!["exec", name];
    all.extend_from_slice(args);
    w.envc(&all)
}

/// `envc exec NAME -- sh -c SCRIPT`, which must succeed; its stdout.
fn sh(w: &World, name: &str, script: &str) -> String {
    let out = exec(w, name, &["--", "sh", "-c", script]);
    out.expect(0, script);
    out.stdout
}

fn start(w: &World, name: &str, privileged: bool, extra: &str) {
    let p = w.profile(name, &body(privileged, extra));
    w.apply_d(&p, name);
    w.wait_console(name, "booted", 1, Duration::from_secs(10));
}

fn stop(w: &World, name: &str) {
    w.envc(&["stop", name]).expect(0, "envc stop");
    w.wait_state_gone(name);
}

/// Exit codes, environment, user and directory, stdin, namespaces, cgroup,
/// capabilities and fds of an exec'd command, in one container.
fn basics(test: &str, name: &str, privileged: bool) {
    let w = world(test);
    let before = HostState::capture();
    let g = w.guard(name);
    start(&w, name, privileged, "");

    // Exit codes.
    exec(&w, name, &["--", "true"]).expect(0, "true");
    exec(&w, name, &["--", "sh", "-c", "exit 3"]).expect(3, "exit 3");
    let nf = exec(&w, name, &["--", "no-such-command"]);
    nf.expect(127, "not found");
    assert!(nf.stderr.contains("no-such-command"), "{}", nf.describe());
    exec(&w, name, &["--", "/etc/passwd"]).expect(126, "not executable");
    exec(&w, name, &["--", "sh", "-c", "kill -9 $$"]).expect(137, "killed");

    // LXD's environment: init's, the caller's TERM, --env, the defaults.
    let mut cmd = w.cmd(&["exec", name, "--", "sh", "-c", "env | sort"]);
    cmd.env("TERM", "xterm-test");
    let env = Proc::spawn(cmd).wait(CMD_TIMEOUT).stdout;
    for want in [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME=/root",
        "USER=root",
        "LANG=C.UTF-8",
        "FOO=from-profile",
        "container=lxc",
        "TERM=xterm-test",
    ] {
        assert!(env.lines().any(|l| l == want), "no {want} in:\n{env}");
    }
    let out = exec(
        &w,
        name,
        &["--env", "FOO=cli", "--env", "BAR=1", "--", "env"],
    );
    out.expect(0, "exec --env");
    assert!(out.stdout.lines().any(|l| l == "FOO=cli"), "{}", out.stdout);
    assert!(out.stdout.lines().any(|l| l == "BAR=1"), "{}", out.stdout);

    // --user and --cwd; the default directory is the home.
    let me = exec(
        &w,
        name,
        &[
            "--user",
            "1000",
            "--",
            "sh",
            "-c",
            "id -u; id -g; pwd; echo $HOME $USER",
        ],
    );
    me.expect(0, "exec --user 1000");
    assert_eq!(me.stdout, "1000\n1001\n/home/user\n/home/user user\n");
    let me = exec(
        &w,
        name,
        &[
            "--user",
            "1000:5",
            "--cwd",
            "/tmp",
            "--",
            "sh",
            "-c",
            "id -g; pwd",
        ],
    );
    me.expect(0, "exec --user 1000:5 --cwd /tmp");
    assert_eq!(me.stdout, "5\n/tmp\n");
    let bad = exec(&w, name, &["--cwd", "/nowhere", "--", "true"]);
    bad.expect(125, "a --cwd that does not exist");
    assert!(bad.stderr.contains("/nowhere"), "{}", bad.describe());
    exec(&w, name, &["--user", "root", "--", "true"]).expect(2, "a name for --user");

    // Stdin is passed through, and its end reaches the command.
    let cmd = w.cmd(&["exec", name, "--", "sh", "-c", "cat; echo end"]);
    let out = Proc::spawn_feeding(cmd, b"piped line\n").wait(CMD_TIMEOUT);
    out.expect(0, "cat from stdin");
    assert_eq!(out.stdout, "piped line\nend\n");

    // Every namespace, the cgroup, and the capability bounding set of PID 1.
    let same = sh(
        &w,
        name,
        "for n in user mnt pid net uts ipc cgroup; do \
           [ \"$(readlink /proc/1/ns/$n)\" = \"$(readlink /proc/self/ns/$n)\" ] && echo same $n || echo differs $n; \
         done; \
         [ \"$(grep -v ^0:: /proc/1/cgroup)\" = \"$(grep -v ^0:: /proc/self/cgroup)\" ] && echo same cgroup; \
         grep ^0:: /proc/self/cgroup; \
         [ \"$(grep CapBnd /proc/1/status)\" = \"$(grep CapBnd /proc/self/status)\" ] && echo same bounding",
    );
    for n in ["user", "mnt", "pid", "net", "uts", "ipc", "cgroup"] {
        assert!(same.contains(&format!("same {n}\n")), "{same}");
    }
    assert!(same.contains("same cgroup\n"), "{same}");
    assert!(same.contains("0::/.lxc\n"), "LXD's cgroup2 leaf: {same}");
    assert!(same.contains("same bounding\n"), "{same}");
    // PID 1's syscall filter, without no_new_privs, for root and a user.
    for user in ["0", "1000"] {
        let st = exec(
            &w,
            name,
            &[
                "--user",
                user,
                "--",
                "grep",
                "-E",
                "^(Seccomp|NoNewPrivs):",
                "/proc/self/status",
            ],
        );
        st.expect(0, "grep status");
        assert_eq!(st.stdout, "NoNewPrivs:\t0\nSeccomp:\t2\n", "--user {user}");
    }
    // What the command holds as it starts (the probe looks first thing):
    // 0–2 and nothing else, even what envc's own caller left open.
    let out = exec(&w, name, &["--", "/sbin/probe"]);
    out.expect(0, "the probe");
    let probe = common::extract_probe_json(&out.stdout);
    let fds: Vec<i64> = probe["fds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fd"].as_i64().unwrap())
        .collect();
    assert_eq!(fds, [0, 1, 2], "{probe:#}");
    assert_ne!(probe["pid"], 1, "{probe:#}");
    assert_eq!(
        probe["sid"], probe["pid"],
        "a session of its own: {probe:#}"
    );
    let pid1 = w.pid1(name);
    let host_bnd = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("CapBnd"))
            .unwrap()
            .to_string()
    };
    if privileged {
        assert_ne!(host_bnd(pid1), host_bnd(std::process::id() as i32));
        // The sealed copy of envc the execs ran from: the supervisor's.
        let sup = w.info(name)["supervisor"].as_i64().unwrap();
        let held = std::fs::read_dir(format!("/proc/{sup}/fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .any(|l| l.to_string_lossy().starts_with("/memfd:envc-sealed-copy"));
        assert!(held, "the supervisor keeps no sealed copy of envc");
    }

    stop(&w, name);
    // A stopped (and a never-started) container: 125, named.
    let gone = exec(&w, name, &["--", "true"]);
    gone.expect(125, "exec into a stopped container");
    assert!(gone.stderr.contains(name), "{}", gone.describe());
    let none = exec(&w, "xc-never", &["--", "true"]);
    none.expect(125, "exec into no container");
    assert!(none.stderr.contains("xc-never"), "{}", none.describe());
    drop(g);
    before.assert_restored_within(SETTLE);
}

#[test]
fn exec_basics_unprivileged() {
    if !common::require_root("exec_basics_unprivileged") {
        return;
    }
    let _s = common::serial();
    basics("xc-basics-u", "xc-basics-u", false);
}

#[test]
fn exec_basics_privileged() {
    if !common::require_root("exec_basics_privileged") {
        return;
    }
    let _s = common::serial();
    basics("xc-basics-p", "xc-basics-p", true);
}

/// `envc exec -t` and `envc shell` on a terminal the test drives: the
/// container's own pty, TERM, the window size and its changes, Ctrl-D.
#[test]
fn exec_terminal_session() {
    if !common::require_root("exec_terminal_session") {
        return;
    }
    let _s = common::serial();
    let w = world("xc-tty");
    let name = "xc-tty";
    let before = HostState::capture();
    let g = w.guard(name);
    start(&w, name, false, "");

    for how in [vec!["exec", name, "--", "/bin/sh"], vec!["shell", name]] {
        let (mut pty, slave) = Pty::open(24, 80);
        let mut cmd = w.cmd(&how);
        cmd.env("TERM", "xterm-test");
        let mut child = KillOnDrop(Pty::spawn(cmd, &slave));
        drop(slave);
        let at = pty.wait_for("# ", 0, Duration::from_secs(10));
        pty.write(
            b"echo T=$TERM; stty size; [ $(stat -L -c %d /proc/self/fd/0) = $(stat -c %d /dev/pts/ptmx) ] && echo own-devpts\r",
        );
        let at = pty.wait_for("T=xterm-test", at, Duration::from_secs(10));
        let at = pty.wait_for("24 80", at, Duration::from_secs(10));
        let at = pty.wait_for("own-devpts", at, Duration::from_secs(10));
        let at = pty.wait_for("# ", at, Duration::from_secs(10));
        let ws = libc::winsize {
            ws_row: 41,
            ws_col: 101,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ on our pty master with a valid winsize.
        unsafe { libc::ioctl(pty.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        // The resize reaches envc as SIGWINCH, which sets it on the pty.
        std::thread::sleep(Duration::from_millis(300));
        pty.write(b"stty size\r");
        let at = pty.wait_for("41 101", at, Duration::from_secs(10));
        pty.wait_for("# ", at, Duration::from_secs(10));
        pty.write(b"\x04");
        let st = wait_pty_child(&mut child.0, &mut pty, Duration::from_secs(10));
        assert_eq!(st.code(), Some(0), "{how:?}:\n{}", pty.text());
    }
    stop(&w, name);
    drop(g);
    before.assert_restored_within(SETTLE);
}

/// `-t` with a stdin that is not a terminal: the command reads it through
/// the pty, and its end reaches the command as the terminal's end of file
/// (Ctrl-D, which ends a read in line mode: `cat` here; busybox's
/// interactive shell takes it as a key instead).
#[test]
fn exec_tty_with_piped_stdin_ends_at_eof() {
    if !common::require_root("exec_tty_with_piped_stdin_ends_at_eof") {
        return;
    }
    let _s = common::serial();
    let w = world("xc-ttypipe");
    let name = "xc-ttypipe";
    let before = HostState::capture();
    let g = w.guard(name);
    start(&w, name, false, "");
    let cmd = w.cmd(&[
        "exec",
        "-t",
        name,
        "--",
        "sh",
        "-c",
        "tty; cat; echo cat-ended",
    ]);
    let out = Proc::spawn_feeding(cmd, b"via-pty\n").wait(CMD_TIMEOUT);
    out.expect(0, "cat on a pty, stdin piped");
    assert!(out.stdout.contains("/dev/pts/"), "{}", out.describe());
    assert!(out.stdout.contains("via-pty"), "{}", out.describe());
    assert!(out.stdout.contains("cat-ended"), "{}", out.describe());
    stop(&w, name);
    drop(g);
    before.assert_restored_within(SETTLE);
}

/// SIGINT, SIGTERM and SIGHUP to envc reach the command; its exit status
/// comes back.
#[test]
fn exec_forwards_signals() {
    if !common::require_root("exec_forwards_signals") {
        return;
    }
    let _s = common::serial();
    let w = world("xc-sig");
    let name = "xc-sig";
    let before = HostState::capture();
    let g = w.guard(name);
    start(&w, name, false, "");
    for (sig, code) in [(libc::SIGINT, 21), (libc::SIGTERM, 22), (libc::SIGHUP, 23)] {
        let script =
            format!("trap 'echo got; exit {code}' {sig}; echo ready; while :; do sleep 0.1; done");
        let mut p = Proc::spawn(w.cmd(&["exec", name, "-T", "--", "sh", "-c", &script]));
        p.wait_stdout("ready", 1, Duration::from_secs(10));
        p.signal(sig);
        let out = p.finish(CMD_TIMEOUT);
        out.expect(code, &format!("signal {sig}"));
        assert!(out.stdout.contains("got"), "{}", out.describe());
    }
    stop(&w, name);
    drop(g);
    before.assert_restored_within(SETTLE);
}

/// 50 execs at once into one container: every one runs and ends, with its
/// own PID, and nothing of them stays.
#[test]
fn fifty_concurrent_execs() {
    if !common::require_root("fifty_concurrent_execs") {
        return;
    }
    let _s = common::serial();
    let w = world("xc-many");
    let name = "xc-many";
    let before = HostState::capture();
    let g = w.guard(name);
    start(&w, name, false, "");
    let procs: Vec<Proc> = (0..50)
        .map(|i| {
            Proc::spawn(w.cmd(&[
                "exec",
                name,
                "--",
                "sh",
                "-c",
                &format!("echo {i} $$; exit {}", i % 7),
            ]))
        })
        .collect();
    let mut pids = std::collections::BTreeSet::new();
    for (i, p) in procs.into_iter().enumerate() {
        let out = p.wait(CMD_TIMEOUT);
        out.expect((i % 7) as i32, "one of 50 execs");
        let mut f = out.stdout.split_whitespace();
        assert_eq!(f.next(), Some(i.to_string().as_str()), "{}", out.describe());
        pids.insert(f.next().unwrap().to_string());
    }
    assert_eq!(pids.len(), 50, "PIDs inside: {pids:?}");
    let left = sh(&w, name, "ls -d /proc/[0-9]* | wc -l");
    // PID 1, its sleep, this sh, ls and wc (and the pipe's subshell).
    assert!(
        left.trim().parse::<u32>().unwrap() <= 6,
        "processes left: {left}"
    );
    stop(&w, name);
    drop(g);
    before.assert_restored_within(SETTLE);
}

/// A process started by `envc exec` dies with the container.
#[test]
fn an_exec_dies_with_its_container() {
    if !common::require_root("an_exec_dies_with_its_container") {
        return;
    }
    let _s = common::serial();
    let w = world("xc-dies");
    let name = "xc-dies";
    let before = HostState::capture();
    let g = w.guard(name);
    start(&w, name, false, "");
    let mut p = Proc::spawn(w.cmd(&["exec", name, "--", "sh", "-c", "echo up; sleep 600"]));
    p.wait_stdout("up", 1, Duration::from_secs(10));
    w.envc(&["stop", "--force", name]).expect(0, "stop --force");
    let out = p.finish(Duration::from_secs(10));
    out.expect(137, "the exec'd process, killed with its container");
    w.wait_state_gone(name);
    drop(g);
    before.assert_restored_within(SETTLE);
}

/// `envc logs`: the console log; `-f` follows and ends when the container
/// stops; `--syslog` has what the guest sent to /dev/log. `envc info`:
/// state, PID, map, interfaces with addresses, resources; then stopped.
#[test]
fn logs_and_info() {
    if !common::require_root("logs_and_info") {
        return;
    }
    let _s = common::serial();
    let w = world("xc-logs");
    let name = "xc-logs";
    let before = HostState::capture();
    let g = w.guard(name);
    // A point-to-point NIC with an address, for info's interfaces.
    let nic = "[devices.eth0]\ntype = \"nic\"\nnictype = \"p2p\"\nname = \"eth0\"\n\"ipv4.address\" = \"10.213.7.2/24\"\nhwaddr = \"00:16:3e:aa:bb:cc\"\n";
    let p = w.profile(name, &format!("{}{nic}", body(false, "")));
    w.apply_d(&p, name);
    w.wait_console(name, "booted", 1, Duration::from_secs(10));
    let mut follow = Proc::spawn(w.cmd(&["logs", "-f", name]));
    follow.wait_stdout("booted", 1, Duration::from_secs(10));

    sh(&w, name, "logger -t xc hello-syslog");
    wait_until("the syslog line", Duration::from_secs(10), || {
        let out = w.envc(&["logs", "--syslog", name]);
        out.stdout.contains("hello-syslog").then_some(())
    });

    let out = w.envc(&["info", name, "--format", "json"]);
    out.expect(0, "envc info");
    let info: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(info["state"], "running", "{info:#}");
    assert_eq!(info["pid"].as_i64(), Some(w.pid1(name) as i64), "{info:#}");
    assert_eq!(info["privileged"], false, "{info:#}");
    assert!(info["idmap"]["uids"].is_array(), "{info:#}");
    let lo = info["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "lo")
        .unwrap_or_else(|| panic!("no lo: {info:#}"));
    assert!(
        lo["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "127.0.0.1/8"),
        "{info:#}"
    );
    let eth0 = info["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "eth0")
        .unwrap_or_else(|| panic!("no eth0: {info:#}"));
    assert_eq!(eth0["mac"], "00:16:3e:aa:bb:cc", "{info:#}");
    assert_eq!(eth0["up"], true, "{info:#}");
    assert!(
        eth0["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "10.213.7.2/24"),
        "{info:#}"
    );
    let r = &info["resources"];
    assert!(r["memory_bytes"].as_u64().unwrap() > 0, "{info:#}");
    assert!(r["processes"].as_u64().unwrap() >= 1, "{info:#}");
    assert!(r["cpu_usec"].as_u64().is_some(), "{info:#}");
    let text = w.envc(&["info", name]);
    text.expect(0, "envc info");
    for want in [
        "Status: RUNNING",
        "Mode: unprivileged",
        "Id map: ",
        "lo:",
        "eth0:",
        "IP address: 10.213.7.2/24 (inet)",
    ] {
        assert!(text.stdout.contains(want), "{}", text.stdout);
    }

    w.envc(&["stop", name]).expect(0, "stop");
    let out = follow.finish(Duration::from_secs(10));
    out.expect(0, "logs -f ends when the container stops");
    assert!(out.stdout.contains("bye"), "{}", out.describe());
    w.wait_state_gone(name);
    let out = w.envc(&["info", name, "--format", "json"]);
    out.expect(0, "envc info of a stopped container");
    let info: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(info["state"], "stopped", "{info:#}");
    w.envc(&["logs", "xc-never"])
        .expect(1, "logs of no container");
    drop(g);
    before.assert_restored_within(SETTLE);
}

/// A hostile guest watches every process's `/proc/PID/exe` and fds while
/// `envc exec` joins over and over: it never finds envc's binary or an fd
/// of envc's, can open no exe for writing, and the binary is unchanged.
fn hostile_guest(test: &str, name: &str, privileged: bool) {
    let w = world(test);
    // The binary this test runs, a copy of envc's: a decoy, so a guest that
    // could write it would damage nothing of the host's.
    let bin = w.dir.path().join("envc-copy");
    std::fs::copy(common::envc_bin(), &bin).unwrap();
    let hash = |p: &Path| std::fs::read(p).unwrap();
    let original = hash(&bin);
    let before = HostState::capture();
    let g = w.guard(name);
    let p = w.profile(name, &body(privileged, ""));
    let mut apply = Command::new(&bin);
    apply
        .args(["apply", "-d", p.to_str().unwrap()])
        .env("ENVC_RUN_DIR", &w.run_dir)
        .env("ENVC_LOG_DIR", &w.log_dir);
    Proc::spawn(apply).wait(CMD_TIMEOUT).expect(0, "apply -d");
    w.wait_console(name, "booted", 1, Duration::from_secs(10));
    let exec_with = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.arg("exec")
            .arg(name)
            .args(args)
            .env("ENVC_RUN_DIR", &w.run_dir)
            .env("ENVC_LOG_DIR", &w.log_dir);
        c
    };
    let hunter = Proc::spawn(exec_with(&["--", "/sbin/probe", "--hunt", "6"]));
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(4) {
        Proc::spawn(exec_with(&["--", "true"]))
            .wait(CMD_TIMEOUT)
            .expect(0, "exec true");
        n += 1;
    }
    let out = hunter.wait(CMD_TIMEOUT);
    out.expect(0, "the hunter");
    let done = out
        .stdout
        .lines()
        .find(|l| l.starts_with("hunt-done"))
        .unwrap_or_else(|| panic!("{}", out.describe()));
    let seen: u64 = done.rsplit('=').next().unwrap().parse().unwrap();
    assert!(seen > 0, "the hunter saw no process at all: {done}");
    let bin_text = bin.display().to_string();
    for l in out.stdout.lines().filter(|l| !l.starts_with("hunt-done")) {
        assert!(!l.starts_with("WRITABLE"), "{l}");
        assert!(!l.contains(&bin_text), "the guest found envc's binary: {l}");
        if l.starts_with("fd ") {
            panic!("the guest saw an fd above 2 of another process: {l} ({n} execs)");
        }
        if l.starts_with("exe ") && !privileged {
            panic!("the guest read an exe that is not its own: {l}");
        }
        if l.starts_with("exe ") {
            assert!(l.contains("/memfd:envc-sealed-copy"), "{l}");
        }
    }
    stop(&w, name);
    drop(g);
    before.assert_restored_within(SETTLE);
    assert!(hash(&bin) == original, "envc's binary changed");
}

#[test]
fn a_hostile_unprivileged_guest_gets_nothing_of_envc() {
    if !common::require_root("a_hostile_unprivileged_guest_gets_nothing_of_envc") {
        return;
    }
    let _s = common::serial();
    hostile_guest("xc-hunt-u", "xc-hunt-u", false);
}

#[test]
fn a_hostile_privileged_guest_gets_nothing_of_envc() {
    if !common::require_root("a_hostile_privileged_guest_gets_nothing_of_envc") {
        return;
    }
    let _s = common::serial();
    hostile_guest("xc-hunt-p", "xc-hunt-p", true);
}
