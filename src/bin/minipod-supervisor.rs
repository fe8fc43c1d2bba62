//! `minipod-supervisor POD PLAN`: one per running pod, started by
//! `minipod run` (runtime::launch); the supervisor itself is runtime::pod.

fn main() -> std::process::ExitCode {
    minipod::runtime::pod::main()
}
