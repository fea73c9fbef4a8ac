//! Unprivileged containers on the real kernel, as root: a user namespace that
//! owns every other one, the map LXD's rules choose, an idmapped rootfs, host
//! nodes bound into /dev, a cgroup handed to the container's root. Each
//! container's init is a busybox shell script that prints what it sees as
//! `key=value` lines; the test checks them, and that the host is as it was.
//! A fresh boot id per start is checked in both modes.

mod common;

use common::{HostState, TempDir, busybox_rootfs};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_secs(2);

/// The script PID 1 runs: one `key=value` line per fact.
const SEE: &str = r#"#!/bin/sh
echo "uid_map=$(cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //' | tr '\n' ';')"
echo "gid_map=$(cat /proc/self/gid_map | tr -s ' ' | sed 's/^ //' | tr '\n' ';')"
echo "id=$(id -u):$(id -g)"
echo "capeff=$(grep CapEff /proc/self/status | cut -f2)"
echo "capbnd=$(grep CapBnd /proc/self/status | cut -f2)"
if mknod /tmp/node c 1 3 2>/dev/null; then echo mknod=made; else echo mknod=refused; fi
if echo 1 > /proc/sys/kernel/printk 2>/dev/null; then echo printk=written; else echo printk=refused; fi
echo "boot_id=$(cat /proc/sys/kernel/random/boot_id)"
if echo x > /proc/sys/kernel/random/boot_id 2>/dev/null; then echo boot_id_write=written; else echo boot_id_write=refused; fi
echo "null=$(stat -c '%t:%T' /dev/null)"
echo "kmsg=$(stat -c '%t:%T' /dev/kmsg 2>/dev/null)"
if echo hi > /dev/null; then echo null_write=ok; else echo null_write=failed; fi
echo "busybox_owner=$(stat -c '%u:%g' /bin/busybox)"
echo "cgroups=$(cut -d: -f3 /proc/self/cgroup | sort -u | tr '\n' ' ')"
echo "env=$(cat /proc/1/environ | tr '\0' ' ')"
touch /made-by-root && echo made=yes
if echo x > /opt/node 2>/dev/null; then echo rootfs_node=opened; else echo rootfs_node=refused; fi
echo "fds=$(ls /proc/self/fd | tr '\n' ' ')"
if [ -d /shifted ]; then
  if cat /shifted/secret >/dev/null 2>&1; then echo shifted_secret=read; else echo shifted_secret=refused; fi
  echo "shifted_owner=$(stat -c '%u:%g' /shifted/secret)"
  touch /shifted/made-inside && echo shifted_made=yes
fi
if [ -d /share ]; then
  if cat /share/secret >/dev/null 2>&1; then echo secret=read; else echo secret=refused; fi
  echo "share_owner=$(stat -c '%u:%g' /share/secret)"
  touch /share/made-inside && echo share_made=yes
fi
if mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null; then echo binfmt_mount=ok; else echo binfmt_mount=refused; fi
echo "devlxd=$(/sbin/probe --get /1.0 | head -n 1)"
echo "devlxd_nobody=$(/sbin/probe --get /1.0 1000 2>&1 | head -n 1)"
"#;

struct World {
    dir: TempDir,
    rootfs: PathBuf,
}

impl World {
    fn new(name: &str) -> World {
        let dir = TempDir::new(name);
        let rootfs = busybox_rootfs(dir.path());
        std::fs::write(rootfs.join("see.sh"), SEE).unwrap();
        World { dir, rootfs }
    }

