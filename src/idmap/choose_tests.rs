//! Tests of [`super`]: LXD's choice of map, isolated blocks, and punching.

use super::*;
use crate::idmap::map::{MAX_EXTENTS, to_proc_map};
use crate::idmap::raw::parse_raw;
use crate::idmap::subid::{FALLBACK, RootSource};

fn r(inside: u32, outside: u32, count: u32) -> IdRange {
    IdRange {
        inside,
        outside,
        count,
    }
}

fn debian() -> RootIds {
    RootIds {
        uid: HostRange::new(100000, 10000001),
        gid: HostRange::new(100000, 10000001),
        source: RootSource::SubIdFiles,
    }
}

fn fallback() -> RootIds {
    RootIds {
        uid: FALLBACK,
        gid: FALLBACK,
        source: RootSource::Fallback,
    }
}

fn with_raw(raw: &str) -> IdmapConfig {
    IdmapConfig {
        raw: parse_raw(raw).unwrap(),
        ..IdmapConfig::default()
    }
}

fn isolated(size: Option<u32>, base: Option<u32>) -> IdmapConfig {
    IdmapConfig {
        isolated: true,
        size,
        base,
        raw: Vec::new(),
    }
}

fn raw_errors(result: Result<IdMap, IdMapError>) -> Vec<RawError> {
    match result {
        Err(IdMapError::Raw(e)) => e,
        other => panic!("expected raw.idmap errors, got {other:?}"),
    }
}

#[test]
fn default_map_is_roots_whole_range() {
    let m = choose(&IdmapConfig::default(), &debian(), &[]).unwrap();
    assert_eq!(m.uid_map_text(MAX_EXTENTS).unwrap(), "0 100000 10000001\n");
    assert_eq!(m.gid_map_text(MAX_EXTENTS).unwrap(), "0 100000 10000001\n");
    let m = choose(&IdmapConfig::default(), &fallback(), &[]).unwrap();
    assert_eq!(
        m.uid_map_text(MAX_EXTENTS).unwrap(),
        "0 1000000 1000000000\n"
    );
    assert_eq!(m.gids, vec![r(0, 1000000, 1000000000)]);
}

#[test]
fn size_and_base_do_nothing_without_isolated() {
    let config = IdmapConfig {
        size: Some(100000),
        base: Some(5000000),
        ..IdmapConfig::default()
    };
    assert_eq!(
        config.ignored_keys(),
        ["security.idmap.size", "security.idmap.base"]
    );
    assert_eq!(
        choose(&config, &debian(), &[]).unwrap().uids,
        vec![r(0, 100000, 10000001)]
    );
    assert!(isolated(Some(1), Some(1)).ignored_keys().is_empty());
}

#[test]
fn punch_both_single_id() {
    let m = choose(&with_raw("both 1000 1000"), &fallback(), &[]).unwrap();
    let want = vec![
        r(0, 1000000, 1000),
        r(1000, 1000, 1),
        r(1001, 1001001, 1000000000 - 1001),
    ];
    assert_eq!(m.uids, want);
    assert_eq!(m.gids, want);
    // The host id container 1000 had is now nobody's.
    assert_eq!(m.inside_uid(1001000), None);
    assert_eq!(m.inside_uid(1000), Some(1000));
    to_proc_map(&m.uids, MAX_EXTENTS).unwrap();
}

#[test]
fn punch_uid_only_and_gid_only() {
    let m = choose(&with_raw("uid 50-60 500-510"), &debian(), &[]).unwrap();
    assert_eq!(
        m.uids,
        vec![
            r(0, 100000, 500),
            r(500, 50, 11),
            r(511, 100511, 10000001 - 511)
        ]
    );
    assert_eq!(m.gids, vec![r(0, 100000, 10000001)]);
    let m = choose(&with_raw("gid 33 33"), &debian(), &[]).unwrap();
    assert_eq!(m.uids, vec![r(0, 100000, 10000001)]);
    assert_eq!(
        m.gids,
        vec![r(0, 100000, 33), r(33, 33, 1), r(34, 100034, 10000001 - 34)]
    );
}

