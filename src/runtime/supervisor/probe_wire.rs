//! What httpGet and grpc probes say on the wire, apart from sockets and
//! TLS: an HTTP/1.1 GET and the head of its answer, with redirects judged
//! as kubelet's Go client judges them; a gRPC health check
//! (`grpc.health.v1.Health/Check`) over HTTP/2 in plaintext with prior
//! knowledge (h2c), as kubelet sends it. Pure: bytes in, bytes and results
//! out.

use std::fmt::Write as _;

/// kubelet's User-Agent, `kube-probe/MAJOR.MINOR`.
pub const USER_AGENT: &str = "kube-probe/1.34";

/// Where an HTTP request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    /// The host name or address, without port or brackets.
    pub host: String,
    pub port: u16,
    /// The path with its query, starting with `/`.
    pub path: String,
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
    }
}

/// The GET request kubelet sends to `url`. `host_header` replaces the
/// URL's host in `Host` (a `Host` among `headers`, kept across a relative
/// redirect as Go keeps it).
pub fn http_request(url: &Url, host_header: Option<&str>, headers: &[(String, String)]) -> Vec<u8> {
    let mut req = format!("GET {} HTTP/1.1\r\n", url.path);
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    match host_header {
        Some(h) => {
            let _ = write!(req, "Host: {h}\r\n");
        }
        None => {
            let _ = write!(req, "Host: {}:{}\r\n", url.host, url.port);
        }
    }
    if !has("User-Agent") {
        let _ = write!(req, "User-Agent: {USER_AGENT}\r\n");
    }
    if !has("Accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        if !k.eq_ignore_ascii_case("Host") {
            let _ = write!(req, "{k}: {v}\r\n");
        }
    }
    req.push_str("Connection: close\r\n\r\n");
    req.into_bytes()
}

/// What the head of an HTTP response says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx.
    Success,
    /// A redirect to follow or not: the `Location`; what the probe says
    /// when it is not followed.
    Redirect(String, String),
    /// A 3xx that ends the probe: success with a warning, as kubelet's
    /// `probe.Warning`.
    Warning(String),
    /// A status that fails the probe, as kubelet words it.
    Failure(String),
    /// No HTTP answer at all: why (the caller says which URL).
    Unreadable(String),
}

