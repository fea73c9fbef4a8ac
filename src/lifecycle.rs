//! The commands around a running container: start (foreground or
//! detached), list, stop, reboot, console, gc. A running container is its
//! supervisor, which holds the lock of `RUN_DIR/NAME/` and answers on
//! `RUN_DIR/NAME/control`.

use crate::diag::{Problem, Style, render};
use crate::exec::monitor::{ESCAPE, filter_escape};
use crate::exec::report::{Report, Status};
use crate::exec::supervise::{ApplyOptions, Hooks, apply};
use crate::plan::{Op, Plan};
use crate::state::{State, log_dir, run_dir};
use crate::sys::{self, Forked, RawTerminal};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What `RUN_DIR/NAME/info.json` says about a running container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Info {
    pub name: String,
    /// PID 1, as the host sees it.
    pub pid: i32,
    pub supervisor: i32,
    /// Seconds since the epoch when PID 1 (last) started.
    pub started: u64,
    pub rootfs: String,
    pub console_log: String,
    /// The cgroup parent, for `gc`.
    pub cgroup_parent: Option<String>,
    /// Host-side interfaces envc created, for `gc`.
    #[serde(default)]
    pub host_links: Vec<String>,
    /// Each NIC: name inside, kind, host side, MAC, MTU.
    #[serde(default)]
    pub nics: Vec<String>,
    /// An unprivileged container's id map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idmap: Option<crate::idmap::IdMap>,
    /// The container's cgroup on the host, one directory per hierarchy
    /// (what `envc exec` joins and `envc info` reads).
    #[serde(default)]
    pub cgroups: Vec<String>,
    /// Init's environment (`container=lxc` and the profile's
    /// `environment.*`), which `envc exec` starts from.
    #[serde(default)]
    pub environment: Vec<String>,
    /// PID 1's syscall filter, for processes started in the container later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<crate::seccomp::SyscallFilter>,
}

impl Info {
    /// The container's cgroup directories, reached through its supervisor's
    /// root: they are paths in the supervisor's mount namespace, which need
    /// not be ours (a supervisor started in a namespace of its own).
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let root = PathBuf::from(format!("/proc/{}/root", self.supervisor));
        self.cgroups
            .iter()
            .map(|d| root.join(d.trim_start_matches('/')))
            .collect()
    }
}

/// The cgroup parent a plan makes its cgroup under.
fn cgroup_parent(plan: &Plan) -> Option<String> {
    plan.steps.iter().find_map(|s| match &s.op {
        Op::CreateCgroup { parent, .. } => Some(parent.clone()),
        _ => None,
    })
}

/// Seconds since the epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct StartHooks<'a> {
    state: &'a State,
    plan: &'a Plan,
    rootfs: &'a Path,
    console_log: PathBuf,
    /// The detached parent waits on this for "started".
    notify: Option<File>,
    report_file: Option<&'a Path>,
}

impl Hooks for StartHooks<'_> {
    fn started(&mut self, pid: i32, report: &Report, cgroups: &[PathBuf]) {
        let info = Info {
            name: self.plan.name.clone(),
            pid,
            supervisor: std::process::id() as i32,
            started: now(),
            rootfs: std::fs::canonicalize(self.rootfs)
                .unwrap_or_else(|_| self.rootfs.to_path_buf())
                .display()
                .to_string(),
            console_log: self.console_log.display().to_string(),
            cgroup_parent: cgroup_parent(self.plan),
            host_links: self
                .plan
                .steps
                .iter()
                .filter_map(|s| match &s.op {
                    Op::CreateNic {
                        host_name: Some(h), ..
                    } => Some(h.clone()),
                    _ => None,
                })
                .collect(),
            nics: report.host.nics.clone(),
            idmap: report.host.idmap.clone(),
            cgroups: cgroups.iter().map(|p| p.display().to_string()).collect(),
            environment: self
                .plan
                .steps
                .iter()
                .find_map(|s| match &s.op {
                    Op::ExecInit { env, .. } => Some(env.clone()),
                    _ => None,
                })
                .unwrap_or_default(),
            seccomp: self.plan.steps.iter().find_map(|s| match &s.op {
                Op::LoadSyscallFilter { filter } => Some(filter.clone()),
                _ => None,
            }),
        };
        // info.json was written at the start, report.json by an earlier
        // boot (if any): replaced in place, never truncated first.
        let _ = self.state.replace(
            "info.json",
            &serde_json::to_string_pretty(&info).unwrap_or_default(),
        );
        let _ = self.state.replace("report.json", &report.to_json());
        if let Some(f) = self.report_file {
            let _ = std::fs::write(f, report.to_json());
        }
        if let Some(mut n) = self.notify.take() {
            let _ = writeln!(n, "started {pid}");
            let _ = write!(n, "{}", report.summary());
        }
    }
    fn rebooting(&mut self, report: &Report) {
        eprintln!(
            "envc: {}: {}; starting it again",
            self.plan.name,
            report
                .outcome
                .as_ref()
                .map_or("rebooting", |o| o.summary.as_str())
        );
    }
}

