//! The error type of [`crate::idmap`]: every way choosing, writing or
//! recording a container's id map can fail, each with the file, line, user or
//! container that a person needs to put it right.

use super::map::{HostRange, ProcMapError};
use super::raw::RawError;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// What went wrong while computing or recording an id map.
#[derive(Debug)]
pub enum IdMapError {
    /// A line of `/etc/subuid` or `/etc/subgid` is not `user:start:count`.
    SubIdSyntax {
        file: String,
        line: usize,
        message: String,
    },
    /// Root's range in the file is shorter than the 65536 ids a POSIX system
    /// needs (root 0 to nobody 65534).
    RootRangeTooShort {
        file: String,
        line: usize,
        range: HostRange,
    },
    /// Root has no range, so LXD's fallback would be used, but the file gives
    /// part of that fallback to another user.
    FallbackTaken {
        file: String,
        line: usize,
        user: String,
        range: HostRange,
        fallback: HostRange,
    },
    /// `raw.idmap` lines that are malformed, overlap each other, or map a host
    /// id the container's own range already maps (each carries its span).
    Raw(Vec<RawError>),
    /// A `security.idmap.*` value that can't be used (e.g. a size of 0).
    BadConfig(String),
    /// No free range of the requested size is left for an isolated container.
    Exhausted {
        size: u32,
        /// Where isolated ranges are taken from (root's range past its first 65536 ids).
        pool: HostRange,
        /// The ranges already held: container name and its host uid range.
        taken: Vec<(String, HostRange)>,
    },
    /// An isolated container with a fixed `security.idmap.base` would share
    /// host ids with another running isolated container.
    BaseTaken {
        wanted: HostRange,
        other: String,
        other_range: HostRange,
    },
    /// The map can't be written to `/proc/PID/uid_map` or `gid_map` as it is.
    ProcMap {
        kind: &'static str,
        error: ProcMapError,
    },
    /// A container name that can't be the name of an allocation file.
    BadName(String),
    /// An allocation file under `RUN_DIR/idmap/` that can't be read as one.
    Corrupt { path: PathBuf, detail: String },
    /// A file operation failed; `op` says which, with the path.
    Io { op: String, source: io::Error },
}

impl IdMapError {
    /// An I/O error with what was being done.
    pub(crate) fn io(op: impl Into<String>, source: io::Error) -> IdMapError {
        IdMapError::Io {
            op: op.into(),
            source,
        }
    }
}

impl fmt::Display for IdMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdMapError::SubIdSyntax {
                file,
                line,
                message,
            } => write!(f, "{file} line {line}: {message}"),
            IdMapError::RootRangeTooShort { file, line, range } => write!(
                f,
                "{file} line {line}: root's range {range} has {} ids, fewer than the 65536 \
                 an unprivileged container needs (uid 0 to 65535); give root a larger \
                 range in {file}",
                range.count
            ),
            IdMapError::FallbackTaken {
                file,
                line,
                user,
                range,
                fallback,
            } => write!(
                f,
                "{file} has no range for root, so LXD's fallback {fallback} would be used, \
                 but {file} line {line} gives {range} to user `{user}`; add a `root:START:COUNT` \
                 line to /etc/subuid and /etc/subgid"
            ),
            IdMapError::Raw(errors) => {
                let parts: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                write!(f, "raw.idmap: {}", parts.join("; "))
            }
            IdMapError::BadConfig(m) => f.write_str(m),
            IdMapError::Exhausted { size, pool, taken } => {
                write!(
                    f,
                    "no free range of {size} host ids is left for an isolated container \
                     in {pool}"
                )?;
                if !taken.is_empty() {
                    let held: Vec<String> =
                        taken.iter().map(|(n, r)| format!("`{n}` {r}")).collect();
                    write!(f, " (held: {})", held.join(", "))?;
                }
                f.write_str(
                    "; stop an isolated container, lower security.idmap.size, or run \
                     `envc gc` if a supervisor was killed",
                )
            }
            IdMapError::BaseTaken {
                wanted,
                other,
                other_range,
            } => write!(
                f,
                "security.idmap.base: the isolated range {wanted} overlaps {other_range}, \
                 held by the running isolated container `{other}`"
            ),
            IdMapError::ProcMap { kind, error } => write!(f, "{kind} map: {error}"),
            IdMapError::BadName(n) => write!(
                f,
                "`{n}` can't name an id map allocation (empty, starts with `.`, or holds `/`)"
            ),
            IdMapError::Corrupt { path, detail } => write!(
                f,
                "{} is not an id map allocation ({detail}); remove it if its container \
                 is stopped, or run `envc gc`",
                path.display()
            ),
            IdMapError::Io { op, source } => write!(f, "{op}: {source}"),
        }
    }
}

impl std::error::Error for IdMapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IdMapError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
