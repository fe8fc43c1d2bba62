//! The image store: sources (OCI layouts, archives, rootfs imports), content-
//! addressed blobs, and layers unpacked once per diff-id.
pub mod unpack;
