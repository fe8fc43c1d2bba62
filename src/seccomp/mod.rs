//! Seccomp: profiles in the Docker/OCI JSON format (the one kubelet's
//! `Localhost` profiles and containerd use), resolved for one container
//! (its capabilities, this machine's architecture and kernel), compiled to
//! BPF (`compile`), and installed just before the container's command runs
//! (`install`).
//!
//! `RuntimeDefault` is `runtime-default.json` beside this file: containerd's
//! default allow-list, written as data; everything else answers EPERM.
//! A container gets it unless it asks for `Unconfined` or a `Localhost`
//! profile, as under podman (Kubernetes' own default is Unconfined unless
//! kubelet runs with `--seccomp-default`).

mod compile;

use serde::{Deserialize, Serialize};
use std::str::FromStr;

pub use compile::compile;

/// The default profile, as data.
pub const RUNTIME_DEFAULT: &str = include_str!("runtime-default.json");

/// A profile as written (Docker's format, a superset of the OCI runtime
/// spec's `linux.seccomp`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    /// OCI: the architectures the filter admits besides the native one.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// OCI: `listenerPath` asks for a notify agent, which minipod has not.
    #[serde(default)]
    pub listener_path: Option<String>,
    #[serde(default)]
    pub syscalls: Vec<SyscallRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyscallRule {
    #[serde(default)]
    pub names: Vec<String>,
    /// Docker's older form: one name.
    #[serde(default)]
    pub name: Option<String>,
    pub action: String,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Option<Vec<Arg>>,
    #[serde(default)]
    pub includes: Option<Applies>,
    #[serde(default)]
    pub excludes: Option<Applies>,
}

/// Docker's `includes`/`excludes`: when a rule applies.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Applies {
    #[serde(default)]
    pub caps: Vec<String>,
    #[serde(default)]
    pub arches: Vec<String>,
    #[serde(default)]
    pub min_kernel: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u8,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

/// What the filter answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Allow,
    Errno(u32),
    KillThread,
    KillProcess,
    Trap,
    Log,
    Trace(u32),
}

/// One comparison of a syscall argument (all of a rule's must hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Condition {
    pub index: u8,
    pub op: Op,
    pub value: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `(arg & mask) == value`.
    MaskedEq(u64),
}

/// A rule for one syscall of this architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub nr: i64,
    pub action: Action,
    /// Empty: the syscall matches whatever its arguments.
    pub conditions: Vec<Condition>,
}

/// A profile resolved for one container: what `compile` turns into BPF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub default: Action,
    pub rules: Vec<Rule>,
}

/// What a profile's rules are resolved against.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The container's bounding set (bit N: capability N).
    pub capabilities: u64,
    /// The kernel's version, major and minor.
    pub kernel: (u32, u32),
}

/// The compiled filters, each instruction packed into a u64
/// (`code | jt << 16 | jf << 24 | k << 32`) so it travels in a config as
/// plain numbers. All are installed; the kernel answers with the most
/// restrictive action any of them gives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Programs(pub Vec<Vec<u64>>);

/// This machine's architecture in Docker's `includes.arches` words.
fn native_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub fn parse(json: &str) -> Result<Profile, String> {
    serde_json::from_str(json).map_err(|e| format!("{e}"))
}

fn action(name: &str, errno: Option<u32>) -> Result<Action, String> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => Action::Errno(errno.unwrap_or(libc::EPERM as u32)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_LOG" => Action::Log,
        "SCMP_ACT_TRACE" => Action::Trace(errno.unwrap_or(0)),
        "SCMP_ACT_NOTIFY" => {
            return Err("SCMP_ACT_NOTIFY needs a seccomp agent, which minipod has not".into());
        }
        other => return Err(format!("unknown action {other:?}")),
    })
}

