//! System call names, from libseccomp's tables: a name is valid when it is
//! a system call of one of the ABIs the filter covers.

use libseccomp::{ScmpArch, ScmpSyscall};
use std::collections::BTreeSet;

/// The ABIs a filter covers: the native one first, then the 32-bit ones
/// the kernel also runs (liblxc's set).
pub(super) fn arches() -> &'static [ScmpArch] {
    #[cfg(target_arch = "x86_64")]
    {
        &[ScmpArch::X8664, ScmpArch::X86, ScmpArch::X32]
    }
    #[cfg(target_arch = "aarch64")]
    {
        &[ScmpArch::Aarch64, ScmpArch::Arm]
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        &[ScmpArch::Native]
    }
}

/// The ABIs' names as diagnostics say them (`x86_64, i386 or x32`).
pub fn arch_names() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        "x86_64, i386 or x32"
    }
    #[cfg(target_arch = "aarch64")]
    {
        "arm64 or arm"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "this architecture"
    }
}

/// Where the names come from, for diagnostics: `libseccomp 2.5.4`.
pub fn table_source() -> String {
    match libseccomp::ScmpVersion::current() {
        Ok(v) => format!("libseccomp {}.{}.{}", v.major, v.minor, v.micro),
        Err(_) => "libseccomp".to_string(),
    }
}

/// Whether `name` is a system call of one of the filter's ABIs.
pub fn is_syscall(name: &str) -> bool {
    !name.is_empty()
        && arches()
            .iter()
            .any(|a| ScmpSyscall::from_name_by_arch(name, *a).is_ok_and(|s| i32::from(s) >= 0))
}

/// The highest system call number looked at when listing names (x86_64
/// and arm64 number theirs below 1024).
const MAX_NR: i32 = 1024;
/// The x32 ABI's numbers carry this bit.
const X32_SYSCALL_BIT: i32 = 0x4000_0000;

/// Every system call name of the filter's ABIs.
fn all_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for arch in arches() {
        let base = if *arch == ScmpArch::X32 {
            X32_SYSCALL_BIT
        } else {
            0
        };
        for nr in 0..MAX_NR {
            if let Ok(n) = ScmpSyscall::from_raw_syscall(base | nr).get_name_by_arch(*arch) {
                names.insert(n);
            }
        }
    }
    names
}

/// The closest system call name to a misspelt one, if one is close.
pub fn suggestion(name: &str) -> Option<String> {
    let names = all_names();
    crate::diag::did_you_mean(name, names.iter().map(String::as_str)).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_the_default_list_and_32_bit_only_calls() {
        for n in [
            "kexec_load",
            "open_by_handle_at",
            "init_module",
            "finit_module",
            "delete_module",
            "umount2",
            "mknodat",
        ] {
            assert!(is_syscall(n), "{n}");
        }
        #[cfg(target_arch = "x86_64")]
        assert!(is_syscall("socketcall"), "an i386 call is a name too");
        assert!(!is_syscall("mknodatt"));
        assert!(!is_syscall(""));
        assert!(!is_syscall("compat_sys_ioctl"));
    }

    #[test]
    fn suggests_the_closest_name() {
        assert_eq!(suggestion("mknodatt").as_deref(), Some("mknodat"));
        assert_eq!(suggestion("kexec_laod").as_deref(), Some("kexec_load"));
        assert_eq!(suggestion("zzzzzzzzzzzzzz"), None);
    }
}
