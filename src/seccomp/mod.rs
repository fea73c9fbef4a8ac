//! The container's syscall filter (seccomp), as LXD sets it up: LXD's
//! default deny list, `security.syscalls.*`, and the kernel load.
//!
//! - `filter.rs`: the filter as plain data, what the plan step carries;
//! - `names.rs`: system call names of the host's architectures;
//! - `keys.rs`: the profile keys, checked and turned into a filter;
//! - `load.rs`: the rules handed to libseccomp, which builds the BPF
//!   program for every ABI, and loaded into the calling process.

mod filter;
mod keys;
mod load;
mod names;

pub use filter::{Action, ArgMasked, SyscallFilter, SyscallRule};
pub use keys::{
    ALLOW, DENY, DENY_COMPAT, DENY_DEFAULT, check_list, conflicting_keys, filter_from_config,
};
pub use load::{Prepared, install, prepare};
pub use names::{arch_names, is_syscall, suggestion};
