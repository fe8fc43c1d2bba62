//! The one way the Service table and its forwarding rules change: `sync`,
//! under `services.lock`, reads every pod's `state.json`, recomputes the
//! endpoints (`net::services`), writes `services.json` and replaces the
//! nftables table in the holder's uplink netns. `run` and `down` call it
//! with the Services they add or remove; `rm`, `stop` and each supervisor
//! (when its pod's address, phase or readiness changed) with none.
//!
//! Used by the supervisor: only `state`, `net`, `userns::holder` and `sys`.

use std::os::fd::AsFd;

use anyhow::{Context, Result};

use crate::net::service_table::{self, ServiceEntry, ServiceTable};
use crate::net::services::{self, PodFacts, WantIp};
use crate::paths::Roots;
use crate::runtime::state::{self, PodPaths, PodState};
use crate::sys::lock::{FileLock, Mode};

/// The environment variable that picks the service range.
pub const SUBNET_ENV: &str = "MINIPOD_SERVICE_SUBNET";

/// What a sync changes besides the endpoints.
#[derive(Debug)]
pub enum Change {
    Nothing,
    /// Services a `run` registers.
    Register(Vec<(ServiceEntry, WantIp)>),
    /// The Services read from this file (`down FILE`).
    RemoveSource(String),
    /// These Services (namespace, name) if read from stdin (`down -`).
    RemoveNamed(Vec<(String, String)>),
}

/// The service range: `MINIPOD_SERVICE_SUBNET`, else the default.
pub fn service_subnet() -> Result<(std::net::Ipv4Addr, u8)> {
    let text = std::env::var(SUBNET_ENV)
        .unwrap_or_else(|_| service_table::DEFAULT_SERVICE_SUBNET.to_string());
    services::parse_subnet(&text).map_err(|e| anyhow::anyhow!("{SUBNET_ENV}: {e}"))
}

/// What the table needs of one pod.
pub fn facts(st: &PodState, phase: state::Phase) -> PodFacts {
    // A pod being stopped leaves its Services at once, as one being deleted.
    let running = phase == state::Phase::Running && !st.terminating;
    PodFacts {
        namespace: st.namespace.clone(),
        name: st.name.clone(),
        ip: st.pod_ip.clone(),
        ready: running && state::is_ready(st, phase),
        running,
        labels: st.labels.clone(),
        hostname: st.hostname.clone(),
        subdomain: st.subdomain.clone(),
        named_ports: st
            .named_ports
            .iter()
            .map(|p| (p.name.clone(), p.protocol.clone(), p.port))
            .collect(),
    }
}

/// Recomputes the table (with `change`) and the rules. With nothing to
/// change and no table yet, it does nothing: pods without Services cost
/// nothing. Returns the table written and, for `RemoveSource`, the names
/// removed. Call inside the user namespace.
pub fn sync(roots: &Roots, change: Change) -> Result<(ServiceTable, Vec<String>)> {
    let file = ServiceTable::path(&roots.run);
    if matches!(change, Change::Nothing) && !file.exists() {
        return Ok((ServiceTable::default(), Vec::new()));
    }
    let _lock = FileLock::acquire(&roots.run.join(service_table::LOCK), Mode::Exclusive)
        .context("locking the Service table")?;
    let mut table = ServiceTable::load(&roots.run)?;
    let before = table.clone();
    let registering = matches!(change, Change::Register(_));
    let mut removed = Vec::new();
    match change {
        Change::Nothing => {}
        Change::Register(wanted) => {
            table = services::register(
                table,
                wanted,
                service_subnet()?,
                crate::net::portfwd::unprivileged_port_start(),
            )
            .map_err(anyhow::Error::msg)?;
        }
        Change::RemoveSource(source) => removed = services::remove_source(&mut table, &source),
        Change::RemoveNamed(names) => removed = services::remove_named(&mut table, &names),
    }
    let pods: Vec<PodFacts> = state::list_pods(roots)
        .iter()
        .filter_map(|name| {
            let paths = PodPaths::new(roots, name);
            let st = state::observed(&paths, paths.read_state().ok()?);
            let phase = st.phase;
            Some(facts(&st, phase))
        })
        .collect();
    let table = services::with_endpoints(table, &pods);
    table.store(&roots.run)?;
    apply_rules(roots, &table)?;
    // A holder that cannot be asked fails it as a port that cannot be
    // bound does: a run's Services are not kept half-published.
    let failed = publish(roots, &before, &table).unwrap_or_else(|e| vec![format!("{e:#}")]);
    if !failed.is_empty() {
        if registering {
            // Nothing of this run's Services stays: the table, the rules
            // and the host ports go back to what they were.
            let before = services::with_endpoints(before, &pods);
            before.store(&roots.run)?;
            apply_rules(roots, &before)?;
            publish(roots, &table, &before)?;
            anyhow::bail!("{}", failed.join("\n"));
        }
        for f in failed {
            tracing::warn!("{f}");
        }
    }
    Ok((table, removed))
}

