//! `/etc/subuid` and `/etc/subgid`: which host ids root may hand to
//! containers. LXD's rules (`DefaultIdmapSet` in LXD's `idmap` package):
//! root's first range of at least 65536 ids is used whole; when either file is
//! missing or has no line for root, both maps fall back to host ids
//! 1000000-1000999999 (`kernelDefaultMap` on a host whose own map is the full
//! range). Two checks LXD doesn't make, both from envc's contract: a root whose
//! only ranges are shorter than 65536 is an error naming the file (LXD would
//! start no unprivileged container and say only that no map was found), and the
//! fallback is refused when the files give part of it to another user.

use super::error::IdMapError;
use super::map::HostRange;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The smallest range an unprivileged container may have: uid 0 (root) to
/// 65535, which holds `nobody` (65534), as POSIX systems expect.
pub const MIN_RANGE: u32 = 65536;

/// LXD's range when root has none: base 1000000, 1000000000 ids.
pub const FALLBACK: HostRange = HostRange::new(1_000_000, 1_000_000_000);

/// One `user:start:count` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubIdEntry {
    /// The user name, or a numeric uid, as written.
    pub user: String,
    pub range: HostRange,
    /// 1-based line number in the file.
    pub line: usize,
}

impl SubIdEntry {
    /// Whether the line is root's: `root` (in any case, as LXD compares) or uid `0`.
    pub fn is_root(&self) -> bool {
        self.user.eq_ignore_ascii_case("root") || self.user == "0"
    }
}

/// A parsed `/etc/subuid` or `/etc/subgid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubIds {
    /// The file's name, for messages (`/etc/subuid`).
    pub file: String,
    pub entries: Vec<SubIdEntry>,
}

