//! envc: LXD-style system containers from declarative TOML profiles.
//!
//! `unsafe` code is refused everywhere but in the kernel layer, whose
//! modules allow it: `exec::linux`, `sys`, `exec::channel`, `devlxd::sys`,
//! `net::rtnl` and `attach::enter`.

#![deny(unsafe_code)]

pub mod attach;
pub mod compile;
pub mod devlxd;
pub mod diag;
pub mod exec;
pub mod export;
pub mod idmap;
pub mod info;
pub mod lifecycle;
pub mod logs;
pub mod net;
pub mod paths;
pub mod plan;
pub mod profile;
pub mod seccomp;
pub mod state;
pub mod sys;
pub mod timing;
