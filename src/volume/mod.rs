//! Named volumes (what a `persistentVolumeClaim` mounts): one folder per
//! volume under the data root, as podman's local volume driver keeps them.
//!
//! ```text
//! volumes/NAME/_data        what containers see (0777, as the local-path
//!                           provisioner of kind and k3s makes it)
//! volumes/NAME/volume.json  the record: created when, by which claim and
//!                           file, the requested size, labels
//! volumes/NAME/lock         shared by each pod's supervisor while the pod
//!                           uses it; `volume rm` takes it exclusively
//! ```
//!
//! A volume is created whole or not at all: made under a temporary name and
//! renamed into place, under `locks/volumes.lock` (also held to remove
//! one). Removing renames it away first, so a supervisor that locks a
//! volume being removed sees its lock file gone (`FileLock::
//! acquire_existing`) and fails the pod's start. Files in `_data` belong to
//! the user namespace's ids: removal must run inside it (the callers join
//! it first).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::paths::Roots;
use crate::sys::lock::{FileLock, Mode};

/// The record of a volume (`volume.json`), what `volume inspect` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRecord {
    pub name: String,
    /// RFC 3339.
    pub created: String,
    /// What made it: `PersistentVolumeClaim/data`, `StatefulSet/db
    /// (volumeClaimTemplates[0])`, or the pod whose claim had no document.
    pub created_by: String,
    /// The file `run` read that claim from (absolute), for `down --volumes`.
    #[serde(default)]
    pub source: Option<String>,
    /// `spec.resources.requests.storage`, as written (not enforced: a
    /// directory has no size).
    #[serde(default)]
    pub requested_storage: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `volumes/NAME`.
pub fn dir(roots: &Roots, name: &str) -> PathBuf {
    roots.data.join("volumes").join(name)
}

/// What containers mount.
pub fn data_dir(roots: &Roots, name: &str) -> PathBuf {
    dir(roots, name).join("_data")
}

/// Shared by each supervisor of a pod using the volume.
pub fn lock_path(roots: &Roots, name: &str) -> PathBuf {
    dir(roots, name).join("lock")
}

fn record_path(roots: &Roots, name: &str) -> PathBuf {
    dir(roots, name).join("volume.json")
}

fn store_lock(roots: &Roots) -> Result<FileLock> {
    let locks = roots.data_locks();
    std::fs::create_dir_all(&locks).with_context(|| format!("creating {}", locks.display()))?;
    FileLock::acquire(&locks.join("volumes.lock"), Mode::Exclusive)
}

/// Why `name` cannot name a volume (a PersistentVolumeClaim's name is a
/// DNS-1123 subdomain), or None.
pub fn check_name(name: &str) -> Option<String> {
    crate::spec::names::dns1123_subdomain(name)
        .map(|why| format!("{name:?} is not a volume name: {why}"))
}

pub fn exists(roots: &Roots, name: &str) -> bool {
    check_name(name).is_none() && record_path(roots, name).is_file()
}

/// Creates the volume `record.name`, empty, unless it exists. Returns
/// whether it was created.
pub fn create(roots: &Roots, record: &VolumeRecord) -> Result<bool> {
    if let Some(why) = check_name(&record.name) {
        bail!("{why}");
    }
    let _lock = store_lock(roots)?;
    let dest = dir(roots, &record.name);
    if dest.exists() {
        return Ok(false);
    }
    let parent = roots.data.join("volumes");
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = crate::sys::fs::temp_sibling(&dest);
    let made = (|| -> Result<()> {
        std::fs::create_dir(&tmp)?;
        let data = tmp.join("_data");
        std::fs::create_dir(&data)?;
        // Whatever the umask: any user of any image may write to it.
        std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
        std::fs::write(tmp.join("lock"), b"")?;
        crate::sys::fs::atomic_write(
            &tmp.join("volume.json"),
            &serde_json::to_vec_pretty(record)?,
        )?;
        std::fs::rename(&tmp, &dest)?;
        Ok(())
    })();
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.context(format!("creating volume {}", record.name)));
    }
    Ok(true)
}

