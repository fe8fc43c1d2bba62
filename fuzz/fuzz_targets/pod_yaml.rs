//! Pod YAML: what `minipod run --dry-run FILE` does with a file before it
//! looks at the store: parse and validate every document
//! (`spec::manifest_with`, as `manifest_from_yaml` with a fixed random
//! number), merge, check it runs something, list the objects each pod needs
//! and parse its image names; and what `down -` and `run --configmap` read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minipod::spec::{self, Manifest};

fuzz_target!(|data: &[u8]| {
    // `run` reads files with read_to_string: only UTF-8 reaches the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = spec::named_owners(text);
    let _ = spec::objects_from_yaml(text, "fuzz.yaml").map_err(|e| e.to_string());
    match spec::manifest_with(text, "fuzz.yaml", &mut || 0x5eed) {
        Err(e) => {
            let _ = e.to_string();
        }
        Ok(m) => {
            let mut all = Manifest::default();
            if all.merge(m).is_err() {
                return;
            }
            let _ = all.check_runnable();
            let _ = all.start_waves();
            for pod in all.pods() {
                let _ = pod.referenced_objects();
                let _ = pod.missing_objects(&all.objects);
                for c in pod.init_containers.iter().chain(&pod.containers) {
                    let _ = minipod::image::reference::Reference::parse(&c.image);
                }
            }
        }
    }
});
