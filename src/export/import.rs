//! `envc import`: an LXD profile (`lxc profile show`) or an instance's
//! configuration (`lxc config show --expanded`) as an envc TOML profile.
//! LXD keys envc shares go over as they are; `raw.lxc` lines envc writes
//! on export are read back; every other key, device type or line is listed
//! as not imported, with why. A value of the wrong type is an error.

use super::lxd_keys::{lxd_bool, shared_keys, toml_value};
use super::raw_lxc::{self, DeviceMark, Line, mqueue_entry, tmpfs_entry};
use crate::plan::DeviceKeys;
use crate::profile::raw::{CONFIG_KEYS, CONFIG_NAMESPACES};
use crate::profile::values::{parse_mode, parse_size};
use indexmap::IndexMap;
use serde_norway::Value;

/// A key of the LXD file envc has no counterpart for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotImported {
    /// Where it is in the LXD file (`config.volatile.uuid`, `devices.gpu0`).
    pub key: String,
    pub why: String,
}

impl std::fmt::Display for NotImported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.why)
    }
}

/// An import: the TOML text and what was left out.
#[derive(Debug)]
pub struct Imported {
    pub toml: String,
    pub not_imported: Vec<NotImported>,
}

/// What the caller supplies that LXD's YAML does not hold.
pub struct ImportOptions<'a> {
    /// The container's name (default: the profile's `name`).
    pub name: Option<&'a str>,
    /// The rootfs directory, as the profile will say it.
    pub rootfs: &'a str,
    /// The `#:schema` reference written on the first line.
    pub schema: &'a str,
    /// The LXD file's name, for the header comment.
    pub from: &'a str,
}

/// Reads `text` (LXD's YAML) as an envc profile.
pub fn from_lxd(text: &str, opts: &ImportOptions<'_>) -> Result<Imported, String> {
    let doc: Value =
        serde_norway::from_str(text).map_err(|e| format!("{}: invalid YAML: {e}", opts.from))?;
    let Value::Mapping(top) = doc else {
        return Err(format!(
            "{}: an LXD profile is a mapping (config:, devices:, description:)",
            opts.from
        ));
    };
    let mut cx = Cx {
        from: opts.from,
        skipped: Vec::new(),
    };
    let mut name = opts.name.map(str::to_string);
    let mut description = None;
    let mut config = IndexMap::new();
    let mut devices = IndexMap::new();
    for (k, v) in &top {
        let key = cx.scalar("", k)?;
        match key.as_str() {
            "name" => {
                let n = cx.scalar("name", v)?;
                name.get_or_insert(n);
            }
            "description" => {
                let d = cx.scalar("description", v)?;
                if !d.is_empty() {
                    description = Some(d);
                }
            }
            "config" => config = cx.string_map("config", v)?,
            "devices" => {
                let Value::Mapping(m) = v else {
                    if v.is_null() {
                        continue;
                    }
                    return Err(cx.wrong("devices", "a mapping of device names to their keys"));
                };
                for (dn, dv) in m {
                    let dn = cx.scalar("devices", dn)?;
                    let keys = cx.string_map(&format!("devices.{dn}"), dv)?;
                    devices.insert(dn, keys);
                }
            }
            "used_by" => cx.skip("used_by", "LXD's list of the instances that use the profile"),
            "architecture" => cx.skip("architecture", "the host's architecture is the container's"),
            "profiles" => cx.skip(
                "profiles",
                "the profiles LXD stacked: with `lxc config show --expanded` their keys are already in config and devices",
            ),
            "ephemeral" | "stateful" => cx.skip(&key, "envc containers have no LXD instance state"),
            other => cx.skip(other, "not a key of an LXD profile or instance"),
        }
    }
    let Some(name) = name else {
        return Err(format!(
            "{}: the YAML names no container: pass --name NAME (an instance's `lxc config show` has no name)",
            opts.from
        ));
    };

    let mut out = Profile::default();
    for (k, v) in &config {
        cx.config_key(k, v, &mut out)?;
    }
    let mut positioned: Vec<(usize, String, DeviceKeys)> = Vec::new();
    if let Some(text) = config.get("raw.lxc") {
        cx.raw_lxc(text, &mut out, &mut positioned)?;
    }
    for (dn, keys) in &devices {
        if let Some(t) = cx.device(dn, keys)? {
            out.devices.push((dn.clone(), t));
        }
    }
    positioned.sort_by_key(|(p, _, _)| *p);
    for (pos, dn, keys) in positioned {
        let t = cx.device_table(&dn, &keys)?;
        let at = pos.min(out.devices.len());
        out.devices.insert(at, (dn, t));
    }
    Ok(Imported {
        toml: render(&out, &name, description.as_deref(), opts),
        not_imported: cx.skipped,
    })
}