fn op(arg: &Arg) -> Result<Condition, String> {
    let (op, value) = match arg.op.as_str() {
        "SCMP_CMP_EQ" => (Op::Eq, arg.value),
        "SCMP_CMP_NE" => (Op::Ne, arg.value),
        "SCMP_CMP_LT" => (Op::Lt, arg.value),
        "SCMP_CMP_LE" => (Op::Le, arg.value),
        "SCMP_CMP_GT" => (Op::Gt, arg.value),
        "SCMP_CMP_GE" => (Op::Ge, arg.value),
        // (arg & value) == valueTwo
        "SCMP_CMP_MASKED_EQ" => (Op::MaskedEq(arg.value), arg.value_two),
        other => return Err(format!("unknown comparison {other:?}")),
    };
    if arg.index > 5 {
        return Err(format!("argument index {} (a syscall has 6)", arg.index));
    }
    Ok(Condition {
        index: arg.index,
        op,
        value,
    })
}

/// `"4.8"` → (4, 8).
fn kernel_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// The running kernel's version.
pub fn running_kernel() -> (u32, u32) {
    nix::sys::utsname::uname()
        .ok()
        .and_then(|u| kernel_version(&u.release().to_string_lossy()))
        .unwrap_or((0, 0))
}

/// Whether a rule's `includes` and `excludes` let it apply here, as Docker
/// decides: every included capability must be in the bounding set, and the
/// native architecture among the included ones; any excluded one present
/// leaves the rule out.
fn applies(rule: &SyscallRule, target: &Target) -> bool {
    let has_cap = |name: &String| {
        crate::spec::security::capability_number(name)
            .is_some_and(|c| target.capabilities & (1 << c) != 0)
    };
    let arch = native_arch();
    if let Some(inc) = &rule.includes {
        if !inc.caps.iter().all(has_cap) {
            return false;
        }
        if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == arch) {
            return false;
        }
        if let Some(min) = inc.min_kernel.as_deref().and_then(kernel_version)
            && target.kernel < min
        {
            return false;
        }
    }
    if let Some(exc) = &rule.excludes {
        if exc.caps.iter().any(has_cap) {
            return false;
        }
        if exc.arches.iter().any(|a| a == arch) {
            return false;
        }
        if let Some(min) = exc.min_kernel.as_deref().and_then(kernel_version)
            && target.kernel >= min
        {
            return false;
        }
    }
    true
}

/// A profile's rules for this container. Names this architecture has no
/// such syscall for are left out, as runc leaves them out.
pub fn resolve(profile: &Profile, target: &Target) -> Result<Resolved, String> {
    if profile
        .listener_path
        .as_deref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err("listenerPath needs a seccomp agent, which minipod has not".into());
    }
    let default = action(&profile.default_action, profile.default_errno_ret)?;
    let mut rules = Vec::new();
    for (i, rule) in profile.syscalls.iter().enumerate() {
        let act =
            action(&rule.action, rule.errno_ret).map_err(|e| format!("syscalls[{i}]: {e}"))?;
        let conditions = rule
            .args
            .iter()
            .flatten()
            .map(op)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("syscalls[{i}]: {e}"))?;
        if !applies(rule, target) {
            continue;
        }
        let names = rule.names.iter().chain(rule.name.as_ref());
        for name in names {
            let Ok(sysno) = syscalls::Sysno::from_str(name) else {
                continue;
            };
            rules.push(Rule {
                nr: sysno.id() as i64,
                action: act,
                conditions: conditions.clone(),
            });
        }
    }
    Ok(Resolved { default, rules })
}

