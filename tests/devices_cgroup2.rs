//! The device allow-list on a pure cgroup2 host (issue 21), for real, as root: a
//! privileged container on the pure cgroup2 layout of `common::cgroup2` (this machine's
//! own cgroup2 hierarchy alone at /sys/fs/cgroup, in a private mount namespace) gets its
//! allow-list as a cgroup device program; the same container on the machine's hybrid
//! layout gets it from the v1 devices controller, with the same answers.
//!
//! From inside: the contract's devices open; a node made with `mknod` for a device not
//! on the list (`c 1 11`, `b 7 0`) can be made but not opened (EPERM); a profile
//! `unix-char` device opens; `m` and `r`/`w` follow the rules. From outside: the
//! program is attached to the container's cgroup while it runs, and after `envc stop`
//! the cgroup is gone and the kernel has freed the program; the host is as it was.
//!
//! Container names start with `dp-`. Every test holds `common::serial()`.

mod common;

use common::{HostState, TempDir, busybox_rootfs};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_secs(5);
/// The machine's cgroup2 hierarchy as seen from outside the harness.
const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// Tries each device the way a guest would and prints `NAME=ok` or `NAME=<error>`.
const TRY: &str = r#"#!/bin/sh
rw() { # name, path: opened read-write
  if err=$( (exec 3<>"$2") 2>&1 ); then echo "$1=ok"; else echo "$1=${err##*: }"; fi
}
ro() { # name, path: opened read-only
  if err=$( (exec 3<"$2") 2>&1 ); then echo "$1=ok"; else echo "$1=${err##*: }"; fi
}
made() { # name, then mknod's arguments
  n=$1; shift
  if err=$(mknod "$@" 2>&1); then echo "$n=ok"; else echo "$n=${err##*: }"; fi
}
rw null /dev/null
rw zero /dev/zero
rw tty /dev/tty
rw ptmx /dev/ptmx
rw console /dev/console
rw fuse /dev/fuse
rw tun /dev/net/tun
made mknod_kmsg /dev/dp-kmsg c 1 11
ro kmsg /dev/dp-kmsg
made mknod_loop0 /dev/dp-loop0 b 7 0
ro loop0_r /dev/dp-loop0
rw loop0_rw /dev/dp-loop0
[ -e /dev/kmsg ] && ro profile_kmsg /dev/kmsg
echo done=1
if [ -n "$DP_SLEEP" ]; then trap 'exit 0' TERM; while :; do sleep 1; done; fi
exit 0
"#;

const EPERM: &str = "Operation not permitted";

struct World {
    dir: TempDir,
}

impl World {
    fn new(name: &str) -> World {
        let dir = TempDir::new(name);
        let rootfs = busybox_rootfs(dir.path());
        std::fs::write(rootfs.join("try.sh"), TRY).unwrap();
        World { dir }
    }

