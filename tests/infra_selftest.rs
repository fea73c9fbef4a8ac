//! Tests of the test infrastructure itself (tests/common, tests/probe). Safe on any
//! machine; the one test needing root skips (or fails under ENVC_REQUIRE_ROOT=1).

mod common;

use common::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Reads the child's stdout line by line (in a thread) until a line equal to `marker`,
/// returning everything read and the channel delivering the lines after it (closed at
/// EOF); panics after `timeout`.
fn read_until(
    child: &mut Child,
    marker: &str,
    timeout: Duration,
) -> (String, mpsc::Receiver<String>) {
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = Vec::new();
        while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            if tx
                .send(String::from_utf8_lossy(&line).into_owned())
                .is_err()
            {
                return;
            }
            line.clear();
        }
    });
    let mut text = String::new();
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                let done = l.trim() == marker;
                text.push_str(&l);
                if done {
                    return (text, rx);
                }
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no {marker:?} line within {timeout:?} ({e}); got:\n{text}");
            }
        }
    }
}

fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn sig_in_mask(hex: &str, sig: u32) -> bool {
    u64::from_str_radix(hex.trim(), 16).expect("hex mask") & (1u64 << (sig - 1)) != 0
}

#[test]
fn probe_compiles_static_and_warning_free() {
    let dir = TempDir::new("probe-compile");
    let out_path = dir.path().join("probe");
    let out = compile_probe(&out_path);
    let msgs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "cc failed:\n{msgs}");
    assert!(msgs.trim().is_empty(), "cc printed warnings:\n{msgs}");
    assert_eq!(
        is_static_elf(&out_path),
        Ok(true),
        "probe must be a static ELF"
    );
    // The shared per-process build works too.
    assert_eq!(is_static_elf(&probe_binary()), Ok(true));
}

