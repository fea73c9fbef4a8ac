//! The meaning of one layer's values: each section (name, rootfs,
//! `[config]`, `[init]`, `[dev]`, `[proc]`, `[sys]`, `[cgroup]`, `[lxcfs]`)
//! checked and typed into a [`Part`], with where each value came from.
//! Devices are converted in `devices.rs`.

use super::devices::convert_devices;
use super::layer::Layer;
use super::model::*;
use super::raw::*;
use super::read::{absolute, relative_to};
use super::spans::join;
use super::values::*;
use crate::diag::{Problem, did_you_mean};
use crate::paths::{ContainerPath, HostPath};
use indexmap::IndexMap;
use std::path::Path;

/// One layer's values, typed; `None` where the layer is silent.
#[derive(Debug, Default)]
pub(super) struct Part {
    pub(super) name: Option<At<String>>,
    pub(super) description: Option<String>,
    pub(super) rootfs: Option<At<String>>,
    pub(super) config: IndexMap<String, At<String>>,
    pub(super) command: Option<At<Vec<String>>>,
    pub(super) stop_signal: Option<At<StopSignal>>,
    pub(super) reboot_signal: Option<At<i32>>,
    pub(super) stop_timeout: Option<At<u32>>,
    pub(super) dev_size: Option<At<u64>>,
    pub(super) dev_mode: Option<At<u32>>,
    pub(super) dev_pts: Option<At<String>>,
    pub(super) dev_log: Option<At<LogMode>>,
    pub(super) dev_create: Option<At<bool>>,
    pub(super) proc_mode: Option<At<ProcMode>>,
    pub(super) proc_create: Option<At<bool>>,
    pub(super) sys_mode: Option<At<SysMode>>,
    pub(super) sys_create: Option<At<bool>>,
    pub(super) cgroup_parent: Option<At<String>>,
    pub(super) cgroup_ns: Option<At<bool>>,
    pub(super) device_allow: Option<At<Vec<String>>>,
    pub(super) unrestricted_devices: Option<At<bool>>,
    pub(super) lxcfs_enabled: Option<At<bool>>,
    pub(super) lxcfs_path: Option<At<HostPath>>,
    /// `None` masks an inherited device.
    pub(super) devices: Vec<(String, Option<NamedDevice>)>,
}

/// The layer being converted and where its problems go: each problem
/// points at the key or value it is about, from the layer's span table.
pub(super) struct Cx<'a> {
    pub(super) layer: &'a Layer,
    pub(super) problems: &'a mut Vec<Problem>,
}

