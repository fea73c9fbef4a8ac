//! The guest API through the real product (spec §6, issue 7): a Debian 12 rootfs with
//! systemd and Debian's cloud-init (scripts/cloudinit-rootfs.sh) booted with
//! `envc apply -d`, whose cloud-init LXD datasource must read meta-data, config and
//! devices from envc's /dev/lxd/sock and act on them; then every endpoint asked from
//! inside the container by python3 (which cloud-init brings) over AF_UNIX.
//!
//! envc runs inside a network namespace the test makes (`nsenter --net=...`), so the
//! container's p2p NIC has its host side there, never on the real host. Commands inside
//! run with `nsenter -t PID1 -a`. Durations are printed (run with --nocapture).
//!
//! Needs debootstrap and network access to a Debian mirror the first time (the rootfs
//! is cached in /var/cache/envc-test/bookworm-cloudinit; `ENVC_CLOUDINIT_ROOTFS`
//! points elsewhere).

mod common;

use common::proc::{run, run_cmd, run_ok, show};
use common::{HostState, TempDir, busybox_rootfs};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The longest cloud-init may take to finish after envc returned.
const CLOUD_INIT_TIMEOUT: Duration = Duration::from_secs(90);
const CMD_TIMEOUT: Duration = Duration::from_secs(20);

// ------------------------------------------------------------------ commands

fn ok(argv: &[&str]) -> String {
    run_ok(argv, CMD_TIMEOUT)
}

// ------------------------------------------------------------------ the test's netns

/// A network namespace made with `ip netns add`, deleted (with its links) on drop.
struct TestNetns {
    name: String,
}