#[test]
fn punch_at_the_edges_of_the_range() {
    let block = isolated(None, Some(2000000));
    // Container id 0: no piece below.
    let config = IdmapConfig {
        raw: parse_raw("both 1000 0").unwrap(),
        ..block.clone()
    };
    let m = choose(&config, &debian(), &[]).unwrap();
    assert_eq!(m.uids, vec![r(0, 1000, 1), r(1, 2000001, 65535)]);
    assert_eq!(m.root_host_uid(), Some(1000));
    // The last container id: no piece above.
    let config = IdmapConfig {
        raw: parse_raw("uid 1000 65535").unwrap(),
        ..block.clone()
    };
    assert_eq!(
        choose(&config, &debian(), &[]).unwrap().uids,
        vec![r(0, 2000000, 65535), r(65535, 1000, 1)]
    );
    // Across the end: the part inside is cut, the rest is simply added.
    let config = IdmapConfig {
        raw: parse_raw("uid 1000-1010 65530-65540").unwrap(),
        ..block.clone()
    };
    assert_eq!(
        choose(&config, &debian(), &[]).unwrap().uids,
        vec![r(0, 2000000, 65530), r(65530, 1000, 11)]
    );
    // Past the end: added as is.
    let config = IdmapConfig {
        raw: parse_raw("gid 1000 70000").unwrap(),
        ..block.clone()
    };
    assert_eq!(
        choose(&config, &debian(), &[]).unwrap().gids,
        vec![r(0, 2000000, 65536), r(70000, 1000, 1)]
    );
    // The whole block replaced.
    let config = IdmapConfig {
        raw: parse_raw("both 3000000-3065535 0-65535").unwrap(),
        ..block
    };
    assert_eq!(
        choose(&config, &debian(), &[]).unwrap().uids,
        vec![r(0, 3000000, 65536)]
    );
}

#[test]
fn lxd_add_safe_cases() {
    // LXD's TestIdmapSetAddSafe_split, _lower and _upper, through `build`.
    let block = HostRange::new(1000, 1000);
    let entry = |host: u32, inside: u32| {
        parse_raw(&format!("uid {host}-{} {inside}-{}", host + 9, inside + 9)).unwrap()
    };
    let m = build(block, block, &entry(500, 500)).unwrap();
    assert_eq!(
        m.uids,
        vec![r(0, 1000, 500), r(500, 500, 10), r(510, 1510, 490)]
    );
    let m = build(block, block, &entry(500, 0)).unwrap();
    assert_eq!(m.uids, vec![r(0, 500, 10), r(10, 1010, 990)]);
    let m = build(block, block, &entry(500, 995)).unwrap();
    assert_eq!(m.uids, vec![r(0, 1000, 995), r(995, 500, 10)]);
}

#[test]
fn host_id_already_in_the_map_is_an_error_with_its_span() {
    // LXD's test: "Confirm that we don't allow double mappings".
    let value = "both 1000 1000\nuid 100001 1000000\n";
    let errors = raw_errors(choose(&with_raw(value), &debian(), &[]));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, 2);
    assert_eq!(&value[errors[0].span.clone()], "uid 100001 1000000");
    let msg = &errors[0].message;
    assert!(
        msg.contains("host uid 100001 is already mapped to the container's uid 1"),
        "{msg}"
    );
    assert!(msg.contains("100000-10100000"), "{msg}");
    // A gid line, a range straddling the block's start, reported as gid.
    let value = "gid 99990-100009 0-19";
    let errors = raw_errors(choose(&with_raw(value), &debian(), &[]));
    assert!(
        errors[0].message.contains("host gid 100000-100009"),
        "{}",
        errors[0].message
    );
    // A `both` line wrong in both maps is one error.
    let errors = raw_errors(choose(&with_raw("both 100005 5"), &debian(), &[]));
    assert_eq!(errors.len(), 1);
}

#[test]
fn overlapping_raw_entries_built_by_hand_are_errors() {
    // parse_raw refuses these itself; `build` refuses them too.
    let mut raw = parse_raw("uid 1000 2000").unwrap();
    raw.extend(parse_raw("\nuid 1000 3000").unwrap());
    let errors = raw_errors(build(
        HostRange::new(100000, 65536),
        HostRange::new(100000, 65536),
        &raw,
    ));
    assert_eq!(errors[0].line, 2);
    assert!(
        errors[0]
            .message
            .contains("host uid 1000 is already mapped to the container's uid 2000")
    );
}