/// The answer in `response` once its head is complete (or the server
/// closed the connection: `ended`); None while more is needed. kubelet's
/// rule: 200 to 399 succeed; a redirect (301, 302, 303, 307, 308 with a
/// `Location`) is Go's client's to follow.
pub fn http_answer(response: &[u8], ended: bool) -> Option<Answer> {
    let end = find(response, b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| find(response, b"\n\n").map(|i| i + 2));
    let (head, body) = match end {
        Some(e) => (&response[..e], &response[e..]),
        None if ended || response.len() > 16 * 1024 => (response, &[][..]),
        None => return None,
    };
    let text = String::from_utf8_lossy(head);
    let mut lines = text.lines();
    let line = lines.next().unwrap_or_default();
    let code = line
        .strip_prefix("HTTP/")
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok());
    let code = match code {
        Some(c) => c,
        None if response.is_empty() => {
            return Some(Answer::Unreadable(
                "the server closed the connection".into(),
            ));
        }
        None => {
            return Some(Answer::Unreadable(format!(
                "not an HTTP response: {:?}",
                line.trim_end()
            )));
        }
    };
    let location = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("location")
            .then(|| v.trim().to_string())
    });
    // kubelet quotes what it read of the body (10 KiB at most).
    let terminated = || {
        let body = String::from_utf8_lossy(&body[..body.len().min(10 * 1024)]);
        format!(
            "Probe terminated redirects, Response body: {}",
            body.trim_end()
        )
    };
    Some(match code {
        200..=299 => Answer::Success,
        301 | 302 | 303 | 307 | 308 if location.as_deref().is_some_and(|l| !l.is_empty()) => {
            Answer::Redirect(location.unwrap_or_default(), terminated())
        }
        300..=399 => Answer::Warning(terminated()),
        c => Answer::Failure(format!("HTTP probe failed with statuscode: {c}")),
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What to do with a redirect, as kubelet's `RedirectChecker` decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// Follow it: the next request; whether the `Host` given in the
    /// probe's headers still applies (a location without a host).
    Follow(Url, bool),
    /// Another host: not followed, the probe succeeds with a warning.
    OtherHost,
    /// The location is not a URL.
    Invalid(String),
    /// The tenth redirect: the probe fails.
    TooMany(String),
}

/// Judges a redirect from `from` to `location`, after `followed` redirects,
/// in a probe whose first request went to host `origin`.
pub fn redirect(from: &Url, location: &str, origin: &str, followed: u32) -> Redirect {
    let Some((next, relative)) = resolve(from, location) else {
        return Redirect::Invalid(format!(
            "Get \"{from}\": failed to parse Location header {location:?}"
        ));
    };
    if next.host != origin {
        return Redirect::OtherHost;
    }
    // Go's client refuses the redirect once ten requests were made.
    if followed + 1 >= 10 {
        return Redirect::TooMany(format!("Get \"{next}\": stopped after 10 redirects"));
    }
    Redirect::Follow(next, relative)
}

/// `location` resolved against `from` (RFC 3986, as far as probes need):
/// the URL and whether it had no host of its own.
fn resolve(from: &Url, location: &str) -> Option<(Url, bool)> {
    let location = location.split('#').next().unwrap_or_default();
    let lower = location.to_ascii_lowercase();
    let (https, rest) = if lower.starts_with("http://") {
        (Some(false), &location[7..])
    } else if lower.starts_with("https://") {
        (Some(true), &location[8..])
    } else if let Some(rest) = location.strip_prefix("//") {
        (None, rest)
    } else {
        // A path: absolute, or relative to the current one's directory.
        let path = if location.starts_with('/') {
            location.to_string()
        } else if location.is_empty() {
            from.path.clone()
        } else {
            let dir = from.path.split('?').next().unwrap_or("/");
            let dir = &dir[..dir.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{location}")
        };
        let next = Url {
            path,
            ..from.clone()
        };
        return Some((next, true));
    };
    let https = https.unwrap_or(from.https);
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) if !p.is_empty() => p.parse().ok()?,
        _ if https => 443,
        _ => 80,
    };
    if host.is_empty() {
        return None;
    }
    Some((
        Url {
            https,
            host: host.to_ascii_lowercase(),
            port,
            path,
        },
        false,
    ))
}

// ---- gRPC health checking over h2c ----

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The one stream a probe opens.
const STREAM: u32 = 1;

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Everything the client sends, at once: the preface, its SETTINGS (no
/// push), the request's HEADERS (HPACK literals, never indexed) and its
/// one DATA frame, a `HealthCheckRequest { service }` behind gRPC's
/// 5-byte prefix.
pub fn grpc_request(authority: &str, service: &str) -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    // SETTINGS_ENABLE_PUSH = 0.
    frame(&mut out, SETTINGS, 0, 0, &[0, 2, 0, 0, 0, 0]);
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/grpc.health.v1.Health/Check"),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("user-agent", USER_AGENT),
    ] {
        // Literal header field without indexing, new name.
        block.push(0);
        hpack_string(&mut block, name.as_bytes());
        hpack_string(&mut block, value.as_bytes());
    }
    frame(&mut out, HEADERS, END_HEADERS, STREAM, &block);
    let mut message = Vec::new();
    if !service.is_empty() {
        // Field 1, length-delimited.
        message.push(0x0a);
        varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    let mut data = vec![0];
    data.extend_from_slice(&(message.len() as u32).to_be_bytes());
    data.extend_from_slice(&message);
    frame(&mut out, DATA, END_STREAM, STREAM, &data);
    out
}

