//! Becoming init: signals reset, a new session with the console as its
//! terminal and stdio, capabilities dropped, fds above 2 closed on exec,
//! the syscall filter loaded, then `execve`.

#![allow(unsafe_code)]

use super::{LinuxKernel, cstr, with_context};
use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;

const PR_CAPBSET_DROP: libc::c_int = 24;
const PR_CAP_AMBIENT: libc::c_int = 47;
const PR_CAP_AMBIENT_CLEAR_ALL: libc::c_ulong = 4;
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// [`Kernel::exec_init`](crate::exec::kernel::Kernel::exec_init): returns
/// only if something failed, with what.
pub(super) fn exec_init(
    k: &mut LinuxKernel,
    command: &[String],
    env: &[String],
    drop_caps: &[u32],
) -> io::Error {
    let argv: Vec<CString> = match command.iter().map(|a| cstr(a.as_bytes())).collect() {
        Ok(v) => v,
        Err(e) => return e,
    };
    let envp: Vec<CString> = match env.iter().map(|a| cstr(a.as_bytes())).collect() {
        Ok(v) => v,
        Err(e) => return e,
    };
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    let console = k.console_slave.take();
    // SAFETY: plain system calls on our own process; pointers are valid
    // C strings and null-terminated arrays that outlive the exec.
    unsafe {
        crate::sys::reset_signals();
        if libc::setsid() < 0 {
            return with_context(io::Error::last_os_error(), "setsid");
        }
        if let Some(c) = &console {
            let fd = c.as_raw_fd();
            if libc::ioctl(fd, libc::TIOCSCTTY, 0) < 0 {
                return with_context(io::Error::last_os_error(), "TIOCSCTTY");
            }
            for target in 0..3 {
                if libc::dup2(fd, target) < 0 {
                    return with_context(io::Error::last_os_error(), "dup2");
                }
            }
        }
        drop(console);
        for cap in drop_caps {
            if libc::prctl(PR_CAPBSET_DROP, *cap as libc::c_ulong, 0, 0, 0) < 0 {
                return with_context(
                    io::Error::last_os_error(),
                    format!("dropping capability {cap}"),
                );
            }
        }
        libc::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        let mut hdr = CapHeader {
            version: 0x2008_0522,
            pid: 0,
        };
        let mut data = [CapData::default(); 2];
        if libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        ) < 0
        {
            return with_context(io::Error::last_os_error(), "capget");
        }
        for cap in drop_caps {
            let (i, bit) = ((*cap / 32) as usize, 1u32 << (cap % 32));
            if i < 2 {
                data[i].effective &= !bit;
                data[i].permitted &= !bit;
                data[i].inheritable &= !bit;
            }
        }
        if libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) < 0 {
            return with_context(io::Error::last_os_error(), "capset");
        }
        if libc::chdir(c"/".as_ptr()) < 0 {
            return with_context(io::Error::last_os_error(), "chdir /");
        }
        // Every fd above 2 is closed by the exec itself (close-on-exec),
        // so the supervisor's channel stays usable to report a failure.
        if libc::close_range(3, libc::c_uint::MAX, CLOSE_RANGE_CLOEXEC as libc::c_int) < 0 {
            return with_context(io::Error::last_os_error(), "close_range");
        }
    }
    // The filter last: from here on init's only system call is `execve`.
    if let Some(filter) = k.syscall_filter.take()
        && let Err(e) = filter.load()
    {
        return e;
    }
    // SAFETY: the pointers are valid C strings and null-terminated arrays
    // that outlive the call.
    unsafe {
        libc::execve(argv_p[0], argv_p.as_ptr(), envp_p.as_ptr());
    }
    let e = io::Error::last_os_error();
    with_context(e, format!("exec {}", command[0]))
}
