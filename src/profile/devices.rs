//! The meaning of one layer's devices: each `[devices.NAME]` checked and
//! typed by its kind (unix nodes, disks, NICs, tmpfs, symlinks, mqueue), or
//! a mask (`type = "none"`), with its keys as the guest API lists them.

use super::convert::Cx;
use super::model::*;
use super::raw::*;
use super::spans::join;
use super::values::*;
use crate::paths::ContainerPath;
use indexmap::IndexMap;

/// Converts `devices` of `cx`'s layer, in order, onto `out`; `None` for a
/// device the layer removes.
pub(super) fn convert_devices(
    cx: &mut Cx<'_>,
    devices: &IndexMap<String, RawDevice>,
    out: &mut Vec<(String, Option<NamedDevice>)>,
) {
    for (name, dev) in devices {
        let base = join("devices", name);
        if name.is_empty() || name.contains('/') {
            cx.bad_key(
                &base,
                format!("device name `{name}` is not usable"),
                "bad name",
                Some("use letters, digits, `-`, `_` and `.`".into()),
            );
            continue;
        }
        let origin = cx.origin(&base);
        let device = match dev {
            RawDevice::None(_) => {
                out.push((name.clone(), None));
                continue;
            }
            RawDevice::UnixChar(u) | RawDevice::UnixBlock(u) => {
                let kind = if matches!(dev, RawDevice::UnixChar(_)) {
                    NodeKind::Char
                } else {
                    NodeKind::Block
                };
                unix_device(cx, &base, kind, u)
            }
            RawDevice::Disk(d) => disk_device(cx, &base, name, d),
            RawDevice::Nic(n) => nic_device(cx, &base, n),
            RawDevice::Tmpfs(t) => tmpfs_device(cx, &base, name, t),
            RawDevice::Symlink(s) => symlink_device(cx, &base, name, s),
            RawDevice::Mqueue(m) => mqueue_device(cx, &base, name, m),
        };
        if let Some(device) = device {
            let raw_keys = raw_device_keys(dev);
            out.push((
                name.clone(),
                Some(NamedDevice {
                    name: name.clone(),
                    device,
                    origin,
                    raw: raw_keys,
                    from_user: cx.layer.dir.is_some(),
                }),
            ));
        }
    }
}

/// A device's keys as LXD lists them to the guest: `type` first, then each
/// field that is set, by its TOML name, its value as a string (`"true"`,
/// `"1500"`, `"bridged"`). Made from the device's `Serialize` impl, so a
/// field added to a device type shows up here without more code.
fn raw_device_keys(dev: &RawDevice) -> crate::plan::DeviceKeys {
    let mut out = crate::plan::DeviceKeys::default();
    out.insert("type".to_string(), dev.type_name().to_string());
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(dev) {
        for (k, v) in map {
            if k == "type" {
                continue;
            }
            let s = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            out.insert(k, s);
        }
    }
    out
}

/// The `path` of device `name` (a `kind` device), checked; a problem at the
/// device when it has none.
fn device_path(
    cx: &mut Cx<'_>,
    base: &str,
    name: &str,
    kind: &str,
    path: Option<&str>,
    help: Option<&str>,
) -> Option<ContainerPath> {
    let key = join(base, "path");
    match path {
        Some(p) => cx.container_path(&key, p),
        None => {
            cx.needs(
                base,
                &[&key],
                format!("{kind} device `{name}` needs `path`"),
                "`path` missing",
                help.map(str::to_string),
            );
            None
        }
    }
}

/// `disk`: a bind mount of a host path.
fn disk_device(cx: &mut Cx<'_>, base: &str, name: &str, d: &RawDisk) -> Option<Device> {
    let key = |k: &str| join(base, k);
    let path = device_path(
        cx,
        base,
        name,
        "disk",
        d.path.as_deref(),
        Some("where it appears in the container, e.g. path = \"/srv\""),
    );
    let source = match &d.source {
        Some(s) if !s.starts_with('/') => {
            cx.bad(
                &key("source"),
                format!("`source` `{s}` must be an absolute host path"),
                "not absolute",
                None,
            );
            None
        }
        Some(s) => cx.host_path(&key("source"), s),
        None => {
            cx.needs(
                base,
                &[&key("source")],
                format!("disk device `{name}` needs `source`"),
                "`source` missing",
                Some("the host path to bind, e.g. source = \"/srv/data\"".into()),
            );
            None
        }
    };
    if d.shift == Some(true) && d.readonly == Some(true) {
        cx.bad(
            &key("readonly"),
            "a `shift = true` disk cannot be read-only: the container's root would see the host's root-owned files as its own and could remount it read-write".into(),
            "with shift",
            Some("drop `shift` (host files keep their host ids) or `readonly`".into()),
        );
        return None;
    }
    match (path, source) {
        (Some(path), Some(source)) => Some(Device::Disk {
            path,
            source,
            readonly: d.readonly.unwrap_or(false),
            required: d.required.unwrap_or(true),
            recursive: d.recursive.unwrap_or(false),
            only_if_mounted: d.only_if_mounted.unwrap_or(false),
            shift: d.shift.unwrap_or(false),
        }),
        _ => None,
    }
}

