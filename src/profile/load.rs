//! Loading: read each file, parse it with spans, check its structure against
//! the schema, check the meaning of its values, stack the layers (built-in
//! base first), and check what only the stacked whole can show. Every problem
//! of every file is collected; nothing is half-loaded.

use super::model::*;
use super::raw::*;
use super::structure::{Spans, join};
use super::values::*;
use crate::diag::{Problem, Source, did_you_mean};
use crate::paths::{ContainerPath, HostPath};
use indexmap::IndexMap;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The name origins give the embedded base profile.
pub const BUILTIN_NAME: &str = "builtin:lxd";
/// The built-in base profile: the whole LXD contract as data.
pub const BUILTIN_TEXT: &str = include_str!("../../profiles/lxd.toml");
/// The shipped schema.
pub const SCHEMA_TEXT: &str = include_str!("../../schema/envc-profile.schema.json");
/// The shipped schema without what only editors show (made by build.rs): the
/// structural check walks this.
const CHECK_SCHEMA_TEXT: &str = include_str!(concat!(env!("OUT_DIR"), "/schema-check.json"));

fn schema_json() -> &'static serde_json::Value {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::from_str(CHECK_SCHEMA_TEXT).expect("the shipped schema is JSON")
    })
}

/// One loaded file.
#[derive(Debug, Clone)]
pub struct Layer {
    pub source: Source,
    pub spans: Spans,
    pub raw: RawProfile,
    /// The file's directory on disk (None for the built-in).
    pub dir: Option<PathBuf>,
}

/// The sources of a load, to point diagnostics at origins.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    files: HashMap<String, (Source, Spans)>,
}

impl Sources {
    /// A problem pointing at `origin` (its key, or its value with `on_value`).
    pub fn problem(
        &self,
        origin: &Origin,
        message: String,
        label: &str,
        on_value: bool,
    ) -> Problem {
        match self.files.get(&origin.file) {
            Some((src, spans)) => {
                let span = if on_value {
                    spans.value(&origin.key).or_else(|| spans.key(&origin.key))
                } else {
                    spans.key(&origin.key)
                };
                match span {
                    Some(span) => Problem::new(message).at(src, span, label),
                    None => Problem::new(format!("{message} (at {origin})")),
                }
            }
            None => Problem::new(format!("{message} (at {origin})")),
        }
    }
}

/// Loads and stacks `top` (with the built-in base under everything).
pub fn load(top: &Path) -> Result<(Profile, Sources), Vec<Problem>> {
    let mut problems = Vec::new();
    let mut layers = Vec::new();
    let top_abs = absolute(top);
    let top_dir = top_abs
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| "/".into());

    match parse_layer(BUILTIN_NAME, BUILTIN_TEXT, None) {
        Ok(l) => layers.push(l),
        Err(mut p) => {
            problems.append(&mut p);
            return Err(problems);
        }
    }
    let mut stack = Vec::new();
    let mut done = std::collections::HashSet::new();
    collect(
        &top_abs,
        &top_dir,
        None,
        &mut Walk {
            stack: &mut stack,
            done: &mut done,
        },
        &mut layers,
        &mut problems,
    );
    // Even when a stacked file is missing or broken, the meaning of every
    // file that did parse is checked, so all problems show at once.
    let mut parts = Vec::new();
    for l in &layers {
        parts.push(convert(l, &top_dir, &mut problems));
    }
    // The span tables move to `sources`, which points the stacked whole's
    // problems at their files.
    let mut sources = Sources::default();
    for l in &mut layers {
        let spans = std::mem::take(&mut l.spans);
        sources
            .files
            .insert(l.source.name.clone(), (l.source.clone(), spans));
    }
    // (Layers that failed their structural check are not in `layers`: their
    // meaning was checked, and reported, by `parse_layer`.)
    if !problems.is_empty() {
        return Err(once_each(problems));
    }
    match stack_layers(parts, &layers, &sources) {
        Ok(p) => Ok((p, sources)),
        Err(p) => Err(once_each(p)),
    }
}

/// Problems are reported once each, however they were reached.
fn once_each(problems: Vec<Problem>) -> Vec<Problem> {
    let mut seen = std::collections::HashSet::new();
    capped(
        problems
            .into_iter()
            .filter(|p| {
                seen.insert((
                    p.source.as_ref().map(|s| s.name.clone()),
                    p.span.clone(),
                    p.message.clone(),
                ))
            })
            .collect(),
    )
}

/// The most problems reported at once.
pub const MAX_PROBLEMS: usize = 50;

/// The first [`MAX_PROBLEMS`] problems, and a note of how many more there are: a
/// broken megabyte of TOML has thousands, and rendering each one costs time in
/// proportion to the file (found by fuzzing: 1 MB of one repeated key took minutes).
fn capped(mut problems: Vec<Problem>) -> Vec<Problem> {
    if problems.len() > MAX_PROBLEMS {
        let more = problems.len() - MAX_PROBLEMS;
        problems.truncate(MAX_PROBLEMS);
        problems.push(Problem::new(format!(
            "and {more} more problem{} not shown: fix these first",
            if more == 1 { "" } else { "s" }
        )));
    }
    problems
}

/// Lexically absolute (no symlink resolution, so names stay as the user wrote them).
fn absolute(p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| "/".into())
            .join(p)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// `path` relative to `base` (both absolute, normalised).
fn relative_to(path: &Path, base: &Path) -> String {
    let p: Vec<_> = path.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = p.iter().zip(&b).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c);
    }
    let s = out.to_string_lossy().into_owned();
    if s.is_empty() { ".".into() } else { s }
}

/// Where `collect` is: the files being read (outermost first) and those
/// already stacked.
struct Walk<'a> {
    stack: &'a mut Vec<(FileId, PathBuf)>,
    done: &'a mut std::collections::HashSet<FileId>,
}

/// Which file a path names (device and inode): the same file reached by
/// two spellings or through a symlink is the same layer. `None` if it
/// cannot be looked up (reading it then says why).
type FileId = Option<(u64, u64)>;

fn file_id(file: &Path) -> FileId {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(file).ok().map(|m| (m.dev(), m.ino()))
}

