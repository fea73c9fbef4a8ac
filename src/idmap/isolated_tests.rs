//! Tests of [`super`]: allocation files, the lock, release and reclaim, with
//! threads and with processes starting at once.

use super::*;
use crate::idmap::map::HostRange;
use crate::idmap::raw::parse_raw;
use crate::idmap::subid::RootSource;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

/// A run directory under /tmp, removed when dropped (also when a test fails).
struct TempRun(PathBuf);

impl TempRun {
    fn new() -> TempRun {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "envc-idmap-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempRun(path)
    }
}

impl Drop for TempRun {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn root(count: u32) -> RootIds {
    RootIds {
        uid: HostRange::new(100000, count),
        gid: HostRange::new(100000, count),
        source: RootSource::SubIdFiles,
    }
}

fn iso() -> IdmapConfig {
    IdmapConfig {
        isolated: true,
        ..IdmapConfig::default()
    }
}

fn files(run: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir(run))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// No two allocations share a host uid or gid.
fn assert_disjoint(all: &[(String, Allocation)]) {
    for (i, (a, x)) in all.iter().enumerate() {
        for (b, y) in &all[i + 1..] {
            assert!(!x.overlaps(y), "`{a}` {x:?} and `{b}` {y:?} overlap");
        }
    }
}

#[test]
fn two_allocations_do_not_overlap_and_are_recorded() {
    let run = TempRun::new();
    let a = allocate(&run.0, "a", &iso(), &root(10000001)).unwrap();
    let b = allocate(&run.0, "b", &iso(), &root(10000001)).unwrap();
    assert_eq!(a.uid_map_text(340).unwrap(), "0 165536 65536\n");
    assert_eq!(b.uid_map_text(340).unwrap(), "0 231072 65536\n");
    assert_eq!(b.gid_map_text(340).unwrap(), "0 231072 65536\n");
    assert_eq!(files(&run.0), ["a.json", "b.json", "lock"]);
    let text = fs::read_to_string(dir(&run.0).join("a.json")).unwrap();
    assert_eq!(
        text,
        "{\"uids\":{\"start\":165536,\"count\":65536},\"gids\":{\"start\":165536,\"count\":65536}}\n"
    );
    let all = allocations(&run.0).unwrap();
    assert_eq!(all.len(), 2);
    assert_disjoint(&all);
}

#[test]
fn release_frees_the_block() {
    let run = TempRun::new();
    allocate(&run.0, "a", &iso(), &root(10000001)).unwrap();
    allocate(&run.0, "b", &iso(), &root(10000001)).unwrap();
    assert!(release(&run.0, "a").unwrap());
    assert!(
        !release(&run.0, "a").unwrap(),
        "a second release finds nothing"
    );
    assert!(!release(&run.0, "never").unwrap());
    let c = allocate(&run.0, "c", &iso(), &root(10000001)).unwrap();
    assert_eq!(c.root_host_uid(), Some(165536), "a's block is free again");
    // Release with no directory at all.
    let empty = TempRun::new();
    assert!(!release(&empty.0, "x").unwrap());
}

#[test]
fn a_restart_replaces_its_own_record() {
    let run = TempRun::new();
    allocate(&run.0, "a", &iso(), &root(10000001)).unwrap();
    // Its own old file doesn't count as taken: it gets the same block again.
    let again = allocate(&run.0, "a", &iso(), &root(10000001)).unwrap();
    assert_eq!(again.root_host_uid(), Some(165536));
    assert_eq!(allocations(&run.0).unwrap().len(), 1);
    // Restarted without isolated: root's whole range, and the stale file goes.
    let plain = allocate(&run.0, "a", &IdmapConfig::default(), &root(10000001)).unwrap();
    assert_eq!(plain.uid_map_text(340).unwrap(), "0 100000 10000001\n");
    assert!(allocations(&run.0).unwrap().is_empty());
}

#[test]
fn not_isolated_writes_nothing() {
    let run = TempRun::new();
    let m = allocate(&run.0, "a", &IdmapConfig::default(), &root(65536)).unwrap();
    assert_eq!(m.uid_map_text(340).unwrap(), "0 100000 65536\n");
    assert!(!dir(&run.0).exists());
}

#[test]
fn a_killed_supervisors_block_stays_taken_until_reclaim() {
    let run = TempRun::new();
    allocate(&run.0, "dead", &iso(), &root(10000001)).unwrap();
    allocate(&run.0, "alive", &iso(), &root(10000001)).unwrap();
    // A write cut short by a kill.
    fs::write(dir(&run.0).join(".dead2.json.tmp"), "{\"uids\":").unwrap();
    // The supervisor of `dead` was killed: its file stays, its block stays taken.
    let next = allocate(&run.0, "new", &iso(), &root(10000001)).unwrap();
    assert_eq!(next.root_host_uid(), Some(296608));
    release(&run.0, "new").unwrap();
    // gc: only `alive` is running.
    let freed = reclaim(&run.0, |name| name == "alive").unwrap();
    assert_eq!(freed, ["dead"]);
    assert_eq!(files(&run.0), ["alive.json", "lock"]);
    let next = allocate(&run.0, "new", &iso(), &root(10000001)).unwrap();
    assert_eq!(
        next.root_host_uid(),
        Some(165536),
        "the dead block is reused"
    );
    // Nothing to reclaim the second time, nor without a directory.
    assert!(
        reclaim(&run.0, |n| n == "alive" || n == "new")
            .unwrap()
            .is_empty()
    );
    assert!(reclaim(&TempRun::new().0, |_| false).unwrap().is_empty());
}

#[test]
fn running_out_writes_nothing_and_says_why() {
    let run = TempRun::new();
    let small = root(65536 * 2);
    allocate(&run.0, "a", &iso(), &small).unwrap();
    let err = allocate(&run.0, "b", &iso(), &small).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("no free range of 65536 host ids"), "{msg}");
    assert!(
        msg.contains("`a` 165536-231071") && msg.contains("envc gc"),
        "{msg}"
    );
    assert_eq!(files(&run.0), ["a.json", "lock"]);
}

