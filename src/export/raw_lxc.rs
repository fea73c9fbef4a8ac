//! LXD's `raw.lxc`: liblxc configuration lines appended to what LXD
//! generates. envc writes there what LXD has no key for but liblxc has a
//! knob for (the init command, signals, `/proc` and `/sys` modes, the
//! `/dev` tmpfs size, extra tmpfs and mqueue mounts), and reads the same
//! lines back. A device carried as a mount entry is preceded by a comment
//! line (liblxc ignores it) naming the device and its position, so that an
//! import restores it under its own name and in its own place.

use crate::plan::DeviceKeys;
use serde::{Deserialize, Serialize};

/// The comment that precedes a device's mount entry.
const DEVICE_MARK: &str = "# envc device ";
/// The comment that records an envc setting LXD needs nothing for (LXD
/// already behaves so), to be read back on import: `# envc: dev.log = none`.
const SETTING_MARK: &str = "# envc: ";

/// What envc's comment says about the mount entry after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceMark {
    pub name: String,
    /// Its index among the profile's exported devices.
    pub position: usize,
    /// Its keys as the profile wrote them.
    pub keys: DeviceKeys,
}

/// A `raw.lxc` being written.
#[derive(Debug, Default)]
pub struct RawLxc {
    lines: Vec<String>,
}

impl RawLxc {
    pub fn push(&mut self, key: &str, value: &str) {
        self.lines.push(format!("{key} = {value}"));
    }
    pub fn push_device(&mut self, mark: &DeviceMark, entry: &str) {
        let json = serde_json::to_string(mark).expect("plain data is always JSON");
        self.lines.push(format!("{DEVICE_MARK}{json}"));
        self.push("lxc.mount.entry", entry);
    }
    /// An envc setting kept as a comment (liblxc ignores it).
    pub fn push_setting(&mut self, key: &str, value: &str) {
        self.lines.push(format!("{SETTING_MARK}{key} = {value}"));
    }
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
    /// The text, one line each, ending with a newline.
    pub fn text(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }
}

/// The mount entry of a tmpfs device (path without its leading `/`, as
/// liblxc wants it relative to the rootfs), with envc's mount flags.
pub fn tmpfs_entry(path: &str, size: Option<u64>, mode: u32, readonly: bool) -> String {
    let mut opts = vec![if readonly { "ro" } else { "rw" }.to_string()];
    opts.push("nosuid".into());
    opts.push("nodev".into());
    opts.push(format!("mode={mode:o}"));
    if let Some(s) = size {
        opts.push(format!("size={s}"));
    }
    opts.push("create=dir".into());
    format!(
        "tmpfs {} tmpfs {} 0 0",
        path.trim_start_matches('/'),
        opts.join(",")
    )
}

/// The mount entry of an mqueue device.
pub fn mqueue_entry(path: &str) -> String {
    format!(
        "mqueue {} mqueue rw,nosuid,nodev,noexec,create=dir 0 0",
        path.trim_start_matches('/')
    )
}

/// One line of a `raw.lxc` as read back.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// `key = value` (the key lower-case as liblxc reads it).
    Entry {
        key: String,
        value: String,
        /// envc's comment right before it, if any.
        mark: Option<DeviceMark>,
    },
    /// envc's record of a setting LXD needs nothing for.
    Setting { key: String, value: String },
    /// A line liblxc would not read as a key (reported).
    Other(String),
}

/// Reads `raw.lxc` text: comments and blank lines dropped (envc's device
/// comments attached to the line after them).
pub fn parse(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let mut mark = None;
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(json) = t.strip_prefix(DEVICE_MARK) {
            mark = serde_json::from_str::<DeviceMark>(json).ok();
            continue;
        }
        if let Some(kv) = t.strip_prefix(SETTING_MARK)
            && let Some((k, v)) = kv.split_once('=')
        {
            out.push(Line::Setting {
                key: k.trim().to_string(),
                value: v.trim().to_string(),
            });
            continue;
        }
        if t.starts_with('#') {
            continue;
        }
        match t.split_once('=') {
            Some((k, v)) => out.push(Line::Entry {
                key: k.trim().to_string(),
                value: v.trim().to_string(),
                mark: mark.take(),
            }),
            None => out.push(Line::Other(t.to_string())),
        }
    }
    out
}