/// Reads `file` and, first, the files it stacks, pushing each layer after
/// the layers it stacks. A file stacked more than once (`a` and `b` both
/// stack `common`) is a layer once, where it comes first: stacking it again
/// later would undo what the files between override.
fn collect(
    file: &Path,
    top_dir: &Path,
    included_at: Option<(&Layer, usize)>,
    walk: &mut Walk<'_>,
    layers: &mut Vec<Layer>,
    problems: &mut Vec<Problem>,
) {
    let name = relative_to(file, top_dir);
    let id = file_id(file);
    let stack = &mut *walk.stack;
    if let Some(pos) = stack.iter().position(|(i, _)| id.is_some() && *i == id) {
        let cycle: Vec<String> = stack[pos..]
            .iter()
            .map(|(_, p)| p.as_path())
            .chain(std::iter::once(file))
            .map(|p| relative_to(p, top_dir))
            .collect();
        let msg = format!("profiles stack in a loop: {}", cycle.join(" → "));
        problems.push(match included_at {
            Some((l, i)) => {
                Problem::new(msg).at(&l.source, stacked_at(l, i), "included again here")
            }
            None => Problem::new(msg),
        });
        return;
    }
    if id.is_some() && walk.done.contains(&id) {
        return;
    }
    if stack.len() >= 32 {
        problems.push(Problem::new(format!(
            "profiles stack more than 32 deep at {name}"
        )));
        return;
    }
    let text = match read_profile(file) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => {
                problems.push(Problem::new(format!("{name} is not UTF-8 text")));
                return;
            }
        },
        Err(e) => {
            let msg = format!("cannot read profile {name}: {}", io_reason(&e));
            problems.push(match included_at {
                Some((l, i)) => Problem::new(msg).at(&l.source, stacked_at(l, i), "stacked here"),
                None => Problem::new(msg),
            });
            return;
        }
    };
    let dir = file.parent().map(Path::to_path_buf);
    let layer = match parse_layer(&name, &text, dir) {
        Ok(l) => l,
        Err(mut p) => {
            problems.append(&mut p);
            return;
        }
    };
    walk.stack.push((id, file.to_path_buf()));
    let base_dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    for (i, inc) in layer.raw.profiles.iter().enumerate() {
        if inc.is_empty() {
            problems.push(Problem::new("an empty file name in `profiles`").at(
                &layer.source,
                stacked_at(&layer, i),
                "here",
            ));
            continue;
        }
        let path = absolute(&base_dir.join(inc));
        collect(&path, top_dir, Some((&layer, i)), walk, layers, problems);
    }
    walk.stack.pop();
    walk.done.insert(id);
    layers.push(layer);
}

/// Where `layer` stacks its `i`th file (for a problem with that file).
fn stacked_at(layer: &Layer, i: usize) -> std::ops::Range<usize> {
    layer.spans.value(&format!("profiles[{i}]")).unwrap_or(0..0)
}

/// The most a profile file may hold.
const MAX_PROFILE_BYTES: u64 = 16 << 20;

/// Reads a profile file: a regular file of at most [`MAX_PROFILE_BYTES`]. Opened
/// non-blocking, so `profiles = ["/dev/stdin"]`, a FIFO, `/proc/kmsg` or `/dev/zero`
/// is an error, not a hang (found by fuzzing).
fn read_profile(file: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(file)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    // Room for the whole file and the read that says it ended: one read,
    // not small probes first.
    let mut bytes = Vec::with_capacity(meta.len().min(MAX_PROFILE_BYTES) as usize + 1);
    f.take(MAX_PROFILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_PROFILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB",
            MAX_PROFILE_BYTES >> 20
        )));
    }
    Ok(bytes)
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Parses and structurally checks one file's text.
pub fn parse_layer(name: &str, text: &str, dir: Option<PathBuf>) -> Result<Layer, Vec<Problem>> {
    let source = Source {
        name: name.to_string(),
        text: Arc::from(text),
    };
    let (mut doc, errors) = toml::de::DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        let mut seen = std::collections::HashSet::new();
        let problems = errors
            .iter()
            .filter(|e| seen.insert((e.span(), e.message().to_string())))
            .map(|e| {
                let msg = format!("invalid TOML: {}", e.message().trim());
                match e.span() {
                    Some(s) => Problem::new(msg).at(&source, s, "here"),
                    None => Problem::new(msg),
                }
            })
            .collect();
        return Err(problems);
    }
    let (problems, spans) = super::structure::check(schema_json(), &source, &mut doc);
    let raw = match RawProfile::deserialize(toml::de::Deserializer::from(doc)) {
        Ok(r) => r,
        Err(e) => {
            if !problems.is_empty() {
                return Err(problems);
            }
            let msg = e.message().trim().to_string();
            let p = match e.span() {
                Some(s) => Problem::new(msg).at(&source, s, "here"),
                None => Problem::new(msg),
            };
            return Err(vec![p]);
        }
    };
    if !problems.is_empty() {
        // Keep checking the meaning of what is left, so every problem of the
        // file shows at once.
        let mut all = problems;
        let layer = Layer {
            source,
            spans,
            raw,
            dir,
        };
        convert(&layer, Path::new("/"), &mut all);
        return Err(all);
    }
    Ok(Layer {
        source,
        spans,
        raw,
        dir,
    })
}

/// One layer's values, typed; `None` where the layer is silent.
#[derive(Debug, Default)]
struct Part {
    name: Option<At<String>>,
    description: Option<String>,
    rootfs: Option<At<String>>,
    config: IndexMap<String, At<String>>,
    command: Option<At<Vec<String>>>,
    stop_signal: Option<At<StopSignal>>,
    reboot_signal: Option<At<i32>>,
    stop_timeout: Option<At<u32>>,
    dev_size: Option<At<u64>>,
    dev_mode: Option<At<u32>>,
    dev_pts: Option<At<String>>,
    dev_log: Option<At<LogMode>>,
    dev_create: Option<At<bool>>,
    proc_mode: Option<At<ProcMode>>,
    proc_create: Option<At<bool>>,
    sys_mode: Option<At<SysMode>>,
    sys_create: Option<At<bool>>,
    cgroup_parent: Option<At<String>>,
    cgroup_ns: Option<At<bool>>,
    device_allow: Option<At<Vec<String>>>,
    lxcfs_enabled: Option<At<bool>>,
    lxcfs_path: Option<At<HostPath>>,
    /// `None` masks an inherited device.
    devices: Vec<(String, Option<NamedDevice>)>,
}

struct Cx<'a> {
    layer: &'a Layer,
    problems: &'a mut Vec<Problem>,
}

