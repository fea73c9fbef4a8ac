//! Typed paths. A step never carries a bare `PathBuf`: host paths and container
//! paths are different things, and a container path is only ever resolved inside
//! the rootfs by the executor.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a path string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    Empty,
    NotAbsolute,
    DotDot,
    Nul,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::Empty => "the path is empty",
            PathError::NotAbsolute => "the path must be absolute (start with `/`)",
            PathError::DotDot => "the path must not contain `..`",
            PathError::Nul => "the path must not contain a NUL byte",
        })
    }
}

/// Checks and normalises an absolute path: collapses `//` and `/./`, strips a
/// trailing `/`, refuses `..` and NUL.
fn normalise(s: &str) -> Result<String, PathError> {
    if s.is_empty() {
        return Err(PathError::Empty);
    }
    if s.contains('\0') {
        return Err(PathError::Nul);
    }
    if !s.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    // Most paths are written normal already: one pass over the bytes.
    let normal = s.len() == 1
        || (!s.ends_with('/')
            && (s.as_bytes()[1..].split(|&c| c == b'/'))
                .all(|c| !c.is_empty() && c != b"." && c != b".."));
    if normal {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    for part in s.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(PathError::DotDot),
            p => {
                out.push('/');
                out.push_str(p);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

macro_rules! typed_path {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(s: &str) -> Result<Self, PathError> {
                normalise(s).map($name)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// The path's components, without the root.
            pub fn components(&self) -> impl Iterator<Item = &str> {
                self.0.split('/').filter(|c| !c.is_empty())
            }
            /// How many components deep the path is (`/` is 0).
            pub fn depth(&self) -> usize {
                self.components().count()
            }
            /// True if `self` is `other` or lies below it.
            pub fn starts_with(&self, other: &Self) -> bool {
                other.0 == "/"
                    || self.0 == other.0
                    || (self.0.starts_with(&other.0) && self.0.as_bytes()[other.0.len()] == b'/')
            }
            /// The parent directory (`/` for a top-level entry and for `/`).
            pub fn parent(&self) -> Self {
                match self.0.rfind('/') {
                    Some(0) | None => $name("/".into()),
                    Some(i) => $name(self.0[..i].to_string()),
                }
            }
            /// `self/rel`, checked like any other path.
            pub fn join(&self, rel: &str) -> Result<Self, PathError> {
                $name::new(&format!("{}/{rel}", self.0))
            }
            /// The path relative to `/`, for use with `*at` calls on a root fd
            /// (`.` for the root itself).
            pub fn relative(&self) -> &str {
                if self.0 == "/" { "." } else { &self.0[1..] }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::new(&s).map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}")))
            }
        }
    };
}

typed_path!(
    /// An absolute, normalised path inside the container (no `..`). Resolved
    /// against the rootfs by the executor only, never following a symlink out.
    ContainerPath
);
typed_path!(
    /// An absolute, normalised path on the host (no `..`).
    HostPath
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(
            ContainerPath::new("/dev//pts/").unwrap().as_str(),
            "/dev/pts"
        );
        assert_eq!(ContainerPath::new("/./a/./b").unwrap().as_str(), "/a/b");
        assert_eq!(ContainerPath::new("/").unwrap().as_str(), "/");
        assert_eq!(ContainerPath::new("///").unwrap().relative(), ".");
    }

    #[test]
    fn refuses() {
        assert_eq!(ContainerPath::new(""), Err(PathError::Empty));
        assert_eq!(ContainerPath::new("dev"), Err(PathError::NotAbsolute));
        assert_eq!(ContainerPath::new("/a/../b"), Err(PathError::DotDot));
        assert_eq!(HostPath::new("/a\0b"), Err(PathError::Nul));
    }

    #[test]
    fn relations() {
        let dev = ContainerPath::new("/dev").unwrap();
        let pts = ContainerPath::new("/dev/pts").unwrap();
        let devx = ContainerPath::new("/devx").unwrap();
        assert!(pts.starts_with(&dev));
        assert!(!devx.starts_with(&dev));
        assert!(dev.starts_with(&ContainerPath::new("/").unwrap()));
        assert_eq!(pts.parent(), dev);
        assert_eq!(dev.parent().as_str(), "/");
        assert_eq!(pts.depth(), 2);
        assert_eq!(pts.relative(), "dev/pts");
    }
}
