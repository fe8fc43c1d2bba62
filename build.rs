//! Builds the pod's pause program (pause/pause.rs) with the same rustc: a
//! static, `no_std`, libc-free executable of a few kB that minipod embeds
//! (`include_bytes!`) and the pause process execs once the pod's namespaces
//! are set up. A separate rustc call, because it needs what a Cargo target
//! of this package cannot have: panic=abort, no C runtime, not
//! position-independent.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "pause/pause.rs";
    println!("cargo::rerun-if-changed={source}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("minipod-pause");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("TARGET");
    if target != "x86_64-unknown-linux-gnu" && target != "x86_64-unknown-linux-musl" {
        panic!(
            "the pause program (pause/pause.rs) is written for x86_64 Linux; {target} is not supported"
        );
    }
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "bin",
            "--crate-name",
            "minipod_pause",
        ])
        .args(["--target", &target])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "relocation-model=static",
        ])
        .args([
            "-C",
            "debuginfo=0",
            "-C",
            "strip=symbols",
            "-C",
            "codegen-units=1",
        ])
        .args([
            "-C",
            "link-arg=-nostartfiles",
            "-C",
            "link-arg=-nostdlib",
            "-C",
            "link-arg=-static",
        ])
        .arg("-o")
        .arg(&out)
        .arg(source)
        .status()
        .expect("running rustc for the pause program");
    assert!(
        status.success(),
        "building the pause program ({source}) failed"
    );
}
