//! A tcpSocket, httpGet or grpc attempt as a non-blocking state machine on
//! one socket, moved on by the supervisor's loop whenever the socket is
//! ready: connect; then (httpGet) a GET, over TLS for `scheme: HTTPS`, and
//! its answer's head, following redirects as kubelet does; or (grpc) a
//! health check over h2c. No thread, no blocking call.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::{Arc, OnceLock};

use nix::poll::PollFlags;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, connect, getsockopt, socket, sockopt,
};

use super::probe_wire::{self, Answer, GrpcReader, Redirect, Url};
use crate::net::portfwd::PodSockets;

/// How a probe reaches its host.
#[derive(Clone)]
pub enum Route {
    /// The pod's address, through a socket of the pod's netns.
    Pod {
        ip: Ipv4Addr,
        sockets: Arc<PodSockets>,
    },
    /// From the supervisor's own netns.
    Direct(Ipv4Addr),
}

impl Route {
    pub fn ip(&self) -> Ipv4Addr {
        match self {
            Route::Pod { ip, .. } | Route::Direct(ip) => *ip,
        }
    }

    /// A non-blocking connection under way to `port`.
    fn open(&self, port: u16) -> Result<(TcpStream, SocketAddrV4), String> {
        let to = SocketAddrV4::new(self.ip(), port);
        let sock = match self {
            Route::Pod { sockets, .. } => {
                let sock = sockets
                    .open_tcp()
                    .map_err(|e| format!("a socket in the pod: {e}"))?;
                nix::fcntl::fcntl(
                    &sock,
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                )
                .map_err(|e| format!("fcntl: {e}"))?;
                sock
            }
            Route::Direct(_) => socket(
                AddressFamily::Inet,
                SockType::Stream,
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                None,
            )
            .map_err(|e| format!("socket: {e}"))?,
        };
        match connect(sock.as_raw_fd(), &SockaddrIn::from(to)) {
            Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => Ok((TcpStream::from(sock), to)),
            Err(e) => Err(format!("dial tcp {to}: connect: {}", e.desc())),
        }
    }
}

/// What an attempt came to so far.
pub enum Step {
    Pending,
    Done(Result<(), String>),
    /// Success, with a warning (kubelet's `probe.Warning`).
    Warned(String),
}

/// One attempt under way.
pub enum Net {
    Connecting {
        sock: TcpStream,
        to: SocketAddrV4,
        /// What to say once connected; None for tcpSocket.
        then: Option<Box<Talk>>,
    },
    Talking {
        conn: Conn,
        talk: Box<Talk>,
        /// What came and was not used yet.
        input: Vec<u8>,
    },
    /// Between two states (never kept).
    Moved,
}

pub enum Talk {
    Http(HttpTalk),
    Grpc {
        /// `ip:port`, for `:authority` and messages.
        addr: String,
        service: String,
        reader: GrpcReader,
    },
}

pub struct HttpTalk {
    url: Url,
    /// The host of the first request: redirects elsewhere are not followed.
    origin: String,
    followed: u32,
    /// A `Host` among the probe's headers, while it applies.
    host_header: Option<String>,
    headers: Vec<(String, String)>,
    route: Route,
}

/// A tcpSocket attempt: connected is success.
pub fn tcp(route: &Route, port: u16) -> Result<Net, String> {
    let (sock, to) = route.open(port)?;
    Ok(Net::Connecting {
        sock,
        to,
        then: None,
    })
}

/// An httpGet attempt to `url` (its host the probe's `host` or the route's
/// address).
pub fn http(route: &Route, mut url: Url, headers: &[(String, String)]) -> Result<Net, String> {
    // Host names are compared with the redirects' (which keep this host
    // when relative): one spelling for both.
    url.host.make_ascii_lowercase();
    let host_header = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Host"))
        .map(|(_, v)| v.clone());
    let talk = HttpTalk {
        origin: url.host.clone(),
        url,
        followed: 0,
        host_header,
        headers: headers.to_vec(),
        route: route.clone(),
    };
    http_from(talk)
}

fn http_from(talk: HttpTalk) -> Result<Net, String> {
    let (sock, to) = talk
        .route
        .open(talk.url.port)
        .map_err(|e| format!("Get \"{}\": {e}", talk.url))?;
    Ok(Net::Connecting {
        sock,
        to,
        then: Some(Box::new(Talk::Http(talk))),
    })
}

/// A grpc attempt: `grpc.health.v1.Health/Check` for `service`.
pub fn grpc(route: &Route, port: u16, service: &str) -> Result<Net, String> {
    let addr = format!("{}:{port}", route.ip());
    let (sock, to) = route
        .open(port)
        .map_err(|e| format!("error: failed to connect service at {addr:?}: {e}"))?;
    Ok(Net::Connecting {
        sock,
        to,
        then: Some(Box::new(Talk::Grpc {
            addr,
            service: service.to_string(),
            reader: GrpcReader::default(),
        })),
    })
}

