//! The supervisor's one path for what it tells the user on stderr. It has
//! no tracing subscriber (it stays small in memory, one per pod); `minipod
//! run`'s `--log-level` reaches it as the plan's `verbose`.

use std::fmt::Display;

/// Something went wrong that does not stop the pod.
pub fn warn(message: impl Display) {
    eprintln!("minipod: warning: {message}");
}

/// What the pod does (a stop, a failure), for a foreground user.
pub fn tell(message: impl Display) {
    eprintln!("minipod: {message}");
}

/// Advice about the machine, once.
pub fn note(message: impl Display) {
    eprintln!("note: {message}");
}

/// An error that ends the supervisor.
pub fn error(message: impl Display) {
    eprintln!("Error: {message}");
}
