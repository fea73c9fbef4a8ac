//! Parsers for the value forms profiles use: sizes, octal modes, CPU sets,
//! CPU allowances, signals, MAC addresses, interface names, hostnames.
//! Each returns a short reason on failure; the caller attaches the span.

use super::model::NodeKind;
use serde::{Deserialize, Serialize};

/// Parses a size: plain bytes, or a number with a decimal (`kB`, `MB`, `GB`,
/// `TB`) or binary (`KiB`, `MiB`, `GiB`, `TiB`) unit, as LXD accepts.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("`{s}` is not a size: it must start with a number"));
    }
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1000,
        "MB" => 1000u64.pow(2),
        "GB" => 1000u64.pow(3),
        "TB" => 1000u64.pow(4),
        "PB" => 1000u64.pow(5),
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "PiB" => 1 << 50,
        u => {
            return Err(format!(
                "unknown size unit `{u}` (use B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            ));
        }
    };
    if num.contains('.') {
        let f: f64 = num
            .parse()
            .map_err(|_| format!("`{num}` is not a number"))?;
        let v = f * mult as f64;
        if !v.is_finite() || v >= u64::MAX as f64 {
            return Err(format!("`{s}` is too large"));
        }
        Ok(v as u64)
    } else {
        let n: u64 = num.parse().map_err(|_| format!("`{num}` is too large"))?;
        n.checked_mul(mult)
            .ok_or_else(|| format!("`{s}` is too large"))
    }
}

/// A memory limit: absolute bytes or a percentage of the host's memory.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryLimit {
    Bytes(u64),
    /// Hundredths of a percent (`50%` is 5000), resolved against the host's
    /// memory when the container starts.
    PercentHundredths(u32),
}

pub fn parse_memory_limit(s: &str) -> Result<MemoryLimit, String> {
    if let Some(p) = s.trim().strip_suffix('%') {
        let pct = parse_percent(p)?;
        if pct == 0 {
            return Err("a memory limit of 0% leaves nothing to run".into());
        }
        return Ok(MemoryLimit::PercentHundredths(pct));
    }
    let b = parse_size(s)?;
    if b < 1 << 20 {
        return Err(format!(
            "`{s}` is below 1MiB, too little for any init; did you forget the unit?"
        ));
    }
    Ok(MemoryLimit::Bytes(b))
}

/// `50` or `12.5` → hundredths of a percent; at most 100%.
fn parse_percent(p: &str) -> Result<u32, String> {
    let f: f64 = p
        .trim()
        .parse()
        .map_err(|_| format!("`{p}%` is not a percentage"))?;
    if !(0.0..=100.0).contains(&f) {
        return Err(format!("`{p}%` is not between 0% and 100%"));
    }
    Ok((f * 100.0).round() as u32)
}

/// `limits.cpu`: a count, or an explicit set of CPUs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuLimit {
    Count(u32),
    /// A normalised cpuset list (`0-1,3`).
    Set(String),
}

pub fn parse_cpu_limit(s: &str) -> Result<CpuLimit, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("`limits.cpu` is empty".into());
    }
    // LXD: a single number is a count; a range or list is a set. `0-0` is CPU 0.
    if t.chars().all(|c| c.is_ascii_digit()) {
        let n: u32 = t.parse().map_err(|_| format!("`{t}` is too large"))?;
        if n == 0 {
            return Err("a CPU count must be at least 1".into());
        }
        if n > 8192 {
            return Err(format!("{n} CPUs is more than Linux supports"));
        }
        return Ok(CpuLimit::Count(n));
    }
    let mut cpus = Vec::new();
    for part in t.split(',') {
        let part = part.trim();
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: u32 = a
            .trim()
            .parse()
            .map_err(|_| format!("`{part}` is not a CPU number or range like `0-3`"))?;
        let b: u32 = b
            .trim()
            .parse()
            .map_err(|_| format!("`{part}` is not a CPU number or range like `0-3`"))?;
        if a > b {
            return Err(format!("`{part}`: the range is backwards"));
        }
        if b >= 8192 {
            return Err(format!("CPU {b} is beyond what Linux supports"));
        }
        cpus.push((a, b));
    }
    cpus.sort();
    let mut merged: Vec<(u32, u32)> = Vec::new();
    for (a, b) in cpus {
        match merged.last_mut() {
            Some(last) if a <= last.1 + 1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let text = merged
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    Ok(CpuLimit::Set(text))
}

/// `limits.cpu.allowance`: a share of one period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CpuAllowance {
    /// Microseconds of CPU time per period.
    pub quota_us: u64,
    pub period_us: u64,
}

