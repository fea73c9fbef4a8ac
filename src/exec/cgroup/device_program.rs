//! The device allow-list as a cgroup2 device program
//! (`BPF_PROG_TYPE_CGROUP_DEVICE`): cgroup2 has no devices controller, so the
//! kernel asks a program attached to the cgroup instead. Built here from the
//! rules, with the meaning the v1 controller gives them after `deny a`: an
//! access is allowed when one rule matches the device's type, major and minor
//! and allows every access asked for at once; rules for the same device add
//! their accesses up, as v1 merges them. Everything else is denied.

use crate::profile::model::NodeKind;
use crate::profile::values::{DeviceAccess, DeviceRule};

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// The kernel's 8 bytes: code, the registers' nibbles (as the C bit
    /// fields lay them out on this machine), offset, immediate.
    pub fn encode(&self) -> [u8; 8] {
        let regs = if cfg!(target_endian = "little") {
            (self.dst & 0xf) | (self.src << 4)
        } else {
            (self.dst << 4) | (self.src & 0xf)
        };
        let off = self.off.to_ne_bytes();
        let imm = self.imm.to_ne_bytes();
        [
            self.code, regs, off[0], off[1], imm[0], imm[1], imm[2], imm[3],
        ]
    }
}

// The opcodes the program uses (class | operation | source).
/// `dst = *(u32 *)(src + off)`
pub const LDX_W: u8 = 0x61;
/// `dst = (u32)dst & imm`
pub const AND32_K: u8 = 0x54;
/// `dst = (u32)dst >> imm`
pub const RSH32_K: u8 = 0x74;
/// `dst = src`
pub const MOV64_X: u8 = 0xbf;
/// `dst = imm`
pub const MOV64_K: u8 = 0xb7;
/// `if dst != imm goto +off`
pub const JNE_K: u8 = 0x55;
/// `if dst != src goto +off`
pub const JNE_X: u8 = 0x5d;
pub const EXIT: u8 = 0x95;

// `struct bpf_cgroup_dev_ctx`: `access_type` (access << 16 | type), major, minor.
const CTX_ACCESS_TYPE: i16 = 0;
const CTX_MAJOR: i16 = 4;
const CTX_MINOR: i16 = 8;
// BPF_DEVCG_DEV_* and BPF_DEVCG_ACC_*.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

// Registers: r1 the context (then scratch), r2 the type, r3 the access
// asked for, r4 the major, r5 the minor; r0 the answer.
const R0: u8 = 0;
const R1: u8 = 1;
const R_TYPE: u8 = 2;
const R_ACCESS: u8 = 3;
const R_MAJOR: u8 = 4;
const R_MINOR: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

fn access_bits(a: DeviceAccess) -> i32 {
    (if a.mknod { ACC_MKNOD } else { 0 })
        | (if a.read { ACC_READ } else { 0 })
        | (if a.write { ACC_WRITE } else { 0 })
}

/// The rules with the same type and numbers merged (accesses added up),
/// in the order each device first appears.
fn merged(rules: &[DeviceRule]) -> Vec<DeviceRule> {
    let mut out: Vec<DeviceRule> = Vec::with_capacity(rules.len());
    let mut index = std::collections::HashMap::new();
    for r in rules {
        let key = (r.kind, r.major, r.minor);
        match index.get(&key) {
            Some(&i) => {
                let m: &mut DeviceRule = &mut out[i];
                m.access = m.access.union(r.access);
            }
            None => {
                index.insert(key, out.len());
                out.push(*r);
            }
        }
    }
    out
}

