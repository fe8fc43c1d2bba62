//! Pod YAML: parse, validate, and turn into a plan the runtime executes.
