//! Choosing a container's map, by LXD's rules (`findIdmap` and `idmapSize`
//! in LXD's `lxd/instance/drivers/driver_lxc.go`, `AddSafe` in its `idmap`
//! package):
//!
//! - not isolated: root's whole ranges (uid 0 → root's first subuid, as many
//!   ids as root has); `security.idmap.size` and `security.idmap.base` are
//!   ignored, as LXD ignores them ([`IdmapConfig::ignored_keys`] lets the
//!   caller say so);
//! - isolated: a block of `security.idmap.size` ids (default 65536) at
//!   `security.idmap.base` if set, else the first block inside root's range,
//!   past root's first 65536 ids, that no other isolated container holds;
//! - then each `raw.idmap` entry is punched in: the container ids it names are
//!   cut out of the block (the host ids they had stay unmapped, every other
//!   container id keeps its host id) and the entry is added. An entry whose
//!   host ids the map already holds is an error (LXD's "Host id is in the
//!   range of subids"), so no host id is mapped twice and no container id twice.

use super::error::IdMapError;
use super::map::{HostRange, IdMap, IdRange};
use super::raw::{RawEntry, RawError, intersection};
use super::subid::{MIN_RANGE, RootIds};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The default size of an isolated container's block (LXD's `idmapSize`).
pub const ISOLATED_SIZE: u32 = 65536;

/// The `security.idmap.*` and `raw.idmap` keys of an unprivileged container
/// (a privileged one has no map: the caller doesn't ask).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdmapConfig {
    /// `security.idmap.isolated`.
    pub isolated: bool,
    /// `security.idmap.size`.
    pub size: Option<u32>,
    /// `security.idmap.base`.
    pub base: Option<u32>,
    /// `raw.idmap`, parsed with [`super::parse_raw`].
    pub raw: Vec<RawEntry>,
}

impl IdmapConfig {
    /// The keys that are set but do nothing: LXD reads `security.idmap.size`
    /// and `security.idmap.base` only for an isolated container.
    pub fn ignored_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if !self.isolated {
            if self.size.is_some() {
                keys.push("security.idmap.size");
            }
            if self.base.is_some() {
                keys.push("security.idmap.base");
            }
        }
        keys
    }
}

/// The host ids an isolated container holds: its block of uids and of gids
/// (the same offset in root's uid and gid ranges). This is what other
/// isolated containers must not use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Allocation {
    pub uids: HostRange,
    pub gids: HostRange,
}

impl Allocation {
    /// Whether the two allocations share a host uid or a host gid.
    pub fn overlaps(&self, other: &Allocation) -> bool {
        self.uids.overlaps(&other.uids) || self.gids.overlaps(&other.gids)
    }
}

/// The container's map. `taken`: the allocations of the other running
/// isolated containers (name, allocation); only read when `config.isolated`.
pub fn choose(
    config: &IdmapConfig,
    root: &RootIds,
    taken: &[(String, Allocation)],
) -> Result<IdMap, IdMapError> {
    if config.isolated {
        let block = isolated_block(config, root, taken)?;
        build(block.uids, block.gids, &config.raw)
    } else {
        build(root.uid, root.gid, &config.raw)
    }
}

/// The block of an isolated container: at `config.base` if set (an error if
/// another running isolated container holds part of it), else the first free
/// block past root's first 65536 ids (an error if none is left).
pub fn isolated_block(
    config: &IdmapConfig,
    root: &RootIds,
    taken: &[(String, Allocation)],
) -> Result<Allocation, IdMapError> {
    let size = config.size.unwrap_or(ISOLATED_SIZE);
    if size == 0 {
        return Err(IdMapError::BadConfig(
            "security.idmap.size is 0; a container needs at least one id (65536 for a \
             POSIX system)"
                .into(),
        ));
    }
    if let Some(base) = config.base {
        let wanted = HostRange::new(base, size);
        if wanted.end() > u64::from(u32::MAX) {
            return Err(IdMapError::BadConfig(format!(
                "security.idmap.base {base} with security.idmap.size {size} runs past host \
                 id 4294967294, the last id a map may hold"
            )));
        }
        if let Some((name, other)) = taken.iter().find(|(_, a)| {
            a.overlaps(&Allocation {
                uids: wanted,
                gids: wanted,
            })
        }) {
            let other_range = if other.uids.overlaps(&wanted) {
                other.uids
            } else {
                other.gids
            };
            return Err(IdMapError::BaseTaken {
                wanted,
                other: name.clone(),
                other_range,
            });
        }
        return Ok(Allocation {
            uids: wanted,
            gids: wanted,
        });
    }

    // Offsets into root's ranges: the same offset is taken in both, so a
    // container's uid and gid blocks sit at the same place in each.
    let limit = u64::from(root.uid.count.min(root.gid.count));
    let first = u64::from(MIN_RANGE);
    let mut busy: Vec<(u64, u64)> = Vec::new();
    for (_, a) in taken {
        for (mine, theirs) in [(root.uid, a.uids), (root.gid, a.gids)] {
            let start = i64::from(theirs.start) - i64::from(mine.start);
            let end = start + i64::from(theirs.count);
            let (start, end) = (start.clamp(0, limit as i64), end.clamp(0, limit as i64));
            if start < end {
                busy.push((start as u64, end as u64));
            }
        }
    }
    busy.sort_unstable();
    let want = u64::from(size);
    let mut offset = first;
    for (start, end) in busy {
        if end <= offset {
            continue;
        }
        if start >= offset + want {
            break;
        }
        offset = end;
    }
    if offset + want > limit {
        return Err(IdMapError::Exhausted {
            size,
            pool: HostRange::new(
                root.uid.start.saturating_add(MIN_RANGE),
                limit.saturating_sub(first) as u32,
            ),
            taken: taken.iter().map(|(n, a)| (n.clone(), a.uids)).collect(),
        });
    }
    // offset + size <= limit <= each count, and root's ranges end below 2^32.
    Ok(Allocation {
        uids: HostRange::new(root.uid.start + offset as u32, size),
        gids: HostRange::new(root.gid.start + offset as u32, size),
    })
}

