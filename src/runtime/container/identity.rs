//! Who the container's process is: supplementary groups, gid and uid, and
//! its capabilities (the set `spec::security` worked out, in the bounding,
//! effective and permitted sets; nothing inheritable or ambient).

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::unistd::{Gid, Uid};

use crate::runtime::contract::container::Process;
use crate::userns::idmap::unmapped_hint;

pub fn cap_mask(caps: &[u32]) -> u64 {
    caps.iter().fold(0, |m, c| m | 1u64 << c)
}

/// The capabilities up to `last_cap` that are not in `keep`.
pub fn caps_to_drop(last_cap: u32, keep: u64) -> Vec<u32> {
    (0..=last_cap.min(63))
        .filter(|c| keep & (1u64 << c) == 0)
        .collect()
}

/// The kernel's highest capability number (what /proc/sys/kernel/cap_last_cap says).
pub(super) fn last_capability() -> u32 {
    // PR_CAPBSET_READ fails (EINVAL) for the first number past the last.
    let known = |cap: u32| {
        // SAFETY: integer arguments only, no memory is passed; it reads our
        // own bounding set.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
        r >= 0
    };
    (0..64u32).take_while(|c| known(*c)).last().unwrap_or(40)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `capset` v3 data: two 32-bit words per set.
pub fn cap_data(effective: u64, permitted: u64, inheritable: u64) -> [CapData; 2] {
    let word = |m: u64, i: u32| (m >> (32 * i)) as u32;
    [0, 1].map(|i| CapData {
        effective: word(effective, i),
        permitted: word(permitted, i),
        inheritable: word(inheritable, i),
    })
}

fn capset(data: [CapData; 2]) -> nix::Result<()> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: `header` and `data` are live #[repr(C)] structs of the
    // kernel's v3 layout, and v3 reads exactly two data entries, which is
    // what `data` holds.
    let r = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    Errno::result(r).map(drop)
}

/// Groups, gid, uid, the capabilities of `process.security` (bit N:
/// capability N; those past the kernel's last one are ignored), and
/// no_new_privs when asked. The inheritable set
/// is left empty (podman >= 4.0, after CVE-2022-27649): a root process gets
/// its permitted set from the bounding set on exec anyway, and a non-root
/// one must not gain capabilities through file-inheritable bits.
pub(super) fn switch_user(process: &Process, last_cap: u32) -> Result<()> {
    let known = match last_cap {
        63.. => u64::MAX,
        n => (1u64 << (n + 1)) - 1,
    };
    let keep = process.security.capabilities & known;
    for cap in caps_to_drop(last_cap, keep) {
        // SAFETY: integer arguments only, no memory is passed; it changes
        // our own bounding set.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if r < 0 && Errno::last() != Errno::EINVAL {
            return Err(Errno::last())
                .with_context(|| format!("dropping capability {cap} from the bounding set"));
        }
    }
    // Without no_new_privs the kernel lets only a holder of CAP_SYS_ADMIN
    // (in our user namespace) install a filter: now, before the capset
    // below gives it up (runc's order). The filter must then allow the
    // rest of the set-up, which the default profile does.
    if !process.security.no_new_privs {
        install_seccomp(process)?;
    }
    let gid_map = std::fs::read_to_string("/proc/self/gid_map").unwrap_or_default();
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let groups: Vec<Gid> = process
        .additional_gids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    match nix::unistd::setgroups(&groups) {
        // setgroups is denied in a single-mapping namespace.
        Ok(()) | Err(Errno::EPERM) => {}
        Err(e) => {
            let hint = process
                .additional_gids
                .iter()
                .find_map(|g| unmapped_hint("gid", *g, &gid_map))
                .unwrap_or_default();
            bail!(
                "setting the supplementary groups {:?}: {e}{hint}",
                process.additional_gids
            );
        }
    }
    let gid = Gid::from_raw(process.gid);
    if let Err(e) = nix::unistd::setresgid(gid, gid, gid) {
        let hint = unmapped_hint("gid", process.gid, &gid_map).unwrap_or_default();
        bail!("setting gid {}: {e}{hint}", process.gid);
    }
    capset(cap_data(keep, keep, 0)).context("capset")?;
    let uid = Uid::from_raw(process.uid);
    // From uid 0 to another uid the kernel clears the permitted and
    // effective sets itself (no SECBIT_KEEP_CAPS), as exec would.
    if let Err(e) = nix::unistd::setresuid(uid, uid, uid) {
        let hint = unmapped_hint("uid", process.uid, &uid_map).unwrap_or_default();
        bail!("setting uid {}: {e}{hint}", process.uid);
    }
    // SAFETY: integer arguments only, no memory is passed; it changes our
    // own ambient set.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    Errno::result(r).context("clearing the ambient capabilities")?;
    if process.security.no_new_privs {
        nix::sys::prctl::set_no_new_privs()
            .context("setting no_new_privs (allowPrivilegeEscalation: false)")?;
    }
    Ok(())
}

/// With no_new_privs, the seccomp filters go in as the last step before
/// exec (call it right before); without, `switch_user` installed them.
pub(super) fn seccomp_last(process: &Process) -> Result<()> {
    if process.security.no_new_privs {
        install_seccomp(process)?;
    }
    Ok(())
}

fn install_seccomp(process: &Process) -> Result<()> {
    crate::seccomp::install(&process.seccomp).context(
        "installing the seccomp filter (the kernel refused it; seccompProfile: {type: \
         Unconfined} runs without one)",
    )
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn capability_masks() {
        // podman's CapBnd with its default set.
        let keep = cap_mask(&[0, 1, 3, 4, 5, 6, 7, 8, 10, 18, 31]);
        assert_eq!(keep, 0x8004_05fb);
        let drops = caps_to_drop(40, keep);
        assert_eq!(drops.len(), 41 - 11);
        assert!(drops.contains(&21) && !drops.contains(&31) && drops.contains(&40));
        let data = cap_data(keep | 1 << 38, keep, 0);
        assert_eq!(data[0].effective, 0x8004_05fb);
        assert_eq!(data[1].effective, 1 << 6);
        assert_eq!(data[1].permitted, 0);
        assert_eq!(data[0].inheritable, 0);
    }
}
