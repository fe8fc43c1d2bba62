//! minipod's DNS server: Service names for every pod, everything else
//! forwarded to the host's resolvers.
//!
//! It runs as threads of the holder, in the uplink network namespace, on
//! the bridge's gateway address (the pods' nameserver with `dnsPolicy:
//! ClusterFirst`), UDP and TCP port 53 (the holder is root of its user
//! namespace, which owns that netns). It answers names under the cluster
//! domain from the Service table (`services.json`, read again when the file
//! changed: `names::decide`), and forwards the rest to the nameservers of
//! the host's resolv.conf as read when the holder started, directly, but
//! a first one on the host's loopback (systemd-resolved's 127.0.0.53)
//! through pasta's DNS forwarding address (`pasta::DNS_FORWARD`), which
//! asks it from the host (`upstreams`).
//! Without pasta there is no route out, and outside names fail at once
//! (SERVFAIL).
//!
//! - `wire`: the message format (pure);
//! - `names`: which names are ours and their answers (pure).

pub mod names;
pub mod wire;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};

use super::service_table::{DEFAULT_CLUSTER_DOMAIN, ServiceTable};
use names::Decision;
use wire::{Query, Reply};

/// The variable that picks the cluster domain when the holder starts.
pub const DOMAIN_VAR: &str = "MINIPOD_CLUSTER_DOMAIN";
/// Our answers' TTL, and the negative one (CoreDNS's default for
/// Kubernetes names): endpoints change, caches must follow soon.
const TTL: u32 = 5;
/// How long one upstream may take to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a TCP client may take to send its query.
const TCP_CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Queries being forwarded (each a thread) at most: past it, SERVFAIL.
const MAX_IN_FLIGHT: usize = 128;

/// The cluster domain: `MINIPOD_CLUSTER_DOMAIN`, else `cluster.local`.
pub fn cluster_domain_from_env() -> Result<String> {
    match std::env::var(DOMAIN_VAR) {
        Err(_) => Ok(DEFAULT_CLUSTER_DOMAIN.to_string()),
        Ok(text) => names::check_domain(&text).map_err(|e| anyhow::anyhow!("{DOMAIN_VAR}: {e}")),
    }
}

/// The servers outside names are forwarded to, in order, without
/// duplicates: the host's nameservers, directly, but a first one on the
/// host's loopback (systemd-resolved's 127.0.0.53) through `via` (pasta's
/// `--dns-forward` address: pasta asks it from the host; given when
/// `first_is_loopback`); other loopback ones cannot be reached and are left
/// out. No outbound route (`outbound` false): none.
pub fn upstreams(resolv_conf: &str, via: Option<IpAddr>, outbound: bool) -> Vec<SocketAddr> {
    if !outbound {
        return Vec::new();
    }
    let mut out: Vec<SocketAddr> = Vec::new();
    let servers = resolv_conf.lines().filter_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("nameserver")).then(|| words.next())?
    });
    for (i, text) in servers.enumerate() {
        // An IPv6 address may carry a zone (`fe80::1%eth0`): not reachable here.
        let Ok(ip) = text.parse::<IpAddr>() else {
            continue;
        };
        let ip = match (i, via) {
            (0, Some(via)) if ip.is_loopback() => via,
            _ if ip.is_loopback() => continue,
            _ => ip,
        };
        let addr = SocketAddr::new(ip, 53);
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

/// Whether the host's first nameserver is on its loopback: pasta must
/// forward DNS to it (`pasta::DNS_FORWARD`).
pub fn first_is_loopback(resolv_conf: &str) -> bool {
    resolv_conf
        .lines()
        .find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        .and_then(|text| text.parse::<IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback())
}

/// What the server is told when it starts.
pub struct Config {
    /// The bridge's gateway address.
    pub listen: Ipv4Addr,
    pub domain: String,
    /// Where `services.json` is.
    pub run_root: PathBuf,
    pub upstreams: Vec<SocketAddr>,
}

/// The Service table as last read, and the file's identity then.
struct TableCache {
    path: PathBuf,
    stamp: Option<(u64, i64, i64, u64)>,
    table: ServiceTable,
}

impl TableCache {
    /// The table, read again when the file changed (a stat per query).
    fn current(&mut self) -> &ServiceTable {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.ino(), m.mtime(), m.mtime_nsec(), m.size()));
        if stamp != self.stamp {
            let run_root = self.path.parent().unwrap_or(&self.path);
            // A table we cannot read answers nothing rather than stale names.
            self.table = ServiceTable::load(run_root).unwrap_or_default();
            self.stamp = stamp;
        }
        &self.table
    }
}