impl Cx<'_> {
    fn origin(&self, key: &str) -> Origin {
        Origin::new(&self.layer.source.name, key)
    }
    /// Reports a problem on the value at `key` (or the key if it has no value span).
    fn bad(&mut self, key: &str, message: String, label: &str, help: Option<String>) {
        let span = self
            .layer
            .spans
            .value(key)
            .or_else(|| self.layer.spans.key(key))
            .unwrap_or(0..0);
        self.problems.push(
            Problem::new(message)
                .at(&self.layer.source, span, label)
                .help_opt(help),
        );
    }
    fn bad_key(&mut self, key: &str, message: String, label: &str, help: Option<String>) {
        let span = self
            .layer
            .spans
            .key(key)
            .or_else(|| self.layer.spans.value(key))
            .unwrap_or(0..0);
        self.problems.push(
            Problem::new(message)
                .at(&self.layer.source, span, label)
                .help_opt(help),
        );
    }
    /// Reports that something `absent` is needed, at `at`, unless the
    /// structural check already reported one of those keys (a wrong type, or
    /// an unknown key that was probably meant to be it): one mistake, one problem.
    fn needs(
        &mut self,
        at: &str,
        absent: &[&str],
        message: String,
        label: &str,
        help: Option<String>,
    ) {
        if absent.iter().any(|k| self.layer.spans.pruned(k)) {
            return;
        }
        self.bad_key(at, message, label, help);
    }
    fn at<T>(&self, key: &str, value: T) -> At<T> {
        At::new(value, self.origin(key))
    }
    fn container_path(&mut self, key: &str, s: &str) -> Option<ContainerPath> {
        match ContainerPath::new(s) {
            Ok(p) if p.as_str() == "/" => {
                self.bad(
                    key,
                    format!("`{key}` cannot be the container's root"),
                    "not `/`",
                    None,
                );
                None
            }
            Ok(p) => Some(p),
            Err(e) => {
                self.bad(
                    key,
                    format!("`{key}` is not a usable container path: {e}"),
                    "bad path",
                    None,
                );
                None
            }
        }
    }
    fn host_path(&mut self, key: &str, s: &str) -> Option<HostPath> {
        match HostPath::new(s) {
            Ok(p) => Some(p),
            Err(e) => {
                self.bad(
                    key,
                    format!("`{key}` is not a usable host path: {e}"),
                    "bad path",
                    None,
                );
                None
            }
        }
    }
    fn mode(&mut self, key: &str, s: &str) -> Option<u32> {
        match parse_mode(s) {
            Ok(m) => Some(m),
            Err(e) => {
                self.bad(key, format!("`{key}`: {e}"), "not an octal mode", None);
                None
            }
        }
    }
    fn signal(&mut self, key: &str, s: &RawSignal) -> Option<i32> {
        let r = match s {
            RawSignal::Name(n) => parse_signal(n),
            RawSignal::Number(n) => check_signal_number(*n),
        };
        match r {
            Ok(n) => Some(n),
            Err(e) => {
                let uncatchable = matches!(s, RawSignal::Number(9 | 19))
                    || matches!(s, RawSignal::Name(n) if matches!(
                        n.trim().to_ascii_uppercase().as_str(),
                        "SIGKILL" | "KILL" | "SIGSTOP" | "STOP" | "9" | "19"
                    ));
                let (label, help) = if uncatchable {
                    (
                        "cannot be caught",
                        Some(if key == "init.stop-signal" {
                            "envc kills the container with SIGKILL itself after `stop-timeout`; ask init to stop with e.g. `SIGTERM`, `SIGPWR` or `auto`".to_string()
                        } else {
                            "ask init with a signal it can catch, e.g. `SIGINT` or `SIGTERM`"
                                .to_string()
                        }),
                    )
                } else {
                    let help = match s {
                        RawSignal::Name(n) => {
                            // Compare without the `SIG` every name shares, or
                            // `SIGFOO` would look close to `SIGIO`.
                            let up = n.trim().to_ascii_uppercase();
                            let bare = up.strip_prefix("SIG").unwrap_or(&up);
                            let extra = (key == "init.stop-signal").then_some("auto");
                            let names: Vec<&str> = signal_names().chain(extra).collect();
                            did_you_mean(
                                bare,
                                names.iter().map(|s| s.strip_prefix("SIG").unwrap_or(s)),
                            )
                            .and_then(|m| {
                                names
                                    .iter()
                                    .find(|s| s.strip_prefix("SIG").unwrap_or(s) == m)
                            })
                            .map(|m| format!("did you mean `{m}`?"))
                        }
                        RawSignal::Number(_) => None,
                    };
                    ("not a signal", help)
                };
                self.bad(key, format!("`{key}`: {e}"), label, help);
                None
            }
        }
    }
}

