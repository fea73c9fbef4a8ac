//! Moving a profile to a cluster and back: `envc export --to lxd` (an LXD
//! or Incus profile in YAML, `lxd.rs`), `envc export --to oci` (an OCI
//! runtime bundle, `oci.rs`), and `envc import` (an LXD profile or
//! instance config back into a TOML profile, `import.rs`). What a target
//! cannot say is never dropped silently: each such key is a [`NotCarried`],
//! listed on stderr (and an error with `--strict`).

pub mod cli;
pub mod import;
pub mod lxd;
mod lxd_keys;
pub mod oci;
mod raw_lxc;
mod write;

pub use write::{check_bundle_dir, write_atomically};

use crate::profile::Origin;

/// A key of the profile that the target has no way to say, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotCarried {
    /// Where the key was set (file and dotted key).
    pub origin: Origin,
    pub why: String,
}

impl NotCarried {
    pub fn new(origin: Origin, why: impl Into<String>) -> NotCarried {
        NotCarried {
            origin,
            why: why.into(),
        }
    }
}

impl std::fmt::Display for NotCarried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.origin, self.why)
    }
}
