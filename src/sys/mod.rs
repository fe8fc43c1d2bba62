//! Small OS helpers shared by every module: file locks, atomic writes,
//! confined path lookups, namespaces.

pub mod fs;
pub mod hash;
pub mod lock;
pub mod ns;
pub mod openat2;
pub mod proc;
pub mod time;
