//! Capabilities by name: the numbers an `ExecInit` drops.

use super::Failure;

/// Capability numbers by name (the five the contract drops, and a few more).
pub fn capability_number(name: &str) -> Option<u32> {
    Some(match name {
        "CAP_SYS_MODULE" => 16,
        "CAP_SYS_RAWIO" => 17,
        "CAP_SYS_TIME" => 25,
        "CAP_MAC_OVERRIDE" => 32,
        "CAP_MAC_ADMIN" => 33,
        "CAP_SYS_ADMIN" => 21,
        "CAP_NET_ADMIN" => 12,
        "CAP_SYS_BOOT" => 22,
        _ => return None,
    })
}

/// The capability numbers an `ExecInit` drops.
pub fn dropped_caps(names: &[String]) -> Result<Vec<u32>, Failure> {
    names
        .iter()
        .map(|n| {
            capability_number(n).ok_or_else(|| Failure::new(format!("unknown capability {n}")))
        })
        .collect()
}
