//! The syscall filter on the real kernel, as root: LXD's default list, the
//! forced umount, the i386 and x32 ABIs, `deny_compat`, `deny` and `allow`,
//! in privileged and unprivileged containers. PID 1 is a shell that runs a
//! static test program (`tests/probe/syscalls.c`) which prints one
//! `name=result` line per call; a container without a filter
//! (`deny_default = false`) gives the kernel's own answers to compare with.

mod common;

use common::{HostState, TempDir, busybox_rootfs};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

/// LXD's default list.
const DEFAULT_DENIED: &[&str] = &[
    "kexec_load",
    "open_by_handle_at",
    "init_module",
    "finit_module",
    "delete_module",
];

/// The test program, compiled once per test process.
fn syscalls_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("envc-syscalls");
        std::fs::create_dir_all(&dir).unwrap();
        let tmp = dir.join(format!("syscalls.{}.tmp", std::process::id()));
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probe/syscalls.c");
        let out = Command::new("cc")
            .args(["-static", "-O2", "-Wall", "-Wextra", "-o"])
            .arg(&tmp)
            .arg(&src)
            .output()
            .expect("cc (apt-get install gcc)");
        assert!(out.status.success(), "{}", common::proc::show(&out));
        let dst = dir.join("syscalls");
        std::fs::rename(&tmp, &dst).unwrap();
        dst
    })
    .clone()
}

struct World {
    dir: TempDir,
}

impl World {
    fn new(name: &str) -> World {
        let dir = TempDir::new(name);
        let rootfs = busybox_rootfs(dir.path());
        std::fs::copy(syscalls_binary(), rootfs.join("sbin/syscalls")).unwrap();
        // A setuid-root copy: run by uid 1000 inside, it must get euid 0.
        let suid = rootfs.join("sbin/syscalls-suid");
        std::fs::copy(syscalls_binary(), &suid).unwrap();
        std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
        World { dir }
    }