#[test]
fn a_bad_raw_idmap_writes_nothing() {
    let run = TempRun::new();
    let config = IdmapConfig {
        raw: parse_raw("uid 165537 5").unwrap(),
        ..iso()
    };
    let err = allocate(&run.0, "a", &config, &root(10000001)).unwrap_err();
    assert!(matches!(err, IdMapError::Raw(_)), "{err}");
    assert_eq!(files(&run.0), ["lock"]);
}

#[test]
fn a_corrupt_record_is_an_error_naming_it() {
    let run = TempRun::new();
    fs::create_dir_all(dir(&run.0)).unwrap();
    fs::write(dir(&run.0).join("odd.json"), "not json").unwrap();
    let err = allocate(&run.0, "a", &iso(), &root(10000001)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, IdMapError::Corrupt { .. }));
    assert!(msg.contains("odd.json") && msg.contains("envc gc"), "{msg}");
    // gc clears it once `odd` isn't running; then allocation works.
    assert_eq!(reclaim(&run.0, |_| false).unwrap(), ["odd"]);
    allocate(&run.0, "a", &iso(), &root(10000001)).unwrap();
}

#[test]
fn names_that_cannot_be_files_are_refused() {
    let run = TempRun::new();
    for name in ["", ".hidden", "a/b", "nul\0", &"x".repeat(251)] {
        let err = allocate(&run.0, name, &iso(), &root(10000001)).unwrap_err();
        assert!(matches!(err, IdMapError::BadName(_)), "{name:?}");
        assert!(matches!(release(&run.0, name), Err(IdMapError::BadName(_))));
    }
    assert!(!dir(&run.0).exists());
}

#[test]
fn threads_allocating_at_once_get_disjoint_blocks() {
    let run = TempRun::new();
    TEST_PAUSE_MS.store(5, Ordering::SeqCst);
    let n = 16;
    let start = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (run, start) = (run.0.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                allocate(&run, &format!("c{i}"), &iso(), &root(10000001)).unwrap()
            })
        })
        .collect();
    let maps: Vec<IdMap> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    TEST_PAUSE_MS.store(0, Ordering::SeqCst);
    let all = allocations(&run.0).unwrap();
    assert_eq!(all.len(), n);
    assert_disjoint(&all);
    // Each thread got the block it recorded, and together they fill the
    // first n blocks with no gap.
    let mut roots: Vec<u32> = maps.iter().map(|m| m.root_host_uid().unwrap()).collect();
    roots.sort();
    let want: Vec<u32> = (0..n as u32).map(|i| 165536 + i * 65536).collect();
    assert_eq!(roots, want);
}

/// Processes starting at once (this test binary run again as children).
#[test]
fn processes_allocating_at_once_get_disjoint_blocks() {
    const TEST: &str = "idmap::isolated::tests::processes_allocating_at_once_get_disjoint_blocks";
    if let (Some(run), Some(name)) = (
        std::env::var_os("ENVC_IDMAP_TEST_RUN"),
        std::env::var_os("ENVC_IDMAP_TEST_NAME"),
    ) {
        // The child: allocate once, slowly, and end.
        TEST_PAUSE_MS.store(20, Ordering::SeqCst);
        let name = name.into_string().unwrap();
        allocate(Path::new(&run), &name, &iso(), &root(10000001)).unwrap();
        return;
    }
    let run = TempRun::new();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..8)
        .map(|i| {
            std::process::Command::new(&exe)
                .args(["--exact", TEST, "--test-threads=1", "--quiet"])
                .env("ENVC_IDMAP_TEST_RUN", &run.0)
                .env("ENVC_IDMAP_TEST_NAME", format!("p{i}"))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let all = allocations(&run.0).unwrap();
    assert_eq!(all.len(), 8);
    assert_disjoint(&all);
}
