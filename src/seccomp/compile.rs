//! A resolved profile to classic BPF, by a small assembler of our own.
//!
//! The kernel converts and JIT-compiles a filter when it is installed, in
//! time proportional to its length, once per container start; a filter of
//! one compare-and-return chain per syscall (seccompiler's form: four
//! instructions each, 1 528 for the default profile) cost 0.95 ms to
//! install here. So syscalls that a rule matches whatever their arguments
//! are tested as sorted *ranges* of numbers, two instructions per range
//! (the default profile: about 70 ranges), and only syscalls with argument
//! conditions get blocks of their own.
//!
//! One filter has one action for a match and one otherwise, so a profile
//! with several actions becomes several filters, all installed; the kernel
//! answers with the most restrictive action any of them gives:
//!
//! - the x32 guard (x86_64): a syscall number with the x32 bit is refused
//!   (EPERM) whatever the profile allows, as those numbers reach other
//!   code paths of the same calls;
//! - the default filter: a syscall some rule matches is allowed, anything
//!   else gets the default action;
//! - one filter per other action: its rules' matches get it, anything else
//!   is allowed.
//!
//! Every filter first checks the architecture: a syscall of a foreign one
//! (i386's `int 0x80` from an x86_64 process) kills the process.

use std::collections::BTreeMap;

use super::{Action, Condition, Op, Programs, Resolved, Rule};

// Classic BPF opcodes (linux/bpf_common.h, linux/filter.h).
const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x54;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGT_K: u16 = 0x25;
const JMP_JGE_K: u16 = 0x35;
const RET_K: u16 = 0x06;

// struct seccomp_data offsets.
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARGS: u32 = 16;

#[cfg(target_arch = "x86_64")]
const NATIVE_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const NATIVE_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

fn ret_value(a: Action) -> u32 {
    match a {
        Action::Allow => RET_ALLOW,
        Action::Errno(e) => RET_ERRNO | (e & 0xffff),
        Action::KillThread => RET_KILL_THREAD,
        Action::KillProcess => RET_KILL_PROCESS,
        Action::Trap => RET_TRAP,
        Action::Log => RET_LOG,
        Action::Trace(n) => RET_TRACE | (n & 0xffff),
    }
}

/// Where a jump goes: the next instruction, or a label resolved later.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Next,
    Label(usize),
}

#[derive(Clone, Copy, Debug)]
enum Insn {
    Stmt {
        code: u16,
        k: u32,
    },
    Jump {
        code: u16,
        k: u32,
        jt: Target,
        jf: Target,
    },
    /// An unconditional jump (32-bit offset).
    Ja(usize),
    Label(usize),
}

/// Instructions with symbolic jumps; `finish` resolves them.
#[derive(Default)]
struct Asm {
    insns: Vec<Insn>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels += 1;
        self.labels - 1
    }
    fn place(&mut self, label: usize) {
        self.insns.push(Insn::Label(label));
    }
    fn stmt(&mut self, code: u16, k: u32) {
        self.insns.push(Insn::Stmt { code, k });
    }
    fn jump(&mut self, code: u16, k: u32, jt: Target, jf: Target) {
        self.insns.push(Insn::Jump { code, k, jt, jf });
    }
    fn ret(&mut self, value: u32) {
        self.stmt(RET_K, value);
    }

    fn finish(self) -> Result<Vec<u64>, String> {
        // Where each label lands, counting real instructions only.
        let mut at = vec![usize::MAX; self.labels];
        let mut n = 0;
        for i in &self.insns {
            match i {
                Insn::Label(l) => at[*l] = n,
                _ => n += 1,
            }
        }
        let mut out = Vec::with_capacity(n);
        let offset = |from: usize, t: Target| -> Result<u32, String> {
            match t {
                Target::Next => Ok(0),
                Target::Label(l) => at[l]
                    .checked_sub(from + 1)
                    .map(|d| d as u32)
                    .ok_or_else(|| "a backward jump".to_string()),
            }
        };
        for i in &self.insns {
            let pc = out.len();
            let (code, jt, jf, k) = match *i {
                Insn::Label(_) => continue,
                Insn::Stmt { code, k } => (code, 0, 0, k),
                Insn::Ja(l) => (JMP_JA, 0, 0, offset(pc, Target::Label(l))?),
                Insn::Jump { code, k, jt, jf } => {
                    let (jt, jf) = (offset(pc, jt)?, offset(pc, jf)?);
                    if jt > 255 || jf > 255 {
                        return Err("a rule too long for a conditional jump".into());
                    }
                    (code, jt, jf, k)
                }
            };
            out.push(
                u64::from(code) | u64::from(jt) << 16 | u64::from(jf) << 24 | u64::from(k) << 32,
            );
        }
        if out.len() > 4096 {
            return Err(format!(
                "{} instructions (the kernel takes 4096)",
                out.len()
            ));
        }
        Ok(out)
    }
}

