//! registries.conf (`image::registries_conf`): parse the TOML, then resolve
//! where each of a few image names would be pulled from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minipod::image::reference::Reference;
use minipod::image::registries_conf::RegistriesConf;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The last line, if it is an image name, is tried too: names that
    // share a prefix with the file's tables.
    let last = text
        .lines()
        .last()
        .unwrap_or("")
        .trim_start_matches('#')
        .trim();
    let Ok(conf) = RegistriesConf::parse(text) else {
        return;
    };
    for name in [
        last,
        "busybox",
        "docker.io/library/busybox:latest",
        "localhost:5000/a/b",
        "quay.io/x/y@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "registry.example.com/team/app:1",
    ] {
        if let Ok(r) = Reference::parse(name) {
            for e in conf
                .endpoints(&r.domain, &r.repository)
                .into_iter()
                .flatten()
            {
                let _ = e.display();
            }
        }
    }
});