    fn profile(&self, name: &str, config: &str) -> PathBuf {
        let p = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &p,
            format!(
                "name = \"{name}\"\nrootfs = \"rootfs\"\n\n[config]\n{config}\n\n[init]\ncommand = [\"/bin/sh\", \"/see.sh\"]\n"
            ),
        )
        .unwrap();
        p
    }

    fn apply_cmd(&self, profile: &Path) -> Command {
        let mut cmd = Command::new(common::envc_bin());
        cmd.arg("apply")
            .arg(profile)
            .env("ENVC_RUN_DIR", self.dir.path().join("run"))
            .env("ENVC_LOG_DIR", self.dir.path().join("log"));
        cmd
    }

    /// Runs the container to its end; its facts, and envc's stderr.
    fn see(&self, profile: &Path) -> (BTreeMap<String, String>, String) {
        let out = common::proc::run_cmd(self.apply_cmd(profile), TIMEOUT);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{}", common::proc::show(&out));
        let facts = stdout
            .lines()
            .filter_map(|l| l.trim_end_matches('\r').split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect();
        (facts, stderr)
    }
}

/// The map envc must choose by LXD's rules on this host.
fn expected_root_range() -> (u32, u32) {
    let root = envc::idmap::read_root_ids(Path::new("/etc")).expect("the host's subuid files");
    (root.uid.start, root.uid.count)
}

fn host_boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn an_unprivileged_container_sees_its_map_and_the_contract() {
    if !common::require_root("an_unprivileged_container_sees_its_map_and_the_contract") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("unpriv");
    let profile = w.profile("unpriv", "\"security.privileged\" = false");
    // A device node the image holds (a hostile one's): not a way to a host
    // device (here a harmless one, 1:3).
    std::fs::create_dir_all(w.rootfs.join("opt")).unwrap();
    common::proc::run_ok(
        &[
            "mknod",
            "-m",
            "666",
            w.rootfs.join("opt/node").to_str().unwrap(),
            "c",
            "1",
            "3",
        ],
        TIMEOUT,
    );
    let before = HostState::capture();
    let (f, stderr) = w.see(&profile);
    before.assert_restored_within(SETTLE);
    let (base, count) = expected_root_range();
    assert_eq!(f["uid_map"], format!("0 {base} {count};"), "{stderr}");
    assert_eq!(f["gid_map"].split(' ').next(), Some("0"), "{f:?}");
    assert_eq!(f["id"], "0:0", "{f:?}");
    // The full set in its own user namespace (LXD drops nothing there).
    assert_eq!(f["capeff"], f["capbnd"], "{f:?}");
    assert!(f["capbnd"].ends_with("ffffffffff"), "{f:?}");
    assert_eq!(f["mknod"], "refused", "{f:?}");
    assert_eq!(
        f["rootfs_node"], "refused",
        "nodev, and the allow-list: {f:?}"
    );
    assert_eq!(f["printk"], "refused", "a host sysctl: {f:?}");
    // The host's nodes, bound: the real device, usable.
    assert_eq!(f["null"], "1:3", "{f:?}");
    assert_eq!(f["null_write"], "ok", "{f:?}");
    // The idmapped rootfs: the host root's files are the container root's.
    assert_eq!(f["busybox_owner"], "0:0", "{f:?}");
    assert_eq!(f["made"], "yes", "{f:?}");
    // Through the idmapped mount, what the container's root makes is the
    // rootfs owner's on disk (host uid 0), never a chowned tree.
    use std::os::unix::fs::MetadataExt;
    let made = std::fs::metadata(w.rootfs.join("made-by-root")).unwrap();
    assert_eq!((made.uid(), made.gid()), (0, 0));
    // Its own cgroup, at the root of its cgroup namespace in every hierarchy.
    assert_eq!(f["cgroups"], "/", "{f:?}");
    assert_eq!(f["env"], "container=lxc", "PID 1's environment: {f:?}");
    assert_eq!(
        f["fds"], "0 1 2 3",
        "only stdio and ls's own directory: {f:?}"
    );
    // The guest API serves the container's root (the map's base on the
    // host), and no one else.
    assert_eq!(f["devlxd"], "HTTP/1.1 200 OK", "{f:?}");
    assert_eq!(f["devlxd_nobody"], "HTTP/1.1 401 Unauthorized", "{f:?}");
    assert_ne!(f["boot_id"], host_boot_id());
    assert_eq!(f["boot_id_write"], "refused", "{f:?}");
    // Linux 6.7 and later let the container mount a binfmt_misc of its own:
    // the host's is not shared then.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut v = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    if (v.next().unwrap_or(0), v.next().unwrap_or(0)) >= (6, 7) {
        assert_eq!(f["binfmt_mount"], "ok", "{f:?}");
        assert!(
            stderr.contains("/proc/sys/fs/binfmt_misc     the container can mount its own"),
            "{stderr}"
        );
    }
    assert!(stderr.contains("mode           unprivileged"), "{stderr}");
    assert!(
        !stderr.contains("warning"),
        "no privileged warning: {stderr}"
    );
    assert!(
        stderr.contains("id map         uid 0-") && stderr.contains(&base.to_string()),
        "the report shows the map: {stderr}"
    );
}