/// One condition: falls through when it holds, jumps to `fail` when not.
/// Arguments are 64-bit, compared as libseccomp does: high word, then low
/// (little-endian: the low word comes first in memory).
fn condition(asm: &mut Asm, c: &Condition, fail: usize) {
    let lo = ARGS + 8 * u32::from(c.index);
    let hi = lo + 4;
    let (v_hi, v_lo) = ((c.value >> 32) as u32, c.value as u32);
    let fail = Target::Label(fail);
    let pass = asm.label();
    let pass_t = Target::Label(pass);
    let next = Target::Next;
    match c.op {
        Op::Eq => {
            asm.stmt(LD_W_ABS, hi);
            asm.jump(JMP_JEQ_K, v_hi, next, fail);
            asm.stmt(LD_W_ABS, lo);
            asm.jump(JMP_JEQ_K, v_lo, next, fail);
        }
        Op::Ne => {
            asm.stmt(LD_W_ABS, hi);
            asm.jump(JMP_JEQ_K, v_hi, next, pass_t);
            asm.stmt(LD_W_ABS, lo);
            asm.jump(JMP_JEQ_K, v_lo, fail, next);
        }
        Op::MaskedEq(mask) => {
            asm.stmt(LD_W_ABS, hi);
            asm.stmt(ALU_AND_K, (mask >> 32) as u32);
            asm.jump(JMP_JEQ_K, v_hi, next, fail);
            asm.stmt(LD_W_ABS, lo);
            asm.stmt(ALU_AND_K, mask as u32);
            asm.jump(JMP_JEQ_K, v_lo, next, fail);
        }
        Op::Gt | Op::Ge => {
            asm.stmt(LD_W_ABS, hi);
            asm.jump(JMP_JGT_K, v_hi, pass_t, next);
            asm.jump(JMP_JEQ_K, v_hi, next, fail);
            asm.stmt(LD_W_ABS, lo);
            let code = if c.op == Op::Gt { JMP_JGT_K } else { JMP_JGE_K };
            asm.jump(code, v_lo, next, fail);
        }
        Op::Lt | Op::Le => {
            asm.stmt(LD_W_ABS, hi);
            asm.jump(JMP_JGT_K, v_hi, fail, next);
            asm.jump(JMP_JEQ_K, v_hi, next, pass_t);
            asm.stmt(LD_W_ABS, lo);
            // Lt: not (lo >= v); Le: not (lo > v).
            let code = if c.op == Op::Lt { JMP_JGE_K } else { JMP_JGT_K };
            asm.jump(code, v_lo, fail, next);
        }
    }
    asm.place(pass);
}

/// Sorted runs of consecutive numbers.
fn ranges(mut nrs: Vec<u32>) -> Vec<(u32, u32)> {
    nrs.sort_unstable();
    nrs.dedup();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for n in nrs {
        match out.last_mut() {
            Some((_, hi)) if *hi + 1 == n => *hi = n,
            _ => out.push((n, n)),
        }
    }
    out
}

