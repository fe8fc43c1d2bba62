//! Pod YAML: parse, validate, and turn into a plan the runtime executes.

// The runtime does not consume the plan yet.
#![allow(dead_code, unused_imports)]

pub mod expand;
pub mod names;
pub mod plan;
pub mod process;
pub mod quantity;
