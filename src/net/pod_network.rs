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
        let listeners = portfwd::bind(ports)?;
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
            host_ifname: setup::host_ifname(&format!("{pod}/{owner}")),
            listeners,
            lease: Some(ipam),
        })
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

impl Drop for PodNetwork {
    /// Best effort when `release` was not called (an error path): the
    /// lease of a dead owner is reclaimed by the next allocation anyway.
    fn drop(&mut self) {
        if let Some(ipam) = self.lease.take() {
            let _ = ipam.release(&self.pod);
        }
    }
}
