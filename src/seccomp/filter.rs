//! The filter as plain data: what the plan's `LoadSyscallFilter` step and
//! `info.json` carry, and what `install` loads. Syscalls are named, not
//! numbered: the numbers are the loading host's, for each of its ABIs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// What a system call gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// It runs.
    Allow,
    /// It fails with this errno, without running.
    Errno(u16),
    /// The calling thread is killed with `SIGSYS` (liblxc's action for a
    /// deny-list entry, and for what an allow-list leaves out).
    Kill,
}

impl Action {
    fn describe(self) -> String {
        match self {
            Action::Allow => "allowed".into(),
            Action::Errno(e) => errno_name(e),
            Action::Kill => "killed".into(),
        }
    }
}

fn errno_name(e: u16) -> String {
    match i32::from(e) {
        libc::ENOSYS => "ENOSYS".into(),
        libc::EACCES => "EACCES".into(),
        libc::EPERM => "EPERM".into(),
        n => format!("errno {n}"),
    }
}

/// An argument test: the rule applies when `(args[arg] & mask) == value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArgMasked {
    pub arg: u8,
    pub mask: u64,
    pub value: u64,
}

/// One rule: a system call by name, what it gets, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyscallRule {
    pub syscall: String,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<ArgMasked>,
}

/// A syscall filter. Every rule covers every ABI of the host (on x86_64:
/// 64-bit, i386 and x32), so a 32-bit binary cannot walk around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyscallFilter {
    /// What a system call no rule names gets: `allow` (a deny-list) or
    /// `kill` (an allow-list).
    pub default: Action,
    /// Refuse every system call of the host's 32-bit ABIs (i386 and x32 on
    /// x86_64) with `ENOSYS`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deny_compat: bool,
    pub rules: Vec<SyscallRule>,
}

impl SyscallFilter {
    /// A short line for the report.
    pub fn summary(&self) -> String {
        let what = match self.default {
            Action::Kill => format!("allow-list of {} syscalls", self.rules.len()),
            _ => format!("deny-list of {} rules", self.rules.len()),
        };
        let abis = if self.deny_compat {
            "32-bit syscalls refused"
        } else {
            "for every ABI"
        };
        format!("{what}, {abis}; loaded just before init's exec")
    }

    /// One line for the plan's text form.
    pub fn describe(&self) -> String {
        let mut out = match self.default {
            Action::Allow => "deny-list:".to_string(),
            Action::Kill => "allow-list (anything else kills the caller):".to_string(),
            Action::Errno(_) => format!("anything else {}:", self.default.describe()),
        };
        let mut first = true;
        for r in &self.rules {
            out.push_str(if first { " " } else { ", " });
            first = false;
            if self.default == Action::Kill && r.action == Action::Allow {
                out.push_str(&r.syscall);
                continue;
            }
            let _ = write!(out, "{} {}", r.syscall, r.action.describe());
            if let Some(w) = r.when {
                let _ = write!(out, " if arg{} & {:#x} == {:#x}", w.arg, w.mask, w.value);
            }
        }
        if self.rules.is_empty() {
            out.push_str(" no rules");
        }
        if self.deny_compat {
            out.push_str("; every 32-bit syscall ENOSYS");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form_names_actions() {
        let f = SyscallFilter {
            default: Action::Allow,
            deny_compat: false,
            rules: vec![SyscallRule {
                syscall: "umount2".into(),
                action: Action::Errno(13),
                when: Some(ArgMasked {
                    arg: 1,
                    mask: 1,
                    value: 1,
                }),
            }],
        };
        let j = serde_json::to_string(&f).unwrap();
        assert_eq!(
            j,
            r#"{"default":"allow","rules":[{"syscall":"umount2","action":{"errno":13},"when":{"arg":1,"mask":1,"value":1}}]}"#
        );
        assert_eq!(serde_json::from_str::<SyscallFilter>(&j).unwrap(), f);
        assert_eq!(
            f.describe(),
            "deny-list: umount2 EACCES if arg1 & 0x1 == 0x1"
        );
    }
}
