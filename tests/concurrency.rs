//! Containers of different names starting and stopping at the same time share the
//! run directory (`/run/envc`) and the cgroup parent (`envc/` in every hierarchy); the
//! last one out removes each. Three loops of short-lived containers, so one's teardown
//! keeps removing what another is about to use: every start must still succeed, and
//! the host ends as it began.

mod common;

use common::{HostState, TempDir};
use std::process::{Command, Stdio};
use std::time::Duration;

const LOOPS: usize = 3;
const STARTS: usize = 40;

#[test]
fn overlapping_short_containers_share_the_run_dir_and_cgroup_parent() {
    if !common::require_root("overlapping_short_containers_share_the_run_dir_and_cgroup_parent") {
        return;
    }
    let _s = common::serial();
    let dir = TempDir::new("cc-overlap");
    let rootfs = common::busybox_rootfs(dir.path());
    let run = dir.path().join("run");
    let log = dir.path().join("log");
    let mut profiles = Vec::new();
    for i in 0..LOOPS {
        let p = dir.path().join(format!("cc-overlap-{i}.toml"));
        std::fs::write(
            &p,
            format!(
                "name = \"cc-overlap-{i}\"\nrootfs = \"{}\"\n[init]\ncommand = [\"/bin/true\"]\n",
                rootfs.display()
            ),
        )
        .unwrap();
        profiles.push(p);
    }
    let before = HostState::capture();
    let loops: Vec<_> = profiles
        .into_iter()
        .map(|profile| {
            let (run, log) = (run.clone(), log.clone());
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                for n in 0..STARTS {
                    let out = Command::new("timeout")
                        .arg("30")
                        .arg(common::envc_bin())
                        .arg("apply")
                        .arg(&profile)
                        .env("ENVC_RUN_DIR", &run)
                        .env("ENVC_LOG_DIR", &log)
                        .stdin(Stdio::null())
                        .output()
                        .expect("run envc");
                    if !out.status.success() {
                        failures.push(format!(
                            "{} start {n}: {}\n{}",
                            profile.display(),
                            out.status,
                            common::tail(&String::from_utf8_lossy(&out.stderr), 2000)
                        ));
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = loops
        .into_iter()
        .flat_map(|t| t.join().expect("a start loop panicked"))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The last container out removed the run directory it shared.
    assert!(
        !run.exists(),
        "the run directory is left: {}",
        run.display()
    );
    before.assert_restored_within(Duration::from_secs(5));
}
