//! The contracts between minipod's processes, in one place: what `minipod
//! run` hands the supervisor (`plan`, plus the descriptors in `fds`), what
//! the supervisor hands `minipod __pause` (`pause`) and `minipod __container`
//! (`container`), and the one-line reports each helper sends back
//! (`report`), and the attach protocol on the control socket (`attach`).
//! docs/ARCHITECTURE.md draws the processes and these arrows.
//!
//! Versioning: `minipod` and `minipod-supervisor` are separate binaries, so
//! the plan carries `plan::PLAN_VERSION`; a supervisor from another build
//! refuses a plan and names both versions. The pause and container configs
//! cross no binary boundary (the supervisor starts them from the very
//! `minipod` binary that wrote its plan, fd `FD_MINIPOD`), so they carry no
//! version. A pod's `state.json` is read by any later `minipod` (`ps`,
//! `stop`, `rm`): its fields only ever grow, with defaults.

pub mod attach;
pub mod container;
pub mod fds;
pub mod pause;
pub mod plan;
pub mod report;

/// A helper's config in a sealed memfd, for its `fds::FD_CONFIG`: configs
/// carry Secret values (environments, volume contents), which are never
/// written to a file, and a command line is readable by every process.
pub fn config_memfd<T: serde::Serialize>(config: &T) -> anyhow::Result<std::os::fd::OwnedFd> {
    crate::sys::fs::sealed_memfd(c"minipod-config", &serde_json::to_vec(config)?)
}

/// The config the supervisor passed this helper (`what` names it in errors).
pub fn read_passed_config<T: serde::de::DeserializeOwned>(what: &str) -> anyhow::Result<T> {
    use anyhow::Context;
    let bytes = crate::sys::fs::take_passed_fd(fds::FD_CONFIG)
        .with_context(|| format!("minipod {what}: its config"))?;
    // Not serde's message: it may quote a value (a Secret's).
    serde_json::from_slice(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "minipod {what}: its config is not valid (line {}, column {})",
            e.line(),
            e.column()
        )
    })
}
