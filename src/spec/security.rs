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
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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
    /// `procMount: Unmasked`: /proc as privileged sees it.
    pub proc_unmasked: bool,
}

impl Default for SecurityPlan {
    fn default() -> Self {
        SecurityPlan {
            capabilities: default_capabilities(),
            no_new_privs: false,
            read_only_root: false,
            privileged: false,
            seccomp: Seccomp::RuntimeDefault,
            proc_unmasked: false,
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

/// `fsGroupChangePolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FsGroupChangePolicy {
    /// Kubernetes' default: every file, every time.
    #[default]
    Always,
    /// Only when the volume's root does not already have the group and
    /// permissions.
    OnRootMismatch,
}

/// The pod-level parts of a securityContext that the runtime applies to
/// the pod rather than to one container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSecurityPlan {
    /// `fsGroup`: owns the pod's volumes (with the setgid bit on folders)
    /// and is every container's supplementary group.
    pub fs_group: Option<u32>,
    pub fs_group_change_policy: FsGroupChangePolicy,
    /// `sysctls`, in order, set in the pod's namespaces: (name as
    /// /proc/sys path, value).
    pub sysctls: Vec<(String, String)>,
}

/// Where a sysctl lives, as kubelet sorts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysctlClass {
    /// Kubernetes' safe set: allowed on every node.
    Safe,
    /// Namespaced in the pod's network namespace (`net.*`).
    Net,
    /// Namespaced in the pod's IPC namespace.
    Ipc,
    /// Not namespaced: it would change the whole machine.
    Host,
}

/// Kubernetes' safe sysctls (as of 1.32).
pub const SAFE_SYSCTLS: [&str; 12] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// A sysctl's name in dotted form: Kubernetes also takes `/` as the
/// separator (then a `.` is part of a component, as in an interface name).
pub fn sysctl_dotted(name: &str) -> String {
    if name.contains('/') {
        name.replace('.', "\u{0}")
            .replace('/', ".")
            .replace('\u{0}', "/")
    } else {
        name.to_string()
    }
}

/// Its path under /proc/sys.
pub fn sysctl_path(name: &str) -> String {
    if name.contains('/') {
        name.to_string()
    } else {
        name.replace('.', "/")
    }
}

pub fn sysctl_class(name: &str) -> SysctlClass {
    let dotted = sysctl_dotted(name);
    if SAFE_SYSCTLS.contains(&dotted.as_str()) {
        return SysctlClass::Safe;
    }
    if dotted.starts_with("net.") {
        return SysctlClass::Net;
    }
    if ["kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue."]
        .iter()
        .any(|p| dotted.starts_with(p))
    {
        return SysctlClass::Ipc;
    }
    SysctlClass::Host
}

/// kubelet's `SetVolumeOwnership`: the mode a file or folder of a volume
/// gets with an fsGroup: the group may read (and write, unless read-only);
/// folders get the setgid bit, so new files take the group, and the
/// group's search bit.
pub fn fs_group_mode(mode: u32, is_dir: bool, read_only: bool) -> u32 {
    let mut mask = if read_only { 0o440 } else { 0o660 };
    if is_dir {
        mask |= 0o2000 | 0o110;
    }
    mode | mask
}

/// `OnRootMismatch`: whether the volume's root already has the group and
/// the permissions, so nothing below is changed.
pub fn fs_group_root_matches(
    root_gid: u32,
    root_mode: u32,
    fs_group: u32,
    read_only: bool,
) -> bool {
    let wanted = fs_group_mode(0, true, read_only);
    root_gid == fs_group && root_mode & wanted == wanted
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
    fn sysctls_are_sorted_as_kubelet_sorts_them() {
        assert_eq!(sysctl_class("net.ipv4.tcp_syncookies"), SysctlClass::Safe);
        assert_eq!(sysctl_class("kernel.shm_rmid_forced"), SysctlClass::Safe);
        assert_eq!(sysctl_class("net.core.somaxconn"), SysctlClass::Net);
        assert_eq!(
            sysctl_class("net/ipv4/conf/eno2.100/rp_filter"),
            SysctlClass::Net
        );
        assert_eq!(sysctl_class("kernel.shmmax"), SysctlClass::Ipc);
        assert_eq!(sysctl_class("fs.mqueue.msg_max"), SysctlClass::Ipc);
        assert_eq!(sysctl_class("kernel.sem"), SysctlClass::Ipc);
        assert_eq!(sysctl_class("vm.swappiness"), SysctlClass::Host);
        assert_eq!(sysctl_class("kernel.hostname"), SysctlClass::Host);
        assert_eq!(
            sysctl_dotted("net/ipv4/conf/eno2.100/rp_filter"),
            "net.ipv4.conf.eno2/100.rp_filter"
        );
        assert_eq!(sysctl_path("net.core.somaxconn"), "net/core/somaxconn");
        assert_eq!(
            sysctl_path("net/ipv4/conf/eno2.100/rp_filter"),
            "net/ipv4/conf/eno2.100/rp_filter"
        );
    }

    #[test]
    fn fs_group_modes_as_kubelet_sets_them() {
        assert_eq!(fs_group_mode(0o600, false, false), 0o660);
        assert_eq!(fs_group_mode(0o644, false, true), 0o644);
        assert_eq!(fs_group_mode(0o400, false, true), 0o440);
        assert_eq!(fs_group_mode(0o777, true, false), 0o2777);
        assert_eq!(fs_group_mode(0o700, true, false), 0o2770);
        assert!(fs_group_root_matches(2000, 0o2775, 2000, false));
        assert!(!fs_group_root_matches(2000, 0o775, 2000, false));
        assert!(!fs_group_root_matches(0, 0o2777, 2000, false));
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
