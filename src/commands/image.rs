//! The image commands: `load`, `import`, `pull`, `images`, `rmi`, and what
//! only they use (naming a loaded image, a directory as a tar stream, sizes as
//! podman prints them). The store, sources and registry client live in
//! `image`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use super::store_in_userns;
use crate::image::auth::PodCredentials;
pub use crate::image::registry::PullOptions;
use crate::image::registry::Puller;
use crate::image::{Store, reference, source};
use crate::paths::Roots;

pub fn load(roots: &Roots, name: Option<&str>, src: &str) -> Result<ExitCode> {
    let store = store_in_userns(roots)?;
    let image = source::open(src)?;
    let name = match (name, &image.name_hint) {
        (Some(n), _) => n.to_string(),
        (None, Some(hint)) if hint.contains('/') || hint.contains(':') => hint.clone(),
        // A layout's ref name is often a bare tag.
        (None, Some(tag)) => format!("localhost/{}:{tag}", source_stem(src)),
        (None, None) => {
            bail!("{src}: the source does not name the image; give it one with --name NAME[:TAG]")
        }
    };
    let name = reference::normalize(&name)?;
    store.add(&name, &image)?;
    println!("Loaded image: {name}");
    Ok(ExitCode::SUCCESS)
}

fn source_stem(src: &str) -> String {
    let path = src.split_once(':').map_or(src, |(_, p)| p);
    let path = path.split(':').next().unwrap_or(path);
    PathBuf::from(path)
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_else(|| "image".into())
}

pub fn import(roots: &Roots, rootfs: &Path, name: &str) -> Result<ExitCode> {
    let name = reference::normalize(name)?;
    let meta = std::fs::metadata(rootfs)
        .with_context(|| format!("{}: cannot read it", rootfs.display()))?;
    let store = store_in_userns(roots)?;
    let origin = rootfs.display().to_string();
    let record = if meta.is_dir() {
        store.import(&name, tar_of_dir(rootfs)?, &origin)?
    } else {
        let file = std::fs::File::open(rootfs).with_context(|| format!("opening {origin}"))?;
        store.import(&name, Box::new(file), &origin)?
    };
    println!("{}", record.id);
    Ok(ExitCode::SUCCESS)
}

/// A tar stream of `dir`, written by a thread into a pipe, so a directory
/// imports through the same one-pass path as a tar file.
fn tar_of_dir(dir: &Path) -> Result<Box<dyn Read + Send>> {
    let (reader, writer) = std::io::pipe().context("creating a pipe")?;
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let mut builder = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, writer));
        builder.follow_symlinks(false);
        builder.mode(tar::HeaderMode::Complete);
        // A failure shows up on the reading side as a truncated stream.
        if let Err(e) = builder
            .append_dir_all(".", &dir)
            .and_then(|()| builder.finish())
        {
            tracing::error!("reading {}: {e}", dir.display());
        }
    });
    Ok(Box::new(reader))
}

/// `credentials_stdin`: a pod's credentials come as JSON on stdin (`run -d`
/// passes its imagePullSecrets' so that they never touch a file).
pub fn pull(
    roots: &Roots,
    image: &str,
    opts: PullOptions,
    credentials_stdin: bool,
) -> Result<ExitCode> {
    let reference = reference::Reference::parse(image)?;
    let credentials: PodCredentials = if credentials_stdin {
        let mut json = Vec::new();
        std::io::stdin()
            .read_to_end(&mut json)
            .context("reading credentials from stdin")?;
        serde_json::from_slice(&json).context("the credentials on stdin are not valid")?
    } else {
        PodCredentials::default()
    };
    // The user namespace first: joining it needs a single thread.
    let store = store_in_userns(roots)?;
    let puller = Puller::new(opts)?;
    let pulled = puller.pull(&store, &reference, &credentials)?;
    if pulled.up_to_date {
        eprintln!("Image is up to date: {}", pulled.name);
    }
    println!("Digest: {}", pulled.manifest_digest);
    println!("Pulled: {}", pulled.name);
    Ok(ExitCode::SUCCESS)
}

pub fn images(roots: &Roots, format: &str) -> Result<ExitCode> {
    let store = Store::new(roots, true);
    let list = store.list()?;
    match format {
        "json" => {
            let rows: Vec<serde_json::Value> = list
                .iter()
                .map(|(name, r)| {
                    let reference = reference::Reference::parse(name).ok();
                    serde_json::json!({
                        "Id": r.id.trim_start_matches("sha256:"),
                        "Name": name,
                        "Repository": reference.as_ref().map(|x| x.repo()),
                        "Tag": reference.as_ref().and_then(|x| x.tag.clone()),
                        "Digest": r.manifest,
                        "Size": r.size,
                        "Created": r.created,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        "table" => {
            println!(
                "{:<48} {:<16} {:<14} {:<22} {:>10}",
                "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"
            );
            for (name, r) in &list {
                let reference = reference::Reference::parse(name).ok();
                let repo = reference
                    .as_ref()
                    .map(|x| x.repo())
                    .unwrap_or_else(|| name.clone());
                let tag = reference
                    .and_then(|x| x.tag)
                    .unwrap_or_else(|| "<none>".into());
                let id: String =
                    r.id.trim_start_matches("sha256:")
                        .chars()
                        .take(12)
                        .collect();
                let created = r
                    .created
                    .as_deref()
                    .map(|c| c.get(..19).unwrap_or(c).replace('T', " "))
                    .unwrap_or_default();
                println!(
                    "{repo:<48} {tag:<16} {id:<14} {created:<22} {:>10}",
                    human_size(r.size)
                );
            }
        }
        other => bail!("--format {other:?}: use table or json"),
    }
    Ok(ExitCode::SUCCESS)
}

/// SI units, as podman prints sizes.
pub(super) fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < units.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.3} {}", units[unit])
    }
}

pub fn rmi(roots: &Roots, force: bool, images: &[String]) -> Result<ExitCode> {
    let store = store_in_userns(roots)?;
    for image in images {
        for name in store.remove(image, force)? {
            println!("Untagged: {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
