//! Running a command inside a running container: `envc exec` and
//! `envc shell`. `target` finds the container from the host, `relay` forks
//! the child and stays with the caller's terminal, `enter` is the child's
//! way in, `environment` what the command runs as and with.

pub mod enter;
pub mod environment;
pub mod relay;
pub mod target;

use crate::lifecycle::read_info;
use environment::{Request, UserSpec};
use std::io::IsTerminal;

/// What `envc exec` was asked.
pub struct ExecOptions {
    pub name: String,
    /// `-t` (true) / `-T` (false); `None`: a terminal when stdin and
    /// stdout are terminals (LXD's `--mode auto`).
    pub terminal: Option<bool>,
    pub env: Vec<(String, String)>,
    pub user: UserSpec,
    pub cwd: Option<String>,
    pub command: Vec<String>,
}

/// `envc exec`: the command's exit status; 125 when envc failed.
pub fn exec(opts: &ExecOptions) -> u8 {
    run(opts, std::slice::from_ref(&opts.command))
}

/// `envc shell NAME`: a login shell as root, `su -l` as LXD's `lxc shell`,
/// or `sh -l` where the container has no `su`.
pub fn shell(name: &str) -> u8 {
    let opts = ExecOptions {
        name: name.to_string(),
        terminal: None,
        env: Vec::new(),
        user: UserSpec::default(),
        cwd: None,
        command: Vec::new(),
    };
    let commands = [
        vec!["su".to_string(), "-l".to_string()],
        vec!["/bin/sh".to_string(), "-l".to_string()],
    ];
    run(&opts, &commands)
}

/// The sealed copy of envc that `name`'s supervisor keeps.
fn supervisors_copy(name: &str) -> std::io::Result<std::fs::File> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let path = crate::state::run_dir().join(name).join("control");
    let mut s = crate::sys::connect_unix(&path)?;
    s.write_all(b"exe\n")?;
    match crate::sys::recv_fd(s.as_raw_fd())? {
        Some(fd) => Ok(std::fs::File::from(fd)),
        None => Err(std::io::Error::other("the supervisor sent no copy")),
    }
}

fn run(opts: &ExecOptions, commands: &[Vec<String>]) -> u8 {
    // A privileged container's root may open any process's
    // `/proc/PID/exe`, ours too while we join it: it finds a sealed copy
    // of envc there, never the host's binary. (An unprivileged one can't:
    // the joining process is not dumpable.) The supervisor keeps one for
    // the container's execs; without it we make our own.
    let privileged = read_info(&opts.name).is_some_and(|i| i.idmap.is_none());
    if privileged && !crate::sys::running_from_sealed_copy() {
        let copy = supervisors_copy(&opts.name).or_else(|_| crate::sys::sealed_copy_of_self());
        let e = match copy {
            Ok(f) => crate::sys::exec_self_from(&f),
            Err(e) => e,
        };
        eprintln!("envc: cannot run from a sealed copy of envc: {e}");
        return 125;
    }
    let target = match target::find(&opts.name) {
        Ok(t) => t,
        Err(target::NotJoinable(why)) => {
            eprintln!("envc: {why}");
            return 125;
        }
    };
    let terminal = opts
        .terminal
        .unwrap_or_else(|| std::io::stdin().is_terminal() && std::io::stdout().is_terminal());
    // The caller's TERM, with a terminal or not, as `lxc exec` passes it;
    // a terminal gets `xterm` when the caller has none.
    let term = std::env::var("TERM")
        .ok()
        .or_else(|| terminal.then(|| "xterm".to_string()));
    // Init's environment (`container=lxc` and the profile's
    // `environment.*`) is where an exec's starts, as liblxc's attach has it.
    let init_env = &target.info.environment;
    let request = Request {
        user: opts.user,
        cwd: opts.cwd.as_deref(),
        term: term.as_deref(),
        env: &opts.env,
    };
    relay::run(&target, request, init_env, commands, terminal)
}