/// Has the holder publish the host ports of `table` (NodePort and
/// LoadBalancer Services), when it or `before` has any; what failed. The
/// holder is asked each time (not only on a change): a new holder, after
/// one died, publishes them again at the next sync. No holder: nothing
/// runs to forward to, and a holder started later is asked then.
fn publish(roots: &Roots, before: &ServiceTable, table: &ServiceTable) -> Result<Vec<String>> {
    let wanted = services::host_forwards(table);
    if wanted.is_empty() && services::host_forwards(before).is_empty() {
        return Ok(Vec::new());
    }
    if crate::userns::holder::read_live(roots).is_none() {
        return Ok(Vec::new());
    }
    crate::net::node_ports::request(&roots.holder_socket(), &wanted)
}

/// Replaces the rules in the holder's uplink netns, from a thread of our
/// own: a netns switch moves only the calling thread, and this one ends
/// there (the caller may not be able to come back to the host's netns).
/// No holder: no netns, no pod, nothing to forward.
fn apply_rules(roots: &Roots, table: &ServiceTable) -> Result<()> {
    let Some(holder) = crate::userns::holder::read_live(roots) else {
        return Ok(());
    };
    let forwards = services::forwards(table);
    let uplink = std::fs::File::open(crate::sys::ns::Kind::Network.path(holder.pid))
        .context("opening the holder's network namespace")?;
    std::thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            nix::sched::setns(uplink.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .context("joining the holder's network namespace")?;
            // A pod's packet to a virtual IP is routed back out of the
            // bridge it came in by: no ICMP redirect may tell the pod to
            // send to the endpoint directly (past the DNAT). Per netns,
            // opened from this thread's; best effort.
            for dev in ["all", crate::net::setup::BRIDGE] {
                let _ =
                    std::fs::write(format!("/proc/sys/net/ipv4/conf/{dev}/send_redirects"), "0");
            }
            crate::net::nftables::replace_service_rules(&forwards)
        })
        .join()
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "the thread writing the Services' rules died"
            ))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_being_stopped_or_not_running_is_no_endpoint() {
        let mut st: PodState = serde_json::from_value(serde_json::json!({
            "name": "p", "namespace": "default", "phase": "Running", "message": null,
            "supervisor_pid": 1, "pause_pid": 2, "pod_ip": "10.88.0.2", "created": "x",
            "started": null, "finished": null, "exit_code": null, "detached": true,
            "grace_seconds": 30, "init_containers": [], "containers": [],
            "labels": {"app": "web"},
            "named_ports": [{"name": "http", "protocol": "TCP", "port": 8080}]
        }))
        .unwrap();
        let f = facts(&st, state::Phase::Running);
        assert!(f.running && f.ready, "{f:?}");
        assert_eq!(
            f.named_ports,
            [("http".to_string(), "TCP".to_string(), 8080)]
        );
        assert!(!facts(&st, state::Phase::Succeeded).running);
        st.terminating = true;
        let f = facts(&st, state::Phase::Running);
        assert!(!f.running && !f.ready);
    }
}
