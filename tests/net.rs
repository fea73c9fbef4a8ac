//! Root tests of `envc::net` (spec §7): every link lives in network namespaces the test
//! makes itself ("host" namespace A, "container" namespaces B, C); nothing is created
//! in, and no traffic leaves to, the real host's namespace. A namespace is made by a
//! thread that `unshare(CLONE_NEWNET)`s and hands back an fd of it: it disappears with
//! the fd (also when a test panics), taking its links along.
//!
//! Link names the tests pick start with `envct`, so a leftover would be identifiable;
//! each test checks that no `envct*` link appeared in the real host's namespace.

mod common;

use std::collections::BTreeSet;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use envc::net::{CreatedNic, LinkDetails, NetError, NicSpec, NicType, Rtnl, parse_mac, temp_name};

/// A network namespace of the test's own (gone when dropped).
struct TestNs {
    fd: OwnedFd,
}

impl TestNs {
    fn new() -> TestNs {
        let fd = std::thread::spawn(|| {
            // SAFETY: unshare only changes this thread's network namespace.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                panic!("unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error());
            }
            OwnedFd::from(File::open("/proc/thread-self/ns/net").expect("open ns/net"))
        })
        .join()
        .expect("netns thread");
        let ns = TestNs { fd };
        ns.rtnl().set_up("lo").expect("lo up");
        ns
    }

    /// Runs `f` in a thread that entered this namespace.
    fn in_thread<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let raw = self.fd.as_raw_fd();
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: setns only changes this thread's network namespace.
                assert_eq!(unsafe { libc::setns(raw, libc::CLONE_NEWNET) }, 0, "setns");
                f()
            })
            .join()
            .expect("thread in netns")
        })
    }

    fn rtnl(&self) -> Rtnl {
        Rtnl::in_netns(self.fd.as_fd()).expect("netlink socket in the test netns")
    }

    /// Runs `argv` inside this namespace.
    fn run(&self, argv: &[&str]) -> Output {
        let raw = self.fd.as_raw_fd();
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..]);
        // SAFETY: setns is async-signal-safe; `raw` stays open (inherited) in the child.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(raw, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"))
    }

    /// Runs `argv` inside this namespace and requires success; returns stdout.
    fn ok(&self, argv: &[&str]) -> String {
        let out = self.run(argv);
        assert!(
            out.status.success(),
            "{argv:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Adds a stand-in for a host NIC: a `dummy` link, or on kernels without
    /// `CONFIG_DUMMY` one end of a veth pair (peer `{name}p`). Both are Ethernet links
    /// that can be moved, and are deleted (not pushed to the initial namespace) when
    /// their namespace goes. Returns the kind used.
    fn add_dummy(&self, name: &str, extra: &[&str]) -> &'static str {
        let mut argv = vec!["ip", "link", "add", name];
        argv.extend_from_slice(extra);
        if self
            .run(&[&argv[..], &["type", "dummy"]].concat())
            .status
            .success()
        {
            return "dummy";
        }
        let peer = format!("{name}p");
        self.ok(&[&argv[..], &["type", "veth", "peer", "name", &peer]].concat());
        // Up, so that `name` has carrier once it is up itself.
        self.ok(&["ip", "link", "set", &peer, "up"]);
        "veth"
    }

    fn ping(&self, addr: &str) {
        let out = self.run(&["busybox", "ping", "-c", "1", "-W", "3", addr]);
        assert!(
            out.status.success(),
            "ping {addr} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn link(&self, name: &str) -> Option<LinkDetails> {
        self.rtnl().link(name).expect("look up link")
    }

    fn must_link(&self, name: &str) -> LinkDetails {
        self.link(name)
            .unwrap_or_else(|| panic!("no link {name}; links: {:?}", self.names()))
    }

    fn names(&self) -> BTreeSet<String> {
        self.rtnl()
            .links()
            .expect("list links")
            .into_iter()
            .map(|l| l.name)
            .collect()
    }

    fn spec<'a>(
        &'a self,
        nictype: NicType,
        parent: Option<&'a str>,
        host_name: Option<&'a str>,
        container_name: &'a str,
        hwaddr: Option<[u8; 6]>,
        mtu: Option<u32>,
    ) -> NicSpec<'a> {
        NicSpec {
            nictype,
            parent,
            host_name,
            container_name,
            hwaddr,
            mtu,
            netns: self.fd.as_fd(),
        }
    }
}

