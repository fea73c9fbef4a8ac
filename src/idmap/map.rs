//! The id map's types: [`IdRange`] (one line of `/proc/PID/uid_map`),
//! [`IdMap`] (a container's uid and gid lines), [`HostRange`] (a block of host
//! ids), the lookups the guest API's peer check needs, and the text the kernel
//! takes, checked against the kernel's own rules first so a bad map is a clear
//! error here rather than a bare `EINVAL` from the write.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The kernel takes at most this many lines per map since Linux 4.15
/// (`UID_GID_MAP_MAX_EXTENTS`).
pub const MAX_EXTENTS: usize = 340;

/// The kernel refuses a map text of a page or more (`count >= PAGE_SIZE` in
/// `map_write`); 4096 is the smallest page size, so stay under it everywhere.
pub const MAX_MAP_BYTES: usize = 4095;

/// One line of a uid or gid map: container ids `inside..inside+count` are host
/// ids `outside..outside+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct IdRange {
    /// First id in the container.
    pub inside: u32,
    /// The host id that `inside` is.
    pub outside: u32,
    /// How many consecutive ids the line maps.
    pub count: u32,
}

impl IdRange {
    /// The host id of container id `id`, if this line maps it.
    pub fn to_host(&self, id: u32) -> Option<u32> {
        let off = id.checked_sub(self.inside)?;
        if off < self.count {
            self.outside.checked_add(off)
        } else {
            None
        }
    }

    /// The container id of host id `id`, if this line maps it.
    pub fn to_inside(&self, id: u32) -> Option<u32> {
        let off = id.checked_sub(self.outside)?;
        if off < self.count {
            self.inside.checked_add(off)
        } else {
            None
        }
    }

    /// The container ids of the line.
    pub(crate) fn inside_span(&self) -> HostRange {
        HostRange::new(self.inside, self.count)
    }

    /// The host ids of the line.
    pub(crate) fn outside_span(&self) -> HostRange {
        HostRange::new(self.outside, self.count)
    }
}

/// A block of consecutive ids: `start..start+count` (shown inclusive, `100000-165535`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct HostRange {
    pub start: u32,
    pub count: u32,
}

impl HostRange {
    pub const fn new(start: u32, count: u32) -> HostRange {
        HostRange { start, count }
    }

    /// One past the last id, in u64 so a range reaching 2^32 doesn't wrap.
    pub fn end(&self) -> u64 {
        u64::from(self.start) + u64::from(self.count)
    }

    /// Whether the two blocks share an id.
    pub fn overlaps(&self, other: &HostRange) -> bool {
        u64::from(self.start) < other.end() && u64::from(other.start) < self.end()
    }
}

impl fmt::Display for HostRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.count {
            0 => write!(f, "{} (no ids)", self.start),
            1 => write!(f, "{}", self.start),
            _ => write!(f, "{}-{}", self.start, self.end() - 1),
        }
    }
}

/// A container's id map: the lines of its `uid_map` and of its `gid_map`,
/// each list sorted by container id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IdMap {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
}

impl IdMap {
    /// The host uid of container uid `inside` (None: unmapped, `nobody` on the host's files).
    pub fn host_uid(&self, inside: u32) -> Option<u32> {
        self.uids.iter().find_map(|r| r.to_host(inside))
    }

    /// The host gid of container gid `inside`.
    pub fn host_gid(&self, inside: u32) -> Option<u32> {
        self.gids.iter().find_map(|r| r.to_host(inside))
    }

    /// The container uid that host uid `host` is (None: the container can't see it).
    /// The guest API's peer check maps the peer's host uid through this.
    pub fn inside_uid(&self, host: u32) -> Option<u32> {
        self.uids.iter().find_map(|r| r.to_inside(host))
    }

    /// The container gid that host gid `host` is.
    pub fn inside_gid(&self, host: u32) -> Option<u32> {
        self.gids.iter().find_map(|r| r.to_inside(host))
    }

    /// The host uid of the container's root (what its files are owned by on disk).
    pub fn root_host_uid(&self) -> Option<u32> {
        self.host_uid(0)
    }

    /// The host gid of the container's root group.
    pub fn root_host_gid(&self) -> Option<u32> {
        self.host_gid(0)
    }

    /// The text for `/proc/PID/uid_map`, checked against the kernel's rules
    /// (`limit`: the most lines the kernel takes, [`MAX_EXTENTS`]).
    pub fn uid_map_text(&self, limit: usize) -> Result<String, super::IdMapError> {
        to_proc_map(&self.uids, limit)
            .map_err(|error| super::IdMapError::ProcMap { kind: "uid", error })
    }

    /// The text for `/proc/PID/gid_map`, checked as [`IdMap::uid_map_text`].
    pub fn gid_map_text(&self, limit: usize) -> Result<String, super::IdMapError> {
        to_proc_map(&self.gids, limit)
            .map_err(|error| super::IdMapError::ProcMap { kind: "gid", error })
    }
}