/// A disk device without `shift`: the host's files keep their host ids, so
/// the host root's 0600 decoy is unreadable inside and shows as unmapped;
/// what the container's root makes there is the map's base on the host.
#[test]
fn an_unshifted_disk_shows_host_ids_as_they_are() {
    if !common::require_root("an_unshifted_disk_shows_host_ids_as_they_are") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("unshifted");
    let share = w.dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&share, std::fs::Permissions::from_mode(0o777)).unwrap();
    let secret = share.join("secret");
    std::fs::write(&secret, "decoy\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let profile = w.profile(
        "unshifted",
        &format!(
            "\"security.privileged\" = false\n\n[devices.share]\ntype = \"disk\"\nsource = \"{}\"\npath = \"/share\"\n\n[devices.kmsg]\ntype = \"unix-char\"\npath = \"/dev/kmsg\"\nmajor = 1\nminor = 11",
            share.display()
        ),
    );
    let before = HostState::capture();
    let (f, _) = w.see(&profile);
    before.assert_restored_within(SETTLE);
    // A unix-char device with no `source`: the host's node at its path.
    assert_eq!(f["kmsg"], "1:b", "{f:?}");
    assert_eq!(f["secret"], "refused", "{f:?}");
    assert_eq!(f["share_owner"], "65534:65534", "unmapped: {f:?}");
    assert_eq!(f["share_made"], "yes", "{f:?}");
    use std::os::unix::fs::MetadataExt;
    let made = std::fs::metadata(share.join("made-inside")).unwrap();
    let (base, _) = expected_root_range();
    assert_eq!(
        made.uid(),
        base,
        "the container's root is the map's base on the host"
    );
}

/// A disk device with `shift = true`: the host's files through the
/// container's map (an idmapped mount), so the host root's 0600 file is its
/// root's, and what its root makes there is host uid 0's (the map taken
/// back), as LXD's shifted disks do.
#[test]
fn a_shifted_disk_shows_host_files_through_the_map() {
    if !common::require_root("a_shifted_disk_shows_host_files_through_the_map") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("shifted");
    let share = w.dir.path().join("shifted");
    std::fs::create_dir(&share).unwrap();
    let secret = share.join("secret");
    std::fs::write(&secret, "decoy\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let profile = w.profile(
        "shifted",
        &format!(
            "\"security.privileged\" = false\n\n[devices.shifted]\ntype = \"disk\"\nsource = \"{}\"\npath = \"/shifted\"\nshift = true",
            share.display()
        ),
    );
    let before = HostState::capture();
    let (f, stderr) = w.see(&profile);
    before.assert_restored_within(SETTLE);
    assert_eq!(f["shifted_secret"], "read", "{f:?}\n{stderr}");
    assert_eq!(f["shifted_owner"], "0:0", "{f:?}");
    assert_eq!(f["shifted_made"], "yes", "{f:?}");
    use std::os::unix::fs::MetadataExt;
    let made = std::fs::metadata(share.join("made-inside")).unwrap();
    assert_eq!(
        (made.uid(), made.gid()),
        (0, 0),
        "the container's root maps back to the owner's ids"
    );
}

