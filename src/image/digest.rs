//! sha256 digests and a reader that hashes what passes through it, so a blob
//! is verified in the same pass that unpacks it.

use std::io::Read;
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

/// `sha256:<64 hex>` split into its hex part, validated.
pub fn parse_sha256(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(hex)
}

pub fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Hashes and counts the bytes read through it. Its `tap` stays readable
/// after the reader itself is boxed inside a decompressor.
pub struct HashingReader<R> {
    inner: R,
    tap: Tap,
}

#[derive(Clone, Default)]
pub struct Tap(Arc<Mutex<(Sha256, u64)>>);

impl Tap {
    /// `(sha256:…, bytes read so far)`.
    pub fn result(&self) -> (String, u64) {
        let state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (format!("sha256:{:x}", state.0.clone().finalize()), state.1)
    }
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            tap: Tap::default(),
        }
    }

    pub fn tap(&self) -> Tap {
        self.tap.clone()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut state = self.tap.0.lock().unwrap_or_else(|e| e.into_inner());
        state.0.update(&buf[..n]);
        state.1 += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_everything_read() {
        let mut r = HashingReader::new(&b"hello world"[..]);
        let mut first = [0u8; 5];
        r.read_exact(&mut first).unwrap();
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        let (digest, n) = r.tap().result();
        assert_eq!(n, 11);
        assert_eq!(digest, sha256_of(b"hello world"));
        assert!(parse_sha256(&digest).is_some());
        assert!(parse_sha256("sha256:XYZ").is_none());
    }
}