impl Net {
    /// Its socket and what it waits for.
    pub fn poll(&self) -> Option<(BorrowedFd<'_>, PollFlags)> {
        match self {
            Net::Connecting { sock, .. } => Some((sock.as_fd(), PollFlags::POLLOUT)),
            Net::Talking { conn, .. } => {
                let mut flags = PollFlags::POLLIN;
                if conn.wants_write() {
                    flags |= PollFlags::POLLOUT;
                }
                Some((conn.sock.as_fd(), flags))
            }
            Net::Moved => None,
        }
    }

    /// Why it failed when its time ran out, as kubelet says it.
    pub fn timeout_message(&self, secs: u64) -> String {
        let talk = match self {
            Net::Connecting { then, .. } => then.as_deref(),
            Net::Talking { talk, .. } => Some(&**talk),
            Net::Moved => None,
        };
        match (self, talk) {
            (Net::Connecting { .. }, Some(Talk::Grpc { addr, .. })) => format!(
                "timeout: failed to connect service {addr:?} within {secs}s: context deadline exceeded"
            ),
            (_, Some(Talk::Grpc { .. })) => {
                format!("timeout: health rpc did not complete within {secs}s")
            }
            (_, Some(Talk::Http(h))) => format!(
                "Get \"{}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                h.url
            ),
            (Net::Connecting { to, .. }, None) => {
                format!("dial tcp {to}: i/o timeout (timed out after {secs}s)")
            }
            (_, None) => format!("timed out after {secs}s"),
        }
    }

    /// Moves it on as far as its socket allows without blocking.
    pub fn progress(&mut self) -> Step {
        loop {
            match self {
                Net::Moved => {
                    return Step::Done(Err("internal: an attempt lost its socket".into()));
                }
                Net::Connecting { sock, to, then } => {
                    let mut fds = [nix::poll::PollFd::new(sock.as_fd(), PollFlags::POLLOUT)];
                    let connected = nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO)
                        .is_ok_and(|n| n > 0);
                    if !connected {
                        return Step::Pending;
                    }
                    let error = match getsockopt(&*sock, sockopt::SocketError) {
                        Ok(0) => None,
                        Ok(errno) => Some(nix::errno::Errno::from_raw(errno).desc().to_string()),
                        Err(e) => Some(e.to_string()),
                    };
                    if let Some(e) = error {
                        let dial = format!("dial tcp {to}: connect: {e}");
                        return Step::Done(Err(match then.as_deref() {
                            None => dial,
                            Some(Talk::Http(h)) => format!("Get \"{}\": {dial}", h.url),
                            Some(Talk::Grpc { addr, .. }) => {
                                format!("error: failed to connect service at {addr:?}: {dial}")
                            }
                        }));
                    }
                    let Some(talk) = then.take() else {
                        // tcpSocket: connected is success.
                        return Step::Done(Ok(()));
                    };
                    let Net::Connecting { sock, .. } = std::mem::replace(self, Net::Moved) else {
                        unreachable!("matched above");
                    };
                    let mut conn = match talk.tls_name() {
                        None => Conn::plain(sock),
                        Some(name) => match Conn::tls(sock, name) {
                            Ok(c) => c,
                            Err(e) => return Step::Done(Err(talk.error(&e))),
                        },
                    };
                    conn.send(&talk.request());
                    *self = Net::Talking {
                        conn,
                        talk,
                        input: Vec::new(),
                    };
                }
                Net::Talking { conn, talk, input } => {
                    let ended = match conn.pump(input) {
                        Ok(ended) => ended,
                        Err(e) => return Step::Done(Err(talk.error(&e))),
                    };
                    match &mut **talk {
                        Talk::Grpc { reader, .. } => {
                            let mut reply = Vec::new();
                            if let Some(result) = reader.feed(&std::mem::take(input), &mut reply) {
                                return Step::Done(result);
                            }
                            if ended {
                                return Step::Done(reader.ended());
                            }
                            if reply.is_empty() {
                                return Step::Pending;
                            }
                            // Acknowledgements to send: round again.
                            conn.send(&reply);
                        }
                        Talk::Http(h) => {
                            let Some(answer) = probe_wire::http_answer(input, ended) else {
                                return Step::Pending;
                            };
                            let (location, terminated) = match answer {
                                Answer::Success => return Step::Done(Ok(())),
                                Answer::Failure(m) => return Step::Done(Err(m)),
                                Answer::Unreadable(m) => {
                                    return Step::Done(Err(format!("Get \"{}\": {m}", h.url)));
                                }
                                Answer::Warning(m) => return Step::Warned(m),
                                Answer::Redirect(location, terminated) => (location, terminated),
                            };
                            let (url, relative) = match probe_wire::redirect(
                                &h.url, &location, &h.origin, h.followed,
                            ) {
                                Redirect::Follow(url, relative) => (url, relative),
                                Redirect::OtherHost => return Step::Warned(terminated),
                                Redirect::Invalid(m) | Redirect::TooMany(m) => {
                                    return Step::Done(Err(m));
                                }
                            };
                            let next = HttpTalk {
                                url,
                                origin: std::mem::take(&mut h.origin),
                                followed: h.followed + 1,
                                host_header: h.host_header.take().filter(|_| relative),
                                headers: std::mem::take(&mut h.headers),
                                route: h.route.clone(),
                            };
                            match http_from(next) {
                                Ok(net) => *self = net,
                                Err(e) => return Step::Done(Err(e)),
                            }
                        }
                    }
                }
            }
        }
    }
}