struct Server {
    domain: String,
    upstreams: Vec<SocketAddr>,
    table: Mutex<TableCache>,
    in_flight: AtomicUsize,
}

/// What to do with a message.
#[derive(Debug, PartialEq)]
enum Handling {
    Answer(Vec<u8>),
    Forward,
    /// Not even a header: nothing to answer.
    Drop,
}

/// The pure step: a message, the table and whether anything can be
/// forwarded, to an answer or a forward.
fn handle(
    msg: &[u8],
    table: &ServiceTable,
    domain: &str,
    can_forward: bool,
    limit: impl Fn(&Query) -> usize,
) -> Handling {
    let query = match wire::parse_query(msg) {
        Ok(q) => q,
        Err(wire::Malformed { id: Some(id) }) => return Handling::Answer(wire::build_formerr(id)),
        Err(wire::Malformed { id: None }) => return Handling::Drop,
    };
    if query.opcode != 0 {
        let reply = Reply::error(wire::RCODE_NOTIMP);
        return Handling::Answer(wire::build_reply(&query, &reply, limit(&query)));
    }
    let soa = Some(wire::Soa {
        zone: domain.to_string(),
        ttl: TTL,
    });
    let reply = match names::decide(table, domain, &query.name) {
        Decision::Forward if can_forward => return Handling::Forward,
        Decision::Forward => Reply::error(wire::RCODE_SERVFAIL),
        Decision::NoSuchName => Reply {
            rcode: wire::RCODE_NXDOMAIN,
            authoritative: true,
            addresses: Vec::new(),
            srv: Vec::new(),
            ttl: TTL,
            soa,
        },
        Decision::Ports(srv) => {
            let srv = match query.qtype {
                wire::TYPE_SRV | 255 => srv,
                _ => Vec::new(),
            };
            let soa = if srv.is_empty() { soa } else { None };
            Reply {
                rcode: wire::RCODE_NOERROR,
                authoritative: true,
                addresses: Vec::new(),
                srv,
                ttl: TTL,
                soa,
            }
        }
        Decision::Ours(addresses) => {
            // A records (ANY gets them too); AAAA and the rest: no data.
            let addresses = match query.qtype {
                wire::TYPE_A | 255 => addresses,
                _ => Vec::new(),
            };
            let soa = if addresses.is_empty() { soa } else { None };
            Reply {
                rcode: wire::RCODE_NOERROR,
                authoritative: true,
                addresses,
                srv: Vec::new(),
                ttl: TTL,
                soa,
            }
        }
    };
    Handling::Answer(wire::build_reply(&query, &reply, limit(&query)))
}

fn servfail(msg: &[u8]) -> Option<Vec<u8>> {
    let query = wire::parse_query(msg).ok()?;
    Some(wire::build_reply(
        &query,
        &Reply::error(wire::RCODE_SERVFAIL),
        wire::udp_limit(&query),
    ))
}

