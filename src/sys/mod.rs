//! Small OS helpers shared by every module: atomic writes and fd plumbing
//! (`fs`), file locks, the one confined open (`openat2`), joining
//! namespaces (`ns`), facts about and signals to processes (`proc`),
//! hashing and time, terminals (`tty`), giving back a started process's
//! startup pages (`memory`).

pub mod fs;
pub mod hash;
pub mod lock;
pub mod memory;
pub mod ns;
pub mod openat2;
pub mod proc;
pub mod time;
pub mod tty;