/// Ranges per stretch between shared returns: each range is two
/// instructions, and a jump reaches 255 ahead.
const RANGES_PER_STRETCH: usize = 100;

/// A filter: `rules` matching gives `on_match`, anything else `mismatch`.
fn filter(rules: &[&Rule], on_match: Action, mismatch: Action) -> Result<Vec<u64>, String> {
    let mut asm = Asm::default();
    let (hit, miss) = (ret_value(on_match), ret_value(mismatch));
    asm.stmt(LD_W_ABS, ARCH);
    let arch_ok = asm.label();
    asm.jump(JMP_JEQ_K, NATIVE_ARCH, Target::Label(arch_ok), Target::Next);
    asm.ret(RET_KILL_PROCESS);
    asm.place(arch_ok);

    // Per syscall: unconditional (None) or its rules' condition lists.
    let mut by_nr: BTreeMap<u32, Option<Vec<&[Condition]>>> = BTreeMap::new();
    for r in rules {
        let nr = u32::try_from(r.nr).map_err(|_| format!("syscall number {}", r.nr))?;
        let entry = by_nr.entry(nr).or_insert_with(|| Some(Vec::new()));
        match (entry.as_mut(), r.conditions.is_empty()) {
            (_, true) => *entry = None,
            (Some(list), false) => list.push(&r.conditions),
            (None, false) => {}
        }
    }

    // Syscalls with conditions first, each a block that always returns,
    // jumped over (the accumulator keeps the number) when it is not the one.
    asm.stmt(LD_W_ABS, NR);
    for (nr, conditional) in &by_nr {
        let Some(rule_conditions) = conditional else {
            continue;
        };
        let skip = asm.label();
        let body = asm.label();
        asm.jump(JMP_JEQ_K, *nr, Target::Label(body), Target::Next);
        asm.insns.push(Insn::Ja(skip));
        asm.place(body);
        for conditions in rule_conditions {
            let next_rule = asm.label();
            for c in conditions.iter() {
                condition(&mut asm, c, next_rule);
            }
            asm.ret(hit);
            asm.place(next_rule);
        }
        asm.ret(miss);
        asm.place(skip);
    }

    // The rest as ranges: past a range's top, on to the next; else at or
    // above its bottom it matches, below it is in the gap before it.
    let unconditional: Vec<u32> = by_nr
        .iter()
        .filter(|(_, c)| c.is_none())
        .map(|(nr, _)| *nr)
        .collect();
    for stretch in ranges(unconditional).chunks(RANGES_PER_STRETCH) {
        let (matched, missed, next_stretch) = (asm.label(), asm.label(), asm.label());
        for (lo, hi) in stretch {
            let next_range = asm.label();
            asm.jump(JMP_JGT_K, *hi, Target::Label(next_range), Target::Next);
            asm.jump(
                JMP_JGE_K,
                *lo,
                Target::Label(matched),
                Target::Label(missed),
            );
            asm.place(next_range);
        }
        asm.insns.push(Insn::Ja(next_stretch));
        asm.place(matched);
        asm.ret(hit);
        asm.place(missed);
        asm.ret(miss);
        asm.place(next_stretch);
    }
    asm.ret(miss);
    asm.finish()
}

/// The x32 guard: `ld nr; jge 0x40000000 → EPERM; allow`.
#[cfg(target_arch = "x86_64")]
fn x32_guard() -> Vec<u64> {
    let eperm = RET_ERRNO | libc::EPERM as u32;
    let mut asm = Asm::default();
    let refuse = asm.label();
    asm.stmt(LD_W_ABS, NR);
    asm.jump(JMP_JGE_K, 0x4000_0000, Target::Label(refuse), Target::Next);
    asm.ret(RET_ALLOW);
    asm.place(refuse);
    asm.ret(eperm);
    asm.finish().expect("a fixed program")
}