/// `uid 0-65535 → 1000000-1065535; gid 0-65535 → 1000000-1065535`
impl fmt::Display for IdMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn side(f: &mut fmt::Formatter<'_>, kind: &str, ranges: &[IdRange]) -> fmt::Result {
            write!(f, "{kind} ")?;
            if ranges.is_empty() {
                return f.write_str("none");
            }
            for (i, r) in ranges.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{} → {}", r.inside_span(), r.outside_span())?;
            }
            Ok(())
        }
        side(f, "uid", &self.uids)?;
        f.write_str("; ")?;
        side(f, "gid", &self.gids)
    }
}

/// Why a list of lines can't be written as a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcMapError {
    /// No lines: the kernel refuses an empty map.
    Empty,
    /// A line maps no ids.
    ZeroCount(IdRange),
    /// A line uses id 4294967295, which is `(uid_t)-1` and can't be mapped.
    MinusOne(IdRange),
    /// A line runs past id 4294967294 on one side.
    Wraps(IdRange),
    /// Two lines share a container id or a host id.
    Overlap(IdRange, IdRange),
    /// More lines than the kernel takes.
    TooManyExtents { count: usize, limit: usize },
    /// The text is a page or longer.
    TooLong { bytes: usize },
}

impl fmt::Display for ProcMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = |r: &IdRange| format!("`{} {} {}`", r.inside, r.outside, r.count);
        match self {
            ProcMapError::Empty => f.write_str("no lines; the kernel refuses an empty map"),
            ProcMapError::ZeroCount(r) => write!(f, "line {} maps no ids", line(r)),
            ProcMapError::MinusOne(r) => write!(
                f,
                "line {} uses id 4294967295 ((uid_t)-1), which no map may hold",
                line(r)
            ),
            ProcMapError::Wraps(r) => write!(
                f,
                "line {} runs past id 4294967294, the last id a map may hold",
                line(r)
            ),
            ProcMapError::Overlap(a, b) => write!(
                f,
                "lines {} and {} share ids (no container id and no host id may be mapped twice)",
                line(a),
                line(b)
            ),
            ProcMapError::TooManyExtents { count, limit } => write!(
                f,
                "{count} lines, more than the {limit} this kernel takes (340 since Linux 4.15, \
                 5 before); use fewer raw.idmap lines or join neighbouring ranges"
            ),
            ProcMapError::TooLong { bytes } => write!(
                f,
                "the map text is {bytes} bytes; the kernel takes less than 4096 in one write"
            ),
        }
    }
}

impl std::error::Error for ProcMapError {}

