//! hostPort: listeners in the host's network namespace that forward each TCP
//! connection (and each UDP peer) to the pod.
//!
//! The listeners live in the supervisor, in the host's netns. It cannot join
//! the pod's netns and come back (the host netns belongs to the initial user
//! namespace), so each pod-side socket is created by the pause process,
//! which sits in the pod's netns, and passed back over a unix socket with
//! SCM_RIGHTS (rootlesskit's builtin port driver). A socket keeps the netns
//! it was created in, so the supervisor then connects it to the pod itself.
//!
//! The holder uses the same listeners and relays for the Services it
//! publishes on the host (`net::node_ports`): there the upstream socket is
//! made in the calling thread's own netns, the uplink one, where the
//! Service's virtual IP is DNAT'ed to its endpoints.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn, recvmsg, sendmsg};

/// The supervisor's end of the pause's socket service (its other end is
/// the pause program's `serve`, pause/pause.rs): one byte `t` or `u` out,
/// one byte back with the new socket attached.
pub struct PodSockets(Mutex<UnixStream>);

impl PodSockets {
    pub fn new(stream: UnixStream) -> PodSockets {
        PodSockets(Mutex::new(stream))
    }

    /// A new socket in the pod's netns (TCP or UDP), not yet connected.
    fn open(&self, tcp: bool) -> std::io::Result<OwnedFd> {
        let stream = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let fd = stream.as_raw_fd();
        sendmsg::<()>(
            fd,
            &[IoSlice::new(if tcp { b"t" } else { b"u" })],
            &[],
            MsgFlags::empty(),
            None,
        )?;
        let mut byte = [0u8; 1];
        let mut iov = [IoSliceMut::new(&mut byte)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(fd, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
        for cmsg in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg
                && let Some(&fd) = fds.first()
            {
                // SAFETY: the kernel just gave us this fd.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
        Err(std::io::Error::other(
            "the pause process could not open a socket in the pod",
        ))
    }

    /// A new TCP socket in the pod's netns, not yet connected (probes
    /// connect it themselves, without blocking).
    pub fn open_tcp(&self) -> std::io::Result<OwnedFd> {
        self.open(true)
    }

    fn connect(&self, tcp: bool, to: SocketAddr) -> std::io::Result<OwnedFd> {
        let fd = self.open(tcp)?;
        let SocketAddr::V4(v4) = to else {
            return Err(std::io::Error::other(
                "IPv6 pod addresses are not supported",
            ));
        };
        nix::sys::socket::connect(fd.as_raw_fd(), &SockaddrIn::from(v4))?;
        Ok(fd)
    }
}

/// Where a listener's connections and datagrams go.
pub enum Upstream {
    /// Into a pod's netns, through its pause (a hostPort).
    Pod(Arc<PodSockets>),
    /// From the netns of the thread that connects: the holder's uplink
    /// netns, where a Service's virtual IP is forwarded (a nodePort).
    Here,
}

impl Upstream {
    fn connect(&self, tcp: bool, to: SocketAddr) -> std::io::Result<OwnedFd> {
        match self {
            Upstream::Pod(sockets) => sockets.connect(tcp, to),
            Upstream::Here if tcp => TcpStream::connect(to).map(OwnedFd::from),
            Upstream::Here => {
                let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
                socket.connect(to)?;
                Ok(OwnedFd::from(socket))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// A container's hostPort, as the pod asks for it.
#[derive(Debug, Clone)]
pub struct HostPort {
    /// Who asks, for messages: `container web`, `--publish 8080:80`.
    pub asked_by: String,
    pub host_ip: Option<String>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// One hostPort to publish; once bound, one the pod publishes (`state.json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Published {
    pub host_ip: IpAddr,
    /// 0 in a plan: a free port, chosen by the kernel at bind time.
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// The hostPorts of a pod's containers, checked against what this machine
/// lets an unprivileged user bind.
pub fn published(ports: &[HostPort]) -> Result<Vec<Published>> {
    let start = unprivileged_port_start();
    let mut out = Vec::new();
    for p in ports {
        let (asked_by, host_port, proto) = (&p.asked_by, p.host_port, p.protocol.name());
        if host_port != 0 && u32::from(host_port) < start {
            bail!(
                "{asked_by}: hostPort {host_port}/{proto} is below net.ipv4.ip_unprivileged_port_start \
                 ({start}), which a rootless pod may not bind; pick a hostPort ≥ {start}, or lower the sysctl \
                 (sysctl net.ipv4.ip_unprivileged_port_start={host_port})"
            );
        }
        let host_ip: IpAddr = match p.host_ip.as_deref().filter(|s| !s.is_empty()) {
            Some(ip) => ip
                .parse()
                .map_err(|_| anyhow!("{asked_by}: hostIP {ip:?} is not an IP address"))?,
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        out.push(Published {
            host_ip,
            host_port,
            container_port: p.container_port,
            protocol: p.protocol,
        });
    }
    Ok(out)
}

/// `net.ipv4.ip_unprivileged_port_start` of the caller's netns (1024 when unreadable).
pub fn unprivileged_port_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// Binds every published port, so a busy one fails before anything of the
/// pod starts. A host port 0 becomes the free port the kernel gave: the
/// listener bound is the one that serves, so no other process can take
/// the port in between.
/// `noun` names the port in errors: `hostPort`, `nodePort`.
pub fn bind(ports: &[Published], noun: &str) -> Result<Vec<Listener>> {
    let mut bound: Vec<Listener> = Vec::new();
    for p in ports {
        let addr = SocketAddr::new(p.host_ip, p.host_port);
        let what = format!(
            "{noun} {}/{} on {}",
            p.host_port,
            p.protocol.name(),
            p.host_ip
        );
        let socket = match p.protocol {
            Protocol::Tcp => TcpListener::bind(addr).map(Bound::Tcp),
            Protocol::Udp => UdpSocket::bind(addr).map(Bound::Udp),
        }
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                anyhow!("{what} is already in use on this machine; pick another {noun} or stop what uses it")
            } else if e.kind() == std::io::ErrorKind::AddrNotAvailable {
                anyhow!("{what}: {} is not an address of this machine; give one of its addresses, or none for all", p.host_ip)
            } else {
                anyhow!("{what}: {e}")
            }
        })?;
        let local = match &socket {
            Bound::Tcp(l) => l.local_addr(),
            Bound::Udp(s) => s.local_addr(),
        }
        .map_err(|e| anyhow!("{what}: reading the bound port: {e}"))?;
        let mut p = p.clone();
        p.host_port = local.port();
        bound.push(Listener(p, socket));
    }
    Ok(bound)
}

/// A bound hostPort, not yet serving.
pub struct Listener(Published, Bound);

impl Listener {
    /// What it publishes, with the port it was bound to.
    pub fn published(&self) -> &Published {
        &self.0
    }
}

/// Forwards each listener to `target` (the pod's IP) inside the pod's netns.
/// The forwarders live as long as the process.
pub fn serve(listeners: Vec<Listener>, sockets: Arc<PodSockets>, target: Ipv4Addr) {
    let upstream = Arc::new(Upstream::Pod(sockets));
    for listener in listeners {
        let to = SocketAddr::new(IpAddr::V4(target), listener.0.container_port);
        if let Err(e) = listener.spawn(upstream.clone(), to, None) {
            tracing::warn!("serving a hostPort: {e}");
        }
    }
}

impl Listener {
    /// Serves on a thread of its own, forwarding to `to` through
    /// `upstream`, until the other end of `stop` (a pipe) is closed; for
    /// ever without one. Connections already relayed go on.
    pub fn spawn(
        self,
        upstream: Arc<Upstream>,
        to: SocketAddr,
        stop: Option<OwnedFd>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let Listener(_, socket) = self;
        let builder = std::thread::Builder::new().name("port-listener".into());
        match socket {
            Bound::Tcp(l) => builder.spawn(move || serve_tcp(l, upstream, to, stop)),
            Bound::Udp(s) => builder.spawn(move || serve_udp(s, upstream, to, stop)),
        }
    }
}

enum Bound {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

fn serve_tcp(
    listener: TcpListener,
    upstream: Arc<Upstream>,
    to: SocketAddr,
    stop: Option<OwnedFd>,
) {
    // With a stop pipe, accept only after poll said so, and never block in
    // it (a client may reset in between).
    if stop.is_some() && listener.set_nonblocking(true).is_err() {
        return;
    }
    while readable_unless_stopped(&listener, stop.as_ref()) {
        let Ok((client, _)) = listener.accept() else {
            continue;
        };
        let upstream = upstream.clone();
        std::thread::spawn(move || {
            let upstream = match upstream.connect(true, to) {
                Ok(fd) => TcpStream::from(fd),
                Err(e) => {
                    tracing::debug!("forwarding to {to}: {e}");
                    return;
                }
            };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            pipe_both_ways(client, upstream);
        });
    }
}

/// Waits until `socket` has something to read; false once `stop`'s other
/// end is closed. Without a stop pipe, true at once (the caller blocks).
fn readable_unless_stopped(socket: &impl AsFd, stop: Option<&OwnedFd>) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let Some(stop) = stop else { return true };
    loop {
        let mut fds = [
            PollFd::new(socket.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {
                if fds[1].revents().is_some_and(|r| !r.is_empty()) {
                    return false;
                }
                if fds[0].revents().is_some_and(|r| !r.is_empty()) {
                    return true;
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
}

/// Copies in both directions until each side has said all it had.
fn pipe_both_ways(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let t = std::thread::spawn(move || {
        forward(&a2, &b2);
        let _ = b2.shutdown(std::net::Shutdown::Write);
    });
    forward(&b, &a);
    let _ = a.shutdown(std::net::Shutdown::Write);
    let _ = t.join();
}

/// Moves bytes from one socket to the other inside the kernel (splice
/// through a pipe: no copy to user space), falling back to a large buffer.
fn forward(from: &TcpStream, to: &TcpStream) {
    use nix::fcntl::{SpliceFFlags, splice};
    let Ok((pipe_r, pipe_w)) = nix::unistd::pipe() else {
        return copy_buffered(from, to);
    };
    // A bigger pipe moves more per call; the default is 64 KiB.
    let _ = nix::fcntl::fcntl(&pipe_w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_MORE;
    loop {
        let n = match splice(from, None, &pipe_w, None, 1 << 20, flags) {
            Ok(0) => return,
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EINVAL) => return copy_buffered(from, to),
            Err(_) => return,
        };
        let mut left = n;
        while left > 0 {
            match splice(&pipe_r, None, to, None, left, flags) {
                Ok(0) => return,
                Ok(m) => left -= m,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            }
        }
    }
}

fn copy_buffered(mut from: &TcpStream, mut to: &TcpStream) {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; 256 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// How long a UDP peer may stay silent, both ways, before its socket in the
/// pod and its relay thread go (MINIPOD_UDP_IDLE_SECONDS; conntrack keeps an
/// answered UDP flow 120 s, an unanswered one 30 s).
fn udp_idle() -> Duration {
    std::env::var("MINIPOD_UDP_IDLE_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .filter(|d| *d >= Duration::from_millis(100))
        .unwrap_or(Duration::from_secs(60))
}

/// A UDP peer's socket in the pod, and when it was last used either way.
struct Peer {
    socket: Arc<UdpSocket>,
    last_used: Instant,
}

type Peers = Arc<Mutex<HashMap<SocketAddr, Peer>>>;

/// UDP: one socket in the pod per peer, replies relayed back to that peer
/// by a thread of its own until the peer has been idle for `udp_idle()`.
fn serve_udp(socket: UdpSocket, upstream: Arc<Upstream>, to: SocketAddr, stop: Option<OwnedFd>) {
    if stop.is_some() && socket.set_nonblocking(true).is_err() {
        return;
    }
    let socket = Arc::new(socket);
    let peers: Peers = Arc::default();
    let idle = udp_idle();
    let mut buf = vec![0u8; 65536];
    while readable_unless_stopped(&*socket, stop.as_ref()) {
        let Ok((n, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let known = {
            let mut map = peers.lock().unwrap_or_else(|e| e.into_inner());
            map.get_mut(&peer).map(|p| {
                p.last_used = Instant::now();
                p.socket.clone()
            })
        };
        let upstream = match known {
            Some(u) => u,
            // Only this thread adds peers: asking the pause for a socket
            // needs no lock, so relays are not held up meanwhile.
            None => {
                let Ok(fd) = upstream.connect(false, to) else {
                    continue;
                };
                let u = Arc::new(UdpSocket::from(fd));
                let peer_entry = Peer {
                    socket: u.clone(),
                    last_used: Instant::now(),
                };
                peers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(peer, peer_entry);
                let (from, back, relay_peers) = (u.clone(), socket.clone(), peers.clone());
                let relay = std::thread::Builder::new()
                    .name("udp-peer".into())
                    .spawn(move || relay_replies(&from, &back, peer, &relay_peers, idle));
                if relay.is_err() {
                    peers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&peer);
                    continue;
                }
                u
            }
        };
        let _ = upstream.send(&buf[..n]);
    }
}

/// Sends what the pod answers back to `peer`; forgets the peer once it and
/// the pod have been silent for `idle`.
fn relay_replies(
    from: &Arc<UdpSocket>,
    back: &UdpSocket,
    peer: SocketAddr,
    peers: &Peers,
    idle: Duration,
) {
    let mut buf = vec![0u8; 65536];
    let mut wait = idle;
    loop {
        // Never zero: set_read_timeout refuses it.
        let _ = from.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        let received = from.recv(&mut buf);
        let mut map = peers.lock().unwrap_or_else(|e| e.into_inner());
        let ours = map.get_mut(&peer).filter(|p| Arc::ptr_eq(&p.socket, from));
        match (received, ours) {
            (Ok(n), Some(p)) => {
                p.last_used = Instant::now();
                wait = idle;
                drop(map);
                let _ = back.send_to(&buf[..n], peer);
            }
            // The peer spoke meanwhile: wait for what is left of its idle time.
            (Err(e), Some(p))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) && p.last_used.elapsed() < idle =>
            {
                wait = idle - p.last_used.elapsed();
            }
            (_, Some(_)) => {
                map.remove(&peer);
                return;
            }
            (_, None) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(host_port: u16, protocol: Protocol) -> HostPort {
        HostPort {
            asked_by: "container web".into(),
            host_ip: None,
            host_port,
            container_port: 80,
            protocol,
        }
    }

    #[test]
    fn low_host_ports_are_refused() {
        let p = published(&[port(18080, Protocol::Udp)]).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].host_port, 18080);
        assert_eq!(p[0].host_ip, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        if unprivileged_port_start() > 80 {
            let err = published(&[port(80, Protocol::Tcp)])
                .unwrap_err()
                .to_string();
            assert!(err.contains("ip_unprivileged_port_start"), "{err}");
        }
    }
}
