//! Following `profiles`: from the top file, each file it stacks before it
//! (depth first), every file once, with loops and runaway depth reported.

use super::layer::{Layer, parse_layer};
use super::read::{FileId, absolute, file_id, io_reason, read_profile, relative_to};
use crate::diag::Problem;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The layers of the profile `top` (an absolute path) in the order they
/// stack: each file after the files it stacks. What goes wrong reading one
/// goes onto `problems`, and the walk goes on with the others.
pub(super) fn read_stack(top: &Path, top_dir: &Path, problems: &mut Vec<Problem>) -> Vec<Layer> {
    let mut walk = Walk {
        top_dir,
        reading: Vec::new(),
        done: HashSet::new(),
        layers: Vec::new(),
        problems,
    };
    walk.collect(top, None);
    walk.layers
}

/// Where the walk is.
struct Walk<'a> {
    /// What file names are relative to.
    top_dir: &'a Path,
    /// The files being read, outermost first: meeting one again is a loop.
    reading: Vec<(FileId, PathBuf)>,
    /// The files already stacked.
    done: HashSet<FileId>,
    layers: Vec<Layer>,
    problems: &'a mut Vec<Problem>,
}

impl Walk<'_> {
    /// Reads `file` and, first, the files it stacks, pushing each layer
    /// after the layers it stacks. A file stacked more than once (`a` and
    /// `b` both stack `common`) is a layer once, where it comes first:
    /// stacking it again later would undo what the files between override.
    /// `included_at`: the layer that names `file`, and where in its `profiles`.
    fn collect(&mut self, file: &Path, included_at: Option<(&Layer, usize)>) {
        let top_dir = self.top_dir;
        let name = relative_to(file, top_dir);
        let id = file_id(file);
        let reading = &self.reading;
        if let Some(pos) = reading.iter().position(|(i, _)| id.is_some() && *i == id) {
            let cycle: Vec<String> = reading[pos..]
                .iter()
                .map(|(_, p)| p.as_path())
                .chain(std::iter::once(file))
                .map(|p| relative_to(p, top_dir))
                .collect();
            let msg = format!("profiles stack in a loop: {}", cycle.join(" → "));
            self.problems.push(match included_at {
                Some((l, i)) => {
                    Problem::new(msg).at(&l.source, stacked_at(l, i), "included again here")
                }
                None => Problem::new(msg),
            });
            return;
        }
        if id.is_some() && self.done.contains(&id) {
            return;
        }
        if reading.len() >= 32 {
            self.problems.push(Problem::new(format!(
                "profiles stack more than 32 deep at {name}"
            )));
            return;
        }
        let text = match read_profile(file) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(t) => t,
                Err(_) => {
                    (self.problems).push(Problem::new(format!("{name} is not UTF-8 text")));
                    return;
                }
            },
            Err(e) => {
                let msg = format!("cannot read profile {name}: {}", io_reason(&e));
                self.problems.push(match included_at {
                    Some((l, i)) => {
                        Problem::new(msg).at(&l.source, stacked_at(l, i), "stacked here")
                    }
                    None => Problem::new(msg),
                });
                return;
            }
        };
        let dir = file.parent().map(Path::to_path_buf);
        let layer = match parse_layer(&name, &text, dir) {
            Ok(l) => l,
            Err(mut p) => {
                self.problems.append(&mut p);
                return;
            }
        };
        self.reading.push((id, file.to_path_buf()));
        let base_dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
        for (i, inc) in layer.raw.profiles.iter().enumerate() {
            if inc.is_empty() {
                self.problems
                    .push(Problem::new("an empty file name in `profiles`").at(
                        &layer.source,
                        stacked_at(&layer, i),
                        "here",
                    ));
                continue;
            }
            let path = absolute(&base_dir.join(inc));
            self.collect(&path, Some((&layer, i)));
        }
        self.reading.pop();
        self.done.insert(id);
        self.layers.push(layer);
    }
}

/// Where `layer` stacks its `i`th file (for a problem with that file).
fn stacked_at(layer: &Layer, i: usize) -> std::ops::Range<usize> {
    layer.spans.value(&format!("profiles[{i}]")).unwrap_or(0..0)
}