/// `tmpfs`: an extra tmpfs mount.
fn tmpfs_device(cx: &mut Cx<'_>, base: &str, name: &str, t: &RawTmpfs) -> Option<Device> {
    let key = |k: &str| join(base, k);
    let path = device_path(cx, base, name, "tmpfs", t.path.as_deref(), None);
    let size = match &t.size {
        None => Some(None),
        Some(RawSize::Bytes(b)) if *b > 0 => Some(Some(*b as u64)),
        Some(RawSize::Bytes(_)) => {
            cx.bad(
                &key("size"),
                "the size must be above 0".into(),
                "not a size",
                None,
            );
            None
        }
        Some(RawSize::Text(s)) => match parse_size(s) {
            Ok(b) => Some(Some(b)),
            Err(e) => {
                cx.bad(&key("size"), format!("`size`: {e}"), "not a size", None);
                None
            }
        },
    };
    let mode = match &t.mode {
        Some(m) => cx.mode(&key("mode"), m),
        None => Some(0o1777),
    };
    match (path, size, mode) {
        (Some(path), Some(size), Some(mode)) => Some(Device::Tmpfs {
            path,
            size,
            mode,
            readonly: t.readonly.unwrap_or(false),
        }),
        _ => None,
    }
}

/// `symlink`: a symbolic link.
fn symlink_device(cx: &mut Cx<'_>, base: &str, name: &str, s: &RawSymlink) -> Option<Device> {
    let key = |k: &str| join(base, k);
    let path = device_path(cx, base, name, "symlink", s.path.as_deref(), None);
    let target = match &s.target {
        Some(t) if t.is_empty() || t.contains('\0') => {
            cx.bad(
                &key("target"),
                "`target` must not be empty".into(),
                "empty",
                None,
            );
            None
        }
        Some(t) => Some(t.clone()),
        None => {
            cx.needs(
                base,
                &[&key("target")],
                format!("symlink device `{name}` needs `target`"),
                "`target` missing",
                None,
            );
            None
        }
    };
    match (path, target) {
        (Some(path), Some(target)) => Some(Device::Symlink { path, target }),
        _ => None,
    }
}

/// `mqueue`: a POSIX message queue filesystem.
fn mqueue_device(cx: &mut Cx<'_>, base: &str, name: &str, m: &RawMqueue) -> Option<Device> {
    device_path(cx, base, name, "mqueue", m.path.as_deref(), None)
        .map(|path| Device::Mqueue { path })
}

