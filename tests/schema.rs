//! The JSON Schema: generated from the serde types, committed, and pointed at
//! by every shipped profile, so an editor (taplo / Even Better TOML) and
//! `envc check` judge a profile by the same rules.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const SCHEMA_FILE: &str = "schema/envc-profile.schema.json";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn committed() -> String {
    std::fs::read_to_string(root().join(SCHEMA_FILE)).expect("read the committed schema")
}

fn schema() -> Value {
    serde_json::from_str(&committed()).expect("the committed schema is JSON")
}

#[test]
fn committed_schema_matches_the_types() {
    let generated = envc::profile::raw::schema_text();
    assert!(
        generated == committed(),
        "{SCHEMA_FILE} is out of date with src/profile/raw.rs.\n\
         Regenerate it with:\n\n    cargo run -q -- schema > {SCHEMA_FILE}\n\n\
         and commit the result."
    );
}

#[test]
fn envc_schema_prints_the_committed_schema() {
    let out = Command::new(env!("CARGO_BIN_EXE_envc"))
        .arg("schema")
        .output()
        .expect("run envc schema");
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty());
    assert!(
        String::from_utf8(out.stdout).unwrap() == committed(),
        "`envc schema` differs from {SCHEMA_FILE}"
    );
}

/// Every `*.toml` under `dir`, recursively, sorted.
fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            toml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

#[test]
fn every_shipped_profile_points_at_the_schema() {
    let mut files = Vec::new();
    toml_files(&root().join("profiles"), &mut files);
    toml_files(&root().join("examples"), &mut files);
    assert!(files.len() >= 4, "{files:?}");
    let schema = root().join(SCHEMA_FILE).canonicalize().unwrap();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let first = text.lines().next().unwrap_or_default();
        let rel = first.strip_prefix("#:schema ").unwrap_or_else(|| {
            panic!(
                "{}: the first line must be `#:schema <relative path to {SCHEMA_FILE}>`, not {first:?}",
                f.display()
            )
        });
        assert!(
            !Path::new(rel).is_absolute() && !rel.contains("://"),
            "{}: the schema directive must be a relative path",
            f.display()
        );
        let target = f.parent().unwrap().join(rel.trim());
        let resolved = target
            .canonicalize()
            .unwrap_or_else(|e| panic!("{}: {} does not resolve: {e}", f.display(), rel));
        assert_eq!(
            resolved,
            schema,
            "{}: the directive points elsewhere",
            f.display()
        );
    }
}

/// The definition a property schema refers to (through `$ref` or a single `allOf`).
fn resolve<'a>(root: &'a Value, mut v: &'a Value) -> &'a Value {
    loop {
        if let Some([only]) = v.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            v = only;
            continue;
        }
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                v = root
                    .pointer(r.trim_start_matches('#'))
                    .expect("a $ref resolves")
            }
            None => return v,
        }
    }
}

fn closed(v: &Value) -> bool {
    v.get("additionalProperties") == Some(&Value::Bool(false))
}

#[test]
fn unknown_keys_are_refused_by_the_schema_itself() {
    let s = schema();
    assert!(closed(&s), "the root must have additionalProperties: false");
    let props = s["properties"].as_object().expect("root properties");
    for section in ["config", "init", "dev", "proc", "sys", "cgroup", "lxcfs"] {
        let def = resolve(&s, &props[section]);
        assert!(
            closed(def),
            "`{section}` must have additionalProperties: false: {def:#}"
        );
    }
    // Every device variant, `none` included.
    let devices = &props["devices"];
    let device = resolve(&s, &devices["additionalProperties"]);
    let variants = device["oneOf"].as_array().expect("devices are a oneOf");
    let mut types = Vec::new();
    for v in variants {
        let v = resolve(&s, v);
        let t = v["properties"]["type"]["const"]
            .as_str()
            .expect("each variant has a const `type`");
        assert!(
            closed(v),
            "device type `{t}` must have additionalProperties: false"
        );
        assert!(
            v["required"]
                .as_array()
                .is_some_and(|r| r.contains(&Value::from("type"))),
            "device type `{t}` must require `type`"
        );
        types.push(t.to_string());
    }
    for t in [
        "unix-char",
        "unix-block",
        "disk",
        "nic",
        "tmpfs",
        "symlink",
        "mqueue",
        "none",
    ] {
        assert!(
            types.iter().any(|x| x == t),
            "no device type `{t}`: {types:?}"
        );
    }
    // No keyword taplo ignores stands in for additionalProperties.
    assert!(!committed().contains("unevaluatedProperties"));
}

#[test]
fn config_keys_and_namespaces_are_described() {
    let s = schema();
    let config = resolve(&s, &s["properties"]["config"]);
    let keys = config["properties"].as_object().unwrap();
    for (k, _, _) in envc::profile::raw::CONFIG_KEYS {
        let d = keys[*k]["description"].as_str().unwrap_or_default();
        assert!(!d.is_empty(), "config key `{k}` has no description");
    }
    let patterns = config["patternProperties"].as_object().unwrap();
    for p in ["^user\\..+$", "^cloud-init\\..+$", "^environment\\..+$"] {
        assert!(patterns.contains_key(p), "no pattern {p}: {patterns:?}");
    }
}

#[test]
fn every_property_has_a_description() {
    // Descriptions come from doc comments: an undocumented field shows up
    // in the editor without help.
    fn walk(root: &Value, v: &Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for (k, p) in props {
                let here = format!("{path}.{k}");
                let described =
                    p.get("description").is_some() || resolve(root, p).get("description").is_some();
                if !described && k != "type" {
                    missing.push(here.clone());
                }
                walk(root, resolve(root, p), &here, missing);
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(alts) = v.get(key).and_then(Value::as_array) {
                for a in alts {
                    walk(root, resolve(root, a), path, missing);
                }
            }
        }
        if let Some(a) = v.get("additionalProperties").filter(|a| a.is_object()) {
            walk(root, resolve(root, a), &format!("{path}.*"), missing);
        }
    }
    let s = schema();
    let mut missing = Vec::new();
    walk(&s, &s, "", &mut missing);
    assert!(missing.is_empty(), "undocumented properties: {missing:#?}");
}
