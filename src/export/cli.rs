//! The `envc export` and `envc import` commands: load, convert, report
//! what was not carried on stderr, write the output only once all is well.

use super::import::{ImportOptions, from_lxd};
use super::lxd::to_lxd;
use super::write_atomically;
use crate::diag::{Problem, Style, render};
use std::path::Path;
use std::process::ExitCode;

/// The `#:schema` line of an imported profile: the schema beside it (`envc
/// schema > envc-profile.schema.json` writes it there).
pub const IMPORT_SCHEMA_REF: &str = "envc-profile.schema.json";

fn invalid(problems: &[Problem], code: u8) -> ExitCode {
    eprint!("{}", render(problems, Style::for_stderr()));
    ExitCode::from(code)
}

/// Writes `text` to `output` (atomically) or stdout.
fn emit(text: &str, output: Option<&Path>) -> ExitCode {
    match output {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => match write_atomically(path, text.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("envc: cannot write {}: {e}", path.display());
                ExitCode::from(1)
            }
        },
    }
}

/// `envc export PROFILE --to lxd [-o FILE] [--strict]`.
pub fn export_lxd(profile: &Path, output: Option<&Path>, strict: bool) -> ExitCode {
    let (p, sources) = match crate::profile::load(profile) {
        Ok(l) => l,
        Err(problems) => return invalid(&problems, 2),
    };
    let export = to_lxd(&p, &sources);
    for n in &export.not_carried {
        eprintln!("envc: not exported: {n}");
    }
    if strict && !export.not_carried.is_empty() {
        eprintln!(
            "envc: --strict: {} key(s) have no LXD counterpart; nothing written",
            export.not_carried.len()
        );
        return ExitCode::from(2);
    }
    eprintln!(
        "envc: the rootfs ({}) is not part of an LXD profile: make it an LXD image (README, \"Moving to a cluster\")",
        p.rootfs.value
    );
    let from = profile.display().to_string();
    emit(&export.yaml(&from), output)
}

/// `envc import LXD.yaml [-o FILE] [--name NAME] [--rootfs DIR]`: the
/// profile is loaded and compiled before anything is written.
pub fn import(file: &Path, output: Option<&Path>, name: Option<&str>, rootfs: &str) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("envc: cannot read {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let from = file.display().to_string();
    let opts = ImportOptions {
        name,
        rootfs,
        schema: IMPORT_SCHEMA_REF,
        from: &from,
    };
    let imported = match from_lxd(&text, &opts) {
        Ok(i) => i,
        Err(e) => return invalid(&[Problem::new(e)], 2),
    };
    for n in &imported.not_imported {
        eprintln!("envc: not imported: {n}");
    }
    if let Err(problems) = check_imported(&imported.toml, output) {
        eprintln!("envc: the imported profile is not valid; nothing written");
        return invalid(&problems, 2);
    }
    emit(&imported.toml, output)
}

/// Loads and compiles `toml` as a profile file would be where it is going:
/// under the output's name (so problems name it), in a private directory
/// beside it (so relative paths mean the same), removed afterwards.
fn check_imported(toml: &str, output: Option<&Path>) -> Result<(), Vec<Problem>> {
    let problem = |m: String| vec![Problem::new(m)];
    let dir = match output.and_then(Path::parent) {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::env::current_dir().map_err(|e| problem(format!("no current directory: {e}")))?,
    };
    let name = output
        .and_then(Path::file_name)
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "imported.toml".into());
    let scratch = dir.join(format!(".envc-import.{}", std::process::id()));
    std::fs::create_dir(&scratch)
        .map_err(|e| problem(format!("cannot create {}: {e}", scratch.display())))?;
    let file = scratch.join(name);
    let result = std::fs::write(&file, toml)
        .map_err(|e| problem(format!("cannot write {}: {e}", file.display())))
        .and_then(|()| crate::profile::load(&file))
        .and_then(|(p, _)| {
            crate::compile::compile(&p)
                .check()
                .map_err(|e| problem(format!("internal error: the plan is inconsistent: {e}")))
        });
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_dir(&scratch);
    result
}

/// `envc export PROFILE --to oci DIR [--strict] [--force]`: `config.json`
/// and `envc-export.json` in DIR, the rootfs named where it is.
pub fn export_oci(profile: &Path, dir: &Path, strict: bool, force: bool) -> ExitCode {
    if let Err(e) = super::check_bundle_dir(dir, force) {
        eprintln!("envc: {e}");
        return ExitCode::from(2);
    }
    let (p, _) = match crate::profile::load(profile) {
        Ok(l) => l,
        Err(problems) => return invalid(&problems, 2),
    };
    let plan = crate::compile::compile(&p);
    let base = match profile.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let rootfs = match std::fs::canonicalize(base.join(&plan.rootfs)) {
        Ok(r) if r.is_dir() => r,
        Ok(r) => {
            return invalid(
                &[Problem::new(format!(
                    "the rootfs {} is not a directory",
                    r.display()
                ))],
                2,
            );
        }
        Err(e) => {
            return invalid(
                &[Problem::new(format!(
                    "the rootfs {} cannot be used: {e}",
                    base.join(&plan.rootfs).display()
                ))],
                2,
            );
        }
    };
    let export = match super::oci::to_oci(&plan, &rootfs) {
        Ok(e) => e,
        Err(e) => return invalid(&[Problem::new(e)], 2),
    };
    for n in &export.not_carried {
        eprintln!("envc: not in the bundle: {n}");
    }
    if strict && !export.not_carried.is_empty() {
        eprintln!(
            "envc: --strict: {} part(s) have no OCI counterpart; nothing written",
            export.not_carried.len()
        );
        return ExitCode::from(2);
    }
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("envc: cannot create {}: {e}", dir.display());
        return ExitCode::from(1);
    }
    let from = profile.display().to_string();
    for (name, text) in [
        ("envc-export.json", super::oci::export_json(&export, &from)),
        ("config.json", super::oci::config_json(&export.spec)),
    ] {
        if let Err(e) = write_atomically(&dir.join(name), text.as_bytes()) {
            eprintln!("envc: cannot write {}: {e}", dir.join(name).display());
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}
