//! The layer unpacker (`image::unpack`): a layer blob, compressed as its
//! first byte says (0 tar, 1 gzip, 2 zstd, else sniffed as for `docker
//! save` archives), streamed through the decompressor into a fresh scratch
//! directory, as `Store::stream_layer` does. Owners are not applied
//! (`chown: false`, the single-mapping path): the fuzzer is not root in a
//! user namespace. Besides not panicking, nothing may appear outside the
//! scratch root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minipod::image::unpack::{Compression, UnpackOptions, unpack_layer};

fuzz_target!(|data: &[u8]| {
    let Some((&how, blob)) = data.split_first() else {
        return;
    };
    let compression = match how {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Zstd,
        _ => Compression::sniff(blob),
    };
    let scratch = tempfile::Builder::new()
        .prefix("minipod-fuzz-unpack-")
        .tempdir()
        .expect("scratch directory");
    let root = scratch.path().join("diff");
    std::fs::create_dir(&root).expect("layer root");
    let Ok(tar) = compression.decompressor(blob) else {
        return;
    };
    let _ = unpack_layer(tar, &root, &UnpackOptions { chown: false }).map_err(|e| e.to_string());
    // The layer root is the only thing in the scratch directory.
    let names: Vec<_> = std::fs::read_dir(scratch.path())
        .expect("scratch directory")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["diff"], "the layer wrote beside its root");
    // Unpacked directories may be read-only (mode 0555): make them
    // removable, as `Store`'s temp-dir clean-up does.
    make_writable(&root);
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