/// An HPACK string literal without Huffman coding.
fn hpack_string(out: &mut Vec<u8>, s: &[u8]) {
    // A 7-bit prefix integer (RFC 7541, 5.1).
    let mut n = s.len();
    if n < 127 {
        out.push(n as u8);
    } else {
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        out.push(n as u8);
    }
    out.extend_from_slice(s);
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The server's side of a gRPC health check, read frame by frame.
pub struct GrpcReader {
    buf: Vec<u8>,
    decoder: loona_hpack::Decoder<'static>,
    /// A header block whose CONTINUATION frames are still to come, and
    /// whether its HEADERS frame ended the stream.
    block: Option<(Vec<u8>, bool)>,
    /// The response's DATA.
    message: Vec<u8>,
    /// The response's `:status`, once its headers came.
    status: Option<String>,
}

impl Default for GrpcReader {
    fn default() -> Self {
        GrpcReader {
            buf: Vec::new(),
            decoder: loona_hpack::Decoder::new(),
            block: None,
            message: Vec::new(),
            status: None,
        }
    }
}

/// A failed RPC as grpc-go prints it (`%+v` of a status error).
fn rpc_error(code: &str, desc: &str) -> String {
    format!("error: health rpc probe failed: rpc error: code = {code} desc = {desc}")
}

impl GrpcReader {
    /// Takes bytes from the server; what to send back goes to `reply`
    /// (SETTINGS and PING acknowledgements). Some(result) once the RPC
    /// ended: Ok for SERVING, else kubelet's message.
    pub fn feed(&mut self, bytes: &[u8], reply: &mut Vec<u8>) -> Option<Result<(), String>> {
        self.buf.extend_from_slice(bytes);
        loop {
            if self.buf.len() < 9 {
                return None;
            }
            let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
            if len > 1 << 20 {
                return Some(Err(rpc_error(
                    "Internal",
                    &format!("a frame of {len} bytes"),
                )));
            }
            if self.buf.len() < 9 + len {
                return None;
            }
            let (kind, flags) = (self.buf[3], self.buf[4]);
            let stream = u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]])
                & 0x7fff_ffff;
            let payload: Vec<u8> = self.buf[9..9 + len].to_vec();
            self.buf.drain(..9 + len);
            if let Some(done) = self.frame(kind, flags, stream, &payload, reply) {
                return Some(done);
            }
        }
    }

    fn frame(
        &mut self,
        kind: u8,
        flags: u8,
        stream: u32,
        payload: &[u8],
        reply: &mut Vec<u8>,
    ) -> Option<Result<(), String>> {
        match kind {
            SETTINGS if flags & ACK == 0 => frame(reply, SETTINGS, ACK, 0, &[]),
            PING if flags & ACK == 0 => frame(reply, PING, ACK, 0, payload),
            GOAWAY => {
                let last = payload.get(..4).map_or(0, |b| {
                    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff
                });
                if last < STREAM {
                    return Some(Err(rpc_error(
                        "Unavailable",
                        "the server refused the stream (GOAWAY)",
                    )));
                }
            }
            RST_STREAM if stream == STREAM => {
                let code = payload
                    .get(..4)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                return Some(Err(rpc_error(
                    "Unavailable",
                    &format!("stream terminated by RST_STREAM with error code: {code}"),
                )));
            }
            HEADERS => {
                let mut p = unpad(payload, flags)?;
                if flags & PRIORITY != 0 {
                    p = p.get(5..)?;
                }
                self.block = Some((p.to_vec(), flags & END_STREAM != 0));
                if flags & END_HEADERS != 0 {
                    return self.end_block(stream);
                }
            }
            CONTINUATION => {
                let (block, _) = self.block.as_mut()?;
                block.extend_from_slice(payload);
                if flags & END_HEADERS != 0 {
                    return self.end_block(stream);
                }
            }
            DATA if stream == STREAM => {
                self.message.extend_from_slice(unpad(payload, flags)?);
                if flags & END_STREAM != 0 {
                    return Some(Err(rpc_error(
                        "Internal",
                        "server closed the stream without sending trailers",
                    )));
                }
            }
            _ => {}
        }
        None
    }

    /// A complete header block: decoded always (HPACK's table is shared by
    /// the connection); the response's headers, or its trailers.
    fn end_block(&mut self, stream: u32) -> Option<Result<(), String>> {
        let (block, ends) = self.block.take()?;
        let headers = match self.decoder.decode(&block) {
            Ok(h) => h,
            Err(e) => {
                return Some(Err(rpc_error(
                    "Internal",
                    &format!("undecodable headers: {e:?}"),
                )));
            }
        };
        if stream != STREAM {
            return None;
        }
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name.as_bytes())
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        if let Some(s) = get(":status") {
            self.status = Some(s);
        }
        if let Some(s) = self.status.as_deref()
            && s != "200"
        {
            return Some(Err(rpc_error(
                "Unknown",
                &format!("unexpected HTTP status code received from server: {s}"),
            )));
        }
        if !ends {
            return None;
        }
        let code = get("grpc-status")
            .and_then(|c| c.trim().parse::<u32>().ok())
            .unwrap_or(2);
        let desc = percent_decoded(&get("grpc-message").unwrap_or_default());
        Some(match code {
            0 => health(&self.message),
            12 => Err(format!(
                "error: this server does not implement the grpc health protocol \
                 (grpc.health.v1.Health): {desc}"
            )),
            c => Err(rpc_error(code_name(c), &desc)),
        })
    }

    /// The server closed the connection before the RPC ended.
    pub fn ended(&self) -> Result<(), String> {
        Err(rpc_error(
            "Unavailable",
            "the connection closed before the response",
        ))
    }
}

