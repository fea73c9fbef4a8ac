//! The error type of [`crate::net`].

use std::fmt;
use std::io;

/// What failed in a network operation, with the interface names involved.
#[derive(Debug)]
pub enum NetError {
    /// The kernel refused a request: `op` says what was asked (with the interface
    /// names), `errno` why, `message` is the kernel's extended-ack text if it gave one.
    Kernel {
        op: String,
        errno: i32,
        message: Option<String>,
    },
    /// An interface that must exist does not. `role` says which one ("bridge",
    /// "parent", "interface", ...).
    NoSuchInterface { role: &'static str, ifname: String },
    /// An interface that must not exist yet does.
    AlreadyExists { role: &'static str, ifname: String },
    /// The `parent` of a bridged NIC exists but is not a bridge (`kind`: what it is).
    NotABridge {
        ifname: String,
        kind: Option<String>,
    },
    /// An interface name Linux would refuse.
    InvalidName {
        ifname: String,
        reason: &'static str,
    },
    /// A NIC description that cannot be carried out (e.g. a macvlan without parent).
    InvalidSpec(String),
    /// A system call around netlink failed (socket, setns, ...).
    Os { op: String, source: io::Error },
    /// The kernel's reply could not be understood.
    Protocol { op: String, detail: String },
    /// `error` happened, and undoing what was already done failed too.
    CleanupFailed {
        error: Box<NetError>,
        cleanup: Box<NetError>,
    },
}

impl NetError {
    /// The errno behind the error, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetError::Kernel { errno, .. } => Some(*errno),
            NetError::Os { source, .. } => source.raw_os_error(),
            NetError::CleanupFailed { error, .. } => error.errno(),
            _ => None,
        }
    }

    /// `self`, or `self` with the failure of its cleanup attached.
    pub(crate) fn with_cleanup(self, cleanup: Result<(), NetError>) -> NetError {
        match cleanup {
            Ok(()) => self,
            Err(c) => NetError::CleanupFailed {
                error: Box::new(self),
                cleanup: Box::new(c),
            },
        }
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Kernel { op, errno, message } => {
                write!(f, "{op}: {}", io::Error::from_raw_os_error(*errno))?;
                if let Some(m) = message {
                    write!(f, " ({m})")?;
                }
                Ok(())
            }
            NetError::NoSuchInterface { role, ifname } => {
                write!(f, "{role} `{ifname}` does not exist")
            }
            NetError::AlreadyExists { role, ifname } => {
                write!(f, "{role} `{ifname}` already exists")
            }
            NetError::NotABridge { ifname, kind } => match kind {
                Some(k) => write!(f, "`{ifname}` is not a bridge (it is a {k} interface)"),
                None => write!(f, "`{ifname}` is not a bridge"),
            },
            NetError::InvalidName { ifname, reason } => {
                write!(f, "invalid interface name `{ifname}`: {reason}")
            }
            NetError::InvalidSpec(what) => f.write_str(what),
            NetError::Os { op, source } => write!(f, "{op}: {source}"),
            NetError::Protocol { op, detail } => write!(f, "{op}: netlink: {detail}"),
            NetError::CleanupFailed { error, cleanup } => {
                write!(f, "{error}; cleaning up also failed: {cleanup}")
            }
        }
    }
}

impl std::error::Error for NetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetError::Os { source, .. } => Some(source),
            NetError::CleanupFailed { error, .. } => Some(error.as_ref()),
            _ => None,
        }
    }
}

/// `Result` with [`NetError`].
pub type Result<T, E = NetError> = std::result::Result<T, E>;