impl SubIds {
    /// Parse the text of `file`. Blank lines and `#` comments are skipped;
    /// any other line must be `user:start:count`, else an error with the
    /// file name and line number.
    pub fn parse(file: &str, text: &str) -> Result<SubIds, IdMapError> {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let bad = |message: String| IdMapError::SubIdSyntax {
                file: file.to_string(),
                line,
                message,
            };
            let fields: Vec<&str> = content.split(':').map(str::trim).collect();
            let [user, start, count] = fields[..] else {
                return Err(bad(format!(
                    "expected `user:start:count`, found `{content}`"
                )));
            };
            if user.is_empty() {
                return Err(bad(format!("no user name in `{content}`")));
            }
            let number = |what: &str, s: &str| -> Result<u32, IdMapError> {
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad(format!("{what} `{s}` is not a number")));
                }
                s.parse::<u32>()
                    .map_err(|_| bad(format!("{what} `{s}` is larger than 4294967295")))
            };
            let range = HostRange::new(number("start", start)?, number("count", count)?);
            if range.end() > u64::from(u32::MAX) {
                return Err(bad(format!(
                    "{start}+{count} runs past 4294967294, the last id a map may hold"
                )));
            }
            entries.push(SubIdEntry {
                user: user.to_string(),
                range,
                line,
            });
        }
        Ok(SubIds {
            file: file.to_string(),
            entries,
        })
    }

    /// Read and parse `path`; `Ok(None)` when it doesn't exist.
    pub fn read(path: &Path) -> Result<Option<SubIds>, IdMapError> {
        match std::fs::read_to_string(path) {
            Ok(text) => SubIds::parse(&path.display().to_string(), &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(IdMapError::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Root's range: its first line with at least [`MIN_RANGE`] ids (LXD uses
    /// the first big enough one, whole). `Ok(None)` when root has no line;
    /// an error naming the file when all of root's lines are too short.
    pub fn root_range(&self) -> Result<Option<HostRange>, IdMapError> {
        let mut roots = self.entries.iter().filter(|e| e.is_root()).peekable();
        let Some(first) = roots.peek().copied() else {
            return Ok(None);
        };
        match roots.find(|e| e.range.count >= MIN_RANGE) {
            Some(e) => Ok(Some(e.range)),
            None => Err(IdMapError::RootRangeTooShort {
                file: self.file.clone(),
                line: first.line,
                range: first.range,
            }),
        }
    }
}

/// Where a container's ids come from: root's ranges, or LXD's fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RootSource {
    /// Root's lines in `/etc/subuid` and `/etc/subgid`.
    SubIdFiles,
    /// Root had no line (or a file was missing): LXD's 1000000/1000000000.
    Fallback,
}

/// The host ids root may give containers: one uid range, one gid range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RootIds {
    pub uid: HostRange,
    pub gid: HostRange,
    pub source: RootSource,
}

/// Root's ranges from the parsed files (`None`: the file is missing), by
/// LXD's rules: both files give root a range → those, each used whole; else
/// the fallback for both, unless a line of either file gives part of it to
/// another user.
pub fn root_ids(subuid: Option<&SubIds>, subgid: Option<&SubIds>) -> Result<RootIds, IdMapError> {
    // Check both files first, so a too-short range is reported even if the
    // other file would send us to the fallback.
    let uid = match subuid {
        Some(s) => s.root_range()?,
        None => None,
    };
    let gid = match subgid {
        Some(s) => s.root_range()?,
        None => None,
    };
    if let (Some(uid), Some(gid)) = (uid, gid) {
        return Ok(RootIds {
            uid,
            gid,
            source: RootSource::SubIdFiles,
        });
    }
    for file in [subuid, subgid].into_iter().flatten() {
        if let Some(e) = file
            .entries
            .iter()
            .find(|e| !e.is_root() && e.range.overlaps(&FALLBACK))
        {
            return Err(IdMapError::FallbackTaken {
                file: file.file.clone(),
                line: e.line,
                user: e.user.clone(),
                range: e.range,
                fallback: FALLBACK,
            });
        }
    }
    Ok(RootIds {
        uid: FALLBACK,
        gid: FALLBACK,
        source: RootSource::Fallback,
    })
}

/// [`root_ids`] of the host: `ETC/subuid` and `ETC/subgid` (`etc` is `/etc`
/// but for tests).
pub fn read_root_ids(etc: &Path) -> Result<RootIds, IdMapError> {
    let subuid = SubIds::read(&etc.join("subuid"))?;
    let subgid = SubIds::read(&etc.join("subgid"))?;
    root_ids(subuid.as_ref(), subgid.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(file: &str, text: &str) -> SubIds {
        SubIds::parse(file, text).unwrap()
    }

    #[test]
    fn debian_root_range_is_used_whole() {
        let uid = parse("/etc/subuid", "root:100000:10000001\n");
        let gid = parse("/etc/subgid", "root:100000:10000001\n");
        let ids = root_ids(Some(&uid), Some(&gid)).unwrap();
        assert_eq!(ids.uid, HostRange::new(100000, 10000001));
        assert_eq!(ids.gid, HostRange::new(100000, 10000001));
        assert_eq!(ids.source, RootSource::SubIdFiles);
    }

    #[test]
    fn parses_users_numeric_uids_comments_and_blanks() {
        let s = parse(
            "/etc/subuid",
            "# made by useradd\n\nalice:165536:65536\n  1000:231072:65536  # bob by uid\nroot:100000:65536\n",
        );
        assert_eq!(s.entries.len(), 3);
        assert_eq!(s.entries[1].user, "1000");
        assert_eq!(s.entries[1].line, 4);
        assert_eq!(s.root_range().unwrap(), Some(HostRange::new(100000, 65536)));
        // uid 0 names root too.
        let s = parse("/etc/subuid", "0:300000:70000\n");
        assert_eq!(s.root_range().unwrap(), Some(HostRange::new(300000, 70000)));
    }

    #[test]
    fn malformed_lines_name_the_file_and_line() {
        for (text, line, needle) in [
            ("root:100000\n", 1, "expected `user:start:count`"),
            (
                "a:1:2\nroot:100000:65536:9\n",
                2,
                "expected `user:start:count`",
            ),
            ("\n\nroot:x:65536\n", 3, "start `x` is not a number"),
            ("root:100000:-1\n", 1, "count `-1` is not a number"),
            (":100000:65536\n", 1, "no user name"),
            ("root:1:99999999999\n", 1, "larger than 4294967295"),
            ("root:4294967290:10\n", 1, "runs past 4294967294"),
        ] {
            let err = SubIds::parse("/etc/subgid", text).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, IdMapError::SubIdSyntax { line: l, .. } if l == line),
                "{text:?}: {msg}"
            );
            assert!(
                msg.starts_with(&format!("/etc/subgid line {line}: ")),
                "{msg}"
            );
            assert!(msg.contains(needle), "{msg}");
        }
    }

    #[test]
    fn fallback_when_files_missing_or_empty_or_rootless() {
        let fallback = RootIds {
            uid: FALLBACK,
            gid: FALLBACK,
            source: RootSource::Fallback,
        };
        assert_eq!(root_ids(None, None).unwrap(), fallback);
        let empty_u = parse("/etc/subuid", "");
        let empty_g = parse("/etc/subgid", "\n# nothing\n");
        assert_eq!(root_ids(Some(&empty_u), Some(&empty_g)).unwrap(), fallback);
        // Other users well away from the fallback range don't matter.
        let others = parse("/etc/subuid", "alice:100000:65536\n");
        assert_eq!(root_ids(Some(&others), None).unwrap(), fallback);
        // Root in one file only: LXD falls back for both.
        let root_u = parse("/etc/subuid", "root:100000:65536\n");
        assert_eq!(root_ids(Some(&root_u), Some(&empty_g)).unwrap(), fallback);
        assert_eq!(FALLBACK.to_string(), "1000000-1000999999");
    }

    #[test]
    fn fallback_taken_by_another_user_is_an_error_naming_file_and_user() {
        let u = parse("/etc/subuid", "");
        let g = parse("/etc/subgid", "alice:100000:65536\nbob:1065536:65536\n");
        let err = root_ids(Some(&u), Some(&g)).unwrap_err();
        match &err {
            IdMapError::FallbackTaken {
                file, user, line, ..
            } => {
                assert_eq!(
                    (file.as_str(), user.as_str(), *line),
                    ("/etc/subgid", "bob", 2)
                );
            }
            other => panic!("{other}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("/etc/subgid") && msg.contains("`bob`"),
            "{msg}"
        );
        assert!(msg.contains("1065536-1131071") && msg.contains("1000000-1000999999"));
        // A range ending exactly where the fallback starts is fine; one id more is not.
        let edge = parse("/etc/subuid", "carol:934464:65536\n");
        assert!(root_ids(Some(&edge), None).is_ok());
        let edge = parse("/etc/subuid", "carol:934465:65536\n");
        assert!(root_ids(Some(&edge), None).is_err());
        // Root's own line inside the fallback is not "another user".
        let g = parse("/etc/subgid", "root:1000000:65536\n");
        assert!(root_ids(None, Some(&g)).is_ok());
    }

    #[test]
    fn short_root_range_is_an_error_naming_the_file() {
        let u = parse("/etc/subuid", "root:100000:65536\n");
        let g = parse("/etc/subgid", "root:100000:65535\n");
        let err = root_ids(Some(&u), Some(&g)).unwrap_err();
        assert!(
            matches!(err, IdMapError::RootRangeTooShort { ref file, line: 1, .. } if file == "/etc/subgid")
        );
        let msg = err.to_string();
        assert!(
            msg.contains("/etc/subgid") && msg.contains("65535 ids"),
            "{msg}"
        );
        // Even when the other file would lead to the fallback.
        assert!(root_ids(None, Some(&g)).is_err());
        // A short line first and a long one after: LXD takes the first long one.
        let u = parse("/etc/subuid", "root:100000:1000\nroot:200000:65536\n");
        assert_eq!(u.root_range().unwrap(), Some(HostRange::new(200000, 65536)));
    }

    #[test]
    fn reads_files_from_a_directory() {
        let dir = std::env::temp_dir().join(format!("envc-idmap-subid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Missing files: the fallback.
        assert_eq!(read_root_ids(&dir).unwrap().source, RootSource::Fallback);
        std::fs::write(dir.join("subuid"), "root:100000:10000001\n").unwrap();
        std::fs::write(dir.join("subgid"), "root:100000:10000001\n").unwrap();
        let ids = read_root_ids(&dir).unwrap();
        assert_eq!(ids.uid, HostRange::new(100000, 10000001));
        std::fs::write(dir.join("subgid"), "root:100000:10\n").unwrap();
        let msg = read_root_ids(&dir).unwrap_err().to_string();
        assert!(
            msg.contains(&dir.join("subgid").display().to_string()),
            "{msg}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
