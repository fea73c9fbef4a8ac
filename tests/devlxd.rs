//! The guest API server (`envc::devlxd`) over a real Unix socket: every endpoint with a
//! byte-exact Rust client and with curl, keep-alive, concurrency, slow and oversized
//! clients, events streams, stop, the connection cap, authorization (uid, PID namespaces,
//! nested namespaces, the `/proc/PID/root` path into the container) and memory.
//!
//! Most tests need no root: the [`Authorizer`] serves the PID namespace of the test
//! process itself (`Authorizer::for_pid(std::process::id(), uid)`), the same code path
//! the supervisor uses with the container's PID 1. The tests that create PID namespaces
//! or switch uid need root and skip loudly without it (`ENVC_REQUIRE_ROOT=1` makes that a
//! failure); so do the curl tests when curl is missing.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use envc::devlxd::{
    Authorizer, GuestApi, Limits, ServerHandle, spawn, spawn_waiting, spawn_with_limits,
};
use indexmap::IndexMap;

// ---------------------------------------------------------------- fixtures

/// A scratch directory under /tmp (short socket paths; traversable by other uids),
/// removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "envc-devlxd-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// True when root; otherwise a loud skip (a failure under `ENVC_REQUIRE_ROOT=1`).
fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    if std::env::var("ENVC_REQUIRE_ROOT").as_deref() == Ok("1") {
        panic!("{test}: needs root, and ENVC_REQUIRE_ROOT=1 forbids skipping it");
    }
    eprintln!("\n**************** SKIPPED (needs root): {test} ****************\n");
    false
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// True when curl is installed; otherwise a loud skip (a failure under
/// `ENVC_REQUIRE_ROOT=1`, i.e. in CI).
fn require_curl(test: &str) -> bool {
    if have("curl") {
        return true;
    }
    if std::env::var("ENVC_REQUIRE_ROOT").as_deref() == Ok("1") {
        panic!("{test}: needs curl (apt-get install curl)");
    }
    eprintln!("\n**************** SKIPPED (needs curl): {test} ****************\n");
    false
}

fn config() -> IndexMap<String, String> {
    let mut c = IndexMap::new();
    for (k, v) in [
        ("user.foo", "bar"),
        ("user.with space", "spaced"),
        ("user.meta-data", "foo: bar\n"),
        ("user.user-data", "#cloud-config\nhostname: legacy\n"),
        (
            "cloud-init.user-data",
            "#cloud-config\nruncmd:\n  - [touch, /run/ok]\n",
        ),
        ("cloud-init.network-config", "version: 2\nethernets: {}\n"),
        // Not served (the plan only carries user.*/cloud-init.*, but the server must
        // refuse others anyway).
        ("security.nesting", "true"),
    ] {
        c.insert(k.to_owned(), v.to_owned());
    }
    c
}

fn devices() -> envc::plan::GuestDevices {
    let mut d = envc::plan::GuestDevices::default();
    let mut eth0 = envc::plan::DeviceKeys::default();
    eth0.insert("type".to_owned(), "nic".to_owned());
    eth0.insert("name".to_owned(), "eth0".to_owned());
    eth0.insert("hwaddr".to_owned(), "00:16:3e:01:02:03".to_owned());
    eth0.insert("nictype".to_owned(), "bridged".to_owned());
    d.insert("eth0".to_owned(), eth0);
    let mut data = envc::plan::DeviceKeys::default();
    data.insert("type".to_owned(), "disk".to_owned());
    data.insert("path".to_owned(), "/data".to_owned());
    data.insert("source".to_owned(), "/srv/data".to_owned());
    d.insert("data".to_owned(), data);
    d
}

/// A listening socket at `dir/sock`, mode 0666 like /dev/lxd/sock.
fn listener(dir: &Path) -> (PathBuf, OwnedFd) {
    let path = dir.join("sock");
    let l = UnixListener::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    (path, OwnedFd::from(l))
}

fn api(authorized: Authorizer) -> GuestApi {
    GuestApi {
        name: "c1".into(),
        host_name: "envc-host".into(),
        config: config(),
        devices: devices(),
        authorized,
    }
}

/// An authorizer that admits the test process (its PID namespace, its uid).
fn me() -> Authorizer {
    Authorizer::for_pid(std::process::id(), uid()).unwrap()
}

struct Fixture {
    sock: PathBuf,
    server: Option<ServerHandle>,
    _dir: Scratch,
}

impl Fixture {
    fn handle(&self) -> &ServerHandle {
        self.server.as_ref().unwrap()
    }
    fn stop(&mut self) {
        self.server.take().unwrap().stop();
    }
}

fn start_with(name: &str, auth: Authorizer, limits: Limits) -> Fixture {
    let dir = Scratch::new(name);
    let (sock, fd) = listener(&dir.0);
    let server = spawn_with_limits(fd, api(auth), limits).unwrap();
    Fixture {
        sock,
        server: Some(server),
        _dir: dir,
    }
}

fn start(name: &str) -> Fixture {
    let dir = Scratch::new(name);
    let (sock, fd) = listener(&dir.0);
    let server = spawn(fd, api(me())).unwrap();
    Fixture {
        sock,
        server: Some(server),
        _dir: dir,
    }
}

