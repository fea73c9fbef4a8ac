//! Benchmark (not a timed test): load + compile a generated profile with 1k,
//! 10k and 100k disk devices, to show the time per device stays flat: the
//! cost grows linearly with the profile.
//!
//!     cargo bench --bench compile
//!
//! Prints the best and the median of several runs, split into load (read,
//! parse, schema, meaning, stacking), compile, and Plan::check (which
//! `envc plan` also runs), and how far apart the time per device is.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SIZES: &[usize] = &[1_000, 10_000, 100_000];
const RUNS: usize = 5;

/// A profile with `n` devices of another kind.
fn kind_text(kind: &str, n: usize) -> String {
    let mut s = String::with_capacity(n * 100);
    s.push_str("name = \"bench\"\nrootfs = \"rootfs\"\n");
    for i in 0..n {
        s.push_str(&match kind {
            "unix-char" => format!(
                "\n[devices.u{i}]\ntype = \"unix-char\"\npath = \"/dev/x/u{i}\"\nmajor = {}\nminor = {}\n",
                200 + i / 1000,
                i % 1000
            ),
            "nic" => format!("\n[devices.n{i}]\ntype = \"nic\"\nnictype = \"p2p\"\n"),
            "tmpfs" => format!(
                "\n[devices.t{i}]\ntype = \"tmpfs\"\npath = \"/t/{}/{i}\"\nsize = \"1MiB\"\n",
                i % 31
            ),
            other => panic!("no kind {other}"),
        });
    }
    s
}

fn profile_text(n: usize) -> String {
    let mut s = String::with_capacity(n * 100);
    s.push_str("name = \"bench\"\nrootfs = \"rootfs\"\n");
    for i in 0..n {
        // Spread over a few depths and parents so the path checks have work to do.
        let dir = i % 97;
        s.push_str(&format!(
            "\n[devices.d{i}]\ntype = \"disk\"\nsource = \"/srv/data/{i}\"\npath = \"/mnt/g{dir}/d{i}\"\nreadonly = {}\n",
            i % 2 == 0
        ));
    }
    s
}

struct Timing {
    load: Duration,
    compile: Duration,
    check: Duration,
    /// CPU time of load + compile: steadier than wall time on a busy machine.
    cpu: Duration,
}

/// This thread's CPU time.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn run(path: &Path) -> Timing {
    let c0 = thread_cpu();
    let t0 = Instant::now();
    let (profile, _) = match envc::profile::load(path) {
        Ok(p) => p,
        Err(p) => panic!("{}", envc::diag::render(&p, envc::diag::Style::plain())),
    };
    let t1 = Instant::now();
    let plan = envc::compile::compile(black_box(&profile));
    let t2 = Instant::now();
    let c2 = thread_cpu();
    plan.check().expect("the plan is valid");
    let t3 = Instant::now();
    black_box(&plan);
    Timing {
        load: t1 - t0,
        compile: t2 - t1,
        check: t3 - t2,
        cpu: c2 - c0,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[0], v[v.len() / 2])
}

fn main() {
    // `cargo bench` passes `--bench`; number arguments select sizes.
    let only: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let dir: PathBuf = std::env::temp_dir().join(format!("envc-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the bench directory");

    println!("load + compile of a profile with N disk devices; best and median of {RUNS} runs");
    println!(
        "{:>8}  {:>9}  {:>9}  {:>9}  {:>8}  {:>8}  {:>8}  {:>10}",
        "N", "best ms", "median", "cpu ms", "load", "compile", "check", "µs/device"
    );
    let mut per_device = Vec::new();
    for &n in SIZES.iter().filter(|n| only.is_empty() || only.contains(n)) {
        let path = dir.join(format!("disks-{n}.toml"));
        std::fs::write(&path, profile_text(n)).expect("write the profile");
        // One warm-up run (page cache, allocator, the schema's OnceLock).
        run(&path);
        let runs: Vec<Timing> = (0..RUNS).map(|_| run(&path)).collect();
        let (best, median) = stats(runs.iter().map(|t| t.load + t.compile).collect());
        let (cpu, _) = stats(runs.iter().map(|t| t.cpu).collect());
        let (load, _) = stats(runs.iter().map(|t| t.load).collect());
        let (compile, _) = stats(runs.iter().map(|t| t.compile).collect());
        let (check, _) = stats(runs.iter().map(|t| t.check).collect());
        println!(
            "{:>8}  {:>9.2}  {:>9.2}  {:>9.2}  {:>8.2}  {:>8.2}  {:>8.2}  {:>10.2}",
            n,
            ms(best),
            ms(median),
            ms(cpu),
            ms(load),
            ms(compile),
            ms(check),
            best.as_secs_f64() * 1e6 / n as f64
        );
        per_device.push(best.as_secs_f64() / n as f64);
    }
    println!(
        "(load: read, parse, schema and meaning checks, stacking; check: Plan::check, which `envc plan` runs too)"
    );
    if per_device.len() > 1 {
        let most = per_device.iter().copied().fold(f64::MIN, f64::max);
        let least = per_device.iter().copied().fold(f64::MAX, f64::min);
        println!(
            "time per device, highest ÷ lowest: {:.2} (linear growth keeps it near 1)",
            most / least
        );
    }
    if only.is_empty() {
        // Other kinds, so no per-kind step (NIC naming, device rules) hides
        // a quadratic loop.
        println!("\n10,000 devices of other kinds");
        println!(
            "{:>10}  {:>9}  {:>9}  {:>10}",
            "kind", "best ms", "cpu ms", "µs/device"
        );
        for kind in ["unix-char", "nic", "tmpfs"] {
            let n = 10_000;
            let path = dir.join(format!("{kind}-{n}.toml"));
            std::fs::write(&path, kind_text(kind, n)).expect("write the profile");
            run(&path);
            let runs: Vec<Timing> = (0..RUNS).map(|_| run(&path)).collect();
            let (best, _) = stats(runs.iter().map(|t| t.load + t.compile).collect());
            let (cpu, _) = stats(runs.iter().map(|t| t.cpu).collect());
            println!(
                "{:>10}  {:>9.2}  {:>9.2}  {:>10.2}",
                kind,
                ms(best),
                ms(cpu),
                best.as_secs_f64() * 1e6 / n as f64
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
