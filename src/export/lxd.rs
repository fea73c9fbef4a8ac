//! `envc export --to lxd`: the stacked profile as an LXD (or Incus)
//! profile in YAML, for `lxc profile edit NAME < FILE`. Only what the
//! user's files set is exported: the built-in base is LXD's own default.
//! LXD's keys go over as they are; envc's own sections go to LXD keys or
//! to `raw.lxc` lines where liblxc has a knob; everything else is a
//! [`NotCarried`] with the reason.

use super::NotCarried;
use super::lxd_keys::{shared_keys, why_not_shared};
use super::raw_lxc::{DeviceMark, RawLxc, mqueue_entry, tmpfs_entry};
use crate::plan::DeviceKeys;
use crate::profile::model::{Device, StopSignal};
use crate::profile::raw::{
    LogMode, ProcMode, RawDev, RawDevice, RawProfile, RawSignal, RawSize, SysMode,
};
use crate::profile::values::{parse_mode, parse_signal, parse_size, signal_name};
use crate::profile::{BUILTIN_NAME, BUILTIN_TEXT, Origin, Profile, Sources, join, parse_layer};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// An LXD profile as `lxc profile show` writes it and `lxc profile edit`
/// reads it (`used_by` aside, which LXD fills in).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LxdProfile {
    pub name: String,
    pub description: String,
    pub config: IndexMap<String, String>,
    pub devices: IndexMap<String, DeviceKeys>,
}

/// The result of an export.
#[derive(Debug)]
pub struct LxdExport {
    pub profile: LxdProfile,
    /// What LXD cannot say, in the order of the profile.
    pub not_carried: Vec<NotCarried>,
}

impl LxdExport {
    /// The YAML file: a comment naming its origin, then the profile.
    pub fn yaml(&self, from: &str) -> String {
        let body = serde_norway::to_string(&self.profile).expect("plain data is always YAML");
        format!(
            "# LXD profile exported by envc from {from}.\n# lxc profile create {n} && lxc profile edit {n} < this file\n{body}",
            n = self.profile.name
        )
    }
}

/// The built-in base's values of envc's own sections, to tell a user's
/// change from a restatement of the default.
struct Base {
    raw: RawProfile,
}

impl Base {
    fn load() -> Base {
        let layer = parse_layer(BUILTIN_NAME, BUILTIN_TEXT, None)
            .expect("the built-in base profile is valid");
        Base { raw: layer.raw }
    }
    fn dev(&self) -> RawDev {
        self.raw.dev.clone().unwrap_or_default()
    }
    fn pts_options(&self) -> String {
        self.dev().pts_options.unwrap_or_default()
    }
}

/// Exports `p` (loaded with `sources`, which tell where masks were written).
pub fn to_lxd(p: &Profile, sources: &Sources) -> LxdExport {
    let base = Base::load();
    let user = |o: &Origin| o.file != BUILTIN_NAME;
    let mut out = LxdProfile {
        name: p.name.value.clone(),
        description: match &p.description {
            Some(d) if Some(d) != base.raw.description.as_ref() => d.clone(),
            _ => String::new(),
        },
        ..LxdProfile::default()
    };
    let mut skipped = Vec::new();
    let mut raw = RawLxc::default();

    for (k, v) in &p.config {
        if user(&v.origin) {
            out.config.insert(k.clone(), v.value.clone());
        }
    }
    init(p, &base, &mut out, &mut raw, &mut skipped);
    dev(p, &base, &mut raw, &mut skipped);
    proc_sys(p, &mut raw);
    cgroup_lxcfs(p, &base, &mut skipped);
    devices(p, &base, sources, &mut out, &mut raw, &mut skipped);

    if !raw.is_empty() {
        // A raw.lxc the user set (envc has no such key) cannot exist: the
        // schema rejects it; the key is envc's alone here.
        out.config.insert("raw.lxc".into(), raw.text());
    }
    LxdExport {
        profile: out,
        not_carried: skipped,
    }
}