fn unix_device(cx: &mut Cx<'_>, base: &str, kind: NodeKind, u: &RawUnixDevice) -> Option<Device> {
    let key = |k: &str| join(base, k);
    let mut ok = true;
    let source = match &u.source {
        Some(s) if !s.starts_with('/') => {
            cx.bad(
                &key("source"),
                format!("`source` `{s}` must be an absolute host path"),
                "not absolute",
                None,
            );
            ok = false;
            None
        }
        Some(s) => {
            let p = cx.host_path(&key("source"), s);
            ok &= p.is_some();
            p
        }
        None => None,
    };
    let path_text = u.path.as_deref().or(u.source.as_deref());
    let path = match (path_text, u.path.is_some()) {
        (Some(p), true) => cx.container_path(&key("path"), p),
        (Some(p), false) => ContainerPath::new(p).ok(),
        (None, _) => {
            cx.needs(
                base,
                &[&key("path"), &key("source")],
                "a unix device needs `path` (or `source`)".into(),
                "`path` missing",
                None,
            );
            None
        }
    };
    if let Some(p) = &path
        && !p.starts_with(&ContainerPath::new("/dev").expect("static path"))
    {
        let k = if u.path.is_some() {
            key("path")
        } else {
            key("source")
        };
        cx.bad(
            &k,
            format!("device node `{p}` must be under /dev"),
            "not under /dev",
            None,
        );
        ok = false;
    }
    let number = match (u.major, u.minor) {
        (Some(ma), Some(mi)) => {
            if !(0..4096).contains(&ma) {
                cx.bad(
                    &key("major"),
                    format!("major {ma} is out of range (0 to 4095)"),
                    "out of range",
                    None,
                );
                ok = false;
            }
            if !(0..1 << 20).contains(&mi) {
                cx.bad(
                    &key("minor"),
                    format!("minor {mi} is out of range (0 to 1048575)"),
                    "out of range",
                    None,
                );
                ok = false;
            }
            Some((ma as u32, mi as u32))
        }
        (Some(_), None) => {
            cx.needs(
                &key("major"),
                &[&key("minor")],
                "`major` needs `minor` too".into(),
                "`minor` missing",
                None,
            );
            ok = false;
            None
        }
        (None, Some(_)) => {
            cx.needs(
                &key("minor"),
                &[&key("major")],
                "`minor` needs `major` too".into(),
                "`major` missing",
                None,
            );
            ok = false;
            None
        }
        (None, None) => None,
    };
    let method = u.method.unwrap_or(NodeMethod::Mknod);
    if number.is_none() && u.source.is_none() && u.major.is_none() && u.minor.is_none() {
        cx.needs(
            base,
            &[&key("major"), &key("minor"), &key("source")],
            "a unix device needs `major` and `minor`, or a host `source` node".into(),
            "no device number",
            Some("e.g. major = 10, minor = 200, or source = \"/dev/net/tun\"".into()),
        );
        ok = false;
    }
    if method == NodeMethod::Bind && u.source.is_none() {
        if !cx.layer.spans.pruned(&key("source")) {
            cx.bad(
                &key("method"),
                "`method = \"bind\"` needs a host `source` node to bind".into(),
                "no source",
                None,
            );
        }
        ok = false;
    }
    if method == NodeMethod::Bind {
        // A bind shows the host's node as it is: its mode and owner.
        for k in ["mode", "uid", "gid"] {
            let given = match k {
                "mode" => u.mode.is_some(),
                "uid" => u.uid.is_some(),
                _ => u.gid.is_some(),
            };
            if given {
                cx.bad_key(
                    &key(k),
                    format!("`{k}` has no effect with `method = \"bind\"`"),
                    "not applied",
                    Some("a node bound from the host keeps the host node's mode and owner; remove it, or use method = \"mknod\"".into()),
                );
                ok = false;
            }
        }
    }
    let mode = match &u.mode {
        Some(m) => cx.mode(&key("mode"), m),
        None => Some(0o660),
    };
    let (path, mode) = (path?, mode?);
    if !ok {
        return None;
    }
    Some(Device::Unix {
        kind,
        path,
        source,
        number,
        mode,
        uid: u.uid.unwrap_or(0) as u32,
        gid: u.gid.unwrap_or(0) as u32,
        required: u.required.unwrap_or(true),
        method,
    })
}

