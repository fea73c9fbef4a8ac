//! NICs through the real product (spec §7, issue 6): `envc apply` of profiles with `nic`
//! devices, as root, checked from inside the container and in the namespace that
//! holds the host sides.
//!
//! envc runs INSIDE a network namespace the test makes (`ip netns add envct-gn-N`,
//! then `nsenter --net=/run/netns/envct-gn-N envc apply ...`; not `ip netns exec`,
//! which remounts /sys and hides the cgroup mounts), so every host-side link envc
//! makes, every bridge and parent the test makes, and all traffic stay in that
//! namespace: nothing touches the real host's network. The namespace is deleted at
//! the end, also when a test panics ([`TestNetns`]'s drop, after the `Envc` guard
//! killed envc).
//!
//! Inside the container: busybox (`ip`, `ping`, `sh`, `cat`) run with
//! `nsenter -t PID1 -a`, and the probe's own `net_links`.
//!
//! Every test holds `common::serial()` and compares the real host's state
//! ([`HostState`]) before and after. Other developers' root suites running at the same
//! time can show up in that diff: re-run (CI runs serially).

mod common;

use common::proc::{Proc, run, run_ok, show};
use common::{HostState, TempDir, busybox_rootfs};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The longest one container run may take before the test kills it.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a helper command (ip, nsenter + busybox) may take.
const CMD_TIMEOUT: Duration = Duration::from_secs(15);

// ------------------------------------------------------------------ commands

fn ok(argv: &[&str]) -> String {
    run_ok(argv, CMD_TIMEOUT)
}

// ------------------------------------------------------------------ the test's netns

/// A network namespace made with `ip netns add`, deleted (with every link in it) on drop.
struct TestNetns {
    name: String,
}