/// The text of `/proc/PID/uid_map` (or `gid_map`) for `ranges`: one
/// `INSIDE OUTSIDE COUNT` line each, in one string that must be written in a
/// single `write`. Every rule of the kernel's `map_write` is checked first.
pub fn to_proc_map(ranges: &[IdRange], limit: usize) -> Result<String, ProcMapError> {
    if ranges.is_empty() {
        return Err(ProcMapError::Empty);
    }
    if ranges.len() > limit {
        return Err(ProcMapError::TooManyExtents {
            count: ranges.len(),
            limit,
        });
    }
    // The last id either side may reach: `first + count` must not wrap in u32.
    let last = u64::from(u32::MAX);
    for (i, r) in ranges.iter().enumerate() {
        if r.count == 0 {
            return Err(ProcMapError::ZeroCount(*r));
        }
        if r.inside == u32::MAX || r.outside == u32::MAX {
            return Err(ProcMapError::MinusOne(*r));
        }
        if r.inside_span().end() > last || r.outside_span().end() > last {
            return Err(ProcMapError::Wraps(*r));
        }
        for earlier in &ranges[..i] {
            if earlier.inside_span().overlaps(&r.inside_span())
                || earlier.outside_span().overlaps(&r.outside_span())
            {
                return Err(ProcMapError::Overlap(*earlier, *r));
            }
        }
    }
    let mut text = String::new();
    for r in ranges {
        text.push_str(&format!("{} {} {}\n", r.inside, r.outside, r.count));
    }
    if text.len() > MAX_MAP_BYTES {
        return Err(ProcMapError::TooLong { bytes: text.len() });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(inside: u32, outside: u32, count: u32) -> IdRange {
        IdRange {
            inside,
            outside,
            count,
        }
    }

    fn punched() -> IdMap {
        IdMap {
            uids: vec![
                r(0, 1000000, 1000),
                r(1000, 1000, 1),
                r(1001, 1001001, 64535),
            ],
            gids: vec![r(0, 1000000, 65536)],
        }
    }

    #[test]
    fn proc_map_text_is_exact() {
        assert_eq!(
            to_proc_map(&[r(0, 1000000, 65536)], MAX_EXTENTS).unwrap(),
            "0 1000000 65536\n"
        );
        assert_eq!(
            punched().uid_map_text(MAX_EXTENTS).unwrap(),
            "0 1000000 1000\n1000 1000 1\n1001 1001001 64535\n"
        );
        assert_eq!(punched().gid_map_text(5).unwrap(), "0 1000000 65536\n");
    }

    #[test]
    fn proc_map_refuses_what_the_kernel_refuses() {
        assert_eq!(to_proc_map(&[], 340), Err(ProcMapError::Empty));
        assert!(matches!(
            to_proc_map(&[r(0, 1, 0)], 340),
            Err(ProcMapError::ZeroCount(_))
        ));
        assert!(matches!(
            to_proc_map(&[r(0, u32::MAX, 1)], 340),
            Err(ProcMapError::MinusOne(_))
        ));
        // Ends exactly at 4294967294: allowed; one more: refused.
        assert!(to_proc_map(&[r(0, u32::MAX - 10, 10)], 340).is_ok());
        assert!(matches!(
            to_proc_map(&[r(0, u32::MAX - 10, 11)], 340),
            Err(ProcMapError::Wraps(_))
        ));
        // Overlap on the host side, then on the container side.
        assert!(matches!(
            to_proc_map(&[r(0, 100, 10), r(10, 109, 1)], 340),
            Err(ProcMapError::Overlap(..))
        ));
        assert!(matches!(
            to_proc_map(&[r(0, 100, 10), r(9, 500, 1)], 340),
            Err(ProcMapError::Overlap(..))
        ));
        // Adjacent on both sides is fine.
        assert!(to_proc_map(&[r(0, 100, 10), r(10, 110, 1)], 340).is_ok());
    }

    #[test]
    fn proc_map_extent_limits() {
        let six: Vec<IdRange> = (0..6).map(|i| r(i * 10, 1000 + i * 10, 10)).collect();
        assert!(to_proc_map(&six, MAX_EXTENTS).is_ok());
        let err = to_proc_map(&six, 5).unwrap_err();
        assert_eq!(err, ProcMapError::TooManyExtents { count: 6, limit: 5 });
        assert!(err.to_string().contains("more than the 5"));
        let many: Vec<IdRange> = (0..341).map(|i| r(i, 1000 + i, 1)).collect();
        assert!(matches!(
            to_proc_map(&many, MAX_EXTENTS),
            Err(ProcMapError::TooManyExtents { count: 341, .. })
        ));
        // 340 lines of big numbers pass the line limit but not the page limit.
        let long: Vec<IdRange> = (0..340)
            .map(|i| r(1_000_000_000 + i, 2_000_000_000 + i, 1))
            .collect();
        assert!(matches!(
            to_proc_map(&long, MAX_EXTENTS),
            Err(ProcMapError::TooLong { .. })
        ));
    }

    #[test]
    fn lookups_both_ways() {
        let m = punched();
        assert_eq!(m.host_uid(0), Some(1000000));
        assert_eq!(m.root_host_uid(), Some(1000000));
        assert_eq!(m.root_host_gid(), Some(1000000));
        assert_eq!(m.host_uid(999), Some(1000999));
        assert_eq!(m.host_uid(1000), Some(1000));
        assert_eq!(m.host_uid(1001), Some(1001001));
        assert_eq!(m.host_uid(65535), Some(1065535));
        assert_eq!(m.host_uid(65536), None);
        assert_eq!(m.host_gid(1000), Some(1001000));
        assert_eq!(m.inside_uid(1000000), Some(0));
        assert_eq!(m.inside_uid(1000), Some(1000));
        // The punched-out host id belongs to no container id.
        assert_eq!(m.inside_uid(1001000), None);
        assert_eq!(m.inside_uid(0), None);
        assert_eq!(m.inside_gid(1065535), Some(65535));
        assert_eq!(m.inside_gid(u32::MAX), None);
        assert_eq!(IdMap::default().root_host_uid(), None);
    }

    #[test]
    fn display_for_reports() {
        let plain = IdMap {
            uids: vec![r(0, 1000000, 65536)],
            gids: vec![r(0, 1000000, 65536)],
        };
        assert_eq!(
            plain.to_string(),
            "uid 0-65535 → 1000000-1065535; gid 0-65535 → 1000000-1065535"
        );
        assert_eq!(
            punched().to_string(),
            "uid 0-999 → 1000000-1000999, 1000 → 1000, 1001-65535 → 1001001-1065535; \
             gid 0-65535 → 1000000-1065535"
        );
        assert_eq!(IdMap::default().to_string(), "uid none; gid none");
    }

    #[test]
    fn serde_round_trip_and_schema() {
        let m = punched();
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.starts_with(r#"{"uids":[{"inside":0,"outside":1000000,"count":1000}"#));
        let back: IdMap = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        let schema = serde_json::to_string(&schemars::schema_for!(IdMap)).unwrap();
        assert!(schema.contains("\"uids\"") && schema.contains("\"outside\""));
    }

    #[test]
    fn host_range_edges() {
        let top = HostRange::new(u32::MAX - 1, 2);
        assert_eq!(top.end(), 1u64 << 32);
        assert!(top.overlaps(&HostRange::new(u32::MAX, 1)));
        assert!(!HostRange::new(0, 10).overlaps(&HostRange::new(10, 10)));
        assert_eq!(HostRange::new(5, 1).to_string(), "5");
        assert_eq!(HostRange::new(100000, 65536).to_string(), "100000-165535");
    }
}
