//! envc: LXD-style system containers from declarative TOML profiles.

pub mod compile;
pub mod devlxd;
pub mod diag;
pub mod exec;
pub mod idmap;
pub mod lifecycle;
pub mod net;
pub mod paths;
pub mod plan;
pub mod profile;
pub mod state;
pub mod sys;
pub mod timing;
