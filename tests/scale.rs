//! A big profile applies, not only compiles: 10,000 tmpfs devices become 10,000
//! mounts inside, every step is reported, and the host ends as it began. (The
//! container's process reports its steps to the supervisor over a socket whose
//! messages hold a few hundred KiB: the results travel in parts.)

mod common;

use common::{HostState, TempDir};
use std::process::{Command, Stdio};
use std::time::Duration;

const DEVICES: usize = 10_000;

#[test]
fn ten_thousand_tmpfs_devices_apply_and_are_all_reported() {
    if !common::require_root("ten_thousand_tmpfs_devices_apply_and_are_all_reported") {
        return;
    }
    let _s = common::serial();
    let dir = TempDir::new("sc-big");
    let rootfs = common::busybox_rootfs(dir.path());
    let mut profile = format!(
        "name = \"sc-big\"\nrootfs = \"{}\"\n[init]\ncommand = [\"/bin/sh\", \"-c\", \
         \"echo SC mounts=$(grep -c ' /t/' /proc/self/mountinfo)\"]\n",
        rootfs.display()
    );
    for i in 0..DEVICES {
        profile.push_str(&format!(
            "\n[devices.t{i}]\ntype = \"tmpfs\"\npath = \"/t/{}/{i}\"\nsize = \"1MiB\"\n",
            i % 100
        ));
    }
    let path = dir.path().join("sc-big.toml");
    std::fs::write(&path, profile).unwrap();
    let report_path = dir.path().join("report.json");
    let before = HostState::capture();
    let out = Command::new("timeout")
        .arg("120")
        .arg(common::envc_bin())
        .arg("apply")
        .arg(&path)
        .arg("--report")
        .arg(&report_path)
        .env("ENVC_RUN_DIR", dir.path().join("run"))
        .env("ENVC_LOG_DIR", dir.path().join("log"))
        .stdin(Stdio::null())
        .output()
        .expect("run envc");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        common::tail(&stderr, 3000)
    );
    assert!(stdout.contains(&format!("SC mounts={DEVICES}")), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let steps = report["steps"].as_array().unwrap();
    let tmpfs: Vec<_> = steps.iter().filter(|s| s["op"] == "MountTmpfs").collect();
    // The profile's devices, and whatever tmpfs mounts the base makes.
    assert!(tmpfs.len() >= DEVICES, "{} MountTmpfs steps", tmpfs.len());
    let not_done: Vec<_> = steps
        .iter()
        .filter(|s| s["status"] != "done" && s["status"] != "skipped")
        .map(|s| format!("{} {}", s["step"], s["op"]))
        .collect();
    assert!(not_done.is_empty(), "steps not done: {not_done:?}");
    before.assert_restored_within(Duration::from_secs(5));
}