fn unpad(payload: &[u8], flags: u8) -> Option<&[u8]> {
    if flags & PADDED == 0 {
        return Some(payload);
    }
    let pad = *payload.first()? as usize;
    payload.get(1..payload.len().checked_sub(pad)?)
}

/// A `HealthCheckResponse`'s verdict: SERVING succeeds.
fn health(message: &[u8]) -> Result<(), String> {
    let Some(body) = message.get(5..) else {
        return Err(rpc_error(
            "Internal",
            "the response has no HealthCheckResponse",
        ));
    };
    // Field 1 (`status`, an enum): tag 0x08, then a varint; absent is
    // UNKNOWN. Other fields are skipped by their wire type.
    let mut status = 0u64;
    let mut i = 0;
    while i < body.len() {
        let Some((tag, n)) = read_varint(&body[i..]) else {
            break;
        };
        i += n;
        match tag & 7 {
            0 => {
                let Some((v, n)) = read_varint(&body[i..]) else {
                    break;
                };
                i += n;
                if tag >> 3 == 1 {
                    status = v;
                }
            }
            2 => {
                let Some((len, n)) = read_varint(&body[i..]) else {
                    break;
                };
                i += n + len as usize;
            }
            5 => i += 4,
            1 => i += 8,
            _ => break,
        }
    }
    let name = match status {
        0 => "UNKNOWN",
        1 => return Ok(()),
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    };
    Err(format!("service unhealthy (responded with {name:?})"))
}

fn read_varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// gRPC's status codes, as grpc-go names them.
fn code_name(code: u32) -> &'static str {
    match code {
        1 => "Canceled",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        _ => "Unknown",
    }
}