/// `[init]`: the command and signals as liblxc keys, the stop timeout as
/// LXD's own.
fn init(
    p: &Profile,
    base: &Base,
    out: &mut LxdProfile,
    raw: &mut RawLxc,
    skipped: &mut Vec<NotCarried>,
) {
    let user = |o: &Origin| o.file != BUILTIN_NAME;
    let b = base.raw.init.clone().unwrap_or_default();
    let cmd = &p.init.command;
    if user(&cmd.origin) && Some(&cmd.value) != b.command.as_ref() {
        let splits = cmd
            .value
            .iter()
            .any(|a| a.is_empty() || a.chars().any(char::is_whitespace));
        if splits {
            skipped.push(NotCarried::new(
                cmd.origin.clone(),
                "liblxc's lxc.init.cmd splits the command at spaces and has no quoting: an argument that is empty or holds a space cannot be passed (put the command in a script in the image)",
            ));
        } else {
            raw.push("lxc.init.cmd", &cmd.value.join(" "));
        }
    }
    let stop = &p.init.stop_signal;
    // `auto` is liblxc's own rule (SIGRTMIN+3 while init blocks it, else SIGPWR).
    if user(&stop.origin)
        && let StopSignal::Signal(n) = stop.value
    {
        raw.push("lxc.signal.halt", &signal_name(n));
    }
    let reboot = &p.init.reboot_signal;
    let base_reboot = match &b.reboot_signal {
        Some(RawSignal::Name(n)) => parse_signal(n).ok(),
        Some(RawSignal::Number(n)) => Some(*n as i32),
        None => None,
    };
    if user(&reboot.origin) && Some(reboot.value) != base_reboot {
        raw.push("lxc.signal.reboot", &signal_name(reboot.value));
    }
    let timeout = &p.init.stop_timeout;
    if user(&timeout.origin) && Some(timeout.value as i64) != b.stop_timeout {
        out.config.insert(
            "boot.host_shutdown_timeout".into(),
            timeout.value.to_string(),
        );
    }
}

/// `[dev]`: the tmpfs size and the pty count have liblxc knobs.
fn dev(p: &Profile, base: &Base, raw: &mut RawLxc, skipped: &mut Vec<NotCarried>) {
    let user = |o: &Origin| o.file != BUILTIN_NAME;
    let b = base.dev();
    let d = &p.dev;
    let base_size = match &b.size {
        Some(RawSize::Bytes(n)) => Some(*n as u64),
        Some(RawSize::Text(t)) => parse_size(t).ok(),
        None => None,
    };
    if user(&d.size.origin) && Some(d.size.value) != base_size {
        raw.push("lxc.autodev.tmpfs.size", &d.size.value.to_string());
    }
    let base_mode = b.mode.as_deref().and_then(|m| parse_mode(m).ok());
    if user(&d.mode.origin) && Some(d.mode.value) != base_mode {
        skipped.push(NotCarried::new(
            d.mode.origin.clone(),
            "liblxc mounts the /dev tmpfs with mode 0755 and has no knob for it",
        ));
    }
    let pts = &d.pts_options;
    if user(&pts.origin) && pts.value != base.pts_options() {
        match only_max_differs(&base.pts_options(), &pts.value) {
            Some(max) => raw.push("lxc.pty.max", &max),
            None => skipped.push(NotCarried::new(
                pts.origin.clone(),
                "LXD mounts devpts with fixed options (gid=5,mode=0620,ptmxmode=0666); only max= has a knob (lxc.pty.max)",
            )),
        }
    }
    if user(&d.log.origin) && Some(d.log.value) != b.log && d.log.value == LogMode::None {
        // What LXD does anyway; kept for the way back.
        raw.push_setting("dev.log", "none");
    } else if user(&d.log.origin) && Some(d.log.value) != b.log {
        skipped.push(NotCarried::new(
            d.log.origin.clone(),
            "LXD makes no /dev/log: the guest's syslog daemon makes its own",
        ));
    }
    for (create, what) in [
        (&d.create, "/dev"),
        (&p.proc.create, "/proc"),
        (&p.sys.create, "/sys"),
    ] {
        if user(&create.origin) && create.value {
            skipped.push(NotCarried::new(
                create.origin.clone(),
                format!("LXD has no key to create {what} in the image: the image must have it"),
            ));
        }
    }
}

