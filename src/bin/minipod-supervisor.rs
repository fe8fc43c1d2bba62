//! `minipod-supervisor POD DIR`: one per running pod, started by
//! `minipod run` (runtime::launch), its plan on fd 6; the supervisor itself is runtime::supervisor.

fn main() -> std::process::ExitCode {
    minipod::runtime::supervisor::main()
}