fn quick_limits() -> Limits {
    Limits {
        request_timeout: Duration::from_millis(800),
        ..Limits::default()
    }
}

// ---------------------------------------------------------------- the Rust client

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// `read`, retrying when a signal interrupts it (reads with a timeout are not restarted).
fn read_some(s: &mut UnixStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn connect(sock: &Path) -> UnixStream {
    let s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads one response (framed by Content-Length; `head` for a HEAD request).
fn read_reply(s: &mut UnixStream, buf: &mut Vec<u8>, head: bool) -> Reply {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(n) = resp.parse(buf).unwrap() {
            let status = resp.code.unwrap();
            let hdrs: Vec<(String, String)> = resp
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_owned(),
                        String::from_utf8(h.value.to_vec()).unwrap(),
                    )
                })
                .collect();
            let len: usize = hdrs
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().unwrap())
                .expect("Content-Length");
            let len = if head { 0 } else { len };
            while buf.len() < n + len {
                let mut chunk = [0u8; 4096];
                let k = read_some(s, &mut chunk).unwrap();
                assert!(k > 0, "EOF inside a body");
                buf.extend_from_slice(&chunk[..k]);
            }
            let body = buf[n..n + len].to_vec();
            buf.drain(..n + len);
            return Reply {
                status,
                headers: hdrs,
                body,
            };
        }
        let mut chunk = [0u8; 4096];
        let k = read_some(s, &mut chunk).unwrap();
        assert!(k > 0, "EOF before a complete response: {buf:?}");
        buf.extend_from_slice(&chunk[..k]);
    }
}

/// Sends `raw` on a fresh connection and returns everything until the server closes
/// (a reset after the answer, as when the server closes with input unread, ends it too).
fn exchange(sock: &Path, raw: &[u8]) -> Vec<u8> {
    let mut s = connect(sock);
    // The server may answer (and close) before taking it all: 503, 413, 431.
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match read_some(&mut s, &mut chunk) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset && !out.is_empty() => return out,
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn request(sock: &Path, method: &str, path: &str, body: &str) -> Reply {
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: lxd\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = connect(sock);
    s.write_all(raw.as_bytes()).unwrap();
    read_reply(&mut s, &mut Vec::new(), method == "HEAD")
}

fn get(sock: &Path, path: &str) -> Reply {
    request(sock, "GET", path, "")
}

/// Whether the server has closed `s` (EOF within `within`).
fn closed_within(s: &mut UnixStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 256];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            // A signal (glibc's setxid broadcast, say) interrupted the timed read.
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

// ---------------------------------------------------------------- endpoints

#[test]
fn every_endpoint_byte_exact() {
    let f = start("exact");
    let s = &f.sock;
    let close = |path: &str| {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: lxd\r\nConnection: close\r\n\r\n");
        String::from_utf8(exchange(s, raw.as_bytes())).unwrap()
    };
    assert_eq!(
        close("/"),
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\
         Connection: close\r\n\r\n[\"/1.0\"]\n"
    );
    let body = r#"{"api_version":"1.0","instance_type":"container","location":"envc-host","state":"Started"}"#;
    assert_eq!(
        close("/1.0"),
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}\n",
            body.len() + 1
        )
    );
    assert_eq!(
        close("/1.0/config/user.foo"),
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 3\r\n\
         Connection: close\r\n\r\nbar"
    );
    assert_eq!(
        close("/1.0/config/security.nesting"),
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n\
         X-Content-Type-Options: nosniff\r\nContent-Length: 10\r\nConnection: close\r\n\r\n\
         Forbidden\n"
    );

    let r = get(s, "/1.0/config");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.text(),
        "[\"/1.0/config/user.foo\",\"/1.0/config/user.with space\",\
         \"/1.0/config/user.meta-data\",\"/1.0/config/user.user-data\",\
         \"/1.0/config/cloud-init.user-data\",\"/1.0/config/cloud-init.network-config\"]\n"
    );
    for key in [
        "user.foo",
        "user.meta-data",
        "user.user-data",
        "cloud-init.user-data",
        "cloud-init.network-config",
    ] {
        let r = get(s, &format!("/1.0/config/{key}"));
        assert_eq!((r.status, r.text()), (200, config()[key].as_str()), "{key}");
        assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    }
    // Percent-encoded keys are decoded (LXD: url.PathUnescape of the encoded segment).
    assert_eq!(get(s, "/1.0/config/user.with%20space").text(), "spaced");
    assert_eq!(get(s, "/1.0/config/user%2Efoo").text(), "bar");
    let r = get(s, "/1.0/config/user.%zz");
    assert_eq!((r.status, r.text()), (400, "Bad Request\n"));
    let r = get(s, "/1.0/config/security%2Enesting");
    assert_eq!(r.status, 403);
    let r = get(s, "/1.0/config/user.missing");
    assert_eq!((r.status, r.text()), (404, "Not Found\n"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(get(s, "/1.0/config/raw.lxc").status, 403);

    let r = get(s, "/1.0/meta-data");
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.text(), "instance-id: c1\nlocal-hostname: c1\nfoo: bar\n");

    let r = get(s, "/1.0/devices");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.text(),
        "{\"eth0\":{\"type\":\"nic\",\"name\":\"eth0\",\"hwaddr\":\"00:16:3e:01:02:03\",\
         \"nictype\":\"bridged\"},\"data\":{\"type\":\"disk\",\"path\":\"/data\",\
         \"source\":\"/srv/data\"}}\n"
    );

    // Unknown paths: Go's NotFound; query strings and absolute-form targets are fine.
    for p in [
        "/2.0",
        "/1.0/",
        "/1.0/nope",
        "/1.0/config/",
        "/1.0/config/user.foo/x",
    ] {
        let r = get(s, p);
        assert_eq!((r.status, r.text()), (404, "404 page not found\n"), "{p}");
    }
    assert_eq!(get(s, "/1.0/config?recursion=1").status, 200);
    assert_eq!(get(s, "http://lxd/1.0/config/user.foo").text(), "bar");
}