    /// A profile named `name` whose init runs `syscalls ARGS`.
    fn profile(&self, name: &str, config: &str, command: &str) -> PathBuf {
        let p = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &p,
            format!(
                "name = \"{name}\"\nrootfs = \"rootfs\"\n\n[config]\n{config}\n\n[init]\ncommand = {command}\n"
            ),
        )
        .unwrap();
        p
    }

    fn apply(&self, profile: &Path) -> Output {
        let mut cmd = Command::new(common::envc_bin());
        cmd.arg("apply")
            .arg(profile)
            .env("ENVC_RUN_DIR", self.dir.path().join("run"))
            .env("ENVC_LOG_DIR", self.dir.path().join("log"));
        common::proc::run_cmd(cmd, TIMEOUT)
    }

    /// Runs `syscalls checks` under `config`; its lines, and envc's stderr.
    fn checks(&self, name: &str, config: &str) -> (BTreeMap<String, String>, String) {
        let p = self.profile(name, config, r#"["/sbin/syscalls", "checks"]"#);
        let out = self.apply(&p);
        assert!(out.status.success(), "{}", common::proc::show(&out));
        (
            facts(&out),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn facts(out: &Output) -> BTreeMap<String, String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

const PRIVILEGED: &str = "\"security.privileged\" = true";
const UNPRIVILEGED: &str = "\"security.privileged\" = false";

/// The default filter in one mode, against the kernel's own answers.
fn default_filter(mode: &str, tag: &str) {
    let _serial = common::serial();
    let w = World::new(&format!("sc-default-{tag}"));
    let before = HostState::capture();
    let (bare, _) = w.checks(
        &format!("sc-bare-{tag}"),
        &format!("{mode}\n\"security.syscalls.deny_default\" = false"),
    );
    let (f, stderr) = w.checks(&format!("sc-default-{tag}"), mode);
    eprintln!("without a filter: {bare:?}\nwith LXD's default: {f:?}\n{stderr}");
    before.assert_restored_within(Duration::from_secs(5));
    assert_eq!(f["done"], "yes", "{f:?}");
    assert_eq!(bare["seccomp"], "0", "no filter: {bare:?}");
    // Loaded, in filter mode, without no_new_privs (setuid binaries work).
    assert_eq!(f["seccomp"], "2", "{f:?}");
    assert_eq!(f["no_new_privs"], "0", "{f:?}");
    assert_eq!(bare["setuid_euid"], "0", "{bare:?}");
    assert_eq!(f["setuid_euid"], "0", "a setuid program works: {f:?}");
    assert!(
        stderr.contains("syscalls       deny-list of 6 rules, for every ABI; loaded"),
        "the report says it was loaded: {stderr}"
    );
    for n in DEFAULT_DENIED {
        assert_eq!(f[*n], "ENOSYS", "{n}: {f:?}");
        assert_eq!(f[&format!("i386_{n}")], "ENOSYS", "i386 {n}: {f:?}");
    }
    // The kernel itself answers open_by_handle_at's bad arguments with
    // something else: the ENOSYS is the filter's (this kernel may lack
    // kexec and modules, which answer ENOSYS anyway).
    assert_ne!(bare["open_by_handle_at"], "ENOSYS", "{bare:?}");
    assert_ne!(bare["i386_open_by_handle_at"], "ENOSYS", "{bare:?}");
    // umount2: forced refused in every ABI, plain allowed.
    assert_eq!(bare["umount2_force"], "ok", "{bare:?}");
    assert_eq!(f["umount2_force"], "EACCES", "{f:?}");
    assert_eq!(f["umount2"], "ok", "{f:?}");
    assert_eq!(bare["i386_umount2_force"], "EFAULT", "{bare:?}");
    assert_eq!(f["i386_umount2_force"], "EACCES", "{f:?}");
    assert_eq!(f["x32_umount2_force"], "EACCES", "x32 too: {f:?}");
    // Everything else runs, in every ABI.
    assert_eq!(f["getpid"], "ok");
    assert_eq!(f["i386_getpid"], "ok");
    assert_eq!(f["mknodat"], "ok", "{f:?}");
}

#[test]
fn the_default_filter_in_a_privileged_container() {
    if !common::require_root("the_default_filter_in_a_privileged_container") {
        return;
    }
    default_filter(PRIVILEGED, "priv");
}

#[test]
fn the_default_filter_in_an_unprivileged_container() {
    if !common::require_root("the_default_filter_in_an_unprivileged_container") {
        return;
    }
    default_filter(UNPRIVILEGED, "unpriv");
}

#[test]
fn deny_compat_refuses_every_32_bit_call() {
    if !common::require_root("deny_compat_refuses_every_32_bit_call") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("sc-compat");
    let before = HostState::capture();
    let (f, _) = w.checks(
        "sc-compat",
        &format!("{UNPRIVILEGED}\n\"security.syscalls.deny_compat\" = true"),
    );
    before.assert_restored_within(Duration::from_secs(5));
    for n in ["getpid", "umount2_force", "kexec_load", "mknodat"] {
        assert_eq!(f[&format!("i386_{n}")], "ENOSYS", "i386 {n}: {f:?}");
    }
    assert_eq!(f["x32_umount2_force"], "ENOSYS", "{f:?}");
    // The 64-bit ABI keeps the default list and works otherwise.
    assert_eq!(f["getpid"], "ok");
    assert_eq!(f["umount2_force"], "EACCES");
    assert_eq!(f["umount2"], "ok");
    assert_eq!(f["open_by_handle_at"], "ENOSYS");
}

#[test]
fn deny_kills_the_caller_in_every_abi() {
    if !common::require_root("deny_kills_the_caller_in_every_abi") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("sc-deny");
    let before = HostState::capture();
    let (f, _) = w.checks(
        "sc-deny",
        &format!("{PRIVILEGED}\n\"security.syscalls.deny\" = \"mknodat\""),
    );
    // Without the default list, the named calls alone.
    let (g, _) = w.checks(
        "sc-deny-only",
        &format!(
            "{UNPRIVILEGED}\n\"security.syscalls.deny_default\" = false\n\"security.syscalls.deny\" = \"mknodat\""
        ),
    );
    before.assert_restored_within(Duration::from_secs(5));
    for m in [&f, &g] {
        assert_eq!(m["mknodat"], "killed by signal 31", "{m:?}");
        assert_eq!(m["i386_mknodat"], "killed by signal 31", "{m:?}");
        assert_eq!(m["seccomp"], "2");
    }
    assert_eq!(f["open_by_handle_at"], "ENOSYS", "{f:?}");
    assert_eq!(f["umount2_force"], "EACCES", "{f:?}");
    assert_ne!(g["open_by_handle_at"], "ENOSYS", "{g:?}");
    assert_eq!(g["umount2_force"], "ok", "{g:?}");
}

/// What a static glibc program needs to start, print and exit.
const MINIMAL: &str = "execve brk arch_prctl set_tid_address set_robust_list rseq prlimit64 readlink getrandom mprotect write exit_group";

#[test]
fn allow_lets_only_the_listed_calls_run() {
    if !common::require_root("allow_lets_only_the_listed_calls_run") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("sc-allow");
    let before = HostState::capture();
    let command = r#"["/sbin/syscalls", "minimal"]"#;
    let denied = w.profile(
        "sc-allow",
        &format!("{UNPRIVILEGED}\n\"security.syscalls.allow\" = \"{MINIMAL}\""),
        command,
    );
    let allowed = w.profile(
        "sc-allow-all",
        &format!("{PRIVILEGED}\n\"security.syscalls.allow\" = \"{MINIMAL}, getppid\""),
        command,
    );
    let out = w.apply(&denied);
    let out_all = w.apply(&allowed);
    before.assert_restored_within(Duration::from_secs(5));
    // getppid left out: PID 1 is killed by SIGSYS on it (exit 128+31).
    let f = facts(&out);
    assert_eq!(
        f.get("alive").map(String::as_str),
        Some("yes"),
        "{}",
        common::proc::show(&out)
    );
    assert!(!f.contains_key("after"), "{}", common::proc::show(&out));
    assert_eq!(out.status.code(), Some(159), "{}", common::proc::show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("allow-list of 12 syscalls"), "{stderr}");
    // Listed: it runs to the end.
    let g = facts(&out_all);
    assert_eq!(
        g.get("after").map(String::as_str),
        Some("yes"),
        "{}",
        common::proc::show(&out_all)
    );
    assert!(out_all.status.success(), "{}", common::proc::show(&out_all));
}

/// `envc::seccomp::install`, as `envc exec` uses it: the filter in the
/// calling process only. A process without `CAP_SYS_ADMIN` (here: a child
/// that became `nobody`) gets `no_new_privs` first, which the kernel then
/// requires. Needs no root: as root the child drops to `nobody` itself.
#[test]
fn install_loads_the_filter_into_the_calling_process() {
    let mut config = indexmap::IndexMap::new();
    config.insert(
        envc::seccomp::DENY.to_string(),
        envc::profile::model::At::new(
            "mknodat".to_string(),
            envc::profile::Origin::new("t.toml", "config.deny"),
        ),
    );
    let (filter, _) = envc::seccomp::filter_from_config(&config).expect("a filter");
    // SAFETY: the child only makes system calls, reads a file and exits
    // (glibc's malloc is safe to use after a fork).
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            let code = (|| {
                if nix::unistd::geteuid().is_root() {
                    let nobody = nix::unistd::Uid::from_raw(65534);
                    nix::unistd::setgid(nix::unistd::Gid::from_raw(65534)).ok()?;
                    nix::unistd::setuid(nobody).ok()?;
                }
                envc::seccomp::install(&filter).ok()?;
                let status = std::fs::read_to_string("/proc/self/status").ok()?;
                if !status.contains("\nSeccomp:\t2\n") || !status.contains("\nNoNewPrivs:\t1\n") {
                    return Some(2);
                }
                // SAFETY: plain system calls with invalid arguments.
                let (r, e) = unsafe {
                    let r = libc::syscall(libc::SYS_open_by_handle_at, -1, 0usize, 0);
                    (r, *libc::__errno_location())
                };
                if r != -1 || e != libc::ENOSYS {
                    return Some(3);
                }
                let (r, e) = unsafe {
                    let r = libc::syscall(libc::SYS_umount2, c"/nonexistent".as_ptr(), 1);
                    (r, *libc::__errno_location())
                };
                if r != -1 || e != libc::EACCES {
                    return Some(4);
                }
                Some(0)
            })()
            .unwrap_or(1);
            if code != 0 {
                std::process::exit(code + 10);
            }
            // Killed here by the filter: mknodat's rule kills its caller.
            let _ = nix::sys::stat::mknod(
                "/nonexistent/x",
                nix::sys::stat::SFlag::S_IFIFO,
                nix::sys::stat::Mode::empty(),
                0,
            );
            std::process::exit(10);
        }
        nix::unistd::ForkResult::Parent { child } => {
            let status = nix::sys::wait::waitpid(child, None).expect("waitpid");
            // Every check passed, then mknodat killed the child with SIGSYS.
            assert!(
                matches!(
                    status,
                    nix::sys::wait::WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGSYS, _)
                ),
                "{status:?} (exit 10: mknodat ran; 11: install failed; 12: Seccomp/NoNewPrivs; 13: open_by_handle_at; 14: umount2)"
            );
        }
    }
    // The test process itself has no filter.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    assert!(status.contains("\nSeccomp:\t0\n"), "{status}");
}
