//! Running pods: the pause process, containers, and the supervisor.

pub mod config;
pub mod container;
pub mod etc_files;
pub mod launch;
pub mod logs;
pub mod pause;
pub mod pod;
pub mod prepare;
pub mod report;
pub mod state;
