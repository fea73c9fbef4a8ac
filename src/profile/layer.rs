//! One layer: a profile file's text parsed as TOML, checked against the
//! schema (which also writes down where each key and value is), and read
//! into the raw profile types.

use super::builtin::check_schema;
use super::convert::convert;
use super::raw::RawProfile;
use super::spans::Spans;
use super::structure;
use crate::diag::{Problem, Source};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One loaded file.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Its name (relative to the top profile's directory, or
    /// `builtin:lxd`) and text.
    pub source: Source,
    /// Where each of its keys and values is.
    pub spans: Spans,
    /// What it says, as serde reads it.
    pub raw: RawProfile,
    /// The file's directory on disk (None for the built-in).
    pub dir: Option<PathBuf>,
}

/// Parses and structurally checks one file's text. A file with structural
/// problems is also converted (its values checked for meaning), so all of
/// its problems show at once.
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
    let (problems, spans) = structure::check(check_schema(), &source, &mut doc);
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

#[cfg(test)]
mod tests {
    use super::*;

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
