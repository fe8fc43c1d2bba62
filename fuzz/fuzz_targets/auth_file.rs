//! Auth files (`image::auth`): an auth file as `podman login` writes it,
//! read by `auth::lookup`, and the same bytes as an imagePullSecret's
//! `.dockerconfigjson` and `.dockercfg` (`PodCredentials`), each asked for
//! credentials of a few repositories.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minipod::image::auth::{self, PodCredentials};

const REPOS: [&str; 4] = [
    "docker.io/library/busybox",
    "localhost:5000/a/b",
    "quay.io",
    "registry.example.com/team/app",
];

fuzz_target!(|data: &[u8]| {
    let scratch = tempfile::Builder::new()
        .prefix("minipod-fuzz-auth-")
        .tempfile()
        .expect("scratch file");
    std::fs::write(scratch.path(), data).expect("auth file");
    let files = [scratch.path().to_path_buf()];
    for repo in REPOS {
        let _ = auth::lookup(&files, repo).map_err(|e| e.to_string());
    }
    for dockercfg in [false, true] {
        let mut creds = PodCredentials::default();
        if creds
            .add_docker_config(data, dockercfg, "secret/fuzz")
            .is_ok()
        {
            for repo in REPOS {
                let _ = creds.lookup(repo);
            }
        }
    }
});
