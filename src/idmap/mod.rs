//! The id map of an unprivileged container: which host uids and gids its user
//! namespace maps, chosen by LXD's rules (envc's contract, §9).
//!
//! - [`subid`]: root's ranges from `/etc/subuid` and `/etc/subgid`, or LXD's
//!   fallback (host base 1000000, 1000000000 ids).
//! - [`raw`]: `raw.idmap` lines (`both 1000 1000`, `uid 50-60 500-510`), with
//!   byte spans for diagnostics.
//! - [`choose`]: the map: root's whole ranges, or an isolated block
//!   (`security.idmap.isolated`, `.size`, `.base`), with `raw.idmap` punched in.
//! - [`isolated`]: isolated blocks recorded under `RUN_DIR/idmap/` and handed
//!   out under a file lock, so concurrent starts never share ids.
//! - [`map`]: the types, lookups both ways, and the `/proc/PID/uid_map` text.
//!
//! Pure apart from [`isolated`] and the file readers in [`subid`]; nothing
//! here calls into the rest of envc.

pub mod choose;
pub mod error;
pub mod isolated;
pub mod map;
pub mod raw;
pub mod subid;

pub use choose::{Allocation, ISOLATED_SIZE, IdmapConfig, build, choose, isolated_block};
pub use error::IdMapError;
pub use isolated::{allocate, allocations, reclaim, release};
pub use map::{HostRange, IdMap, IdRange, MAX_EXTENTS, ProcMapError, to_proc_map};
pub use raw::{RawEntry, RawError, RawKind, parse_raw};
pub use subid::{
    FALLBACK, MIN_RANGE, RootIds, RootSource, SubIdEntry, SubIds, read_root_ids, root_ids,
};