/// The `max=` of `ours` when it is the only option that differs from `base`.
fn only_max_differs(base: &str, ours: &str) -> Option<String> {
    let strip = |s: &str| -> (Vec<String>, Option<String>) {
        let mut rest = Vec::new();
        let mut max = None;
        for o in s.split(',') {
            match o.strip_prefix("max=") {
                Some(m) => max = Some(m.to_string()),
                None => rest.push(o.to_string()),
            }
        }
        rest.sort();
        (rest, max)
    };
    let (b, _) = strip(base);
    let (o, max) = strip(ours);
    (b == o).then_some(max).flatten()
}

/// `[proc]` and `[sys]` modes: liblxc's `lxc.mount.auto`, which overrides
/// LXD's choice. `auto` is LXD's own choice, so only other modes are written.
fn proc_sys(p: &Profile, raw: &mut RawLxc) {
    let user = |o: &Origin| o.file != BUILTIN_NAME;
    let privileged = p.privileged.value;
    let proc = &p.proc.mode;
    let lxd_proc = if privileged {
        ProcMode::Mixed
    } else {
        ProcMode::Rw
    };
    if user(&proc.origin) && proc.value != lxd_proc {
        let m = match proc.value {
            ProcMode::Mixed => "proc:mixed",
            _ => "proc:rw",
        };
        raw.push("lxc.mount.auto", m);
    }
    let sys = &p.sys.mode;
    let lxd_sys = if privileged {
        SysMode::Mixed
    } else {
        SysMode::Rw
    };
    if user(&sys.origin) && sys.value != lxd_sys {
        let m = match sys.value {
            SysMode::Mixed => "sys:mixed",
            SysMode::Ro => "sys:ro",
            _ => "sys:rw",
        };
        raw.push("lxc.mount.auto", m);
    }
}

/// `[cgroup]` and `[lxcfs]`: LXD manages both itself.
fn cgroup_lxcfs(p: &Profile, base: &Base, skipped: &mut Vec<NotCarried>) {
    let user = |o: &Origin| o.file != BUILTIN_NAME;
    let b = base.raw.cgroup.clone().unwrap_or_default();
    let c = &p.cgroup;
    if user(&c.parent.origin) && Some(&c.parent.value) != b.parent.as_ref() {
        skipped.push(NotCarried::new(
            c.parent.origin.clone(),
            "LXD puts each container in a cgroup of its own (lxc.payload.NAME) and has no key for its parent",
        ));
    }
    if user(&c.namespace.origin) && Some(c.namespace.value) != b.namespace {
        skipped.push(NotCarried::new(
            c.namespace.origin.clone(),
            "LXD always gives a container a cgroup namespace",
        ));
    }
    if user(&c.device_allow.origin) && Some(&c.device_allow.value) != b.device_allow.as_ref() {
        skipped.push(NotCarried::new(
            c.device_allow.origin.clone(),
            "LXD writes the devices cgroup's rules itself (none for an unprivileged container, its allow-list for a privileged one); raw.lxc rules would depend on the host's cgroup version",
        ));
    }
    let bl = base.raw.lxcfs.clone().unwrap_or_default();
    let l = &p.lxcfs;
    if user(&l.enabled.origin) && Some(l.enabled.value) != bl.enabled {
        skipped.push(NotCarried::new(
            l.enabled.origin.clone(),
            "LXCFS is the LXD host's: LXD uses it whenever it runs, with no per-container key",
        ));
    }
    if user(&l.path.origin) && Some(l.path.value.as_str()) != bl.path.as_deref() {
        skipped.push(NotCarried::new(
            l.path.origin.clone(),
            "LXCFS's mount point is the LXD host's, not a profile's",
        ));
    }
}

