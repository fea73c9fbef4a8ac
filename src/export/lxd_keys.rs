//! Which device keys envc and LXD share, and how LXD's string values read
//! as envc's typed TOML values.

/// The keys LXD accepts on a device of type `typ` (and `nictype`) that
/// mean the same in envc (`type` aside).
pub fn shared_keys(typ: &str, nictype: Option<&str>) -> &'static [&'static str] {
    match (typ, nictype) {
        ("unix-char" | "unix-block", _) => &[
            "source", "path", "major", "minor", "uid", "gid", "mode", "required",
        ],
        ("disk", _) => &[
            "source",
            "path",
            "readonly",
            "required",
            "recursive",
            "shift",
        ],
        ("nic", Some("bridged")) => &[
            "nictype",
            "parent",
            "name",
            "hwaddr",
            "mtu",
            "host_name",
            "ipv4.address",
        ],
        ("nic", Some("p2p")) => &["nictype", "name", "hwaddr", "mtu", "host_name"],
        ("nic", Some("macvlan" | "physical")) => &["nictype", "parent", "name", "hwaddr", "mtu"],
        ("nic", _) => &["nictype"],
        _ => &[],
    }
}

/// Why an envc device key has no LXD counterpart.
pub fn why_not_shared(typ: &str, key: &str) -> String {
    match (typ, key) {
        (_, "method") => "LXD decides how a node is made: it binds the host's node into an unprivileged container and makes it in a privileged one".into(),
        (_, "only_if_mounted") => "LXD has no conditional bind: with required = false it binds the path whenever it exists, mounted or not".into(),
        ("nic", "ipv4.gateway") => "LXD sets no address or route inside the container: the gateway comes from the network's DHCP server".into(),
        ("nic", "ipv4.address") => "LXD's NIC of this type takes no static address: configure it in the guest".into(),
        _ => format!("LXD's {typ} device has no `{key}`"),
    }
}

/// How an LXD device key's string reads in a TOML profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Bool,
    Int,
    /// An integer when it is one (`size = 1048576`), else a string with a unit.
    Size,
    Text,
}

pub fn key_kind(typ: &str, key: &str) -> KeyKind {
    match key {
        "readonly" | "required" | "recursive" | "shift" | "only_if_mounted" => KeyKind::Bool,
        "major" | "minor" | "uid" | "gid" | "mtu" => KeyKind::Int,
        "size" if typ == "tmpfs" => KeyKind::Size,
        _ => KeyKind::Text,
    }
}

/// LXD's booleans (`shared.IsTrue` and its opposite).
pub fn lxd_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `value` of `key` (on a `typ` device) as a TOML value, or why it cannot be one.
pub fn toml_value(typ: &str, key: &str, value: &str) -> Result<toml::Value, String> {
    match key_kind(typ, key) {
        KeyKind::Bool => lxd_bool(value)
            .map(toml::Value::Boolean)
            .ok_or_else(|| format!("`{key}` must be true or false, not {value:?}")),
        KeyKind::Int => value
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("`{key}` must be an integer, not {value:?}")),
        KeyKind::Size => Ok(match value.parse::<i64>() {
            Ok(n) => toml::Value::Integer(n),
            Err(_) => toml::Value::String(value.to_string()),
        }),
        KeyKind::Text => Ok(toml::Value::String(value.to_string())),
    }
}