impl Cx<'_> {
    pub(super) fn origin(&self, key: &str) -> Origin {
        Origin::new(&self.layer.source.name, key)
    }
    /// Reports a problem on the value at `key` (or the key if it has no value span).
    pub(super) fn bad(&mut self, key: &str, message: String, label: &str, help: Option<String>) {
        let span = self
            .layer
            .spans
            .value(key)
            .or_else(|| self.layer.spans.key(key))
            .unwrap_or(0..0);
        self.problems.push(
            Problem::new(message)
                .at(&self.layer.source, span, label)
                .help_opt(help),
        );
    }
    pub(super) fn bad_key(
        &mut self,
        key: &str,
        message: String,
        label: &str,
        help: Option<String>,
    ) {
        let span = self
            .layer
            .spans
            .key(key)
            .or_else(|| self.layer.spans.value(key))
            .unwrap_or(0..0);
        self.problems.push(
            Problem::new(message)
                .at(&self.layer.source, span, label)
                .help_opt(help),
        );
    }
    /// Reports that something `absent` is needed, at `at`, unless the
    /// structural check already reported one of those keys (a wrong type, or
    /// an unknown key that was probably meant to be it): one mistake, one problem.
    pub(super) fn needs(
        &mut self,
        at: &str,
        absent: &[&str],
        message: String,
        label: &str,
        help: Option<String>,
    ) {
        if absent.iter().any(|k| self.layer.spans.pruned(k)) {
            return;
        }
        self.bad_key(at, message, label, help);
    }
    pub(super) fn at<T>(&self, key: &str, value: T) -> At<T> {
        At::new(value, self.origin(key))
    }
    pub(super) fn container_path(&mut self, key: &str, s: &str) -> Option<ContainerPath> {
        match ContainerPath::new(s) {
            Ok(p) if p.as_str() == "/" => {
                self.bad(
                    key,
                    format!("`{key}` cannot be the container's root"),
                    "not `/`",
                    None,
                );
                None
            }
            Ok(p) => Some(p),
            Err(e) => {
                self.bad(
                    key,
                    format!("`{key}` is not a usable container path: {e}"),
                    "bad path",
                    None,
                );
                None
            }
        }
    }
    pub(super) fn host_path(&mut self, key: &str, s: &str) -> Option<HostPath> {
        match HostPath::new(s) {
            Ok(p) => Some(p),
            Err(e) => {
                self.bad(
                    key,
                    format!("`{key}` is not a usable host path: {e}"),
                    "bad path",
                    None,
                );
                None
            }
        }
    }
    pub(super) fn mode(&mut self, key: &str, s: &str) -> Option<u32> {
        match parse_mode(s) {
            Ok(m) => Some(m),
            Err(e) => {
                self.bad(key, format!("`{key}`: {e}"), "not an octal mode", None);
                None
            }
        }
    }
    pub(super) fn signal(&mut self, key: &str, s: &RawSignal) -> Option<i32> {
        let r = match s {
            RawSignal::Name(n) => parse_signal(n),
            RawSignal::Number(n) => check_signal_number(*n),
        };
        match r {
            Ok(n) => Some(n),
            Err(e) => {
                let uncatchable = matches!(s, RawSignal::Number(9 | 19))
                    || matches!(s, RawSignal::Name(n) if matches!(
                        n.trim().to_ascii_uppercase().as_str(),
                        "SIGKILL" | "KILL" | "SIGSTOP" | "STOP" | "9" | "19"
                    ));
                let (label, help) = if uncatchable {
                    (
                        "cannot be caught",
                        Some(if key == "init.stop-signal" {
                            "envc kills the container with SIGKILL itself after `stop-timeout`; ask init to stop with e.g. `SIGTERM`, `SIGPWR` or `auto`".to_string()
                        } else {
                            "ask init with a signal it can catch, e.g. `SIGINT` or `SIGTERM`"
                                .to_string()
                        }),
                    )
                } else {
                    let help = match s {
                        RawSignal::Name(n) => {
                            // Compare without the `SIG` every name shares, or
                            // `SIGFOO` would look close to `SIGIO`.
                            let up = n.trim().to_ascii_uppercase();
                            let bare = up.strip_prefix("SIG").unwrap_or(&up);
                            let extra = (key == "init.stop-signal").then_some("auto");
                            let names: Vec<&str> = signal_names().chain(extra).collect();
                            did_you_mean(
                                bare,
                                names.iter().map(|s| s.strip_prefix("SIG").unwrap_or(s)),
                            )
                            .and_then(|m| {
                                names
                                    .iter()
                                    .find(|s| s.strip_prefix("SIG").unwrap_or(s) == m)
                            })
                            .map(|m| format!("did you mean `{m}`?"))
                        }
                        RawSignal::Number(_) => None,
                    };
                    ("not a signal", help)
                };
                self.bad(key, format!("`{key}`: {e}"), label, help);
                None
            }
        }
    }
}