/// Installs `programs` in this thread (and so the command it execs). Needs
/// no_new_privs or CAP_SYS_ADMIN in our user namespace.
pub fn install(programs: &Programs) -> std::io::Result<()> {
    for program in &programs.0 {
        let mut filter: Vec<libc::sock_filter> = program
            .iter()
            .map(|&i| libc::sock_filter {
                code: i as u16,
                jt: (i >> 16) as u8,
                jf: (i >> 24) as u8,
                k: (i >> 32) as u32,
            })
            .collect();
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_mut_ptr(),
        };
        // SAFETY: `prog` points at `filter`, which lives across the call;
        // the kernel copies the program.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(caps: u64) -> Target {
        Target {
            capabilities: caps,
            kernel: (6, 1),
        }
    }

    fn nr(name: &str) -> i64 {
        syscalls::Sysno::from_str(name).unwrap().id() as i64
    }

    #[test]
    fn the_default_profile_allows_the_usual_and_denies_keyctl_and_namespaces() {
        let profile = parse(RUNTIME_DEFAULT).unwrap();
        let default_caps = crate::spec::security::default_capabilities();
        let r = resolve(&profile, &target(default_caps)).unwrap();
        assert_eq!(r.default, Action::Errno(libc::EPERM as u32));
        let allowed = |name: &str| {
            r.rules
                .iter()
                .any(|rule| rule.nr == nr(name) && rule.action == Action::Allow)
        };
        for name in ["read", "openat", "execve", "socket", "chroot", "arch_prctl"] {
            assert!(allowed(name), "{name}");
        }
        for name in [
            "keyctl", "add_key", "mount", "unshare", "setns", "ptrace", "bpf",
        ] {
            assert!(!r.rules.iter().any(|rule| rule.nr == nr(name)), "{name}");
        }
        // clone only without namespace flags; clone3 says ENOSYS so libc
        // falls back to clone.
        let clone: Vec<_> = r.rules.iter().filter(|x| x.nr == nr("clone")).collect();
        assert_eq!(clone.len(), 1);
        assert!(matches!(clone[0].conditions[0].op, Op::MaskedEq(m) if m & 0x10000000 != 0));
        let clone3: Vec<_> = r.rules.iter().filter(|x| x.nr == nr("clone3")).collect();
        assert_eq!(clone3[0].action, Action::Errno(38));
    }

    #[test]
    fn capabilities_widen_the_default_profile() {
        let profile = parse(RUNTIME_DEFAULT).unwrap();
        let sys_admin = 1 << crate::spec::security::capability_number("SYS_ADMIN").unwrap();
        let r = resolve(&profile, &target(sys_admin)).unwrap();
        let mounts: Vec<_> = r.rules.iter().filter(|x| x.nr == nr("mount")).collect();
        assert_eq!(mounts.len(), 1);
        let clone: Vec<_> = r.rules.iter().filter(|x| x.nr == nr("clone")).collect();
        assert!(clone.iter().all(|c| c.conditions.is_empty()));
        assert!(
            !r.rules.iter().any(|x| x.nr == nr("chroot")),
            "no SYS_CHROOT"
        );
    }

    #[test]
    fn docker_rules_apply_by_capability_arch_and_kernel() {
        let profile = parse(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["keyctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"name": "ptrace", "action": "SCMP_ACT_KILL", "includes": {"minKernel": "7.0"}},
                {"names": ["chmod"], "action": "SCMP_ACT_LOG", "excludes": {"arches": ["amd64", "arm64"]}},
                {"names": ["no_such_call"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["personality"], "action": "SCMP_ACT_TRAP",
                 "args": [{"index": 0, "value": 255, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}]}
            ]}"#,
        )
        .unwrap();
        let r = resolve(&profile, &target(0)).unwrap();
        assert_eq!(r.default, Action::Allow);
        assert_eq!(
            r.rules,
            vec![
                Rule {
                    nr: nr("keyctl"),
                    action: Action::Errno(13),
                    conditions: vec![]
                },
                Rule {
                    nr: nr("personality"),
                    action: Action::Trap,
                    conditions: vec![Condition {
                        index: 0,
                        op: Op::MaskedEq(255),
                        value: 8
                    }]
                },
            ]
        );
    }

    #[test]
    fn what_minipod_cannot_do_is_an_error() {
        let bad = |json: &str| resolve(&parse(json).unwrap(), &target(0)).unwrap_err();
        assert!(bad(r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#).contains("agent"));
        assert!(bad(r#"{"defaultAction": "SCMP_ACT_FOO"}"#).contains("SCMP_ACT_FOO"));
        assert!(
            bad(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#)
                .contains("syscalls[0]")
        );
        assert!(parse("{").is_err());
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("6.1.0-28-amd64"), Some((6, 1)));
        assert_eq!(kernel_version("4.8"), Some((4, 8)));
        assert_eq!(kernel_version("5"), Some((5, 0)));
        assert_eq!(kernel_version("x"), None);
    }
}
