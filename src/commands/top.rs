//! `minipod top POD`: the processes of a pod's running containers, as
//! podman's `top` lists a container's: each process belongs to the
//! container whose mount namespace it is in (a container's own, which
//! `minipod exec` joins too) if it is in its PID namespace too (the
//! container's link shares the mount namespace, not the PID one).
//!
//! `read_process` and `processes` read /proc (inside the user namespace, so
//! processes of subordinate ids can be read); `rows` and the printers are
//! pure.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::paths::Roots;
use crate::runtime::state;
use crate::userns;

/// One process, as /proc shows it from the user namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    /// Its pid in minipod's (the host's) PID namespace.
    pub host_pid: i32,
    /// Its pid in its innermost PID namespace (the container's).
    pub pid: i32,
    /// Its parent's pid in minipod's PID namespace.
    pub host_ppid: i32,
    pub uid: u32,
    /// Inodes of its mount and PID namespaces.
    pub mnt_ns: u64,
    pub pid_ns: u64,
    /// Seconds since it started, and of CPU used.
    pub elapsed: u64,
    pub cpu: u64,
    pub command: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub container: String,
    pub user: String,
    pub pid: i32,
    #[serde(rename = "hostPid")]
    pub host_pid: i32,
    pub ppid: i32,
    pub elapsed: u64,
    #[serde(rename = "cpuSeconds")]
    pub cpu: u64,
    pub command: String,
}

/// A running container as `top` needs it: its name, its main process's
/// mount and PID namespaces, and its uid → user names.
pub struct Container {
    pub name: String,
    pub mnt_ns: u64,
    pub pid_ns: u64,
    pub users: BTreeMap<u32, String>,
}

/// The rows of `top`: each process in the mount and PID namespaces of a
/// running container, by container in the pod's order, then by pid.
pub fn rows(containers: &[Container], processes: &[Process]) -> Vec<Row> {
    let mut out = Vec::new();
    for Container {
        name,
        mnt_ns,
        pid_ns,
        users,
    } in containers
    {
        let mut mine: Vec<&Process> = processes
            .iter()
            .filter(|p| p.mnt_ns == *mnt_ns && p.pid_ns == *pid_ns)
            .collect();
        mine.sort_by_key(|p| p.pid);
        // A parent as the container sees it: 0 when it is outside (the
        // link of the container's PID 1, `minipod exec`).
        let inner: BTreeMap<i32, i32> = mine.iter().map(|p| (p.host_pid, p.pid)).collect();
        out.extend(mine.into_iter().map(|p| {
            Row {
                container: name.clone(),
                user: users
                    .get(&p.uid)
                    .cloned()
                    .unwrap_or_else(|| p.uid.to_string()),
                pid: p.pid,
                host_pid: p.host_pid,
                ppid: inner.get(&p.host_ppid).copied().unwrap_or(0),
                elapsed: p.elapsed,
                cpu: p.cpu,
                command: p.command.clone(),
            }
        }));
    }
    out
}

/// `[[hh:]mm:]ss` as ps shows a duration.
fn clock(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

/// uid → name from an /etc/passwd's text.
fn users(passwd: &str) -> BTreeMap<u32, String> {
    passwd
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            Some((uid, name.to_string()))
        })
        .collect()
}

fn ns_inode(pid: i32, kind: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|m| m.ino())
}

/// One process from /proc, or None when it is gone or not readable.
fn read_process(pid: i32, ticks: u64, uptime: f64) -> Option<Process> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let uid = field("Uid:")?.split_whitespace().next()?.parse().ok()?;
    let nspid = field("NSpid:")?.split_whitespace().last()?.parse().ok()?;
    let host_ppid = field("PPid:")?.parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split(' ').collect();
    // Fields 14, 15 (utime, stime) and 22 (starttime), counted from 1 with
    // pid and comm before `rest`.
    let cpu_ticks: u64 =
        fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let started: u64 = fields.get(19)?.parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let command = if cmdline.is_empty() {
        format!("[{}]", field("Name:").unwrap_or(""))
    } else {
        String::from_utf8_lossy(cmdline.strip_suffix(b"\0").unwrap_or(&cmdline)).replace('\0', " ")
    };
    Some(Process {
        host_pid: pid,
        pid: nspid,
        host_ppid,
        uid,
        mnt_ns: ns_inode(pid, "mnt")?,
        pid_ns: ns_inode(pid, "pid")?,
        elapsed: (uptime - started as f64 / ticks as f64).max(0.0) as u64,
        cpu: cpu_ticks / ticks,
        command,
    })
}