/// Binds UDP and TCP port 53 on the gateway address and serves them on
/// threads of their own for the rest of the process's life (the holder's
/// exit ends them). Call once the bridge has its address.
pub fn start(config: Config) -> Result<()> {
    let addr = SocketAddr::new(IpAddr::V4(config.listen), 53);
    let udp =
        UdpSocket::bind(addr).with_context(|| format!("binding the DNS server to udp {addr}"))?;
    let tcp =
        TcpListener::bind(addr).with_context(|| format!("binding the DNS server to tcp {addr}"))?;
    let server = Arc::new(Server {
        domain: config.domain,
        upstreams: config.upstreams,
        table: Mutex::new(TableCache {
            path: ServiceTable::path(&config.run_root),
            stamp: None,
            table: ServiceTable::default(),
        }),
        in_flight: AtomicUsize::new(0),
    });
    let udp = Arc::new(udp);
    let s = server.clone();
    std::thread::Builder::new()
        .name("dns-udp".into())
        .spawn(move || serve_udp(&s, &udp))
        .context("starting the DNS server's thread")?;
    std::thread::Builder::new()
        .name("dns-tcp".into())
        .spawn(move || serve_tcp(&server, &tcp))
        .context("starting the DNS server's thread")?;
    Ok(())
}

impl Server {
    fn handle(&self, msg: &[u8], limit: impl Fn(&Query) -> usize) -> Handling {
        let mut cache = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let table = cache.current();
        handle(msg, table, &self.domain, !self.upstreams.is_empty(), limit)
    }

