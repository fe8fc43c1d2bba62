//! A small synchronous rtnetlink socket (netavark's approach: one request at
//! a time, each acknowledged, no async runtime).
//!
//! A netlink socket talks to the network namespace it was *created* in, for
//! its whole life. `Netlink::open` uses the calling thread's netns;
//! `Netlink::open_in` creates the socket inside another netns by switching
//! the calling thread there with `setns(CLONE_NEWNET)` and back (see
//! `in_netns`). A net-namespace switch only moves the calling thread, so this
//! is legal in any process (unlike user namespaces), as long as the thread is
//! put back; `in_netns` checks first that it will be allowed back.

// Some queries (links, routes, leases) serve the tests and diagnostics only.

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// A failed netlink operation: what was being done, and the kernel's errno
/// (with its extended-ack message when the kernel sent one).
#[derive(Debug)]
pub struct NetlinkError {
    pub what: String,
    pub io: io::Error,
    /// The kernel's extended-ack text ("Unknown device type", ...).
    pub kernel_message: Option<String>,
}

impl std::fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.io)?;
        if let Some(m) = &self.kernel_message {
            write!(f, " ({m})")?;
        }
        Ok(())
    }
}

impl std::error::Error for NetlinkError {}

impl NetlinkError {
    fn new(what: impl Into<String>, io: io::Error) -> NetlinkError {
        NetlinkError {
            what: what.into(),
            io,
            kernel_message: None,
        }
    }

    fn kernel(what: String, code: i32, kernel_message: Option<String>) -> NetlinkError {
        NetlinkError {
            what,
            io: io::Error::from_raw_os_error(code.saturating_abs()),
            kernel_message,
        }
    }

    /// The errno, when the kernel (or a syscall) gave one.
    pub fn errno(&self) -> Option<i32> {
        self.io.raw_os_error()
    }
}

pub type Result<T> = std::result::Result<T, NetlinkError>;

/// A link as `list_links` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mtu: Option<u32>,
    pub up: bool,
    /// The bridge it is attached to (IFLA_MASTER).
    pub master: Option<u32>,
    /// IFLA_INFO_KIND: "bridge", "veth", ... (None for lo and physical links).
    pub kind: Option<String>,
}

/// An IPv4 route of the main table, as `list_routes` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route4 {
    pub destination: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub oif: Option<u32>,
}

/// Both ends of a veth pair to create.
#[derive(Debug, Clone, Copy)]
pub struct VethRequest<'a> {
    /// The end created in this socket's netns.
    pub host_name: &'a str,
    /// The bridge the host end is attached to.
    pub master: Option<u32>,
    /// The end created directly in `peer_netns`.
    pub peer_name: &'a str,
    pub peer_netns: BorrowedFd<'a>,
    pub mtu: u32,
}

/// NLMSG_GOODSIZE is at most 8 KiB, but a dump message for a link with many
/// attributes can be larger: 64 KiB never truncates.
const RECV_BUF: usize = 64 * 1024;