#[test]
fn every_start_has_a_boot_id_of_its_own_in_both_modes() {
    if !common::require_root("every_start_has_a_boot_id_of_its_own_in_both_modes") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("bootid");
    let host = host_boot_id();
    for privileged in [true, false] {
        let profile = w.profile("bootid", &format!("\"security.privileged\" = {privileged}"));
        let (a, stderr) = w.see(&profile);
        let (b, _) = w.see(&profile);
        // A privileged start says what it is, once, and the report records it.
        assert_eq!(
            stderr.matches("warning: `bootid` is privileged").count(),
            usize::from(privileged),
            "{stderr}"
        );
        let mode = if privileged {
            "privileged"
        } else {
            "unprivileged"
        };
        assert!(
            stderr.contains(&format!("mode           {mode} (")),
            "{stderr}"
        );
        let uuid = |s: &str| s.len() == 36 && s.matches('-').count() == 4;
        assert!(uuid(&a["boot_id"]), "{a:?}");
        assert_ne!(a["boot_id"], b["boot_id"], "a new id each start");
        assert_ne!(a["boot_id"], host, "not the host's");
        assert_eq!(a["boot_id_write"], "refused", "read-only: {a:?}");
        let _ = std::fs::remove_file(w.rootfs.join("made-by-root"));
    }
}

#[test]
fn isolated_containers_started_at_once_get_ranges_of_their_own() {
    if !common::require_root("isolated_containers_started_at_once_get_ranges_of_their_own") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("isolated");
    let before = HostState::capture();
    let names = ["iso-a", "iso-b", "iso-c"];
    let procs: Vec<common::proc::Proc> = names
        .iter()
        .map(|n| {
            let p = w.profile(
                n,
                "\"security.privileged\" = false\n\"security.idmap.isolated\" = true",
            );
            common::proc::Proc::spawn(w.apply_cmd(&p))
        })
        .collect();
    let mut bases = Vec::new();
    for mut p in procs {
        let out = p.finish(TIMEOUT);
        assert_eq!(out.code(), Some(0), "{}", out.describe());
        let line = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("uid_map="))
            .unwrap_or_else(|| panic!("no map: {}", out.describe()))
            .to_string();
        let fields: Vec<u32> = line
            .trim_end_matches(';')
            .split(' ')
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!((fields[0], fields[2]), (0, 65536), "{line}");
        bases.push(fields[1]);
    }
    before.assert_restored_within(SETTLE);
    bases.sort();
    for pair in bases.windows(2) {
        assert!(pair[1] >= pair[0] + 65536, "ranges overlap: {bases:?}");
    }
    // Every range was handed back: no container holds one any more.
    let held = w.dir.path().join("run/.idmap");
    let left: Vec<_> = std::fs::read_dir(&held)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter().all(|n| n == "lock"),
        "ranges still held: {left:?}"
    );
}

