//! A pod's place on the network, owned by its supervisor: its address
//! (leased from `ipam.json`), its hostPort listeners, and the name of the
//! host end of its veth. The pause creates the veth (`setup::attach_pod`),
//! and the kernel removes it with the pod's netns; the lease and the
//! listeners go when this is dropped.

use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;

use super::ipam::{Ipam, Subnet};
use super::portfwd::{self, Listener, PodSockets, Published};
use super::setup;

/// The bridge's side: the holder's netns, and the subnet it serves.
pub struct Uplink {
    /// The holder, whose netns holds the bridge.
    pub pid: i32,
    pub subnet: Subnet,
}

pub struct PodNetwork {
    pod: String,
    pub ip: Ipv4Addr,
    pub subnet: Subnet,
    pub uplink_pid: i32,
    /// The host end of the pod's veth, in the uplink netns.
    pub host_ifname: String,
    listeners: Vec<Listener>,
    lease: Option<Ipam>,
}

impl PodNetwork {
    /// Binds the pod's hostPorts (a busy one fails here, before anything of
    /// the pod starts) and leases it an address. `run` is the run root,
    /// `owner` the supervisor's pid (a dead owner's lease is reclaimed).
    pub fn reserve(
        run: &Path,
        pod: &str,
        owner: i32,
        uplink: Uplink,
        ports: &[Published],
    ) -> Result<PodNetwork> {
        let listeners = portfwd::bind(ports, "hostPort")?;
        let ipam = Ipam::new(run, uplink.subnet);
        let ip = ipam.allocate(pod, owner)?;
        Ok(PodNetwork {
            pod: pod.to_string(),
            ip,
            subnet: uplink.subnet,
            uplink_pid: uplink.pid,
            // Unique per incarnation: the kernel removes a stopped pod's
            // veth a moment after its netns dies, and a pod run again at
            // once must not collide with it.
            host_ifname: host_ifname(pod, owner),
            listeners,
            lease: Some(ipam),
        })
    }

    /// The hostPorts as bound (a free port chosen at bind time included).
    pub fn published(&self) -> Vec<Published> {
        self.listeners
            .iter()
            .map(|l| l.published().clone())
            .collect()
    }

    /// Whether the pod publishes hostPorts: its pause must then serve
    /// sockets of the pod's netns.
    pub fn has_host_ports(&self) -> bool {
        !self.listeners.is_empty()
    }

    /// Starts forwarding the hostPorts to the pod, through the pause's
    /// socket service on `sockets`; returns that service for the pod's
    /// probes.
    pub fn serve_sockets(&mut self, sockets: UnixStream) -> Arc<PodSockets> {
        let listeners = std::mem::take(&mut self.listeners);
        let sockets = Arc::new(PodSockets::new(sockets));
        portfwd::serve(listeners, sockets.clone(), self.ip);
        sockets
    }
}

impl PodNetwork {
    /// Gives the pod's address back (its listeners close with it).
    pub fn release(mut self) -> Result<()> {
        match self.lease.take() {
            Some(ipam) => ipam.release(&self.pod).map(|_| ()),
            None => Ok(()),
        }
    }
}

/// The host end of the veth of pod `pod` whose supervisor is `owner`.
pub fn host_ifname(pod: &str, owner: i32) -> String {
    setup::host_ifname(&format!("{pod}/{owner}"))
}

/// What a pod whose processes are all gone may have left on the network:
/// its lease (its supervisor died without giving it back) and the host end
/// of its veth (the kernel removes it only a moment after the pod's netns
/// dies). `rm`, `stop` and `down` call this under the pod's lock so they
/// return with both gone. `uplink_pid` is the live holder's, when there is
/// one: the calling process joins its netns for good (call it inside the
/// user namespace, and only when it needs the host's network no more).
/// `lease`: whether the caller holds the pod's lock (else a new pod of the
/// name may own the lease; the veth's name is unique per supervisor).
pub fn release_leftovers(
    run: &Path,
    pod: &str,
    lease: bool,
    host_ifname: Option<&str>,
    uplink_pid: Option<i32>,
) -> Result<()> {
    use crate::sys::ns::{Kind, Namespace};
    if lease {
        super::ipam::release_stale(run, pod)?;
    }
    let (Some(ifname), Some(pid)) = (host_ifname, uplink_pid) else {
        return Ok(());
    };
    let uplink = Namespace::open(pid, Kind::Network)
        .map_err(|e| anyhow::anyhow!("opening the holder's network namespace: {e}"))?;
    if !uplink.is_current()? {
        uplink
            .join()
            .map_err(|e| anyhow::anyhow!("joining the holder's network namespace: {e}"))?;
    }
    let mut nl = super::netlink::Netlink::open()?;
    setup::detach_pod(&mut nl, ifname)?;
    Ok(())
}

impl Drop for PodNetwork {
    /// Best effort when `release` was not called (an error path): the
    /// lease of a dead owner is reclaimed by the next allocation anyway.
    fn drop(&mut self) {
        if let Some(ipam) = self.lease.take() {
            let _ = ipam.release(&self.pod);
        }
    }
}
