//! The image store: sources (OCI layouts, archives, rootfs imports), content-
//! addressed blobs, and layers unpacked once per diff-id.

pub mod auth;
pub mod digest;
pub mod reference;
pub mod registries_conf;
pub mod registry;
pub mod source;
pub mod store;
pub mod unpack;

pub use store::Store;
