//! A minimal busybox root filesystem with the probe as init.

use super::probe_binary;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

/// Debian's busybox-static installs a static busybox here.
pub const BUSYBOX: &str = "/bin/busybox";

/// Applets linked as `bin/<applet> -> busybox`. `bin/init` is busybox's init: boot it
/// with `set_init(rootfs, "/bin/init")` (it runs as init because argv[0] ends in "init").
pub const BIN_APPLETS: &[&str] = &[
    "sh", "ls", "cat", "mount", "grep", "echo", "sleep", "true", "false", "ps", "stat", "readlink",
    "id", "hostname", "env", "mkdir", "test", "head", "init",
];

/// Applets linked as `sbin/<applet> -> ../bin/busybox`.
pub const SBIN_APPLETS: &[&str] = &["poweroff", "reboot", "halt"];

const DIRS: &[&str] = &[
    "bin", "sbin", "etc", "dev", "proc", "sys", "tmp", "root", "run", "var", "usr/bin",
];

/// Whether `path` is an ELF64 little-endian file without a PT_INTERP program header
/// (statically linked, runs without the host's dynamic loader inside any rootfs).
pub fn is_static_elf(path: &Path) -> Result<bool, String> {
    let data = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        data.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        data.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    if data.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(format!("{} is not an ELF file", path.display()));
    }
    if data.get(4) != Some(&2) || data.get(5) != Some(&1) {
        return Err(format!("{} is not ELF64 little-endian", path.display()));
    }
    let bad = || format!("{}: truncated ELF header", path.display());
    let phoff = u64_at(0x20).ok_or_else(bad)? as usize;
    let phentsize = u16_at(0x36).ok_or_else(bad)? as usize;
    let phnum = u16_at(0x38).ok_or_else(bad)? as usize;
    for i in 0..phnum {
        const PT_INTERP: u32 = 3;
        if u32_at(phoff + i * phentsize).ok_or_else(bad)? == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

fn check_busybox() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let p = Path::new(BUSYBOX);
        if !p.exists() {
            panic!("{BUSYBOX} is missing: apt-get install busybox-static");
        }
        match is_static_elf(p) {
            Ok(true) => {}
            Ok(false) => panic!(
                "{BUSYBOX} is dynamically linked; the test rootfs needs a static one: \
                 apt-get install busybox-static"
            ),
            Err(e) => panic!("{e}: apt-get install busybox-static"),
        }
    });
}

fn ctx<T>(r: io::Result<T>, what: &str, p: &Path) -> T {
    r.unwrap_or_else(|e| panic!("{what} {}: {e}", p.display()))
}

/// Builds a minimal rootfs at `dir/rootfs` and returns its path: the usual top-level
/// directories (empty /dev, /proc, /sys), a static busybox with applet symlinks
/// ([`BIN_APPLETS`], [`SBIN_APPLETS`]), the probe at `/sbin/probe`, `/sbin/init ->
/// /sbin/probe` (absolute, so it only resolves correctly inside the rootfs; change it
/// with [`set_init`]), and etc/passwd, etc/group (root, tty=5), etc/hostname.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    check_busybox();
    let root = dir.join("rootfs");
    for d in DIRS {
        let p = root.join(d);
        ctx(std::fs::create_dir_all(&p), "create", &p);
    }
    for (d, mode) in [("tmp", 0o1777), ("root", 0o700)] {
        let p = root.join(d);
        ctx(
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)),
            "chmod",
            &p,
        );
    }
    let bb = root.join("bin/busybox");
    ctx(std::fs::copy(BUSYBOX, &bb), "copy busybox to", &bb);
    ctx(
        std::fs::set_permissions(&bb, std::fs::Permissions::from_mode(0o755)),
        "chmod",
        &bb,
    );
    for a in BIN_APPLETS {
        let l = root.join("bin").join(a);
        ctx(symlink("busybox", &l), "symlink", &l);
    }
    for a in SBIN_APPLETS {
        let l = root.join("sbin").join(a);
        ctx(symlink("../bin/busybox", &l), "symlink", &l);
    }
    let probe = root.join("sbin/probe");
    ctx(
        std::fs::copy(probe_binary(), &probe),
        "copy probe to",
        &probe,
    );
    ctx(
        std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)),
        "chmod",
        &probe,
    );
    set_init(&root, "/sbin/probe");
    for (f, text) in [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        ("etc/group", "root:x:0:\ntty:x:5:\n"),
        ("etc/hostname", "envc-test\n"),
    ] {
        let p = root.join(f);
        ctx(std::fs::write(&p, text), "write", &p);
    }
    root
}

/// Points `rootfs/sbin/init` at `target` (a symlink; absolute targets are resolved inside
/// the rootfs by envc, e.g. "/bin/init" for busybox init, "/sbin/probe").
pub fn set_init(rootfs: &Path, target: &str) {
    let l = rootfs.join("sbin/init");
    match std::fs::remove_file(&l) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => panic!("remove {}: {e}", l.display()),
    }
    ctx(symlink(target, &l), "symlink", &l);
}

fn push_components(path: &Path, out: &mut Vec<OsString>) {
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s.to_os_string()),
            Component::ParentDir => out.push("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

/// Resolves `path` as a process chrooted into `rootfs` would: every symlink (including
/// the last component) is followed, absolute targets and `..` stay inside the rootfs.
/// Returns the host path of the result; an error if a component is missing.
pub fn resolve_in_rootfs(rootfs: &Path, path: &Path) -> io::Result<PathBuf> {
    let mut first = Vec::new();
    push_components(path, &mut first);
    let mut pending: VecDeque<OsString> = first.into();
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(c) = pending.pop_front() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        let mut host = rootfs.to_path_buf();
        host.extend(&resolved);
        host.push(&c);
        let md = std::fs::symlink_metadata(&host)?;
        if md.file_type().is_symlink() {
            links += 1;
            if links > 40 {
                return Err(io::Error::other(format!(
                    "too many symlinks at {}",
                    host.display()
                )));
            }
            let target = std::fs::read_link(&host)?;
            if target.is_absolute() {
                resolved.clear();
            }
            let mut t = Vec::new();
            push_components(&target, &mut t);
            for c in t.into_iter().rev() {
                pending.push_front(c);
            }
        } else {
            resolved.push(c);
        }
    }
    let mut out = rootfs.to_path_buf();
    out.extend(&resolved);
    Ok(out)
}
