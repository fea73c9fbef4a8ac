//! LXD's `security.syscalls.*` keys: each value checked where it is
//! written, the stacked keys turned into the filter the plan carries.
//!
//! LXD's filter (written for liblxc, which builds it with libseccomp):
//! by default `kexec_load`, `open_by_handle_at`, `init_module`,
//! `finit_module` and `delete_module` fail with `ENOSYS` and `umount2`
//! with `MNT_FORCE` fails with `EACCES`; `deny` adds names whose callers
//! are killed; `allow` replaces it all with an allow-list whose left-outs
//! kill the caller; every rule covers the 32-bit ABIs too.

use super::filter::{Action, ArgMasked, SyscallFilter, SyscallRule};
use super::names::{arch_names, is_syscall, suggestion, table_source};
use crate::profile::model::At;
use crate::profile::{BUILTIN_NAME, Origin};
use indexmap::IndexMap;

pub const DENY_DEFAULT: &str = "security.syscalls.deny_default";
pub const DENY_COMPAT: &str = "security.syscalls.deny_compat";
pub const DENY: &str = "security.syscalls.deny";
pub const ALLOW: &str = "security.syscalls.allow";

/// LXD's default deny list: each fails with `ENOSYS`.
const DEFAULT_DENIED: &[&str] = &[
    "kexec_load",
    "open_by_handle_at",
    "init_module",
    "finit_module",
    "delete_module",
];

/// `MNT_FORCE`, `umount2`'s second argument's flag that LXD refuses.
const MNT_FORCE: u64 = 1;

/// A list value's names: separated by whitespace (LXD writes one a line)
/// or commas.
fn names(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|n| !n.is_empty())
}

/// One problem of a list value: message and help.
pub type ListProblem = (String, Option<String>);

/// Checks a `deny` or `allow` value: every name a system call of the
/// host's ABIs; an allow-list names at least one and lets init start.
pub fn check_list(key: &str, text: &str) -> Vec<ListProblem> {
    let mut problems = Vec::new();
    for n in names(text) {
        if !is_syscall(n) {
            let help = match suggestion(n) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!(
                    "names are the kernel's, as {} knows them; a syscall newer than the library is not known yet",
                    table_source()
                ),
            };
            problems.push((
                format!("`{key}`: `{n}` is not a system call on {}", arch_names()),
                Some(help),
            ));
        }
    }
    if key == ALLOW && problems.is_empty() {
        if names(text).next().is_none() {
            problems.push((
                format!("`{key}` names no system call"),
                Some("an allow-list denies everything it leaves out; remove the key for LXD's default filter".into()),
            ));
        } else if !names(text).any(|n| n == "execve") {
            problems.push((
                format!("`{key}` leaves out `execve`: the container's init could not be started"),
                Some("the filter is loaded just before init is executed; add `execve`".into()),
            ));
        }
    }
    problems
}

/// The keys that cannot stand beside `allow` (LXD's rule): `deny` set,
/// `deny_compat = true`, or `deny_default = true` set by a profile (the
/// built-in base's default does not count). Returns the first such key.
pub fn conflicting_keys(config: &IndexMap<String, At<String>>) -> Option<(&At<String>, &str)> {
    config.get(ALLOW)?;
    if let Some(v) = config.get(DENY) {
        return Some((v, DENY));
    }
    if let Some(v) = config.get(DENY_COMPAT).filter(|v| v.value == "true") {
        return Some((v, DENY_COMPAT));
    }
    config
        .get(DENY_DEFAULT)
        .filter(|v| v.value == "true" && v.origin.file != BUILTIN_NAME)
        .map(|v| (v, DENY_DEFAULT))
}

