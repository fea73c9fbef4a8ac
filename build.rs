//! Links envc's binary with its start path's functions together, first run
//! first (`link/start-path.order`, made by `scripts/hot-functions.py`): a
//! container start then faults in a contiguous ~1 MiB of text instead of
//! 64 KiB windows all over the binary (peak RSS and page faults; see
//! docs/performance.md, "Code layout"). Functions the list names that no
//! longer exist are skipped, and new ones go after it: a stale list costs
//! speed, never correctness.

fn main() {
    println!("cargo:rerun-if-changed=link/start-path.order");
    println!("cargo:rerun-if-env-changed=ENVC_NO_SYMBOL_ORDER");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    // rustc links this target with its own LLD from 1.90 on (the option is
    // LLD's); older ones, other targets and a linker of the user's choosing
    // use a linker that may not know it.
    let lld = std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-gnu")
        && rustc_minor().is_some_and(|m| m >= 90)
        && std::env::var_os("RUSTC_LINKER").is_none()
        && !std::env::var("CARGO_ENCODED_RUSTFLAGS")
            .is_ok_and(|f| f.contains("linker") || f.contains("fuse-ld"));
    // The list names the release build's functions (their hashes differ
    // in other profiles): debug and test builds link as they are.
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    if !lld || !release || std::env::var_os("ENVC_NO_SYMBOL_ORDER").is_some() {
        return;
    }
    let order = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("link/start-path.order");
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        order.display()
    );
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    // The link map: which function is where in the (stripped) binary, for
    // scripts/hot-functions.py and the benchmark's check that the list still
    // names this build's functions.
    if let Some(out) = std::env::var_os("OUT_DIR") {
        let map = std::path::Path::new(&out).join("envc.map");
        println!("cargo:rustc-link-arg-bins=-Wl,-Map={}", map.display());
        // Symbols in the map as the order file names them.
        println!("cargo:rustc-link-arg-bins=-Wl,--no-demangle");
    }
}

/// The minor version of the rustc cargo builds with (`1.N.x`).
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var_os("RUSTC")?;
    let out = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    text.split_whitespace()
        .nth(1)?
        .split('.')
        .nth(1)?
        .parse()
        .ok()
}
