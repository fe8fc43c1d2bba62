//! NodePort and LoadBalancer Services on the host: the holder's listeners.
//!
//! The holder lives in the uplink netns, where Services' virtual IPs are
//! forwarded to their endpoints; a listener on the host must be a socket of
//! the host's netns, which the holder cannot join again once it left it
//! (that netns belongs to the initial user namespace). A netns switch moves
//! one thread only, so before leaving, the holder starts a thread that
//! stays behind, the `Binder`, which makes every listener. The rest
//! (accepting, connecting to the virtual IP) runs on threads of the uplink
//! netns, where the connection is DNAT'ed as a pod's would be.
//!
//! Who asks: `runtime::services::sync`, once it wrote the table, sends the
//! whole list of host ports wanted (`services::host_forwards`) to the
//! holder's socket (`holder.sock`); the holder binds the new ones, closes
//! those no longer wanted, and answers with what failed.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use anyhow::{Context, Result};

use super::portfwd::{self, Listener, Protocol, Published, Upstream};
use super::services::HostForward;

type BindReply = mpsc::Sender<Result<Listener, String>>;

/// The thread left in the host's netns, binding listeners on request.
pub struct Binder(mpsc::Sender<(Published, &'static str, BindReply)>);

impl Binder {
    /// Starts the binding thread in the calling thread's netns: call it
    /// before the holder leaves the host's.
    pub fn start() -> Result<Binder> {
        let (tx, rx) = mpsc::channel::<(Published, &'static str, BindReply)>();
        std::thread::Builder::new()
            .name("host-binder".into())
            .spawn(move || {
                for (port, noun, reply) in rx {
                    let bound = portfwd::bind(std::slice::from_ref(&port), noun)
                        .map(|mut l| l.remove(0))
                        .map_err(|e| format!("{e:#}"));
                    let _ = reply.send(bound);
                }
            })
            .context("starting the thread that binds host ports")?;
        Ok(Binder(tx))
    }

    fn bind(&self, port: Published, noun: &'static str) -> Result<Listener, String> {
        let (reply, answer) = mpsc::channel();
        self.0
            .send((port, noun, reply))
            .map_err(|_| "the holder's binding thread is gone".to_string())?;
        answer
            .recv()
            .map_err(|_| "the holder's binding thread is gone".to_string())?
    }
}

/// One published port: its listener's thread, and the pipe whose closing
/// ends it.
struct Serving {
    to: SocketAddr,
    stop: Option<OwnedFd>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Serving {
    /// Returns once the listener is closed, so its port can be bound again.
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The host ports the holder publishes, by (port, protocol).
pub struct Publisher {
    binder: Binder,
    serving: Mutex<HashMap<(u16, Protocol), Serving>>,
}

impl Publisher {
    pub fn new(binder: Binder) -> Publisher {
        Publisher {
            binder,
            serving: Mutex::default(),
        }
    }

    /// Whether any port is published (the holder stays while one is).
    pub fn publishing(&self) -> bool {
        !self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(u16, Protocol), Serving>> {
        self.serving.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes exactly `wanted`: closes the ports no longer wanted (or
    /// going elsewhere), then binds the new ones. Returns what failed, one
    /// message each, naming who asked. Call from the uplink netns.
    pub fn reconcile(&self, wanted: &[HostForward]) -> Vec<String> {
        let target = |f: &HostForward| SocketAddr::new(IpAddr::V4(f.vip), f.port);
        let mut serving = self.lock();
        serving.retain(|key, s| {
            wanted
                .iter()
                .any(|f| (f.host_port, f.protocol) == *key && target(f) == s.to)
        });
        let upstream = Arc::new(Upstream::Here);
        let mut failed = Vec::new();
        for f in wanted {
            let key = (f.host_port, f.protocol);
            if serving.contains_key(&key) {
                continue;
            }
            let noun = if f.node_port { "nodePort" } else { "port" };
            let port = Published {
                host_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                host_port: f.host_port,
                container_port: f.port,
                protocol: f.protocol,
            };
            let started = self.binder.bind(port, noun).and_then(|listener| {
                let (stop_r, stop_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                    .map_err(|e| format!("a pipe: {e}"))?;
                let thread = listener
                    .spawn(upstream.clone(), target(f), Some(stop_r))
                    .map_err(|e| format!("a thread: {e}"))?;
                Ok(Serving {
                    to: target(f),
                    stop: Some(stop_w),
                    thread: Some(thread),
                })
            });
            match started {
                Ok(s) => {
                    serving.insert(key, s);
                }
                Err(e) => failed.push(format!("{}: {e}", f.asked_by)),
            }
        }
        failed
    }
}

/// Serves publishing requests on `socket`, one at a time, on a thread of
/// its own (started from the uplink netns, as its listeners' threads are).
pub fn serve(socket: UnixListener, publisher: Arc<Publisher>) -> Result<()> {
    std::thread::Builder::new()
        .name("node-ports".into())
        .spawn(move || {
            for conn in socket.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let mut text = Vec::new();
                let reply = match conn
                    .read_to_end(&mut text)
                    .map_err(|e| e.to_string())
                    .and_then(|_| {
                        serde_json::from_slice::<Vec<HostForward>>(&text).map_err(|e| e.to_string())
                    }) {
                    Ok(wanted) => publisher.reconcile(&wanted),
                    Err(e) => vec![format!("a bad request to the holder: {e}")],
                };
                let _ = conn.write_all(&serde_json::to_vec(&reply).unwrap_or_default());
            }
        })
        .context("starting the holder's publishing thread")?;
    Ok(())
}

/// Asks the holder listening on `socket` to publish exactly `wanted`; what
/// failed, one message each.
pub fn request(socket: &Path, wanted: &[HostForward]) -> Result<Vec<String>> {
    let what = || {
        format!(
            "asking the holder to publish Services on the host ({})",
            socket.display()
        )
    };
    let mut conn = UnixStream::connect(socket).with_context(|| {
        format!(
            "{}: is the holder from an older minipod? `minipod system reset` starts a new one",
            what()
        )
    })?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .with_context(what)?;
    conn.write_all(&serde_json::to_vec(wanted)?)
        .with_context(what)?;
    conn.shutdown(std::net::Shutdown::Write)
        .with_context(what)?;
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).with_context(what)?;
    serde_json::from_slice(&reply).with_context(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward(port: u16, to: u16) -> HostForward {
        HostForward {
            asked_by: "Service default/web spec.ports[0].nodePort".into(),
            node_port: true,
            host_port: port,
            protocol: Protocol::Tcp,
            vip: Ipv4Addr::LOCALHOST,
            port: to,
        }
    }

    /// In one netns (the test's), a published port forwards to its
    /// target, a port taken by another process fails with the reason, and
    /// a port no longer wanted is closed at once, free to bind again.
    #[test]
    fn publishes_exactly_what_is_wanted_through_the_socket() {
        let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let backend_port = backend.local_addr().unwrap().port();
        let free = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let host_port = free.local_addr().unwrap().port();
        drop(free);
        let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let busy_port = busy.local_addr().unwrap().port();

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("holder.sock");
        let publisher = Arc::new(Publisher::new(Binder::start().unwrap()));
        serve(UnixListener::bind(&path).unwrap(), publisher.clone()).unwrap();

        let failed = request(
            &path,
            &[forward(host_port, backend_port), forward(busy_port, 1)],
        )
        .unwrap();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(
            failed[0].starts_with("Service default/web spec.ports[0].nodePort: nodePort"),
            "{failed:?}"
        );
        assert!(failed[0].contains("already in use"), "{failed:?}");
        assert!(publisher.publishing());

        let mut client = std::net::TcpStream::connect(("127.0.0.1", host_port)).unwrap();
        let (mut server, _) = backend.accept().unwrap();
        client.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        server.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");

        assert!(request(&path, &[]).unwrap().is_empty());
        assert!(!publisher.publishing());
        std::net::TcpListener::bind(("0.0.0.0", host_port)).expect("the port is free again");
    }
}
