//! Manifest, index and config parsing: `minipod load` of an OCI layout and
//! of a `docker save` archive, into a scratch store (`Store::add`, owners
//! not applied), from files held in memory.
//!
//! Input: parts separated by `SEPARATOR`. The first part is both
//! `index.json` (OCI layout) and `manifest.json` (docker archive); every
//! other part is a blob stored under its own digest (`blobs/sha256/HEX`,
//! and `HEX.json` as docker's legacy configs), so manifests, nested indexes
//! and configs that name each other by digest stay valid while the fuzzer
//! mutates them. The raw input is also indexed as an uncompressed tar
//! archive (`oci-archive:`/`docker-archive:` files).
#![no_main]

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use minipod::image::Store;
use minipod::image::digest::sha256_of;
use minipod::image::source::{self, Files, TarFiles};
use minipod::paths::Roots;

const SEPARATOR: &[u8] = b"\n----8<----\n";

struct MemFiles(HashMap<String, Vec<u8>>);

impl Files for MemFiles {
    fn open(&self, path: &str) -> std::io::Result<Box<dyn Read + Send>> {
        match self.0.get(path) {
            Some(b) => Ok(Box::new(Cursor::new(b.clone()))),
            None => Err(std::io::ErrorKind::NotFound.into()),
        }
    }
    fn exists(&self, path: &str) -> bool {
        self.0.contains_key(path)
    }
    fn parallelism(&self) -> Option<usize> {
        Some(1)
    }
}

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        parts.push(&rest[..i]);
        rest = &rest[i + SEPARATOR.len()..];
    }
    parts.push(rest);
    parts
}

fuzz_target!(|data: &[u8]| {
    let scratch = tempfile::Builder::new()
        .prefix("minipod-fuzz-source-")
        .tempdir()
        .expect("scratch directory");

    // The whole input as an image archive.
    let archive = scratch.path().join("archive.tar");
    std::fs::write(&archive, data).expect("archive");
    if let Ok(files) = TarFiles::index(&archive) {
        let files: Arc<dyn Files> = Arc::new(files);
        let _ = source::open_oci_layout(files.clone(), "oci-archive:fuzz".into(), None);
        let _ = source::open_docker_archive(files, "docker-archive:fuzz".into());
    }

    let parts = split(data);
    let mut files = HashMap::new();
    files.insert("index.json".to_string(), parts[0].to_vec());
    files.insert("manifest.json".to_string(), parts[0].to_vec());
    files.insert(
        "oci-layout".to_string(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    );
    for blob in &parts[1..] {
        let digest = sha256_of(blob);
        let hex = digest.trim_start_matches("sha256:");
        files.insert(format!("blobs/sha256/{hex}"), blob.to_vec());
        files.insert(format!("{hex}.json"), blob.to_vec());
    }
    let files: Arc<dyn Files> = Arc::new(MemFiles(files));
    let store_root = scratch.path().join("store");
    let store = Store::new(
        &Roots::resolve(Some(store_root.join("data")), Some(store_root.join("run"))),
        false,
    );
    let images = [
        source::open_oci_layout(files.clone(), "oci:fuzz".into(), None),
        source::open_oci_layout(files.clone(), "oci:fuzz".into(), Some("latest")),
        source::open_docker_archive(files, "docker-archive:fuzz".into()),
    ];
    for image in images.into_iter().flatten() {
        if let Ok(record) = store
            .add("localhost/fuzz:latest", &image)
            .map_err(|e| e.to_string())
        {
            let _ = store.config(&record);
        }
    }
    make_writable(scratch.path());
});

fn make_writable(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&e.path());
            }
        }
    }
}
