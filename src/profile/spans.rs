//! Where each key and value of a profile file is, by dotted path
//! (`devices.eth0.hwaddr`, `config."limits.cpu"`, `profiles[0]`): what a
//! problem points at.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

/// Where each key and value of a document is, by dotted path: what a
/// problem found after the structural check points at. Written down by
/// that check, as it walks the file.
#[derive(Debug, Default, Clone)]
pub struct Spans {
    /// Each dotted path's key span and value span.
    map: HashMap<String, (Range<usize>, Range<usize>)>,
    /// Paths whose value was reported and removed, or that an unknown key
    /// was probably meant to be (`sorce` → `devices.data.source`): a later
    /// "needs `source`" about them would report the same mistake twice.
    pruned: HashSet<String>,
}

impl Spans {
    /// The key's span for `path` (`devices.eth0.hwaddr`; config keys are quoted:
    /// `config."limits.cpu"`).
    pub fn key(&self, path: &str) -> Option<Range<usize>> {
        self.map.get(path).map(|(k, _)| k.clone())
    }
    /// The value's span for `path`.
    pub fn value(&self, path: &str) -> Option<Range<usize>> {
        self.map.get(path).map(|(_, v)| v.clone())
    }
    /// True if the structural check already reported the value at `path`
    /// (or an unknown key that probably meant it) and removed it.
    pub fn pruned(&self, path: &str) -> bool {
        self.pruned.contains(path)
    }
    /// Writes down where the key and the value at `path` are.
    pub(super) fn record(&mut self, path: String, key_and_value: (Range<usize>, Range<usize>)) {
        self.map.insert(path, key_and_value);
    }
    /// Writes down that the value at `path` was reported and removed.
    pub(super) fn prune(&mut self, path: String) {
        self.pruned.insert(path);
    }
}

/// Joins a path segment the way `Spans` keys are written.
pub fn join(parent: &str, key: &str) -> String {
    let mut out = String::with_capacity(parent.len() + key.len() + 3);
    out.push_str(parent);
    push_key(&mut out, key);
    out
}

/// Appends `key` to the dotted path `out` (quoted unless it is a bare key).
fn push_key(out: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if !out.is_empty() {
        out.push('.');
    }
    if plain {
        out.push_str(key);
    } else {
        out.push_str(&format!("{key:?}"));
    }
}
