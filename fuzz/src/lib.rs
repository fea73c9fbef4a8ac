//! What the fuzz targets run, shared by `fuzz_targets/*.rs` (libFuzzer, `cargo fuzz`).
//!
//! The properties: no input panics, hangs or takes more than linear time (libFuzzer's
//! `-timeout` and `-rss_limit_mb` catch the last two); a profile that loads compiles
//! into a plan that passes `Plan::check` and survives a JSON round trip unchanged; a
//! saved plan that `Plan::from_json` accepts re-serialises to the same plan.

use envc::diag::{Style, render};
use envc::plan::Plan;
use envc::profile::parse_layer;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Stacked layers the fuzzed profile can name in `profiles` (the paths the seeds use).
const LAYERS: &[(&str, &str)] = &[
    (
        "base/common.toml",
        include_str!("../../examples/base/common.toml"),
    ),
    (
        "layers/a.toml",
        include_str!("../../tests/fixtures/valid/layers/a.toml"),
    ),
    (
        "layers/b.toml",
        include_str!("../../tests/fixtures/valid/layers/b.toml"),
    ),
    (
        "layers/c.toml",
        include_str!("../../tests/fixtures/valid/layers/c.toml"),
    ),
    (
        "stacked/common.toml",
        include_str!("../../tests/fixtures/invalid/stacked/common.toml"),
    ),
    (
        "stacked/bad-layer.toml",
        include_str!("../../tests/fixtures/invalid/stacked/bad-layer.toml"),
    ),
];

/// A private scratch directory with the stackable layers, made once per process.
fn work_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // scripts/fuzz.sh points ENVC_FUZZ_TMP into fuzz/target/ and removes it after.
        let base = std::env::var_os("ENVC_FUZZ_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("envc-fuzz-{}", std::process::id()));
        for (rel, text) in LAYERS {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
        }
        dir
    })
}

/// Compiles a loaded profile and checks the plan's invariants and its JSON round trip.
fn compile_and_check(profile: &envc::profile::Profile) {
    let plan = envc::compile::compile(profile);
    if let Err(e) = plan.check() {
        panic!("a profile that loads compiled into an inconsistent plan: {e}");
    }
    let _ = plan.to_text();
    let json = plan.to_json();
    match Plan::from_json(&json) {
        Ok(back) => assert!(back == plan, "the plan changed in a JSON round trip"),
        Err(e) => panic!("a compiled plan does not read back: {e}"),
    }
}

/// bytes → UTF-8 (lossy) → parse + structure check of one layer; then the full load
/// (the built-in base under it, stacking, meaning) → compile → check; diagnostics
/// rendered on every path.
pub fn profile(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(problems) = parse_layer("fuzz.toml", &text, None) {
        assert!(!problems.is_empty(), "parse_layer failed with no problem");
        // `load` shows at most MAX_PROBLEMS (rendering each costs time in proportion
        // to the file); one layer's raw list is not cut, so render as many here.
        let shown = problems.len().min(envc::profile::load::MAX_PROBLEMS);
        let _ = render(&problems[..shown], Style::plain());
    }
    let path = work_dir().join("fuzz.toml");
    std::fs::write(&path, text.as_bytes()).unwrap();
    match envc::profile::load(&path) {
        Ok((profile, _sources)) => compile_and_check(&profile),
        Err(problems) => {
            assert!(!problems.is_empty(), "load failed with no problem");
            let _ = render(&problems, Style::plain());
        }
    }
}

/// bytes → UTF-8 (lossy) → `Plan::from_json`; an accepted plan renders as text and
/// re-serialises to the same plan.
pub fn plan_json(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(plan) = Plan::from_json(&text) {
        let _ = plan.to_text();
        let json = plan.to_json();
        match Plan::from_json(&json) {
            Ok(back) => assert!(back == plan, "the plan changed in a JSON round trip"),
            Err(e) => panic!("an accepted plan does not read back: {e}"),
        }
    }
}