fn processes() -> Vec<Process> {
    // SAFETY: sysconf takes an integer.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|u| u.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| read_process(pid, ticks, uptime))
        .collect()
}

pub fn top(roots: &Roots, name: &str, format: &str) -> Result<ExitCode> {
    if !matches!(format, "table" | "json") {
        bail!("--format {format:?}: use table or json");
    }
    let (paths, st) = state::find_pod(roots, name)?;
    let st = state::observed(&paths, st);
    let running: Vec<_> = st
        .init_containers
        .iter()
        .chain(&st.containers)
        .filter(|c| c.state.is_running() && c.pid > 0)
        .collect();
    if running.is_empty() {
        bail!("pod {name} has no running container; `minipod ps -a` shows its state");
    }
    // Processes of subordinate ids are readable as root of the namespace.
    userns::enter(roots)?;
    let containers: Vec<_> = running
        .iter()
        .filter_map(|c| {
            let passwd = std::fs::read_to_string(format!("/proc/{}/root/etc/passwd", c.pid))
                .unwrap_or_default();
            Some(Container {
                name: c.name.clone(),
                mnt_ns: ns_inode(c.pid, "mnt")?,
                pid_ns: ns_inode(c.pid, "pid")?,
                users: users(&passwd),
            })
        })
        .collect();
    let rows = rows(&containers, &processes());
    if format == "json" {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<16} {:<10} {:>7} {:>7} {:>7} {:>9} {:>8} COMMAND",
        "CONTAINER", "USER", "PID", "PPID", "HOSTPID", "ELAPSED", "TIME"
    );
    for r in rows {
        println!(
            "{:<16} {:<10} {:>7} {:>7} {:>7} {:>9} {:>8} {}",
            r.container,
            r.user,
            r.pid,
            r.ppid,
            r.host_pid,
            clock(r.elapsed),
            clock(r.cpu),
            r.command
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(host_pid: i32, pid: i32, mnt_ns: u64, uid: u32) -> Process {
        Process {
            host_pid,
            pid,
            host_ppid: 0,
            uid,
            mnt_ns,
            pid_ns: mnt_ns + 100,
            elapsed: 61,
            cpu: 0,
            command: format!("cmd{host_pid}"),
        }
    }

    #[test]
    fn processes_go_to_the_container_of_their_mount_namespace() {
        let named = users("root:x:0:0::/root:/bin/sh\nweb:x:1000:1000::/:/bin/sh\n");
        let container = |name: &str, ns: u64, users: &BTreeMap<u32, String>| Container {
            name: name.into(),
            mnt_ns: ns,
            pid_ns: ns + 100,
            users: users.clone(),
        };
        let containers = vec![
            container("web", 7, &named),
            container("db", 8, &BTreeMap::new()),
        ];
        let mut child = process(500, 3, 7, 1000);
        child.host_ppid = 400;
        // web's link: its mount namespace, the host's PID namespace.
        let mut link = process(399, 399, 7, 0);
        link.pid_ns = 1;
        let procs = vec![
            link,
            child,
            process(400, 1, 7, 0),
            process(600, 1, 8, 999),
            // The pause, another pod: in no container's.
            process(300, 300, 5, 0),
        ];
        let got: Vec<(String, i32, i32, String)> = rows(&containers, &procs)
            .into_iter()
            .map(|r| (r.container, r.host_pid, r.ppid, r.user))
            .collect();
        assert_eq!(
            got,
            [
                ("web".into(), 400, 0, "root".into()),
                ("web".into(), 500, 1, "web".into()),
                ("db".into(), 600, 0, "999".into()),
            ]
        );
    }

    #[test]
    fn durations_read_as_ps_writes_them() {
        assert_eq!(clock(5), "00:05");
        assert_eq!(clock(61), "01:01");
        assert_eq!(clock(3 * 3600 + 62), "3:01:02");
    }
}
