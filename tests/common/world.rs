//! A test's world for containers run by envc as a user runs them: a
//! scratch directory with a busybox rootfs (init: the probe) and profiles,
//! the run and log directories (private ones, or the defaults), `envc`
//! commands bounded in time, and a guard that stops and collects a
//! container whatever the test's outcome. Plus the host-side helpers these
//! tests share (processes, cgroups, bounded waits).

use super::proc::{Out, Proc};
use super::{TempDir, busybox_rootfs};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The longest any single envc command may take before the test kills it.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(30);
/// Bounded waits for something a container does (a boot, a reboot, console output).
pub const WAIT: Duration = Duration::from_secs(20);

pub const DEFAULT_RUN_DIR: &str = "/run/envc";
pub const DEFAULT_LOG_DIR: &str = "/var/log/envc";

/// Whether `pid` has exited (gone, or a zombie waiting to be reaped).
pub fn gone_or_zombie(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => matches!(
            stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next()),
            None | Some('Z') | Some('X')
        ),
    }
}

pub fn comm_of(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The cgroup directories `envc/NAME` in every mounted hierarchy.
pub fn envc_cgroups_of(name: &str) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    super::parse_mountinfo(&text)
        .into_iter()
        .filter(|m| m.fs_type == "cgroup" || m.fs_type == "cgroup2")
        .map(|m| Path::new(&m.mount_point).join("envc").join(name))
        .filter(|p| p.is_dir())
        .collect()
}

/// Whether a process is in the cgroup at `path` or below it.
pub fn cgroup_tree_populated(path: &Path) -> bool {
    if std::fs::read_to_string(path.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty()) {
        return true;
    }
    std::fs::read_dir(path).is_ok_and(|rd| {
        rd.filter_map(|e| e.ok())
            .any(|e| e.path().is_dir() && cgroup_tree_populated(&e.path()))
    })
}

pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A scratch directory with a busybox rootfs (init: the probe) and profiles, and the
/// run and log directories envc uses: private ones below the scratch directory, or the
/// defaults (/run/envc, /var/log/envc).
pub struct World {
    pub dir: TempDir,
    pub rootfs: PathBuf,
    pub private: bool,
    pub run_dir: PathBuf,
    pub log_dir: PathBuf,
    /// Every container name of this world starts with it.
    pub prefix: &'static str,
}

impl World {
    pub fn new(test: &str, private: bool, prefix: &'static str) -> World {
        let dir = TempDir::new(test);
        let rootfs = busybox_rootfs(dir.path());
        let (run_dir, log_dir) = if private {
            (dir.path().join("run"), dir.path().join("log"))
        } else {
            (
                PathBuf::from(DEFAULT_RUN_DIR),
                PathBuf::from(DEFAULT_LOG_DIR),
            )
        };
        World {
            dir,
            rootfs,
            private,
            run_dir,
            log_dir,
            prefix,
        }
    }

    /// Writes `NAME.toml`: `name`, `rootfs = "rootfs"`, then `body`.
    pub fn profile(&self, name: &str, body: &str) -> PathBuf {
        assert!(
            name.starts_with(self.prefix),
            "container names in this suite start with {}",
            self.prefix
        );
        let p = self.dir.path().join(format!("{name}.toml"));
        let text = format!("name = \"{name}\"\nrootfs = \"rootfs\"\n{body}\n");
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    /// `envc ARGS` with this world's directories.
    pub fn cmd<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new(super::envc_bin());
        cmd.args(args);
        if self.private {
            cmd.env("ENVC_RUN_DIR", &self.run_dir)
                .env("ENVC_LOG_DIR", &self.log_dir);
        } else {
            cmd.env_remove("ENVC_RUN_DIR").env_remove("ENVC_LOG_DIR");
        }
        cmd
    }

    /// Runs `envc ARGS` to the end (bounded).
    pub fn envc<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Out {
        Proc::spawn(self.cmd(args)).wait(CMD_TIMEOUT)
    }

    /// `envc apply -d PROFILE`, which must succeed and print the name.
    pub fn apply_d(&self, profile: &Path, name: &str) -> Out {
        let out = self.envc(&["apply".as_ref(), "-d".as_ref(), profile.as_os_str()]);
        out.expect(0, "envc apply -d");
        assert_eq!(out.stdout, format!("{name}\n"), "{}", out.describe());
        out
    }

    /// A foreground `envc apply PROFILE`.
    pub fn apply_fg(&self, profile: &Path) -> Proc {
        Proc::spawn(self.cmd(&["apply".as_ref(), profile.as_os_str()]))
    }

    pub fn state_dir(&self, name: &str) -> PathBuf {
        self.run_dir.join(name)
    }