static NS_COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestNetns {
    fn new() -> TestNetns {
        let name = format!(
            "envct-gn-{}-{}",
            std::process::id(),
            NS_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        ok(&["ip", "netns", "add", &name]);
        let ns = TestNetns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `ip -n NS ARGS`; must succeed.
    fn ip(&self, args: &[&str]) -> String {
        let mut argv = vec!["ip", "-n", &self.name];
        argv.extend_from_slice(args);
        ok(&argv)
    }

    fn try_ip(&self, args: &[&str]) -> Output {
        let mut argv = vec!["ip", "-n", &self.name];
        argv.extend_from_slice(args);
        run(&argv, CMD_TIMEOUT)
    }

    /// Every link (`ip -j link show`), by name.
    fn links(&self) -> BTreeMap<String, Value> {
        let text = self.ip(&["-j", "-d", "link", "show"]);
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("ip -j link show: {e}\n{text}"));
        v.as_array()
            .expect("ip -j gives an array")
            .iter()
            .map(|l| (l["ifname"].as_str().unwrap().to_string(), l.clone()))
            .collect()
    }

    fn names(&self) -> BTreeSet<String> {
        self.links().into_keys().collect()
    }

    fn must_link(&self, name: &str) -> Value {
        let links = self.links();
        links.get(name).cloned().unwrap_or_else(|| {
            panic!(
                "no link {name} in {}: {:?}",
                self.name,
                links.keys().collect::<Vec<_>>()
            )
        })
    }

    /// A stand-in for a host interface: a `dummy` when the kernel has CONFIG_DUMMY, else
    /// one end of a veth pair whose other end (`NAMEp`) stays here, up, with
    /// `peer_addr` (a CIDR) when given. Brought up. Returns whether it is a veth (then
    /// traffic through `name` reaches `peer_addr`).
    fn add_stub(&self, name: &str, peer_addr: Option<&str>) -> bool {
        let veth = if self
            .try_ip(&["link", "add", name, "type", "dummy"])
            .status
            .success()
        {
            false
        } else {
            let peer = format!("{name}p");
            self.ip(&["link", "add", name, "type", "veth", "peer", "name", &peer]);
            if let Some(a) = peer_addr {
                self.ip(&["addr", "add", a, "dev", &peer]);
            }
            self.ip(&["link", "set", &peer, "up"]);
            true
        };
        self.ip(&["link", "set", name, "up"]);
        veth
    }

    /// Waits (bounded) until `name` exists, then gives it `addr`.
    fn add_addr(&self, name: &str, addr: &str) {
        eventually(&format!("link {name} in {}", self.name), || {
            self.links().contains_key(name)
        });
        self.ip(&["addr", "add", addr, "dev", name]);
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let o = run(&["ip", "netns", "del", &self.name], CMD_TIMEOUT);
        if !o.status.success() {
            eprintln!(
                "!!!! cannot delete the test netns {}: {}",
                self.name,
                show(&o)
            );
        }
    }
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ------------------------------------------------------------------ running envc

/// A running `nsenter --net=NS envc apply` (nsenter execs envc: same process).
/// Dropping it kills envc (the container dies with it: PR_SET_PDEATHSIG).
struct Envc(Proc);

#[derive(Debug)]
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn describe(&self) -> String {
        format!(
            "--- envc exit: {:?}\n--- stderr:\n{}\n--- stdout (tail):\n{}",
            self.code,
            common::tail(&self.stderr, 6000),
            common::tail(&self.stdout, 3000)
        )
    }
}

impl Envc {
    fn spawn(cmd: Command) -> Envc {
        Envc(Proc::spawn(cmd))
    }

    /// Waits until stdout contains `needle`; panics (killing envc) after `timeout`.
    fn wait_for_output(&mut self, needle: &str, timeout: Duration) {
        self.0.wait_stdout(needle, 1, timeout);
    }

    fn signal(&self, sig: i32) {
        self.0.signal(sig);
    }

    fn stdout_now(&self) -> String {
        self.0.stdout_now()
    }

    /// Waits for envc to exit; kills it and panics after `timeout`.
    fn wait(self, timeout: Duration) -> Finished {
        let o = self.0.wait(timeout);
        Finished {
            code: o.code(),
            stdout: o.stdout,
            stderr: o.stderr,
        }
    }
}

/// A scratch directory with a busybox rootfs (init: the probe), run/log dirs for envc,
/// and profiles and reports next to the rootfs.
struct World {
    dir: TempDir,
}

impl World {
    fn new(test: &str) -> World {
        let dir = TempDir::new(test);
        busybox_rootfs(dir.path());
        World { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `NAME.toml` (name, `rootfs = "rootfs"`, `body`).
    fn profile(&self, name: &str, body: &str) -> PathBuf {
        let p = self.path(&format!("{name}.toml"));
        std::fs::write(
            &p,
            format!("name = \"{name}\"\nrootfs = \"rootfs\"\n{body}\n"),
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    fn report_path(&self, name: &str) -> PathBuf {
        self.path(&format!("{name}.report.json"))
    }

    /// `nsenter --net=NS envc apply PROFILE --report R`, with this world's run/log dirs.
    fn apply_cmd(&self, ns: &TestNetns, profile: &Path) -> Command {
        let name = profile.file_stem().unwrap().to_str().unwrap();
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", ns.path()))
            .arg(common::envc_bin())
            .arg("apply")
            .arg(profile)
            .arg("--report")
            .arg(self.report_path(name))
            .env("ENVC_RUN_DIR", self.path("run"))
            .env("ENVC_LOG_DIR", self.path("log"));
        cmd
    }

    fn report(&self, name: &str) -> Value {
        let p = self.report_path(name);
        let text = std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("no report at {}: {e}", p.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("report is not JSON: {e}\n{text}"))
    }

    /// The compiled plan (`envc plan --format json`).
    fn plan(&self, profile: &Path) -> Value {
        let text = ok(&[
            common::envc_bin().to_str().unwrap(),
            "plan",
            profile.to_str().unwrap(),
            "--format",
            "json",
        ]);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("plan is not JSON: {e}\n{text}"))
    }
}

/// The plan's `CreateNic` steps, by device name.
fn plan_nics(plan: &Value) -> BTreeMap<String, Value> {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["op"] == "CreateNic")
        .map(|s| (s["device"].as_str().unwrap().to_string(), s.clone()))
        .collect()
}

fn steps(report: &Value) -> &Vec<Value> {
    report["steps"].as_array().expect("report steps")
}

fn index_of(report: &Value, op: &str, key: &str) -> usize {
    steps(report)
        .iter()
        .position(|s| s["op"] == op && s["origin"]["key"] == key)
        .unwrap_or_else(|| panic!("no {op} step from {key}: {report:#}"))
}

// ------------------------------------------------------------------ inside the container

/// One interface as the container sees it (its sysfs).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Iface {
    mac: String,
    mtu: u32,
    up: bool,
}

/// Runs `argv` in every namespace of the container whose PID 1 is `pid`.
fn inside(pid: i32, argv: &[&str]) -> Output {
    let t = pid.to_string();
    let mut v = vec!["nsenter", "-t", &t, "-a"];
    v.extend_from_slice(argv);
    run(&v, CMD_TIMEOUT)
}

fn inside_ok(pid: i32, argv: &[&str]) -> String {
    let o = inside(pid, argv);
    assert!(o.status.success(), "inside: {argv:?} failed {}", show(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every interface inside: name -> MAC, MTU, IFF_UP (from /sys/class/net, read by a
/// busybox shell in the container).
fn ifaces(pid: i32) -> BTreeMap<String, Iface> {
    let script = "cd /sys/class/net && for i in *; do \
                  echo \"$i $(cat $i/address) $(cat $i/mtu) $(cat $i/flags)\"; done";
    let text = inside_ok(pid, &["/bin/busybox", "sh", "-c", script]);
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 4, "bad line {l:?}");
            let flags = u32::from_str_radix(f[3].trim_start_matches("0x"), 16).unwrap();
            (
                f[0].to_string(),
                Iface {
                    mac: f[1].to_string(),
                    mtu: f[2].parse().unwrap(),
                    up: flags & 1 != 0,
                },
            )
        })
        .collect()
}

fn ping_inside(pid: i32, addr: &str) {
    let o = inside(pid, &["/bin/busybox", "ping", "-c", "1", "-W", "2", addr]);
    assert!(
        o.status.success(),
        "ping {addr} from inside the container failed {}",
        show(&o)
    );
}

fn is_veth_hex(name: &str) -> bool {
    name.len() == 12
        && name.starts_with("veth")
        && name[4..]
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

fn is_derived_mac(mac: &str) -> bool {
    mac.starts_with("00:16:3e:") && mac.len() == 17
}

// ------------------------------------------------------------------ the tests

/// Five NICs, every nictype, in one container: p2p (derived veth name; named
/// host_name), bridged, macvlan, physical.
const ALL_KINDS: &str = r#"
[init]
command = ["/sbin/probe", "--sleep"]

[config]
"environment.PROBE_CATCH_SIGNALS" = "30"

[devices.a]
type = "nic"
nictype = "physical"
parent = "envctgph"
"ipv4.address" = "10.201.4.2/24"

[devices.b]
type = "nic"
nictype = "bridged"
parent = "envctgbr"
name = "eth2"
hwaddr = "0a:16:3e:00:00:0b"
"ipv4.address" = "10.201.2.2/24"
"ipv4.gateway" = "10.201.2.1"

[devices.c]
type = "nic"
nictype = "p2p"
mtu = 1400
"ipv4.address" = "10.201.1.2/24"

[devices.d]
type = "nic"
nictype = "macvlan"
parent = "envctgmv"
mtu = 1450
"ipv4.address" = "10.201.3.2/24"

[devices.e]
type = "nic"
nictype = "p2p"
host_name = "envctgp2h"
name = "lan0"
"ipv4.address" = "10.201.5.2/24"
"#;

/// What one run of ALL_KINDS showed.
struct AllKindsRun {
    inside: BTreeMap<String, Iface>,
}

/// The test netns's side of ALL_KINDS: a bridge with an address, a macvlan parent with
/// a macvlan twin that has an address, a "physical" interface (whose peer has an
/// address when it is a veth). Returns whether the physical one is a veth.
fn make_host_side(ns: &TestNetns) -> bool {
    ns.ip(&["link", "add", "envctgbr", "type", "bridge"]);
    ns.ip(&["addr", "add", "10.201.2.1/24", "dev", "envctgbr"]);
    ns.ip(&["link", "set", "envctgbr", "up"]);
    ns.add_stub("envctgmv", None);
    // Macvlans in bridge mode on one parent reach each other (dummy or veth parent).
    ns.ip(&[
        "link",
        "add",
        "envctgmvh",
        "link",
        "envctgmv",
        "type",
        "macvlan",
        "mode",
        "bridge",
    ]);
    ns.ip(&["addr", "add", "10.201.3.1/24", "dev", "envctgmvh"]);
    ns.ip(&["link", "set", "envctgmvh", "up"]);
    ns.add_stub("envctgph", Some("10.201.4.1/24"))
}

fn run_all_kinds(w: &World, ns: &TestNetns, profile: &Path, phys_is_veth: bool) -> AllKindsRun {
    let name = profile.file_stem().unwrap().to_str().unwrap();
    let plan = w.plan(profile);
    let pn = plan_nics(&plan);
    let names: BTreeMap<&str, &str> = pn
        .iter()
        .map(|(d, s)| (d.as_str(), s["name"].as_str().unwrap()))
        .collect();
    // LXD's rule: the first free ethN; b is named eth2, so c gets eth1, not eth2.
    assert_eq!(
        names,
        BTreeMap::from([
            ("a", "eth0"),
            ("b", "eth2"),
            ("c", "eth1"),
            ("d", "eth3"),
            ("e", "lan0")
        ]),
        "{pn:#?}"
    );
    let c_host = pn["c"]["host_name"].as_str().unwrap().to_string();
    assert!(is_veth_hex(&c_host), "p2p host side {c_host:?}");
    let b_host = pn["b"]["host_name"].as_str().unwrap().to_string();
    assert!(is_veth_hex(&b_host), "bridged host side {b_host:?}");
    assert_eq!(pn["e"]["host_name"], "envctgp2h");

    let ns_before = ns.links();
    let phys_before = ns.must_link("envctgph");

    let mut envc = Envc::spawn(w.apply_cmd(ns, profile));
    envc.wait_for_output(common::PROBE_END, RUN_TIMEOUT);
    let probe = common::extract_probe_json(&envc.stdout_now());
    let report = w.report(name);
    let pid = report["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no pid in the report: {report:#}")) as i32;

    // --- the host sides, in the test netns
    let links = ns.links();
    for h in [&c_host, &b_host, "envctgp2h"] {
        let l = links
            .get(h)
            .unwrap_or_else(|| panic!("no host side {h}: {:?}", links.keys()));
        assert_eq!(l["linkinfo"]["info_kind"], "veth", "{h}: {l:#}");
        assert!(
            l["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
            "host side {h} not up: {l:#}"
        );
    }
    assert_eq!(links[&b_host]["master"], "envctgbr", "{:#}", links[&b_host]);
    assert!(links[&c_host].get("master").is_none());
    assert!(
        !links.contains_key("envctgph"),
        "the physical NIC is still in the host's namespace"
    );
    let made: BTreeSet<&String> = links
        .keys()
        .filter(|k| !ns_before.contains_key(*k))
        .collect();
    assert_eq!(
        made,
        BTreeSet::from([&c_host, &b_host, &"envctgp2h".to_string()]),
        "links envc made in the host's namespace"
    );
    // The test gives the p2p host sides their addresses (envc leaves them bare).
    ns.add_addr(&c_host, "10.201.1.1/24");
    ns.add_addr("envctgp2h", "10.201.5.1/24");

    // --- inside
    let net_links: BTreeSet<String> = probe["net_links"]
        .as_array()
        .expect("probe net_links")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = ["lo", "eth0", "eth1", "eth2", "eth3", "lan0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(net_links, expected, "what PID 1 saw in /sys/class/net");
    let inside = ifaces(pid);
    assert_eq!(inside.keys().cloned().collect::<BTreeSet<_>>(), expected);
    for (n, i) in &inside {
        assert!(i.up, "{n} is not up inside: {inside:#?}");
    }
    // MACs: physical keeps its own; explicit honoured; the others derived, as planned.
    let phys_mac = phys_before["address"].as_str().unwrap();
    assert_eq!(inside["eth0"].mac, phys_mac, "physical NIC's own MAC");
    assert_eq!(inside["eth2"].mac, "0a:16:3e:00:00:0b", "explicit hwaddr");
    for (dev, ifname) in [("c", "eth1"), ("d", "eth3"), ("e", "lan0")] {
        let mac = &inside[ifname].mac;
        assert!(is_derived_mac(mac), "{ifname}: {mac}");
        assert_eq!(mac, pn[dev]["hwaddr"].as_str().unwrap(), "{ifname}");
    }
    let derived: BTreeSet<&String> = ["eth1", "eth3", "lan0"]
        .iter()
        .map(|n| &inside[*n].mac)
        .collect();
    assert_eq!(derived.len(), 3, "derived MACs collide: {inside:#?}");
    // MTUs.
    assert_eq!(inside["eth1"].mtu, 1400);
    assert_eq!(inside["eth3"].mtu, 1450);
    for n in ["eth0", "eth2", "lan0"] {
        assert_eq!(inside[n].mtu, 1500, "{n}");
    }
    assert_eq!(links[&c_host]["mtu"], 1400, "p2p host side MTU");
    // Addresses and the default route.
    let addrs = inside_ok(pid, &["/bin/busybox", "ip", "-4", "-o", "addr"]);
    for (ifname, a) in [
        ("lo", "127.0.0.1/8"),
        ("eth0", "10.201.4.2/24"),
        ("eth1", "10.201.1.2/24"),
        ("eth2", "10.201.2.2/24"),
        ("eth3", "10.201.3.2/24"),
        ("lan0", "10.201.5.2/24"),
    ] {
        assert!(
            addrs
                .lines()
                .any(|l| l.split_whitespace().nth(1) == Some(ifname)
                    && l.contains(&format!("inet {a} "))),
            "{ifname} has no {a}:\n{addrs}"
        );
    }
    let routes = inside_ok(pid, &["/bin/busybox", "ip", "route"]);
    assert!(
        routes
            .lines()
            .any(|l| l.trim() == "default via 10.201.2.1 dev eth2"),
        "no default route via the gateway:\n{routes}"
    );
    // Traffic, to addresses the test put in its namespace.
    ping_inside(pid, "10.201.1.1"); // p2p, derived host side
    ping_inside(pid, "10.201.2.1"); // the bridge
    ping_inside(pid, "10.201.3.1"); // the macvlan twin on the same parent
    ping_inside(pid, "10.201.5.1"); // p2p, named host side
    if phys_is_veth {
        ping_inside(pid, "10.201.4.1"); // the physical NIC's peer
    }

    // The report lists each NIC (running: written when PID 1 started).
    let nics = report["host"]["nics"].as_array().expect("report host.nics");
    assert_eq!(nics.len(), 5, "{nics:#?}");
    for (ifname, extra) in [
        ("eth0", "physical".to_string()),
        ("eth2", b_host.clone()),
        ("eth1", c_host.clone()),
        ("eth3", "macvlan".to_string()),
        ("lan0", "envctgp2h".to_string()),
    ] {
        let mac = &inside[ifname].mac;
        assert!(
            nics.iter().any(|n| {
                let n = n.as_str().unwrap();
                n.starts_with(&format!("{ifname} ")) && n.contains(&extra)
            }),
            "no report line for {ifname} ({extra}): {nics:#?}"
        );
        if ifname != "eth0" {
            assert!(
                nics.iter()
                    .any(|n| n.as_str().unwrap().contains(mac.as_str())),
                "{ifname}'s MAC {mac} not in the report: {nics:#?}"
            );
        }
    }
    for s in steps(&report) {
        if s["op"] == "CreateNic" || s["op"] == "ConfigureNic" || s["op"] == "BringUpLoopback" {
            assert_eq!(s["status"], "done", "{s}");
        }
    }

    // --- stop: SIGTERM to envc, SIGPWR to PID 1, which exits 0.
    envc.signal(libc::SIGTERM);
    let run = envc.wait(RUN_TIMEOUT);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    let after = ns.links();
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        ns_before.keys().collect::<Vec<_>>(),
        "links in the test netns after stop"
    );
    let phys_after = &after["envctgph"];
    for k in ["address", "mtu"] {
        assert_eq!(
            phys_after[k], phys_before[k],
            "physical NIC's {k} after stop"
        );
    }
    assert!(
        phys_after["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "UP"),
        "physical NIC not up again: {phys_after:#}"
    );
    AllKindsRun { inside }
}

#[test]
fn every_nictype_through_envc_apply() {
    if !common::require_root("every_nictype_through_envc_apply") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("gn-all");
    let ns = TestNetns::new();
    let phys_is_veth = make_host_side(&ns);
    let host = HostState::capture();
    let profile = w.profile("gn-all", ALL_KINDS);
    let first = run_all_kinds(&w, &ns, &profile, phys_is_veth);
    let second = run_all_kinds(&w, &ns, &profile, phys_is_veth);
    // Derived MACs (and so DHCP leases) survive a restart.
    assert_eq!(first.inside, second.inside, "the second run differs");
    host.assert_restored_within(Duration::from_secs(2));
    assert!(!w.path("run/gn-all").exists(), "state dir left behind");
}

/// Runs a profile that must fail at `op` from `key`: exit 125, the step named on
/// stderr with the profile key, later steps not run, init never ran, and the test
/// netns exactly as before.
fn fails_cleanly(w: &World, ns: &TestNetns, name: &str, body: &str, op: &str, key: &str) -> Value {
    let profile = w.profile(name, body);
    let before = ns.links();
    let host = HostState::capture();
    let run = Envc::spawn(w.apply_cmd(ns, &profile)).wait(RUN_TIMEOUT);
    host.assert_restored_within(Duration::from_secs(2));
    assert_eq!(run.code, Some(125), "{}", run.describe());
    let report = w.report(name);
    let i = index_of(&report, op, key);
    assert!(
        run.stderr
            .contains(&format!("step {} ({op}) failed", i + 1)),
        "stderr does not name the failed step:\n{}",
        run.describe()
    );
    assert!(
        run.stderr.contains(key),
        "stderr does not point at {key}:\n{}",
        run.describe()
    );
    // The child runs the container's steps while the host runs its own (NICs): when a
    // host step fails, container steps before it may not have been reached.
    let plan = w.plan(&profile);
    let side = |j: usize| plan["steps"][j]["side"].as_str().unwrap().to_string();
    let host_failed = side(i) == "host";
    for (j, s) in steps(&report).iter().enumerate() {
        let status = s["status"].as_str().unwrap();
        if j < i {
            let may_not_run = host_failed && side(j) == "container";
            assert!(
                matches!(status, "done" | "skipped" | "not_yet")
                    || (may_not_run && status == "not_run"),
                "step {} ({} side) before the failure: {s}",
                j + 1,
                side(j)
            );
        } else if j == i {
            assert_eq!(status, "failed", "{report:#}");
            assert_eq!(s["fatal"], true, "{s}");
        } else {
            assert_eq!(status, "not_run", "step {} after the failure: {s}", j + 1);
        }
    }
    assert_eq!(report["outcome"]["exit_code"], 125, "{report:#}");
    assert!(
        !run.stdout.contains(common::PROBE_BEGIN),
        "init ran: {}",
        run.describe()
    );
    let after = ns.links();
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "links left in the test netns"
    );
    assert!(
        !w.path(&format!("run/{name}")).exists(),
        "state dir left behind"
    );
    report
}

#[test]
fn nic_failures_leave_nothing_behind() {
    if !common::require_root("nic_failures_leave_nothing_behind") {
        return;
    }
    let _serial = common::serial();
    let w = World::new("gn-fail");
    let ns = TestNetns::new();
    let phys_is_veth = ns.add_stub("envctgph", None);
    let phys_before = ns.must_link("envctgph");

    // A bridge that does not exist: nothing is made at all.
    let report = fails_cleanly(
        &w,
        &ns,
        "gn-nobridge",
        "[devices.net]\ntype = \"nic\"\nnictype = \"bridged\"\nparent = \"envctgnobr\"",
        "CreateNic",
        "devices.net",
    );
    let err = report["steps"][index_of(&report, "CreateNic", "devices.net")]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        err.contains("envctgnobr"),
        "error does not name the bridge: {err}"
    );

    // The second NIC's parent is missing: the first NIC's host side (a veth the test
    // can name), and the physical NIC lent before it, are given back.
    fails_cleanly(
        &w,
        &ns,
        "gn-noparent",
        "[devices.a]\ntype = \"nic\"\nnictype = \"p2p\"\nhost_name = \"envctgfa\"\n\
         [devices.b]\ntype = \"nic\"\nnictype = \"physical\"\nparent = \"envctgph\"\n\
         [devices.c]\ntype = \"nic\"\nnictype = \"macvlan\"\nparent = \"envctgnomv\"",
        "CreateNic",
        "devices.c",
    );
    let back = ns.must_link("envctgph");
    for k in ["address", "mtu"] {
        assert_eq!(back[k], phys_before[k], "physical NIC's {k}");
    }
    assert!(
        back["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
        "physical NIC not up again: {back:#} (veth: {phys_is_veth})"
    );

    // A failure inside the container after the host sides exist (a gateway that is
    // not on the NIC's network: the route is refused): both host sides go.
    fails_cleanly(
        &w,
        &ns,
        "gn-badgw",
        "[devices.a]\ntype = \"nic\"\nnictype = \"p2p\"\nhost_name = \"envctgfa\"\n\
         [devices.b]\ntype = \"nic\"\nnictype = \"p2p\"\n\
         \"ipv4.address\" = \"10.201.9.2/24\"\n\"ipv4.gateway\" = \"10.99.0.1\"",
        "ConfigureNic",
        "devices.b",
    );
    assert!(ns.names().contains("envctgph"));
}