pub fn parse_cpu_allowance(s: &str) -> Result<CpuAllowance, String> {
    let t = s.trim();
    if let Some(p) = t.strip_suffix('%') {
        // LXD: a percentage of one CPU's time per 100ms period.
        let f: f64 = p
            .trim()
            .parse()
            .map_err(|_| format!("`{t}` is not a percentage"))?;
        if !(f > 0.0 && f <= 100_000.0) {
            return Err(format!("`{t}` must be above 0%"));
        }
        return Ok(CpuAllowance {
            quota_us: (f * 1000.0).round() as u64,
            period_us: 100_000,
        });
    }
    let (q, p) = t.split_once('/').ok_or_else(|| {
        format!("`{t}` is neither a percentage (`50%`) nor a quota (`25ms/100ms`)")
    })?;
    let quota_us = parse_ms(q)?;
    let period_us = parse_ms(p)?;
    if !(1000..=1_000_000).contains(&period_us) {
        return Err("the period must be from 1ms to 1000ms".into());
    }
    if quota_us < 1000 {
        return Err("the quota must be at least 1ms".into());
    }
    Ok(CpuAllowance {
        quota_us,
        period_us,
    })
}

fn parse_ms(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let n = t
        .strip_suffix("ms")
        .ok_or_else(|| format!("`{t}` must be in milliseconds, like `25ms`"))?;
    let v: u64 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{t}` is not a whole number of milliseconds"))?;
    v.checked_mul(1000)
        .ok_or_else(|| format!("`{t}` is too large"))
}

pub fn parse_processes(s: &str) -> Result<u64, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number of processes"))?;
    if n == 0 {
        return Err("must be at least 1".into());
    }
    Ok(n)
}

/// Parses an octal permission string (`"0660"`, `"755"`); at most `07777`.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    if digits.is_empty() || !digits.chars().all(|c| ('0'..='7').contains(&c)) {
        return Err(format!("`{s}` is not an octal mode like \"0660\""));
    }
    let v = u32::from_str_radix(digits, 8).map_err(|_| format!("`{s}` is too large"))?;
    if v > 0o7777 {
        return Err(format!("`{s}` is above 07777"));
    }
    Ok(v)
}

/// Signals by name, as envc knows them. Real-time signals are written
/// `SIGRTMIN+N` and mean the kernel's 34+N, never libc's SIGRTMIN (glibc
/// reserves two, musl three).
const SIGNALS: &[(&str, i32)] = &[
    ("SIGHUP", 1),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGILL", 4),
    ("SIGTRAP", 5),
    ("SIGABRT", 6),
    ("SIGBUS", 7),
    ("SIGFPE", 8),
    ("SIGKILL", 9),
    ("SIGUSR1", 10),
    ("SIGSEGV", 11),
    ("SIGUSR2", 12),
    ("SIGPIPE", 13),
    ("SIGALRM", 14),
    ("SIGTERM", 15),
    ("SIGSTKFLT", 16),
    ("SIGCHLD", 17),
    ("SIGCONT", 18),
    ("SIGSTOP", 19),
    ("SIGTSTP", 20),
    ("SIGTTIN", 21),
    ("SIGTTOU", 22),
    ("SIGURG", 23),
    ("SIGXCPU", 24),
    ("SIGXFSZ", 25),
    ("SIGVTALRM", 26),
    ("SIGPROF", 27),
    ("SIGWINCH", 28),
    ("SIGIO", 29),
    ("SIGPWR", 30),
    ("SIGSYS", 31),
];

/// The kernel's first real-time signal number.
pub const KERNEL_SIGRTMIN: i32 = 34;
/// The kernel's last signal number.
pub const KERNEL_SIGRTMAX: i32 = 64;

/// Every signal name envc accepts (for "did you mean").
pub fn signal_names() -> impl Iterator<Item = &'static str> {
    SIGNALS
        .iter()
        .map(|(n, _)| *n)
        .chain(["SIGRTMIN+3", "SIGRTMIN", "SIGRTMAX"])
}

/// Parses a signal name (`SIGPWR`, `PWR`, `SIGRTMIN+3`) or number.
pub fn parse_signal(s: &str) -> Result<i32, String> {
    let t = s.trim().to_ascii_uppercase();
    if let Ok(n) = t.parse::<i32>() {
        return check_signal_number(n as i64);
    }
    let name = if t.starts_with("SIG") {
        t.clone()
    } else {
        format!("SIG{t}")
    };
    if let Some((_, n)) = SIGNALS.iter().find(|(n, _)| *n == name) {
        return check_signal_number(*n as i64);
    }
    if let Some(rest) = name.strip_prefix("SIGRTMIN") {
        let off = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix('+')
                .and_then(|n| n.parse::<i32>().ok())
                .ok_or_else(|| format!("`{s}` is not a signal"))?
        };
        return check_signal_number((KERNEL_SIGRTMIN + off) as i64);
    }
    if let Some(rest) = name.strip_prefix("SIGRTMAX") {
        let off = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix('-')
                .and_then(|n| n.parse::<i32>().ok())
                .ok_or_else(|| format!("`{s}` is not a signal"))?
        };
        return check_signal_number((KERNEL_SIGRTMAX - off) as i64);
    }
    Err(format!("`{s}` is not a signal name"))
}

pub fn check_signal_number(n: i64) -> Result<i32, String> {
    if (1..=KERNEL_SIGRTMAX as i64).contains(&n) && n != 9 && n != 19 {
        Ok(n as i32)
    } else if n == 9 || n == 19 {
        Err(format!(
            "signal {n} cannot be handled by init, so it cannot ask for a clean stop or reboot"
        ))
    } else {
        Err(format!("{n} is not a signal number (1 to 64)"))
    }
}

/// The conventional name of a signal number, for plans and reports.
pub fn signal_name(n: i32) -> String {
    match SIGNALS.iter().find(|(_, v)| *v == n) {
        Some((name, _)) => (*name).to_string(),
        None if n == KERNEL_SIGRTMIN => "SIGRTMIN".into(),
        None if n > KERNEL_SIGRTMIN && n <= KERNEL_SIGRTMAX => {
            format!("SIGRTMIN+{}", n - KERNEL_SIGRTMIN)
        }
        None => n.to_string(),
    }
}

/// A MAC address, written `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("`{s}` is not a MAC address like 00:16:3e:12:34:56"));
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return Err(format!("`{s}` is not a MAC address like 00:16:3e:12:34:56"));
        }
        mac[i] = u8::from_str_radix(p, 16)
            .map_err(|_| format!("`{s}` is not a MAC address like 00:16:3e:12:34:56"))?;
    }
    if mac[0] & 1 == 1 {
        return Err(format!(
            "`{s}` is a multicast address (the low bit of the first byte is set); a NIC needs a unicast one"
        ));
    }
    if mac == [0; 6] {
        return Err("00:00:00:00:00:00 is not a usable address".into());
    }
    Ok(mac)
}

pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// LXD's default MAC: `00:16:3e` and three bytes derived (FNV-1a) from the
/// container and device names, so it is the same at every start.
pub fn derived_mac(container: &str, device: &str) -> [u8; 6] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in container
        .bytes()
        .chain(std::iter::once(0))
        .chain(device.bytes())
    {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    [0x00, 0x16, 0x3e, (h >> 16) as u8, (h >> 8) as u8, h as u8]
}

/// A Linux interface name: 1 to 15 bytes, no `/`, `:`, whitespace, not `.`/`..`.
pub fn check_ifname(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("an interface name cannot be empty".into());
    }
    if s.len() > 15 {
        return Err(format!(
            "`{s}` is {} bytes long; Linux interface names have at most 15",
            s.len()
        ));
    }
    if s == "." || s == ".." {
        return Err(format!("`{s}` is not a valid interface name"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "`{s}` contains {c:?}, which interface names cannot"
        ));
    }
    Ok(())
}

/// A hostname label (the container's name): RFC 1123.
pub fn check_hostname(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 63 {
        return Err(format!(
            "`{s}` must be 1 to 63 characters long (it is the container's hostname)"
        ));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(format!("`{s}` cannot start or end with `-`"));
    }
    if let Some(c) = s.chars().find(|c| !c.is_ascii_alphanumeric() && *c != '-') {
        return Err(format!(
            "`{s}` contains {c:?}; a container name may only use letters, digits and `-`"
        ));
    }
    if s.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "`{s}` is all digits, which is not a valid hostname"
        ));
    }
    Ok(())
}

