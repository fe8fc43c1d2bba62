//! A container's `securityContext` as the runtime applies it: its
//! capability set, no_new_privs, a read-only root, privileged. Pure
//! decisions; `runtime::container` carries them out.

use serde::{Deserialize, Serialize};

/// Every capability the kernel knows (as of 6.x), by number.
pub const CAPABILITY_NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// containerd's default set, which a Kubernetes node gives every container:
/// podman's eleven plus NET_RAW (Debian's `ping` carries `cap_net_raw=ep`
/// and cannot even be executed without it in the bounding set),
/// AUDIT_WRITE and MKNOD. Inside minipod's user namespace they reach
/// nothing the user could not reach with `unshare -Ur`.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Every capability: the kernel's own last one bounds it when applied.
pub const ALL_CAPABILITIES: u64 = u64::MAX;

/// The seccomp profile a container asks for (`seccompProfile`, its own or
/// the pod's); RuntimeDefault when it asks for none, as under podman.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seccomp {
    #[default]
    RuntimeDefault,
    Unconfined,
    /// A profile file, relative to minipod's seccomp folder
    /// (`paths::Roots::seccomp_profiles`).
    Localhost(String),
}

/// What the container's process gets, worked out from its securityContext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityPlan {
    /// Its bounding, permitted and effective set (bit N: capability N);
    /// the inheritable and ambient sets stay empty, as containerd leaves
    /// them, so a non-root user ends with no effective capabilities.
    pub capabilities: u64,
    /// `allowPrivilegeEscalation: false`: prctl(PR_SET_NO_NEW_PRIVS).
    pub no_new_privs: bool,
    /// `readOnlyRootFilesystem: true`.
    pub read_only_root: bool,
    /// `privileged: true`: no masked or read-only paths in /proc and /sys,
    /// and the host's devices the user may open.
    pub privileged: bool,
    /// Unconfined for a privileged container.
    pub seccomp: Seccomp,
}

impl Default for SecurityPlan {
    fn default() -> Self {
        SecurityPlan {
            capabilities: default_capabilities(),
            no_new_privs: false,
            read_only_root: false,
            privileged: false,
            seccomp: Seccomp::RuntimeDefault,
        }
    }
}

/// A capability's number, from its name with or without `CAP_`, in any
/// case (containerd upper-cases what kubelet passes).
pub fn capability_number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CAPABILITY_NAMES
        .iter()
        .position(|n| *n == bare)
        .map(|i| i as u32)
}

pub fn default_capabilities() -> u64 {
    DEFAULT_CAPABILITIES
        .iter()
        .map(|n| capability_number(n).expect("a known name"))
        .fold(0, |m, c| m | 1 << c)
}

/// `capabilities.add` and `drop` applied to the default set as containerd
/// applies them: `ALL` in add gives every capability and `ALL` in drop
/// none, before the named ones are added, then the named ones dropped (so
/// `drop: [ALL]` with `add: [NET_BIND_SERVICE]` keeps just that one).
/// Unknown names are the caller's to refuse (`capability_number`).
pub fn capability_set(add: &[String], drop: &[String]) -> u64 {
    let is_all = |n: &String| n.eq_ignore_ascii_case("ALL");
    let mut set = default_capabilities();
    if add.iter().any(is_all) {
        set = ALL_CAPABILITIES;
    }
    if drop.iter().any(is_all) {
        set = 0;
    }
    for c in add.iter().filter_map(|n| capability_number(n)) {
        set |= 1 << c;
    }
    for c in drop.iter().filter_map(|n| capability_number(n)) {
        set &= !(1 << c);
    }
    set
}

/// Kubernetes: privilege escalation is always allowed for a privileged
/// container and one with CAP_SYS_ADMIN; else as `allowPrivilegeEscalation`
/// says (default true). Returns whether to set no_new_privs.
pub fn no_new_privs(allow_escalation: Option<bool>, privileged: bool, capabilities: u64) -> bool {
    let sys_admin = capabilities & (1 << capability_number("SYS_ADMIN").expect("known")) != 0;
    allow_escalation == Some(false) && !privileged && !sys_admin
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_default_set_is_containerds() {
        // containerd's CapBnd: podman's 0x800405fb plus NET_RAW, MKNOD and AUDIT_WRITE.
        assert_eq!(default_capabilities(), 0xa804_25fb);
        assert_eq!(capability_set(&[], &[]), default_capabilities());
    }

    #[test]
    fn names_with_or_without_cap_in_any_case() {
        assert_eq!(capability_number("NET_ADMIN"), Some(12));
        assert_eq!(capability_number("CAP_NET_ADMIN"), Some(12));
        assert_eq!(capability_number("net_admin"), Some(12));
        assert_eq!(capability_number("CAP_BPF"), Some(39));
        assert_eq!(capability_number("NET_WIZARD"), None);
    }

    #[test]
    fn add_and_drop_as_containerd_applies_them() {
        let set = capability_set(&names(&["NET_ADMIN"]), &names(&["CAP_KILL", "MKNOD"]));
        assert_ne!(set & 1 << 12, 0);
        assert_eq!(set & (1 << 5 | 1 << 27), 0);
        // Drop ALL, then add one back.
        assert_eq!(
            capability_set(&names(&["NET_BIND_SERVICE"]), &names(&["ALL"])),
            1 << 10
        );
        // Add ALL, then drop one.
        assert_eq!(
            capability_set(&names(&["all"]), &names(&["CHOWN"])),
            ALL_CAPABILITIES & !1
        );
        assert_eq!(capability_set(&names(&["ALL"]), &names(&["ALL"])), 0);
    }

    #[test]
    fn escalation_is_allowed_unless_refused_and_never_for_privileged_or_sys_admin() {
        let def = default_capabilities();
        assert!(!no_new_privs(None, false, def));
        assert!(!no_new_privs(Some(true), false, def));
        assert!(no_new_privs(Some(false), false, def));
        assert!(!no_new_privs(Some(false), true, def));
        assert!(!no_new_privs(Some(false), false, def | 1 << 21));
    }
}
