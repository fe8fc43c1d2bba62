//! What the supervisor hands `minipod __pause`: the pod's namespaces to
//! create and how to connect them, as JSON on `fds::FD_CONFIG`.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PauseConfig {
    pub hostname: String,
    /// `shareProcessNamespace`: the pause forks a PID 1 that reaps orphans.
    pub share_pid: bool,
    /// `hostNetwork`: no NET namespace of the pod's own.
    pub host_network: bool,
    /// `hostIPC`: no IPC namespace of the pod's own.
    pub host_ipc: bool,
    /// The supervisor's pid: the pause dies with it.
    pub parent: i32,
    /// tmpfs mounts for the pod (/dev/shm, `medium: Memory` emptyDirs).
    pub tmpfs: Vec<Tmpfs>,
    /// Image volumes: read-only overlays of image layers.
    #[serde(default)]
    pub image_volumes: Vec<ImageVolume>,
    /// The pod's directory in the run root: named on the pause program's
    /// command line, so `ps` tells which pod a pause serves.
    pub pod_dir: PathBuf,
    /// Where to connect the pod's netns, once the supervisor leased an
    /// address; None with `hostNetwork`.
    pub network: Option<PauseNetwork>,
    /// fd 3 is a unix socket on which to hand out sockets of the pod's
    /// netns (hostPort forwarding).
    pub serve_sockets: bool,
    /// `spec.securityContext.sysctls`: (path under /proc/sys, value), set
    /// once the namespaces exist.
    pub sysctls: Vec<(String, String)>,
    /// configMap, secret, downwardAPI and projected volumes: each a tmpfs
    /// the pause mounts and fills, so their content (a Secret's) is never
    /// written to disk.
    #[serde(default)]
    pub config_volumes: Vec<ConfigVolumeFiles>,
}

/// One projected volume's mount point and files.
#[derive(Clone, Serialize, Deserialize)]
pub struct ConfigVolumeFiles {
    pub dir: PathBuf,
    /// The pod's fsGroup owns the files (read-only modes), as kubelet
    /// gives it configMap and secret volumes.
    #[serde(default)]
    pub fs_group: Option<u32>,
    pub files: Vec<VolumeFile>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct VolumeFile {
    /// Relative, no `..` (validated).
    pub path: String,
    pub mode: u32,
    /// The content, base64.
    pub data: String,
}

/// Contents stay out of debug output (a Secret's).
impl std::fmt::Debug for ConfigVolumeFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<&str> = self.files.iter().map(|f| f.path.as_str()).collect();
        write!(f, "ConfigVolumeFiles({}, {paths:?})", self.dir.display())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tmpfs {
    pub dir: PathBuf,
    pub size_bytes: Option<u64>,
    /// The pod's fsGroup owns it (setgid), as kubelet gives it a volume.
    pub fs_group: Option<u32>,
}

/// An image volume: an overlayfs of the image's layers and no upper dir,
/// read-only by construction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageVolume {
    /// The mount point.
    pub dir: PathBuf,
    /// Layers, bottom first.
    pub layers: Vec<PathBuf>,
    /// An empty folder, the bottom lowerdir: overlayfs wants two lowerdirs
    /// when there is no upper one, and an image may have one layer.
    pub empty: PathBuf,
}

/// The longest mount(2) data the kernel copies: one page, with the NUL.
pub const MOUNT_DATA_MAX: usize = 4095;

impl ImageVolume {
    /// The overlayfs options, or why they cannot be given.
    pub fn options(&self) -> Result<String, String> {
        let lower: Vec<String> = self
            .layers
            .iter()
            .rev()
            .chain(std::iter::once(&self.empty))
            .map(|l| escape_overlay(&l.to_string_lossy()))
            .collect();
        let options = format!("lowerdir={},userxattr", lower.join(":"));
        if options.len() > MOUNT_DATA_MAX {
            return Err(format!(
                "the image has too many layers ({}) to mount as a volume: flatten it (podman \
                 build --squash)",
                self.layers.len()
            ));
        }
        Ok(options)
    }
}

/// Overlayfs splits its options at `,` and lowerdirs at `:`; both may be
/// escaped with a backslash.
pub fn escape_overlay(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '\\' | ':' | ',') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The pod's veth on the holder's bridge.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PauseNetwork {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// The holder, whose netns holds the bridge.
    pub uplink_pid: i32,
    /// The host end of the pod's veth.
    pub ifname: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_volume_is_its_layers_top_first_over_an_empty_folder() {
        let v = ImageVolume {
            dir: "/m".into(),
            layers: vec!["/l/a".into(), "/l/b,c".into()],
            empty: "/e".into(),
        };
        assert_eq!(v.options().unwrap(), "lowerdir=/l/b\\,c:/l/a:/e,userxattr");
        let many = ImageVolume {
            layers: vec![PathBuf::from("/".repeat(100)); 50],
            ..v
        };
        assert!(many.options().unwrap_err().contains("too many layers"));
    }
}
