// TEMPORARY placeholder until branch `unpack` merges. Not committed.
use std::io::Read;
use std::path::Path;
pub struct UnpackOptions {
    pub chown: bool,
}
#[derive(Default)]
pub struct UnpackReport {
    pub devices_skipped: u64,
    pub xattrs_skipped: u64,
    pub entries: u64,
}
#[derive(thiserror::Error, Debug)]
pub enum UnpackError {
    #[error("{entry}: {reason}")]
    Escape { entry: String, reason: String },
    #[error("{entry}: {source}")]
    Io {
        entry: String,
        source: std::io::Error,
    },
    #[error("corrupt: {source}")]
    Corrupt { source: std::io::Error },
}
#[derive(Clone, Copy, Debug)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}
impl Compression {
    pub fn from_media_type(mt: &str) -> Option<Compression> {
        if mt.ends_with("gzip") {
            Some(Compression::Gzip)
        } else if mt.ends_with("zstd") {
            Some(Compression::Zstd)
        } else if mt.ends_with("tar") {
            Some(Compression::None)
        } else {
            None
        }
    }
    pub fn sniff(b: &[u8]) -> Compression {
        if b.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
    pub fn decompressor<'a, R: Read + 'a>(self, r: R) -> std::io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(r),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
            Compression::Zstd => Box::new(zstd::Decoder::new(r)?),
        })
    }
}
pub fn unpack_layer<R: Read>(
    r: R,
    dest: &Path,
    _o: &UnpackOptions,
) -> Result<UnpackReport, UnpackError> {
    let mut a = tar::Archive::new(r);
    a.unpack(dest)
        .map_err(|source| UnpackError::Corrupt { source })?;
    let mut r = a.into_inner();
    std::io::copy(&mut r, &mut std::io::sink())
        .map_err(|source| UnpackError::Corrupt { source })?;
    Ok(UnpackReport::default())
}
