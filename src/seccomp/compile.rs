//! A resolved profile to BPF, with seccompiler. One seccompiler filter has
//! one action on a match and one otherwise, so a profile becomes several
//! filters, all installed, and the kernel answers with the most
//! restrictive action any gives:
//!
//! - the x32 guard (x86_64): a syscall number with the x32 bit is refused
//!   (EPERM) whatever the profile allows, as those numbers reach other
//!   code paths of the same calls;
//! - the default filter: any syscall some rule matches is allowed, anything
//!   else gets the default action;
//! - one filter per other action: its rules' matches get it, anything else
//!   is allowed.
//!
//! A syscall of a foreign architecture (i386's int 0x80 from an x86_64
//! process) kills the process: seccompiler's filters check the
//! architecture first.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::{Action, Condition, Op, Programs, Resolved, Rule};

fn seccomp_action(a: Action) -> SeccompAction {
    match a {
        Action::Allow => SeccompAction::Allow,
        Action::Errno(e) => SeccompAction::Errno(e),
        Action::KillThread => SeccompAction::KillThread,
        Action::KillProcess => SeccompAction::KillProcess,
        Action::Trap => SeccompAction::Trap,
        Action::Log => SeccompAction::Log,
        Action::Trace(n) => SeccompAction::Trace(n),
    }
}

fn condition(c: &Condition) -> Result<SeccompCondition, String> {
    let op = match c.op {
        Op::Eq => SeccompCmpOp::Eq,
        Op::Ne => SeccompCmpOp::Ne,
        Op::Lt => SeccompCmpOp::Lt,
        Op::Le => SeccompCmpOp::Le,
        Op::Gt => SeccompCmpOp::Gt,
        Op::Ge => SeccompCmpOp::Ge,
        Op::MaskedEq(mask) => SeccompCmpOp::MaskedEq(mask),
    };
    // libseccomp compares all 64 bits.
    SeccompCondition::new(c.index, SeccompCmpArgLen::Qword, op, c.value).map_err(|e| e.to_string())
}

/// The rules of `rules` as seccompiler's map: a syscall any of whose rules
/// has no condition matches whatever its arguments (an empty chain).
fn rule_map<'a>(
    rules: impl Iterator<Item = &'a Rule>,
) -> Result<BTreeMap<i64, Vec<SeccompRule>>, String> {
    let mut map: BTreeMap<i64, Option<Vec<SeccompRule>>> = BTreeMap::new();
    for rule in rules {
        let entry = map.entry(rule.nr).or_insert_with(|| Some(Vec::new()));
        if rule.conditions.is_empty() {
            *entry = None;
        } else if let Some(chain) = entry {
            let conditions = rule
                .conditions
                .iter()
                .map(condition)
                .collect::<Result<Vec<_>, _>>()?;
            chain.push(SeccompRule::new(conditions).map_err(|e| e.to_string())?);
        }
    }
    Ok(map
        .into_iter()
        .map(|(nr, chain)| (nr, chain.unwrap_or_default()))
        .collect())
}

fn target_arch() -> Result<TargetArch, String> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|e| e.to_string())
}

fn program(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: Action,
    on_match: Action,
) -> Result<Vec<u64>, String> {
    let filter = SeccompFilter::new(
        rules,
        seccomp_action(mismatch),
        seccomp_action(on_match),
        target_arch()?,
    )
    .map_err(|e| e.to_string())?;
    let bpf: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())?;
    Ok(bpf
        .iter()
        .map(|i| {
            u64::from(i.code) | u64::from(i.jt) << 16 | u64::from(i.jf) << 24 | u64::from(i.k) << 32
        })
        .collect())
}

/// The x32 guard: `ld nr; jge 0x40000000 → EPERM; allow`.
#[cfg(target_arch = "x86_64")]
fn x32_guard() -> Vec<u64> {
    const LD_W_ABS: u64 = 0x20;
    const JGE_K: u64 = 0x35;
    const RET_K: u64 = 0x06;
    let errno_eperm = u64::from(libc::SECCOMP_RET_ERRNO | libc::EPERM as u32);
    let allow = u64::from(libc::SECCOMP_RET_ALLOW);
    vec![
        LD_W_ABS,                               // k = 0: seccomp_data.nr
        JGE_K | 1 << 24 | 0x4000_0000u64 << 32, // jt 0, jf 1
        RET_K | errno_eperm << 32,
        RET_K | allow << 32,
    ]
}

/// The filters of a resolved profile (none for one that allows everything).
pub fn compile(resolved: &Resolved) -> Result<Programs, String> {
    let mut programs = Vec::new();
    #[cfg(target_arch = "x86_64")]
    programs.push(x32_guard());
    if resolved.default != Action::Allow {
        programs.push(program(
            rule_map(resolved.rules.iter())?,
            resolved.default,
            Action::Allow,
        )?);
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
        let rules = rule_map(resolved.rules.iter().filter(|r| r.action == action))?;
        programs.push(program(rules, Action::Allow, action)?);
    }
    Ok(Programs(programs))
}

#[cfg(test)]
mod tests {
    use super::super::{RUNTIME_DEFAULT, Target, parse, resolve};
    use super::*;

    #[test]
    fn the_default_profile_compiles_into_two_filters_under_the_limit() {
        let r = resolve(
            &parse(RUNTIME_DEFAULT).unwrap(),
            &Target {
                capabilities: crate::spec::security::default_capabilities(),
                kernel: (6, 1),
            },
        )
        .unwrap();
        let p = compile(&r).unwrap();
        // x32 guard, the allow-list, clone3's ENOSYS.
        assert_eq!(p.0.len(), if cfg!(target_arch = "x86_64") { 3 } else { 2 });
        assert!(p.0.iter().all(|f| !f.is_empty() && f.len() < 4096));
    }
}
