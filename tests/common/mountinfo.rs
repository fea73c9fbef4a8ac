//! Parsing of `/proc/PID/mountinfo` lines (the host's, or the probe's `mountinfo` array).

/// One mountinfo line (see proc(5)). Path-like fields are unescaped (`\040` -> space).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_id: u64,
    pub parent_id: u64,
    /// "major:minor"
    pub dev: String,
    /// Root of the mount within its filesystem.
    pub root: String,
    pub mount_point: String,
    /// Per-mount options, e.g. "rw,nosuid,nodev,noexec,relatime".
    pub mount_options: String,
    /// Optional fields, e.g. ["shared:1"], ["master:3"].
    pub optional: Vec<String>,
    pub fs_type: String,
    pub source: String,
    /// Per-superblock options.
    pub super_options: String,
}

impl Mount {
    /// Whether the per-mount options contain `opt` (e.g. "ro", "nosuid").
    pub fn has_option(&self, opt: &str) -> bool {
        self.mount_options.split(',').any(|o| o == opt)
    }
    /// Whether the superblock options contain `opt` (exactly, or as `opt=...` when `opt`
    /// has no '=').
    pub fn has_super_option(&self, opt: &str) -> bool {
        self.super_options
            .split(',')
            .any(|o| o == opt || (!opt.contains('=') && o.split('=').next() == Some(opt)))
    }
    pub fn is_read_only(&self) -> bool {
        self.has_option("ro")
    }
}

/// Decodes the octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash)
/// the kernel uses in mountinfo path fields.
pub fn unescape_mount_field(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let digit = |k: usize| u32::from(b[i + k] - b'0');
            let v = digit(1) * 64 + digit(2) * 8 + digit(3);
            if v <= 0xff {
                out.push(v as u8);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses one line; None if it is malformed.
pub fn parse_mountinfo_line(line: &str) -> Option<Mount> {
    let mut fields = line.split(' ');
    let mount_id = fields.next()?.parse().ok()?;
    let parent_id = fields.next()?.parse().ok()?;
    let dev = fields.next()?.to_string();
    let root = unescape_mount_field(fields.next()?);
    let mount_point = unescape_mount_field(fields.next()?);
    let mount_options = fields.next()?.to_string();
    let mut optional = Vec::new();
    loop {
        let f = fields.next()?;
        if f == "-" {
            break;
        }
        optional.push(f.to_string());
    }
    let fs_type = fields.next()?.to_string();
    let source = unescape_mount_field(fields.next()?);
    let super_options = fields.next().unwrap_or("").to_string();
    Some(Mount {
        mount_id,
        parent_id,
        dev,
        root,
        mount_point,
        mount_options,
        optional,
        fs_type,
        source,
        super_options,
    })
}

/// Parses a whole mountinfo text, skipping blank lines; panics on a malformed line.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse_mountinfo_line(l).unwrap_or_else(|| panic!("bad mountinfo line: {l:?}")))
        .collect()
}