/// The volume's record.
pub fn read(roots: &Roots, name: &str) -> Result<VolumeRecord> {
    // A name is a path component: `..` or a slash must not lead elsewhere.
    if let Some(why) = check_name(name) {
        bail!("{why}");
    }
    let path = record_path(roots, name);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("no volume named {name:?}; `minipod volume ls` lists the volumes")
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        anyhow!(
            "{} is damaged (line {}, column {}); remove the volume with `minipod volume rm {name}`",
            path.display(),
            e.line(),
            e.column()
        )
    })
}

/// Every volume, by name.
pub fn list(roots: &Roots) -> Vec<VolumeRecord> {
    let mut names: Vec<String> = std::fs::read_dir(roots.data.join("volumes"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // Volumes being made or removed.
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.iter().filter_map(|n| read(roots, n).ok()).collect()
}

/// What `remove` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// A running pod's supervisor holds its lock.
    InUse,
    Missing,
}

/// Removes a volume nobody uses. The caller has joined the user namespace
/// (files in it belong to its ids).
pub fn remove(roots: &Roots, name: &str) -> Result<Removal> {
    if let Some(why) = check_name(name) {
        bail!("{why}");
    }
    let _lock = store_lock(roots)?;
    let dest = dir(roots, name);
    if !dest.is_dir() {
        return Ok(Removal::Missing);
    }
    let Some(in_use) = FileLock::try_acquire(&lock_path(roots, name), Mode::Exclusive)? else {
        return Ok(Removal::InUse);
    };
    // Gone from its name at once: a supervisor waiting for the lock finds
    // no lock file once it gets it.
    let doomed = crate::sys::fs::temp_sibling(&dest);
    std::fs::rename(&dest, &doomed).with_context(|| format!("removing {}", dest.display()))?;
    drop(in_use);
    std::fs::remove_dir_all(&doomed).with_context(|| format!("removing {}", doomed.display()))?;
    Ok(Removal::Removed)
}

/// The mountpoint shown by `volume inspect`.
pub fn mountpoint(roots: &Roots, name: &str) -> PathBuf {
    data_dir(roots, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> VolumeRecord {
        VolumeRecord {
            name: name.into(),
            created: "2026-01-01T00:00:00Z".into(),
            created_by: "PersistentVolumeClaim/x".into(),
            source: None,
            requested_storage: Some("1Gi".into()),
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn created_once_listed_locked_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let roots = Roots::under(tmp.path());
        assert!(create(&roots, &record("data")).unwrap());
        assert!(!create(&roots, &record("data")).unwrap());
        let mode = std::fs::metadata(data_dir(&roots, "data"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o777);
        assert_eq!(read(&roots, "data").unwrap(), record("data"));
        assert_eq!(list(&roots).len(), 1);
        assert!(create(&roots, &record("Bad_Name")).is_err());
        // Names never lead outside the store.
        std::fs::create_dir_all(tmp.path().join("data/x")).unwrap();
        for name in ["..", "../x", "a/b"] {
            assert!(remove(&roots, name).is_err(), "{name}");
            assert!(read(&roots, name).is_err(), "{name}");
            assert!(!exists(&roots, name));
        }
        assert!(tmp.path().join("data/x").is_dir());

        // What a supervisor holds while its pod runs.
        let held = FileLock::acquire_existing(&lock_path(&roots, "data"), Mode::Shared)
            .unwrap()
            .unwrap();
        assert_eq!(remove(&roots, "data").unwrap(), Removal::InUse);
        drop(held);
        assert_eq!(remove(&roots, "data").unwrap(), Removal::Removed);
        assert_eq!(remove(&roots, "data").unwrap(), Removal::Missing);
        assert!(list(&roots).is_empty());
        // A supervisor starting after the removal finds no lock file.
        assert!(
            FileLock::acquire_existing(&lock_path(&roots, "data"), Mode::Shared)
                .unwrap()
                .is_none()
        );
        assert!(
            read(&roots, "data")
                .unwrap_err()
                .to_string()
                .contains("volume ls")
        );
    }
}