/// An environment variable name: not empty, no `=` or NUL.
pub fn check_env_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("the variable name is empty".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(format!(
            "`{s}` contains {c:?}; environment variable names use letters, digits and `_`"
        ));
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("`{s}` starts with a digit"));
    }
    Ok(())
}

/// A devices-controller rule: `TYPE MAJOR:MINOR ACCESS` (`c 1:3 rwm`, `b *:* m`, `a`).
pub fn check_device_rule(s: &str) -> Result<(), String> {
    DeviceRule::parse(s).map(drop)
}

/// One device rule as the v1 devices controller takes it (`c 1:3 rwm`,
/// `b *:* m`, or `a` alone for every device with every access).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceRule {
    /// `None` for `a`: char and block devices.
    pub kind: Option<NodeKind>,
    /// `None` for `*`.
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: DeviceAccess,
}

/// Which accesses a device rule allows: read, write, mknod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DeviceAccess {
    pub read: bool,
    pub write: bool,
    pub mknod: bool,
}

impl DeviceAccess {
    pub const ALL: DeviceAccess = DeviceAccess {
        read: true,
        write: true,
        mknod: true,
    };
    pub fn union(self, o: DeviceAccess) -> DeviceAccess {
        DeviceAccess {
            read: self.read || o.read,
            write: self.write || o.write,
            mknod: self.mknod || o.mknod,
        }
    }
}

impl DeviceRule {
    /// Every device, every access (the rule `a`).
    pub const ALL: DeviceRule = DeviceRule {
        kind: None,
        major: None,
        minor: None,
        access: DeviceAccess::ALL,
    };

    pub fn parse(s: &str) -> Result<DeviceRule, String> {
        let parts: Vec<&str> = s.split_whitespace().collect();
        if parts == ["a"] {
            return Ok(DeviceRule::ALL);
        }
        let [kind, number, access] = parts.as_slice() else {
            return Err("expected three fields: type, major:minor, access".into());
        };
        let kind = match *kind {
            "c" => Some(NodeKind::Char),
            "b" => Some(NodeKind::Block),
            "a" => None,
            _ => return Err(format!("type `{kind}` is not `c`, `b` or `a`")),
        };
        let (ma, mi) = number
            .split_once(':')
            .ok_or_else(|| format!("`{number}` is not MAJOR:MINOR"))?;
        let num = |n: &str| match n {
            "*" => Ok(None),
            _ => n
                .parse::<u32>()
                .map(Some)
                .map_err(|_| format!("`{n}` is not a number or `*`")),
        };
        let (major, minor) = (num(ma)?, num(mi)?);
        if access.is_empty() || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
            return Err(format!(
                "access `{access}` must be made of `r`, `w` and `m`"
            ));
        }
        let access = DeviceAccess {
            read: access.contains('r'),
            write: access.contains('w'),
            mknod: access.contains('m'),
        };
        Ok(DeviceRule {
            kind,
            major,
            minor,
            access,
        })
    }
}