    pub fn logs(&self, name: &str) -> PathBuf {
        self.log_dir.join(name)
    }

    pub fn console_log(&self, name: &str) -> String {
        std::fs::read(self.logs(name).join("console.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub fn supervisor_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.logs(name).join("supervisor.log")).unwrap_or_default()
    }

    /// The console log and the supervisor's log, for panic messages.
    pub fn describe(&self, name: &str) -> String {
        format!(
            "--- console.log (tail):\n{}\n--- supervisor.log (tail):\n{}",
            super::tail(&self.console_log(name), 3000),
            super::tail(&self.supervisor_log(name), 3000)
        )
    }

    /// Waits until console.log holds `needle` at least `count` times.
    pub fn wait_console(
        &self,
        name: &str,
        needle: &str,
        count: usize,
        timeout: Duration,
    ) -> String {
        let start = Instant::now();
        loop {
            let log = self.console_log(name);
            if log.matches(needle).count() >= count {
                return log;
            }
            if start.elapsed() > timeout {
                panic!(
                    "console.log of {name} does not show {count}× {needle:?} after {timeout:?}\n{}",
                    self.describe(name)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// RUN_DIR/NAME/info.json (read again, a few times, if it is caught while its
    /// supervisor replaces it in place).
    pub fn info(&self, name: &str) -> Value {
        let p = self.state_dir(name).join("info.json");
        let mut tries = 0;
        loop {
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("{}: {e}\n{}", p.display(), self.describe(name)));
            match serde_json::from_str(&text) {
                Ok(v) => return v,
                Err(_) if tries < 5 => tries += 1,
                Err(e) => panic!("{}: {e}\n{text}", p.display()),
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn pid1(&self, name: &str) -> i32 {
        self.info(name)["pid"].as_i64().expect("info.json pid") as i32
    }

    /// `envc list --format json`.
    pub fn list_json(&self) -> Vec<Value> {
        let out = self.envc(&["list", "--format", "json"]);
        out.expect(0, "envc list --format json");
        serde_json::from_str::<Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("list output is not JSON: {e}\n{}", out.describe()))
            .as_array()
            .expect("list --format json prints an array")
            .clone()
    }

    pub fn list_entry(&self, name: &str) -> Option<Value> {
        self.list_json().into_iter().find(|e| e["name"] == name)
    }

    /// LOG_DIR/NAME/report.json: the report of the run that ended last.
    pub fn final_report(&self, name: &str) -> Value {
        let p = self.logs(name).join("report.json");
        let text = std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", p.display(), self.describe(name)));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", p.display()))
    }

    /// Waits until the supervisor of `name` has released its state directory.
    pub fn wait_state_gone(&self, name: &str) {
        let start = Instant::now();
        while self.state_dir(name).exists() {
            if start.elapsed() > WAIT {
                panic!(
                    "{} still exists after {WAIT:?}\n{}",
                    self.state_dir(name).display(),
                    self.describe(name)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A guard for container `name`: with the default directories, first removes
    /// the logs an earlier run of this test left (so counts start at zero).
    pub fn guard(&self, name: &str) -> Guard<'_> {
        if !self.private {
            let _ = std::fs::remove_dir_all(self.logs(name));
        }
        Guard {
            world: self,
            name: name.to_string(),
        }
    }
}

/// On drop (test passed or failed): `envc stop --force NAME` if its state directory is
/// still there, then `envc gc` if anything of it is left (state directory or cgroup).
/// With the default directories, the container's logs are removed when the test passed.
pub struct Guard<'a> {
    world: &'a World,
    name: String,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let w = self.world;
        let name = self.name.as_str();
        let run = |args: &[&str]| match Proc::try_spawn(w.cmd(args)) {
            Ok(mut p) => {
                let out = p.finish(Duration::from_secs(20));
                if out.code() != Some(0) {
                    eprintln!("guard: envc {args:?}:\n{}", out.describe());
                }
            }
            Err(e) => eprintln!("guard: cannot run envc {args:?}: {e}"),
        };
        if w.state_dir(name).exists() {
            eprintln!("guard: {name} still has a state directory; envc stop --force {name}");
            run(&["stop", "--force", name]);
        }
        if w.state_dir(name).exists() || !envc_cgroups_of(name).is_empty() {
            // A killed supervisor's PID 1 dies with it, but the kernel takes a moment
            // to empty the cgroups; gc leaves a cgroup with processes alone.
            let start = Instant::now();
            while envc_cgroups_of(name)
                .iter()
                .any(|p| cgroup_tree_populated(p))
                && start.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            eprintln!("guard: {name} left things behind; envc gc");
            run(&["gc"]);
        }
        if !w.private && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(w.logs(name));
        }
    }
}
