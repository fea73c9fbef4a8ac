//! Profile → diagnostics: every bad profile in `tests/fixtures/invalid/` is
//! refused, and its rendered diagnostics are snapshotted; a few spans are
//! pinned exactly; the real binary exits 2 and prints nothing on stdout.

use envc::diag::{Problem, Style, render};
use envc::profile::{BUILTIN_NAME, BUILTIN_TEXT, parse_layer};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn invalid(name: &str) -> PathBuf {
    root().join("tests/fixtures/invalid").join(name)
}

/// The `*.toml` files directly in `dir` (not its helper subdirectories), sorted.
fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

fn problems_of(path: &Path) -> Vec<Problem> {
    match envc::profile::load(path) {
        Ok(_) => panic!("{} loaded, but it is in the invalid corpus", path.display()),
        Err(p) => p,
    }
}

/// The first comment line of a fixture: what is wrong with it.
fn purpose(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read fixture");
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("# "))
        .unwrap_or_else(|| {
            panic!(
                "{} must start with a `# what is wrong` line",
                path.display()
            )
        })
        .to_string()
}

#[test]
fn corpus_is_large_and_documented() {
    let files = toml_files(&root().join("tests/fixtures/invalid"));
    assert!(
        files.len() >= 35,
        "the corpus has {} bad profiles",
        files.len()
    );
    let mut seen = HashSet::new();
    for f in &files {
        assert!(
            seen.insert(purpose(f)),
            "{}: two fixtures describe the same problem",
            f.display()
        );
    }
}

#[test]
fn every_invalid_profile_is_refused_with_its_diagnostics() {
    let manifest = root().to_string_lossy().into_owned();
    for path in toml_files(&root().join("tests/fixtures/invalid")) {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let problems = problems_of(&path);
        assert!(!problems.is_empty(), "{stem}: refused without a problem");
        let rendered = render(&problems, Style::plain());
        assert!(
            !rendered.contains(&manifest),
            "{stem}: the diagnostics name an absolute path of this machine:\n{rendered}"
        );
        // Every problem names a file, a line and a column.
        for p in &problems {
            assert!(
                p.source.is_some() && p.line_col().is_some(),
                "{stem}: `{}` points at no place in a file",
                p.message
            );
        }
        let mut settings = insta::Settings::clone_current();
        settings.set_description(purpose(&path));
        settings.set_omit_expression(true);
        settings.bind(|| insta::assert_snapshot!(stem, rendered));
    }
}

#[test]
fn no_stale_snapshots() {
    // A renamed or deleted fixture must not leave its snapshot behind.
    let fixtures: Vec<String> = toml_files(&root().join("tests/fixtures/invalid"))
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for e in std::fs::read_dir(root().join("tests/snapshots")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(stem) = name
            .strip_prefix("diagnostics__")
            .and_then(|n| n.strip_suffix(".snap"))
        {
            assert!(
                fixtures.iter().any(|f| f == stem),
                "tests/snapshots/{name} belongs to no fixture: delete it"
            );
        }
    }
}

/// Each problem once: no two problems with the same message at the same place.
fn assert_no_duplicates(problems: &[Problem]) {
    let mut seen = HashSet::new();
    for p in problems {
        let key = (
            p.source.as_ref().map(|s| s.name.clone()),
            p.line_col(),
            p.message.clone(),
        );
        assert!(seen.insert(key), "reported twice: {}", p.message);
    }
}

#[test]
fn all_problems_of_a_file_at_once_each_exactly_once() {
    for (file, n) in [
        ("many-problems.toml", 6),
        ("many-semantic-problems.toml", 5),
        ("many-stack-problems.toml", 2),
        ("stacked-errors-in-both.toml", 2),
        ("stacked-missing-file.toml", 1),
        ("stacked-loop.toml", 1),
        ("wrong-type-then-needed.toml", 2),
        ("stacked-diamond.toml", 2),
        ("unknown-key-device.toml", 1),
    ] {
        let problems = problems_of(&invalid(file));
        let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(problems.len(), n, "{file}: {messages:#?}");
        assert_no_duplicates(&problems);
    }
    for path in toml_files(&root().join("tests/fixtures/invalid")) {
        assert_no_duplicates(&problems_of(&path));
    }
}