/// The closest valid variable name: invalid characters become `_`.
fn env_name_fixed(var: &str) -> String {
    let mut s: String = var
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

fn bool_config(v: &ConfigValue) -> Option<bool> {
    match v {
        ConfigValue::Bool(b) => Some(*b),
        ConfigValue::Str(s) if s == "true" => Some(true),
        ConfigValue::Str(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// Checks the meaning of one layer's values.
fn convert(layer: &Layer, top_dir: &Path, problems: &mut Vec<Problem>) -> Part {
    let mut cx = Cx { layer, problems };
    let raw = &layer.raw;
    let mut part = Part {
        description: raw.description.clone(),
        ..Part::default()
    };
    if let Some(n) = &raw.name {
        match check_hostname(n) {
            Ok(()) => part.name = Some(cx.at("name", n.clone())),
            Err(e) => cx.bad(
                "name",
                format!("invalid container name: {e}"),
                "invalid name",
                None,
            ),
        }
    }
    if let Some(r) = &raw.rootfs {
        if r.is_empty() || r.contains('\0') {
            cx.bad(
                "rootfs",
                "`rootfs` must name a directory".into(),
                "empty",
                None,
            );
        } else {
            let rebased = match (&layer.dir, Path::new(r).is_absolute()) {
                (Some(dir), false) => relative_to(&absolute(&dir.join(r)), top_dir),
                _ => r.clone(),
            };
            part.rootfs = Some(cx.at("rootfs", rebased));
        }
    }

    // [config]
    for (k, v) in &raw.config {
        let key = join("config", k);
        let text = v.to_lxd_string();
        let ok = match k.as_str() {
            "limits.memory" => parse_memory_limit(&text).map(|_| ()),
            "limits.cpu" => parse_cpu_limit(&text).map(|_| ()),
            "limits.cpu.allowance" => parse_cpu_allowance(&text).map(|_| ()),
            "limits.processes" => parse_processes(&text).map(|_| ()),
            "security.devlxd" => bool_config(v)
                .map(|_| ())
                .ok_or_else(|| "must be true or false".to_string()),
            "security.privileged" => match bool_config(v) {
                Some(true) => Ok(()),
                Some(false) => {
                    cx.bad(
                        &key,
                        "unprivileged containers are not supported yet".into(),
                        "not supported yet",
                        Some("envc runs privileged containers for now (as LXD with security.privileged=true); user namespaces are planned".into()),
                    );
                    continue;
                }
                None => Err("must be true or false".to_string()),
            },
            _ => match k.strip_prefix("environment.").map(check_env_name) {
                Some(Err(e)) => {
                    cx.bad_key(
                        &key,
                        format!("`{k}`: {e}"),
                        "invalid variable name",
                        Some(format!(
                            "did you mean `environment.{}`?",
                            env_name_fixed(&k["environment.".len()..])
                        )),
                    );
                    continue;
                }
                _ => Ok(()),
            },
        };
        match ok {
            Ok(()) => {
                part.config.insert(k.clone(), cx.at(&key, text));
            }
            Err(e) => {
                let help = CONFIG_KEYS
                    .iter()
                    .find(|(name, _, _)| name == k)
                    .map(|(_, _, desc)| (*desc).to_string());
                cx.bad(&key, format!("`{k}`: {e}"), "invalid value", help)
            }
        }
    }

    // [init]
    if let Some(init) = &raw.init {
        if let Some(cmd) = &init.command {
            if cmd.is_empty() || cmd[0].is_empty() {
                cx.bad(
                    "init.command",
                    "`init.command` needs a program to run".into(),
                    "empty",
                    Some("the default is [\"/sbin/init\"]".into()),
                );
            } else if !cmd[0].starts_with('/') {
                cx.bad(
                    "init.command",
                    format!(
                        "the init program `{}` must be an absolute path inside the rootfs",
                        cmd[0]
                    ),
                    "not absolute",
                    Some(format!(
                        "did you mean `/{}`?",
                        cmd[0].trim_start_matches("./")
                    )),
                );
            } else if ContainerPath::new(&cmd[0]).is_err() {
                cx.bad(
                    "init.command",
                    format!(
                        "the init program `{}` is not a usable path (no `..`)",
                        cmd[0]
                    ),
                    "bad path",
                    None,
                );
            } else if cmd.iter().any(|a| a.contains('\0')) {
                cx.bad(
                    "init.command",
                    "an init argument contains a NUL byte".into(),
                    "NUL",
                    None,
                );
            } else {
                part.command = Some(cx.at("init.command", cmd.clone()));
            }
        }
        if let Some(s) = &init.stop_signal {
            if matches!(s, RawSignal::Name(n) if n == "auto") {
                part.stop_signal = Some(cx.at("init.stop-signal", StopSignal::Auto));
            } else if let Some(n) = cx.signal("init.stop-signal", s) {
                part.stop_signal = Some(cx.at("init.stop-signal", StopSignal::Signal(n)));
            }
        }
        if let Some(s) = &init.reboot_signal
            && let Some(n) = cx.signal("init.reboot-signal", s)
        {
            part.reboot_signal = Some(cx.at("init.reboot-signal", n));
        }
        if let Some(t) = init.stop_timeout {
            part.stop_timeout = Some(cx.at("init.stop-timeout", t as u32));
        }
    }

    // [dev] [proc] [sys] [cgroup] [lxcfs]
    if let Some(dev) = &raw.dev {
        if let Some(size) = &dev.size {
            let r = match size {
                RawSize::Bytes(b) if *b > 0 => Ok(*b as u64),
                RawSize::Bytes(_) => Err("the size must be above 0".to_string()),
                RawSize::Text(t) => parse_size(t),
            };
            match r {
                Ok(b) => part.dev_size = Some(cx.at("dev.size", b)),
                Err(e) => cx.bad("dev.size", format!("`dev.size`: {e}"), "not a size", None),
            }
        }
        if let Some(m) = &dev.mode
            && let Some(m) = cx.mode("dev.mode", m)
        {
            part.dev_mode = Some(cx.at("dev.mode", m));
        }
        if let Some(o) = &dev.pts_options {
            if o.contains('\0') || o.split(',').any(|opt| opt.trim().is_empty()) {
                cx.bad(
                    "dev.pts-options",
                    "`dev.pts-options` must be comma-separated mount options".into(),
                    "bad options",
                    None,
                );
            } else {
                part.dev_pts = Some(cx.at("dev.pts-options", o.clone()));
            }
        }
        if let Some(l) = dev.log {
            part.dev_log = Some(cx.at("dev.log", l));
        }
        if let Some(c) = dev.create {
            part.dev_create = Some(cx.at("dev.create", c));
        }
    }
    if let Some(p) = &raw.proc {
        if let Some(m) = p.mode {
            part.proc_mode = Some(cx.at("proc.mode", m));
        }
        if let Some(c) = p.create {
            part.proc_create = Some(cx.at("proc.create", c));
        }
    }
    if let Some(s) = &raw.sys {
        if let Some(m) = s.mode {
            part.sys_mode = Some(cx.at("sys.mode", m));
        }
        if let Some(c) = s.create {
            part.sys_create = Some(cx.at("sys.create", c));
        }
    }
    if let Some(c) = &raw.cgroup {
        if let Some(p) = &c.parent {
            let ok = !p.is_empty()
                && p.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
                && !p.contains('\0');
            if ok {
                part.cgroup_parent = Some(cx.at("cgroup.parent", p.clone()));
            } else {
                cx.bad("cgroup.parent", format!("`cgroup.parent` `{p}` must be a relative cgroup path like `envc` or `ci/envc`"), "bad cgroup path", None);
            }
        }
        if let Some(n) = c.namespace {
            part.cgroup_ns = Some(cx.at("cgroup.namespace", n));
        }
        if let Some(rules) = &c.device_allow {
            let mut ok = true;
            for (i, r) in rules.iter().enumerate() {
                if let Err(e) = check_device_rule(r) {
                    cx.bad(
                        &format!("cgroup.device-allow[{i}]"),
                        format!("device rule `{r}`: {e}"),
                        "invalid rule",
                        Some("rules look like \"c 1:3 rwm\" or \"b *:* m\"".into()),
                    );
                    ok = false;
                }
            }
            if ok {
                part.device_allow = Some(cx.at("cgroup.device-allow", rules.clone()));
            }
        }
    }
    if let Some(l) = &raw.lxcfs {
        if let Some(e) = l.enabled {
            part.lxcfs_enabled = Some(cx.at("lxcfs.enabled", e));
        }
        if let Some(p) = &l.path
            && let Some(h) = cx.host_path("lxcfs.path", p)
        {
            part.lxcfs_path = Some(cx.at("lxcfs.path", h));
        }
    }

    convert_devices(&mut cx, raw.devices.as_slice(), &mut part.devices);
    part
}

/// Converts `devices` of `cx`'s layer, in order, onto `out`; `None` for a
/// device the layer removes.
fn convert_devices(
    cx: &mut Cx<'_>,
    devices: &indexmap::map::Slice<String, RawDevice>,
    out: &mut Vec<(String, Option<NamedDevice>)>,
) {
    for (name, dev) in devices {
        let base = join("devices", name);
        if name.is_empty() || name.contains('/') {
            cx.bad_key(
                &base,
                format!("device name `{name}` is not usable"),
                "bad name",
                Some("use letters, digits, `-`, `_` and `.`".into()),
            );
            continue;
        }
        let key = |k: &str| join(&base, k);
        let origin = cx.origin(&base);
        let device = match dev {
            RawDevice::None(_) => {
                out.push((name.clone(), None));
                continue;
            }
            RawDevice::UnixChar(u) | RawDevice::UnixBlock(u) => {
                let kind = if matches!(dev, RawDevice::UnixChar(_)) {
                    NodeKind::Char
                } else {
                    NodeKind::Block
                };
                unix_device(cx, &base, kind, u)
            }
            RawDevice::Disk(d) => {
                let path = match &d.path {
                    Some(p) => cx.container_path(&key("path"), p),
                    None => {
                        cx.needs(
                            &base,
                            &[&key("path")],
                            format!("disk device `{name}` needs `path`"),
                            "`path` missing",
                            Some("where it appears in the container, e.g. path = \"/srv\"".into()),
                        );
                        None
                    }
                };
                let source = match &d.source {
                    Some(s) if !s.starts_with('/') => {
                        cx.bad(
                            &key("source"),
                            format!("`source` `{s}` must be an absolute host path"),
                            "not absolute",
                            None,
                        );
                        None
                    }
                    Some(s) => cx.host_path(&key("source"), s),
                    None => {
                        cx.needs(
                            &base,
                            &[&key("source")],
                            format!("disk device `{name}` needs `source`"),
                            "`source` missing",
                            Some("the host path to bind, e.g. source = \"/srv/data\"".into()),
                        );
                        None
                    }
                };
                match (path, source) {
                    (Some(path), Some(source)) => Some(Device::Disk {
                        path,
                        source,
                        readonly: d.readonly.unwrap_or(false),
                        required: d.required.unwrap_or(true),
                        recursive: d.recursive.unwrap_or(false),
                        only_if_mounted: d.only_if_mounted.unwrap_or(false),
                    }),
                    _ => None,
                }
            }
            RawDevice::Nic(n) => nic_device(cx, &base, n),
            RawDevice::Tmpfs(t) => {
                let path = match &t.path {
                    Some(p) => cx.container_path(&key("path"), p),
                    None => {
                        cx.needs(
                            &base,
                            &[&key("path")],
                            format!("tmpfs device `{name}` needs `path`"),
                            "`path` missing",
                            None,
                        );
                        None
                    }
                };
                let size = match &t.size {
                    None => Some(None),
                    Some(RawSize::Bytes(b)) if *b > 0 => Some(Some(*b as u64)),
                    Some(RawSize::Bytes(_)) => {
                        cx.bad(
                            &key("size"),
                            "the size must be above 0".into(),
                            "not a size",
                            None,
                        );
                        None
                    }
                    Some(RawSize::Text(s)) => match parse_size(s) {
                        Ok(b) => Some(Some(b)),
                        Err(e) => {
                            cx.bad(&key("size"), format!("`size`: {e}"), "not a size", None);
                            None
                        }
                    },
                };
                let mode = match &t.mode {
                    Some(m) => cx.mode(&key("mode"), m),
                    None => Some(0o1777),
                };
                match (path, size, mode) {
                    (Some(path), Some(size), Some(mode)) => Some(Device::Tmpfs {
                        path,
                        size,
                        mode,
                        readonly: t.readonly.unwrap_or(false),
                    }),
                    _ => None,
                }
            }
            RawDevice::Symlink(s) => {
                let path = match &s.path {
                    Some(p) => cx.container_path(&key("path"), p),
                    None => {
                        cx.needs(
                            &base,
                            &[&key("path")],
                            format!("symlink device `{name}` needs `path`"),
                            "`path` missing",
                            None,
                        );
                        None
                    }
                };
                let target = match &s.target {
                    Some(t) if t.is_empty() || t.contains('\0') => {
                        cx.bad(
                            &key("target"),
                            "`target` must not be empty".into(),
                            "empty",
                            None,
                        );
                        None
                    }
                    Some(t) => Some(t.clone()),
                    None => {
                        cx.needs(
                            &base,
                            &[&key("target")],
                            format!("symlink device `{name}` needs `target`"),
                            "`target` missing",
                            None,
                        );
                        None
                    }
                };
                match (path, target) {
                    (Some(path), Some(target)) => Some(Device::Symlink { path, target }),
                    _ => None,
                }
            }
            RawDevice::Mqueue(m) => match &m.path {
                Some(p) => cx
                    .container_path(&key("path"), p)
                    .map(|path| Device::Mqueue { path }),
                None => {
                    cx.needs(
                        &base,
                        &[&key("path")],
                        format!("mqueue device `{name}` needs `path`"),
                        "`path` missing",
                        None,
                    );
                    None
                }
            },
        };
        if let Some(device) = device {
            let raw_keys = raw_device_keys(dev);
            out.push((
                name.clone(),
                Some(NamedDevice {
                    name: name.clone(),
                    device,
                    origin,
                    raw: raw_keys,
                    from_user: cx.layer.dir.is_some(),
                }),
            ));
        }
    }
}

/// A device's keys as LXD lists them to the guest: `type` first, then each
/// field that is set, by its TOML name, its value as a string (`"true"`,
/// `"1500"`, `"bridged"`). Made from the device's `Serialize` impl, so a
/// field added to a device type shows up here without more code.
fn raw_device_keys(dev: &RawDevice) -> crate::plan::DeviceKeys {
    let mut out = crate::plan::DeviceKeys::default();
    out.insert("type".to_string(), dev.type_name().to_string());
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(dev) {
        for (k, v) in map {
            if k == "type" {
                continue;
            }
            let s = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            out.insert(k, s);
        }
    }
    out
}

fn unix_device(cx: &mut Cx<'_>, base: &str, kind: NodeKind, u: &RawUnixDevice) -> Option<Device> {
    let key = |k: &str| join(base, k);
    let mut ok = true;
    let source = match &u.source {
        Some(s) if !s.starts_with('/') => {
            cx.bad(
                &key("source"),
                format!("`source` `{s}` must be an absolute host path"),
                "not absolute",
                None,
            );
            ok = false;
            None
        }
        Some(s) => {
            let p = cx.host_path(&key("source"), s);
            ok &= p.is_some();
            p
        }
        None => None,
    };
    let path_text = u.path.as_deref().or(u.source.as_deref());
    let path = match (path_text, u.path.is_some()) {
        (Some(p), true) => cx.container_path(&key("path"), p),
        (Some(p), false) => ContainerPath::new(p).ok(),
        (None, _) => {
            cx.needs(
                base,
                &[&key("path"), &key("source")],
                "a unix device needs `path` (or `source`)".into(),
                "`path` missing",
                None,
            );
            None
        }
    };
    if let Some(p) = &path
        && !p.starts_with(&ContainerPath::new("/dev").expect("static path"))
    {
        let k = if u.path.is_some() {
            key("path")
        } else {
            key("source")
        };
        cx.bad(
            &k,
            format!("device node `{p}` must be under /dev"),
            "not under /dev",
            None,
        );
        ok = false;
    }
    let number = match (u.major, u.minor) {
        (Some(ma), Some(mi)) => {
            if !(0..4096).contains(&ma) {
                cx.bad(
                    &key("major"),
                    format!("major {ma} is out of range (0 to 4095)"),
                    "out of range",
                    None,
                );
                ok = false;
            }
            if !(0..1 << 20).contains(&mi) {
                cx.bad(
                    &key("minor"),
                    format!("minor {mi} is out of range (0 to 1048575)"),
                    "out of range",
                    None,
                );
                ok = false;
            }
            Some((ma as u32, mi as u32))
        }
        (Some(_), None) => {
            cx.needs(
                &key("major"),
                &[&key("minor")],
                "`major` needs `minor` too".into(),
                "`minor` missing",
                None,
            );
            ok = false;
            None
        }
        (None, Some(_)) => {
            cx.needs(
                &key("minor"),
                &[&key("major")],
                "`minor` needs `major` too".into(),
                "`major` missing",
                None,
            );
            ok = false;
            None
        }
        (None, None) => None,
    };
    let method = u.method.unwrap_or(NodeMethod::Mknod);
    if number.is_none() && u.source.is_none() && u.major.is_none() && u.minor.is_none() {
        cx.needs(
            base,
            &[&key("major"), &key("minor"), &key("source")],
            "a unix device needs `major` and `minor`, or a host `source` node".into(),
            "no device number",
            Some("e.g. major = 10, minor = 200, or source = \"/dev/net/tun\"".into()),
        );
        ok = false;
    }
    if method == NodeMethod::Bind && u.source.is_none() {
        if !cx.layer.spans.pruned(&key("source")) {
            cx.bad(
                &key("method"),
                "`method = \"bind\"` needs a host `source` node to bind".into(),
                "no source",
                None,
            );
        }
        ok = false;
    }
    if method == NodeMethod::Bind {
        // A bind shows the host's node as it is: its mode and owner.
        for k in ["mode", "uid", "gid"] {
            let given = match k {
                "mode" => u.mode.is_some(),
                "uid" => u.uid.is_some(),
                _ => u.gid.is_some(),
            };
            if given {
                cx.bad_key(
                    &key(k),
                    format!("`{k}` has no effect with `method = \"bind\"`"),
                    "not applied",
                    Some("a node bound from the host keeps the host node's mode and owner; remove it, or use method = \"mknod\"".into()),
                );
                ok = false;
            }
        }
    }
    let mode = match &u.mode {
        Some(m) => cx.mode(&key("mode"), m),
        None => Some(0o660),
    };
    let (path, mode) = (path?, mode?);
    if !ok {
        return None;
    }
    Some(Device::Unix {
        kind,
        path,
        source,
        number,
        mode,
        uid: u.uid.unwrap_or(0) as u32,
        gid: u.gid.unwrap_or(0) as u32,
        required: u.required.unwrap_or(true),
        method,
    })
}

fn nic_device(cx: &mut Cx<'_>, base: &str, n: &RawNic) -> Option<Device> {
    let key = |k: &str| join(base, k);
    let mut ok = true;
    let Some(nictype) = n.nictype else {
        cx.needs(
            base,
            &[&key("nictype")],
            "a nic needs `nictype`".into(),
            "`nictype` missing",
            Some("one of `p2p`, `bridged`, `macvlan`, `physical`".into()),
        );
        return None;
    };
    let needs_parent = matches!(
        nictype,
        NicType::Bridged | NicType::Macvlan | NicType::Physical
    );
    if needs_parent && n.parent.is_none() {
        if !cx.layer.spans.pruned(&key("parent")) {
            cx.bad(
                &key("nictype"),
                format!("a `{}` nic needs `parent`", nictype_name(nictype)),
                "`parent` missing",
                Some(match nictype {
                    NicType::Bridged => "the host bridge to join, e.g. parent = \"br0\"".into(),
                    _ => "the host interface, e.g. parent = \"eth1\"".into(),
                }),
            );
        }
        ok = false;
    }
    if !needs_parent && n.parent.is_some() {
        cx.bad_key(
            &key("parent"),
            "a `p2p` nic takes no `parent`".into(),
            "not used",
            Some("use nictype = \"bridged\" to join a bridge".into()),
        );
        ok = false;
    }
    for (k, v) in [
        ("parent", &n.parent),
        ("name", &n.name),
        ("host_name", &n.host_name),
    ] {
        if let Some(v) = v
            && let Err(e) = check_ifname(v)
        {
            cx.bad(
                &key(k),
                format!("`{k}`: {e}"),
                "invalid interface name",
                None,
            );
            ok = false;
        }
    }
    if n.host_name.is_some() && matches!(nictype, NicType::Macvlan | NicType::Physical) {
        cx.bad_key(
            &key("host_name"),
            format!("a `{}` nic has no host side to name", nictype_name(nictype)),
            "not used",
            None,
        );
        ok = false;
    }
    let hwaddr = match &n.hwaddr {
        Some(h) => match parse_mac(h) {
            Ok(m) => Some(m),
            Err(e) => {
                cx.bad(
                    &key("hwaddr"),
                    format!("`hwaddr`: {e}"),
                    "invalid MAC",
                    None,
                );
                ok = false;
                None
            }
        },
        None => None,
    };
    let ipv4_address = match &n.ipv4_address {
        Some(a) => match parse_ipv4_cidr(a) {
            Ok(v) => Some(v),
            Err(e) => {
                cx.bad(
                    &key("ipv4.address"),
                    format!("`ipv4.address`: {e}"),
                    "invalid address",
                    None,
                );
                ok = false;
                None
            }
        },
        None => None,
    };
    let ipv4_gateway = match &n.ipv4_gateway {
        Some(g) => match g.parse::<std::net::Ipv4Addr>() {
            Ok(v) => Some(v),
            Err(_) => {
                cx.bad(
                    &key("ipv4.gateway"),
                    format!("`ipv4.gateway`: `{g}` is not an IPv4 address"),
                    "invalid address",
                    None,
                );
                ok = false;
                None
            }
        },
        None => None,
    };
    if n.ipv4_gateway.is_some() && n.ipv4_address.is_none() {
        cx.needs(
            &key("ipv4.gateway"),
            &[&key("ipv4.address")],
            "`ipv4.gateway` needs `ipv4.address`".into(),
            "no address",
            Some("a static gateway goes with a static address, e.g. \"ipv4.address\" = \"10.0.3.2/24\"".into()),
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    Some(Device::Nic(Nic {
        nictype,
        parent: n.parent.clone(),
        name: n.name.clone(),
        hwaddr,
        mtu: n.mtu.map(|m| m as u32),
        host_name: n.host_name.clone(),
        ipv4_address,
        ipv4_gateway,
    }))
}

pub fn nictype_name(t: NicType) -> &'static str {
    match t {
        NicType::P2p => "p2p",
        NicType::Bridged => "bridged",
        NicType::Macvlan => "macvlan",
        NicType::Physical => "physical",
    }
}

/// Stacks the layers (bottom first) and checks the whole.
fn stack_layers(
    mut parts: Vec<Part>,
    layers: &[Layer],
    sources: &Sources,
) -> Result<Profile, Vec<Problem>> {
    let mut problems = Vec::new();
    macro_rules! last {
        ($field:ident) => {
            parts.iter().rev().find_map(|p| p.$field.clone())
        };
    }
    let top = layers.last().expect("the top profile is a layer");
    // A missing key has no span: point at the top file's start.
    let at_top = |p: Problem, label: &str| p.at(&top.source, 0..0, label);
    let name = last!(name);
    let rootfs = last!(rootfs);
    if name.is_none() {
        problems.push(at_top(
            Problem::new("the profile has no `name`").help(
                "add a line like `name = \"web\"` (the name is also the container's hostname)",
            ),
            "no `name` here or in the files it stacks",
        ));
    }
    if rootfs.is_none() {
        problems.push(at_top(
            Problem::new("the profile has no `rootfs`")
                .help("add a line like `rootfs = \"rootfs\"` (relative to the file that sets it)"),
            "no `rootfs` here or in the files it stacks",
        ));
    }
    let mut config: IndexMap<String, At<String>> = IndexMap::new();
    for p in &parts {
        for (k, v) in &p.config {
            config.insert(k.clone(), v.clone());
        }
    }
    let mut devices: IndexMap<String, NamedDevice> = IndexMap::new();
    for p in &mut parts {
        for (name, d) in std::mem::take(&mut p.devices) {
            match d {
                Some(d) => match devices.get_mut(&name) {
                    Some(slot) => *slot = d,
                    None => {
                        devices.insert(name, d);
                    }
                },
                None => {
                    devices.shift_remove(&name);
                }
            }
        }
    }
    // Two devices on one container path.
    let mut by_path: HashMap<&str, &NamedDevice> = HashMap::new();
    for d in devices.values() {
        if let Some(p) = d.device.path() {
            if let Some(first) = by_path.get(p.as_str()) {
                problems.push(
                    sources
                        .problem(&Origin::new(&d.origin.file, join(&d.origin.key, "path")), format!("devices `{}` and `{}` both use {p}", first.name, d.name), "used twice", true)
                        .help(format!("`{}` ({}) already puts something at {p}; remove one, or mask it with type = \"none\"", first.name, first.origin.file)),
                );
            } else {
                by_path.insert(p.as_str(), d);
            }
        }
    }
    // NIC names unique.
    let mut nic_names: HashMap<&str, &NamedDevice> = HashMap::new();
    for d in devices.values() {
        if let Device::Nic(n) = &d.device
            && let Some(name) = &n.name
        {
            if let Some(first) = nic_names.get(name.as_str()) {
                problems.push(sources.problem(
                    &Origin::new(&d.origin.file, join(&d.origin.key, "name")),
                    format!(
                        "nics `{}` and `{}` are both named `{name}`",
                        first.name, d.name
                    ),
                    "name used twice",
                    true,
                ).help(format!(
                    "`{}` ({}) already names its interface `{name}`; set another `name`, or leave it out to get the first free ethN",
                    first.name, first.origin.file
                )));
            } else {
                nic_names.insert(name, d);
            }
        }
    }
    let mut missing = |what: &str| {
        problems.push(Problem::new(format!(
            "internal: the built-in base profile does not set `{what}`"
        )));
    };
    macro_rules! need {
        ($field:ident, $what:expr) => {
            match last!($field) {
                Some(v) => Some(v),
                None => {
                    missing($what);
                    None
                }
            }
        };
    }
    let command = need!(command, "init.command");
    let stop_signal = need!(stop_signal, "init.stop-signal");
    let reboot_signal = need!(reboot_signal, "init.reboot-signal");
    let stop_timeout = need!(stop_timeout, "init.stop-timeout");
    let dev_size = need!(dev_size, "dev.size");
    let dev_mode = need!(dev_mode, "dev.mode");
    let dev_pts = need!(dev_pts, "dev.pts-options");
    let dev_log = need!(dev_log, "dev.log");
    let dev_create = need!(dev_create, "dev.create");
    let proc_mode = need!(proc_mode, "proc.mode");
    let proc_create = need!(proc_create, "proc.create");
    let sys_mode = need!(sys_mode, "sys.mode");
    let sys_create = need!(sys_create, "sys.create");
    let cgroup_parent = need!(cgroup_parent, "cgroup.parent");
    let cgroup_ns = need!(cgroup_ns, "cgroup.namespace");
    let device_allow = need!(device_allow, "cgroup.device-allow");
    let lxcfs_enabled = need!(lxcfs_enabled, "lxcfs.enabled");
    let lxcfs_path = need!(lxcfs_path, "lxcfs.path");
    let devlxd = config
        .get("security.devlxd")
        .map(|v| At::new(v.value == "true", v.origin.clone()));
    if devlxd.is_none() {
        missing("config.\"security.devlxd\"");
    }
    // Paths envc itself mounts or creates: no device may take one, nor sit
    // above one (a bind of /sys/fs would hide /sys/fs/cgroup).
    let mut reserved: Vec<(&str, &str)> = vec![
        ("/dev", "the /dev tmpfs (see [dev])"),
        ("/dev/pts", "the container's devpts (see [dev] pts-options)"),
        ("/dev/ptmx", "the pty multiplexer"),
        ("/dev/console", "the console"),
        ("/proc", "procfs (see [proc])"),
        ("/sys", "sysfs (see [sys])"),
        ("/sys/fs/cgroup", "the cgroup filesystem (see [cgroup])"),
    ];
    if dev_log.as_ref().is_some_and(|l| l.value != LogMode::None) {
        reserved.push(("/dev/log", "the /dev/log socket (see [dev] log)"));
    }
    if devlxd.as_ref().is_some_and(|d| d.value) {
        reserved.push((
            "/dev/lxd/sock",
            "the guest API socket (see \"security.devlxd\")",
        ));
    }
    if proc_mode
        .as_ref()
        .is_some_and(|m| m.value == ProcMode::Mixed)
    {
        for p in ["/proc/sys", "/proc/sys/net", "/proc/sysrq-trigger"] {
            reserved.push((
                p,
                "the read-only parts of /proc (see [proc] mode = \"mixed\")",
            ));
        }
    }
    if sys_mode.as_ref().is_some_and(|m| m.value == SysMode::Mixed) {
        reserved.push((
            "/sys/devices/virtual/net",
            "the writable part of /sys (see [sys] mode = \"mixed\")",
        ));
    }
    let reserved: Vec<(ContainerPath, &str)> = reserved
        .into_iter()
        .map(|(r, what)| (ContainerPath::new(r).expect("static path"), what))
        .collect();
    // Of those, what nothing may go inside: files, and filesystems of their
    // own (devpts, the cgroup filesystem, mounted after the devices).
    let sealed = |r: &ContainerPath| {
        !matches!(
            r.as_str(),
            "/dev" | "/proc" | "/sys" | "/proc/sys" | "/proc/sys/net" | "/sys/devices/virtual/net"
        )
    };
    for d in devices.values() {
        let Some(p) = d.device.path() else { continue };
        let clash = reserved
            .iter()
            .find(|(r, _)| r.starts_with(p) || (sealed(r) && p.starts_with(r)));
        if let Some((r, what)) = clash {
            let origin = Origin::new(&d.origin.file, join(&d.origin.key, "path"));
            let (message, label) = if p == r {
                (
                    format!("device `{}` is on {p}, where envc puts {what}", d.name),
                    "taken by envc",
                )
            } else if r.starts_with(p) {
                (
                    format!(
                        "device `{}` on {p} would hide {r}, where envc puts {what}",
                        d.name
                    ),
                    "hides what envc puts below it",
                )
            } else {
                (
                    format!(
                        "device `{}` on {p} is inside {r}, where envc puts {what}",
                        d.name
                    ),
                    "inside what envc puts there",
                )
            };
            problems.push(
                sources
                    .problem(&origin, message, label, true)
                    .help("choose another path: the built-in parts of the container are configured in their own sections"),
            );
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // Limits and environment from the stacked config (each value was checked in its file).
    let mut limits = Limits::default();
    let mut limits_origin = None;
    let mut environment = IndexMap::new();
    for (k, v) in &config {
        match k.as_str() {
            "limits.memory" => limits.memory = parse_memory_limit(&v.value).ok(),
            "limits.cpu" => limits.cpu = parse_cpu_limit(&v.value).ok(),
            "limits.cpu.allowance" => limits.cpu_allowance = parse_cpu_allowance(&v.value).ok(),
            "limits.processes" => limits.processes = parse_processes(&v.value).ok(),
            _ => {
                if let Some(var) = k.strip_prefix("environment.") {
                    environment.insert(var.to_string(), v.clone());
                }
                continue;
            }
        }
        limits_origin.get_or_insert_with(|| v.origin.clone());
    }
    let (Some(name), Some(rootfs)) = (name, rootfs) else {
        unreachable!("checked above")
    };
    Ok(Profile {
        name,
        description: parts.iter().rev().find_map(|p| p.description.clone()),
        rootfs,
        config,
        environment,
        limits,
        limits_origin,
        devlxd: devlxd.expect("checked above"),
        init: Init {
            command: command.expect("checked"),
            stop_signal: stop_signal.expect("checked"),
            reboot_signal: reboot_signal.expect("checked"),
            stop_timeout: stop_timeout.expect("checked"),
        },
        dev: Dev {
            size: dev_size.expect("checked"),
            mode: dev_mode.expect("checked"),
            pts_options: dev_pts.expect("checked"),
            log: dev_log.expect("checked"),
            create: dev_create.expect("checked"),
        },
        proc: Proc {
            mode: proc_mode.expect("checked"),
            create: proc_create.expect("checked"),
        },
        sys: Sys {
            mode: sys_mode.expect("checked"),
            create: sys_create.expect("checked"),
        },
        cgroup: Cgroup {
            parent: cgroup_parent.expect("checked"),
            namespace: cgroup_ns.expect("checked"),
            device_allow: device_allow.expect("checked"),
        },
        lxcfs: Lxcfs {
            enabled: lxcfs_enabled.expect("checked"),
            path: lxcfs_path.expect("checked"),
        },
        devices: devices.into_values().collect(),
        layers: layers.iter().map(|l| l.source.name.clone()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device's keys for the guest API: `type` first, then each key that
    /// is set, in the type's field order, every value spelled as a string.
    #[test]
    fn device_keys_are_strings_in_field_order() {
        let text = r#"
            [a]
            type = "unix-char"
            source = "/dev/fuse"
            major = 10
            minor = 229
            mode = "0666"
            gid = 5
            required = false
            method = "bind"
            [c]
            type = "nic"
            nictype = "bridged"
            parent = "br0"
            mtu = 1500
            "ipv4.address" = "10.0.3.2/24"
            "ipv4.gateway" = "10.0.3.1"
            host_name = "veth-c"
            [d]
            type = "tmpfs"
            path = "/run/x"
            size = 65536
            [e]
            type = "tmpfs"
            path = "/run/y"
            size = "64MiB"
            [g]
            type = "mqueue"
        "#;
        let devices: IndexMap<String, RawDevice> = toml::from_str(text).unwrap();
        let keys = |name: &str| {
            let keys = raw_device_keys(&devices[name]);
            keys.into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            keys("a"),
            "type=unix-char source=/dev/fuse major=10 minor=229 mode=0666 gid=5 required=false method=bind"
        );
        assert_eq!(
            keys("c"),
            "type=nic nictype=bridged parent=br0 mtu=1500 host_name=veth-c ipv4.address=10.0.3.2/24 ipv4.gateway=10.0.3.1"
        );
        assert_eq!(keys("d"), "type=tmpfs path=/run/x size=65536");
        assert_eq!(keys("e"), "type=tmpfs path=/run/y size=64MiB");
        assert_eq!(keys("g"), "type=mqueue");
    }

    /// The schema the check walks is the shipped one without its
    /// descriptions and titles: the same rules.
    #[test]
    fn the_check_schema_is_the_shipped_one_without_annotations() {
        fn annotations_out(v: &serde_json::Value, data: bool) -> serde_json::Value {
            match v {
                serde_json::Value::Object(m) => serde_json::Value::Object(
                    m.iter()
                        .filter(|(k, _)| {
                            data || !matches!(k.as_str(), "description" | "title" | "$schema")
                        })
                        .map(|(k, x)| {
                            // Under `properties`, names; under `const`, data.
                            let names = !data
                                && matches!(
                                    k.as_str(),
                                    "properties" | "patternProperties" | "definitions"
                                );
                            let x = if names {
                                serde_json::Value::Object(
                                    (x.as_object().unwrap().iter())
                                        .map(|(n, s)| (n.clone(), annotations_out(s, false)))
                                        .collect(),
                                )
                            } else {
                                annotations_out(x, data || matches!(k.as_str(), "const" | "enum"))
                            };
                            (k.clone(), x)
                        })
                        .collect(),
                ),
                serde_json::Value::Array(a) => {
                    serde_json::Value::Array(a.iter().map(|x| annotations_out(x, data)).collect())
                }
                other => other.clone(),
            }
        }
        let shipped: serde_json::Value = serde_json::from_str(SCHEMA_TEXT).unwrap();
        assert_eq!(schema_json(), &annotations_out(&shipped, false));
        assert!(CHECK_SCHEMA_TEXT.len() * 3 < SCHEMA_TEXT.len());
    }

    /// A layer's span table has keys, values, array items and quoted keys
    /// where they are.
    #[test]
    fn spans_point_at_keys_values_and_items() {
        let text = "name = \"web\"\nrootfs = \"r\"\n\n[config]\n\"limits.cpu\" = \"2\"\n\n[init]\ncommand = [\"/sbin/init\", \"-v\"]\n";
        let layer = parse_layer("web.toml", text, None).unwrap();
        let at = |r: Option<std::ops::Range<usize>>| &text[r.unwrap()];
        assert_eq!(at(layer.spans.key("name")), "name");
        assert_eq!(at(layer.spans.value("name")), "\"web\"");
        assert_eq!(
            at(layer.spans.key("config.\"limits.cpu\"")),
            "\"limits.cpu\""
        );
        assert_eq!(at(layer.spans.value("init.command[1]")), "\"-v\"");
        assert_eq!(layer.spans.key("init.nothing"), None);
        // A file with a structural problem: the problem is reported with its
        // span.
        let bad = "name = \"web\"\nrootfs = 7\n";
        let problems = parse_layer("bad.toml", bad, None).unwrap_err();
        assert_eq!(problems[0].span, Some(22..23), "{problems:?}");
        // A structural problem (pruned) and a semantic one, whose span comes
        // from the table: both where they are.
        let both = "name = \"web\"\nrootfs = 7\n\n[devices.data]\ntype = \"disk\"\nsource = \"relative/x\"\npath = \"/srv\"\n";
        let problems = parse_layer("both.toml", both, None).unwrap_err();
        let spans: Vec<&str> = (problems.iter())
            .map(|p| &both[p.span.clone().expect("a span")])
            .collect();
        assert_eq!(spans, ["7", "\"relative/x\""], "{problems:?}");
    }
}