/// The user's devices: LXD's own types with the keys LXD shares, tmpfs and
/// mqueue as `raw.lxc` mount entries; masks of built-in devices cannot be
/// said (LXD hard-codes what they stand for).
fn devices(
    p: &Profile,
    base: &Base,
    sources: &Sources,
    out: &mut LxdProfile,
    raw: &mut RawLxc,
    skipped: &mut Vec<NotCarried>,
) {
    let mut position = 0;
    for d in p.devices.iter().filter(|d| d.from_user) {
        let typ = d.device.type_name();
        match &d.device {
            Device::Unix { .. } | Device::Disk { .. } | Device::Nic(_) => {
                let nictype = d.raw.get("nictype").map(String::as_str);
                let shared = shared_keys(typ, nictype);
                let mut keys = DeviceKeys::default();
                keys.insert("type".into(), typ.into());
                for (k, v) in &d.raw {
                    if k == "type" {
                        continue;
                    }
                    if shared.contains(&k.as_str()) {
                        keys.insert(k.clone(), v.clone());
                    } else {
                        skipped.push(NotCarried::new(
                            Origin::new(&d.origin.file, join(&d.origin.key, k)),
                            why_not_shared(typ, k),
                        ));
                    }
                }
                out.devices.insert(d.name.clone(), keys);
            }
            Device::Tmpfs {
                path,
                size,
                mode,
                readonly,
            } => {
                let mark = DeviceMark {
                    name: d.name.clone(),
                    position,
                    keys: d.raw.clone(),
                };
                raw.push_device(&mark, &tmpfs_entry(path.as_str(), *size, *mode, *readonly));
            }
            Device::Mqueue { path } => {
                let mark = DeviceMark {
                    name: d.name.clone(),
                    position,
                    keys: d.raw.clone(),
                };
                raw.push_device(&mark, &mqueue_entry(path.as_str()));
            }
            Device::Symlink { .. } => {
                skipped.push(NotCarried::new(
                    d.origin.clone(),
                    "LXD has no symlink device: make the link in the image",
                ));
                continue;
            }
        }
        position += 1;
    }
    // Built-in devices the user's files removed (`type = "none"`).
    for (name, dev) in &base.raw.devices {
        if p.devices.iter().any(|d| &d.name == name) {
            continue;
        }
        let key = join("devices", name);
        let Some(file) = p.layers.iter().rev().find(|f| sources.sets(f, &key)) else {
            continue;
        };
        let what = match dev {
            RawDevice::UnixChar(u) | RawDevice::UnixBlock(u) => u.path.clone().unwrap_or_default(),
            RawDevice::Disk(d) => d.path.clone().unwrap_or_default(),
            RawDevice::Symlink(s) => s.path.clone().unwrap_or_default(),
            RawDevice::Mqueue(m) => m.path.clone().unwrap_or_default(),
            _ => name.clone(),
        };
        skipped.push(NotCarried::new(
            Origin::new(file, key),
            if name == "mqueue" {
                format!("LXD mounts {what} in every privileged container (built in, not a device), so an LXD profile cannot remove it")
            } else {
                format!("LXD always provides {what} where the host has it (built in, not a device), so an LXD profile cannot remove it")
            },
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::only_max_differs;

    #[test]
    fn pty_max_is_the_only_knob() {
        let base = "newinstance,gid=5,mode=0620,ptmxmode=0666,max=1024";
        assert_eq!(
            only_max_differs(base, "newinstance,gid=5,mode=0620,ptmxmode=0666,max=64"),
            Some("64".into())
        );
        assert_eq!(
            only_max_differs(base, "newinstance,gid=5,mode=0600,ptmxmode=0666,max=64"),
            None
        );
    }
}
