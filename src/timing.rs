//! Where the time goes: milestones since envc's `main` started, for
//! `--timings` and the report.

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

/// Marks the start (call first thing in `main`).
pub fn start() {
    START.get_or_init(Instant::now);
}

/// Microseconds since the start.
pub fn now_us() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

static EARLY: std::sync::Mutex<Vec<(String, u64)>> = std::sync::Mutex::new(Vec::new());

/// Records a milestone before there is a report (loading, compiling).
pub fn mark(what: &str) {
    let us = now_us();
    if let Ok(mut v) = EARLY.lock() {
        v.push((what.to_string(), us));
    }
}

/// Milestones as `--timings` prints them: ms since the start, ms since the
/// one before, what.
pub fn format_milestones<'a>(marks: impl IntoIterator<Item = (&'a str, u64)>) -> String {
    use std::fmt::Write;
    let mut out = String::from("envc: timings (ms since envc started)\n");
    let mut last = 0;
    for (what, us) in marks {
        let _ = writeln!(
            out,
            "  {:>8.3}  (+{:>7.3})  {what}",
            us as f64 / 1000.0,
            (us - last.min(us)) as f64 / 1000.0,
        );
        last = us;
    }
    out
}

/// The milestones recorded so far with `mark`.
pub fn early() -> Vec<(String, u64)> {
    EARLY.lock().map(|v| v.clone()).unwrap_or_default()
}