/// The real host's `envct*` links at the start; [`HostLinks::check`] at the end.
struct HostLinks(BTreeSet<String>);

fn host_envct_links() -> BTreeSet<String> {
    std::fs::read_dir("/sys/class/net")
        .expect("read /sys/class/net")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("envct"))
        .collect()
}

impl HostLinks {
    fn new() -> HostLinks {
        HostLinks(host_envct_links())
    }
    fn check(self) {
        assert_eq!(
            host_envct_links(),
            self.0,
            "envct* links appeared on (or vanished from) the real host"
        );
    }
}

fn mac(s: &str) -> [u8; 6] {
    parse_mac(s).unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Polls `f` for up to 5 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn envct_p2p_veth_has_name_mac_mtu_and_carries_a_ping() {
    if !common::require_root("envct_p2p_veth_has_name_mac_mtu_and_carries_a_ping") {
        return;
    }
    let host = HostLinks::new();
    let a = TestNs::new();
    let b = TestNs::new();
    let a_before = a.names();
    let tmp = temp_name("eth0");
    let hw = mac("00:16:3e:01:02:03");

    let mut ra = a.rtnl();
    let created = ra
        .create_nic(&b.spec(
            NicType::P2p,
            None,
            Some("envctp0"),
            &tmp,
            Some(hw),
            Some(1400),
        ))
        .expect("create p2p");
    assert_eq!(
        created,
        CreatedNic::Veth {
            host_name: "envctp0".into()
        }
    );
    let h = a.must_link("envctp0");
    assert!(h.up, "host side up");
    assert_eq!(h.mtu, 1400);
    assert_eq!(h.kind.as_deref(), Some("veth"));
    assert!(
        a.link(&tmp).is_none(),
        "container end must not be on the host"
    );
    let c = b.must_link(&tmp);
    assert_eq!((c.mac, c.mtu, c.up), (Some(hw), 1400, false));

    // Container side, then an address on the host side (inside A).
    b.rtnl()
        .configure_nic(
            &tmp,
            "eth0",
            Some((ip("10.200.0.2"), 24)),
            Some(ip("10.200.0.1")),
        )
        .expect("configure");
    ra.add_ipv4_address("envctp0", ip("10.200.0.1"), 24)
        .expect("host address");
    assert_eq!(b.names(), set(&["lo", "eth0"]));
    let c = b.must_link("eth0");
    assert_eq!((c.mac, c.mtu, c.up), (Some(hw), 1400, true));
    // The same seen by iproute2.
    let shown = b.ok(&["ip", "-o", "link", "show", "eth0"]);
    assert!(shown.contains("mtu 1400"), "{shown}");
    assert!(shown.contains("link/ether 00:16:3e:01:02:03"), "{shown}");
    let addrs = b.ok(&["ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(
        addrs.contains("inet 10.200.0.2/24 brd 10.200.0.255"),
        "{addrs}"
    );
    let route = b.ok(&["ip", "route", "show", "default"]);
    assert!(route.contains("default via 10.200.0.1 dev eth0"), "{route}");

    b.ping("10.200.0.1");
    a.ping("10.200.0.2");

    ra.remove_nic(&created, b.fd.as_fd(), "eth0")
        .expect("remove");
    assert_eq!(a.names(), a_before);
    assert_eq!(b.names(), set(&["lo"]));
    // Deleting again: already gone is fine.
    assert!(!ra.delete_link("envctp0").expect("delete again"));
    drop((a, b));
    host.check();
}

#[test]
fn envct_bridged_nics_join_the_bridge_and_ping_across_it() {
    if !common::require_root("envct_bridged_nics_join_the_bridge_and_ping_across_it") {
        return;
    }
    let host = HostLinks::new();
    let a = TestNs::new();
    let b = TestNs::new();
    let c = TestNs::new();
    a.ok(&["ip", "link", "add", "envctbr0", "type", "bridge"]);
    a.ok(&["ip", "link", "set", "envctbr0", "up"]);
    a.ok(&["ip", "addr", "add", "10.201.0.1/24", "dev", "envctbr0"]);
    let a_before = a.names();
    let br = a.must_link("envctbr0").index;

    let mut ra = a.rtnl();
    let mut made = Vec::new();
    for (ns, host_name, addr, hw) in [
        (&b, "envctb1", "10.201.0.2", "00:16:3e:00:00:02"),
        (&c, "envctb2", "10.201.0.3", "00:16:3e:00:00:03"),
    ] {
        let tmp = temp_name("eth0");
        let nic = ra
            .create_nic(&ns.spec(
                NicType::Bridged,
                Some("envctbr0"),
                Some(host_name),
                &tmp,
                Some(mac(hw)),
                None,
            ))
            .expect("create bridged");
        let h = a.must_link(host_name);
        assert_eq!(h.master, Some(br), "{host_name} on the bridge");
        assert!(h.up);
        ns.rtnl()
            .configure_nic(&tmp, "eth0", Some((ip(addr), 24)), Some(ip("10.201.0.1")))
            .expect("configure");
        assert_eq!(ns.must_link("eth0").mac, Some(mac(hw)));
        made.push(nic);
    }
    b.ping("10.201.0.1");
    b.ping("10.201.0.3");
    c.ping("10.201.0.2");

    for nic in &made {
        ra.remove_nic(nic, b.fd.as_fd(), "eth0").expect("remove");
    }
    assert_eq!(a.names(), a_before);
    assert_eq!(b.names(), set(&["lo"]));
    assert_eq!(c.names(), set(&["lo"]));
    drop((a, b, c));
    host.check();
}

#[test]
fn envct_missing_or_wrong_bridge_fails_cleanly() {
    if !common::require_root("envct_missing_or_wrong_bridge_fails_cleanly") {
        return;
    }
    let host = HostLinks::new();
    let a = TestNs::new();
    let b = TestNs::new();
    let dummy = a.add_dummy("envctdm0", &[]);
    let (a_before, b_before) = (a.names(), b.names());
    let tmp = temp_name("eth0");
    let mut ra = a.rtnl();

    let err = ra
        .create_nic(&b.spec(
            NicType::Bridged,
            Some("envctnobr"),
            Some("envctv9"),
            &tmp,
            None,
            None,
        ))
        .expect_err("missing bridge");
    assert!(
        matches!(&err, NetError::NoSuchInterface { role: "bridge", ifname } if ifname == "envctnobr"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "bridge `envctnobr` does not exist");
    assert_eq!((a.names(), b.names()), (a_before.clone(), b_before.clone()));

    let err = ra
        .create_nic(&b.spec(
            NicType::Bridged,
            Some("envctdm0"),
            Some("envctv9"),
            &tmp,
            None,
            None,
        ))
        .expect_err("not a bridge");
    assert!(matches!(&err, NetError::NotABridge { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("`envctdm0` is not a bridge (it is a {dummy} interface)")
    );
    assert_eq!((a.names(), b.names()), (a_before.clone(), b_before.clone()));

    // set_master on its own refuses too.
    let err = ra
        .set_master("envctdm0", "envctnobr")
        .expect_err("set_master");
    assert!(matches!(err, NetError::NoSuchInterface { .. }), "{err:?}");

    // A host name that is taken: refused before anything is made.
    let err = ra
        .create_nic(&b.spec(NicType::P2p, None, Some("envctdm0"), &tmp, None, None))
        .expect_err("host name taken");
    assert!(matches!(&err, NetError::AlreadyExists { .. }), "{err:?}");
    assert_eq!((a.names(), b.names()), (a_before.clone(), b_before.clone()));

    // The kernel refusing the creation (MTU below the minimum): its error, named.
    let err = ra
        .create_nic(&b.spec(NicType::P2p, None, Some("envctv8"), &tmp, None, Some(10)))
        .expect_err("bad mtu");
    assert_eq!(err.errno(), Some(libc::EINVAL), "{err:?}");
    assert!(err.to_string().contains("envctv8 <-> envc"), "{err}");
    assert_eq!((a.names(), b.names()), (a_before, b_before));

    // A macvlan without parent, a physical NIC that does not exist.
    let err = ra
        .create_nic(&b.spec(NicType::Macvlan, None, None, &tmp, None, None))
        .expect_err("no parent");
    assert!(
        err.to_string().contains("macvlan NIC needs a `parent`"),
        "{err}"
    );
    let err = ra
        .create_nic(&b.spec(NicType::Physical, Some("envctnone"), None, &tmp, None, None))
        .expect_err("no such physical");
    assert!(matches!(err, NetError::NoSuchInterface { .. }), "{err:?}");
    drop((a, b));
    host.check();
}

#[test]
fn envct_macvlan_on_a_dummy_parent() {
    if !common::require_root("envct_macvlan_on_a_dummy_parent") {
        return;
    }
    let host = HostLinks::new();
    let a = TestNs::new();
    let b = TestNs::new();
    let c = TestNs::new();
    a.add_dummy("envctdm1", &[]);
    a.ok(&["ip", "link", "set", "envctdm1", "up"]);
    let a_before = a.names();
    let mut ra = a.rtnl();
    for (ns, addr, hw) in [
        (&b, "10.202.0.2", "00:16:3e:00:01:02"),
        (&c, "10.202.0.3", "00:16:3e:00:01:03"),
    ] {
        let tmp = temp_name("eth0");
        let nic = ra
            .create_nic(&ns.spec(
                NicType::Macvlan,
                Some("envctdm1"),
                None,
                &tmp,
                Some(mac(hw)),
                Some(1400),
            ))
            .expect("create macvlan");
        assert!(matches!(nic, CreatedNic::Macvlan { .. }));
        ns.rtnl()
            .configure_nic(&tmp, "eth0", Some((ip(addr), 24)), None)
            .expect("configure");
        let l = ns.must_link("eth0");
        assert_eq!(
            (l.kind.as_deref(), l.mac, l.mtu, l.up),
            (Some("macvlan"), Some(mac(hw)), 1400, true)
        );
        let shown = ns.ok(&["ip", "-d", "-o", "link", "show", "eth0"]);
        assert!(shown.contains("macvlan mode bridge"), "{shown}");
    }
    assert_eq!(a.names(), a_before, "nothing of the macvlans on the host");
    // Two macvlans in bridge mode on one parent reach each other.
    b.ping("10.202.0.3");
    drop((a, b, c));
    host.check();
}

#[test]
fn envct_physical_nic_goes_in_and_comes_back_under_its_name() {
    if !common::require_root("envct_physical_nic_goes_in_and_comes_back_under_its_name") {
        return;
    }
    let host = HostLinks::new();
    let a = TestNs::new();
    let b = TestNs::new();
    let dummy = a.add_dummy("envctph0", &["address", "02:00:00:00:00:01"]);
    // The host (A) has an `eth0` too: the NIC must still come back as envctph0.
    a.ok(&["ip", "link", "add", "eth0", "type", "bridge"]);
    a.ok(&["ip", "link", "set", "envctph0", "up"]);
    let a_before = a.names();
    let orig = a.must_link("envctph0");
    let tmp = temp_name("eth0");
    let hw = mac("00:16:3e:0a:0b:0c");
    let mut ra = a.rtnl();

    let created = ra
        .create_nic(&b.spec(
            NicType::Physical,
            Some("envctph0"),
            None,
            &tmp,
            Some(hw),
            Some(1400),
        ))
        .expect("lend physical");
    let CreatedNic::Physical(p) = &created else {
        panic!("{created:?}")
    };
    assert_eq!(p.host_name, "envctph0");
    assert_eq!((p.mac, p.mtu, p.was_up), (orig.mac, 1500, true));
    assert!(a.link("envctph0").is_none(), "gone from the host");
    b.rtnl()
        .configure_nic(&tmp, "eth0", Some((ip("10.203.0.2"), 24)), None)
        .expect("configure");
    let l = b.must_link("eth0");
    assert_eq!(
        (l.kind.as_deref(), l.mac, l.mtu, l.up),
        (Some(dummy), Some(hw), 1400, true)
    );

    // Its name is taken on the host meanwhile: a clear refusal, the NIC stays put.
    a.ok(&["ip", "link", "add", "envctph0", "type", "bridge"]);
    let err = ra
        .return_physical(b.fd.as_fd(), "eth0", p)
        .expect_err("name taken");
    assert!(err.to_string().contains("as envctph0"), "{err}");
    assert!(b.link("eth0").is_some());
    a.ok(&["ip", "link", "del", "envctph0"]);

    ra.remove_nic(&created, b.fd.as_fd(), "eth0")
        .expect("return");
    assert_eq!(b.names(), set(&["lo"]));
    assert_eq!(a.names(), a_before);
    let back = a.must_link("envctph0");
    assert_eq!(
        (back.mac, back.mtu, back.up, back.kind.as_deref()),
        (orig.mac, 1500, true, Some(dummy))
    );
    // Returning again: already home is done.
    ra.return_physical(b.fd.as_fd(), "eth0", p)
        .expect("idempotent");
    drop((a, b));
    host.check();
}

#[test]
fn envct_several_nics_get_their_names_and_are_all_removed() {
    if !common::require_root("envct_several_nics_get_their_names_and_are_all_removed") {
        return;
    }
    let host = HostLinks::new();
    let a = TestNs::new();
    let b = TestNs::new();
    a.ok(&["ip", "link", "add", "envctbr1", "type", "bridge"]);
    a.add_dummy("envctdm2", &[]);
    a.ok(&["ip", "link", "set", "envctdm2", "up"]);
    let a_before = a.names();
    let mut ra = a.rtnl();
    let nics: [(NicType, Option<&str>, Option<&str>, &str); 4] = [
        (NicType::P2p, None, Some("envctm0"), "eth0"),
        (NicType::Bridged, Some("envctbr1"), Some("envctm1"), "eth1"),
        (NicType::Macvlan, Some("envctdm2"), None, "eth2"),
        (NicType::P2p, None, Some("envctm3"), "mgmt"),
    ];
    let mut made = Vec::new();
    for (i, (t, parent, host_name, name)) in nics.iter().enumerate() {
        let tmp = temp_name(name);
        let hw = [0x00, 0x16, 0x3e, 0, 0, i as u8 + 1];
        made.push((
            ra.create_nic(&b.spec(*t, *parent, *host_name, &tmp, Some(hw), None))
                .expect("create"),
            *name,
        ));
    }
    // The container side as the executor's child runs it: the free functions, in a
    // thread that entered B.
    b.in_thread(|| {
        envc::net::bring_up_loopback()?;
        for (_, _, _, name) in &nics {
            envc::net::configure_nic(&temp_name(name), name, None, None)?;
        }
        Ok::<(), NetError>(())
    })
    .expect("configure");
    for (i, (_, _, _, name)) in nics.iter().enumerate() {
        let l = b.must_link(name);
        assert_eq!(l.mac, Some([0x00, 0x16, 0x3e, 0, 0, i as u8 + 1]), "{name}");
        assert!(l.up, "{name}");
    }
    assert_eq!(b.names(), set(&["lo", "eth0", "eth1", "eth2", "mgmt"]));
    let mut on_host = a.names();
    on_host.retain(|n| !a_before.contains(n));
    assert_eq!(on_host, set(&["envctm0", "envctm1", "envctm3"]));

    for (nic, name) in made.iter().rev() {
        ra.remove_nic(nic, b.fd.as_fd(), name).expect("remove");
    }
    assert_eq!(a.names(), a_before);
    // The macvlan goes with the container's namespace.
    assert_eq!(b.names(), set(&["lo", "eth2"]));
    drop((a, b));
    host.check();
}

#[test]
fn envct_host_side_removal_after_the_container_is_gone() {
    if !common::require_root("envct_host_side_removal_after_the_container_is_gone") {
        return;
    }
    let host = HostLinks::new();
    let a = TestNs::new();
    let b = TestNs::new();
    let a_before = a.names();
    let mut ra = a.rtnl();
    let tmp = temp_name("eth0");
    let created = ra
        .create_nic(&b.spec(NicType::P2p, None, Some("envctg0"), &tmp, None, None))
        .expect("create");
    assert!(a.link("envctg0").is_some());
    drop(b); // the container's namespace goes (the kernel cleans up asynchronously)
    let b2 = TestNs::new();
    // Whether the kernel got there first or not, removal succeeds.
    ra.remove_nic(&created, b2.fd.as_fd(), "eth0")
        .expect("remove");
    eventually("envctg0 gone", || a.link("envctg0").is_none());
    assert_eq!(a.names(), a_before);
    assert!(!ra.delete_link("envctg0").expect("gone is fine"));
    drop((a, b2));
    host.check();
}