    /// Takes a forwarding slot, if one is free.
    fn take_slot(&self) -> bool {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_IN_FLIGHT {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    fn free_slot(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

fn serve_udp(server: &Arc<Server>, socket: &Arc<UdpSocket>) {
    let mut buf = [0u8; 4096];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let msg = buf[..n].to_vec();
        match server.handle(&msg, wire::udp_limit) {
            Handling::Answer(out) => {
                let _ = socket.send_to(&out, peer);
            }
            Handling::Drop => {}
            Handling::Forward => {
                let spawned = server.take_slot() && {
                    let (server, socket) = (server.clone(), socket.clone());
                    let msg = msg.clone();
                    std::thread::Builder::new()
                        .spawn(move || {
                            let out =
                                forward_udp(&server.upstreams, &msg).or_else(|| servfail(&msg));
                            if let Some(out) = out {
                                let _ = socket.send_to(&out, peer);
                            }
                            server.free_slot();
                        })
                        .is_ok()
                };
                if !spawned && let Some(out) = servfail(&msg) {
                    let _ = socket.send_to(&out, peer);
                }
            }
        }
    }
}

/// Asks each upstream in turn over UDP; the first answer to our id wins.
fn forward_udp(upstreams: &[SocketAddr], msg: &[u8]) -> Option<Vec<u8>> {
    let id = wire::message_id(msg)?;
    for up in upstreams {
        let local: SocketAddr = match up {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let Ok(socket) = UdpSocket::bind(local) else {
            continue;
        };
        // Not connected: pasta (some versions) answers for an upstream
        // from another source address, which a connected socket drops.
        if socket.set_read_timeout(Some(UPSTREAM_TIMEOUT)).is_err()
            || socket.send_to(msg, up).is_err()
        {
            continue;
        }
        let mut buf = vec![0u8; 65535];
        // Anything else arriving on our port is not the answer: wait on.
        while let Ok((n, _)) = socket.recv_from(&mut buf) {
            let answer = &buf[..n];
            if wire::message_id(answer) == Some(id) && wire::is_response(answer) {
                return Some(answer.to_vec());
            }
        }
    }
    None
}

fn serve_tcp(server: &Arc<Server>, listener: &TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept() else {
            continue;
        };
        if !server.take_slot() {
            continue; // closing it: the client tries again
        }
        let server = server.clone();
        let _ = std::thread::Builder::new().spawn(move || {
            let _ = serve_tcp_client(&server, stream);
            server.free_slot();
        });
    }
}

/// One TCP client: queries (a two-byte length each) until it closes or
/// stays quiet.
fn serve_tcp_client(server: &Server, mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(TCP_CLIENT_TIMEOUT))?;
    loop {
        let Some(msg) = read_framed(&mut stream)? else {
            return Ok(());
        };
        let out = match server.handle(&msg, |_| 65535) {
            Handling::Answer(out) => out,
            Handling::Drop => return Ok(()),
            Handling::Forward => match forward_tcp(&server.upstreams, &msg) {
                Some(out) => out,
                None => match wire::parse_query(&msg) {
                    Ok(q) => wire::build_reply(&q, &Reply::error(wire::RCODE_SERVFAIL), 65535),
                    Err(_) => return Ok(()),
                },
            },
        };
        write_framed(&mut stream, &out)?;
    }
}

fn read_framed(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut msg)?;
    Ok(Some(msg))
}

fn write_framed(stream: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    framed.extend_from_slice(msg);
    stream.write_all(&framed)
}

/// Asks each upstream in turn over TCP.
fn forward_tcp(upstreams: &[SocketAddr], msg: &[u8]) -> Option<Vec<u8>> {
    let id = wire::message_id(msg)?;
    for up in upstreams {
        let Ok(mut stream) = TcpStream::connect_timeout(up, UPSTREAM_TIMEOUT) else {
            continue;
        };
        let _ = stream.set_read_timeout(Some(UPSTREAM_TIMEOUT));
        if write_framed(&mut stream, msg).is_err() {
            continue;
        }
        if let Ok(Some(answer)) = read_framed(&mut stream)
            && wire::message_id(&answer) == Some(id)
        {
            return Some(answer);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::service_table::ServiceEntry;

    #[test]
    fn a_loopback_resolver_is_reached_through_pasta_and_none_without_outbound() {
        let conf = "# systemd-resolved\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n\
                    nameserver 10.0.0.2\nnameserver ::1\nnameserver fe80::1%eth0\n\
                    search example.com\n";
        let via: IpAddr = "169.254.1.1".parse().unwrap();
        let up = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            upstreams(conf, Some(via), true),
            [up("169.254.1.1:53"), up("10.0.0.2:53")]
        );
        assert_eq!(upstreams(conf, None, true), [up("10.0.0.2:53")]);
        assert_eq!(upstreams(conf, Some(via), false), []);
        assert!(first_is_loopback(conf));
        // A first resolver off the loopback is asked directly.
        let direct = "search x\nnameserver 10.255.255.53\nnameserver 127.0.0.1\n";
        assert!(!first_is_loopback(direct));
        assert_eq!(upstreams(direct, None, true), [up("10.255.255.53:53")]);
        assert!(!first_is_loopback(""));
        assert_eq!(
            upstreams("nameserver 2001:db8::1\n", None, true),
            [up("[2001:db8::1]:53")]
        );
    }

    fn table() -> ServiceTable {
        ServiceTable {
            services: vec![ServiceEntry {
                namespace: "default".into(),
                name: "web".into(),
                kind: "ClusterIP".into(),
                cluster_ip: Some("10.89.0.10".into()),
                ports: Vec::new(),
                selector: Default::default(),
                endpoints: Vec::new(),
                publish_not_ready: false,
                allocate_node_ports: false,
                source: None,
            }],
        }
    }

    fn rcode(out: &Handling) -> u8 {
        match out {
            Handling::Answer(b) => b[3] & 0xF,
            other => panic!("{other:?}"),
        }
    }

    fn answers(out: &Handling) -> u16 {
        match out {
            Handling::Answer(b) => u16::from_be_bytes([b[6], b[7]]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ours_are_answered_the_rest_forwarded_or_failed_fast() {
        let t = table();
        let ask = |name: &str, qtype, can_forward| {
            let q = wire::query_bytes(1, name, qtype, None);
            handle(&q, &t, "cluster.local", can_forward, wire::udp_limit)
        };
        let a = ask("web.default.svc.cluster.local", wire::TYPE_A, true);
        assert_eq!((rcode(&a), answers(&a)), (wire::RCODE_NOERROR, 1));
        let aaaa = ask("web.default.svc.cluster.local", wire::TYPE_AAAA, true);
        assert_eq!((rcode(&aaaa), answers(&aaaa)), (wire::RCODE_NOERROR, 0));
        let nx = ask("x.default.svc.cluster.local", wire::TYPE_A, true);
        assert_eq!(rcode(&nx), wire::RCODE_NXDOMAIN);
        assert_eq!(ask("deb.debian.org", wire::TYPE_A, true), Handling::Forward);
        let no_route = ask("deb.debian.org", wire::TYPE_A, false);
        assert_eq!(rcode(&no_route), wire::RCODE_SERVFAIL);
        assert_eq!(
            handle(&[1], &t, "cluster.local", true, wire::udp_limit),
            Handling::Drop
        );
        let mut update = wire::query_bytes(1, "a", wire::TYPE_A, None);
        update[2] |= 5 << 3; // opcode UPDATE
        let notimp = handle(&update, &t, "cluster.local", true, wire::udp_limit);
        assert_eq!(rcode(&notimp), wire::RCODE_NOTIMP);
    }

    #[test]
    fn the_table_is_read_again_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = TableCache {
            path: ServiceTable::path(dir.path()),
            stamp: None,
            table: ServiceTable::default(),
        };
        assert!(cache.current().services.is_empty());
        table().store(dir.path()).unwrap();
        assert_eq!(cache.current().services.len(), 1);
        std::fs::remove_file(ServiceTable::path(dir.path())).unwrap();
        assert!(cache.current().services.is_empty());
    }

    #[test]
    fn a_server_answers_over_udp_and_tcp() {
        // On loopback with a port of its own: the same loops as in the holder.
        let dir = tempfile::tempdir().unwrap();
        table().store(dir.path()).unwrap();
        let server = Arc::new(Server {
            domain: "cluster.local".into(),
            upstreams: Vec::new(),
            table: Mutex::new(TableCache {
                path: ServiceTable::path(dir.path()),
                stamp: None,
                table: ServiceTable::default(),
            }),
            in_flight: AtomicUsize::new(0),
        });
        let udp = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let (udp_addr, tcp_addr) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
        let s = server.clone();
        std::thread::spawn(move || serve_udp(&s, &udp));
        std::thread::spawn(move || serve_tcp(&server, &tcp));
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client
            .send_to(
                &wire::query_bytes(42, "web.default.svc.cluster.local", wire::TYPE_A, None),
                udp_addr,
            )
            .unwrap();
        let mut buf = [0u8; 512];
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(wire::message_id(&buf[..n]), Some(42));
        assert_eq!(&buf[n - 4..n], &[10, 89, 0, 10]);
        // Outside names without upstreams: SERVFAIL.
        client
            .send_to(
                &wire::query_bytes(43, "example.org", wire::TYPE_A, None),
                udp_addr,
            )
            .unwrap();
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(buf[3] & 0xF, wire::RCODE_SERVFAIL);
        assert_eq!(wire::message_id(&buf[..n]), Some(43));
        let mut stream = TcpStream::connect(tcp_addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        for id in [44, 45] {
            let q = wire::query_bytes(id, "web.default.svc.cluster.local", wire::TYPE_A, None);
            write_framed(&mut stream, &q).unwrap();
            let answer = read_framed(&mut stream).unwrap().unwrap();
            assert_eq!(wire::message_id(&answer), Some(id));
            assert_eq!(&answer[answer.len() - 4..], &[10, 89, 0, 10]);
        }
    }

    #[test]
    fn forwarding_relays_the_upstream_answer() {
        let upstream = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = upstream.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, peer) = upstream.recv_from(&mut buf).unwrap();
            // A stray datagram first, then the answer.
            upstream.send_to(&[0, 0, 0x80, 0], peer).unwrap();
            let mut answer = buf[..n].to_vec();
            answer[2] |= 0x80;
            upstream.send_to(&answer, peer).unwrap();
        });
        let q = wire::query_bytes(77, "deb.debian.org", wire::TYPE_A, None);
        let answer = forward_udp(&[addr], &q).unwrap();
        assert_eq!(wire::message_id(&answer), Some(77));
        assert!(wire::is_response(&answer));
    }
}