/// `envc apply`: the container in the foreground, or detached with `-d`.
pub fn start(
    plan: &Plan,
    rootfs: PathBuf,
    sources: Option<&crate::profile::Sources>,
    report_file: Option<&Path>,
    detach: bool,
    timings: bool,
) -> ExitCode {
    if !sys::is_root() {
        eprintln!(
            "envc: apply needs root: envc makes the container's namespaces, mounts and cgroups as the host's root"
        );
        return ExitCode::from(125);
    }
    if plan.privileged() {
        // envc loads no LSM policy (LXD confines privileged containers with
        // AppArmor): nothing stops such a root remounting /proc/sys
        // read-write and writing host-wide sysctls.
        eprintln!(
            "envc: warning: `{}` is privileged: its root is the host's root, with no AppArmor policy to confine it; set \"security.privileged\" = false unless the guest needs it",
            plan.name
        );
    }
    if crate::state::exists(&plan.name) && is_running(&plan.name) {
        eprintln!(
            "envc: a container named `{}` is already running (envc stop {0})",
            plan.name
        );
        return ExitCode::from(125);
    }
    let logs = log_dir().join(&plan.name);
    if !detach {
        let out = Output {
            report_file,
            timings,
        };
        return ExitCode::from(run_supervisor(plan, rootfs, sources, out, None, &logs));
    }
    // Detached: a supervisor of its own session; this process waits until
    // PID 1 runs (or the start failed) and returns.
    let (rd, wr) = match sys::pipe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("envc: pipe: {e}");
            return ExitCode::from(125);
        }
    };
    let _ = io::stdout().flush();
    let pid = match sys::fork_single_threaded() {
        Ok(Forked::Parent(pid)) => pid,
        Ok(Forked::Child) => {
            drop(rd);
            let _ = std::fs::create_dir_all(&logs);
            // Keep none of the caller's fds (a pipe it waits on would stay open
            // for as long as the container runs): only 0-2 and the notify pipe.
            sys::detach(&logs.join("supervisor.log"), wr.as_raw_fd());
            let out = Output {
                report_file,
                timings,
            };
            let code = run_supervisor(plan, rootfs, sources, out, Some(wr), &logs);
            std::process::exit(code as i32);
        }
        Err(e) => {
            eprintln!("envc: fork: {e}");
            return ExitCode::from(125);
        }
    };
    drop(wr);
    wait_started(plan, rd, pid, &logs)
}

/// In the detached parent: waits for the supervisor's word on `rd` (what
/// `StartHooks::started` or a failure wrote) and says it. A supervisor that
/// ended without a word is reported by how it ended.
fn wait_started(plan: &Plan, mut rd: File, pid: i32, logs: &Path) -> ExitCode {
    let mut text = String::new();
    let _ = rd.read_to_string(&mut text);
    match text.split_once('\n') {
        Some((first, rest)) if first.starts_with("started ") => {
            eprint!("{rest}");
            println!("{}", plan.name);
            ExitCode::SUCCESS
        }
        _ => {
            // The supervisor failed before PID 1 ran: it wrote why, then exits.
            let status = sys::wait(pid).unwrap_or(sys::WaitStatus(0));
            let code = status.exit_code().map_or(125, |c| c as u8);
            let said = text.strip_prefix("failed\n").unwrap_or(&text);
            if said.trim().is_empty() {
                let how = match (status.signal(), status.exit_code()) {
                    (Some(sig), _) => format!("killed by signal {sig}"),
                    (None, c) => format!("exit status {}", c.unwrap_or(0)),
                };
                eprintln!(
                    "envc: the supervisor of `{}` ended before PID 1 ran ({how}); `envc gc` removes what it left (log: {})",
                    plan.name,
                    logs.join("supervisor.log").display()
                );
            } else {
                eprint!("{said}");
            }
            ExitCode::from(code)
        }
    }
}

