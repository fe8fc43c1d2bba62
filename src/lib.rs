//! minipod: a rootless pod launcher. Two programs share this library:
//! `minipod` (src/main.rs: the command line, image store, set-up helpers) and
//! `minipod-supervisor` (src/bin: one small process per running pod, which
//! links only `runtime::supervisor` and what it calls, so it stays small in memory).
//!
//! `cli` parses the command line and calls `commands`, which call the
//! mechanisms (`runtime`, `image`, `userns`, `net`, `spec`, `sys`, `paths`);
//! none of those imports `commands` or `cli` (`scripts/module-deps` lists the
//! imports between modules and fails on a cycle).

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod cli;
pub mod commands;
pub mod image;
pub mod net;
pub mod objects;
pub mod paths;
pub mod runtime;
pub mod seccomp;
pub mod spec;
pub mod sys;
/// Pods for integration tests (a handle whose `Drop` removes the pod).
pub mod testing;
pub mod userns;
pub mod volume;

/// podman's convention: 125 means minipod itself failed, not a container.
pub const EXIT_MINIPOD_ERROR: u8 = 125;
