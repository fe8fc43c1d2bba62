//! fsGroup's ownership of a pod's volumes, as kubelet's
//! `SetVolumeOwnership` gives it: every file and folder gets the group
//! (symlinks too, not followed), and the modes of `spec::security::
//! fs_group_mode` (group-readable, and writable unless read-only; folders
//! setgid, so new files take the group). With `OnRootMismatch` nothing is
//! changed when the volume's root already has the group and modes.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};

use crate::spec::security::{FsGroupChangePolicy, fs_group_mode, fs_group_root_matches};

pub fn set_volume_ownership(
    dir: &Path,
    fs_group: u32,
    read_only: bool,
    policy: FsGroupChangePolicy,
) -> Result<()> {
    let root =
        std::fs::symlink_metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    if policy == FsGroupChangePolicy::OnRootMismatch
        && fs_group_root_matches(root.gid(), root.mode() & 0o7777, fs_group, read_only)
    {
        return Ok(());
    }
    change(dir, &root, fs_group, read_only)
        .with_context(|| format!("giving {} to fsGroup {fs_group}", dir.display()))
}

fn change(path: &Path, meta: &std::fs::Metadata, group: u32, read_only: bool) -> Result<()> {
    std::os::unix::fs::lchown(path, None, Some(group))
        .with_context(|| format!("chown {}", path.display()))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = fs_group_mode(meta.mode() & 0o7777, meta.is_dir(), read_only);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))?;
    if meta.is_dir() {
        for entry in
            std::fs::read_dir(path).with_context(|| format!("listing {}", path.display()))?
        {
            let entry = entry?;
            let child = entry.path();
            let meta = std::fs::symlink_metadata(&child)?;
            change(&child, &meta, group, read_only)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_gets_the_group_and_folders_setgid() {
        let dir = tempfile::tempdir().unwrap();
        let gid = nix::unistd::getgid().as_raw();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/f"), "x").unwrap();
        std::fs::set_permissions(
            dir.path().join("sub/f"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink("sub/f", dir.path().join("link")).unwrap();
        set_volume_ownership(dir.path(), gid, false, FsGroupChangePolicy::Always).unwrap();
        let mode = |p: &str| {
            std::fs::symlink_metadata(dir.path().join(p))
                .unwrap()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("sub/f"), 0o660);
        assert_eq!(mode("sub") & 0o2070, 0o2070);
        // OnRootMismatch: the root matches now, so a new file is left alone.
        std::fs::write(dir.path().join("sub/g"), "y").unwrap();
        std::fs::set_permissions(
            dir.path().join("sub/g"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        set_volume_ownership(dir.path(), gid, false, FsGroupChangePolicy::OnRootMismatch).unwrap();
        assert_eq!(mode("sub/g"), 0o600);
        set_volume_ownership(dir.path(), gid, false, FsGroupChangePolicy::Always).unwrap();
        assert_eq!(mode("sub/g"), 0o660);
    }
}