/// The closest valid variable name: invalid characters become `_`.
fn env_name_fixed(var: &str) -> String {
    let mut s: String = var
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

fn bool_config(v: &ConfigValue) -> Option<bool> {
    match v {
        ConfigValue::Bool(b) => Some(*b),
        ConfigValue::Str(s) if s == "true" => Some(true),
        ConfigValue::Str(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// Each bad line of a `raw.idmap` value, pointed at its text in the file
/// where the value is written as it reads (no escapes), else at the value.
fn raw_idmap_problems(cx: &mut Cx<'_>, key: &str, text: &str, errors: &[crate::idmap::RawError]) {
    let value = cx.layer.spans.value(key);
    let source = &cx.layer.source.text;
    // Where the string's characters start in the file: after its opening
    // quotes (and the newline a multi-line string may start with).
    let start = value.as_ref().and_then(|v| {
        let written = source.get(v.clone())?;
        let quote = ["\"\"\"\n", "'''\n", "\"\"\"", "'''", "\"", "'"]
            .into_iter()
            .find(|q| written.starts_with(q))?;
        let body = &written[quote.len()..];
        body.starts_with(text).then_some(v.start + quote.len())
    });
    for e in errors {
        let span = match (start, &value) {
            (Some(s), _) => s + e.span.start..s + e.span.end,
            (None, Some(v)) => v.clone(),
            (None, None) => 0..0,
        };
        cx.problems.push(
            Problem::new(format!("`raw.idmap` line {}: {}", e.line, e.message))
                .at(&cx.layer.source, span, "here")
                .help("each line is `both|uid|gid HOST CONTAINER`, host first: `both 1000 1000`, `uid 50-60 500-510`"),
        );
    }
}

/// Checks the meaning of one layer's values.
pub(super) fn convert(layer: &Layer, top_dir: &Path, problems: &mut Vec<Problem>) -> Part {
    let mut cx = Cx { layer, problems };
    let raw = &layer.raw;
    let mut part = Part {
        description: raw.description.clone(),
        ..Part::default()
    };
    if let Some(n) = &raw.name {
        match check_hostname(n) {
            Ok(()) => part.name = Some(cx.at("name", n.clone())),
            Err(e) => cx.bad(
                "name",
                format!("invalid container name: {e}"),
                "invalid name",
                None,
            ),
        }
    }
    if let Some(r) = &raw.rootfs {
        if r.is_empty() || r.contains('\0') {
            cx.bad(
                "rootfs",
                "`rootfs` must name a directory".into(),
                "empty",
                None,
            );
        } else {
            let rebased = match (&layer.dir, Path::new(r).is_absolute()) {
                (Some(dir), false) => relative_to(&absolute(&dir.join(r)), top_dir),
                _ => r.clone(),
            };
            part.rootfs = Some(cx.at("rootfs", rebased));
        }
    }

    convert_config(&mut cx, &raw.config, &mut part);
    if let Some(init) = &raw.init {
        convert_init(&mut cx, init, &mut part);
    }
    if let Some(dev) = &raw.dev {
        convert_dev(&mut cx, dev, &mut part);
    }
    if let Some(p) = &raw.proc {
        convert_proc(&mut cx, p, &mut part);
    }
    if let Some(s) = &raw.sys {
        convert_sys(&mut cx, s, &mut part);
    }
    if let Some(c) = &raw.cgroup {
        convert_cgroup(&mut cx, c, &mut part);
    }
    if let Some(l) = &raw.lxcfs {
        convert_lxcfs(&mut cx, l, &mut part);
    }
    convert_devices(&mut cx, &raw.devices, &mut part.devices);
    part
}

/// `[config]`: each known key's value checked, `environment.*` names
/// checked; every value kept as LXD stores it (a string).
fn convert_config(cx: &mut Cx<'_>, config: &Config, part: &mut Part) {
    for (k, v) in config {
        let key = join("config", k);
        let text = v.to_lxd_string();
        let ok = match k.as_str() {
            "limits.memory" => parse_memory_limit(&text).map(|_| ()),
            "limits.cpu" => parse_cpu_limit(&text).map(|_| ()),
            "limits.cpu.allowance" => parse_cpu_allowance(&text).map(|_| ()),
            "limits.processes" => parse_processes(&text).map(|_| ()),
            "security.devlxd" => bool_config(v)
                .map(|_| ())
                .ok_or_else(|| "must be true or false".to_string()),
            "security.privileged" | "security.idmap.isolated" => bool_config(v)
                .map(|_| ())
                .ok_or_else(|| "must be true or false".to_string()),
            "security.idmap.size" => match text.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(()),
                _ => Err("must be a number of ids from 1 to 4294967295".to_string()),
            },
            "security.idmap.base" => text
                .parse::<u32>()
                .map(|_| ())
                .map_err(|_| "must be a host id from 0 to 4294967295".to_string()),
            "security.syscalls.deny_default" | "security.syscalls.deny_compat" => bool_config(v)
                .map(|_| ())
                .ok_or_else(|| "must be true or false".to_string()),
            "security.syscalls.deny" | "security.syscalls.allow" => {
                let problems = crate::seccomp::check_list(k, &text);
                if problems.is_empty() {
                    Ok(())
                } else {
                    for (message, help) in problems {
                        cx.bad(&key, message, "in this list", help);
                    }
                    continue;
                }
            }
            "raw.idmap" => match crate::idmap::parse_raw(&text) {
                Err(errors) => {
                    raw_idmap_problems(cx, &key, &text, &errors);
                    continue;
                }
                // The host's root inside would make the container privileged
                // in all but name.
                Ok(entries) if entries.iter().any(|e| e.host == 0) => {
                    Err("maps the host's root (id 0) into the container; run it privileged instead (\"security.privileged\" = true)".to_string())
                }
                Ok(_) => Ok(()),
            },
            _ => match k.strip_prefix("environment.").map(check_env_name) {
                Some(Err(e)) => {
                    cx.bad_key(
                        &key,
                        format!("`{k}`: {e}"),
                        "invalid variable name",
                        Some(format!(
                            "did you mean `environment.{}`?",
                            env_name_fixed(&k["environment.".len()..])
                        )),
                    );
                    continue;
                }
                _ => Ok(()),
            },
        };
        match ok {
            Ok(()) => {
                part.config.insert(k.clone(), cx.at(&key, text));
            }
            Err(e) => {
                let help = CONFIG_KEYS
                    .iter()
                    .find(|(name, _, _)| name == k)
                    .map(|(_, _, desc)| (*desc).to_string());
                cx.bad(&key, format!("`{k}`: {e}"), "invalid value", help)
            }
        }
    }
}

/// `[init]`: the command, the signals and the stop timeout.
fn convert_init(cx: &mut Cx<'_>, init: &RawInit, part: &mut Part) {
    if let Some(cmd) = &init.command {
        if cmd.is_empty() || cmd[0].is_empty() {
            cx.bad(
                "init.command",
                "`init.command` needs a program to run".into(),
                "empty",
                Some("the default is [\"/sbin/init\"]".into()),
            );
        } else if !cmd[0].starts_with('/') {
            cx.bad(
                "init.command",
                format!(
                    "the init program `{}` must be an absolute path inside the rootfs",
                    cmd[0]
                ),
                "not absolute",
                Some(format!(
                    "did you mean `/{}`?",
                    cmd[0].trim_start_matches("./")
                )),
            );
        } else if ContainerPath::new(&cmd[0]).is_err() {
            cx.bad(
                "init.command",
                format!(
                    "the init program `{}` is not a usable path (no `..`)",
                    cmd[0]
                ),
                "bad path",
                None,
            );
        } else if cmd.iter().any(|a| a.contains('\0')) {
            cx.bad(
                "init.command",
                "an init argument contains a NUL byte".into(),
                "NUL",
                None,
            );
        } else {
            part.command = Some(cx.at("init.command", cmd.clone()));
        }
    }
    if let Some(s) = &init.stop_signal {
        if matches!(s, RawSignal::Name(n) if n == "auto") {
            part.stop_signal = Some(cx.at("init.stop-signal", StopSignal::Auto));
        } else if let Some(n) = cx.signal("init.stop-signal", s) {
            part.stop_signal = Some(cx.at("init.stop-signal", StopSignal::Signal(n)));
        }
    }
    if let Some(s) = &init.reboot_signal
        && let Some(n) = cx.signal("init.reboot-signal", s)
    {
        part.reboot_signal = Some(cx.at("init.reboot-signal", n));
    }
    if let Some(t) = init.stop_timeout {
        part.stop_timeout = Some(cx.at("init.stop-timeout", t as u32));
    }
}

/// `[dev]`: the `/dev` tmpfs, devpts, `/dev/log`.
fn convert_dev(cx: &mut Cx<'_>, dev: &RawDev, part: &mut Part) {
    if let Some(size) = &dev.size {
        let r = match size {
            RawSize::Bytes(b) if *b > 0 => Ok(*b as u64),
            RawSize::Bytes(_) => Err("the size must be above 0".to_string()),
            RawSize::Text(t) => parse_size(t),
        };
        match r {
            Ok(b) => part.dev_size = Some(cx.at("dev.size", b)),
            Err(e) => cx.bad("dev.size", format!("`dev.size`: {e}"), "not a size", None),
        }
    }
    if let Some(m) = &dev.mode
        && let Some(m) = cx.mode("dev.mode", m)
    {
        part.dev_mode = Some(cx.at("dev.mode", m));
    }
    if let Some(o) = &dev.pts_options {
        if o.contains('\0') || o.split(',').any(|opt| opt.trim().is_empty()) {
            cx.bad(
                "dev.pts-options",
                "`dev.pts-options` must be comma-separated mount options".into(),
                "bad options",
                None,
            );
        } else {
            part.dev_pts = Some(cx.at("dev.pts-options", o.clone()));
        }
    }
    if let Some(l) = dev.log {
        part.dev_log = Some(cx.at("dev.log", l));
    }
    if let Some(c) = dev.create {
        part.dev_create = Some(cx.at("dev.create", c));
    }
}

/// `[proc]`.
fn convert_proc(cx: &mut Cx<'_>, p: &RawProc, part: &mut Part) {
    if let Some(m) = p.mode {
        part.proc_mode = Some(cx.at("proc.mode", m));
    }
    if let Some(c) = p.create {
        part.proc_create = Some(cx.at("proc.create", c));
    }
}

/// `[sys]`.
fn convert_sys(cx: &mut Cx<'_>, s: &RawSys, part: &mut Part) {
    if let Some(m) = s.mode {
        part.sys_mode = Some(cx.at("sys.mode", m));
    }
    if let Some(c) = s.create {
        part.sys_create = Some(cx.at("sys.create", c));
    }
}

/// `[cgroup]`: the parent cgroup, the namespace, the device rules.
fn convert_cgroup(cx: &mut Cx<'_>, c: &RawCgroup, part: &mut Part) {
    if let Some(p) = &c.parent {
        let ok = !p.is_empty()
            && p.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
            && !p.contains('\0');
        if ok {
            part.cgroup_parent = Some(cx.at("cgroup.parent", p.clone()));
        } else {
            cx.bad(
                "cgroup.parent",
                format!(
                    "`cgroup.parent` `{p}` must be a relative cgroup path like `envc` or `ci/envc`"
                ),
                "bad cgroup path",
                None,
            );
        }
    }
    if let Some(n) = c.namespace {
        part.cgroup_ns = Some(cx.at("cgroup.namespace", n));
    }
    if let Some(u) = c.allow_unrestricted_devices {
        part.unrestricted_devices = Some(cx.at("cgroup.allow-unrestricted-devices", u));
    }
    if let Some(rules) = &c.device_allow {
        let mut ok = true;
        for (i, r) in rules.iter().enumerate() {
            if let Err(e) = check_device_rule(r) {
                cx.bad(
                    &format!("cgroup.device-allow[{i}]"),
                    format!("device rule `{r}`: {e}"),
                    "invalid rule",
                    Some("rules look like \"c 1:3 rwm\" or \"b *:* m\"".into()),
                );
                ok = false;
            }
        }
        if ok {
            part.device_allow = Some(cx.at("cgroup.device-allow", rules.clone()));
        }
    }
}

/// `[lxcfs]`.
fn convert_lxcfs(cx: &mut Cx<'_>, l: &RawLxcfs, part: &mut Part) {
    if let Some(e) = l.enabled {
        part.lxcfs_enabled = Some(cx.at("lxcfs.enabled", e));
    }
    if let Some(p) = &l.path
        && let Some(h) = cx.host_path("lxcfs.path", p)
    {
        part.lxcfs_path = Some(cx.at("lxcfs.path", h));
    }
}
