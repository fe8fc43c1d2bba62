//! Running pods: the pause process, containers, and the supervisor.

pub mod config;
pub mod container;