#[test]
fn a_rootfs_that_cannot_be_idmapped_is_a_clear_error_and_leaves_nothing() {
    if !common::require_root("a_rootfs_that_cannot_be_idmapped_is_a_clear_error_and_leaves_nothing")
    {
        return;
    }
    let _serial = common::serial();
    let w = World::new("ramfs");
    // ramfs has no idmapped mounts: the rootfs is copied onto one.
    let mnt = w.dir.path().join("ramfs");
    std::fs::create_dir(&mnt).unwrap();
    common::proc::run_ok(
        &["mount", "-t", "ramfs", "ramfs", mnt.to_str().unwrap()],
        TIMEOUT,
    );
    let unmount = || {
        common::proc::run_ok(&["umount", mnt.to_str().unwrap()], TIMEOUT);
    };
    let copied = common::proc::run(
        &[
            "cp",
            "-a",
            w.rootfs.to_str().unwrap(),
            mnt.to_str().unwrap(),
        ],
        TIMEOUT,
    );
    if !copied.status.success() {
        unmount();
        panic!("copy: {}", common::proc::show(&copied));
    }
    let p = w.dir.path().join("onramfs.toml");
    std::fs::write(
        &p,
        "name = \"onramfs\"\nrootfs = \"ramfs/rootfs\"\n[config]\n\"security.privileged\" = false\n",
    )
    .unwrap();
    let before = HostState::capture();
    let out = common::proc::run_cmd(w.apply_cmd(&p), TIMEOUT);
    let after = HostState::capture();
    unmount();
    before.assert_unchanged(&after);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{}", common::proc::show(&out));
    assert!(
        stderr.contains("ramfs") && stderr.contains("cannot idmap"),
        "names the filesystem: {stderr}"
    );
    assert!(
        stderr.contains("\"security.privileged\" = true"),
        "says the way out: {stderr}"
    );
}

/// Runs `envc apply PROFILE` in a private mount namespace whose `/etc` is
/// a tmpfs holding only `subuid` and `subgid` with `text` (the host's own
/// files are never touched; envc is static and reads nothing else there).
fn apply_with_subids(w: &World, profile: &Path, text: &str) -> std::process::Output {
    let decoy = w.dir.path().join("subids");
    std::fs::write(&decoy, text).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t tmpfs decoy /etc && cp \"$1\" /etc/subuid && cp \"$1\" /etc/subgid \
             && shift && exec \"$@\"",
        )
        .arg("sh")
        .arg(&decoy)
        .args(w.apply_cmd(profile).get_program().to_str())
        .args(w.apply_cmd(profile).get_args())
        .env("ENVC_RUN_DIR", w.dir.path().join("run"))
        .env("ENVC_LOG_DIR", w.dir.path().join("log"));
    common::proc::run_cmd(cmd, TIMEOUT)
}

#[test]
fn subuid_files_that_give_root_no_usable_range_are_clear_errors() {
    if !common::require_root("subuid_files_that_give_root_no_usable_range_are_clear_errors") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("subids");
    let profile = w.profile("subids", "\"security.privileged\" = false");
    let before = HostState::capture();
    // A root range shorter than 65536.
    let out = apply_with_subids(&w, &profile, "root:100000:1000\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{}", common::proc::show(&out));
    assert!(
        stderr.contains("/etc/subuid") && stderr.contains("65536"),
        "{stderr}"
    );
    // No range for root, and another user holds part of LXD's fallback.
    let out = apply_with_subids(&w, &profile, "alice:1000000:65536\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{}", common::proc::show(&out));
    assert!(
        stderr.contains("/etc/subuid") && stderr.contains("alice"),
        "{stderr}"
    );
    // Each failure points at the key that asked for the map.
    assert!(stderr.contains("security.privileged"), "{stderr}");
    before.assert_restored_within(SETTLE);
}