#[test]
fn undefined_methods_get_501_like_lxd() {
    let f = start("methods");
    let s = &f.sock;
    for (m, p) in [
        ("POST", "/1.0"),
        ("PUT", "/1.0"),
        ("DELETE", "/1.0"),
        ("PATCH", "/"),
        ("POST", "/1.0/config"),
        ("PUT", "/1.0/config/user.foo"),
        ("DELETE", "/1.0/devices"),
        ("PATCH", "/1.0/meta-data"),
        ("POST", "/1.0/events"),
    ] {
        let r = request(s, m, p, "");
        assert_eq!((r.status, r.text()), (501, "Not Implemented\n"), "{m} {p}");
    }
    // HEAD is not defined either: 501, with the headers of the body but no body.
    let r = request(s, "HEAD", "/1.0", "");
    assert_eq!(r.status, 501);
    assert_eq!(r.header("content-length"), Some("16"));
    // Methods LXD's router doesn't know at all.
    let r = request(s, "OPTIONS", "/1.0", "");
    assert_eq!(
        (r.status, r.text()),
        (404, "Method \"OPTIONS\" not found\n")
    );
    // Unknown path wins over the method.
    assert_eq!(
        request(s, "POST", "/nope", "").text(),
        "404 page not found\n"
    );
}