/// What a run writes besides the summary.
struct Output<'a> {
    report_file: Option<&'a Path>,
    timings: bool,
}

/// The supervisor: takes the container's state, runs it (every boot) and
/// says how it ended, on stderr or to the detached parent waiting on
/// `notify`. Returns the exit status.
fn run_supervisor(
    plan: &Plan,
    rootfs: PathBuf,
    sources: Option<&crate::profile::Sources>,
    out: Output<'_>,
    notify: Option<File>,
    logs: &Path,
) -> u8 {
    let (state, control) = match take_state(plan, &rootfs, logs) {
        Ok(v) => v,
        Err(msg) => {
            match notify {
                Some(mut n) => {
                    let _ = write!(n, "failed\n{msg}");
                }
                None => eprint!("{msg}"),
            }
            return 125;
        }
    };
    let console_log = logs.join("console.log");
    let detached = notify.is_some();
    let terminal = !detached && io::stdin().is_terminal() && io::stdout().is_terminal();
    let opts = ApplyOptions {
        rootfs: rootfs.clone(),
        console_log: Some(console_log.clone()),
        syslog: Some(logs.join("syslog.log")),
        echo_console: !detached,
        terminal,
    };
    if terminal {
        eprintln!(
            "envc: attached to {}'s console; Ctrl-a q stops it",
            plan.name
        );
    }
    let mut hooks = StartHooks {
        state: &state,
        plan,
        rootfs: &rootfs,
        console_log,
        notify,
        report_file: out.report_file,
    };
    let applied = apply(plan, &opts, Some(&control), &mut hooks);
    drop(control);
    let text = ending_text(plan, &applied.report, sources, &out);
    let _ = crate::state::overwrite_making_dir(
        &logs.join("report.json"),
        applied.report.to_json().as_bytes(),
    );
    let notify = hooks.notify.take();
    drop(hooks);
    state.release();
    match notify {
        // Failed before PID 1 ran: tell the waiting parent.
        Some(mut n) => {
            let _ = write!(n, "failed\n{text}");
        }
        None => eprint!("{text}"),
    }
    applied.exit_code
}

/// Takes the container's state directory (its lock), writes what `gc`
/// needs in it, and opens its control socket. Returns what went wrong,
/// as the line to show.
fn take_state(plan: &Plan, rootfs: &Path, logs: &Path) -> Result<(State, UnixListener), String> {
    let state = State::acquire(&plan.name).map_err(|e| format!("envc: {e}\n"))?;
    crate::timing::mark("state acquired");
    // The state names the cgroup parent before anything is made, so `gc` can clean up
    // after a supervisor killed at any point; a state that can't be written (a full
    // disk) fails here, before anything is made.
    let early = Info {
        name: plan.name.clone(),
        pid: 0,
        supervisor: std::process::id() as i32,
        started: now(),
        rootfs: rootfs.display().to_string(),
        console_log: logs.join("console.log").display().to_string(),
        cgroup_parent: cgroup_parent(plan),
        host_links: Vec::new(),
        nics: Vec::new(),
        idmap: None,
        cgroups: Vec::new(),
        environment: Vec::new(),
        seccomp: None,
    };
    state
        .write(
            "info.json",
            &serde_json::to_string_pretty(&early).unwrap_or_default(),
        )
        .map_err(|e| format!("envc: state directory: cannot write info.json: {e}\n"))?;
    // A supervisor that died (SIGKILL) left its socket behind; we hold the lock now.
    let _ = std::fs::remove_file(state.path("control"));
    let control = crate::sys::bind_unix(&state.path("control"))
        .map_err(|e| format!("envc: control socket: {e}\n"))?;
    Ok((state, control))
}