/// A supervisor killed while its container holds an isolated range: the
/// range stays held (no other start may take it) until `envc gc` frees it.
#[test]
fn a_range_held_by_a_killed_supervisor_is_freed_by_gc() {
    if !common::require_root("a_range_held_by_a_killed_supervisor_is_freed_by_gc") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("killedrange");
    let before = HostState::capture();
    let p = w.dir.path().join("held.toml");
    std::fs::write(
        &p,
        "name = \"held\"\nrootfs = \"rootfs\"\n[config]\n\"security.privileged\" = false\n\"security.idmap.isolated\" = true\n[init]\ncommand = [\"/bin/sleep\", \"1000\"]\n",
    )
    .unwrap();
    let mut cmd = w.apply_cmd(&p);
    cmd.arg("-d");
    let out = common::proc::run_cmd(cmd, TIMEOUT);
    assert!(out.status.success(), "{}", common::proc::show(&out));
    let info: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(w.dir.path().join("run/held/info.json")).unwrap(),
    )
    .unwrap();
    assert!(
        info["idmap"]["uids"][0]["outside"].as_u64().is_some(),
        "{info:#}"
    );
    let (pid, sup) = (
        info["pid"].as_i64().unwrap() as i32,
        info["supervisor"].as_i64().unwrap() as i32,
    );
    let comm = std::fs::read_to_string(format!("/proc/{sup}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "envc", "the supervisor this test started");
    // SAFETY: kill(2) of the supervisor this test started (its PID from the
    // state it wrote, checked to be envc).
    unsafe { libc::kill(sup, libc::SIGKILL) };
    let t = std::time::Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() || Path::new(&format!("/proc/{sup}")).exists()
    {
        assert!(t.elapsed() < TIMEOUT, "PID 1 outlived its supervisor");
        std::thread::sleep(Duration::from_millis(20));
    }
    let held = w.dir.path().join("run/.idmap/held.json");
    assert!(held.exists(), "the dead container still holds its range");
    let mut gc = Command::new(common::envc_bin());
    gc.arg("gc")
        .env("ENVC_RUN_DIR", w.dir.path().join("run"))
        .env("ENVC_LOG_DIR", w.dir.path().join("log"));
    let out = common::proc::run_cmd(gc, TIMEOUT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", common::proc::show(&out));
    assert!(stdout.contains("the id range of held"), "{stdout}");
    assert!(!held.exists(), "gc freed the range");
    before.assert_restored_within(SETTLE);
}

/// The same on a pure cgroup2 host (what current distributions run; see
/// `common::cgroup2`). The container's cgroup is its root's: inside, it sees
/// its cgroup as `/`, owns `cgroup.procs`, and can make a tree of its own
/// and move into it, as systemd does.
#[test]
fn an_unprivileged_container_owns_its_cgroup_on_a_pure_cgroup2_host() {
    if !common::require_root("an_unprivileged_container_owns_its_cgroup_on_a_pure_cgroup2_host") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("purev2");
    std::fs::write(
        w.rootfs.join("cg.sh"),
        "#!/bin/sh\n\
         echo \"cg=$(grep '^0::' /proc/self/cgroup)\"\n\
         echo \"fs=$(stat -f -c %t /sys/fs/cgroup)\"\n\
         echo \"procs_owner=$(stat -c '%u:%g' /sys/fs/cgroup/cgroup.procs)\"\n\
         mkdir /sys/fs/cgroup/mine && echo $$ > /sys/fs/cgroup/mine/cgroup.procs && echo moved=yes\n\
         echo \"now=$(grep '^0::' /proc/self/cgroup)\"\n",
    )
    .unwrap();
    let p = w.dir.path().join("purev2.toml");
    std::fs::write(
        &p,
        "name = \"purev2\"\nrootfs = \"rootfs\"\n[init]\ncommand = [\"/bin/sh\", \"/cg.sh\"]\n",
    )
    .unwrap();
    let before = HostState::capture();
    let cmd = common::cgroup2::on_pure_cgroup2(&w.apply_cmd(&p));
    let out = common::proc::run_cmd(cmd, TIMEOUT);
    before.assert_restored_within(SETTLE);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", common::proc::show(&out));
    assert!(
        stderr.contains("cgroup         pure cgroup2"),
        "a pure cgroup2 layout: {stderr}"
    );
    let f: BTreeMap<&str, &str> = stdout
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').split_once('='))
        .collect();
    assert_eq!(f.get("cg"), Some(&"0::/"), "{stdout}");
    assert_eq!(f.get("fs"), Some(&"63677270"), "cgroup2's magic: {stdout}");
    assert_eq!(f.get("procs_owner"), Some(&"0:0"), "delegated: {stdout}");
    assert_eq!(f.get("moved"), Some(&"yes"), "{stdout}\n{stderr}");
    assert_eq!(f.get("now"), Some(&"0::/mine"), "{stdout}");
}