/// A tmpfs or mqueue mount entry read back: the device's keys as envc
/// writes them, or why the entry is not one envc has.
pub fn device_of_entry(entry: &str) -> Result<DeviceKeys, String> {
    let fields: Vec<&str> = entry.split_whitespace().collect();
    if fields.len() < 4 {
        return Err("not a mount entry of six fields".into());
    }
    let (fstype, target, opts) = (fields[2], fields[1], fields[3]);
    let path = format!("/{}", target.trim_start_matches('/'));
    let mut keys = DeviceKeys::default();
    match fstype {
        "tmpfs" => {
            keys.insert("type".into(), "tmpfs".into());
            keys.insert("path".into(), path);
            for o in opts.split(',') {
                match o.split_once('=') {
                    Some(("size", s)) => {
                        keys.insert("size".into(), kernel_size(s)?.to_string());
                    }
                    Some(("mode", m)) => {
                        let mode = u32::from_str_radix(m, 8)
                            .map_err(|_| format!("mode={m} is not an octal mode"))?;
                        keys.insert("mode".into(), format!("{mode:04o}"));
                    }
                    Some(("create", _)) => {}
                    None if o == "ro" => {
                        keys.insert("readonly".into(), "true".into());
                    }
                    None if matches!(
                        o,
                        "rw" | "nosuid" | "nodev" | "noexec" | "optional" | "relatime"
                    ) => {}
                    _ => return Err(format!("mount option `{o}` has no envc tmpfs key")),
                }
            }
            Ok(keys)
        }
        "mqueue" => {
            keys.insert("type".into(), "mqueue".into());
            keys.insert("path".into(), path);
            Ok(keys)
        }
        other => Err(format!(
            "a {other} mount: envc has no device for it (use a disk device for a bind)"
        )),
    }
}

/// A tmpfs `size=` option in bytes (the kernel's k, m, g suffixes are binary).
fn kernel_size(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&s[..s.len() - 1], 1 << 20),
        Some('g' | 'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("size={s} is not a size in bytes (a % of memory has no envc form)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmpfs_entries_read_back() {
        let e = tmpfs_entry("/var/cache/x", Some(65536), 0o750, false);
        assert_eq!(
            e,
            "tmpfs var/cache/x tmpfs rw,nosuid,nodev,mode=750,size=65536,create=dir 0 0"
        );
        let k = device_of_entry(&e).unwrap();
        assert_eq!(k["path"], "/var/cache/x");
        assert_eq!(k["size"], "65536");
        assert_eq!(k["mode"], "0750");
        let k = device_of_entry("tmpfs tmp tmpfs ro,size=2m 0 0").unwrap();
        assert_eq!(
            (k["size"].as_str(), k["readonly"].as_str()),
            ("2097152", "true")
        );
        assert!(device_of_entry("tmpfs tmp tmpfs size=50% 0 0").is_err());
        assert!(device_of_entry("/srv srv none bind 0 0").is_err());
        assert!(device_of_entry("tmpfs tmp").is_err());
    }

    #[test]
    fn marks_attach_to_the_next_entry() {
        let mut r = RawLxc::default();
        r.push("lxc.init.cmd", "/bin/app -v");
        let mark = DeviceMark {
            name: "scratch".into(),
            position: 3,
            keys: DeviceKeys::from_iter([("type".to_string(), "tmpfs".to_string())]),
        };
        r.push_device(&mark, &mqueue_entry("/dev/mqueue"));
        let lines = parse(&(r.text() + "# a comment\nnot a key\n"));
        assert_eq!(lines.len(), 3);
        assert!(matches!(&lines[0], Line::Entry { key, mark: None, .. } if key == "lxc.init.cmd"));
        assert!(matches!(&lines[1], Line::Entry { mark: Some(m), .. } if *m == mark));
        assert_eq!(lines[2], Line::Other("not a key".into()));
    }
}