/// The filter the stacked keys ask for, with the key a user would change
/// (`allow`, `deny`, `deny_compat`, else `deny_default`); `None` when they
/// ask for none. The values were checked in their files.
pub fn filter_from_config(
    config: &IndexMap<String, At<String>>,
) -> Option<(SyscallFilter, Origin)> {
    let mut rules: Vec<SyscallRule> = Vec::new();
    let add = |rules: &mut Vec<SyscallRule>, name: &str, action, when| {
        if !rules.iter().any(|r| r.syscall == name) {
            rules.push(SyscallRule {
                syscall: name.to_string(),
                action,
                when,
            });
        }
    };
    if let Some(allow) = config.get(ALLOW) {
        for n in names(&allow.value) {
            add(&mut rules, n, Action::Allow, None);
        }
        let filter = SyscallFilter {
            default: Action::Kill,
            deny_compat: false,
            rules,
        };
        return Some((filter, allow.origin.clone()));
    }
    let deny_default = config.get(DENY_DEFAULT);
    let deny_compat = config.get(DENY_COMPAT).filter(|v| v.value == "true");
    let deny = config.get(DENY);
    // A name the profile denies outright gets its action (the caller is
    // killed), not the default list's.
    for n in deny.iter().flat_map(|d| names(&d.value)) {
        add(&mut rules, n, Action::Kill, None);
    }
    if deny_default.is_none_or(|v| v.value == "true") {
        for n in DEFAULT_DENIED {
            add(&mut rules, n, Action::Errno(libc::ENOSYS as u16), None);
        }
        let force = ArgMasked {
            arg: 1,
            mask: MNT_FORCE,
            value: MNT_FORCE,
        };
        add(
            &mut rules,
            "umount2",
            Action::Errno(libc::EACCES as u16),
            Some(force),
        );
    }
    if rules.is_empty() && deny_compat.is_none() {
        return None;
    }
    // The profile's own names after LXD's list, as LXD writes them.
    rules.sort_by_key(|r| r.action == Action::Kill);
    let origin = deny
        .filter(|d| names(&d.value).next().is_some())
        .or(deny_compat)
        .or(deny_default)
        .map(|v| v.origin.clone())
        .unwrap_or_else(|| Origin::new(BUILTIN_NAME, format!("config.\"{DENY_DEFAULT}\"")));
    let filter = SyscallFilter {
        default: Action::Allow,
        deny_compat: deny_compat.is_some(),
        rules,
    };
    Some((filter, origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> IndexMap<String, At<String>> {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    At::new(
                        v.to_string(),
                        Origin::new("p.toml", format!("config.\"{k}\"")),
                    ),
                )
            })
            .collect()
    }

    #[test]
    fn default_is_lxds_list() {
        let (f, _) = filter_from_config(&config(&[])).unwrap();
        assert_eq!(f.default, Action::Allow);
        assert!(!f.deny_compat);
        let names: Vec<&str> = f.rules.iter().map(|r| r.syscall.as_str()).collect();
        assert_eq!(
            names,
            [
                "kexec_load",
                "open_by_handle_at",
                "init_module",
                "finit_module",
                "delete_module",
                "umount2"
            ]
        );
        assert!(f.rules[..5].iter().all(|r| r.action == Action::Errno(38)));
        assert_eq!(f.rules[5].action, Action::Errno(13));
        assert_eq!(
            f.rules[5].when,
            Some(ArgMasked {
                arg: 1,
                mask: 1,
                value: 1
            })
        );
    }

    #[test]
    fn no_filter_without_the_default() {
        assert_eq!(
            filter_from_config(&config(&[(DENY_DEFAULT, "false")])),
            None
        );
        let (f, o) =
            filter_from_config(&config(&[(DENY_DEFAULT, "false"), (DENY_COMPAT, "true")])).unwrap();
        assert!(f.deny_compat && f.rules.is_empty());
        assert_eq!(o.key, format!("config.\"{DENY_COMPAT}\""));
    }

    #[test]
    fn deny_adds_killing_rules_after_the_default() {
        let (f, o) =
            filter_from_config(&config(&[(DENY, "mknodat, kexec_load\numount2")])).unwrap();
        let got: Vec<(&str, Action)> = f
            .rules
            .iter()
            .map(|r| (r.syscall.as_str(), r.action))
            .collect();
        assert_eq!(
            got,
            [
                ("open_by_handle_at", Action::Errno(38)),
                ("init_module", Action::Errno(38)),
                ("finit_module", Action::Errno(38)),
                ("delete_module", Action::Errno(38)),
                ("mknodat", Action::Kill),
                ("kexec_load", Action::Kill),
                ("umount2", Action::Kill),
            ]
        );
        assert!(f.rules.iter().all(|r| r.when.is_none()));
        assert_eq!(o.key, format!("config.\"{DENY}\""));
    }

    #[test]
    fn allow_is_an_allow_list_alone() {
        let (f, _) =
            filter_from_config(&config(&[(ALLOW, "execve write exit_group write")])).unwrap();
        assert_eq!(f.default, Action::Kill);
        let names: Vec<&str> = f.rules.iter().map(|r| r.syscall.as_str()).collect();
        assert_eq!(names, ["execve", "write", "exit_group"]);
    }

    #[test]
    fn lists_are_checked() {
        assert!(check_list(DENY, "mknodat  ,\n kexec_load").is_empty());
        assert!(check_list(DENY, "").is_empty());
        let p = check_list(DENY, "mknodatt");
        assert_eq!(p.len(), 1);
        assert!(
            p[0].1.as_deref() == Some("did you mean `mknodat`?"),
            "{p:?}"
        );
        let p = check_list(DENY, "zzzzzzzzzzzz");
        assert!(p[0].1.as_deref().unwrap().contains("libseccomp "), "{p:?}");
        assert_eq!(check_list(ALLOW, " ").len(), 1);
        assert!(
            check_list(ALLOW, "write")
                .pop()
                .unwrap()
                .0
                .contains("execve")
        );
    }

    #[test]
    fn allow_excludes_deny_keys() {
        assert!(conflicting_keys(&config(&[(ALLOW, "execve"), (DENY_DEFAULT, "false")])).is_none());
        assert_eq!(
            conflicting_keys(&config(&[(ALLOW, "execve"), (DENY, "")])).map(|c| c.1),
            Some(DENY)
        );
        assert_eq!(
            conflicting_keys(&config(&[(ALLOW, "execve"), (DENY_COMPAT, "true")])).map(|c| c.1),
            Some(DENY_COMPAT)
        );
        assert_eq!(
            conflicting_keys(&config(&[(ALLOW, "execve"), (DENY_DEFAULT, "true")])).map(|c| c.1),
            Some(DENY_DEFAULT)
        );
        let mut base = config(&[(ALLOW, "execve")]);
        base.insert(
            DENY_DEFAULT.into(),
            At::new("true".into(), Origin::new(BUILTIN_NAME, "config.x")),
        );
        assert!(conflicting_keys(&base).is_none());
    }
}