#[test]
fn host_id_freed_by_an_earlier_punch_may_be_reused() {
    // As LXD: container 1000's host id (101000) left the map, so a later
    // entry may map it elsewhere; the map still maps no id twice.
    let m = choose(&with_raw("uid 5 1000\nuid 101000 2000"), &debian(), &[]).unwrap();
    assert_eq!(m.host_uid(2000), Some(101000));
    assert_eq!(m.inside_uid(101000), Some(2000));
    to_proc_map(&m.uids, MAX_EXTENTS).unwrap();
}

#[test]
fn lxd_isolated_raw_test() {
    // LXD's test_idmap: an isolated container may map ids from root's first
    // 65536, which no isolated block uses.
    let config = IdmapConfig {
        isolated: true,
        raw: parse_raw("uid 100000 1000000\ngid 100001 1000000\nboth 100002 2000000").unwrap(),
        ..IdmapConfig::default()
    };
    let m = choose(&config, &debian(), &[]).unwrap();
    assert_eq!(m.root_host_uid(), Some(165536));
    assert_eq!(m.host_uid(1000000), Some(100000));
    assert_eq!(m.host_gid(1000000), Some(100001));
    assert_eq!(m.host_uid(2000000), Some(100002));
    assert_eq!(m.host_gid(2000000), Some(100002));
    assert_eq!(m.host_uid(65535), Some(165536 + 65535));
}

#[test]
fn isolated_blocks_first_fit_past_roots_first_65536() {
    let root = debian();
    let a = isolated_block(&isolated(None, None), &root, &[]).unwrap();
    assert_eq!(a.uids, HostRange::new(165536, 65536));
    assert_eq!(a.gids, a.uids);
    let taken = vec![("a".to_string(), a)];
    let b = isolated_block(&isolated(None, None), &root, &taken).unwrap();
    assert_eq!(b.uids, HostRange::new(231072, 65536));
    // A hole of exactly the size is used; a smaller one is skipped.
    let c = Allocation {
        uids: HostRange::new(231072 + 65536 + 100, 1000),
        gids: HostRange::new(231072 + 65536 + 100, 1000),
    };
    let taken = vec![("a".into(), a), ("c".into(), c)];
    let small = isolated_block(&isolated(Some(100), None), &root, &taken).unwrap();
    assert_eq!(small.uids, HostRange::new(231072, 100));
    // The hole between `a` and `c` holds 65636 ids: exactly that fits, one more doesn't.
    let fits = isolated_block(&isolated(Some(65636), None), &root, &taken).unwrap();
    assert_eq!(fits.uids.start, 231072);
    let big = isolated_block(&isolated(Some(65637), None), &root, &taken).unwrap();
    assert_eq!(big.uids.start, 231072 + 65536 + 1100);
    // The map of an isolated container is its block.
    let m = choose(&isolated(Some(100000), None), &root, &taken).unwrap();
    assert_eq!(
        m.uid_map_text(MAX_EXTENTS).unwrap(),
        format!("0 {} 100000\n", 231072 + 65536 + 1100)
    );
}

#[test]
fn isolated_blocks_use_the_same_offset_in_differing_uid_and_gid_ranges() {
    let root = RootIds {
        uid: HostRange::new(100000, 300000),
        gid: HostRange::new(500000, 200000),
        source: RootSource::SubIdFiles,
    };
    let a = isolated_block(&isolated(None, None), &root, &[]).unwrap();
    assert_eq!((a.uids.start, a.gids.start), (165536, 565536));
    // Another container's gid block alone pushes the next one on.
    let other = Allocation {
        uids: HostRange::new(1, 1),
        gids: HostRange::new(565536, 10),
    };
    let b = isolated_block(&isolated(None, None), &root, &[("o".into(), other)]).unwrap();
    assert_eq!((b.uids.start, b.gids.start), (165546, 565546));
    // The smaller of the two ranges bounds the pool: 200000 - 65536 left.
    assert!(isolated_block(&isolated(Some(134464), None), &root, &[]).is_ok());
    assert!(isolated_block(&isolated(Some(134465), None), &root, &[]).is_err());
}