/// The only problem of a fixture: its file, line and column.
fn only(file: &str) -> (String, (usize, usize), Problem) {
    let mut problems = problems_of(&invalid(file));
    assert_eq!(problems.len(), 1, "{file}: {problems:#?}");
    let p = problems.remove(0);
    let src = p.source.as_ref().expect("a source").name.clone();
    let lc = p.line_col().expect("a position");
    (src, lc, p)
}

#[test]
fn exact_spans() {
    // The unknown key itself is underlined.
    let (src, lc, p) = only("unknown-top-level-key.toml");
    assert_eq!((src.as_str(), lc), ("unknown-top-level-key.toml", (4, 1)));
    assert_eq!(p.help.as_deref(), Some("did you mean `description`?"));
    assert_eq!(
        &p.source.as_ref().unwrap().text[p.span.clone().unwrap()],
        "descripton"
    );

    // A config key: the quoted key, and the closest valid one.
    let (_, lc, p) = only("unknown-config-key.toml");
    assert_eq!(lc, (6, 1));
    assert_eq!(p.help.as_deref(), Some("did you mean `limits.cpu`?"));
    assert_eq!(
        &p.source.as_ref().unwrap().text[p.span.clone().unwrap()],
        "\"limits.cpus\""
    );

    // A bad value: the value is underlined, not the key.
    let (_, lc, p) = only("nic-multicast-hwaddr.toml");
    assert_eq!(lc, (8, 10));
    assert_eq!(
        &p.source.as_ref().unwrap().text[p.span.clone().unwrap()],
        "\"01:16:3e:12:34:56\""
    );

    // A mode written as a bare integer: the value, with the quoting hint.
    let (_, lc, p) = only("mode-as-integer.toml");
    assert_eq!(lc, (10, 8));
    assert!(
        p.help.as_deref().unwrap().contains("\"0660\""),
        "{:?}",
        p.help
    );

    // A signal name: did you mean.
    let (_, lc, p) = only("unknown-signal.toml");
    assert_eq!(lc, (6, 15));
    assert_eq!(p.help.as_deref(), Some("did you mean `SIGTERM`?"));

    // An error in a stacked file points into that file.
    let (src, lc, p) = only("stacked-error-in-layer.toml");
    assert_eq!((src.as_str(), lc), ("stacked/bad-layer.toml", (3, 1)));
    assert_eq!(p.help.as_deref(), Some("did you mean `limits.processes`?"));

    // A missing stacked file: the entry in `profiles` that names it.
    let (src, lc, _) = only("stacked-missing-file.toml");
    assert_eq!((src.as_str(), lc), ("stacked-missing-file.toml", (4, 36)));

    // A loop: the entry that closes it, in the file that holds it.
    let (src, lc, p) = only("stacked-loop.toml");
    assert_eq!((src.as_str(), lc), ("stacked/loop-b.toml", (2, 13)));
    assert!(
        p.message
            .contains("stacked-loop.toml → stacked/loop-b.toml → stacked-loop.toml"),
        "{}",
        p.message
    );

    // A clash with a device of a stacked layer: the later device's path,
    // and the help names the earlier one's file.
    let (src, lc, p) = only("stacked-duplicate-path.toml");
    assert_eq!((src.as_str(), lc), ("stacked-duplicate-path.toml", (8, 8)));
    assert!(
        p.help.as_deref().unwrap().contains("stacked/common.toml"),
        "{:?}",
        p.help
    );
}

#[test]
fn profiles_named_relative_to_the_top_even_from_elsewhere() {
    // Loading through a path with `..` and from another working directory
    // must not change the names the diagnostics use.
    let odd = root().join("tests/fixtures/invalid/stacked/../stacked-error-in-layer.toml");
    let problems = problems_of(&odd);
    assert_eq!(
        problems[0].source.as_ref().unwrap().name,
        "stacked/bad-layer.toml"
    );
}