fn nic_device(cx: &mut Cx<'_>, base: &str, n: &RawNic) -> Option<Device> {
    let key = |k: &str| join(base, k);
    let mut ok = true;
    let Some(nictype) = n.nictype else {
        cx.needs(
            base,
            &[&key("nictype")],
            "a nic needs `nictype`".into(),
            "`nictype` missing",
            Some("one of `p2p`, `bridged`, `macvlan`, `physical`".into()),
        );
        return None;
    };
    let needs_parent = matches!(
        nictype,
        NicType::Bridged | NicType::Macvlan | NicType::Physical
    );
    if needs_parent && n.parent.is_none() {
        if !cx.layer.spans.pruned(&key("parent")) {
            cx.bad(
                &key("nictype"),
                format!("a `{}` nic needs `parent`", nictype_name(nictype)),
                "`parent` missing",
                Some(match nictype {
                    NicType::Bridged => "the host bridge to join, e.g. parent = \"br0\"".into(),
                    _ => "the host interface, e.g. parent = \"eth1\"".into(),
                }),
            );
        }
        ok = false;
    }
    if !needs_parent && n.parent.is_some() {
        cx.bad_key(
            &key("parent"),
            "a `p2p` nic takes no `parent`".into(),
            "not used",
            Some("use nictype = \"bridged\" to join a bridge".into()),
        );
        ok = false;
    }
    for (k, v) in [
        ("parent", &n.parent),
        ("name", &n.name),
        ("host_name", &n.host_name),
    ] {
        if let Some(v) = v
            && let Err(e) = check_ifname(v)
        {
            cx.bad(
                &key(k),
                format!("`{k}`: {e}"),
                "invalid interface name",
                None,
            );
            ok = false;
        }
    }
    if n.host_name.is_some() && matches!(nictype, NicType::Macvlan | NicType::Physical) {
        cx.bad_key(
            &key("host_name"),
            format!("a `{}` nic has no host side to name", nictype_name(nictype)),
            "not used",
            None,
        );
        ok = false;
    }
    let hwaddr = match &n.hwaddr {
        Some(h) => match parse_mac(h) {
            Ok(m) => Some(m),
            Err(e) => {
                cx.bad(
                    &key("hwaddr"),
                    format!("`hwaddr`: {e}"),
                    "invalid MAC",
                    None,
                );
                ok = false;
                None
            }
        },
        None => None,
    };
    let ipv4_address = match &n.ipv4_address {
        Some(a) => match parse_ipv4_cidr(a) {
            Ok(v) => Some(v),
            Err(e) => {
                cx.bad(
                    &key("ipv4.address"),
                    format!("`ipv4.address`: {e}"),
                    "invalid address",
                    None,
                );
                ok = false;
                None
            }
        },
        None => None,
    };
    let ipv4_gateway = match &n.ipv4_gateway {
        Some(g) => match g.parse::<std::net::Ipv4Addr>() {
            Ok(v) => Some(v),
            Err(_) => {
                cx.bad(
                    &key("ipv4.gateway"),
                    format!("`ipv4.gateway`: `{g}` is not an IPv4 address"),
                    "invalid address",
                    None,
                );
                ok = false;
                None
            }
        },
        None => None,
    };
    if n.ipv4_gateway.is_some() && n.ipv4_address.is_none() {
        cx.needs(
            &key("ipv4.gateway"),
            &[&key("ipv4.address")],
            "`ipv4.gateway` needs `ipv4.address`".into(),
            "no address",
            Some("a static gateway goes with a static address, e.g. \"ipv4.address\" = \"10.0.3.2/24\"".into()),
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    Some(Device::Nic(Nic {
        nictype,
        parent: n.parent.clone(),
        name: n.name.clone(),
        hwaddr,
        mtu: n.mtu.map(|m| m as u32),
        host_name: n.host_name.clone(),
        ipv4_address,
        ipv4_gateway,
    }))
}

/// A nictype as a profile spells it.
pub fn nictype_name(t: NicType) -> &'static str {
    match t {
        NicType::P2p => "p2p",
        NicType::Bridged => "bridged",
        NicType::Macvlan => "macvlan",
        NicType::Physical => "physical",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device's keys for the guest API: `type` first, then each key that
    /// is set, in the type's field order, every value spelled as a string.
    #[test]
    fn device_keys_are_strings_in_field_order() {
        let text = r#"
            [a]
            type = "unix-char"
            source = "/dev/fuse"
            major = 10
            minor = 229
            mode = "0666"
            gid = 5
            required = false
            method = "bind"
            [c]
            type = "nic"
            nictype = "bridged"
            parent = "br0"
            mtu = 1500
            "ipv4.address" = "10.0.3.2/24"
            "ipv4.gateway" = "10.0.3.1"
            host_name = "veth-c"
            [d]
            type = "tmpfs"
            path = "/run/x"
            size = 65536
            [e]
            type = "tmpfs"
            path = "/run/y"
            size = "64MiB"
            [g]
            type = "mqueue"
        "#;
        let devices: IndexMap<String, RawDevice> = toml::from_str(text).unwrap();
        let keys = |name: &str| {
            let keys = raw_device_keys(&devices[name]);
            keys.into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            keys("a"),
            "type=unix-char source=/dev/fuse major=10 minor=229 mode=0666 gid=5 required=false method=bind"
        );
        assert_eq!(
            keys("c"),
            "type=nic nictype=bridged parent=br0 mtu=1500 host_name=veth-c ipv4.address=10.0.3.2/24 ipv4.gateway=10.0.3.1"
        );
        assert_eq!(keys("d"), "type=tmpfs path=/run/x size=65536");
        assert_eq!(keys("e"), "type=tmpfs path=/run/y size=64MiB");
        assert_eq!(keys("g"), "type=mqueue");
    }
}
