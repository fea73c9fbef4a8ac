//! What fuzzing found, kept: every input in `tests/fixtures/fuzz/` (crashers, hangs and
//! slow inputs from `scripts/fuzz.sh`) goes through exactly what the fuzz targets run
//! (fuzz/src/lib.rs) and must end in diagnostics or a clean plan, without a panic and
//! quickly. Plus the time checks fuzzing cannot make: a profile of 1 MB loads in well
//! under a second, whatever it repeats (load, validate, stack, compile and rendering
//! the diagnostics must be linear in the input).
//!
//! Files ending in `.json` are saved plans (`Plan::from_json`); every other file is a
//! profile's text (read as UTF-8, lossily, as the fuzzer does).

use envc::diag::{Style, render};
use envc::plan::Plan;
use envc::profile::parse_layer;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The layers a fuzzed profile can stack (the same as fuzz/src/lib.rs writes).
const LAYERS: &[(&str, &str)] = &[
    ("base/common.toml", "examples/base/common.toml"),
    ("layers/a.toml", "tests/fixtures/valid/layers/a.toml"),
    ("layers/b.toml", "tests/fixtures/valid/layers/b.toml"),
    ("layers/c.toml", "tests/fixtures/valid/layers/c.toml"),
    (
        "stacked/common.toml",
        "tests/fixtures/invalid/stacked/common.toml",
    ),
    (
        "stacked/bad-layer.toml",
        "tests/fixtures/invalid/stacked/bad-layer.toml",
    ),
];

/// A scratch directory (this process's) with the stackable layers.
fn work_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("envc-fuzz-regressions-{}", std::process::id()));
        for (rel, from) in LAYERS {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::copy(root().join(from), &p).unwrap_or_else(|e| panic!("copy {from}: {e}"));
        }
        dir
    })
}

/// How a profile's text ended.
#[derive(Debug)]
enum Outcome {
    /// Loaded, compiled, checked: the plan's step count.
    Plan(usize),
    /// Refused: the problems' count and their rendering.
    Refused(usize, String),
}

/// What the `profile` fuzz target does, returning the full load's outcome. `file` names
/// the profile in the scratch directory (tests running in parallel use different ones).
fn run_profile(file: &str, text: &str) -> Outcome {
    if let Err(problems) = parse_layer(file, text, None) {
        assert!(!problems.is_empty(), "parse_layer failed with no problem");
        // As `load` shows them: at most MAX_PROBLEMS (one layer's list is not cut).
        let shown = problems.len().min(envc::profile::load::MAX_PROBLEMS);
        let _ = render(&problems[..shown], Style::plain());
    }
    let path = work_dir().join(file);
    std::fs::write(&path, text).unwrap();
    let t0 = Instant::now();
    let loaded = envc::profile::load(&path);
    phase("load", t0);
    let outcome = match loaded {
        Ok((profile, _)) => {
            let t0 = Instant::now();
            let plan = envc::compile::compile(&profile);
            phase("compile", t0);
            if let Err(e) = plan.check() {
                panic!("a profile that loads compiled into an inconsistent plan: {e}");
            }
            let _ = plan.to_text();
            let back = Plan::from_json(&plan.to_json())
                .unwrap_or_else(|e| panic!("a compiled plan does not read back: {e}"));
            assert!(back == plan, "the plan changed in a JSON round trip");
            Outcome::Plan(plan.steps.len())
        }
        Err(problems) => {
            assert!(!problems.is_empty(), "load failed with no problem");
            let t0 = Instant::now();
            let r = render(&problems, Style::plain());
            phase("render", t0);
            assert!(r.contains("error: "), "rendered without a summary:\n{r}");
            Outcome::Refused(problems.len(), r)
        }
    };
    let _ = std::fs::remove_file(&path);
    outcome
}

/// Phase times, printed with `--nocapture` when `ENVC_FUZZ_PHASES=1`.
fn phase(what: &str, since: Instant) {
    if std::env::var_os("ENVC_FUZZ_PHASES").is_some() {
        eprintln!("  {what}: {:?}", since.elapsed());
    }
}

/// What the `plan_json` fuzz target does: Ok(steps) or the refusal's message.
fn run_plan(text: &str) -> Result<usize, String> {
    let plan = Plan::from_json(text)?;
    let _ = plan.to_text();
    let back = Plan::from_json(&plan.to_json())
        .unwrap_or_else(|e| panic!("an accepted plan does not read back: {e}"));
    assert!(back == plan, "the plan changed in a JSON round trip");
    Ok(plan.steps.len())
}