/// The profile being built, in the order it is written.
#[derive(Default)]
struct Profile {
    config: toml::Table,
    init: toml::Table,
    dev: toml::Table,
    proc: toml::Table,
    sys: toml::Table,
    devices: Vec<(String, toml::Table)>,
}

struct Cx<'a> {
    from: &'a str,
    skipped: Vec<NotImported>,
}

impl Cx<'_> {
    fn skip(&mut self, key: &str, why: impl Into<String>) {
        self.skipped.push(NotImported {
            key: key.to_string(),
            why: why.into(),
        });
    }
    fn wrong(&self, key: &str, want: &str) -> String {
        format!("{}: `{key}` must be {want}", self.from)
    }
    /// A scalar as LXD stores it: a string (numbers and booleans as written).
    fn scalar(&self, key: &str, v: &Value) -> Result<String, String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Null => Ok(String::new()),
            _ => Err(self.wrong(
                if key.is_empty() { "a key" } else { key },
                "a string, a number or a boolean",
            )),
        }
    }
    fn string_map(&self, key: &str, v: &Value) -> Result<IndexMap<String, String>, String> {
        let mut out = IndexMap::new();
        match v {
            Value::Null => {}
            Value::Mapping(m) => {
                for (k, v) in m {
                    let k = self.scalar(key, k)?;
                    let v = self.scalar(&format!("{key}.{k}"), v)?;
                    out.insert(k, v);
                }
            }
            _ => return Err(self.wrong(key, "a mapping of keys to strings")),
        }
        Ok(out)
    }

    fn config_key(&mut self, k: &str, v: &str, out: &mut Profile) -> Result<(), String> {
        let at = format!("config.{k}");
        if let Some((_, kind, _)) = CONFIG_KEYS.iter().find(|(n, _, _)| *n == k) {
            let value = if *kind == "bool" {
                toml::Value::Boolean(lxd_bool(v).ok_or_else(|| self.wrong(&at, "true or false"))?)
            } else {
                toml::Value::String(v.to_string())
            };
            out.config.insert(k.to_string(), value);
            return Ok(());
        }
        if CONFIG_NAMESPACES
            .iter()
            .any(|(p, _)| k.starts_with(p) && k.len() > p.len())
        {
            out.config
                .insert(k.to_string(), toml::Value::String(v.to_string()));
            return Ok(());
        }
        match k {
            "raw.lxc" => {}
            "boot.host_shutdown_timeout" => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| self.wrong(&at, "a number of seconds"))?;
                out.init
                    .insert("stop-timeout".into(), toml::Value::Integer(n));
            }
            _ => {
                let why = why_config_not_imported(k);
                self.skip(&at, why);
            }
        }
        Ok(())
    }

    fn raw_lxc(
        &mut self,
        text: &str,
        out: &mut Profile,
        positioned: &mut Vec<(usize, String, DeviceKeys)>,
    ) -> Result<(), String> {
        let at = "config.raw.lxc";
        for line in raw_lxc::parse(text) {
            let (key, value, mark) = match line {
                Line::Entry { key, value, mark } => (key, value, mark),
                Line::Setting { key, value } if key == "dev.log" && value == "none" => {
                    out.dev.insert("log".into(), toml::Value::String(value));
                    continue;
                }
                Line::Setting { key, value } => {
                    self.skip(
                        at,
                        format!("`# envc: {key} = {value}`: not a setting envc writes there"),
                    );
                    continue;
                }
                Line::Other(l) => {
                    self.skip(at, format!("`{l}` is not a liblxc key line"));
                    continue;
                }
            };
            let str_or_int = |s: &str| match s.parse::<i64>() {
                Ok(n) => toml::Value::Integer(n),
                Err(_) => toml::Value::String(s.to_string()),
            };
            match key.as_str() {
                "lxc.init.cmd" => {
                    let argv: Vec<toml::Value> = value
                        .split_whitespace()
                        .map(|a| toml::Value::String(a.into()))
                        .collect();
                    out.init.insert("command".into(), toml::Value::Array(argv));
                }
                "lxc.signal.halt" => {
                    out.init.insert("stop-signal".into(), str_or_int(&value));
                }
                "lxc.signal.reboot" => {
                    out.init.insert("reboot-signal".into(), str_or_int(&value));
                }
                "lxc.autodev.tmpfs.size" => {
                    let n: i64 = value
                        .parse()
                        .map_err(|_| self.wrong("raw.lxc lxc.autodev.tmpfs.size", "bytes"))?;
                    out.dev.insert("size".into(), toml::Value::Integer(n));
                }
                "lxc.pty.max" => {
                    let n: u32 = value
                        .parse()
                        .map_err(|_| self.wrong("raw.lxc lxc.pty.max", "a number"))?;
                    out.dev.insert(
                        "pts-options".into(),
                        toml::Value::String(format!(
                            "newinstance,gid=5,mode=0620,ptmxmode=0666,max={n}"
                        )),
                    );
                }
                "lxc.mount.auto" => {
                    for tok in value.split_whitespace() {
                        match tok {
                            "proc:mixed" | "proc:rw" => {
                                out.proc.insert("mode".into(), tok[5..].into());
                            }
                            "sys:mixed" | "sys:ro" | "sys:rw" => {
                                out.sys.insert("mode".into(), tok[4..].into());
                            }
                            _ => self.skip(
                                at,
                                format!("lxc.mount.auto = {tok}: envc mounts it as LXD does, with no key to change"),
                            ),
                        }
                    }
                }
                "lxc.mount.entry" => match self.mount_entry(&value, mark) {
                    Ok(d) => positioned.push(d),
                    Err(why) => self.skip(at, format!("lxc.mount.entry = {value}: {why}")),
                },
                _ => self.skip(at, format!("{key} = {value}: envc has no counterpart")),
            }
        }
        Ok(())
    }

    /// A mount entry as a device: envc's own comment before it gives its
    /// name, place and keys when the entry is still what they say.
    fn mount_entry(
        &self,
        value: &str,
        mark: Option<DeviceMark>,
    ) -> Result<(usize, String, DeviceKeys), String> {
        if let Some(m) = mark
            && rendered(&m.keys).as_deref() == Some(value)
        {
            return Ok((m.position, m.name, m.keys));
        }
        let keys = raw_lxc::device_of_entry(value)?;
        let name = keys["path"].trim_start_matches('/').replace('/', "-");
        Ok((usize::MAX, name, keys))
    }

    /// One LXD device, as a TOML table, or `None` when envc has no such device.
    fn device(
        &mut self,
        dn: &str,
        keys: &IndexMap<String, String>,
    ) -> Result<Option<toml::Table>, String> {
        let at = format!("devices.{dn}");
        let Some(typ) = keys.get("type") else {
            return Err(format!("{}: device `{dn}` has no `type`", self.from));
        };
        let why = match typ.as_str() {
            "unix-char" | "unix-block" | "disk" | "nic" | "none" => None,
            "gpu" => Some("envc has no gpu device: bind the nodes with unix-char devices"),
            "usb" => {
                Some("envc has no usb device (no hotplug): bind the node with a unix-char device")
            }
            "proxy" => Some("envc has no proxy device: forward the port on the host"),
            "infiniband" | "pci" | "tpm" | "unix-hotplug" => Some("envc has no such device"),
            _ => Some("not a device type envc or LXD has"),
        };
        if let Some(why) = why {
            self.skip(&at, format!("type {typ}: {why}"));
            return Ok(None);
        }
        if typ == "disk" && keys.get("path").map(String::as_str) == Some("/") {
            self.skip(
                &at,
                "the root disk: envc's root is the rootfs directory (--rootfs)",
            );
            return Ok(None);
        }
        if typ == "nic" && !keys.contains_key("nictype") {
            self.skip(
                &at,
                "a NIC on an LXD-managed network: envc manages no networks (set nictype = \"bridged\" and parent = the bridge)",
            );
            return Ok(None);
        }
        let shared = shared_keys(typ, keys.get("nictype").map(String::as_str));
        let mut ignored = Vec::new();
        for k in keys.keys() {
            if k != "type" && (typ == "none" || !shared.contains(&k.as_str())) {
                ignored.push(k.clone());
            }
        }
        for k in &ignored {
            self.skip(
                &format!("{at}.{k}"),
                format!("envc's {typ} device has no such key"),
            );
        }
        let keys: DeviceKeys = keys
            .iter()
            .filter(|(k, _)| !ignored.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.device_table(dn, &keys).map(Some)
    }

    /// A device's keys as a TOML table, each value of its type.
    fn device_table(&self, dn: &str, keys: &DeviceKeys) -> Result<toml::Table, String> {
        let typ = keys.get("type").cloned().unwrap_or_default();
        let mut t = toml::Table::new();
        t.insert("type".into(), toml::Value::String(typ.clone()));
        for (k, v) in keys {
            if k == "type" {
                continue;
            }
            let value =
                toml_value(&typ, k, v).map_err(|e| format!("{}: device `{dn}`: {e}", self.from))?;
            t.insert(k.clone(), value);
        }
        Ok(t)
    }
}