/// The filters of a resolved profile.
pub fn compile(resolved: &Resolved) -> Result<Programs, String> {
    let mut programs = Vec::new();
    #[cfg(target_arch = "x86_64")]
    programs.push(x32_guard());
    if resolved.default != Action::Allow {
        let all: Vec<&Rule> = resolved.rules.iter().collect();
        programs.push(filter(&all, Action::Allow, resolved.default)?);
    }
    let mut actions: Vec<Action> = resolved
        .rules
        .iter()
        .map(|r| r.action)
        .filter(|a| *a != Action::Allow)
        .collect();
    actions.sort();
    actions.dedup();
    for action in actions {
        let rules: Vec<&Rule> = resolved
            .rules
            .iter()
            .filter(|r| r.action == action)
            .collect();
        programs.push(filter(&rules, action, Action::Allow)?);
    }
    Ok(Programs(programs))
}

#[cfg(test)]
mod tests {
    use super::super::{RUNTIME_DEFAULT, Target as ProfileTarget, parse, resolve};
    use super::*;

    /// A classic BPF interpreter for what `filter` emits, to check the
    /// programs' answers without installing them.
    fn run(program: &[u64], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = Vec::new();
        data.extend_from_slice(&nr.to_le_bytes());
        data.extend_from_slice(&arch.to_le_bytes());
        data.extend_from_slice(&0u64.to_le_bytes());
        for a in args {
            data.extend_from_slice(&a.to_le_bytes());
        }
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let i = program[pc];
            let (code, jt, jf, k) = (i as u16, (i >> 16) as u8, (i >> 24) as u8, (i >> 32) as u32);
            pc += 1;
            match code {
                LD_W_ABS => {
                    a = u32::from_le_bytes(data[k as usize..k as usize + 4].try_into().unwrap())
                }
                ALU_AND_K => a &= k,
                JMP_JA => pc += k as usize,
                JMP_JEQ_K => pc += usize::from(if a == k { jt } else { jf }),
                JMP_JGT_K => pc += usize::from(if a > k { jt } else { jf }),
                JMP_JGE_K => pc += usize::from(if a >= k { jt } else { jf }),
                RET_K => return k,
                other => panic!("opcode {other:#x}"),
            }
        }
    }

    fn nr(name: &str) -> u32 {
        use std::str::FromStr;
        syscalls::Sysno::from_str(name).unwrap().id() as u32
    }

    fn default_profile() -> Programs {
        let r = resolve(
            &parse(RUNTIME_DEFAULT).unwrap(),
            &ProfileTarget {
                capabilities: crate::spec::security::default_capabilities(),
                kernel: (6, 1),
            },
        )
        .unwrap();
        compile(&r).unwrap()
    }

    /// What all the filters together answer: the most restrictive.
    fn answer(p: &Programs, nr: u32, args: [u64; 6]) -> u32 {
        let rank = |v: u32| match v & 0xffff_0000 {
            RET_KILL_PROCESS => 0,
            0 => 1,
            RET_TRAP => 2,
            RET_ERRNO => 3,
            RET_TRACE => 4,
            RET_LOG => 5,
            _ => 6,
        };
        p.0.iter()
            .map(|f| run(f, NATIVE_ARCH, nr, args))
            .min_by_key(|v| rank(*v))
            .unwrap()
    }

    #[test]
    fn the_default_profile_is_short_and_answers_as_written() {
        let p = default_profile();
        let len: usize = p.0.iter().map(Vec::len).sum();
        assert!(len < 400, "{len} instructions");
        let eperm = RET_ERRNO | 1;
        for name in [
            "read",
            "write",
            "openat",
            "execve",
            "socket",
            "exit_group",
            "rseq",
        ] {
            assert_eq!(answer(&p, nr(name), [0; 6]), RET_ALLOW, "{name}");
        }
        for name in [
            "keyctl", "add_key", "mount", "unshare", "ptrace", "bpf", "reboot",
        ] {
            assert_eq!(answer(&p, nr(name), [0; 6]), eperm, "{name}");
        }
        // personality: only the listed values.
        assert_eq!(answer(&p, nr("personality"), [0; 6]), RET_ALLOW);
        assert_eq!(
            answer(&p, nr("personality"), [0xffff_ffff, 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(
            answer(&p, nr("personality"), [0x4_0000, 0, 0, 0, 0, 0]),
            eperm
        );
        // clone: not with namespace flags; clone3: ENOSYS.
        assert_eq!(answer(&p, nr("clone"), [0x11, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(answer(&p, nr("clone"), [0x1000_0011, 0, 0, 0, 0, 0]), eperm);
        assert_eq!(answer(&p, nr("clone3"), [0; 6]), RET_ERRNO | 38);
        // x32 numbers and foreign architectures.
        #[cfg(target_arch = "x86_64")]
        assert_eq!(answer(&p, 0x4000_0000 | nr("read"), [0; 6]), eperm);
        assert_eq!(
            run(&p.0[1], 0x4000_0003, nr("read"), [0; 6]),
            RET_KILL_PROCESS
        );
        // Past every syscall.
        assert_eq!(answer(&p, 10_000, [0; 6]), eperm);
    }

    #[test]
    fn sixty_four_bit_comparisons() {
        let cond = |op, value| Rule {
            nr: 1,
            action: Action::Errno(9),
            conditions: vec![Condition {
                index: 2,
                op,
                value,
            }],
        };
        let check = |rule: Rule, arg: u64| {
            let p = filter(&[&rule], Action::Errno(9), Action::Allow).unwrap();
            run(&p, NATIVE_ARCH, 1, [0, 0, arg, 0, 0, 0]) != RET_ALLOW
        };
        let big = 0x1_0000_0005u64;
        for (op, arg, want) in [
            (Op::Eq, big, true),
            (Op::Eq, 5, false),
            (Op::Ne, 5, true),
            (Op::Ne, big, false),
            (Op::Gt, big + 1, true),
            (Op::Gt, big, false),
            (Op::Gt, 0x2_0000_0000, true),
            (Op::Ge, big, true),
            (Op::Ge, 6, false),
            (Op::Lt, 6, true),
            (Op::Lt, big, false),
            (Op::Le, big, true),
            (Op::Le, big + 1, false),
            (
                Op::MaskedEq(0xffff_0000_0000_00ff),
                0x1234_0001_0000_0105,
                true,
            ),
            (
                Op::MaskedEq(0xffff_0000_0000_00ff),
                0x1234_0001_0000_0106,
                false,
            ),
        ] {
            let value = if let Op::MaskedEq(_) = op {
                0x1234_0000_0000_0005
            } else {
                big
            };
            assert_eq!(check(cond(op, value), arg), want, "{op:?} {arg:#x}");
        }
    }

    /// What installing the default profile costs, in forked children (a
    /// filter stays with its process): `ROUNDS=100 cargo test --release
    /// --lib install_cost -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn install_cost() {
        let t = std::time::Instant::now();
        let p = default_profile();
        let compiled = t.elapsed();
        let sizes: Vec<usize> = p.0.iter().map(Vec::len).collect();
        let rounds: u32 = std::env::var("ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(1);
        for _ in 0..rounds {
            // SAFETY: the child only makes syscalls and exits.
            match unsafe { nix::unistd::fork() }.unwrap() {
                nix::unistd::ForkResult::Child => {
                    nix::sys::prctl::set_no_new_privs().unwrap();
                    let t = std::time::Instant::now();
                    super::super::install(&p).unwrap();
                    let installed = t.elapsed();
                    println!(
                        "parse+resolve+compile {compiled:?}, install {installed:?}, sizes {sizes:?}"
                    );
                    // SAFETY: no pointers; the child skips the parent's destructors.
                    unsafe { libc::_exit(0) };
                }
                nix::unistd::ForkResult::Parent { child } => {
                    nix::sys::wait::waitpid(child, None).unwrap();
                }
            }
        }
    }

    #[test]
    fn ranges_join_consecutive_numbers() {
        assert_eq!(
            ranges(vec![5, 1, 2, 3, 9, 10]),
            vec![(1, 3), (5, 5), (9, 10)]
        );
    }
}