/// The map of a container whose own ids are `uids` and `gids` (container id
/// 0 at each block's start), with `raw` punched in.
pub fn build(uids: HostRange, gids: HostRange, raw: &[RawEntry]) -> Result<IdMap, IdMapError> {
    let mut errors = Vec::new();
    let uid_map = punch(
        "uid",
        uids,
        raw.iter().filter(|e| e.kind.uid()),
        &mut errors,
    );
    let gid_map = punch(
        "gid",
        gids,
        raw.iter().filter(|e| e.kind.gid()),
        &mut errors,
    );
    if !errors.is_empty() {
        // A `both` line wrong in both maps is reported once.
        errors.sort_by_key(|e| e.line);
        errors.dedup_by(|a, b| a.line == b.line);
        return Err(IdMapError::Raw(errors));
    }
    Ok(IdMap {
        uids: uid_map,
        gids: gid_map,
    })
}

/// One map: the block, then each entry punched in (see the module comment).
fn punch<'a>(
    kind: &str,
    block: HostRange,
    raw: impl Iterator<Item = &'a RawEntry>,
    errors: &mut Vec<RawError>,
) -> Vec<IdRange> {
    let mut ranges = vec![IdRange {
        inside: 0,
        outside: block.start,
        count: block.count,
    }];
    for entry in raw {
        let host = entry.host_range();
        if let Some((owner, shared)) = ranges
            .iter()
            .find_map(|r| intersection(&r.outside_span(), &host).map(|s| (*r, s)))
        {
            let inside = owner.inside + (shared.start - owner.outside);
            errors.push(RawError {
                line: entry.line,
                line_span: entry.span.clone(),
                span: entry.span.clone(),
                message: format!(
                    "host {kind} {shared} is already mapped to the container's {kind} {}; a \
                     host id can be mapped only once (the container's own {kind}s are host \
                     {block})",
                    HostRange::new(inside, shared.count),
                ),
            });
            continue;
        }
        let cut = entry.inside_range();
        ranges = ranges.into_iter().flat_map(|r| cut_out(r, &cut)).collect();
        ranges.push(IdRange {
            inside: entry.inside,
            outside: entry.host,
            count: entry.count,
        });
    }
    ranges.sort_by_key(|r| r.inside);
    ranges
}

/// `r` without the container ids in `cut`: nothing, itself, or the pieces
/// below and above, each keeping its own host ids.
fn cut_out(r: IdRange, cut: &HostRange) -> Vec<IdRange> {
    if !r.inside_span().overlaps(cut) {
        return vec![r];
    }
    let mut pieces = Vec::new();
    if r.inside < cut.start {
        pieces.push(IdRange {
            inside: r.inside,
            outside: r.outside,
            count: cut.start - r.inside,
        });
    }
    let r_end = r.inside_span().end();
    if cut.end() < r_end {
        // cut.end() < r_end <= 2^32, so it fits in u32.
        let skip = cut.end() as u32 - r.inside;
        pieces.push(IdRange {
            inside: r.inside + skip,
            outside: r.outside + skip,
            count: r.count - skip,
        });
    }
    pieces
}

#[cfg(test)]
#[path = "choose_tests.rs"]
mod tests;