/// An IPv4 address with prefix length.
pub fn parse_ipv4_cidr(s: &str) -> Result<(std::net::Ipv4Addr, u8), String> {
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` needs a prefix length, like 10.0.3.2/24"))?;
    let addr: std::net::Ipv4Addr = a
        .parse()
        .map_err(|_| format!("`{a}` is not an IPv4 address"))?;
    let prefix: u8 = p
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| format!("`/{p}` is not a prefix length (0 to 32)"))?;
    Ok((addr, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500000"), Ok(500000));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("99999999PiB").is_err());
    }

    #[test]
    fn memory() {
        assert_eq!(
            parse_memory_limit("50%"),
            Ok(MemoryLimit::PercentHundredths(5000))
        );
        assert_eq!(
            parse_memory_limit("512MiB"),
            Ok(MemoryLimit::Bytes(512 << 20))
        );
        assert!(parse_memory_limit("512").is_err());
        assert!(parse_memory_limit("150%").is_err());
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpu_limit("2"), Ok(CpuLimit::Count(2)));
        assert_eq!(parse_cpu_limit("3,0-1,2"), Ok(CpuLimit::Set("0-3".into())));
        assert_eq!(parse_cpu_limit("0-0"), Ok(CpuLimit::Set("0".into())));
        assert!(parse_cpu_limit("0").is_err());
        assert!(parse_cpu_limit("3-1").is_err());
        assert!(parse_cpu_limit("a-b").is_err());
    }

    #[test]
    fn allowance() {
        assert_eq!(
            parse_cpu_allowance("50%"),
            Ok(CpuAllowance {
                quota_us: 50_000,
                period_us: 100_000
            })
        );
        assert_eq!(
            parse_cpu_allowance("25ms/100ms"),
            Ok(CpuAllowance {
                quota_us: 25_000,
                period_us: 100_000
            })
        );
        assert!(parse_cpu_allowance("25/100").is_err());
        assert!(parse_cpu_allowance("0%").is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0660"), Ok(0o660));
        assert_eq!(parse_mode("755"), Ok(0o755));
        assert!(parse_mode("0968").is_err());
        assert!(parse_mode("17777").is_err());
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGPWR"), Ok(30));
        assert_eq!(parse_signal("pwr"), Ok(30));
        assert_eq!(parse_signal("SIGRTMIN+3"), Ok(37));
        assert_eq!(parse_signal("SIGRTMAX"), Ok(64));
        assert_eq!(parse_signal("15"), Ok(15));
        assert!(parse_signal("SIGKILL").is_err());
        assert!(parse_signal("SIGFOO").is_err());
        assert!(parse_signal("SIGRTMIN+31").is_err());
        assert_eq!(signal_name(37), "SIGRTMIN+3");
        assert_eq!(signal_name(30), "SIGPWR");
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("00:16:3e:aa:bb:cc"),
            Ok([0, 0x16, 0x3e, 0xaa, 0xbb, 0xcc])
        );
        assert!(parse_mac("01:16:3e:aa:bb:cc").is_err());
        assert!(parse_mac("00:16:3e:aa:bb").is_err());
        assert!(parse_mac("00:16:3e:aa:bb:zz").is_err());
        let a = derived_mac("web", "eth0");
        assert_eq!(a, derived_mac("web", "eth0"));
        assert_ne!(a, derived_mac("web", "eth1"));
        assert_eq!(&a[..3], &[0, 0x16, 0x3e]);
    }

    #[test]
    fn names() {
        assert!(check_ifname("eth0").is_ok());
        assert!(check_ifname("a-very-long-name0").is_err());
        assert!(check_ifname("et h0").is_err());
        assert!(check_ifname("eth:0").is_err());
        assert!(check_hostname("web-1").is_ok());
        assert!(check_hostname("-web").is_err());
        assert!(check_hostname("web_1").is_err());
        assert!(check_env_name("TZ").is_ok());
        assert!(check_env_name("A=B").is_err());
        assert!(parse_ipv4_cidr("10.0.3.2/24").is_ok());
        assert!(parse_ipv4_cidr("10.0.3.2").is_err());
    }
}