#[test]
fn patch_ready() {
    let f = start("patch");
    let s = &f.sock;
    assert!(get(s, "/1.0").text().contains("\"state\":\"Started\""));
    assert!(!f.handle().guest_ready());
    let r = request(s, "PATCH", "/1.0", r#"{"state":"Ready"}"#);
    assert_eq!((r.status, r.text()), (200, ""));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert!(get(s, "/1.0").text().contains("\"state\":\"Ready\""));
    assert!(f.handle().guest_ready());

    let r = request(s, "PATCH", "/1.0", r#"{"state":"Stopped"}"#);
    assert_eq!((r.status, r.text()), (400, "Invalid state \"Stopped\"\n"));
    let r = request(s, "PATCH", "/1.0", "");
    assert_eq!((r.status, r.text()), (400, "Invalid request body: EOF\n"));
    let r = request(s, "PATCH", "/1.0", "{not json");
    assert_eq!(r.status, 400);
    assert!(r.text().starts_with("Invalid request body: "));
    // Still Ready after the refused ones.
    assert!(get(s, "/1.0").text().contains("\"state\":\"Ready\""));

    // A chunked body works too.
    let mut c = connect(s);
    c.write_all(
        b"PATCH /1.0 HTTP/1.1\r\nHost: lxd\r\nTransfer-Encoding: chunked\r\n\r\n\
          9\r\n{\"state\":\r\na\r\n\"Started\"}\r\n0\r\n\r\n",
    )
    .unwrap();
    let r = read_reply(&mut c, &mut Vec::new(), false);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!f.handle().guest_ready());
}

// ---------------------------------------------------------------- curl

fn curl(sock: &Path, args: &[&str]) -> (String, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--unix-socket"])
        .arg(sock)
        .args(["-w", "\n%{http_code} %{content_type}"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "curl {args:?}: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, meta) = text.rsplit_once('\n').unwrap();
    let (code, ctype) = meta.split_once(' ').unwrap();
    (body.to_owned(), code.to_owned(), ctype.to_owned())
}

#[test]
fn curl_every_endpoint() {
    if !require_curl("curl_every_endpoint") {
        return;
    }
    let f = start("curl");
    let s = &f.sock;
    let c = |args: &[&str]| curl(s, args);
    assert_eq!(
        c(&["http://lxd/"]),
        (
            "[\"/1.0\"]\n".into(),
            "200".into(),
            "application/json".into()
        )
    );
    let (body, code, _) = c(&["http://lxd/1.0"]);
    assert_eq!(code, "200");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"api_version":"1.0","instance_type":"container",
                           "location":"envc-host","state":"Started"})
    );
    let (body, _, _) = c(&["http://lxd/1.0/config"]);
    let keys: Vec<String> = serde_json::from_str(&body).unwrap();
    assert_eq!(keys.len(), 6);
    assert_eq!(
        c(&["http://lxd/1.0/config/cloud-init.user-data"]),
        (
            config()["cloud-init.user-data"].clone(),
            "200".into(),
            "application/octet-stream".into()
        )
    );
    assert_eq!(c(&["http://lxd/1.0/config/user.with%20space"]).0, "spaced");
    assert_eq!(
        c(&["http://lxd/1.0/config/security.nesting"]),
        (
            "Forbidden\n".into(),
            "403".into(),
            "text/plain; charset=utf-8".into()
        )
    );
    assert_eq!(c(&["http://lxd/1.0/config/user.nope"]).1, "404");
    assert_eq!(
        c(&["http://lxd/1.0/meta-data"]).0,
        "instance-id: c1\nlocal-hostname: c1\nfoo: bar\n"
    );
    let (body, _, _) = c(&["http://lxd/1.0/devices"]);
    let devs: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(devs["eth0"]["hwaddr"], "00:16:3e:01:02:03");
    assert_eq!(devs["data"]["type"], "disk");
    assert_eq!(c(&["-X", "POST", "http://lxd/1.0/config"]).1, "501");
    assert_eq!(c(&["http://lxd/nope"]).1, "404");

    // PATCH Ready, once with Expect: 100-continue (the server must send 100 first).
    let (_, code, _) = c(&[
        "-X",
        "PATCH",
        "-H",
        "Expect: 100-continue",
        "-d",
        r#"{"state":"Ready"}"#,
        "http://lxd/1.0",
    ]);
    assert_eq!(code, "200");
    assert!(c(&["http://lxd/1.0"]).0.contains("\"Ready\""));
    assert_eq!(
        c(&[
            "-X",
            "PATCH",
            "-d",
            r#"{"state":"Bogus"}"#,
            "http://lxd/1.0"
        ])
        .1,
        "400"
    );

    // Several URLs on one curl: it reuses the connection (keep-alive).
    let out = Command::new("curl")
        .args(["-sS", "-v", "--unix-socket"])
        .arg(s)
        .args([
            "http://lxd/1.0/config/user.foo",
            "http://lxd/1.0/config/user.foo",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "barbar");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Re-using existing connection"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------- connections

#[test]
fn keep_alive_and_pipelining() {
    let f = start("keepalive");
    let mut c = connect(&f.sock);
    let mut buf = Vec::new();
    c.write_all(b"GET /1.0/config/user.foo HTTP/1.1\r\nHost: lxd\r\n\r\n")
        .unwrap();
    assert_eq!(read_reply(&mut c, &mut buf, false).text(), "bar");
    c.write_all(b"GET / HTTP/1.1\r\nHost: lxd\r\n\r\n").unwrap();
    assert_eq!(read_reply(&mut c, &mut buf, false).text(), "[\"/1.0\"]\n");
    // Three pipelined requests in one write, answered in order.
    c.write_all(
        b"GET /1.0/config/user.foo HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n\
          PATCH /1.0 HTTP/1.1\r\nContent-Length: 17\r\n\r\n{\"state\":\"Ready\"}",
    )
    .unwrap();
    assert_eq!(read_reply(&mut c, &mut buf, false).text(), "bar");
    assert_eq!(read_reply(&mut c, &mut buf, false).status, 404);
    assert_eq!(read_reply(&mut c, &mut buf, false).status, 200);
    assert!(buf.is_empty());
    // HTTP/1.0 without keep-alive: answered, then closed.
    c.write_all(b"GET /1.0/config/user.foo HTTP/1.0\r\n\r\n")
        .unwrap();
    let r = read_reply(&mut c, &mut buf, false);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(closed_within(&mut c, Duration::from_secs(2)));
    // HTTP/1.0 with keep-alive: told so, and kept.
    let mut c = connect(&f.sock);
    c.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let r = read_reply(&mut c, &mut buf, false);
    assert_eq!(r.header("connection"), Some("keep-alive"));
    c.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    assert_eq!(read_reply(&mut c, &mut buf, false).status, 200);
}

#[test]
fn ten_concurrent_clients() {
    let f = start("concurrent");
    let n = 10;
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let sock = f.sock.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut c = connect(&sock);
                barrier.wait();
                let mut buf = Vec::new();
                for j in 0..50 {
                    let path = if (i + j) % 2 == 0 {
                        "/1.0/config/user.foo"
                    } else {
                        "/1.0/devices"
                    };
                    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: lxd\r\n\r\n").as_bytes())
                        .unwrap();
                    let r = read_reply(&mut c, &mut buf, false);
                    assert_eq!(r.status, 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    if have("curl") {
        // And ten curl processes at once.
        let kids: Vec<Child> = (0..10)
            .map(|_| {
                Command::new("curl")
                    .args(["-sS", "--max-time", "10", "--unix-socket"])
                    .arg(&f.sock)
                    .arg("http://lxd/1.0/config/user.foo")
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for k in kids {
            let out = k.wait_with_output().unwrap();
            assert_eq!(out.stdout, b"bar");
        }
    }
}

#[test]
fn slow_client_does_not_block_others_and_is_dropped() {
    let f = start_with("slow", me(), quick_limits());
    let mut slow = connect(&f.sock);
    slow.write_all(b"GET /1.0 HTTP/1.1\r\nHo").unwrap();
    let started = Instant::now();
    // Others are served meanwhile, at once.
    for _ in 0..20 {
        assert_eq!(get(&f.sock, "/1.0/config/user.foo").text(), "bar");
    }
    assert!(started.elapsed() < Duration::from_millis(500));
    // Trickling bytes does not extend its deadline.
    std::thread::sleep(Duration::from_millis(400));
    let _ = slow.write_all(b"st: l");
    // Dropped after request_timeout (0.8 s), with nothing sent.
    let mut got = Vec::new();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = slow.read_to_end(&mut got);
    let dropped_after = started.elapsed();
    assert!(got.is_empty(), "{got:?}");
    assert!(
        dropped_after >= Duration::from_millis(700) && dropped_after < Duration::from_secs(3),
        "{dropped_after:?}"
    );
    // An idle keep-alive connection is not held to the request timeout.
    let mut idle = connect(&f.sock);
    std::thread::sleep(Duration::from_millis(1200));
    idle.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_reply(&mut idle, &mut Vec::new(), false).status, 200);
}

#[test]
fn oversized_requests_are_refused() {
    let f = start("oversized");
    // Head over 64 KiB: 431.
    let mut raw = b"GET /1.0 HTTP/1.1\r\nX-Big: ".to_vec();
    raw.resize(70 * 1024, b'a');
    raw.extend_from_slice(b"\r\n\r\n");
    let mut c = connect(&f.sock);
    let _ = c.write_all(&raw);
    let r = read_reply(&mut c, &mut Vec::new(), false);
    assert_eq!(r.status, 431);
    assert_eq!(r.header("connection"), Some("close"));
    // Too many header lines: 431.
    let mut raw = b"GET /1.0 HTTP/1.1\r\n".to_vec();
    for i in 0..100 {
        raw.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    assert!(exchange(&f.sock, &raw).starts_with(b"HTTP/1.1 431 "));
    // Declared body over the limit: 413 at once, even while the body is still coming.
    let body = vec![b'x'; 100 * 1024];
    let mut c = connect(&f.sock);
    c.write_all(
        format!(
            "PATCH /1.0 HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let _ = c.write_all(&body);
    let r = read_reply(&mut c, &mut Vec::new(), false);
    assert_eq!((r.status, r.text()), (413, "Request Entity Too Large\n"));
    // A chunked body growing over the limit: 413.
    let mut raw = b"PATCH /1.0 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..20 {
        raw.extend_from_slice(b"1000\r\n");
        raw.extend_from_slice(&[b'x'; 0x1000]);
        raw.extend_from_slice(b"\r\n");
    }
    let mut c = connect(&f.sock);
    let _ = c.write_all(&raw);
    assert_eq!(read_reply(&mut c, &mut Vec::new(), false).status, 413);
    // Garbage: 400.
    assert!(exchange(&f.sock, b"\x01\x02 nonsense\r\n\r\n").starts_with(b"HTTP/1.1 400 "));
    // And the server is fine.
    assert_eq!(get(&f.sock, "/1.0/config/user.foo").text(), "bar");
}

#[test]
fn events_stream_stays_open_without_blocking() {
    let mut f = start("events");
    let mut ev = connect(&f.sock);
    ev.write_all(b"GET /1.0/events?type=config,device HTTP/1.1\r\nHost: lxd\r\n\r\n")
        .unwrap();
    let want = b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Type: application/json\r\n\
                 X-Content-Type-Options: nosniff\r\n\r\n";
    let mut head = vec![0u8; want.len()];
    ev.read_exact(&mut head).unwrap();
    assert_eq!(head, want);
    let mut ev2 = connect(&f.sock);
    ev2.write_all(b"GET /1.0/events HTTP/1.1\r\n\r\n").unwrap();
    ev2.read_exact(&mut head).unwrap();
    // Others are served while the streams are open.
    for _ in 0..10 {
        assert_eq!(get(&f.sock, "/1.0/config/user.foo").text(), "bar");
    }
    // The stream stays open well past every timeout that applies to requests, with
    // nothing sent on it (profiles don't change while running).
    let g = start_with("events-quick", me(), quick_limits());
    let mut ev3 = connect(&g.sock);
    ev3.write_all(b"GET /1.0/events HTTP/1.1\r\n\r\n").unwrap();
    ev3.read_exact(&mut head).unwrap();
    assert!(!closed_within(&mut ev3, Duration::from_millis(1500)));
    assert!(!closed_within(&mut ev, Duration::from_millis(10)));
    // A client closing its stream is noticed (no leak): the server keeps serving.
    drop(ev2);
    assert_eq!(get(&f.sock, "/").status, 200);
    // Stopping the server ends the streams.
    f.stop();
    assert!(closed_within(&mut ev, Duration::from_secs(2)));
}

#[test]
fn stop_is_prompt_and_closes_everything() {
    let mut f = start("stop");
    let mut idle = connect(&f.sock);
    let mut half = connect(&f.sock);
    half.write_all(b"GET / HTT").unwrap();
    assert_eq!(get(&f.sock, "/").status, 200);
    let t = Instant::now();
    f.stop();
    let took = t.elapsed();
    assert!(took < Duration::from_millis(200), "stop took {took:?}");
    assert!(closed_within(&mut idle, Duration::from_secs(1)));
    assert!(closed_within(&mut half, Duration::from_secs(1)));
    // The listener is closed too: nothing accepts any more.
    assert!(UnixStream::connect(&f.sock).is_err());

    // Dropping the handle stops it as well.
    let dir = Scratch::new("drop");
    let (sock, fd) = listener(&dir.0);
    let h = spawn(fd, api(me())).unwrap();
    let mut c = connect(&sock);
    let t = Instant::now();
    drop(h);
    assert!(t.elapsed() < Duration::from_millis(200));
    assert!(closed_within(&mut c, Duration::from_secs(1)));
}

/// The supervisor starts the server's thread before the container's socket exists
/// (`spawn_waiting`) and hands it the listener later (`serve`): nothing is served
/// before, everything after; a server that never got its listener stops at once;
/// `request_stop` closes the listener and every connection without waiting, and the
/// drop that follows joins the thread.
#[test]
fn a_server_started_before_its_listener_serves_once_given_it() {
    // Never given a listener: stopping it is prompt, and so is dropping it.
    let t = Instant::now();
    spawn_waiting(api(me()), Limits::default()).unwrap().stop();
    drop(spawn_waiting(api(me()), Limits::default()).unwrap());
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );

    let dir = Scratch::new("waiting");
    let (sock, fd) = listener(&dir.0);
    let mut h = spawn_waiting(api(me()), Limits::default()).unwrap();
    // Not served yet: the connection is queued by the kernel, nothing answers.
    let mut early = connect(&sock);
    early
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    early
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        matches!(read_some(&mut early, &mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut),
        "answered before it had its listener"
    );
    h.serve(fd).unwrap();
    // The queued request is answered now, and new ones too.
    early
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reply = Vec::new();
    assert_eq!(read_reply(&mut early, &mut reply, false).status, 200);
    assert_eq!(get(&sock, "/1.0").status, 200);
    // A second listener is refused.
    let (_, fd2) = listener(&Scratch::new("waiting2").0);
    assert!(h.serve(fd2).is_err());

    let mut idle = connect(&sock);
    let t = Instant::now();
    h.request_stop();
    assert!(
        t.elapsed() < Duration::from_millis(50),
        "request_stop waited"
    );
    assert!(closed_within(&mut idle, Duration::from_secs(1)));
    drop(h);
    assert!(
        UnixStream::connect(&sock).is_err(),
        "the listener is still open"
    );
}

#[test]
fn connection_cap_makes_room_or_refuses() {
    let limits = Limits {
        max_connections: 4,
        ..Limits::default()
    };
    let f = start_with("cap", me(), limits);
    // Four idle connections: a fifth evicts the longest idle one.
    let mut idle: Vec<UnixStream> = (0..4).map(|_| connect(&f.sock)).collect();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(get(&f.sock, "/").status, 200);
    assert!(closed_within(&mut idle[0], Duration::from_secs(1)));
    drop(idle);
    std::thread::sleep(Duration::from_millis(50));
    // Four events streams (busy, never evicted): a fifth connection gets 503.
    let mut streams = Vec::new();
    for _ in 0..4 {
        let mut e = connect(&f.sock);
        e.write_all(b"GET /1.0/events HTTP/1.1\r\n\r\n").unwrap();
        let mut head = [0u8; 16];
        e.read_exact(&mut head).unwrap();
        streams.push(e);
    }
    let r = String::from_utf8(exchange(&f.sock, b"GET / HTTP/1.1\r\n\r\n")).unwrap();
    assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{r}");
    // Closing one makes room again.
    drop(streams.pop());
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(get(&f.sock, "/").status, 200);
}

// ---------------------------------------------------------------- authorization

fn assert_refused(sock: &Path, why: &str) {
    let raw = exchange(sock, b"GET /1.0 HTTP/1.1\r\nHost: lxd\r\n\r\n");
    let text = String::from_utf8(raw).unwrap();
    assert!(
        text.starts_with(
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain; charset=utf-8\r\n"
        ),
        "{text}"
    );
    assert!(text.contains("Connection: close\r\n"), "{text}");
    assert!(text.ends_with(&format!("\r\n\r\n{why}\n")), "{text}");
}

#[test]
fn other_uid_gets_401() {
    // The right PID namespace, the wrong uid.
    let wrong = Authorizer::for_pid(std::process::id(), uid().wrapping_add(1)).unwrap();
    let f = start_with("uid", wrong, Limits::default());
    assert_refused(&f.sock, "Access denied for non-root user");
    // Even for paths and methods that don't exist.
    let text = String::from_utf8(exchange(&f.sock, b"DELETE /nope HTTP/1.1\r\n\r\n")).unwrap();
    assert!(text.starts_with("HTTP/1.1 401 "), "{text}");
}

#[test]
fn non_root_process_gets_401() {
    if !require_root("non_root_process_gets_401") || !require_curl("non_root_process_gets_401") {
        return;
    }
    let f = start("nonroot");
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "curl",
            "-sS",
            "-w",
            "\n%{http_code}",
            "--unix-socket",
        ])
        .arg(&f.sock)
        .arg("http://lxd/1.0")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Access denied for non-root user\n\n401",
        "{out:?}"
    );
    // Root still gets in.
    assert_eq!(get(&f.sock, "/").status, 200);
}

/// `unshare --pid --fork sleep 30`: a process in a new PID namespace (child of ours).
struct NsProcess {
    unshare: Child,
    pid: u32,
}

impl NsProcess {
    // Its Drop kills and waits for the child.
    #[allow(clippy::zombie_processes)]
    fn start() -> NsProcess {
        let mut unshare = Command::new("unshare")
            .args(["--pid", "--fork", "sleep", "30"])
            .spawn()
            .unwrap();
        let children = format!("/proc/{0}/task/{0}/children", unshare.id());
        let t = Instant::now();
        loop {
            let s = std::fs::read_to_string(&children).unwrap_or_default();
            if let Some(pid) = s.split_whitespace().next() {
                let pid: u32 = pid.parse().unwrap();
                // Wait until it has exec'd sleep (so it's in the new namespace for good).
                let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
                if exe.to_string_lossy().contains("sleep") {
                    return NsProcess { unshare, pid };
                }
            }
            if t.elapsed() > Duration::from_secs(5) {
                let _ = unshare.kill();
                let _ = unshare.wait();
                panic!("unshare's child did not show up");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for NsProcess {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

#[test]
fn host_process_is_refused_even_through_proc_pid_root() {
    if !require_root("host_process_is_refused_even_through_proc_pid_root") {
        return;
    }
    // The "container": a process in a new PID namespace. The test process is on the
    // "host" (the parent namespace), with the right uid.
    let ns = NsProcess::start();
    let auth = Authorizer::for_pid(ns.pid, uid()).unwrap();
    let f = start_with("hostproc", auth, Limits::default());
    assert_refused(&f.sock, "Access denied for processes outside the container");
    // Through the container's root, as a host process would reach /dev/lxd/sock.
    let via_root =
        PathBuf::from(format!("/proc/{}/root", ns.pid)).join(f.sock.strip_prefix("/").unwrap());
    assert_refused(
        &via_root,
        "Access denied for processes outside the container",
    );
    // A process inside that namespace is served: nsenter into it and run curl there.
    if have("curl") {
        let out = Command::new("nsenter")
            .args(["--target", &ns.pid.to_string(), "--pid", "--"])
            .args(["curl", "-sS", "--unix-socket"])
            .arg(&f.sock)
            .arg("http://lxd/1.0/config/user.foo")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "bar", "{out:?}");
    }
}

#[test]
fn nested_pid_namespace_is_served() {
    if !require_root("nested_pid_namespace_is_served")
        || !require_curl("nested_pid_namespace_is_served")
    {
        return;
    }
    // The authorizer serves the test's own namespace; curl runs one level below it,
    // and two levels below it.
    let f = start("nested");
    for cmd in [
        vec!["unshare", "--pid", "--fork", "curl"],
        vec![
            "unshare", "--pid", "--fork", "unshare", "--pid", "--fork", "curl",
        ],
    ] {
        let out = Command::new(cmd[0])
            .args(&cmd[1..])
            .args(["-sS", "--unix-socket"])
            .arg(&f.sock)
            .arg("http://lxd/1.0/config/user.foo")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "bar",
            "{cmd:?}: {out:?}"
        );
    }
}

#[test]
fn authorizer_for_a_gone_process_fails() {
    let mut kid = Command::new("true").spawn().unwrap();
    let pid = kid.id();
    kid.wait().unwrap();
    assert!(Authorizer::for_pid(pid, 0).is_err());
}

// ---------------------------------------------------------------- cloud-init

/// The requests cloud-init's LXD datasource makes (cloudinit/sources/DataSourceLXD.py,
/// `_MetaDataReader`), in its order, on one keep-alive connection with python-requests'
/// headers: meta-data, then config, then every listed config route, then devices.
#[test]
fn cloud_init_datasource_sequence() {
    let f = start("cloudinit");
    let mut c = connect(&f.sock);
    let mut buf = Vec::new();
    let mut get = |path: &str| {
        c.write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: lxd\r\nUser-Agent: python-requests/2.31.0\r\n\
                 Accept-Encoding: gzip, deflate\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        read_reply(&mut c, &mut buf, false)
    };
    let md = get("/1.0/meta-data");
    assert_eq!(md.status, 200);
    assert!(
        md.text()
            .starts_with("instance-id: c1\nlocal-hostname: c1\n")
    );
    let routes: Vec<String> = serde_json::from_slice(&get("/1.0/config").body).unwrap();
    let mut sorted = routes.clone();
    sorted.sort();
    let mut seen = IndexMap::new();
    for route in &sorted {
        // requests percent-encodes what isn't allowed in a path (the space here).
        let r = get(&route.replace(' ', "%20"));
        assert_eq!(r.status, 200, "{route}");
        seen.insert(
            route.rsplit('/').next().unwrap().to_owned(),
            r.text().to_owned(),
        );
    }
    assert_eq!(
        seen["cloud-init.user-data"],
        config()["cloud-init.user-data"]
    );
    assert_eq!(seen["user.user-data"], config()["user.user-data"]);
    assert_eq!(
        seen["cloud-init.network-config"],
        config()["cloud-init.network-config"]
    );
    let devices: serde_json::Value = serde_json::from_slice(&get("/1.0/devices").body).unwrap();
    let nics: Vec<&str> = devices
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v["type"] == "nic")
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(nics, ["eth0"]);
}

/// The same through python-requests and urllib3 over the Unix socket, as cloud-init
/// does it (skipped when python3-requests is missing).
#[test]
fn cloud_init_style_python_requests_client() {
    let ok = Command::new("python3")
        .args(["-c", "import requests"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("\n**************** SKIPPED (needs python3-requests) ****************\n");
        return;
    }
    let f = start("python");
    let script = r#"
import json, socket, sys
import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

SOCK = sys.argv[1]

class Conn(HTTPConnection):
    def __init__(self):
        super().__init__("localhost")
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(SOCK)

class Pool(HTTPConnectionPool):
    def __init__(self):
        super().__init__("localhost")
    def _new_conn(self):
        return Conn()

class Adapter(HTTPAdapter):
    def get_connection(self, url, proxies=None):
        return Pool()
    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        return self.get_connection(request.url, proxies)

out = {}
with requests.Session() as s:
    s.mount("http://lxd/1.0", Adapter())
    out["meta-data"] = s.get("http://lxd/1.0/meta-data").content.decode()
    cfg = {}
    for route in sorted(s.get("http://lxd/1.0/config").json()):
        r = s.get("http://lxd" + route)
        if r.ok:
            cfg[route.rpartition("/")[-1]] = r.content.decode()
    out["config"] = cfg
    out["devices"] = s.get("http://lxd/1.0/devices").json()
    out["state"] = s.get("http://lxd/1.0").json()["state"]
    out["patch"] = s.patch("http://lxd/1.0", json={"state": "Ready"}).status_code
print(json.dumps(out))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&f.sock)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["meta-data"],
        "instance-id: c1\nlocal-hostname: c1\nfoo: bar\n"
    );
    assert_eq!(v["config"]["user.with space"], "spaced");
    assert_eq!(
        v["config"]["cloud-init.user-data"],
        config()["cloud-init.user-data"].as_str()
    );
    assert_eq!(v["config"].as_object().unwrap().len(), 6);
    assert_eq!(v["devices"]["eth0"]["name"], "eth0");
    assert_eq!(v["state"], "Started");
    assert_eq!(v["patch"], 200);
    assert!(f.handle().guest_ready());
}

// ---------------------------------------------------------------- memory

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Runs in a child process (see [`server_memory_overhead`]): only the server lives here,
/// the clients are in the parent.
#[test]
fn memory_child() {
    let Ok(dir) = std::env::var("ENVC_DEVLXD_MEMORY_CHILD") else {
        return;
    };
    let (_, fd) = listener(Path::new(&dir));
    let auth = me();
    let before = rss_kib();
    let h = spawn(fd, api(auth)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    println!("RSS spawned {before} {}", rss_kib());
    println!("READY");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
    println!("RSS served {before} {}", rss_kib());
    h.stop();
    println!("RSS stopped {before} {}", rss_kib());
}

#[test]
fn server_memory_overhead() {
    let dir = Scratch::new("memory");
    let mut kid = Command::new(std::env::current_exe().unwrap())
        .args(["memory_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("ENVC_DEVLXD_MEMORY_CHILD", &dir.0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(kid.stdout.take().unwrap()).lines();
    let mut rss: Vec<(String, u64, u64)> = Vec::new();
    // libtest prints "test memory_child ... " in front of the first line.
    let mut note = |line: &str| {
        let Some(at) = line.find("RSS ") else {
            return;
        };
        let parts: Vec<&str> = line[at..].split_whitespace().collect();
        rss.push((
            parts[1].to_owned(),
            parts[2].parse().unwrap(),
            parts[3].parse().unwrap(),
        ));
    };
    for line in lines.by_ref() {
        let line = line.unwrap();
        note(&line);
        if line.ends_with("READY") {
            break;
        }
    }
    let sock = dir.0.join("sock");
    // 1000 requests: 500 on their own connections, 500 on 10 concurrent keep-alive ones,
    // plus an events stream open throughout.
    let mut ev = connect(&sock);
    ev.write_all(b"GET /1.0/events HTTP/1.1\r\n\r\n").unwrap();
    for i in 0..500 {
        let path = ["/1.0", "/1.0/config", "/1.0/devices", "/1.0/meta-data"][i % 4];
        assert_eq!(get(&sock, path).status, 200);
    }
    let threads: Vec<_> = (0..10)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let mut c = connect(&sock);
                let mut buf = Vec::new();
                for _ in 0..50 {
                    c.write_all(b"GET /1.0/config/cloud-init.user-data HTTP/1.1\r\n\r\n")
                        .unwrap();
                    assert_eq!(read_reply(&mut c, &mut buf, false).status, 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(ev);
    kid.stdin.take().unwrap().write_all(b"measure\n").unwrap();
    for line in lines {
        note(&line.unwrap());
    }
    assert!(kid.wait().unwrap().success());
    eprintln!("devlxd server RSS (KiB): {rss:?}");
    let served = rss.iter().find(|r| r.0 == "served").expect("served line");
    let grown = served.2.saturating_sub(served.1);
    eprintln!("devlxd server RSS overhead after 1000 requests: {grown} KiB");
    assert!(grown < 1024, "server added {grown} KiB of RSS");
}
