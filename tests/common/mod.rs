//! Shared helpers for envc's integration tests (`mod common;` in a `tests/*.rs` file).
//!
//! The root integration tests run `envc apply` on a profile whose init is the static
//! probe (`tests/probe/probe.c`) and look at what PID 1 saw (the JSON the probe prints on
//! the console), then check that the host is exactly as before ([`HostState`]).
//!
//! Serialization: the tests of ONE file run as threads of one process, in parallel by
//! default. Every test that starts envc/probe/busybox processes or captures a
//! [`HostState`] must hold [`serial()`] for its whole duration. Each `tests/*.rs` file
//! is a SEPARATE process: `serial()` cannot order tests of different files. `cargo test`
//! runs test binaries one after another (fine); nextest runs them concurrently, so its
//! config must put the root tests in one test group with `max-threads = 1` (or run with
//! `--test-threads=1`).
#![allow(dead_code, unused_imports)]

pub mod cgroup2;
mod host_state;
mod mountinfo;
pub mod proc;
pub mod pty;
mod rootfs;
mod tempdir;
pub mod world;

pub use host_state::HostState;
pub use mountinfo::{Mount, parse_mountinfo, parse_mountinfo_line, unescape_mount_field};
pub use rootfs::{
    BIN_APPLETS, BUSYBOX, SBIN_APPLETS, busybox_rootfs, is_static_elf, resolve_in_rootfs, set_init,
};
pub use tempdir::TempDir;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Marker lines the probe prints around its JSON object.
pub const PROBE_BEGIN: &str = "ENVC-PROBE-BEGIN";
pub const PROBE_END: &str = "ENVC-PROBE-END";

/// True when running as root (euid 0). Otherwise prints a loud SKIPPED line and returns
/// false, so the caller can `return` — unless `ENVC_REQUIRE_ROOT=1`, which makes a
/// would-be skip a failure (CI must not silently skip the root tests).
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("ENVC_REQUIRE_ROOT").as_deref() == Ok("1") {
        panic!("{test}: needs root, and ENVC_REQUIRE_ROOT=1 forbids skipping it");
    }
    eprintln!("\n**************** SKIPPED (needs root): {test} ****************\n");
    false
}

/// Path of the probe source.
pub fn probe_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probe/probe.c")
}

/// Compiles the probe into `out` with `cc -static -O2 -Wall -Wextra` and returns the
/// compiler's output (no panic; see [`probe_binary`]).
pub fn compile_probe(out: &Path) -> Output {
    Command::new("cc")
        .args(["-static", "-O2", "-Wall", "-Wextra", "-o"])
        .arg(out)
        .arg(probe_source())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `cc` to build the probe: {e} (apt-get install gcc)"))
}

/// The static probe binary, compiled once per test process (fresh each run) under
/// `CARGO_TARGET_TMPDIR/envc-probe/probe`. Built under a per-process name and renamed
/// into place, so concurrent test processes never see a half-written file.
pub fn probe_binary() -> PathBuf {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("envc-probe");
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
            let tmp = dir.join(format!("probe.{}.tmp", std::process::id()));
            let out = compile_probe(&tmp);
            if !out.status.success() {
                let _ = std::fs::remove_file(&tmp);
                panic!(
                    "compiling {} failed ({}):\n{}{}",
                    probe_source().display(),
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let dst = dir.join("probe");
            std::fs::rename(&tmp, &dst)
                .unwrap_or_else(|e| panic!("rename {} -> {}: {e}", tmp.display(), dst.display()));
            dst
        })
        .clone()
}

/// The envc binary cargo built for this test run.
pub fn envc_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_envc"))
}

/// Every probe JSON object in `console_output`, in order (a rebooted container prints
/// one per boot). Tolerates `\r\n` (a pty console) and any other text around the blocks.
/// Panics on a block that does not parse, or a BEGIN without END.
pub fn extract_all_probe_json(console_output: &str) -> Vec<serde_json::Value> {
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    for line in console_output.split('\n') {
        let line = line.trim_end_matches('\r');
        match line.trim() {
            PROBE_BEGIN => current = Some(String::new()),
            PROBE_END => {
                if let Some(text) = current.take() {
                    let value = serde_json::from_str(&text).unwrap_or_else(|e| {
                        panic!("probe JSON does not parse: {e}\n---\n{text}\n---")
                    });
                    found.push(value);
                }
            }
            _ => {
                if let Some(text) = current.as_mut() {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    if current.is_some() {
        panic!(
            "{PROBE_BEGIN} without {PROBE_END} (probe killed or output cut?) in:\n{}",
            tail(console_output, 4000)
        );
    }
    found
}

/// The (first) probe JSON object in `console_output`; panics, showing the output, if
/// there is none.
pub fn extract_probe_json(console_output: &str) -> serde_json::Value {
    extract_all_probe_json(console_output)
        .into_iter()
        .next()
        .unwrap_or_else(|| {
            panic!(
                "no {PROBE_BEGIN}/{PROBE_END} block in:\n{}",
                tail(console_output, 4000)
            )
        })
}

/// Last `max` bytes (at a char boundary) of `s`, for panic messages.
pub fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Process-wide lock for tests that start processes or compare host state (see the
/// module doc: it does NOT serialize across test files, which are separate processes).
/// A test that panicked while holding it does not poison it for the others.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
