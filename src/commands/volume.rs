//! The named volumes (`minipod volume ls|inspect|rm|prune`), the volumes a
//! `run` makes for its claims, and those `down --volumes` removes. The
//! store itself is `crate::volume`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::paths::Roots;
use crate::runtime::state::{self, PodPaths};
use crate::spec::{Manifest, VolumeKind};
use crate::userns;
use crate::volume::{self, Removal, VolumeRecord};

/// Makes the volumes `run`'s input claims, before any pod starts: each
/// claim's (PersistentVolumeClaim documents, StatefulSets' templates), then
/// each volume a pod's claim names without a document, which `run` says.
/// A volume that exists is used as it is. `sources` maps a file as given to
/// its absolute path.
pub fn create_claimed(
    roots: &Roots,
    manifest: &Manifest,
    sources: &BTreeMap<String, Option<String>>,
) -> Result<()> {
    let source = |name: &str| sources.get(name).cloned().flatten();
    for c in &manifest.claims {
        volume::create(
            roots,
            &VolumeRecord {
                name: c.name.clone(),
                created: crate::sys::time::now_rfc3339(),
                created_by: c.created_by.clone(),
                source: source(&c.source),
                requested_storage: c.requested_storage.clone(),
                labels: c.labels.clone(),
            },
        )?;
    }
    for w in &manifest.workloads {
        for p in &w.pods {
            for v in &p.volumes {
                let VolumeKind::PersistentVolumeClaim { claim_name, .. } = &v.kind else {
                    continue;
                };
                if manifest.claims.iter().any(|c| &c.name == claim_name) {
                    continue;
                }
                let made = volume::create(
                    roots,
                    &VolumeRecord {
                        name: claim_name.clone(),
                        created: crate::sys::time::now_rfc3339(),
                        created_by: format!("pod {} (a claim without a document)", p.name),
                        source: source(&w.source),
                        requested_storage: None,
                        labels: BTreeMap::new(),
                    },
                )?;
                if made {
                    eprintln!(
                        "minipod: created volume {claim_name} for the claim of pod {} (no \
                         PersistentVolumeClaim document names it); `minipod volume rm \
                         {claim_name}` removes it",
                        p.name
                    );
                }
            }
        }
    }
    Ok(())
}

/// The volumes `down --volumes FILE` removes: those a `run` of that file
/// made (by its absolute path), or for stdin those its claims name.
pub fn made_by(roots: &Roots, path: Option<&str>, text: &str) -> Vec<String> {
    match path {
        Some(file) => volume::list(roots)
            .into_iter()
            .filter(|r| r.source.as_deref() == Some(file))
            .map(|r| r.name)
            .collect(),
        // Its claims' names, of volumes made from stdin.
        None => match crate::spec::manifest_from_yaml(text, "<stdin>") {
            Ok(m) => {
                let claimed: Vec<&str> = m
                    .claims
                    .iter()
                    .map(|c| c.name.as_str())
                    .chain(m.pods().flat_map(|p| {
                        p.volumes.iter().filter_map(|v| match &v.kind {
                            VolumeKind::PersistentVolumeClaim { claim_name, .. } => {
                                Some(claim_name.as_str())
                            }
                            _ => None,
                        })
                    }))
                    .collect();
                volume::list(roots)
                    .into_iter()
                    .filter(|r| r.source.is_none() && claimed.contains(&r.name.as_str()))
                    .map(|r| r.name)
                    .collect()
            }
            Err(_) => Vec::new(),
        },
    }
}

/// The pods (running or kept) whose records say they mount `name`.
fn pods_using(roots: &Roots, name: &str) -> Vec<String> {
    state::list_pods(roots)
        .into_iter()
        .filter(|pod| {
            let paths = PodPaths::new(roots, pod);
            paths.supervisor_alive()
                && paths
                    .read_state()
                    .is_ok_and(|s| s.volumes.iter().any(|v| v == name))
        })
        .collect()
}

/// Removes each volume; refused for one a running pod uses, naming it.
/// Joins the user namespace first (files in a volume belong to its ids).
pub fn remove(roots: &Roots, names: &[String]) -> Result<Vec<String>> {
    for name in names {
        if let Some(why) = volume::check_name(name) {
            bail!("{why}");
        }
    }
    // Only a volume that is there needs the namespace (and its holder).
    if names.iter().any(|n| volume::exists(roots, n)) {
        userns::enter(roots)?;
    }
    let mut removed = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        match volume::remove(roots, name)? {
            Removal::Removed => removed.push(name.clone()),
            Removal::Missing => errors.push(format!(
                "no volume named {name:?}; `minipod volume ls` lists the volumes"
            )),
            Removal::InUse => {
                let pods = pods_using(roots, name);
                errors.push(if pods.is_empty() {
                    format!("volume {name} is in use by a running pod (of another run root)")
                } else {
                    format!(
                        "volume {name} is in use by pod {}; stop it first (`minipod down {}`)",
                        pods.join(", pod "),
                        pods[0]
                    )
                });
            }
        }
    }
    if !errors.is_empty() {
        for name in &removed {
            println!("{name}");
        }
        bail!("{}", errors.join("\n"));
    }
    Ok(removed)
}

pub fn rm(roots: &Roots, names: &[String]) -> Result<ExitCode> {
    for name in remove(roots, names)? {
        println!("{name}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn ls(roots: &Roots, format: &str) -> Result<ExitCode> {
    let records = volume::list(roots);
    match format {
        "json" => println!("{}", serde_json::to_string_pretty(&records)?),
        "table" => {
            println!("{:<40} {:<10} {:<21} CREATED BY", "NAME", "SIZE", "CREATED");
            for r in &records {
                println!(
                    "{:<40} {:<10} {:<21} {}",
                    r.name,
                    r.requested_storage.as_deref().unwrap_or("-"),
                    r.created.replace('T', " ").trim_end_matches('Z'),
                    r.created_by
                );
            }
        }
        other => bail!("--format {other:?}: use table or json"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Each volume's record, its mountpoint and the pods using it, as JSON.
pub fn inspect(roots: &Roots, names: &[String]) -> Result<ExitCode> {
    let mut shown = Vec::new();
    for name in names {
        let r = volume::read(roots, name)?;
        let mut json = serde_json::to_value(&r)?;
        json["mountpoint"] = serde_json::json!(volume::mountpoint(roots, name));
        json["usedBy"] = serde_json::json!(pods_using(roots, name));
        shown.push(json);
    }
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(ExitCode::SUCCESS)
}

/// Removes every volume no running pod uses. Asks first on a terminal;
/// elsewhere `--force` is needed.
pub fn prune(roots: &Roots, force: bool) -> Result<ExitCode> {
    if !force {
        if !std::io::stdin().is_terminal() {
            bail!("volume prune removes every unused volume and its data; add --force to confirm");
        }
        eprint!("Remove every volume no running pod uses, with its data? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let records = volume::list(roots);
    if records.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    userns::enter(roots)?;
    for r in records {
        if volume::remove(roots, &r.name)? == Removal::Removed {
            println!("{}", r.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}
