//! Pod YAML: parse, validate, and turn into a plan the runtime executes.

// The runtime does not consume the plan yet.
#![allow(dead_code, unused_imports)]

pub mod expand;
pub mod names;
pub mod plan;
pub mod process;
pub mod quantity;
mod schema;
pub mod yaml;

/// One problem in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub path: String,
    pub message: String,
}