static NS_COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestNetns {
    fn new() -> TestNetns {
        let name = format!(
            "envct-gn-ci-{}-{}",
            std::process::id(),
            NS_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        ok(&["ip", "netns", "add", &name]);
        let ns = TestNetns { name };
        ok(&["ip", "-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    fn links(&self) -> BTreeSet<String> {
        let text = ok(&["ip", "-n", &self.name, "-j", "link", "show"]);
        let v: Value = serde_json::from_str(&text).expect("ip -j link show");
        v.as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let o = run(&["ip", "netns", "del", &self.name], CMD_TIMEOUT);
        if !o.status.success() {
            eprintln!("!!!! cannot delete netns {}: {}", self.name, show(&o));
        }
    }
}

// ------------------------------------------------------------------ the rootfs

/// The cached cloud-init rootfs (built by scripts/cloudinit-rootfs.sh if missing),
/// and how long getting it took.
fn cloudinit_rootfs() -> (PathBuf, Duration) {
    let dir = std::env::var_os("ENVC_CLOUDINIT_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/envc-test/bookworm-cloudinit"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cloudinit-rootfs.sh");
    let start = Instant::now();
    let o = run(
        &[script.to_str().unwrap(), dir.to_str().unwrap()],
        Duration::from_secs(1200),
    );
    assert!(
        o.status.success(),
        "scripts/cloudinit-rootfs.sh failed (needs debootstrap and a Debian mirror) {}",
        show(&o)
    );
    eprint!("{}", String::from_utf8_lossy(&o.stdout));
    (dir, start.elapsed())
}

// ------------------------------------------------------------------ a detached container

/// A container started with `envc apply -d`; stopped (forcibly) on drop if the test
/// did not stop it.
struct Detached {
    name: String,
    run_dir: PathBuf,
    log_dir: PathBuf,
    stopped: bool,
}

impl Detached {
    fn envc(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(common::envc_bin());
        cmd.args(args)
            .env("ENVC_RUN_DIR", &self.run_dir)
            .env("ENVC_LOG_DIR", &self.log_dir);
        cmd
    }

    /// PID 1 as the host sees it (from the state directory's info.json).
    fn pid(&self) -> i32 {
        let p = self.run_dir.join(&self.name).join("info.json");
        let text =
            std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        let v: Value = serde_json::from_str(&text).unwrap();
        v["pid"].as_i64().expect("pid in info.json") as i32
    }

    fn stop(&mut self) -> Output {
        self.stopped = true;
        run_cmd(
            self.envc(&["stop", &self.name, "--timeout", "30"]),
            Duration::from_secs(60),
        )
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if !self.stopped {
            let o = run_cmd(
                self.envc(&["stop", &self.name, "--force"]),
                Duration::from_secs(60),
            );
            eprintln!("(cleanup) envc stop --force {}: {}", self.name, show(&o));
        }
    }
}

/// Runs `argv` in every namespace of the container whose PID 1 is `pid`.
fn inside(pid: i32, argv: &[&str], timeout: Duration) -> Output {
    let t = pid.to_string();
    let mut v = vec!["nsenter", "-t", &t, "-a"];
    v.extend_from_slice(argv);
    run(&v, timeout)
}

fn inside_ok(pid: i32, argv: &[&str]) -> String {
    let o = inside(pid, argv, CMD_TIMEOUT);
    assert!(o.status.success(), "inside: {argv:?} failed {}", show(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn read_inside(pid: i32, path: &str) -> String {
    inside_ok(pid, &["/bin/cat", path])
}

/// A tiny dev-lxd client for python3 inside the container: argv[1] is a JSON list of
/// [method, path, body-or-null]; argv[2], if given, a uid to switch to first. Prints
/// {"responses": [{status, type, body}], "sock_mode": st_mode}.
const CLIENT: &str = r#"
import http.client, json, os, socket, sys
reqs = json.loads(sys.argv[1])
if len(sys.argv) > 2:
    uid = int(sys.argv[2])
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
class Conn(http.client.HTTPConnection):
    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect("/dev/lxd/sock")
        self.sock = s
out = []
for method, path, body in reqs:
    c = Conn("lxd", timeout=5)
    c.request(method, path, body=None if body is None else body.encode())
    r = c.getresponse()
    out.append({"status": r.status, "type": r.getheader("Content-Type"),
                "body": r.read().decode()})
    c.close()
print(json.dumps({"responses": out, "sock_mode": os.stat("/dev/lxd/sock").st_mode}))
"#;

fn devlxd(pid: i32, reqs: &[(&str, &str, Option<&str>)], uid: Option<u32>) -> Value {
    let reqs_json = serde_json::to_string(
        &reqs
            .iter()
            .map(|(m, p, b)| json!([m, p, b]))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let uid_s = uid.map(|u| u.to_string());
    let mut argv = vec!["/usr/bin/python3", "-c", CLIENT, &reqs_json];
    if let Some(u) = &uid_s {
        argv.push(u);
    }
    let text = inside_ok(pid, &argv);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("client output: {e}\n{text}"))
}

/// One request; returns (status, content type, body).
fn get(pid: i32, method: &str, path: &str, body: Option<&str>) -> (u64, String, String) {
    let v = devlxd(pid, &[(method, path, body)], None);
    let r = &v["responses"][0];
    (
        r["status"].as_u64().unwrap(),
        r["type"].as_str().unwrap_or("").to_string(),
        r["body"].as_str().unwrap().to_string(),
    )
}

// ------------------------------------------------------------------ the tests

const USER_DATA: &str = "#cloud-config
write_files:
  - path: /root/gn-write-files.txt
    content: |
      written by cloud-init from envc's socket
runcmd:
  - [ touch, /root/gn-runcmd-ran ]
";

const VENDOR_DATA: &str = "#cloud-config
bootcmd:
  - [ touch, /root/gn-vendor-bootcmd-ran ]
";

const META_DATA: &str = "envc-test-meta: gn-meta-42\n";

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

#[test]
fn cloud_init_reads_the_guest_api_and_every_endpoint_answers() {
    if !common::require_root("cloud_init_reads_the_guest_api_and_every_endpoint_answers") {
        return;
    }
    cloud_init_run("gn-cloudinit", true);
}

/// The same from an unprivileged container: its root is the map's base on
/// the host, and the guest API serves it.
#[test]
fn cloud_init_reads_the_guest_api_of_an_unprivileged_container() {
    if !common::require_root("cloud_init_reads_the_guest_api_of_an_unprivileged_container") {
        return;
    }
    cloud_init_run("gn-cloudinit-u", false);
}

fn cloud_init_run(name: &str, privileged: bool) {
    let _serial = common::serial();
    let (cache, t_rootfs) = cloudinit_rootfs();
    let tmp = TempDir::new(name);
    let t = Instant::now();
    let rootfs = tmp.path().join("rootfs");
    // A copy per run (the guest writes to its rootfs); slow on a busy disk.
    let o = run(
        &[
            "cp",
            "-a",
            "--reflink=auto",
            cache.to_str().unwrap(),
            rootfs.to_str().unwrap(),
        ],
        Duration::from_secs(600),
    );
    assert!(o.status.success(), "copying the rootfs failed {}", show(&o));
    let t_copy = t.elapsed();
    let ns = TestNetns::new();
    let ns_before = ns.links();
    let host = HostState::capture();

    let profile = tmp.path().join(format!("{name}.toml"));
    std::fs::write(
        &profile,
        format!(
            "name = \"{name}\"\nrootfs = \"rootfs\"\n\n[config]\n\
             \"security.privileged\" = {privileged}\n\
             \"user.meta-data\" = {}\n\"cloud-init.user-data\" = {}\n\
             \"cloud-init.vendor-data\" = {}\n\"user.foo\" = \"bar\"\n\n\
             [devices.eth0]\ntype = \"nic\"\nnictype = \"p2p\"\n",
            toml_str(META_DATA),
            toml_str(USER_DATA),
            toml_str(VENDOR_DATA)
        ),
    )
    .unwrap();
    let report_path = tmp.path().join("report.json");
    let mut c = Detached {
        name: name.to_string(),
        run_dir: tmp.path().join("run"),
        log_dir: tmp.path().join("log"),
        stopped: false,
    };

    // --- boot
    let t0 = Instant::now();
    let mut apply = Command::new("nsenter");
    apply
        .arg(format!("--net=/run/netns/{}", ns.name))
        .arg(common::envc_bin())
        .args(["apply", "-d"])
        .arg(&profile)
        .arg("--report")
        .arg(&report_path)
        .env("ENVC_RUN_DIR", &c.run_dir)
        .env("ENVC_LOG_DIR", &c.log_dir);
    let o = run_cmd(apply, Duration::from_secs(60));
    let t_apply = t0.elapsed();
    assert!(o.status.success(), "envc apply -d failed {}", show(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), name);
    let pid = c.pid();
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).expect("report JSON");
    let nic_step = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["op"] == "CreateNic")
        .expect("a CreateNic step");
    assert_eq!(nic_step["status"], "done", "{nic_step}");

    // --- cloud-init, bounded
    let o = inside(
        pid,
        &["/usr/bin/cloud-init", "status", "--wait", "--long"],
        CLOUD_INIT_TIMEOUT,
    );
    let t_cloud_init = t0.elapsed();
    let status = String::from_utf8_lossy(&o.stdout).into_owned();
    let log = inside(pid, &["/bin/cat", "/var/log/cloud-init.log"], CMD_TIMEOUT);
    assert!(
        o.status.success() && status.contains("status: done"),
        "cloud-init did not finish cleanly {}\n--- cloud-init.log (tail):\n{}",
        show(&o),
        common::tail(&String::from_utf8_lossy(&log.stdout), 6000)
    );

    // Which datasource, and no errors.
    let result: Value = serde_json::from_str(&read_inside(pid, "/run/cloud-init/result.json"))
        .expect("result.json");
    assert_eq!(result["v1"]["datasource"], "DataSourceLXD", "{result:#}");
    assert_eq!(result["v1"]["errors"], json!([]), "{result:#}");
    // What it read from our socket.
    let idata: Value =
        serde_json::from_str(&read_inside(pid, "/run/cloud-init/instance-data.json"))
            .expect("instance-data.json");
    let v1 = &idata["v1"];
    assert_eq!(v1["cloud_name"], "lxd", "{v1:#}");
    assert_eq!(v1["platform"], "lxd", "{v1:#}");
    assert!(
        v1["subplatform"]
            .as_str()
            .is_some_and(|s| s.contains("/dev/lxd/sock")),
        "{v1:#}"
    );
    assert_eq!(v1["instance_id"], name, "{v1:#}");
    assert_eq!(v1["local_hostname"], name, "{v1:#}");
    let ds = &idata["ds"];
    assert_eq!(
        ds["meta-data"],
        format!("instance-id: {name}\nlocal-hostname: {name}\n{META_DATA}"),
        "{ds:#}"
    );
    assert_eq!(ds["config"]["user.foo"], "bar", "{ds:#}");
    assert_eq!(ds["config"]["cloud-init.user-data"], USER_DATA, "{ds:#}");
    assert_eq!(
        ds["config"]["cloud-init.vendor-data"], VENDOR_DATA,
        "{ds:#}"
    );
    assert_eq!(
        read_inside(pid, "/var/lib/cloud/instance/user-data.txt"),
        USER_DATA
    );
    assert_eq!(
        read_inside(pid, "/var/lib/cloud/instance/vendor-data.txt"),
        VENDOR_DATA
    );
    // The NIC from /1.0/devices, and the network config cloud-init made from it.
    let mac = read_inside(pid, "/sys/class/net/eth0/address");
    let dev = &ds["devices"]["eth0"];
    assert_eq!(dev["type"], "nic", "{ds:#}");
    assert_eq!(dev["nictype"], "p2p", "{ds:#}");
    assert_eq!(dev["name"], "eth0", "{ds:#}");
    assert_eq!(dev["hwaddr"], mac.trim(), "{ds:#}");
    // 22.4 takes the devices branch (a NIC in /1.0/devices) instead of its fallback,
    // and renders DHCP on the active NIC for systemd-networkd.
    let log = read_inside(pid, "/var/log/cloud-init.log");
    assert!(
        log.contains("LXD datasource generating network from discovered active device: eth0")
            && !log.contains("LXD datasource generating network config using fallback")
            && log
                .lines()
                .any(|l| l.contains("Applying network configuration from ds")
                    && l.contains("'name': 'eth0'")
                    && l.contains("'type': 'dhcp'")),
        "cloud-init did not make network config for eth0 from /1.0/devices:\n{}",
        common::tail(&log, 6000)
    );
    let networkd = read_inside(pid, "/etc/systemd/network/10-cloud-init-eth0.network");
    assert!(
        networkd.contains("Name=eth0") && networkd.contains("DHCP="),
        "{networkd}"
    );
    // What the user-data and vendor-data asked for.
    assert_eq!(
        read_inside(pid, "/root/gn-write-files.txt"),
        "written by cloud-init from envc's socket\n"
    );
    inside_ok(pid, &["/usr/bin/test", "-f", "/root/gn-runcmd-ran"]);
    inside_ok(pid, &["/usr/bin/test", "-f", "/root/gn-vendor-bootcmd-ran"]);

    // --- every endpoint, from inside, as root
    let sock = devlxd(pid, &[("GET", "/", None)], None);
    assert_eq!(
        sock["sock_mode"].as_u64().unwrap() & 0o170777,
        0o140666,
        "/dev/lxd/sock is not a socket with mode 0666"
    );
    assert_eq!(sock["responses"][0]["status"], 200);
    assert_eq!(
        serde_json::from_str::<Value>(sock["responses"][0]["body"].as_str().unwrap()).unwrap(),
        json!(["/1.0"])
    );
    let (st, ty, body) = get(pid, "GET", "/1.0", None);
    assert_eq!((st, ty.as_str()), (200, "application/json"), "{body}");
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"api_version": "1.0", "instance_type": "container",
               "location": host_name.trim(), "state": "Started"})
    );
    let (st, _, body) = get(pid, "PATCH", "/1.0", Some(r#"{"state":"Ready"}"#));
    assert_eq!(st, 200, "{body}");
    let (st, _, body) = get(pid, "GET", "/1.0", None);
    assert_eq!(st, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["state"],
        "Ready"
    );
    let (st, _, body) = get(pid, "GET", "/1.0/config", None);
    assert_eq!(st, 200);
    let keys: BTreeSet<String> = serde_json::from_str(&body).unwrap();
    assert_eq!(
        keys,
        [
            "user.meta-data",
            "cloud-init.user-data",
            "cloud-init.vendor-data",
            "user.foo"
        ]
        .iter()
        .map(|k| format!("/1.0/config/{k}"))
        .collect::<BTreeSet<_>>()
    );
    assert_eq!(
        get(pid, "GET", "/1.0/config/user.foo", None),
        (200, "application/octet-stream".into(), "bar".into())
    );
    let (st, _, body) = get(pid, "GET", "/1.0/config/cloud-init.user-data", None);
    assert_eq!((st, body.as_str()), (200, USER_DATA));
    let (st, _, _) = get(pid, "GET", "/1.0/config/security.devlxd", None);
    assert_eq!(st, 403, "a non-user key");
    let (st, _, _) = get(pid, "GET", "/1.0/config/user.missing", None);
    assert_eq!(st, 404, "a missing key");
    let (st, _, body) = get(pid, "GET", "/1.0/meta-data", None);
    assert_eq!(st, 200);
    assert_eq!(
        body,
        format!("instance-id: {name}\nlocal-hostname: {name}\n{META_DATA}")
    );
    let (st, _, body) = get(pid, "GET", "/1.0/devices", None);
    assert_eq!(st, 200);
    let devices: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        devices,
        json!({"eth0": {"type": "nic", "nictype": "p2p", "name": "eth0", "hwaddr": mac.trim()}}),
        "only the user's devices, the NIC with its name and MAC"
    );
    let (st, _, _) = get(pid, "DELETE", "/1.0", None);
    assert_eq!(st, 501, "a method /1.0 does not define");
    // Not root inside: 401.
    let nobody = devlxd(
        pid,
        &[("GET", "/1.0", None), ("GET", "/1.0/config/user.foo", None)],
        Some(65534),
    );
    for r in nobody["responses"].as_array().unwrap() {
        assert_eq!(r["status"], 401, "uid 65534 inside: {r}");
    }

    // --- stop: the host and the test netns as they were
    let t1 = Instant::now();
    let o = c.stop();
    let t_stop = t1.elapsed();
    assert!(o.status.success(), "envc stop failed {}", show(&o));
    host.assert_restored_within(Duration::from_secs(5));
    assert_eq!(
        ns.links(),
        ns_before,
        "the p2p host side is left in the netns"
    );
    assert!(!c.run_dir.join(name).exists(), "state dir left behind");

    eprintln!(
        "durations: rootfs {:.1?} (script) + {:.1?} (copy); apply -d returned after {:.1?}; \
         cloud-init done after {:.1?}; stop {:.1?}",
        t_rootfs, t_copy, t_apply, t_cloud_init, t_stop
    );
}

#[test]
fn security_devlxd_false_means_no_socket() {
    if !common::require_root("security_devlxd_false_means_no_socket") {
        return;
    }
    let _serial = common::serial();
    let tmp = TempDir::new("gn-nodevlxd");
    busybox_rootfs(tmp.path());
    let run_one = |name: &str, config: &str| -> (Value, Value) {
        let profile = tmp.path().join(format!("{name}.toml"));
        std::fs::write(
            &profile,
            format!("name = \"{name}\"\nrootfs = \"rootfs\"\n[config]\n{config}\n"),
        )
        .unwrap();
        let report = tmp.path().join(format!("{name}.json"));
        let host = HostState::capture();
        let mut cmd = Command::new(common::envc_bin());
        cmd.arg("apply")
            .arg(&profile)
            .arg("--report")
            .arg(&report)
            .env("ENVC_RUN_DIR", tmp.path().join("run"))
            .env("ENVC_LOG_DIR", tmp.path().join("log"));
        let o = run_cmd(cmd, Duration::from_secs(30));
        host.assert_restored_within(Duration::from_secs(2));
        assert!(o.status.success(), "{}", show(&o));
        let probe = common::extract_probe_json(&String::from_utf8_lossy(&o.stdout));
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).expect("report JSON");
        (probe, report)
    };
    let dev_paths = |probe: &Value| -> BTreeSet<String> {
        probe["dev"]
            .as_array()
            .expect("probe dev listing")
            .iter()
            .map(|e| e["path"].as_str().unwrap().to_string())
            .collect()
    };
    let has_api_step = |report: &Value| {
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["op"] == "MakeGuestApiSocket")
    };

    let (probe, report) = run_one("gn-devlxd-on", "");
    let dev = dev_paths(&probe);
    assert!(dev.contains("/dev/lxd/sock"), "default: no socket: {dev:?}");
    assert!(has_api_step(&report));

    let (probe, report) = run_one("gn-devlxd-off", "\"security.devlxd\" = false");
    let dev = dev_paths(&probe);
    assert!(
        !dev.iter().any(|p| p.starts_with("/dev/lxd")),
        "security.devlxd = false, yet: {dev:?}"
    );
    assert!(!has_api_step(&report), "{report:#}");
}