/// The program for `rules`. It ends at the first rule that allows
/// everything (the kernel refuses instructions no path reaches).
pub fn device_program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_W, R_TYPE, R1, CTX_ACCESS_TYPE, 0),
        insn(AND32_K, R_TYPE, 0, 0, 0xffff),
        insn(LDX_W, R_ACCESS, R1, CTX_ACCESS_TYPE, 0),
        insn(RSH32_K, R_ACCESS, 0, 0, 16),
        insn(LDX_W, R_MAJOR, R1, CTX_MAJOR, 0),
        insn(LDX_W, R_MINOR, R1, CTX_MINOR, 0),
    ];
    for r in merged(rules) {
        // Each test jumps past the rest of this rule's block when it fails;
        // the offsets are filled in once the block's length is known.
        let mut block: Vec<Insn> = Vec::new();
        let mut jumps = Vec::new();
        if let Some(kind) = r.kind {
            let t = match kind {
                NodeKind::Char => DEV_CHAR,
                NodeKind::Block => DEV_BLOCK,
            };
            jumps.push(block.len());
            block.push(insn(JNE_K, R_TYPE, 0, 0, t));
        }
        let allowed = access_bits(r.access);
        if allowed != ACC_MKNOD | ACC_READ | ACC_WRITE {
            // Every access asked for is among the allowed ones:
            // (asked & allowed) == asked.
            block.push(insn(MOV64_X, R1, R_ACCESS, 0, 0));
            block.push(insn(AND32_K, R1, 0, 0, allowed));
            jumps.push(block.len());
            block.push(insn(JNE_X, R1, R_ACCESS, 0, 0));
        }
        // A number beyond i32 cannot be a device's (majors have 12 bits,
        // minors 20): as a sign-extended immediate it matches no register.
        if let Some(major) = r.major {
            jumps.push(block.len());
            block.push(insn(JNE_K, R_MAJOR, 0, 0, major as i32));
        }
        if let Some(minor) = r.minor {
            jumps.push(block.len());
            block.push(insn(JNE_K, R_MINOR, 0, 0, minor as i32));
        }
        block.push(insn(MOV64_K, R0, 0, 0, 1));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let len = block.len();
        for j in &jumps {
            // To the instruction after the block.
            block[*j].off = (len - j - 1) as i16;
        }
        let unconditional = jumps.is_empty();
        p.extend(block);
        if unconditional {
            return p;
        }
    }
    p.push(insn(MOV64_K, R0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

/// The instructions as the kernel takes them.
pub fn encode(program: &[Insn]) -> Vec<[u8; 8]> {
    program.iter().map(Insn::encode).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request: type, major, minor, accesses (BPF_DEVCG_ACC_* bits).
    #[derive(Debug, Clone, Copy)]
    struct Req {
        kind: NodeKind,
        major: u32,
        minor: u32,
        access: i32,
    }

    /// Runs `p` on one request as the kernel would: the instructions this
    /// module emits, with every jump and register checked.
    fn run(p: &[Insn], q: Req) -> bool {
        let t = match q.kind {
            NodeKind::Char => DEV_CHAR,
            NodeKind::Block => DEV_BLOCK,
        } as u32;
        let ctx = [(q.access as u32) << 16 | t, q.major, q.minor];
        // Registers: value, or None when never written (r1 starts as the
        // context pointer, modelled as Some(u64::MAX)).
        let mut r: [Option<u64>; 11] = [None; 11];
        r[1] = Some(u64::MAX);
        let mut ctx_in_r1 = true;
        let mut pc = 0usize;
        for _ in 0..10_000 {
            let i = p.get(pc).unwrap_or_else(|| panic!("fell off at {pc}"));
            let (d, s) = (i.dst as usize, i.src as usize);
            let get = |r: &[Option<u64>; 11], n: usize| {
                r[n].unwrap_or_else(|| panic!("r{n} read before written at {pc}"))
            };
            match i.code {
                LDX_W => {
                    assert!(s == 1 && ctx_in_r1, "loads only from the context");
                    let field = match i.off {
                        CTX_ACCESS_TYPE => 0,
                        CTX_MAJOR => 1,
                        CTX_MINOR => 2,
                        o => panic!("no context field at {o}"),
                    };
                    r[d] = Some(ctx[field] as u64);
                }
                AND32_K => r[d] = Some((get(&r, d) as u32 & i.imm as u32) as u64),
                RSH32_K => r[d] = Some((get(&r, d) as u32 >> i.imm) as u64),
                MOV64_X => r[d] = Some(get(&r, s)),
                MOV64_K => r[d] = Some(i.imm as i64 as u64),
                JNE_K => {
                    if get(&r, d) != i.imm as i64 as u64 {
                        pc = (pc as i64 + 1 + i.off as i64) as usize;
                        continue;
                    }
                }
                JNE_X => {
                    if get(&r, d) != get(&r, s) {
                        pc = (pc as i64 + 1 + i.off as i64) as usize;
                        continue;
                    }
                }
                EXIT => {
                    return match get(&r, 0) {
                        0 => false,
                        1 => true,
                        v => panic!("returns {v}"),
                    };
                }
                c => panic!("opcode {c:#x} at {pc}"),
            }
            if d == 1 && i.code != JNE_K && i.code != JNE_X {
                ctx_in_r1 = false;
            }
            pc += 1;
        }
        panic!("no exit after 10000 steps")
    }

    /// Every instruction is reached from the first one (the kernel's
    /// verifier refuses a program with one that is not), and every jump
    /// lands inside the program.
    fn assert_all_reachable(p: &[Insn]) {
        let mut seen = vec![false; p.len()];
        let mut todo = vec![0usize];
        while let Some(pc) = todo.pop() {
            assert!(pc < p.len(), "a jump lands at {pc}, past the end");
            if std::mem::replace(&mut seen[pc], true) {
                continue;
            }
            match p[pc].code {
                EXIT => {}
                JNE_K | JNE_X => {
                    todo.push(pc + 1);
                    todo.push((pc as i64 + 1 + p[pc].off as i64) as usize);
                }
                _ => todo.push(pc + 1),
            }
        }
        let unreached: Vec<usize> = (0..p.len()).filter(|i| !seen[*i]).collect();
        assert!(unreached.is_empty(), "unreachable: {unreached:?}");
    }

    /// What the v1 controller decides after `deny a` and these allows.
    fn v1_allows(rules: &[DeviceRule], q: Req) -> bool {
        merged(rules).iter().any(|r| {
            r.kind.is_none_or(|k| k == q.kind)
                && r.major.is_none_or(|m| m == q.major)
                && r.minor.is_none_or(|m| m == q.minor)
                && q.access & !access_bits(r.access) == 0
        })
    }

    fn rules(list: &[&str]) -> Vec<DeviceRule> {
        list.iter().map(|r| DeviceRule::parse(r).unwrap()).collect()
    }

    /// Every request over a grid of devices (the rules' numbers and their
    /// neighbours) and every non-empty access set.
    fn requests(rules: &[DeviceRule]) -> Vec<Req> {
        let mut nums: Vec<u32> = vec![0, 1, 7, u32::MAX >> 12];
        for r in rules {
            for n in [r.major, r.minor].into_iter().flatten() {
                nums.extend([n, n.wrapping_add(1), n.wrapping_sub(1)]);
            }
        }
        nums.sort();
        nums.dedup();
        let mut out = Vec::new();
        for kind in [NodeKind::Char, NodeKind::Block] {
            for &major in &nums {
                for &minor in &nums {
                    for access in 1..=7 {
                        out.push(Req {
                            kind,
                            major,
                            minor,
                            access,
                        });
                    }
                }
            }
        }
        out
    }

    fn check(list: &[&str]) {
        let rules = rules(list);
        let p = device_program(&rules);
        assert_all_reachable(&p);
        for q in requests(&rules) {
            assert_eq!(
                run(&p, q),
                v1_allows(&rules, q),
                "{list:?} on {q:?}\n{p:#?}"
            );
        }
    }

    #[test]
    fn no_rules_deny_everything() {
        check(&[]);
        let p = device_program(&[]);
        assert!(!run(
            &p,
            Req {
                kind: NodeKind::Char,
                major: 1,
                minor: 3,
                access: ACC_READ
            }
        ));
    }

    #[test]
    fn every_rule_shape_means_what_v1_makes_of_it() {
        // Types c, b, a; exact numbers and wildcards on each side.
        for t in ["c", "b", "a"] {
            for n in ["1:3", "1:*", "*:3", "*:*", "136:*", "4095:1048575"] {
                // Every non-empty access subset.
                for a in ["r", "w", "m", "rw", "rm", "wm", "rwm", "mwr"] {
                    check(&[&format!("{t} {n} {a}")]);
                }
            }
        }
    }

    #[test]
    fn lxds_list_with_extra_devices() {
        let lxd = [
            "c *:* m",
            "b *:* m",
            "c 1:3 rwm",
            "c 1:5 rwm",
            "c 1:7 rwm",
            "c 1:8 rwm",
            "c 1:9 rwm",
            "c 5:0 rwm",
            "c 5:1 rwm",
            "c 5:2 rwm",
            "c 136:* rwm",
            "c 10:229 rwm",
            "c 10:200 rwm",
            "b 7:0 rw",
        ];
        check(&lxd);
        let p = device_program(&rules(&lxd));
        let q = |kind, major, minor, access| Req {
            kind,
            major,
            minor,
            access,
        };
        // mknod of anything, but no open of a node outside the list.
        assert!(run(&p, q(NodeKind::Char, 1, 11, ACC_MKNOD)));
        assert!(!run(&p, q(NodeKind::Char, 1, 11, ACC_READ)));
        assert!(run(&p, q(NodeKind::Char, 136, 42, ACC_READ | ACC_WRITE)));
        assert!(run(&p, q(NodeKind::Block, 7, 0, ACC_READ | ACC_WRITE)));
        assert!(!run(&p, q(NodeKind::Block, 7, 1, ACC_READ)));
    }

    #[test]
    fn rules_for_one_device_add_up_but_others_do_not() {
        // v1 merges the two 1:3 rules into `rw`; `c 1:* r` and `c *:5 w`
        // stay apart, so reading and writing 1:5 at once is refused.
        check(&["c 1:3 r", "c 1:3 w", "c 1:* r", "c *:5 w"]);
        let p = device_program(&rules(&["c 1:3 r", "c 1:3 w", "c 1:* r", "c *:5 w"]));
        let q = |minor, access| Req {
            kind: NodeKind::Char,
            major: 1,
            minor,
            access,
        };
        assert!(run(&p, q(3, ACC_READ | ACC_WRITE)));
        assert!(run(&p, q(5, ACC_READ)));
        assert!(run(&p, q(5, ACC_WRITE)));
        assert!(!run(&p, q(5, ACC_READ | ACC_WRITE)));
    }

    #[test]
    fn a_rule_allowing_everything_ends_the_program() {
        for all in [&["c 1:3 r", "a", "b 8:0 r"][..], &["a *:* rwm", "c 1:3 r"]] {
            check(all);
            let p = device_program(&rules(all));
            assert_eq!(p.last().unwrap().code, EXIT);
        }
        // Allowing everything of one type is not everything.
        check(&["c *:* rwm", "b 8:* r"]);
    }

    #[test]
    fn numbers_past_what_a_device_can_have_match_nothing() {
        let rules = rules(&["c 4294967295:1 rwm", "b 1:2147483648 rwm"]);
        let p = device_program(&rules);
        assert_all_reachable(&p);
        for q in requests(&rules) {
            assert!(!run(&p, q), "{q:?}");
        }
    }

    #[test]
    fn encoding_puts_the_registers_in_their_nibbles() {
        let b = insn(JNE_X, 1, 3, -2, 7).encode();
        assert_eq!(b[0], JNE_X);
        if cfg!(target_endian = "little") {
            assert_eq!(b[1], 0x31);
        }
        assert_eq!(i16::from_ne_bytes([b[2], b[3]]), -2);
        assert_eq!(i32::from_ne_bytes([b[4], b[5], b[6], b[7]]), 7);
    }
}