#[test]
fn probe_on_host_reports_sane_fields() {
    let _lock = serial();
    let dir = TempDir::new("probe-host");
    let marker_file = dir.path().join("inherited-fd-9");
    std::fs::write(&marker_file, "x").unwrap();
    let file = std::fs::File::open(&marker_file).unwrap(); // O_CLOEXEC, like all std fds
    let raw = std::os::fd::AsRawFd::as_raw_fd(&file);

    let weird = b"q\"uo\\te\nnew\ttab \x01 \xc3\xa9 \xff end";
    let mut cmd = Command::new(probe_binary());
    cmd.args(["--exit", "7"])
        .env_clear()
        .env("FOO", "bar")
        .env("WEIRD", OsStr::from_bytes(weird))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: dup2 is async-signal-safe; the new fd 9 is not close-on-exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 9) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn probe");
    let child_pid = child.id();
    let out = child.wait_with_output().unwrap();
    drop(file);
    assert_eq!(
        out.status.code(),
        Some(7),
        "exit status; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "probe wrote to stderr: {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    let console = String::from_utf8(out.stdout).expect("probe output must be UTF-8");
    let j = extract_probe_json(&console);
    eprintln!("probe errors on host: {}", j["errors"]);

    assert_eq!(j["probe_version"], 1);
    assert_eq!(j["argv"][1], "--exit");
    assert_eq!(j["argv"][2], "7");
    let pid = j["pid"].as_i64().unwrap();
    assert!(pid > 1);
    assert_eq!(pid, i64::from(child_pid));
    assert_eq!(j["ppid"].as_i64().unwrap(), i64::from(std::process::id()));
    let euid = nix::unistd::geteuid().as_raw();
    assert_eq!(
        j["uid"].as_u64().unwrap(),
        u64::from(nix::unistd::getuid().as_raw())
    );
    assert_eq!(j["euid"].as_u64().unwrap(), u64::from(euid));
    // The probe inherits the test's session and process group. Either can be 0
    // when its leader lives outside this PID namespace (as on some CI hosts),
    // so compare with what this process sees rather than demand a positive id.
    let own_sid = i64::from(nix::unistd::getsid(None).unwrap().as_raw());
    let own_pgid = i64::from(nix::unistd::getpgrp().as_raw());
    assert_eq!(j["sid"].as_i64().unwrap(), own_sid);
    assert_eq!(j["pgid"].as_i64().unwrap(), own_pgid);
    assert_eq!(j["cwd"].as_str().unwrap(), dir.path().to_str().unwrap());
    let host = nix::unistd::gethostname().unwrap();
    assert_eq!(j["hostname"].as_str().unwrap(), host.to_str().unwrap());

    // Environment: exactly what we set; escaping round-trips (a bad byte becomes U+00XX).
    let env: Vec<&str> = j["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"FOO=bar"), "env: {env:?}");
    assert!(
        env.contains(&"WEIRD=q\"uo\\te\nnew\ttab \u{1} é \u{ff} end"),
        "env: {env:?}"
    );
    assert_eq!(env.len(), 2, "env: {env:?}");

    // fds: 0-2 plus the inherited fd 9 with its target; not the probe's own dirfd.
    assert_eq!(j["fds_source"], "proc");
    let fds = j["fds"].as_array().unwrap();
    let fd = |n: i64| fds.iter().find(|f| f["fd"].as_i64() == Some(n));
    for n in [0, 1, 2] {
        assert!(fd(n).is_some(), "fd {n} missing: {fds:?}");
    }
    assert_eq!(fd(0).unwrap()["target"], "/dev/null");
    assert!(
        fd(1).unwrap()["target"]
            .as_str()
            .unwrap()
            .starts_with("pipe:[")
    );
    assert_eq!(
        fd(9).map(|f| f["target"].clone()),
        Some(Value::from(marker_file.to_str().unwrap())),
        "inherited fd 9 not reported: {fds:?}"
    );

    let stdio = j["stdio"].as_array().unwrap();
    assert_eq!(stdio.len(), 3);
    assert_eq!(stdio[0]["type"], "char");
    assert_eq!(
        (stdio[0]["major"].as_i64(), stdio[0]["minor"].as_i64()),
        (Some(1), Some(3))
    );
    for s in stdio {
        assert_eq!(s["isatty"], false);
        assert!(s["ttyname"].is_null());
    }

    for k in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let v = j["caps"][k]
            .as_str()
            .unwrap_or_else(|| panic!("caps.{k}: {}", j["caps"]));
        assert_eq!(v.len(), 16, "{k}={v}");
        assert!(v.chars().all(|c| c.is_ascii_hexdigit()), "{k}={v}");
    }
    assert_eq!(j["status"]["Pid"], child_pid.to_string());
    assert!(j["ns"]["pid"].as_str().unwrap().starts_with("pid:["));

    let mi: Vec<&str> = j["mountinfo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(!mi.is_empty());
    let mounts: Vec<Mount> = mi
        .iter()
        .map(|l| parse_mountinfo_line(l).unwrap_or_else(|| panic!("{l}")))
        .collect();
    assert!(mounts.iter().any(|m| m.mount_point == "/"));
    assert!(
        mounts
            .iter()
            .any(|m| m.mount_point == "/proc" && m.fs_type == "proc")
    );
    assert!(!j["cgroup"].as_array().unwrap().is_empty());
    assert!(j["net_links"].as_array().unwrap().iter().any(|l| l == "lo"));

    let dev = j["dev"].as_array().unwrap();
    assert_eq!(dev[0]["path"], "/dev");
    assert_eq!(dev[0]["type"], "dir");
    let null = dev
        .iter()
        .find(|e| e["path"] == "/dev/null")
        .expect("/dev/null listed");
    assert_eq!(null["type"], "char");
    assert_eq!(
        (null["major"].as_i64(), null["minor"].as_i64()),
        (Some(1), Some(3))
    );
    assert_eq!(null["mode"], "0666");
    assert_eq!(null["uid"], 0);
    assert!(
        dev.iter()
            .any(|e| e["type"] == "symlink" && e["target"].is_string()),
        "some symlink (e.g. /dev/fd) with a target"
    );

    let wp = &j["write_probes"];
    for p in [
        "/proc/sysrq-trigger",
        "/proc/sys/kernel/hostname",
        "/proc/sys/net/ipv4/ip_forward",
    ] {
        let r = &wp[p];
        assert!(r["open_wronly"].is_boolean(), "{p}: {r}");
        assert_eq!(r["open_wronly"] == true, r["errno"].is_null(), "{p}: {r}");
    }
    for p in [
        "/sys",
        "/sys/devices/virtual/net",
        "/proc/sys",
        "/proc/sys/net",
        "/",
    ] {
        let r = &wp[p];
        assert!(r["open_wronly"].is_null(), "{p}: {r}");
        assert!(r["statvfs_rdonly"].is_boolean(), "{p}: {r}");
    }
    assert_eq!(wp["/"]["statvfs_rdonly"], false);
    // Opening for write is refused to non-root on the host.
    if euid != 0 {
        assert_eq!(wp["/proc/sys/kernel/hostname"]["open_wronly"], false);
    }
}

#[test]
fn probe_exit_status_from_env() {
    let _lock = serial();
    let out = Command::new(probe_binary())
        .env_clear()
        .env("PROBE_EXIT", "3")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let j = extract_probe_json(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(j["env"], serde_json::json!(["PROBE_EXIT=3"]));
}

#[test]
fn probe_sleep_pauses_and_catches_signals() {
    let _lock = serial();
    // Plain --sleep: stays up until killed.
    let mut child = Command::new(probe_binary())
        .arg("--sleep")
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (text, _) = read_until(&mut child, PROBE_END, Duration::from_secs(10));
    extract_probe_json(&text);
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none(), "--sleep probe exited");
    kill_and_reap(&mut child);

    // --sleep with PROBE_CATCH_SIGNALS: blocked from the start, exits on one.
    let mut child = Command::new(probe_binary())
        .arg("--sleep")
        .env_clear()
        .env("PROBE_CATCH_SIGNALS", "10,37")
        .env("PROBE_EXIT", "5")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (text, rest_rx) = read_until(&mut child, PROBE_END, Duration::from_secs(10));
    let j = extract_probe_json(&text);
    let blk = j["status"]["SigBlk"].as_str().unwrap();
    assert!(sig_in_mask(blk, 10) && sig_in_mask(blk, 37), "SigBlk={blk}");
    assert!(!sig_in_mask(blk, 15), "SigBlk={blk}");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).unwrap();
    let status = child.wait().unwrap();
    let rest: String = rest_rx.iter().collect();
    assert_eq!(status.code(), Some(5), "status {status:?}, output {rest:?}");
    assert!(
        rest.contains(&format!("ENVC-PROBE-SIGNAL 10 {}", std::process::id())),
        "{rest:?}"
    );
}

#[test]
fn probe_refuses_reboot_unless_init_of_child_pid_namespace() {
    let _lock = serial();
    let mut cmd = Command::new(probe_binary());
    cmd.args(["--reboot", "restart"])
        .env_clear()
        .stdin(Stdio::null());
    if nix::unistd::geteuid().is_root() {
        // Belt and braces: even a broken guard could not reboot the host without
        // CAP_SYS_BOOT.
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(125), "{text}");
    assert!(text.contains("ENVC-PROBE-REFUSED-REBOOT"), "{text}");
    extract_probe_json(&text);
}

#[test]
fn extract_handles_crlf_noise_and_several_boots() {
    let console = "booting...\r\nENVC-PROBE-BEGIN\r\n{\r\n\"pid\":1,\r\n\"a\":[\"x\"]\r\n}\r\nENVC-PROBE-END\r\n\
                   noise ENVC-PROBE-BEGIN not a marker\nENVC-PROBE-BEGIN\n{\"pid\":1,\"boot\":2}\nENVC-PROBE-END\n";
    let all = extract_all_probe_json(console);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["a"][0], "x");
    assert_eq!(all[1]["boot"], 2);
    assert_eq!(extract_probe_json(console)["pid"], 1);
    assert!(extract_all_probe_json("nothing here").is_empty());
    assert!(std::panic::catch_unwind(|| extract_probe_json("nothing")).is_err());
    assert!(std::panic::catch_unwind(|| extract_all_probe_json("ENVC-PROBE-BEGIN\n{")).is_err());
}

