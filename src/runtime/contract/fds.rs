//! The descriptors `minipod run` hands the supervisor, by number.

/// Where the supervisor reports the start to `run -d` (`report::Line`):
/// the report pipe when detached, /dev/null in the foreground and once the
/// start was reported (so the number is never reused for another file).
/// Also where a container's link reports to the supervisor (its sync pipe)
/// and the pause serves hostPort sockets: always fd 3 of the child.
pub const FD_REPORT: i32 = 3;
/// The pod's lock, held for the pod's whole life: a flock stays held while
/// any copy of the descriptor is open, so there is no window where it is
/// free between `run` and the supervisor.
pub const FD_POD_LOCK: i32 = 4;
/// The `minipod` binary that wrote the plan: the supervisor starts
/// `__pause` and `__container` through `/proc/self/fd/5`, the same binary
/// even if the file is replaced meanwhile.
pub const FD_MINIPOD: i32 = 5;
/// The supervisor's plan (`plan::SupervisorPlan`), a sealed memfd: it
/// may carry Secret values, which are never written to a file.
pub const FD_PLAN: i32 = 6;

/// In the helpers the supervisor starts (`__pause`, `__container`,
/// `__probe-exec`): their config as JSON in a sealed memfd, for the same
/// reason. (Their fd 3 is the sync or service channel.)
pub const FD_CONFIG: i32 = 4;

/// In the pause and each link: a copy of the pod's lock. They hold it until
/// their child is reaped (the pause program kills it first when the
/// supervisor dies), so the lock is free only when no process of the pod
/// runs. Never inherited by a container: `prepare_exec` closes every fd
/// above 2.
pub const FD_POD_ALIVE: i32 = 7;

/// In a link whose container has `tty: true`: a unix socket on which the
/// container's process sends the master of the pty it opened in its own
/// devpts (as runc's console socket), for the supervisor to own. The link
/// closes it before it becomes the pause program's `link`.
pub const FD_CONSOLE: i32 = 8;