/// The mount entry envc writes for a tmpfs or mqueue device's keys.
fn rendered(keys: &DeviceKeys) -> Option<String> {
    let path = keys.get("path")?;
    match keys.get("type")?.as_str() {
        "tmpfs" => {
            let size = match keys.get("size") {
                Some(s) => Some(parse_size(s).ok()?),
                None => None,
            };
            let mode = parse_mode(keys.get("mode").map_or("1777", String::as_str)).ok()?;
            let readonly = keys.get("readonly").is_some_and(|r| r == "true");
            Some(tmpfs_entry(path, size, mode, readonly))
        }
        "mqueue" => Some(mqueue_entry(path)),
        _ => None,
    }
}

/// Why a config key LXD has is not imported.
fn why_config_not_imported(k: &str) -> String {
    let why = if k.starts_with("volatile.") {
        "LXD's record of the instance's state"
    } else if k.starts_with("image.") {
        "LXD's record of the image the instance came from"
    } else if k.starts_with("boot.") {
        "envc starts a container when asked: start it from the host's init system"
    } else if k.starts_with("snapshots.") {
        "envc has no snapshots"
    } else if k.starts_with("security.syscalls.") || k == "raw.seccomp" {
        "envc has no syscall filter keys"
    } else if k == "raw.apparmor" || k == "security.nesting" || k == "security.protection.delete" {
        "envc has no such policy"
    } else if k.starts_with("linux.") {
        "envc loads no kernel modules and sets no sysctls for a container"
    } else if k.starts_with("limits.") {
        "envc has limits.memory, limits.cpu, limits.cpu.allowance and limits.processes only"
    } else {
        "envc has no such key"
    };
    why.to_string()
}

/// The TOML text.
fn render(p: &Profile, name: &str, description: Option<&str>, opts: &ImportOptions<'_>) -> String {
    let mut doc = toml::Table::new();
    doc.insert("name".into(), toml::Value::String(name.to_string()));
    if let Some(d) = description {
        doc.insert("description".into(), toml::Value::String(d.to_string()));
    }
    doc.insert(
        "rootfs".into(),
        toml::Value::String(opts.rootfs.to_string()),
    );
    for (section, table) in [
        ("config", &p.config),
        ("init", &p.init),
        ("dev", &p.dev),
        ("proc", &p.proc),
        ("sys", &p.sys),
    ] {
        if !table.is_empty() {
            doc.insert(section.into(), toml::Value::Table(table.clone()));
        }
    }
    if !p.devices.is_empty() {
        let mut devs = toml::Table::new();
        for (n, t) in &p.devices {
            devs.insert(n.clone(), toml::Value::Table(t.clone()));
        }
        doc.insert("devices".into(), toml::Value::Table(devs));
    }
    let body = toml::to_string(&doc).expect("plain data is always TOML");
    format!(
        "#:schema {}\n# Imported by envc from {}.\n{body}",
        opts.schema, opts.from
    )
}