fn envc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_envc"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .expect("run envc")
}

#[test]
fn check_and_plan_exit_2_on_invalid_profiles_and_print_nothing_on_stdout() {
    for f in [
        "toml-syntax.toml",
        "unknown-config-key.toml",
        "many-problems.toml",
        "stacked-loop.toml",
    ] {
        let path = format!("tests/fixtures/invalid/{f}");
        for args in [
            vec!["check", path.as_str()],
            vec!["plan", path.as_str()],
            vec!["plan", "--format", "json", path.as_str()],
            vec!["apply", "--dry-run", path.as_str()],
        ] {
            let out = envc(&args);
            assert_eq!(out.status.code(), Some(2), "envc {args:?}");
            assert!(out.stdout.is_empty(), "envc {args:?} printed on stdout");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("nothing was done"), "envc {args:?}: {err}");
            assert!(!err.contains("panicked"), "envc {args:?}: {err}");
        }
    }
    // The rendering on stderr is the library's, problem for problem.
    let path = invalid("many-problems.toml");
    let out = envc(&["check", "tests/fixtures/invalid/many-problems.toml"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        render(&problems_of(&path), Style::plain())
    );
}

#[test]
fn check_reports_every_file_of_a_run() {
    let out = envc(&[
        "check",
        "examples/hello.toml",
        "tests/fixtures/invalid/unknown-signal.toml",
        "tests/fixtures/invalid/missing-name.toml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 problems found"), "{err}");
}

#[test]
fn check_accepts_every_example_and_valid_fixture() {
    let mut files = toml_files(&root().join("examples"));
    files.extend(toml_files(&root().join("tests/fixtures/valid")));
    assert!(files.len() >= 4, "{files:?}");
    for f in &files {
        let out = envc(&["check", f.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "envc check {}:\n{}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn every_shipped_layer_has_no_structural_problem() {
    let layer = parse_layer(BUILTIN_NAME, BUILTIN_TEXT, None)
        .unwrap_or_else(|p| panic!("{}", render(&p, Style::plain())));
    assert!(layer.raw.name.is_none() && layer.raw.rootfs.is_none());
    // Layers that are only stacked (no name or rootfs of their own) too.
    for dir in ["examples/base", "tests/fixtures/valid/layers"] {
        for f in toml_files(&root().join(dir)) {
            let text = std::fs::read_to_string(&f).unwrap();
            let name = f.file_name().unwrap().to_string_lossy();
            if let Err(p) = parse_layer(&name, &text, f.parent().map(Path::to_path_buf)) {
                panic!("{}", render(&p, Style::plain()));
            }
        }
    }
}

#[test]
fn the_fixtures_load_from_any_working_directory() {
    // `envc check` is given a path relative to its cwd; names stay relative to the top.
    let out = Command::new(env!("CARGO_BIN_EXE_envc"))
        .args(["check", "invalid/stacked-error-in-layer.toml"])
        .current_dir(root().join("tests/fixtures"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[stacked/bad-layer.toml:3:1]"), "{err}");
}

/// A start parses the built-in base without walking it against the schema (the test
/// above does that), so its spans are made only when a problem points into it: such a
/// problem still shows the built-in's own line, like any file's.
#[test]
fn a_problem_in_the_builtin_base_points_at_its_line() {
    let (_, sources) = envc::profile::load(&root().join("examples/hello.toml")).unwrap();
    let origin = envc::profile::Origin::new(BUILTIN_NAME, "cgroup.parent");
    let p = sources.problem(&origin, "the parent is refused".into(), "this one", true);
    let text = render(&[p], Style::plain());
    assert!(
        text.contains("builtin:lxd:")
            && text.contains("parent = \"envc\"")
            && text.contains("this one"),
        "{text}"
    );
}
