//! Small OS helpers shared by every module: file locks and atomic writes.

pub mod fs;
pub mod hash;
pub mod lock;
pub mod proc;
pub mod time;
