//! Build-time work: the schema the structural check walks, and the code
//! layout of the release binary.
//!
//! The layout: the linker puts the functions a container start runs
//! together, in the order they first run (`link/start-path.order`), so a
//! start faults in one contiguous stretch of the binary instead of pages
//! all over it (see docs/performance.md, "Code layout"). It is optional:
//! without the file, with `ENVC_NO_SYMBOL_ORDER` set, in debug builds or
//! with a linker other than rustc's LLD, the binary links as it is. Names
//! the list has that no longer exist are skipped; a stale list costs speed,
//! never correctness. `scripts/hot-functions.sh` makes it anew, once per
//! release.

fn main() {
    check_schema();
    symbol_order();
}

fn symbol_order() {
    println!("cargo:rerun-if-changed=link/start-path.order");
    println!("cargo:rerun-if-env-changed=ENVC_NO_SYMBOL_ORDER");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let order = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("link/start-path.order");
    // rustc links this target with its own LLD from 1.90 on (the option is
    // LLD's); other targets and a linker of the user's choosing may not know it.
    let lld = std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-gnu")
        && rustc_minor().is_some_and(|m| m >= 90)
        && std::env::var_os("RUSTC_LINKER").is_none()
        && !std::env::var("CARGO_ENCODED_RUSTFLAGS")
            .is_ok_and(|f| f.contains("linker") || f.contains("fuse-ld"));
    // The list names the release build's functions (their hashes differ in
    // other profiles).
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    if !lld || !release || !order.exists() || std::env::var_os("ENVC_NO_SYMBOL_ORDER").is_some() {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        order.display()
    );
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    // The link map (which function is where), for scripts/hot-functions.py.
    if let Some(out) = std::env::var_os("OUT_DIR") {
        let map = std::path::Path::new(&out).join("envc.map");
        println!("cargo:rustc-link-arg-bins=-Wl,-Map={}", map.display());
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
    text.split_whitespace()
        .nth(1)?
        .split('.')
        .nth(1)?
        .parse()
        .ok()
}

/// The shipped schema (`schema/envc-profile.schema.json`) without what only
/// editors show (`description`, `title`, `$schema`): what the structural
/// check walks, with none of the text it never reads.
fn check_schema() {
    println!("cargo:rerun-if-changed=schema/envc-profile.schema.json");
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/envc-profile.schema.json");
    let text = std::fs::read_to_string(&path).expect("read the schema");
    let mut schema: serde_json::Value = serde_json::from_str(&text).expect("the schema is JSON");
    strip_annotations(&mut schema);
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(
        out.join("schema-check.json"),
        serde_json::to_string(&schema).expect("JSON"),
    )
    .expect("write schema-check.json");
}

/// Removes the annotation keywords of `schema` and of every schema in it.
/// Only keywords: the names under `properties` (a property may well be
/// called `title`) and the values of `const` and `enum` are data.
fn strip_annotations(schema: &mut serde_json::Value) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    map.retain(|k, _| !matches!(k.as_str(), "description" | "title" | "$schema"));
    for (k, v) in map.iter_mut() {
        match k.as_str() {
            "properties" | "patternProperties" | "definitions" | "$defs" => {
                for sub in v.as_object_mut().into_iter().flat_map(|m| m.values_mut()) {
                    strip_annotations(sub);
                }
            }
            "items"
            | "additionalProperties"
            | "not"
            | "if"
            | "then"
            | "else"
            | "contains"
            | "propertyNames" => strip_annotations(v),
            "anyOf" | "oneOf" | "allOf" | "prefixItems" => {
                for sub in v.as_array_mut().into_iter().flatten() {
                    strip_annotations(sub);
                }
            }
            _ => {}
        }
    }
}
