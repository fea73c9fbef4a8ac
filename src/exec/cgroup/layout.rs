//! The host's cgroup layout (pure cgroup2, hybrid: v1 controllers plus
//! cgroup2 at `unified`, or v1 only), read from mountinfo by the executor,
//! never by the compiler, and reported; and cpuset CPU lists.

use std::path::{Path, PathBuf};

/// One mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where the host has it (`/sys/fs/cgroup/memory`).
    pub mountpoint: PathBuf,
    /// v1 controllers (and `name=systemd`); empty for cgroup2.
    pub controllers: Vec<String>,
    pub v2: bool,
}

impl Hierarchy {
    /// How the report and mounts name it: `memory`, `name=systemd`, `cgroup2`.
    pub fn label(&self) -> String {
        if self.v2 {
            "cgroup2".into()
        } else {
            self.controllers.join(",")
        }
    }
    /// The mount data for a v1 hierarchy (`memory`, `none,name=systemd`).
    pub fn mount_data(&self) -> String {
        if self.controllers.iter().all(|c| c.starts_with("name=")) {
            format!("none,{}", self.controllers.join(","))
        } else {
            self.controllers.join(",")
        }
    }
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
    /// The directory name under `/sys/fs/cgroup` (`memory`, `unified`), or
    /// `None` for a cgroup2 mounted at `/sys/fs/cgroup` itself.
    pub fn dir_name(&self) -> Option<String> {
        let root = Path::new("/sys/fs/cgroup");
        match self.mountpoint.strip_prefix(root) {
            Ok(rest) if rest.as_os_str().is_empty() => None,
            Ok(rest) => Some(rest.to_string_lossy().into_owned()),
            Err(_) => self
                .mountpoint
                .file_name()
                .map(|n| n.to_string_lossy().into_owned()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutKind {
    /// cgroup2 only, at /sys/fs/cgroup.
    Unified,
    /// v1 controllers and cgroup2 (at /sys/fs/cgroup/unified).
    Hybrid,
    /// v1 only.
    Legacy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub kind: LayoutKind,
    pub hierarchies: Vec<Hierarchy>,
}

impl Layout {
    pub fn describe(&self) -> String {
        let kind = match self.kind {
            LayoutKind::Unified => "pure cgroup2",
            LayoutKind::Hybrid => "hybrid (v1 controllers + cgroup2)",
            LayoutKind::Legacy => "v1",
        };
        let labels: Vec<String> = self.hierarchies.iter().map(Hierarchy::label).collect();
        format!("{kind}: {}", labels.join(" "))
    }
}

const V1_OPTIONS_NOT_CONTROLLERS: &[&str] = &[
    "rw",
    "ro",
    "clone_children",
    "noprefix",
    "xattr",
    "cpuset_v2_mode",
    "favordynmods",
];

/// Finds the mounted hierarchies in `/proc/self/mountinfo` text.
pub fn parse_layout(mountinfo: &str) -> Option<Layout> {
    let mut hierarchies: Vec<Hierarchy> = Vec::new();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if fields.len() < dash + 4 || fields.len() < 5 {
            continue;
        }
        let (root, mountpoint) = (fields[3], unescape(fields[4]));
        let (fstype, superopts) = (fields[dash + 1], fields[dash + 3]);
        if root != "/" {
            continue;
        }
        let h = match fstype {
            "cgroup2" => Hierarchy {
                mountpoint: PathBuf::from(mountpoint),
                controllers: Vec::new(),
                v2: true,
            },
            "cgroup" => {
                let controllers: Vec<String> = superopts
                    .split(',')
                    .filter(|o| {
                        !V1_OPTIONS_NOT_CONTROLLERS.contains(o) && !o.starts_with("release_agent=")
                    })
                    .map(str::to_string)
                    .collect();
                if controllers.is_empty() {
                    continue;
                }
                Hierarchy {
                    mountpoint: PathBuf::from(mountpoint),
                    controllers,
                    v2: false,
                }
            }
            _ => continue,
        };
        // The same hierarchy mounted twice: keep the first.
        if hierarchies
            .iter()
            .any(|o| o.v2 == h.v2 && o.controllers == h.controllers)
        {
            continue;
        }
        hierarchies.push(h);
    }
    let v1 = hierarchies.iter().any(|h| !h.v2);
    let v2 = hierarchies.iter().any(|h| h.v2);
    let kind = match (v1, v2) {
        (false, true) => LayoutKind::Unified,
        (true, true) => LayoutKind::Hybrid,
        (true, false) => LayoutKind::Legacy,
        (false, false) => return None,
    };
    Some(Layout { kind, hierarchies })
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = |c: u8| (b'0'..=b'7').contains(&c);
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1..i + 4].iter().all(|c| octal(*c)) {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a cpuset list (`0-3,6`) into CPU numbers.
pub fn parse_cpu_list(s: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a..=b.min(a + 8192));
                }
            }
            None => {
                if let Ok(a) = part.parse() {
                    out.push(a);
                }
            }
        }
    }
    out
}

/// A cpuset list from CPU numbers.
pub fn format_cpu_list(cpus: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid() {
        let l = parse_layout(HYBRID).unwrap();
        assert_eq!(l.kind, LayoutKind::Hybrid);
        let labels: Vec<String> = l.hierarchies.iter().map(Hierarchy::label).collect();
        assert_eq!(
            labels,
            ["cpu", "memory", "cpuset", "name=systemd", "cgroup2"]
        );
        assert_eq!(l.hierarchies[3].mount_data(), "none,name=systemd");
        assert_eq!(l.hierarchies[4].dir_name().as_deref(), Some("unified"));
    }

    #[test]
    fn unified() {
        let l = parse_layout("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n")
            .unwrap();
        assert_eq!(l.kind, LayoutKind::Unified);
        assert_eq!(l.hierarchies[0].dir_name(), None);
        assert!(parse_layout("").is_none());
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpu_list("0-2,5"), vec![0, 1, 2, 5]);
        assert_eq!(format_cpu_list(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
    }
}
