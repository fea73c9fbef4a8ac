//! The short soak, as root (CI): `scripts/soak.sh 100 8` starts and stops 100 containers
//! one after another and 100 more with 8 at a time, with this build's envc, and proves
//! by counting before and after that no mount, cgroup, link, supervisor fd, process or
//! state file leaked and memory did not grow (the script's own checks); then the host is
//! compared as every root suite compares it (`HostState`). The long soak is
//! `scripts/soak.sh 1000`.

mod common;

use common::{HostState, TempDir};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The short soak must stay well inside CI's time (it takes ~15 s on a debug build).
const LIMIT: Duration = Duration::from_secs(120);

/// On the way out (passed, failed or timed out): the detached containers the script
/// started live in sessions of their own; force-stop whatever is still in the soak's
/// run directory, then gc.
struct Guard(std::path::PathBuf);

impl Drop for Guard {
    fn drop(&mut self) {
        let run = self.0.join("run");
        let envc = |args: &[&str]| {
            let _ = Command::new("timeout")
                .arg("20")
                .arg(common::envc_bin())
                .args(args)
                .env("ENVC_RUN_DIR", &run)
                .env("ENVC_LOG_DIR", self.0.join("log"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        let Ok(rd) = std::fs::read_dir(&run) else {
            return;
        };
        for e in rd.filter_map(|e| e.ok()) {
            envc(&["stop", "--force", &e.file_name().to_string_lossy()]);
        }
        envc(&["gc"]);
    }
}

#[test]
fn soak_100_one_by_one_and_100_eight_at_a_time() {
    if !common::require_root("soak_100_one_by_one_and_100_eight_at_a_time") {
        return;
    }
    let _s = common::serial();
    let dir = TempDir::new("hz-soak");
    let _g = Guard(dir.path().join("work"));
    let before = HostState::capture();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/soak.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(&script)
        .args(["100", "8"])
        .env("ENVC", common::envc_bin())
        .env("SOAK_DIR", dir.path().join("work"))
        .env_remove("ENVC_RUN_DIR")
        .env_remove("ENVC_LOG_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group, so a timeout kills the script and everything it started.
    cmd.process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn().expect("start scripts/soak.sh");
    let pgid = child.id() as i32;
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if start.elapsed() > LIMIT {
            // SAFETY: the process group this test created for the script.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (t_out.join().unwrap(), t_err.join().unwrap());
    println!("{stdout}");
    eprintln!("{}", common::tail(&stderr, 6000));
    let status = status.unwrap_or_else(|| panic!("soak.sh did not finish within {LIMIT:?}"));
    assert!(
        status.success(),
        "soak.sh: {status}\n{stdout}\n{}",
        common::tail(&stderr, 6000)
    );
    assert!(stdout.contains("soak.sh: nothing leaked"), "{stdout}");
    println!("soak took {:?}", start.elapsed());
    before.assert_restored_within(Duration::from_secs(5));
}
