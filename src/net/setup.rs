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
    format!("mp{:012x}", crate::sys::hash::fnv1a64(key) >> 16)
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
        // Hairpin: a pod reaching a Service that picks the pod itself.
        // Only Services need it: a kernel refusing it costs the pod nothing
        // else.
        if let Err(e) = uplink.set_hairpin(host) {
            tracing::warn!("{e:#}: a pod will not reach a Service that picks the pod itself");
        }
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

/// `ip link set lo up` in the netns of `nl`.
pub fn loopback_up(nl: &mut Netlink) -> Result<()> {
    let lo = nl.require_link("lo")?;
    nl.set_up(lo)?;
    Ok(())
}

fn configure_pod_side(pod: &mut Netlink, a: &Attachment<'_>) -> Result<()> {
    let eth0 = pod.require_link(POD_IFNAME)?;
    pod.add_address(eth0, a.ip, a.prefix)?;
    pod.set_up(eth0)?;
    loopback_up(pod)?;
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

    /// Set in the process that `veth_and_bridge_in_real_namespaces` starts.
    const CHILD_ENV: &str = "MINIPOD_NET_TEST_CHILD";

    /// Exit code of the scenario child when the kernel refuses it a user
    /// namespace (the test is then skipped, not failed).
    const NO_USERNS: i32 = 77;

    /// Runs the namespace scenario below in a process of its own (the test
    /// binary, filtered to one test), which forks a single-threaded child
    /// that unshares a user namespace (uid 0 ↦ our uid, as minipod's holder
    /// does) and a network namespace. Works as root and, where unprivileged
    /// user namespaces are allowed, without. Everything it creates lives in
    /// namespaces that vanish with that child.
    #[test]
    fn veth_and_bridge_in_real_namespaces() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "net::setup::tests::namespace_scenario",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("{stderr}");
        if stderr.contains("scenario: skipped") {
            return;
        }
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("1 passed"), "{stdout}");
        assert!(stderr.contains("scenario: all checks passed"), "{stderr}");
    }

    #[test]
    #[ignore = "run by veth_and_bridge_in_real_namespaces, in a process of its own"]
    fn namespace_scenario() {
        use nix::sys::wait::{WaitStatus, waitpid};
        use nix::unistd::{ForkResult, fork};
        if std::env::var_os(CHILD_ENV).is_none() {
            return;
        }
        // SAFETY: the child runs only our scenario and leaves with _exit.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let code = match std::panic::catch_unwind(scenario) {
                    Ok(Ok(())) => 0,
                    Ok(Err(e)) if e.downcast_ref::<NoUserns>().is_some() => {
                        eprintln!("scenario: skipped: {e:#}");
                        NO_USERNS
                    }
                    Ok(Err(e)) => {
                        eprintln!("scenario failed: {e:#}");
                        1
                    }
                    Err(_) => 2,
                };
                // SAFETY: ends the forked child without running the
                // harness's exit handlers.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => match waitpid(child, None).unwrap() {
                WaitStatus::Exited(_, 0 | NO_USERNS) => {}
                other => panic!("the scenario child ended with {other:?}"),
            },
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("no user namespace for this test: {0}")]
    struct NoUserns(nix::errno::Errno);

    /// A new network namespace, kept alive by the returned fd; the calling
    /// thread stays where it was.
    fn new_netns() -> std::fs::File {
        use nix::sched::{CloneFlags, setns, unshare};
        use std::os::fd::AsFd;
        let own = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
        unshare(CloneFlags::CLONE_NEWNET).unwrap();
        let fresh = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
        setns(own.as_fd(), CloneFlags::CLONE_NEWNET).unwrap();
        fresh
    }

    /// As minipod runs: a user namespace (uid 0 ↦ 0 here), an uplink netns
    /// owned by it with the bridge, and two pod netns.
    fn scenario() -> Result<()> {
        use std::io::{Read, Write};
        use std::net::{SocketAddr, TcpListener, TcpStream};
        use std::os::fd::AsFd;
        use std::time::Duration;

        use crate::net::ipam::{Ipam, Subnet};
        use crate::net::netlink::in_netns;
        use nix::sched::{CloneFlags, unshare};

        let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET).map_err(NoUserns)?;
        std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))?;
        std::fs::write("/proc/self/setgroups", "deny")?;
        std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))?;
        let uplink_ns = std::fs::File::open("/proc/thread-self/ns/net")?;
        let pod_a = new_netns();
        let pod_b = new_netns();
        let pod_c = new_netns();

        let subnet = Subnet::default();
        let mut nl = Netlink::open()?;
        let bridge = ensure_bridge(&mut nl, BRIDGE, subnet.gateway_net(), DEFAULT_MTU)?;
        assert_eq!(
            ensure_bridge(&mut nl, BRIDGE, subnet.gateway_net(), DEFAULT_MTU)?,
            bridge,
            "ensure_bridge is idempotent"
        );
        let links = nl.list_links()?;
        let br = links.iter().find(|l| l.name == BRIDGE).unwrap();
        assert_eq!(br.kind.as_deref(), Some("bridge"));
        assert!(br.up);
        assert_eq!(nl.list_addresses(bridge)?, vec![(subnet.gateway(), 16)]);
        eprintln!("scenario: bridge {BRIDGE} #{bridge} up with 10.88.0.1/16 (twice)");

        let leases = tempfile::tempdir()?;
        let ipam = Ipam::new(leases.path(), subnet);
        let me = std::process::id() as i32;
        let mut attach = |name: &str, netns: &std::fs::File| -> Result<(String, Ipv4Addr)> {
            let ip = ipam.allocate(name, me)?;
            let host = host_ifname(name);
            attach_pod(
                &mut nl,
                &Attachment {
                    bridge: BRIDGE,
                    host_ifname: &host,
                    pod_netns: netns.as_fd(),
                    ip,
                    prefix: subnet.prefix(),
                    gateway: subnet.gateway(),
                    mtu: DEFAULT_MTU,
                },
            )?;
            Ok((host, ip))
        };
        let (host_a, ip_a) = attach("a", &pod_a)?;
        let (host_b, ip_b) = attach("b", &pod_b)?;
        assert_eq!((ip_a, ip_b), ("10.88.0.2".parse()?, "10.88.0.3".parse()?));

        // Uplink side: the host end is a port of the bridge, up.
        let host = nl
            .list_links()?
            .into_iter()
            .find(|l| l.name == host_a)
            .unwrap();
        assert_eq!(host.master, Some(bridge));
        assert!(host.up);
        assert_eq!(host.kind.as_deref(), Some("veth"));

        // Pod side, read back over a socket opened in the pod's netns.
        let mut pod = Netlink::open_in(pod_a.as_fd())?;
        let eth0 = pod.require_link(POD_IFNAME)?;
        let pod_links = pod.list_links()?;
        let names: Vec<&str> = pod_links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["lo", "eth0"]);
        assert!(pod_links.iter().all(|l| l.up), "{pod_links:?}");
        assert_eq!(pod.list_addresses(eth0)?, vec![(ip_a, 16)]);
        let routes = pod.list_routes()?;
        let default = routes
            .iter()
            .find(|r| r.prefix == 0)
            .expect("a default route");
        assert_eq!(default.gateway, Some(subnet.gateway()));
        assert_eq!(default.oif, Some(eth0));
        eprintln!("scenario: pod a has lo, eth0 {ip_a}/16 up, routes {routes:?}");

        // Pod to pod over the bridge: a listener in b, a client in a.
        let listener = in_netns(pod_b.as_fd(), || TcpListener::bind((ip_b, 0)))??;
        let port = listener.local_addr()?.port();
        let mut client = in_netns(pod_a.as_fd(), || {
            TcpStream::connect_timeout(&SocketAddr::from((ip_b, port)), Duration::from_secs(5))
        })??;
        let (mut server, peer) = listener.accept()?;
        assert_eq!(peer.ip(), std::net::IpAddr::V4(ip_a));
        client.write_all(b"ping")?;
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf)?;
        assert_eq!(&buf, b"ping");
        eprintln!("scenario: TCP {ip_a} -> {ip_b}:{port} over {BRIDGE}");

        // Pod to an address beyond the subnet: only the default route gets
        // there. 192.0.2.1 lives on the uplink's lo.
        let lo = nl.require_link("lo")?;
        nl.set_up(lo)?;
        let outside: Ipv4Addr = "192.0.2.1".parse()?;
        nl.add_address(lo, outside, 32)?;
        let listener = TcpListener::bind((outside, 0))?;
        let port = listener.local_addr()?.port();
        let _client = in_netns(pod_a.as_fd(), || {
            TcpStream::connect_timeout(&SocketAddr::from((outside, port)), Duration::from_secs(5))
        })??;
        let (_, peer) = listener.accept()?;
        assert_eq!(peer.ip(), std::net::IpAddr::V4(ip_a));
        eprintln!("scenario: TCP {ip_a} -> {outside}:{port} via the default route");

        // A step that fails after the veth exists (a gateway off the
        // subnet) leaves neither end behind.
        let host_c = host_ifname("c");
        let err = attach_pod(
            &mut nl,
            &Attachment {
                bridge: BRIDGE,
                host_ifname: &host_c,
                pod_netns: pod_c.as_fd(),
                ip: "10.88.0.9".parse()?,
                prefix: 16,
                gateway: "10.99.0.1".parse()?,
                mtu: DEFAULT_MTU,
            },
        )
        .unwrap_err();
        eprintln!("scenario: failed attach as expected: {err:#}");
        assert_eq!(nl.link_index(&host_c)?, None);
        assert_eq!(
            Netlink::open_in(pod_c.as_fd())?.link_index(POD_IFNAME)?,
            None
        );

        // Errors name what failed and carry the errno.
        let e = nl.create_bridge(BRIDGE, 0).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EEXIST));
        eprintln!("scenario: error text: {e}");

        // Detach: the pod's eth0 goes with the host end.
        assert!(detach_pod(&mut nl, &host_a)?);
        assert!(!detach_pod(&mut nl, &host_a)?);
        assert_eq!(pod.link_index(POD_IFNAME)?, None);
        assert!(nl.link_index(&host_b)?.is_some());

        // in_netns put this thread back in the uplink each time.
        let here = std::fs::metadata("/proc/thread-self/ns/net")?;
        use std::os::unix::fs::MetadataExt;
        assert_eq!(here.ino(), uplink_ns.metadata()?.ino());
        eprintln!("scenario: all checks passed");
        Ok(())
    }
}
