//! The pod network sequence, as the runtime calls it from a single-threaded
//! helper inside the holder's user namespace, sitting in the uplink netns:
//!
//! 1. `ensure_bridge`: the bridge `minipod0` with the gateway address, up;
//! 2. `attach_pod`: a veth pair whose host end `mp<hash>` is a port of the
//!    bridge and whose peer `eth0` is created directly in the pod's netns,
//!    then, through a second netlink socket opened inside the pod's netns
//!    (`Netlink::open_in`: the calling thread joins the pod's netns just long
//!    enough to create the socket, then returns), the pod side: address,
//!    `eth0` up, `lo` up, default route via the gateway. A failed step after
//!    the veth exists deletes it again (netavark's setup pattern), so a
//!    failed attach leaves nothing behind;
//! 3. `detach_pod`: deletes the host end; the kernel deletes `eth0` with it.
//!    When the pause process dies its netns goes, and the veth with it, so
//!    detaching is only needed for a pod that outlives its network.

use std::net::Ipv4Addr;
use std::os::fd::BorrowedFd;

use anyhow::{Context, Result};

use super::ipam::Ipv4Net;
use super::netlink::{Netlink, VethRequest};

/// The bridge in the uplink netns.
pub const BRIDGE: &str = "minipod0";
/// The pod's end of its veth pair.
pub const POD_IFNAME: &str = "eth0";
pub const DEFAULT_MTU: u32 = 1500;

/// The host end of a pod's veth: `mp` and 12 hex digits of a hash of `key`
/// (the pod's name, or any id unique among running pods): 14 characters,
/// within IFNAMSIZ - 1 = 15.
pub fn host_ifname(key: &str) -> String {
    // FNV-1a, 64 bits: stable across releases, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("mp{:012x}", h >> 16)
}

/// Creates the bridge if it is missing, gives it the gateway address if it
/// lacks it, and sets it up. Safe to call again, and by two processes at
/// once. Returns the bridge's link index.
pub fn ensure_bridge(nl: &mut Netlink, name: &str, gateway: Ipv4Net, mtu: u32) -> Result<u32> {
    if nl.link_index(name)?.is_none() {
        match nl.create_bridge(name, mtu) {
            Ok(()) => {}
            // Somebody else created it meanwhile.
            Err(e) if e.errno() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let index = nl.require_link(name)?;
    let want = (gateway.addr(), gateway.prefix());
    if !nl.list_addresses(index)?.contains(&want) {
        match nl.add_address(index, gateway.addr(), gateway.prefix()) {
            Ok(()) => {}
            Err(e) if e.errno() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
    }
    nl.set_up(index)?;
    Ok(index)
}

/// What `attach_pod` needs to know.
#[derive(Debug, Clone, Copy)]
pub struct Attachment<'a> {
    /// The bridge the host end joins (it must exist: `ensure_bridge`).
    pub bridge: &'a str,
    /// The host end's name (`host_ifname`).
    pub host_ifname: &'a str,
    /// An fd of the pod's netns (`/proc/<pause>/ns/net`).
    pub pod_netns: BorrowedFd<'a>,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mtu: u32,
}

/// Connects a pod's netns to the bridge; see the module doc for the steps.
/// `uplink` is a socket in the bridge's netns.
pub fn attach_pod(uplink: &mut Netlink, a: &Attachment<'_>) -> Result<()> {
    let bridge = uplink
        .require_link(a.bridge)
        .context("the pod bridge is missing")?;
    uplink.create_veth(&VethRequest {
        host_name: a.host_ifname,
        master: Some(bridge),
        peer_name: POD_IFNAME,
        peer_netns: a.pod_netns,
        mtu: a.mtu,
    })?;
    let configured = (|| -> Result<()> {
        let host = uplink.require_link(a.host_ifname)?;
        uplink.set_up(host)?;
        let mut pod = Netlink::open_in(a.pod_netns)
            .context("opening a netlink socket in the pod's network namespace")?;
        configure_pod_side(&mut pod, a).context("in the pod's network namespace")
    })();
    if let Err(err) = configured {
        if let Err(undo) = detach_pod(uplink, a.host_ifname) {
            tracing::warn!(
                "removing veth {} after a failed attach: {undo:#}",
                a.host_ifname
            );
        }
        return Err(err.context(format!(
            "connecting the pod to bridge {} through {}",
            a.bridge, a.host_ifname
        )));
    }
    Ok(())
}

fn configure_pod_side(pod: &mut Netlink, a: &Attachment<'_>) -> Result<()> {
    let eth0 = pod.require_link(POD_IFNAME)?;
    pod.add_address(eth0, a.ip, a.prefix)?;
    pod.set_up(eth0)?;
    let lo = pod.require_link("lo")?;
    pod.set_up(lo)?;
    pod.add_default_route(a.gateway, Some(eth0))?;
    Ok(())
}

/// Deletes the host end of a pod's veth (the pod's `eth0` goes with it).
/// Returns false when it was gone already (its netns died with the pod).
pub fn detach_pod(uplink: &mut Netlink, host_ifname: &str) -> Result<bool> {
    let Some(index) = uplink.link_index(host_ifname)? else {
        return Ok(false);
    };
    match uplink.delete_link(index) {
        Ok(()) => Ok(true),
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_fit_ifnamsiz_and_are_stable() {
        let a = host_ifname("web");
        assert_eq!(a.len(), 14);
        assert!(a.starts_with("mp"));
        assert!(a[2..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, host_ifname("web"));
        assert_ne!(a, host_ifname("web2"));
        assert_eq!(host_ifname(&"x".repeat(300)).len(), 14);
        // Pinned: the name must not change between releases, or a newer
        // minipod would not find an older one's veth.
        assert_eq!(
            host_ifname(""),
            format!("mp{:012x}", 0xcbf2_9ce4_8422_2325u64 >> 16)
        );
    }
}
