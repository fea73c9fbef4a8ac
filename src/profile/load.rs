//! Loading a profile: the top file and the files it stacks, the built-in
//! base under them all, each read, checked and converted, then merged into
//! one [`Profile`]. Every problem of every file is collected; nothing is
//! half-loaded. Also [`Sources`], which points a problem found later (in
//! the plan or at start) at the file and key it came from.

use super::builtin::{BUILTIN_NAME, BUILTIN_TEXT};
use super::convert::convert;
use super::layer::parse_layer;
use super::merge::merge_layers;
use super::model::{Origin, Profile};
use super::read::absolute;
use super::spans::Spans;
use super::stack::read_stack;
use crate::diag::{Problem, Source};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// `crate::profile::load::nictype_name` is what the plan and the runner call.
pub use super::devices::nictype_name;

/// The sources of a load, to point diagnostics at origins.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    files: HashMap<String, (Source, Spans)>,
}

impl Sources {
    /// True if the file named `file` sets the dotted `key` (`devices.fuse`).
    pub fn sets(&self, file: &str, key: &str) -> bool {
        self.files
            .get(file)
            .is_some_and(|(_, spans)| spans.key(key).is_some())
    }
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
    layers.extend(read_stack(&top_abs, &top_dir, &mut problems));
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
    match merge_layers(parts, &layers, &sources) {
        Ok(p) => Ok((p, sources)),
        Err(p) => Err(once_each(p)),
    }
}

/// Problems are reported once each, however they were reached.
fn once_each(problems: Vec<Problem>) -> Vec<Problem> {
    let mut seen = HashSet::new();
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
/// broken file can have thousands, and rendering each one costs time in
/// proportion to the file.
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
