//! uid/gid maps for the holder's user namespace: uid 0 ↦ the caller, 1..N ↦
//! the caller's /etc/subuid range (written by the setuid `newuidmap`), or a
//! single mapping when the caller has no range; and reading such maps.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// One `name:start:count` line of /etc/subuid or /etc/subgid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubRange {
    pub start: u32,
    pub count: u32,
}

/// The first range of `user` (matched by name or by numeric id), as shadow's
/// tools pick it.
pub fn parse_subid(text: &str, user: &str, id: u32) -> Option<SubRange> {
    text.lines().find_map(|line| {
        let mut parts = line.trim().split(':');
        let (owner, start, count) = (parts.next()?, parts.next()?, parts.next()?);
        if owner != user && owner.parse::<u32>().ok() != Some(id) {
            return None;
        }
        let range = SubRange {
            start: start.trim().parse().ok()?,
            count: count.trim().parse().ok()?,
        };
        (range.count > 0).then_some(range)
    })
}

/// The caller's ranges, or `None` when either file gives none.
pub fn caller_ranges() -> Option<(SubRange, SubRange)> {
    let uid = nix::unistd::getuid();
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let u = parse_subid(&read("/etc/subuid"), &name, uid.as_raw())?;
    // subgid(5) names its owners as subuid(5) does: login name or *uid*.
    let g = parse_subid(&read("/etc/subgid"), &name, uid.as_raw())?;
    Some((u, g))
}

/// Writes the maps of the user namespace of `pid`: the caller's ranges, or
/// a single mapping of the caller's own ids without them.
pub fn write_maps(pid: i32, ranges: Option<(SubRange, SubRange)>) -> Result<()> {
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    match ranges {
        Some((u, g)) => {
            run_helper("newuidmap", pid, uid, u)?;
            run_helper("newgidmap", pid, gid, g)?;
        }
        None => {
            let proc_dir = format!("/proc/{pid}");
            let write = |file: &str, text: String| {
                std::fs::write(Path::new(&proc_dir).join(file), text)
                    .with_context(|| format!("writing {proc_dir}/{file}"))
            };
            // The kernel requires setgroups to be denied before an
            // unprivileged process writes gid_map.
            write("setgroups", "deny".into())?;
            write("uid_map", format!("0 {uid} 1\n"))?;
            write("gid_map", format!("0 {gid} 1\n"))?;
        }
    }
    Ok(())
}

/// The `(first id, count)` of each line of a /proc/PID/{u,g}id_map, as seen
/// inside the namespace.
fn map_ranges(map: &str) -> impl Iterator<Item = (u64, u64)> + '_ {
    map.lines().filter_map(|line| {
        let f: Vec<u64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        (f.len() == 3).then(|| (f[0], f[2]))
    })
}

/// True when `id` is inside one of the ranges of a /proc/PID/{u,g}id_map.
pub fn id_mapped(map: &str, id: u32) -> bool {
    map_ranges(map).any(|(first, count)| u64::from(id) >= first && u64::from(id) < first + count)
}

/// The lowest and highest id `map` maps (inside the namespace): what
/// `net.ipv4.ping_group_range` may span in a pod.
pub fn mapped_span(map: &str) -> Option<(u32, u32)> {
    let low = map_ranges(map).map(|(first, _)| first).min()?;
    let high = map_ranges(map)
        .map(|(first, count)| first + count.max(1) - 1)
        .max()?;
    Some((low as u32, high.min(u64::from(u32::MAX)) as u32))
}

/// When `id` is outside `map`, says which ids are mapped and what to do.
pub fn unmapped_hint(what: &str, id: u32, map: &str) -> Option<String> {
    if id_mapped(map, id) {
        return None;
    }
    let ranges: Vec<String> = map_ranges(map)
        .map(|(first, count)| match count {
            1 => first.to_string(),
            n => format!("{first}-{}", first + n - 1),
        })
        .collect();
    Some(format!(
        "; only {what}s {} are mapped in minipod's user namespace: use one of those, or give \
         your user a larger range in /etc/subuid and /etc/subgid and restart minipod's holder",
        ranges.join(", ")
    ))
}

fn run_helper(tool: &str, pid: i32, own: u32, range: SubRange) -> Result<()> {
    let args = [
        pid.to_string(),
        "0".into(),
        own.to_string(),
        "1".into(),
        "1".into(),
        range.start.to_string(),
        range.count.to_string(),
    ];
    let out = Command::new(tool).args(&args).output().map_err(|e| {
        anyhow::anyhow!(
            "cannot run {tool}: {e}; install the `uidmap` package (apt-get install uidmap)"
        )
    })?;
    if !out.status.success() {
        bail!(
            "{tool} {} failed ({}): {}; check the ranges for your user in /etc/subuid and /etc/subgid",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_span_covers_every_range() {
        let map = "         0       1000          1\n         1     100000      65536\n";
        assert_eq!(mapped_span(map), Some((0, 65536)));
        assert_eq!(
            mapped_span("         0       1000          1\n"),
            Some((0, 0))
        );
        assert_eq!(mapped_span(""), None);
    }

    #[test]
    fn finds_range_by_name_or_id() {
        let text = "alice:100000:65536\n# comment\n1001:200000:1000\nbob:0:0\n";
        assert_eq!(
            parse_subid(text, "alice", 1000),
            Some(SubRange {
                start: 100000,
                count: 65536
            })
        );
        assert_eq!(
            parse_subid(text, "carol", 1001),
            Some(SubRange {
                start: 200000,
                count: 1000
            })
        );
        assert_eq!(
            parse_subid(text, "bob", 7),
            None,
            "an empty range is no range"
        );
        assert_eq!(parse_subid(text, "dave", 9), None);
    }

    #[test]
    fn id_maps() {
        let single = "         0       1000          1\n";
        assert!(id_mapped(single, 0));
        assert!(!id_mapped(single, 5));
        let ranged = "0 1000 1\n1 100000 65536\n";
        assert!(id_mapped(ranged, 5));
        assert!(id_mapped(ranged, 65536));
        assert!(!id_mapped(ranged, 65537));
        assert_eq!(unmapped_hint("uid", 5, ranged), None);
        let hint = unmapped_hint("uid", 70000, ranged).unwrap();
        assert!(
            hint.starts_with("; only uids 0, 1-65536 are mapped"),
            "{hint}"
        );
    }
}