/// What the run says at its end: the failure as a diagnostic pointing at
/// the profile key that asked for the step, the summary, the timings if
/// asked for; and writes the report where asked.
fn ending_text(
    plan: &Plan,
    report: &Report,
    sources: Option<&crate::profile::Sources>,
    out: &Output<'_>,
) -> String {
    let mut text = String::new();
    if let Some(f) = report.failure() {
        let message = match &f.status {
            Status::Failed { error, .. } => format!("step {} ({}) failed: {error}", f.step, f.op),
            _ => String::new(),
        };
        let problem = match sources {
            Some(s) => s.problem(&f.origin, message, "this asked for it", false),
            None => Problem::new(format!("{message} (asked for by {})", f.origin)),
        };
        let rendered = render(std::slice::from_ref(&problem), Style::for_stderr());
        for l in rendered
            .lines()
            .filter(|l| !l.starts_with("error: 1 problem"))
        {
            text.push_str(l);
            text.push('\n');
        }
    }
    text.push_str(&report.summary());
    if out.timings {
        text.push_str(&report.timings(plan));
    }
    if let Some(path) = out.report_file
        && let Err(e) = std::fs::write(path, report.to_json())
    {
        text.push_str(&format!(
            "envc: cannot write the report to {}: {e}\n",
            path.display()
        ));
    }
    text
}

/// Whether a supervisor holds `name`'s lock.
pub fn is_running(name: &str) -> bool {
    let lock = run_dir().join(name).join("lock");
    let Ok(f) = std::fs::OpenOptions::new().write(true).open(&lock) else {
        return false;
    };
    // Free if we can take it (released when f closes).
    !sys::try_lock(&f).unwrap_or(false)
}

pub(crate) fn read_info(name: &str) -> Option<Info> {
    crate::state::read_consistent(&run_dir().join(name).join("info.json"), |t| {
        serde_json::from_str(t).ok()
    })
}

fn names() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(run_dir())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir() && !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[derive(Serialize)]
struct ListEntry {
    name: String,
    state: String,
    pid: Option<i32>,
    uptime_secs: Option<u64>,
    rootfs: Option<String>,
    nics: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idmap: Option<crate::idmap::IdMap>,
}

pub(crate) fn uptime(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

/// `envc list`.
pub fn list(json: bool) -> ExitCode {
    let mut entries = Vec::new();
    for name in names() {
        let running = is_running(&name);
        let info = read_info(&name);
        let state = match (running, &info) {
            (true, Some(i)) if i.pid == 0 => "starting",
            (true, Some(_)) => "running",
            (true, None) => "starting",
            (false, _) => "dead (supervisor gone; envc gc)",
        };
        entries.push(ListEntry {
            name: name.clone(),
            state: state.to_string(),
            pid: info.as_ref().map(|i| i.pid),
            uptime_secs: info
                .as_ref()
                .filter(|_| running)
                .map(|i| now().saturating_sub(i.started)),
            rootfs: info.as_ref().map(|i| i.rootfs.clone()),
            nics: info.as_ref().map(|i| i.nics.clone()).unwrap_or_default(),
            idmap: info.as_ref().and_then(|i| i.idmap.clone()),
        });
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&entries).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<20} {:<10} {:>8} {:>8}  ROOTFS",
        "NAME", "STATE", "PID", "UPTIME"
    );
    for e in entries {
        println!(
            "{:<20} {:<10} {:>8} {:>8}  {}",
            e.name,
            e.state.split(' ').next().unwrap_or(""),
            e.pid.map_or("-".into(), |p| p.to_string()),
            e.uptime_secs.map_or("-".into(), uptime),
            e.rootfs.unwrap_or_default()
        );
    }
    ExitCode::SUCCESS
}

fn connect(name: &str) -> Result<UnixStream, ExitCode> {
    if !run_dir().join(name).exists() {
        eprintln!("envc: no container named `{name}` is running");
        return Err(ExitCode::from(1));
    }
    if !is_running(name) {
        eprintln!(
            "envc: `{name}` is not running (its supervisor is gone); `envc gc` cleans up what it left"
        );
        return Err(ExitCode::from(1));
    }
    crate::sys::connect_unix(&run_dir().join(name).join("control")).map_err(|e| {
        eprintln!("envc: cannot reach `{name}`'s supervisor: {e}");
        ExitCode::from(1)
    })
}