#[test]
fn mountinfo_parsing() {
    let l = r"36 35 98:0 /mnt1 /mnt/with\040space rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue";
    let m = parse_mountinfo_line(l).unwrap();
    assert_eq!(m.mount_id, 36);
    assert_eq!(m.parent_id, 35);
    assert_eq!(m.root, "/mnt1");
    assert_eq!(m.mount_point, "/mnt/with space");
    assert_eq!(m.optional, vec!["master:1", "shared:7"]);
    assert_eq!(m.fs_type, "ext3");
    assert!(m.has_option("noatime") && !m.is_read_only());
    assert!(m.has_super_option("errors") && m.has_super_option("errors=continue"));
    assert_eq!(unescape_mount_field(r"a\134b\011c\012"), "a\\b\tc\n");
    assert!(parse_mountinfo_line("garbage").is_none());
}

#[test]
fn busybox_rootfs_layout() {
    let dir = TempDir::new("rootfs");
    let root = busybox_rootfs(dir.path());
    assert_eq!(root, dir.path().join("rootfs"));

    let bb = root.join("bin/busybox");
    assert_eq!(is_static_elf(&bb), Ok(true));
    assert!(std::fs::metadata(&bb).unwrap().permissions().mode() & 0o111 != 0);
    for d in ["dev", "proc", "sys"] {
        assert_eq!(
            std::fs::read_dir(root.join(d)).unwrap().count(),
            0,
            "/{d} must be empty"
        );
    }
    for d in ["bin", "sbin", "etc", "tmp", "root", "run", "var", "usr/bin"] {
        assert!(root.join(d).is_dir(), "/{d}");
    }
    assert_eq!(
        std::fs::metadata(root.join("tmp"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o1777
    );
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        std::fs::read_link(root.join("sbin/poweroff")).unwrap(),
        Path::new("../bin/busybox")
    );
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
    assert!(group.lines().any(|l| l == "tty:x:5:"), "{group}");
    assert!(root.join("etc/passwd").is_file() && root.join("etc/hostname").is_file());

    // /sbin/init: absolute symlink, resolvable only inside the rootfs.
    assert_eq!(
        std::fs::read_link(root.join("sbin/init")).unwrap(),
        Path::new("/sbin/probe")
    );
    let init = resolve_in_rootfs(&root, Path::new("/sbin/init")).unwrap();
    assert_eq!(init, root.join("sbin/probe"));
    assert_eq!(is_static_elf(&init), Ok(true));
    assert!(std::fs::metadata(&init).unwrap().permissions().mode() & 0o111 != 0);
    assert_eq!(
        resolve_in_rootfs(&root, Path::new("/bin/../../../bin/sh")).unwrap(),
        bb
    );
    set_init(&root, "/bin/init");
    assert_eq!(
        resolve_in_rootfs(&root, Path::new("/sbin/init")).unwrap(),
        bb
    );
    set_init(&root, "../nonexistent");
    assert!(resolve_in_rootfs(&root, Path::new("/sbin/init")).is_err());

    // busybox really runs, also through an applet symlink.
    let _lock = serial();
    let out = Command::new(root.join("bin/sh"))
        .args(["-c", "echo hi-$((1+1))"])
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi-2\n");
}

#[test]
fn host_state_capture_is_stable() {
    let _lock = serial();
    let a = HostState::capture();
    let b = HostState::capture();
    a.assert_unchanged(&b);
    assert!(
        a.mounts.iter().any(|m| m.starts_with("/ ")),
        "{:#?}",
        a.mounts
    );
    assert!(a.net_links.iter().any(|l| l == "lo"));
}

#[test]
fn host_state_diff_is_readable() {
    let a = HostState {
        mounts: vec!["/ root=/ type=ext4".into()],
        net_links: vec!["lo".into()],
        processes: vec![],
        cgroups: vec![],
        run_envc: vec![],
        device_nodes: vec!["/dev/null 0:0 20666".into()],
    };
    let mut b = a.clone();
    b.mounts.push("/x root=/ type=tmpfs".into());
    b.device_nodes = vec!["/dev/null 1000000:1000000 20666".into()];
    b.net_links.clear();
    b.cgroups.push("/sys/fs/cgroup/cpu/envc dir".into());
    let d = a.diff(&b);
    assert!(d.contains("--- mounts:\n  + /x root=/ type=tmpfs"), "{d}");
    assert!(d.contains("--- network links:\n  - lo"), "{d}");
    assert!(d.contains("+ /sys/fs/cgroup/cpu/envc dir"), "{d}");
    assert!(
        d.contains(
            "--- host device nodes:\n  - /dev/null 0:0 20666\n  + /dev/null 1000000:1000000"
        ),
        "{d}"
    );
    assert!(!d.contains("processes") && !d.contains("/run/envc"), "{d}");
    assert!(a.diff(&a).is_empty());
    assert!(std::panic::catch_unwind(|| a.assert_unchanged(&b)).is_err());
}

#[test]
fn host_state_sees_a_leftover_probe_process() {
    let _lock = serial();
    let before = HostState::capture();
    let mut child = Command::new(probe_binary())
        .arg("--sleep")
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    read_until(&mut child, PROBE_END, Duration::from_secs(10));
    let during = HostState::capture();
    let d = before.diff(&during);
    let expected = format!("+ pid={} ", child.id());
    kill_and_reap(&mut child);
    assert!(
        d.contains(&expected) && d.contains("comm=probe"),
        "diff: {d}"
    );
    before.assert_restored_within(Duration::from_secs(5));
}

#[test]
fn tempdir_removes_and_keeps() {
    let d = TempDir::new("tmp-plain");
    let p = d.path().to_path_buf();
    std::fs::create_dir_all(p.join("a/b")).unwrap();
    std::fs::write(p.join("a/b/f"), "x").unwrap();
    std::os::unix::fs::symlink("/", p.join("a/root-link")).unwrap(); // never followed
    assert!(d.mounts_below().unwrap().is_empty());
    drop(d);
    assert!(!p.exists());
    assert!(Path::new("/bin").exists());

    let d = TempDir::new("tmp-keep");
    let kept = d.keep();
    assert!(kept.is_dir());
    std::fs::remove_dir(&kept).unwrap();
}

#[test]
fn tempdir_refuses_to_delete_through_a_mount() {
    if !require_root("tempdir_refuses_to_delete_through_a_mount") {
        return;
    }
    // A private mount namespace for one dedicated thread (unshare(CLONE_NEWNS) is
    // per-thread); it, and the tmpfs, vanish when the thread ends. The host never sees it.
    let h = std::thread::spawn(|| {
        use nix::mount::{MntFlags, MsFlags, mount, umount2};
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare(CLONE_NEWNS)");
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .expect("make / rprivate in the new namespace");
        let d = TempDir::new("tmp-mounted");
        let sub = d.path().join("a/mnt");
        std::fs::create_dir_all(&sub).unwrap();
        mount(
            Some("tmpfs"),
            &sub,
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=64k"),
        )
        .expect("mount tmpfs");
        let sentinel = sub.join("sentinel");
        std::fs::write(&sentinel, "keep me").unwrap();
        std::fs::write(d.path().join("a/sibling"), "keep me too").unwrap();

        assert_eq!(d.mounts_below().unwrap(), vec![sub.clone()]);
        let err = d.try_remove().expect_err("must refuse while mounted");
        assert!(err.contains("refusing") && err.contains("a/mnt"), "{err}");
        assert!(
            sentinel.exists() && d.path().join("a/sibling").exists(),
            "nothing may be deleted"
        );

        umount2(&sub, MntFlags::MNT_DETACH).expect("umount tmpfs");
        let p = d.path().to_path_buf();
        drop(d);
        assert!(!p.exists(), "removed once unmounted");
    });
    if let Err(e) = h.join() {
        std::panic::resume_unwind(e);
    }
    // The host's mount table never saw the tmpfs.
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host.contains("tmp-mounted"), "{host}");
}

#[test]
fn require_root_matches_euid() {
    // Under ENVC_REQUIRE_ROOT=1 as non-root this panics, which is its purpose.
    assert_eq!(
        require_root("require_root_matches_euid"),
        nix::unistd::geteuid().is_root()
    );
}
