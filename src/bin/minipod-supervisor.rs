//! `minipod-supervisor POD PLAN`: one per running pod, started by
//! `minipod run` (runtime::launch); the supervisor itself is runtime::supervisor.

fn main() -> std::process::ExitCode {
    minipod::runtime::supervisor::main()
}