/// Waits (bounded) until the supervisor has torn down and released the state.
fn wait_gone(name: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if !run_dir().join(name).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// `envc stop NAME`.
pub fn stop(name: &str, timeout: Option<u64>, force: bool) -> ExitCode {
    let mut s = match connect(name) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let t = timeout.map_or("-".to_string(), |t| t.to_string());
    if let Err(e) = writeln!(s, "stop {t} {}", if force { 1 } else { 0 }) {
        eprintln!("envc: {e}");
        return ExitCode::from(1);
    }
    let mut lines = BufReader::new(s).lines();
    let mut code = None;
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        if let Some(c) = line.strip_prefix("stopped ") {
            code = c.trim().parse::<u8>().ok();
            break;
        }
    }
    if !wait_gone(name, Duration::from_secs(30)) {
        eprintln!("envc: `{name}` stopped but its supervisor has not finished tearing down");
        return ExitCode::from(1);
    }
    match code {
        Some(137) => eprintln!("envc: {name} killed"),
        Some(c) => eprintln!("envc: {name} stopped (exit status {c})"),
        None => eprintln!("envc: {name} stopped"),
    }
    ExitCode::SUCCESS
}

/// `envc reboot NAME`.
pub fn reboot(name: &str) -> ExitCode {
    let mut s = match connect(name) {
        Ok(s) => s,
        Err(c) => return c,
    };
    if writeln!(s, "reboot").is_err() {
        return ExitCode::from(1);
    }
    let mut line = String::new();
    let _ = BufReader::new(s).read_line(&mut line);
    if line.trim() == "rebooting" {
        eprintln!("envc: {name} rebooting");
        ExitCode::SUCCESS
    } else {
        eprintln!("envc: {name}: unexpected answer {line:?}");
        ExitCode::from(1)
    }
}

/// `envc console NAME`: attach until `Ctrl-a q`.
pub fn console(name: &str) -> ExitCode {
    let mut s = match connect(name) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let tty = io::stdin().is_terminal();
    let (rows, cols) = match sys::window_size(0) {
        Some(ws) if tty => (ws.ws_row, ws.ws_col),
        _ => (0, 0),
    };
    let req = if rows > 0 {
        format!("console {rows} {cols}\n")
    } else {
        "console\n".into()
    };
    if s.write_all(req.as_bytes()).is_err() {
        return ExitCode::from(1);
    }
    let mut ack = [0u8; 8];
    if s.read_exact(&mut ack).is_err() || &ack != b"console\n" {
        eprintln!("envc: {name}'s supervisor refused the console");
        return ExitCode::from(1);
    }
    eprintln!("envc: attached to {name}'s console; Ctrl-a q detaches");
    let _raw = if tty { RawTerminal::enter() } else { None };
    let mut escape = false;
    let mut buf = [0u8; 16 * 1024];
    let mut stdin_open = true;
    loop {
        let mut pfds = [
            libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        if let Err(e) = sys::poll(&mut pfds, -1) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if pfds[0].revents != 0 {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut out = io::stdout().lock();
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
            }
        }
        if pfds[1].revents != 0 {
            match io::stdin().lock().read(&mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let (fwd, quit) = filter_escape(&buf[..n], &mut escape);
                    if s.write_all(&fwd).is_err() || quit {
                        break;
                    }
                }
            }
        }
    }
    drop(_raw);
    let _ = ESCAPE;
    eprintln!("\r\nenvc: detached from {name}");
    ExitCode::SUCCESS
}