    /// A privileged container running `try.sh`, with `config` added to its `[config]`
    /// and `extra` to the profile.
    fn profile(&self, name: &str, config: &str, extra: &str) -> PathBuf {
        let p = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &p,
            format!(
                "name = \"{name}\"\nrootfs = \"rootfs\"\n\n[config]\n\"security.privileged\" = true\n{config}\n\
                 [init]\ncommand = [\"/bin/sh\", \"/try.sh\"]\nstop-signal = \"SIGTERM\"\n\n{extra}\n"
            ),
        )
        .unwrap();
        p
    }

    fn envc(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(common::envc_bin());
        cmd.args(args)
            .env("ENVC_RUN_DIR", self.dir.path().join("run"))
            .env("ENVC_LOG_DIR", self.dir.path().join("log"));
        cmd
    }

    fn report_path(profile: &Path) -> PathBuf {
        profile.with_extension("report.json")
    }

    /// `envc apply` in the foreground, on the pure cgroup2 layout or the host's own.
    fn apply(&self, profile: &Path, pure: bool, extra: &[&str]) -> Output {
        let report = World::report_path(profile);
        let mut args = vec![
            "apply",
            profile.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ];
        args.extend(extra);
        let cmd = self.envc(&args);
        let cmd = if pure {
            common::cgroup2::on_pure_cgroup2(&cmd)
        } else {
            cmd
        };
        common::proc::run_cmd(cmd, TIMEOUT)
    }

    fn report(profile: &Path) -> Value {
        let text = std::fs::read_to_string(World::report_path(profile)).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

fn facts(out: &Output) -> BTreeMap<String, String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn needs(test: &str) -> bool {
    if !common::require_root(test) {
        return false;
    }
    assert!(
        common::cgroup2::host_has_cgroup2(),
        "{test}: the host has no cgroup2 hierarchy"
    );
    for dev in ["/dev/fuse", "/dev/net/tun", "/dev/kmsg", "/dev/loop0"] {
        assert!(Path::new(dev).exists(), "{test} needs {dev} on the host");
    }
    true
}

/// The same privileged container on both layouts: the contract's devices open, nodes
/// outside the list can be made (`c *:* m`, `b *:* m`) but not opened; the report says
/// which mechanism enforced the list.
#[test]
fn the_allow_list_holds_on_pure_cgroup2_as_on_the_v1_controller() {
    if !needs("the_allow_list_holds_on_pure_cgroup2_as_on_the_v1_controller") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("dp-list");
    for (pure, how) in [
        (true, "(cgroup2 device program, 74 instructions)"),
        (false, "(v1 devices controller)"),
    ] {
        let name = if pure { "dp-pure" } else { "dp-hybrid" };
        let p = w.profile(name, "", "");
        let before = HostState::capture();
        let out = w.apply(&p, pure, &[]);
        before.assert_restored_within(SETTLE);
        let show = common::proc::show(&out);
        assert!(out.status.success(), "{show}");
        let f = facts(&out);
        assert_eq!(f.get("done").map(String::as_str), Some("1"), "{show}");
        for dev in ["null", "zero", "ptmx", "console", "fuse", "tun"] {
            assert_eq!(f[dev], "ok", "{name}: /dev/{dev}\n{show}");
        }
        // No controlling terminal may say ENXIO; the list must not refuse it.
        assert_ne!(f["tty"], EPERM, "{name}: /dev/tty\n{show}");
        assert_eq!(f["mknod_kmsg"], "ok", "{name}: c *:* m\n{show}");
        assert_eq!(f["kmsg"], EPERM, "{name}: c 1:11 is not listed\n{show}");
        assert_eq!(f["mknod_loop0"], "ok", "{name}: b *:* m\n{show}");
        assert_eq!(f["loop0_r"], EPERM, "{name}: b 7:0 is not listed\n{show}");
        assert_eq!(f["loop0_rw"], EPERM, "{name}\n{show}");
        let cg = World::report(&p)["host"]["cgroup"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            cg.contains(&format!("devices: deny all, allow 13 rules {how}")),
            "{name}: {cg}"
        );
        assert_eq!(cg.starts_with("pure cgroup2"), pure, "{cg}");
    }
}

/// A profile of its own: a `unix-char` device from the host (`/dev/kmsg`, c 1:11) is
/// usable, a list without `b *:* m` refuses `mknod` of a block device, and `b 7:0 rm`
/// lets the node be made and read but not written.
#[test]
fn profile_devices_and_access_rights_follow_the_rules_on_pure_cgroup2() {
    if !needs("profile_devices_and_access_rights_follow_the_rules_on_pure_cgroup2") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("dp-rules");
    let p = w.profile(
        "dp-rules",
        "",
        r#"
[cgroup]
device-allow = [
  "c *:* m",
  "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
  "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm",
  "c 10:229 rwm", "c 10:200 rwm",
  "b 7:0 rm",
]

[devices.dpkmsg]
type = "unix-char"
path = "/dev/kmsg"
source = "/dev/kmsg"
"#,
    );
    let before = HostState::capture();
    let out = w.apply(&p, true, &[]);
    before.assert_restored_within(SETTLE);
    let show = common::proc::show(&out);
    assert!(out.status.success(), "{show}");
    let f = facts(&out);
    assert_eq!(f["profile_kmsg"], "ok", "the profile's device\n{show}");
    // Its numbers are allowed, whatever node has them.
    assert_eq!(f["mknod_kmsg"], "ok", "{show}");
    assert_eq!(f["kmsg"], "ok", "{show}");
    // `b 7:0 rm`: made and read, not written.
    assert_eq!(f["mknod_loop0"], "ok", "{show}");
    assert_eq!(f["loop0_r"], "ok", "{show}");
    assert_eq!(f["loop0_rw"], EPERM, "{show}");
    assert_eq!(f["null"], "ok", "{show}");

    // Without any `b ... m` rule: mknod of a block device is refused.
    let p = w.profile(
        "dp-nom",
        "",
        r#"
[cgroup]
device-allow = [
  "c *:* m",
  "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
  "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm",
  "c 10:229 rwm", "c 10:200 rwm",
  "b 7:0 rw",
]
"#,
    );
    let before = HostState::capture();
    let out = w.apply(&p, true, &[]);
    before.assert_restored_within(SETTLE);
    let show = common::proc::show(&out);
    assert!(out.status.success(), "{show}");
    let f = facts(&out);
    assert_eq!(f["mknod_loop0"], EPERM, "no m for b 7:0\n{show}");
    assert_eq!(f["mknod_kmsg"], "ok", "{show}");
    assert_eq!(f["kmsg"], EPERM, "{show}");
}

// ------------------------------------------------------------------ the program, from outside

/// `union bpf_attr` for `BPF_PROG_QUERY`.
#[repr(C)]
#[derive(Default)]
struct ProgQuery {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

/// `union bpf_attr` for `BPF_PROG_GET_FD_BY_ID`.
#[repr(C)]
#[derive(Default)]
struct GetFdById {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_CGROUP_DEVICE: u32 = 6;

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: a live `bpf_attr` prefix of the size passed; the kernel writes only
    // into it and the id array it names.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The ids of the device programs attached to the cgroup directory `dir`.
fn device_programs(dir: &Path) -> Vec<u32> {
    let f = std::fs::File::open(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut ids = [0u32; 16];
    let mut q = ProgQuery {
        target_fd: std::os::fd::AsRawFd::as_raw_fd(&f) as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..ProgQuery::default()
    };
    bpf(BPF_PROG_QUERY, &mut q).unwrap_or_else(|e| panic!("BPF_PROG_QUERY: {e}"));
    ids[..q.prog_cnt as usize].to_vec()
}

/// Whether the kernel still has a program of this id.
fn program_exists(id: u32) -> bool {
    let mut a = GetFdById {
        prog_id: id,
        ..GetFdById::default()
    };
    match bpf(BPF_PROG_GET_FD_BY_ID, &mut a) {
        Ok(fd) => {
            // SAFETY: closing the fd the kernel just gave us.
            unsafe { libc::close(fd as libc::c_int) };
            true
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => false,
        Err(e) => panic!("BPF_PROG_GET_FD_BY_ID {id}: {e}"),
    }
}

/// A detached container on the pure cgroup2 layout: one device program on its cgroup
/// (and none on its parent) while it runs; after `envc stop` the cgroup is gone and the
/// kernel has freed the program: nothing stays attached.
#[test]
fn the_program_goes_with_the_cgroup_at_stop() {
    if !needs("the_program_goes_with_the_cgroup_at_stop") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("dp-stop");
    let p = w.profile("dp-stop", "\"environment.DP_SLEEP\" = \"1\"", "");
    let before = HostState::capture();
    let out = w.apply(&p, true, &["-d"]);
    assert!(out.status.success(), "{}", common::proc::show(&out));
    let cg = Path::new(UNIFIED).join("envc/dp-stop");
    let ids = device_programs(&cg);
    assert_eq!(ids.len(), 1, "one program on {}", cg.display());
    assert!(program_exists(ids[0]));
    assert!(
        device_programs(&Path::new(UNIFIED).join("envc")).is_empty(),
        "nothing on the shared parent"
    );
    let out = common::proc::run_cmd(w.envc(&["stop", "dp-stop"]), TIMEOUT);
    assert!(out.status.success(), "{}", common::proc::show(&out));
    before.assert_restored_within(SETTLE);
    assert!(!cg.exists());
    // The kernel frees a detached program after an RCU grace period.
    let t = Instant::now();
    while program_exists(ids[0]) {
        assert!(
            t.elapsed() < SETTLE,
            "program {} outlived its cgroup",
            ids[0]
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Rule shapes LXD's list does not use, loaded by the real verifier and obeyed: type
/// `a`, a wildcard minor with a read-only access, a wildcard major; and `a` alone,
/// which allows everything.
#[test]
fn every_rule_shape_loads_and_holds_on_pure_cgroup2() {
    if !needs("every_rule_shape_loads_and_holds_on_pure_cgroup2") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("dp-shapes");
    let p = w.profile(
        "dp-shapes",
        "",
        r#"
[cgroup]
device-allow = [
  "a 1:3 rw", "c 1:3 m", "a *:5 rwm", "c 1:* r", "c *:* m", "b *:* m",
  "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:* rwm", "c 136:* rwm",
  "c 10:229 rwm", "c 10:200 rwm",
]
"#,
    );
    let before = HostState::capture();
    let out = w.apply(&p, true, &[]);
    before.assert_restored_within(SETTLE);
    let show = common::proc::show(&out);
    assert!(out.status.success(), "{show}");
    let f = facts(&out);
    for dev in ["null", "zero", "ptmx", "console", "fuse", "tun"] {
        assert_eq!(f[dev], "ok", "/dev/{dev}\n{show}");
    }
    // `c 1:* r`: /dev/kmsg's numbers read, not written.
    assert_eq!(f["kmsg"], "ok", "{show}");
    assert_eq!(f["loop0_r"], EPERM, "{show}");
    let cg = World::report(&p)["host"]["cgroup"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(cg.contains("(cgroup2 device program"), "{cg}");

    let p = w.profile("dp-all", "", "[cgroup]\ndevice-allow = [\"a\"]\n");
    let before = HostState::capture();
    let out = w.apply(&p, true, &[]);
    before.assert_restored_within(SETTLE);
    let show = common::proc::show(&out);
    assert!(out.status.success(), "{show}");
    let f = facts(&out);
    assert_eq!(f["kmsg"], "ok", "{show}");
    assert_eq!(f["loop0_rw"], "ok", "`a` allows every device\n{show}");
}