pub struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE)
            .map_err(|e| NetlinkError::new("opening a netlink socket", e))?;
        socket
            .bind(&SocketAddr::new(0, 0))
            .map_err(|e| NetlinkError::new("binding the netlink socket", e))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| NetlinkError::new("connecting the netlink socket", e))?;
        // Kernel error strings ("Unknown device type", ...) in NLMSG_ERROR;
        // an old kernel without them is fine.
        let _ = socket.set_ext_ack(true);
        Ok(Netlink {
            socket,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    /// A socket inside the network namespace `netns` (an fd of
    /// `/proc/PID/ns/net` or of a bind mount of it). The calling thread
    /// joins `netns` just long enough to create the socket; see `in_netns`.
    pub fn open_in(netns: BorrowedFd<'_>) -> Result<Netlink> {
        in_netns(netns, Netlink::open)?
    }

    /// The index of link `name`, or None if there is none.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(msg), 0, || {
            format!("looking up link {name}")
        }) {
            Ok(replies) => Ok(replies.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Like `link_index`, with ENODEV as an error naming the link.
    pub fn require_link(&mut self, name: &str) -> Result<u32> {
        self.link_index(name)?.ok_or_else(|| {
            NetlinkError::new(
                format!("looking up link {name}"),
                io::Error::from_raw_os_error(libc::ENODEV),
            )
        })
    }

    /// Every link of the namespace.
    pub fn list_links(&mut self) -> Result<Vec<Link>> {
        let replies = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
            || "listing links".to_string(),
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_from(l)),
                _ => None,
            })
            .collect())
    }

    /// Creates a bridge (RTM_NEWLINK, kind "bridge"); EEXIST if it exists.
    pub fn create_bridge(&mut self, name: &str, mtu: u32) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        if mtu != 0 {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            || format!("creating bridge {name}"),
        )?;
        Ok(())
    }

    /// Creates a veth pair whose peer is created directly inside another
    /// netns (IFLA_NET_NS_FD on the peer), so nothing has to be moved.
    pub fn create_veth(&mut self, req: &VethRequest<'_>) -> Result<()> {
        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(req.peer_name.to_string()));
        if req.mtu != 0 {
            peer.attributes.push(LinkAttribute::Mtu(req.mtu));
        }
        peer.attributes
            .push(LinkAttribute::NetNsFd(req.peer_netns.as_raw_fd()));

        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::IfName(req.host_name.to_string()));
        if req.mtu != 0 {
            msg.attributes.push(LinkAttribute::Mtu(req.mtu));
        }
        if let Some(master) = req.master {
            msg.attributes.push(LinkAttribute::Controller(master));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            || {
                format!(
                    "creating veth pair {} / {} (peer in another netns)",
                    req.host_name, req.peer_name
                )
            },
        )?;
        Ok(())
    }

    /// `ip link set INDEX up`.
    pub fn set_up(&mut self, index: u32) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(msg), 0, || {
            format!("setting link {index} up")
        })?;
        Ok(())
    }

    /// `bridge link set dev INDEX hairpin on`: a frame may leave the
    /// bridge port it came in by. With br_netfilter loaded (its hooks run
    /// in every netns), a pod's packet to a Service's virtual IP is DNATed
    /// on the bridge itself; when the endpoint is that pod (hairpin), the
    /// frame goes back out of its own port, which a bridge drops otherwise.
    pub fn set_hairpin(&mut self, index: u32) -> Result<()> {
        /// IFLA_BRPORT_MODE: BR_HAIRPIN_MODE.
        const IFLA_BRPORT_MODE: u16 = 4;
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Bridge;
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::ProtoInfoBridge(vec![
            netlink_packet_route::link::LinkProtoInfoBridge::Other(
                netlink_packet_core::DefaultNla::new(IFLA_BRPORT_MODE, vec![1]),
            ),
        ]));
        self.request(RouteNetlinkMessage::SetLink(msg), 0, || {
            format!("turning hairpin mode on for bridge port {index}")
        })?;
        Ok(())
    }

    /// Deletes a link; deleting one end of a veth deletes both.
    pub fn delete_link(&mut self, index: u32) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.request(RouteNetlinkMessage::DelLink(msg), 0, || {
            format!("deleting link {index}")
        })?;
        Ok(())
    }

    /// Adds ADDR/PREFIX to a link (with its broadcast address); EEXIST if it
    /// is there already.
    pub fn add_address(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(addr.into()));
        msg.attributes.push(AddressAttribute::Address(addr.into()));
        if prefix < 31 {
            let host_mask = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            let broadcast = Ipv4Addr::from(u32::from(addr) | host_mask);
            msg.attributes.push(AddressAttribute::Broadcast(broadcast));
        }
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            || format!("adding address {addr}/{prefix} to link {index}"),
        )?;
        Ok(())
    }

    /// The IPv4 addresses of a link, with their prefix lengths.
    pub fn list_addresses(&mut self, index: u32) -> Result<Vec<(Ipv4Addr, u8)>> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        let replies = self.request(RouteNetlinkMessage::GetAddress(msg), NLM_F_DUMP, || {
            format!("listing the addresses of link {index}")
        })?;
        let mut out = Vec::new();
        for m in replies {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            if a.header.index != index {
                continue;
            }
            let local = a.attributes.iter().find_map(|attr| match attr {
                AddressAttribute::Local(std::net::IpAddr::V4(v4)) => Some(*v4),
                _ => None,
            });
            let address = a.attributes.iter().find_map(|attr| match attr {
                AddressAttribute::Address(std::net::IpAddr::V4(v4)) => Some(*v4),
                _ => None,
            });
            if let Some(ip) = local.or(address) {
                out.push((ip, a.header.prefix_len));
            }
        }
        Ok(out)
    }

    /// `ip route add default via GATEWAY [dev OIF]` in the main table.
    pub fn add_default_route(&mut self, gateway: Ipv4Addr, oif: Option<u32>) -> Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.destination_prefix_length = 0;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Static;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        if let Some(oif) = oif {
            msg.attributes.push(RouteAttribute::Oif(oif));
        }
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            || format!("adding a default route via {gateway}"),
        )?;
        Ok(())
    }

    /// The IPv4 routes of the main table.
    pub fn list_routes(&mut self) -> Result<Vec<Route4>> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        let replies = self.request(RouteNetlinkMessage::GetRoute(msg), NLM_F_DUMP, || {
            "listing routes".to_string()
        })?;
        let mut out = Vec::new();
        for m in replies {
            let RouteNetlinkMessage::NewRoute(r) = m else {
                continue;
            };
            let table = r
                .attributes
                .iter()
                .find_map(|a| match a {
                    RouteAttribute::Table(t) => Some(*t),
                    _ => None,
                })
                .unwrap_or(u32::from(r.header.table));
            if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
                continue;
            }
            let mut route = Route4 {
                destination: Ipv4Addr::UNSPECIFIED,
                prefix: r.header.destination_prefix_length,
                gateway: None,
                oif: None,
            };
            for a in &r.attributes {
                match a {
                    RouteAttribute::Destination(RouteAddress::Inet(d)) => route.destination = *d,
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => route.gateway = Some(*g),
                    RouteAttribute::Oif(i) => route.oif = Some(*i),
                    _ => {}
                }
            }
            out.push(route);
        }
        Ok(out)
    }

    /// Sends one request with NLM_F_REQUEST | NLM_F_ACK and collects the
    /// replies: up to the ACK for a plain request, up to NLMSG_DONE for a
    /// dump. An NLMSG_ERROR (or a DONE) with a negative errno becomes an
    /// error that names `what`.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        what: impl Fn() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
        packet.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        packet.header.sequence_number = seq;
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket
            .send(&out, 0)
            .map_err(|e| NetlinkError::new(format!("{}: sending to netlink", what()), e))?;

        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        loop {
            let n = self
                .socket
                .recv(&mut &mut self.buf[..], 0)
                .map_err(|e| NetlinkError::new(format!("{}: reading netlink", what()), e))?;
            let mut offset = 0;
            while offset < n {
                let bytes = &self.buf[offset..n];
                let reply: NetlinkMessage<RouteNetlinkMessage> = NetlinkMessage::deserialize(bytes)
                    .map_err(|e| {
                        NetlinkError::new(
                            format!("{}: decoding a netlink reply", what()),
                            io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
                        )
                    })?;
                let len = reply.header.length as usize;
                if len == 0 {
                    break;
                }
                offset += align4(len);
                if reply.header.sequence_number != seq {
                    // A late reply to an earlier request: not ours.
                    continue;
                }
                let reply_flags = reply.header.flags;
                match reply.payload {
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    NetlinkPayload::Error(e) => {
                        let code = e.raw_code();
                        if code == 0 {
                            if !dump {
                                return Ok(replies);
                            }
                            continue;
                        }
                        let ext = ext_ack_message(&e.header, reply_flags);
                        return Err(NetlinkError::kernel(what(), code, ext));
                    }
                    NetlinkPayload::Done(d) => {
                        if d.code != 0 {
                            return Err(NetlinkError::kernel(what(), d.code, None));
                        }
                        return Ok(replies);
                    }
                    NetlinkPayload::Noop => {}
                    NetlinkPayload::Overrun(_) => {
                        return Err(NetlinkError::new(
                            what(),
                            io::Error::other("netlink overrun"),
                        ));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Runs `f` with the calling thread inside the network namespace `netns`,
/// then puts the thread back in its own netns. Sockets created by `f` stay
/// in `netns` for their whole life (that is how `Netlink::open_in`, and a
/// listener for port forwarding, get into a pod).
///
/// Joining a netns needs CAP_SYS_ADMIN over its owning user namespace and
/// over our own; coming back needs the same over the netns we started in,
/// which a process that joined a user namespace may lack for the host's
/// netns. So the return ticket is checked first: `setns` into our own
/// netns, which makes the same permission checks and changes nothing. If
/// the way back still fails, the thread is somewhere it must not stay: the
/// process aborts.
pub fn in_netns<T>(netns: BorrowedFd<'_>, f: impl FnOnce() -> T) -> Result<T> {
    use nix::sched::{CloneFlags, setns};
    let own = File::open("/proc/thread-self/ns/net")
        .map_err(|e| NetlinkError::new("opening /proc/thread-self/ns/net", e))?;
    setns(own.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
        NetlinkError::new(
            "checking that this thread may return to its network namespace (setns)",
            e.into(),
        )
    })?;
    setns(netns, CloneFlags::CLONE_NEWNET)
        .map_err(|e| NetlinkError::new("joining the network namespace (setns)", e.into()))?;
    // Returns in Drop, so a panic in `f` does not leave the thread behind.
    let _back = ReturnTicket(own);
    Ok(f())
}

/// The thread's own netns, rejoined when dropped.
struct ReturnTicket(File);

impl Drop for ReturnTicket {
    fn drop(&mut self) {
        use nix::sched::{CloneFlags, setns};
        if let Err(e) = setns(self.0.as_fd(), CloneFlags::CLONE_NEWNET) {
            eprintln!("minipod: cannot return to the original network namespace: {e}");
            std::process::abort();
        }
    }
}

fn link_from(l: LinkMessage) -> Link {
    let mut link = Link {
        index: l.header.index,
        name: String::new(),
        mtu: None,
        up: l.header.flags.contains(LinkFlags::Up),
        master: None,
        kind: None,
    };
    for a in l.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n,
            LinkAttribute::Mtu(m) => link.mtu = Some(m),
            LinkAttribute::Controller(m) => link.master = Some(m),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        link.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;

/// The NLMSGERR_ATTR_MSG string of an extended ACK. `body` is what follows
/// the error code: the request's header (and its payload unless the reply
/// is NLM_F_CAPPED), then the TLVs when NLM_F_ACK_TLVS is set.
fn ext_ack_message(body: &[u8], reply_flags: u16) -> Option<String> {
    if reply_flags & NLM_F_ACK_TLVS == 0 || body.len() < 16 {
        return None;
    }
    let skip = if reply_flags & NLM_F_CAPPED != 0 {
        16
    } else {
        align4(u32::from_ne_bytes(body[0..4].try_into().ok()?) as usize)
    };
    let mut tlvs = body.get(skip..)?;
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &tlvs[4..len];
            let text = text.split(|b| *b == 0).next().unwrap_or(text);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        tlvs = tlvs.get(align4(len)..).unwrap_or(&[]);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(kind: u16, value: &[u8]) -> Vec<u8> {
        let len = 4 + value.len();
        let mut v = Vec::new();
        v.extend_from_slice(&(len as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn extended_ack_text_is_found_after_a_capped_header() {
        let mut body = vec![0u8; 16];
        body[0..4].copy_from_slice(&40u32.to_ne_bytes());
        body.extend(tlv(2, &5u32.to_ne_bytes()));
        body.extend(tlv(NLMSGERR_ATTR_MSG, b"Unknown device type\0"));
        assert_eq!(
            ext_ack_message(&body, NLM_F_CAPPED | NLM_F_ACK_TLVS).as_deref(),
            Some("Unknown device type")
        );
        assert_eq!(ext_ack_message(&body, NLM_F_CAPPED), None);
    }

    #[test]
    fn extended_ack_text_is_found_after_the_whole_request() {
        // Request of 20 bytes (header + 4 payload bytes), not capped.
        let mut body = vec![0u8; 20];
        body[0..4].copy_from_slice(&20u32.to_ne_bytes());
        body.extend(tlv(NLMSGERR_ATTR_MSG, b"Invalid prefix\0"));
        assert_eq!(
            ext_ack_message(&body, NLM_F_ACK_TLVS).as_deref(),
            Some("Invalid prefix")
        );
    }

    #[test]
    fn in_netns_returns_the_thread_even_when_f_panics() {
        use std::os::unix::fs::MetadataExt;
        let ino = || std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino();
        // Our own netns is the one target every process may join (if it
        // may setns at all: without CAP_SYS_ADMIN there is nothing to test).
        let own = File::open("/proc/thread-self/ns/net").unwrap();
        let before = ino();
        let Ok(inside) = in_netns(own.as_fd(), ino) else {
            eprintln!("skipped: setns is not permitted here");
            return;
        };
        assert_eq!(inside, before);
        let caught = std::panic::catch_unwind(|| in_netns(own.as_fd(), || panic!("inside")));
        assert!(caught.is_err());
        assert_eq!(ino(), before);
    }

    #[test]
    fn errors_carry_the_errno_and_what_was_done() {
        let e = NetlinkError::kernel("creating bridge minipod0".into(), -libc::EEXIST, None);
        assert_eq!(e.errno(), Some(libc::EEXIST));
        assert!(e.to_string().starts_with("creating bridge minipod0: "));
        let e = NetlinkError::kernel(
            "creating veth".into(),
            -libc::EOPNOTSUPP,
            Some("Unknown device type".into()),
        );
        assert_eq!(e.errno(), Some(libc::EOPNOTSUPP));
        assert!(e.to_string().ends_with("(Unknown device type)"), "{e}");
    }
}
