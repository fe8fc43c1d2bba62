//! `minipod attach` ↔ the supervisor, on the pod's control socket (as
//! conmon's attach socket): the client asks `attach CONTAINER stdin|nostdin`
//! on one line; the supervisor answers `error MESSAGE` (and closes), or
//! `attached tty=0|1 stdin=0|1` (the container has a tty; the client's
//! input will reach the container's stdin) and the connection carries
//! frames from then on: one byte of kind, four bytes of length (big
//! endian), the payload.
//!
//! Supervisor → client: `o` stdout bytes (a tty's output is stdout), `e`
//! stderr bytes, `x` the container exited (its code, an i32), after which
//! the supervisor closes. Client → supervisor: `i` input bytes, `c` the
//! client's input ended (its EOF), `w` its window size (rows, columns:
//! two u16). A client detaches by closing the connection.

use anyhow::{Result, bail};

/// Larger payloads are a broken peer: frames carry what one read gave.
pub const MAX_PAYLOAD: usize = 64 << 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(i32),
    Input(Vec<u8>),
    InputEnd,
    Resize { rows: u16, cols: u16 },
}

/// The request line.
pub fn request(container: &str, stdin: bool) -> String {
    let with = if stdin { "stdin" } else { "nostdin" };
    format!("attach {container} {with}\n")
}

/// A request line's container and whether the client sends input.
pub fn parse_request(line: &str) -> Option<(&str, bool)> {
    let mut words = line.split_whitespace();
    let (Some("attach"), Some(name), with, None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return None;
    };
    Some((name, with != Some("nostdin")))
}

/// The answer that starts a session.
pub fn hello(tty: bool, stdin: bool) -> String {
    format!("attached tty={} stdin={}\n", u8::from(tty), u8::from(stdin))
}

/// `hello`'s (tty, stdin), or the supervisor's error.
pub fn parse_hello(line: &str) -> Result<(bool, bool)> {
    let line = line.trim_end();
    if let Some(msg) = line.strip_prefix("error ") {
        bail!("{msg}");
    }
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("attached"), Some(tty), Some(stdin)) => Ok((tty == "tty=1", stdin == "stdin=1")),
        _ => bail!("the pod's supervisor answered {line:?} to attach (another build of minipod?)"),
    }
}

pub fn encode(frame: &Frame) -> Vec<u8> {
    let (kind, payload): (u8, Vec<u8>) = match frame {
        Frame::Stdout(b) => (b'o', b.clone()),
        Frame::Stderr(b) => (b'e', b.clone()),
        Frame::Exit(code) => (b'x', code.to_be_bytes().to_vec()),
        Frame::Input(b) => (b'i', b.clone()),
        Frame::InputEnd => (b'c', Vec::new()),
        Frame::Resize { rows, cols } => {
            let mut p = rows.to_be_bytes().to_vec();
            p.extend_from_slice(&cols.to_be_bytes());
            (b'w', p)
        }
    };
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Frames out of a byte stream that arrives in pieces of any size.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, `None` until one is whole; an error for bytes
    /// no peer of this build sends.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        let Some(head) = self.buf.get(..5) else {
            return Ok(None);
        };
        let kind = head[0];
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_PAYLOAD {
            bail!("attach frame of {len} bytes (at most {MAX_PAYLOAD})");
        }
        let Some(payload) = self.buf.get(5..5 + len) else {
            return Ok(None);
        };
        let fixed = |n: usize| -> Result<()> {
            if len != n {
                bail!("attach frame {:?} of {len} bytes, not {n}", kind as char);
            }
            Ok(())
        };
        let frame = match kind {
            b'o' => Frame::Stdout(payload.to_vec()),
            b'e' => Frame::Stderr(payload.to_vec()),
            b'i' => Frame::Input(payload.to_vec()),
            b'x' => {
                fixed(4)?;
                Frame::Exit(i32::from_be_bytes([
                    payload[0], payload[1], payload[2], payload[3],
                ]))
            }
            b'c' => {
                fixed(0)?;
                Frame::InputEnd
            }
            b'w' => {
                fixed(4)?;
                Frame::Resize {
                    rows: u16::from_be_bytes([payload[0], payload[1]]),
                    cols: u16::from_be_bytes([payload[2], payload[3]]),
                }
            }
            other => bail!("attach frame of unknown kind {other:#x}"),
        };
        self.buf.drain(..5 + len);
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_any_split() {
        let frames = vec![
            Frame::Stdout(b"hello\r\n".to_vec()),
            Frame::Input(Vec::new()),
            Frame::Resize { rows: 24, cols: 80 },
            Frame::Stderr(vec![0xff; 300]),
            Frame::InputEnd,
            Frame::Exit(-1),
            Frame::Exit(130),
        ];
        let bytes: Vec<u8> = frames.iter().flat_map(encode).collect();
        for chunk in [1, 2, 3, 5, 7, bytes.len()] {
            let mut d = Decoder::default();
            let mut got = Vec::new();
            for piece in bytes.chunks(chunk) {
                d.push(piece);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, frames, "in pieces of {chunk}");
        }
    }

    #[test]
    fn broken_frames_are_errors() {
        for bytes in [
            &b"z\0\0\0\0"[..],
            &b"x\0\0\0\x02ab"[..],
            &b"o\x7f\0\0\0"[..],
            &b"c\0\0\0\x01a"[..],
        ] {
            let mut d = Decoder::default();
            d.push(bytes);
            assert!(d.next_frame().is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn handshake_lines() {
        assert_eq!(parse_request(&request("web", true)), Some(("web", true)));
        assert_eq!(parse_request(&request("web", false)), Some(("web", false)));
        assert_eq!(parse_request("attach\n"), None);
        assert_eq!(parse_request("process web\n"), None);
        assert_eq!(parse_hello(&hello(true, false)).unwrap(), (true, false));
        let err = parse_hello("error container c of pod p is not running\n").unwrap_err();
        assert_eq!(err.to_string(), "container c of pod p is not running");
        assert!(parse_hello("ok\n").is_err());
    }
}
