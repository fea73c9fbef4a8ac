//! Loading a filter: libseccomp resolves each rule's system call for every
//! ABI the filter covers and builds the BPF program; the kernel installs it
//! on the calling process, and every process it starts inherits it.
//!
//! As liblxc does, the filter is loaded without `no_new_privs` where the
//! process may (it has `CAP_SYS_ADMIN` in its user namespace), so setuid
//! programs inside keep working; only a process without it sets
//! `no_new_privs` first, which the kernel requires then.

use super::filter::{Action, SyscallFilter};
use super::names::arches;
use libseccomp::error::SeccompErrno;
use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use std::io;

/// A filter whose rules libseccomp took: ready to load.
pub struct Prepared {
    ctx: ScmpFilterContext,
}

fn action(a: Action) -> ScmpAction {
    match a {
        Action::Allow => ScmpAction::Allow,
        Action::Errno(e) => ScmpAction::Errno(i32::from(e)),
        Action::Kill => ScmpAction::KillThread,
    }
}

fn io_error(e: libseccomp::error::SeccompError, what: &str) -> io::Error {
    let errno = e.errno().and_then(|n| match n {
        SeccompErrno::EACCES => Some(libc::EACCES),
        SeccompErrno::ECANCELED => Some(libc::ECANCELED),
        SeccompErrno::EDOM => Some(libc::EDOM),
        SeccompErrno::EEXIST => Some(libc::EEXIST),
        SeccompErrno::EFAULT => Some(libc::EFAULT),
        SeccompErrno::EINVAL => Some(libc::EINVAL),
        SeccompErrno::ENOENT => Some(libc::ENOENT),
        SeccompErrno::ENOMEM => Some(libc::ENOMEM),
        SeccompErrno::EOPNOTSUPP => Some(libc::EOPNOTSUPP),
        SeccompErrno::ERANGE => Some(libc::ERANGE),
        SeccompErrno::ESRCH => Some(libc::ESRCH),
        _ => None,
    });
    let inner = match errno {
        Some(n) => io::Error::from_raw_os_error(n),
        None => io::Error::other(e.to_string()),
    };
    io::Error::new(inner.kind(), format!("{what}: {inner}"))
}

/// Hands the rules to libseccomp: every name resolved, every rule added for
/// each ABI. Nothing is loaded yet.
pub fn prepare(filter: &SyscallFilter) -> io::Result<Prepared> {
    let mut ctx = ScmpFilterContext::new(action(filter.default))
        .map_err(|e| io_error(e, "starting a syscall filter"))?;
    ctx.set_ctl_nnp(false)
        .map_err(|e| io_error(e, "leaving no_new_privs alone"))?;
    // The kernel's own error if the load fails (else libseccomp's ECANCELED).
    let _ = ctx.set_api_sysrawrc(true);
    let (native, compat) = arches().split_first().expect("one ABI at least");
    debug_assert!(ctx.is_arch_present(*native).unwrap_or(false));
    if filter.deny_compat {
        // The 32-bit ABIs are left out of the filter: the kernel's calls
        // through them meet the "other architecture" action.
        ctx.set_act_badarch(ScmpAction::Errno(libc::ENOSYS))
            .map_err(|e| io_error(e, "refusing 32-bit syscalls"))?;
    } else {
        for a in compat {
            ctx.add_arch(*a)
                .map_err(|e| io_error(e, &format!("adding the {a:?} ABI")))?;
        }
    }
    for r in &filter.rules {
        let nr = ScmpSyscall::from_name(&r.syscall).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{}` is not a system call here", r.syscall),
            )
        })?;
        let added = match r.when {
            None => ctx.add_rule(action(r.action), nr),
            Some(w) => {
                let cmp = ScmpArgCompare::new(
                    u32::from(w.arg),
                    ScmpCompareOp::MaskedEqual(w.mask),
                    w.value,
                );
                ctx.add_rule_conditional(action(r.action), nr, &[cmp])
            }
        };
        added.map_err(|e| io_error(e, &format!("the rule for {}", r.syscall)))?;
    }
    Ok(Prepared { ctx })
}

impl Prepared {
    /// Loads the filter into the calling process (and what it starts
    /// later); `no_new_privs` only if the kernel requires it.
    pub fn load(mut self) -> io::Result<()> {
        match self.ctx.load() {
            Ok(()) => Ok(()),
            Err(e) if e.errno() == Some(SeccompErrno::EACCES) => {
                self.ctx
                    .set_ctl_nnp(true)
                    .map_err(|e| io_error(e, "setting no_new_privs"))?;
                self.ctx
                    .load()
                    .map_err(|e| io_error(e, "loading the syscall filter"))
            }
            Err(e) if e.errno() == Some(SeccompErrno::EINVAL) => Err(io_error(
                e,
                "loading the syscall filter (a kernel without seccomp filters? \"security.syscalls.deny_default\" = false starts without one)",
            )),
            Err(e) => Err(io_error(e, "loading the syscall filter")),
        }
    }
}

/// Loads `filter` into the calling process: for `envc exec`'s child after
/// it joined the container, the same filter PID 1 has.
pub fn install(filter: &SyscallFilter) -> io::Result<()> {
    prepare(filter)?.load()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::filter::SyscallRule;

    fn deny(names: &[&str], deny_compat: bool) -> SyscallFilter {
        SyscallFilter {
            default: Action::Allow,
            deny_compat,
            rules: names
                .iter()
                .map(|n| SyscallRule {
                    syscall: n.to_string(),
                    action: Action::Kill,
                    when: None,
                })
                .collect(),
        }
    }

    #[test]
    fn libseccomp_takes_names_of_any_of_the_abis() {
        // socketcall is i386's only: a rule for the ABIs that have it.
        assert!(prepare(&deny(&["mknodat", "socketcall"], false)).is_ok());
        assert!(prepare(&deny(&["mknodat", "socketcall"], true)).is_ok());
    }

    #[test]
    fn an_unknown_name_in_a_saved_plan_is_an_error() {
        let e = prepare(&deny(&["compat_sys_ioctl"], false)).err().unwrap();
        assert!(e.to_string().contains("compat_sys_ioctl"), "{e}");
    }
}