#[test]
fn running_out_of_ids_is_a_clear_error() {
    let root = RootIds {
        uid: HostRange::new(100000, 65536 * 3),
        gid: HostRange::new(100000, 65536 * 3),
        source: RootSource::SubIdFiles,
    };
    let a = isolated_block(&isolated(None, None), &root, &[]).unwrap();
    let b = isolated_block(&isolated(None, None), &root, &[("a".into(), a)]).unwrap();
    let taken = vec![("a".to_string(), a), ("b".to_string(), b)];
    let err = isolated_block(&isolated(None, None), &root, &taken).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, IdMapError::Exhausted { size: 65536, .. }));
    assert!(msg.contains("no free range of 65536 host ids"), "{msg}");
    assert!(msg.contains("165536-296607"), "{msg}");
    assert!(
        msg.contains("`a` 165536-231071") && msg.contains("`b` 231072-296607"),
        "{msg}"
    );
    // LXD's "Test running out of ids": more than root has.
    assert!(isolated_block(&isolated(Some(10000002), None), &debian(), &[]).is_err());
}

#[test]
fn fixed_base_is_honoured_and_checked() {
    let root = debian();
    // LXD's test: base UID_BASE+12345, size 110000.
    let a = isolated_block(&isolated(Some(110000), Some(112345)), &root, &[]).unwrap();
    assert_eq!(a.uids, HostRange::new(112345, 110000));
    assert_eq!(a.gids, a.uids);
    let taken = vec![("web".to_string(), a)];
    let err = isolated_block(&isolated(None, Some(200000)), &root, &taken).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, IdMapError::BaseTaken { ref other, .. } if other == "web"));
    assert!(
        msg.contains("`web`") && msg.contains("200000-265535"),
        "{msg}"
    );
    // Right after it: free.
    assert!(isolated_block(&isolated(None, Some(222345)), &root, &taken).is_ok());
    // Too high for a map.
    let err = isolated_block(&isolated(None, Some(u32::MAX - 65535)), &root, &[]).unwrap_err();
    assert!(
        err.to_string().contains("runs past host id 4294967294"),
        "{err}"
    );
    assert!(isolated_block(&isolated(None, Some(u32::MAX - 65536)), &root, &[]).is_ok());
}

#[test]
fn size_zero_is_refused() {
    let err = isolated_block(&isolated(Some(0), None), &debian(), &[]).unwrap_err();
    assert!(err.to_string().contains("security.idmap.size is 0"));
}

/// Random `raw.idmap` values punched into a block always give a map the kernel
/// takes, in which each entry maps as written and every other container id of
/// the block keeps its own host id.
#[test]
fn punching_keeps_maps_valid() {
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut next = |n: u32| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % u64::from(n)) as u32
    };
    let block = HostRange::new(100000, 65536);
    for _ in 0..300 {
        let mut value = String::new();
        for _ in 0..1 + next(6) {
            let kind = ["both", "uid", "gid"][next(3) as usize];
            let count = 1 + next(300);
            let host = 200000 + next(100000);
            let inside = next(70000);
            value.push_str(&format!(
                "{kind} {host}-{} {inside}-{}\n",
                host + count - 1,
                inside + count - 1
            ));
        }
        let Ok(raw) = parse_raw(&value) else { continue };
        let m = build(block, block, &raw).unwrap();
        to_proc_map(&m.uids, MAX_EXTENTS).unwrap();
        to_proc_map(&m.gids, MAX_EXTENTS).unwrap();
        for e in &raw {
            for k in [0, e.count - 1] {
                if e.kind.uid() {
                    assert_eq!(m.host_uid(e.inside + k), Some(e.host + k), "{value}");
                }
                if e.kind.gid() {
                    assert_eq!(m.host_gid(e.inside + k), Some(e.host + k), "{value}");
                }
            }
        }
        for id in (0..65536).step_by(97) {
            let punched = raw
                .iter()
                .any(|e| e.kind.uid() && e.inside_range().overlaps(&HostRange::new(id, 1)));
            if !punched {
                assert_eq!(m.host_uid(id), Some(100000 + id), "{value}");
            }
        }
    }
}
