//! The user-namespace holder (docs/ARCHITECTURE.md "The processes"): one idle process per run root that
//! owns the user namespace every pod and every unpacked layer lives in.

pub mod holder;
pub mod idmap;

pub use holder::enter;
