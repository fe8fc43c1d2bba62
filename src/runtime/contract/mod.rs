//! The contracts between minipod's processes, in one place: what `minipod
//! run` hands the supervisor (`plan`, plus the descriptors in `fds`), what
//! the supervisor hands `minipod __pause` (`pause`) and `minipod __container`
//! (`container`), and the one-line reports each helper sends back
//! (`report`). docs/ARCHITECTURE.md draws the processes and these arrows.
//!
//! Versioning: `minipod` and `minipod-supervisor` are separate binaries, so
//! the plan carries `plan::PLAN_VERSION`; a supervisor from another build
//! refuses a plan and names both versions. The pause and container configs
//! cross no binary boundary (the supervisor starts them from the very
//! `minipod` binary that wrote its plan, fd `FD_MINIPOD`), so they carry no
//! version. A pod's `state.json` is read by any later `minipod` (`ps`,
//! `stop`, `rm`): its fields only ever grow, with defaults.

pub mod container;
pub mod fds;
pub mod pause;
pub mod plan;
pub mod report;