impl Talk {
    /// The server name to send in TLS, when it is spoken.
    fn tls_name(&self) -> Option<String> {
        match self {
            Talk::Http(h) if h.url.https => Some(h.url.host.clone()),
            _ => None,
        }
    }

    fn request(&self) -> Vec<u8> {
        match self {
            Talk::Http(h) => probe_wire::http_request(&h.url, h.host_header.as_deref(), &h.headers),
            Talk::Grpc { addr, service, .. } => probe_wire::grpc_request(addr, service),
        }
    }

    /// An I/O error, as kubelet would say it.
    fn error(&self, e: &str) -> String {
        match self {
            Talk::Http(h) => format!("Get \"{}\": {e}", h.url),
            Talk::Grpc { .. } => format!("error: health rpc probe failed: {e}"),
        }
    }
}

/// A connected socket, with TLS or without.
pub struct Conn {
    sock: TcpStream,
    tls: Option<Box<rustls::ClientConnection>>,
    /// Plain bytes still to write.
    out: Vec<u8>,
}

impl Conn {
    fn plain(sock: TcpStream) -> Conn {
        Conn {
            sock,
            tls: None,
            out: Vec::new(),
        }
    }

    /// TLS to `name`, the certificate not checked (kubelet's
    /// `InsecureSkipVerify`).
    fn tls(sock: TcpStream, name: String) -> Result<Conn, String> {
        let name = rustls::pki_types::ServerName::try_from(name)
            .map_err(|e| format!("TLS server name: {e}"))?;
        let tls =
            rustls::ClientConnection::new(tls_config()?, name).map_err(|e| format!("TLS: {e}"))?;
        Ok(Conn {
            sock,
            tls: Some(Box::new(tls)),
            out: Vec::new(),
        })
    }

    fn send(&mut self, bytes: &[u8]) {
        match &mut self.tls {
            // Buffered by rustls until the handshake is done.
            Some(tls) => {
                let _ = tls.writer().write_all(bytes);
            }
            None => self.out.extend_from_slice(bytes),
        }
    }

    fn wants_write(&self) -> bool {
        match &self.tls {
            Some(tls) => tls.wants_write(),
            None => !self.out.is_empty(),
        }
    }

    /// Writes what it can, then reads what came (plaintext appended to
    /// `input`). Ok(true) once the server closed the connection.
    fn pump(&mut self, input: &mut Vec<u8>) -> Result<bool, String> {
        let mut chunk = [0u8; 4096];
        loop {
            self.flush()?;
            let read = match &mut self.tls {
                Some(tls) => tls.read_tls(&mut self.sock),
                None => self.sock.read(&mut chunk),
            };
            match read {
                Ok(n) => {
                    let Some(tls) = &mut self.tls else {
                        if n == 0 {
                            return Ok(true);
                        }
                        input.extend_from_slice(&chunk[..n]);
                        continue;
                    };
                    tls.process_new_packets().map_err(|e| format!("tls: {e}"))?;
                    loop {
                        match tls.reader().read(&mut chunk) {
                            Ok(0) => return Ok(true),
                            Ok(m) => input.extend_from_slice(&chunk[..m]),
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            // Closed without close_notify.
                            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                                return Ok(true);
                            }
                            Err(e) => return Err(e.to_string()),
                        }
                    }
                    if n == 0 {
                        return Ok(true);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        loop {
            let written = match &mut self.tls {
                Some(tls) if tls.wants_write() => tls.write_tls(&mut self.sock),
                None if !self.out.is_empty() => self.sock.write(&self.out).inspect(|&n| {
                    self.out.drain(..n);
                }),
                _ => return Ok(()),
            };
            match written {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
    }
}

/// The TLS client's settings, made once: ring (the provider ureq already
/// brings), any certificate accepted.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(config))
        })
        .clone()
}

/// Accepts the server's certificate whatever it is, as kubelet does; the
/// handshake's signatures are still checked against it.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