/// `envc gc`: removes what dead containers left behind.
pub fn gc() -> ExitCode {
    let mut done = Removal::default();
    let mut parents = vec!["envc".to_string()];
    let live: Vec<String> = names().into_iter().filter(|n| is_running(n)).collect();
    for name in names() {
        if !live.contains(&name) {
            gc_container(&name, &mut parents, &mut done);
        }
    }
    gc_cgroups(&parents, &live, &mut done);
    // Isolated id ranges that containers whose supervisor died still hold.
    match crate::idmap::reclaim(&run_dir(), is_running) {
        Ok(freed) => {
            (done.removed).extend(freed.into_iter().map(|n| format!("the id range of {n}")))
        }
        Err(e) => done.failed.push(format!("isolated id ranges: {e}")),
    }
    let _ = std::fs::remove_dir(run_dir());
    for r in &done.removed {
        println!("removed {r}");
    }
    for f in &done.failed {
        eprintln!("envc: could not remove {f}");
    }
    if done.removed.is_empty() && done.failed.is_empty() {
        println!("nothing to remove");
    }
    if done.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// What `gc` removed, and what it could not.
#[derive(Default)]
struct Removal {
    removed: Vec<String>,
    failed: Vec<String>,
}

/// What a container that is not running left: its host links and its
/// state directory. Its cgroup parent is added to `parents`.
fn gc_container(name: &str, parents: &mut Vec<String>, done: &mut Removal) {
    if let Some(info) = read_info(name) {
        if let Some(p) = info.cgroup_parent
            && !parents.contains(&p)
        {
            parents.push(p);
        }
        // The supervisor is gone; so is PID 1 (it dies with its
        // supervisor), but make sure before removing anything.
        if Path::new(&format!("/proc/{}", info.pid)).exists() && is_init_of_container(info.pid) {
            done.failed.push(format!(
                "{name}: PID 1 ({}) still runs; stop it first",
                info.pid
            ));
            return;
        }
    }
    // Host ends of veths (normally gone with the container's network
    // namespace, but not if something still holds it).
    for link in read_info(name).map(|i| i.host_links).unwrap_or_default() {
        match crate::net::delete_link(&link) {
            Ok(true) => done.removed.push(format!("link {link}")),
            Ok(false) => {}
            Err(e) => done.failed.push(format!("link {link}: {e}")),
        }
    }
    match std::fs::remove_dir_all(run_dir().join(name)) {
        Ok(()) => done
            .removed
            .push(format!("state {}", run_dir().join(name).display())),
        Err(e) => done.failed.push(format!("state {name}: {e}")),
    }
}

/// Cgroups of containers that are not running, under each of `parents`
/// in every hierarchy, and the parents themselves once empty.
fn gc_cgroups(parents: &[String], live: &[String], done: &mut Removal) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let Some(layout) = crate::exec::cgroup::parse_layout(&mountinfo) else {
        return;
    };
    for h in &layout.hierarchies {
        for p in parents {
            let dir = h.mountpoint.join(p);
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()) {
                let n = e.file_name().to_string_lossy().into_owned();
                if live.contains(&n) {
                    continue;
                }
                // Processes run in it: a container of another run directory
                // (ENVC_RUN_DIR), or one starting now. Leave the whole tree alone
                // (removing its empty children would break its systemd).
                if tree_populated(&e.path()) {
                    eprintln!(
                        "envc: left {} alone: processes run in it",
                        e.path().display()
                    );
                    continue;
                }
                match remove_tree(&e.path()) {
                    Ok(()) => done.removed.push(format!("cgroup {}", e.path().display())),
                    Err(err) => done
                        .failed
                        .push(format!("cgroup {}: {err}", e.path().display())),
                }
            }
            if std::fs::remove_dir(&dir).is_ok() {
                done.removed.push(format!("cgroup {}", dir.display()));
            }
        }
    }
}

/// Whether a process is in the cgroup at `path` or any cgroup below it.
fn tree_populated(path: &Path) -> bool {
    if std::fs::read_to_string(path.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty()) {
        return true;
    }
    std::fs::read_dir(path).is_ok_and(|rd| {
        rd.filter_map(|e| e.ok())
            .any(|e| e.file_type().is_ok_and(|t| t.is_dir()) && tree_populated(&e.path()))
    })
}

/// Removes a cgroup directory and the cgroups below it, deepest first.
fn remove_tree(path: &Path) -> io::Result<()> {
    if let Ok(rd) = std::fs::read_dir(path) {
        for e in rd.filter_map(|e| e.ok()) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path())?;
            }
        }
    }
    std::fs::remove_dir(path)
}

fn is_init_of_container(pid: i32) -> bool {
    // A zombie waiting for the host's init to reap it is gone already.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    if matches!(state, None | Some('Z') | Some('X')) {
        return false;
    }
    let own = std::fs::read_link("/proc/self/ns/pid").ok();
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    theirs.is_some() && own != theirs
}