fn fixtures() -> Vec<PathBuf> {
    let dir = root().join("tests/fixtures/fuzz");
    let mut v: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Each regression input: no panic, an answer (diagnostics, a plan, or a refused plan
/// with a message), within a few seconds even in a debug build.
#[test]
fn every_fuzz_finding_ends_in_diagnostics_or_a_clean_plan() {
    let mut failures = Vec::new();
    for path in fixtures() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "README.md" {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| {
            if name.ends_with(".json") {
                match run_plan(&text) {
                    Ok(n) => format!("plan of {n} steps"),
                    Err(e) => {
                        assert!(!e.trim().is_empty(), "refused without a message");
                        format!("refused: {e}")
                    }
                }
            } else {
                match run_profile("fuzz.toml", &text) {
                    Outcome::Plan(n) => format!("plan of {n} steps"),
                    Outcome::Refused(n, _) => format!("{n} problem(s)"),
                }
            }
        }));
        let took = start.elapsed();
        match result {
            Ok(what) if took < Duration::from_secs(5) => {
                eprintln!("{name}: {what} in {took:?}");
            }
            Ok(what) => failures.push(format!("{name}: {what}, but took {took:?}")),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{name}: panicked: {msg}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ------------------------------------------------------------------ linear time

const MIB: usize = 1 << 20;
const HEADER: &str = "name = \"hz-big\"\nrootfs = \"rootfs\"\n";

/// `HEADER`, `head`, then `line(i)` for i = 0, 1, … until the text reaches `size`.
fn repeated(size: usize, head: &str, line: impl Fn(usize) -> String) -> String {
    let mut s = format!("{HEADER}{head}");
    let mut i = 0;
    while s.len() < size {
        s.push_str(&line(i));
        i += 1;
    }
    s
}

/// The big profiles: each repeats one thing about 1 MB long.
fn big_profiles(size: usize) -> Vec<(&'static str, String)> {
    vec![
        (
            "distinct-config-keys",
            repeated(size, "[config]\n", |i| format!("\"user.k{i}\" = \"v\"\n")),
        ),
        (
            "environment-keys",
            repeated(size, "[config]\n", |i| {
                format!("\"environment.V{i}\" = \"v\"\n")
            }),
        ),
        (
            "the-same-key",
            repeated(size, "[config]\n", |_| "\"user.k\" = \"v\"\n".into()),
        ),
        (
            "the-same-table",
            repeated(size, "", |_| "[config]\n".into()),
        ),
        (
            "unknown-keys",
            repeated(size, "", |i| format!("unknown{i} = 1\n")),
        ),
        (
            "invalid-config-keys",
            repeated(size, "[config]\n", |i| {
                format!("\"limits.memoryx{i}\" = \"v\"\n")
            }),
        ),
        (
            "devices",
            repeated(size, "", |i| {
                format!("[devices.d{i}]\ntype = \"tmpfs\"\npath = \"/t/d{i}\"\n")
            }),
        ),
        (
            "devices-with-relative-paths",
            repeated(size, "", |i| {
                format!("[devices.d{i}]\ntype = \"tmpfs\"\npath = \"rel{i}\"\n")
            }),
        ),
        (
            "devices-on-the-same-path",
            repeated(size, "", |i| {
                format!("[devices.d{i}]\ntype = \"tmpfs\"\npath = \"/t\"\n")
            }),
        ),
        (
            "init-arguments",
            repeated(size, "[init]\ncommand = [\"/sbin/init\"", |_| {
                ", \"x\"".into()
            }) + "]\n",
        ),
        (
            "nested-arrays",
            format!(
                "{HEADER}x = {}{}\n",
                "[".repeat(size / 2),
                "]".repeat(size / 2)
            ),
        ),
        (
            "a-long-string",
            format!("{HEADER}description = \"{}\"\n", "a".repeat(size)),
        ),
    ]
}

/// The time of one `run_profile`, with what it ended in.
fn time_profile(name: &str, text: &str) -> (Duration, String) {
    let file = format!("{name}.toml");
    let start = Instant::now();
    let outcome = run_profile(&file, text);
    let took = start.elapsed();
    let what = match outcome {
        Outcome::Plan(n) => format!("plan of {n} steps"),
        Outcome::Refused(n, r) => format!("{n} problem(s), {} bytes rendered", r.len()),
    };
    (took, what)
}

/// A 1 MB profile that repeats keys, tables, devices, problems… loads (and compiles, or
/// renders its diagnostics) in well under a second (release build; 5 s for a debug
/// build), and 4 times the input costs about 4 times the time, not 16: the ratio
/// catches quadratic behaviour on any build.
#[test]
fn a_megabyte_profile_loads_in_linear_time() {
    let mut failures = Vec::new();
    // ENVC_FUZZ_BIG_BYTES: another size, to look at a slow case.
    let size = std::env::var("ENVC_FUZZ_BIG_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(MIB);
    // "Well under a second" for a release build; a debug build (cargo test) is 5-10x
    // slower, and this machine may be busy: its bound is looser.
    let limit = if cfg!(debug_assertions) {
        Duration::from_secs(5)
    } else {
        Duration::from_millis(500)
    };
    let quarter: Vec<_> = big_profiles(size / 4);
    for ((name, text), (_, small)) in big_profiles(size).into_iter().zip(quarter) {
        let (mut t_small, _) = time_profile(name, &small);
        let (mut t_big, what) = time_profile(name, &text);
        let ratio_of =
            |big: Duration, small: Duration| big.as_secs_f64() / small.as_secs_f64().max(0.002);
        if ratio_of(t_big, t_small) > 6.0 && t_big < Duration::from_secs(10) {
            // A busy machine (another build, a fuzzer) makes one measure noisy: the
            // best of two.
            t_small = t_small.min(time_profile(name, &small).0);
            t_big = t_big.min(time_profile(name, &text).0);
        }
        let ratio = ratio_of(t_big, t_small);
        eprintln!(
            "{name:30} {:>8} bytes: {t_big:>10.1?} (1/4 size: {t_small:>9.1?}, x{ratio:.1}) {what}",
            text.len()
        );
        if t_big > limit {
            failures.push(format!("{name}: 1 MB took {t_big:?} ({what})"));
        }
        if t_big > Duration::from_millis(100) && ratio > 8.0 {
            failures.push(format!(
                "{name}: 4x the input took {ratio:.1}x the time ({t_small:?} → {t_big:?}): superlinear"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ------------------------------------------------------------------ what `profiles` may name

/// `load` in a thread, with a deadline: a regression hangs no longer than that.
fn load_within(path: &Path, limit: Duration) -> Result<String, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        let r = match envc::profile::load(&p) {
            Ok(_) => Ok("loaded".to_string()),
            Err(problems) => Err(render(&problems, Style::plain())),
        };
        let _ = tx.send(r);
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("loading {} hung (> {limit:?})", path.display()))
}

/// A stacked "profile" that is a character device, a FIFO nobody writes, a /proc file
/// whose read blocks, or a file over the size limit: a diagnostic at once, not a hang or
/// an unbounded read (found while fuzzing `profiles = [...]`).
#[test]
fn stacking_a_device_fifo_or_proc_file_is_an_error_not_a_hang() {
    let dir = work_dir().join("special");
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo.toml");
    let _ = std::fs::remove_file(&fifo);
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let big = dir.join("big.toml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(17 << 20)
        .unwrap();
    let cases = [
        ("/dev/zero", "not a regular file"),
        ("/dev/null", "not a regular file"),
        ("/dev/stdin", ""),
        ("/proc/kmsg", ""),
        (fifo.to_str().unwrap(), "not a regular file"),
        (big.to_str().unwrap(), "larger than 16 MiB"),
    ];
    for (i, (stacked, says)) in cases.iter().enumerate() {
        let top = dir.join(format!("top{i}.toml"));
        std::fs::write(
            &top,
            format!("name = \"hz-fuzz\"\nrootfs = \"rootfs\"\nprofiles = [{stacked:?}]\n"),
        )
        .unwrap();
        let start = Instant::now();
        let rendered = load_within(&top, Duration::from_secs(5))
            .expect_err("stacking a special file must fail");
        // (A long path wraps the message over lines of the diagnostic.)
        let flat = (rendered.split_whitespace())
            .filter(|w| *w != "│")
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            flat.contains("cannot read profile") && flat.contains(says),
            "{stacked}: {rendered}"
        );
        eprintln!(
            "{stacked}: {:?}: {}",
            start.elapsed(),
            rendered
                .lines()
                .find(|l| l.contains("cannot read"))
                .unwrap_or("")
        );
    }
}

/// At most `MAX_PROBLEMS` problems are shown, then how many more there are.
#[test]
fn thousands_of_problems_are_cut_to_the_first_ones() {
    let text = repeated(64 << 10, "[config]\n", |_| "\"user.k\" = \"v\"\n".into());
    match run_profile("many.toml", &text) {
        Outcome::Refused(n, r) => {
            assert_eq!(n, envc::profile::load::MAX_PROBLEMS + 1, "{r}");
            assert!(r.contains("more problems not shown"), "{r}");
        }
        Outcome::Plan(_) => panic!("a profile of duplicate keys loaded"),
    }
}
