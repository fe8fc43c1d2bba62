//! Where minipod keeps its files (docs/ARCHITECTURE.md "Files").

use std::path::{Path, PathBuf};

/// The two roots every command works with.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Roots {
    /// Images: blobs, unpacked layers, `images.json`.
    pub data: PathBuf,
    /// Volatile state: the holder's pid file, pods, logs, sockets.
    pub run: PathBuf,
}

impl Roots {
    /// `--root`/`--runroot` when given, else the XDG defaults.
    pub fn resolve(data: Option<PathBuf>, run: Option<PathBuf>) -> Roots {
        let uid = nix::unistd::getuid().as_raw();
        let data = data.unwrap_or_else(|| {
            let base = std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")))
                .unwrap_or_else(|| PathBuf::from(format!("/tmp/minipod-{uid}-data")));
            base.join("minipod")
        });
        let run = run.unwrap_or_else(|| {
            std::env::var_os("XDG_RUNTIME_DIR")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute() && p.is_dir())
                .map(|p| p.join("minipod"))
                .unwrap_or_else(|| PathBuf::from(format!("/tmp/minipod-{uid}")))
        });
        Roots {
            data: absolute(data),
            run: absolute(run),
        }
    }

    /// Both roots in one folder (`data/`, `run/`), for unit tests.
    #[cfg(test)]
    pub fn under(dir: &Path) -> Roots {
        Roots {
            data: dir.join("data"),
            run: dir.join("run"),
        }
    }

    pub fn blobs(&self) -> PathBuf {
        self.data.join("blobs/sha256")
    }
    pub fn layers(&self) -> PathBuf {
        self.data.join("layers")
    }
    pub fn images_json(&self) -> PathBuf {
        self.data.join("images.json")
    }
    pub fn data_locks(&self) -> PathBuf {
        self.data.join("locks")
    }
    /// The local store of Secrets, one file per Secret (0600).
    pub fn secrets(&self) -> PathBuf {
        self.data.join("secrets")
    }
    /// Where `seccompProfile.localhostProfile` files are (kubelet's
    /// `<root-dir>/seccomp`).
    pub fn seccomp_profiles(&self) -> PathBuf {
        self.data.join("seccomp")
    }
    /// The local store of ConfigMaps, one file per ConfigMap.
    pub fn configmaps(&self) -> PathBuf {
        self.data.join("configmaps")
    }
    /// Each pod's folder on the data root: writable layers, disk
    /// emptyDirs, logs (`runtime::state::PodPaths`).
    pub fn data_pods(&self) -> PathBuf {
        self.data.join("pods")
    }
    pub fn holder_pid(&self) -> PathBuf {
        self.run.join("holder.pid")
    }
    pub fn holder_lock(&self) -> PathBuf {
        self.run.join("holder.lock")
    }
    /// Where the holder takes requests to publish Services on the host
    /// (`net::node_ports`).
    pub fn holder_socket(&self) -> PathBuf {
        self.run.join("holder.sock")
    }
    /// Held shared by every command using the holder; the holder leaves
    /// only when it can take it exclusively.
    pub fn holder_use_lock(&self) -> PathBuf {
        self.run.join("holder-use.lock")
    }
    pub fn pod_locks(&self) -> PathBuf {
        self.run.join("pod-locks")
    }
    pub fn pods(&self) -> PathBuf {
        self.run.join("pods")
    }
}

/// Relative roots would change meaning once a helper changes directory.
fn absolute(p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
    }
}
