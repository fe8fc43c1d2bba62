//! The pause's half of configMap, secret, downwardAPI and projected
//! volumes: each is a tmpfs it mounts in the pod's mount namespace (which
//! every container copies) and fills as kubelet's atomic writer does
//! (`spec::config::atomic_layout`), then makes read-only. Nothing of it
//! touches a disk.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine as _;
use nix::mount::{MsFlags, mount};

use super::contract::pause::ConfigVolumeFiles;
use crate::spec::config::{LayoutStep, VolumeFile, atomic_layout, stamp_dir};

/// Mounts and fills one volume.
pub fn populate(v: &ConfigVolumeFiles) -> Result<()> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    // 1777 as kubelet's memory-backed volumes show it.
    mount(
        Some("tmpfs"),
        &v.dir,
        Some("tmpfs"),
        flags,
        Some("mode=1777"),
    )
    .with_context(|| format!("mounting a tmpfs on {}", v.dir.display()))?;
    let files = v
        .files
        .iter()
        .map(|f| {
            Ok(VolumeFile {
                path: f.path.clone(),
                mode: f.mode,
                data: base64::engine::general_purpose::STANDARD
                    .decode(&f.data)
                    .context("a volume file's content is not base64")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let stamp = stamp_dir(
        &crate::sys::time::now_rfc3339(),
        (crate::spec::os_random() % 4_294_967_296) as u32,
    );
    write_layout(&v.dir, &files, &stamp)
        .with_context(|| format!("filling the volume at {}", v.dir.display()))?;
    if let Some(group) = v.fs_group {
        super::ownership::set_volume_ownership(&v.dir, group, true, Default::default())?;
    }
    mount(
        None::<&str>,
        &v.dir,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags,
        None::<&str>,
    )
    .with_context(|| format!("making {} read-only", v.dir.display()))
}

/// Carries out the layout's steps under `dir` (a fresh tmpfs: nothing in
/// it but what we make, so plain paths are safe).
fn write_layout(dir: &Path, files: &[VolumeFile], stamp: &str) -> Result<()> {
    for step in atomic_layout(files, stamp) {
        match step {
            LayoutStep::Dir(d) => {
                let p = dir.join(&d);
                if !p.exists() {
                    std::fs::DirBuilder::new().mode(0o755).create(&p)?;
                }
                // Whatever the umask: others must be able to walk it.
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
            }
            LayoutStep::File(path, f) => {
                let p = dir.join(&path);
                std::fs::write(&p, &f.data)?;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(f.mode))?;
            }
            LayoutStep::Symlink(link, target) => {
                std::os::unix::fs::symlink(&target, dir.join(&link))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_written_as_kubelet_writes_it() {
        let dir = std::env::temp_dir().join(format!("minipod-layout-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let files = vec![
            VolumeFile {
                path: "a.conf".into(),
                mode: 0o400,
                data: b"x=1\n".to_vec(),
            },
            VolumeFile {
                path: "sub/dir/b".into(),
                mode: 0o644,
                data: vec![0, 255],
            },
        ];
        write_layout(&dir, &files, "..2026_01_02_03_04_05.7").unwrap();
        assert_eq!(std::fs::read(dir.join("a.conf")).unwrap(), b"x=1\n");
        assert_eq!(std::fs::read(dir.join("sub/dir/b")).unwrap(), [0, 255]);
        assert_eq!(
            std::fs::read_link(dir.join("..data")).unwrap(),
            Path::new("..2026_01_02_03_04_05.7")
        );
        assert_eq!(
            std::fs::read_link(dir.join("sub")).unwrap(),
            Path::new("..data/sub")
        );
        let mode = |p: &str| std::fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("a.conf"), 0o400);
        assert_eq!(mode("..2026_01_02_03_04_05.7/sub"), 0o755);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
