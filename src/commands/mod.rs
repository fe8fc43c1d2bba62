//! The commands of `minipod`, one function per subcommand, each taking plain
//! options (no clap) and returning the exit code: `image` holds the image
//! commands (`load`, `import`, `pull`, `images`, `rmi`), `pod` the pod
//! commands (`run`, `ps`, `logs`, `exec`, `stop`, `rm`, `inspect`, `wait`,
//! `down`), `objects` the local store of ConfigMaps and Secrets (`secret` and
//! `configmap` `create`, `ls`, `inspect`, `rm`), `volume` the named volumes
//! (`ls`, `inspect`, `rm`, `prune`; those `run` makes and `down --volumes` removes),
//! `service` the Services `run` registers (`service ls`, `inspect service/NAME`),
//! `system` minipod as a whole (`df`, `reset`), `unshare` a command as root of the user
//! namespace, `top` a pod's processes,
//! `generate` a pod's YAML as it runs (`generate kube`), `copy` files out of and into
//! containers (`cp`). `cli` parses the command line and calls them; they call the
//! mechanisms below (`runtime`, `image`, `userns`, `spec`), none of which
//! calls back up here.

use anyhow::Result;

use crate::image::Store;
use crate::paths::Roots;
use crate::userns;

pub mod copy;
pub mod generate;
pub mod image;
pub mod objects;
pub mod pod;
pub mod service;
pub mod system;
pub mod top;
pub mod unshare;
pub mod volume;

/// Joins the user namespace and opens the store; only call while the process
/// is single-threaded.
fn store_in_userns(roots: &Roots) -> Result<Store> {
    let holder = userns::enter(roots)?;
    Ok(Store::new(roots, !holder.single_mapping))
}
