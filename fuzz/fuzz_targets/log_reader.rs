//! The log reader of `minipod logs` (`runtime::logs`): a container log
//! file and its rotated part, read with and without `--tail` and a
//! `--since` time, and followed. A container may print anything, so any
//! bytes are a possible log: reading must succeed, not only not panic.
//!
//! Input: the rotated part (`C.log.1`), `SEPARATOR`, the current part.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minipod::runtime::logs::{self, ReadOptions};

const SEPARATOR: &[u8] = b"\n----8<----\n";

fuzz_target!(|data: &[u8]| {
    let (old, new) = match data.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        Some(i) => (Some(&data[..i]), &data[i + SEPARATOR.len()..]),
        None => (None, data),
    };
    let scratch = tempfile::Builder::new()
        .prefix("minipod-fuzz-logs-")
        .tempdir()
        .expect("scratch directory");
    let path = scratch.path().join("c.log");
    std::fs::write(&path, new).expect("log");
    if let Some(old) = old {
        std::fs::write(logs::rotated(&path), old).expect("rotated log");
    }
    for opts in [
        ReadOptions {
            tail: None,
            since: None,
        },
        ReadOptions {
            tail: Some(1),
            since: Some("2024-01-01T00:00:00Z".into()),
        },
    ] {
        logs::read_lines(&path, &opts).expect("any log file is readable");
    }
    let mut n = 0;
    logs::follow(&path, 0, &|| true, &mut |_| n += 1).expect("any log file can be followed");
});