/// `grpc-message` is percent-encoded.
fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(path: &str) -> Url {
        Url {
            https: false,
            host: "10.88.0.5".into(),
            port: 8080,
            path: path.into(),
        }
    }

    #[test]
    fn answers_as_kubelet_reads_them() {
        assert_eq!(
            http_answer(b"HTTP/1.1 200 OK\r\n", false),
            None,
            "the head is not complete"
        );
        assert_eq!(
            http_answer(b"HTTP/1.1 204 No Content\r\n\r\n", false),
            Some(Answer::Success)
        );
        assert_eq!(
            http_answer(b"HTTP/1.1 500 Oops\r\nA: b\r\n\r\nbody", false),
            Some(Answer::Failure(
                "HTTP probe failed with statuscode: 500".into()
            ))
        );
        assert_eq!(
            http_answer(b"HTTP/1.1 302 Found\r\nlocation: /x\r\n\r\nmoved\n", false),
            Some(Answer::Redirect(
                "/x".into(),
                "Probe terminated redirects, Response body: moved".into()
            ))
        );
        // A 3xx that is not followed succeeds with a warning.
        assert_eq!(
            http_answer(b"HTTP/1.1 304 Not Modified\r\n\r\nsee", false),
            Some(Answer::Warning(
                "Probe terminated redirects, Response body: see".into()
            ))
        );
        assert!(matches!(
            http_answer(b"HTTP/1.1 302 Found\r\n\r\n", false),
            Some(Answer::Warning(_))
        ));
        assert!(matches!(
            http_answer(b"", true),
            Some(Answer::Unreadable(m)) if m.contains("closed")
        ));
        assert!(matches!(
            http_answer(b"SSH-2.0\r\n\r\n", false),
            Some(Answer::Unreadable(_))
        ));
    }

    #[test]
    fn redirects_as_kubelet_follows_them() {
        let from = url("/a/b?q=1");
        let origin = "10.88.0.5";
        assert_eq!(
            redirect(&from, "/fail", origin, 0),
            Redirect::Follow(url("/fail"), true)
        );
        assert_eq!(
            redirect(&from, "c", origin, 0),
            Redirect::Follow(url("/a/c"), true)
        );
        // Another port or scheme of the same host is followed.
        assert_eq!(
            redirect(&from, "https://10.88.0.5:8443/z#frag", origin, 3),
            Redirect::Follow(
                Url {
                    https: true,
                    port: 8443,
                    ..url("/z")
                },
                false
            )
        );
        assert_eq!(
            redirect(&from, "http://10.88.0.5?x", origin, 0),
            Redirect::Follow(
                Url {
                    port: 80,
                    ..url("/?x")
                },
                false
            )
        );
        assert_eq!(
            redirect(&from, "http://elsewhere.invalid/ok", origin, 0),
            Redirect::OtherHost
        );
        assert_eq!(
            redirect(&from, "//other:1/", origin, 0),
            Redirect::OtherHost
        );
        assert!(matches!(
            redirect(&from, "/loop", origin, 9),
            Redirect::TooMany(m) if m.ends_with("stopped after 10 redirects")
        ));
        assert!(matches!(
            redirect(&from, "http://h:port/", origin, 0),
            Redirect::Invalid(_)
        ));
    }

    #[test]
    fn requests_as_kubelet_sends_them() {
        let req = http_request(
            &Url {
                host: "example.com".into(),
                path: "/healthz?x=1".into(),
                ..url("")
            },
            None,
            &[("X-Custom".into(), "yes".into())],
        );
        let req = String::from_utf8(req).unwrap();
        assert!(req.starts_with("GET /healthz?x=1 HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("Host: example.com:8080\r\n"), "{req}");
        assert!(req.contains("User-Agent: kube-probe/"), "{req}");
        assert!(req.contains("X-Custom: yes\r\n"), "{req}");
        assert!(req.ends_with("\r\n\r\n"));
        let own_host = http_request(&url("/"), Some("h"), &[("host".into(), "h".into())]);
        let own_host = String::from_utf8(own_host).unwrap();
        assert_eq!(own_host.matches("ost:").count(), 1, "{own_host}");
        assert!(own_host.contains("Host: h\r\n"));
    }

    /// A server's frames: its SETTINGS, then `blocks` as HEADERS frames
    /// (the last ending the stream) around `data`.
    fn server(
        headers: &[(&[u8], &[u8])],
        data: Option<&[u8]>,
        trailers: &[(&[u8], &[u8])],
    ) -> Vec<u8> {
        let mut enc = loona_hpack::Encoder::new();
        let mut out = Vec::new();
        frame(&mut out, SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
        if !headers.is_empty() {
            let block = enc.encode(headers.iter().copied());
            frame(&mut out, HEADERS, END_HEADERS, STREAM, &block);
        }
        if let Some(d) = data {
            let mut payload = vec![0];
            payload.extend_from_slice(&(d.len() as u32).to_be_bytes());
            payload.extend_from_slice(d);
            frame(&mut out, DATA, 0, STREAM, &payload);
        }
        // The trailers split across a CONTINUATION frame.
        let block = enc.encode(trailers.iter().copied());
        let (a, b) = block.split_at(block.len() / 2);
        frame(&mut out, HEADERS, END_STREAM, STREAM, a);
        frame(&mut out, CONTINUATION, END_HEADERS, STREAM, b);
        out
    }

    fn check(bytes: &[u8]) -> (Option<Result<(), String>>, Vec<u8>) {
        let mut r = GrpcReader::default();
        let mut reply = Vec::new();
        // One byte at a time: frames split anywhere.
        let mut result = None;
        for b in bytes {
            if let Some(done) = r.feed(std::slice::from_ref(b), &mut reply) {
                result = Some(done);
                break;
            }
        }
        (result, reply)
    }

    const OK_HEAD: &[(&[u8], &[u8])] =
        &[(b":status", b"200"), (b"content-type", b"application/grpc")];

    #[test]
    fn grpc_request_frames() {
        let req = grpc_request("10.0.0.1:9000", "ready");
        assert!(req.starts_with(PREFACE));
        // Its DATA frame closes the stream and carries the service name.
        let tail = &req[req.len() - (9 + 5 + 7)..];
        assert_eq!(&tail[3..5], &[DATA, END_STREAM]);
        assert_eq!(&tail[9..], b"\0\0\0\0\x07\x0a\x05ready");
        let mut dec = loona_hpack::Decoder::new();
        let start = PREFACE.len() + 9 + 6;
        let len = u32::from_be_bytes([0, req[start], req[start + 1], req[start + 2]]) as usize;
        let headers = dec.decode(&req[start + 9..start + 9 + len]).unwrap();
        assert_eq!(headers[0], (b":method".to_vec(), b"POST".to_vec()));
        assert!(headers.contains(&(b":authority".to_vec(), b"10.0.0.1:9000".to_vec())));
        assert!(headers.contains(&(b"te".to_vec(), b"trailers".to_vec())));
        // No service: an empty message.
        assert!(grpc_request("a:1", "").ends_with(&[0, 0, 0, 0, 0]));
    }

    #[test]
    fn grpc_health_answers() {
        let ok: &[(&[u8], &[u8])] = &[(b"grpc-status", b"0")];
        let (r, reply) = check(&server(OK_HEAD, Some(&[0x08, 0x01]), ok));
        assert_eq!(r, Some(Ok(())));
        // The server's SETTINGS were acknowledged.
        assert_eq!(reply, [0, 0, 0, SETTINGS, ACK, 0, 0, 0, 0]);
        let (r, _) = check(&server(OK_HEAD, Some(&[0x08, 0x02]), ok));
        assert_eq!(
            r,
            Some(Err(
                "service unhealthy (responded with \"NOT_SERVING\")".into()
            ))
        );
        // Trailers only: an unknown service.
        let (r, _) = check(&server(
            &[],
            None,
            &[
                (b":status", b"200"),
                (b"grpc-status", b"5"),
                (b"grpc-message", b"unknown%20service"),
            ],
        ));
        assert_eq!(
            r,
            Some(Err(
                "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"
                    .into()
            ))
        );
        let (r, _) = check(&server(
            &[],
            None,
            &[(b":status", b"200"), (b"grpc-status", b"12")],
        ));
        assert!(r.unwrap().unwrap_err().contains("does not implement"));
        let (r, _) = check(&server(&[(b":status", b"502")], None, &[]));
        assert!(r.unwrap().unwrap_err().contains("502"));
    }
}
