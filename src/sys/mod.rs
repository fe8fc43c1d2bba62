//! Small OS helpers shared by every module: file locks, atomic writes,
//! confined path lookups.

pub mod fs;
pub mod hash;
pub mod lock;
pub mod openat2;
pub mod proc;
pub mod time;
