//! Everything about a pod that can be worked out (and checked) before any
//! process is started: images, each container's process, volumes. A failure
//! here leaves nothing behind because nothing has been created yet.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use super::contract::container::Process;
use crate::image::Store;
use crate::image::auth::PodCredentials;
use crate::image::reference::Reference;
use crate::image::registry::{PullOptions, Puller};
use crate::seccomp::{self, Programs};
use crate::spec::objects::{self, ConfigObjects, ObjectKind};
use crate::spec::security::Seccomp;
use crate::spec::{self, ContainerPlan, HostPathType, ImageDefaults, PodPlan, VolumeKind};
use crate::sys::openat2::{Confine, open_confined};

/// A container whose image and process are known.
pub struct PreparedContainer {
    pub plan: ContainerPlan,
    /// The image's normalised name and ID (config digest).
    pub image_name: String,
    pub image_id: String,
    /// Unpacked layer dirs, bottom first.
    pub layers: Vec<PathBuf>,
    pub process: Process,
    /// The image's StopSignal, if any (SIGTERM otherwise).
    pub stop_signal: Option<String>,
}

/// An image `run` has to pull, and whether an older copy is in the store.
pub struct ToPull {
    pub reference: Reference,
    pub present: bool,
    /// The imagePullSecrets' credentials of the pods that use it.
    pub credentials: PodCredentials,
}

/// Step 2 of `run` (docs/ARCHITECTURE.md, "The processes"): which images the pull policies ask for.
/// `policy` (`run --pull`) overrides each container's `imagePullPolicy`.
/// `localhost/` images are local by name (podman's convention) and never
/// pulled. Reads the store only, so it needs no user namespace.
pub fn images_to_pull_for<'a>(
    store: &Store,
    pods: impl IntoIterator<Item = &'a PodPlan>,
    policy: Option<spec::PullPolicy>,
) -> Result<Vec<ToPull>> {
    use spec::PullPolicy::*;
    // Each image once; Always wins when containers share an image.
    let mut wanted: BTreeMap<String, (Reference, spec::PullPolicy, String)> = BTreeMap::new();
    // Containers' images, and image volumes' (named `volume NAME`).
    let images = pods.into_iter().flat_map(|p| {
        let containers = p.init_containers.iter().chain(&p.containers);
        containers
            .map(|c| (c.name.clone(), c.image.as_str(), c.pull_policy))
            .chain(p.volumes.iter().filter_map(|v| match &v.kind {
                VolumeKind::Image {
                    reference,
                    pull_policy,
                } => Some((
                    format!("volume {}", v.name),
                    reference.as_str(),
                    *pull_policy,
                )),
                _ => None,
            }))
    });
    for (user, image, pull_policy) in images {
        let reference = Reference::parse(image).with_context(|| format!("container {user:?}"))?;
        let p = policy.unwrap_or(pull_policy);
        let e = wanted
            .entry(reference.to_string())
            .or_insert((reference, p, user));
        if p == Always {
            e.1 = Always;
        }
    }
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (name, (reference, p, container)) in wanted {
        let present = store.lookup(&name)?.is_some();
        if reference.domain == "localhost" {
            // Never pulled: missing is an error under every policy.
            if !present {
                errors.push(not_in_store(&container, &name));
            }
            continue;
        }
        match p {
            Always => out.push(ToPull {
                reference,
                present,
                credentials: PodCredentials::default(),
            }),
            IfNotPresent if !present => out.push(ToPull {
                reference,
                present,
                credentials: PodCredentials::default(),
            }),
            Never if !present => errors.push(format!(
                "container {container:?}: image {name} is not in the store and the pull policy \
                 is Never; pull it with `minipod pull {name}`, load it with `minipod load`, or \
                 run with --pull missing"
            )),
            _ => {}
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(out)
}

/// Gives each image of `list` the registry credentials of the
/// `imagePullSecrets` of the pods that use it (in pod order, so the first
/// pod's Secret wins for a registry two of them name). Returns kubelet's
/// warnings, once each for all replicas of a workload: a named Secret that
/// is missing, of a type without credentials, or not a docker config; the
/// pull goes on without it.
pub fn add_pull_secrets<'a>(
    list: &mut [ToPull],
    pods: impl IntoIterator<Item = &'a PodPlan>,
    objects: &ConfigObjects,
) -> Vec<String> {
    let mut warnings: Vec<String> = Vec::new();
    let mut warn = |w: String| {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    };
    for pod in pods {
        if pod.image_pull_secrets.is_empty() {
            continue;
        }
        let mut creds = PodCredentials::default();
        for name in &pod.image_pull_secrets {
            let Some(secret) = objects.find(ObjectKind::Secret, &pod.namespace, name) else {
                warn(format!(
                    "Secret {name} (imagePullSecrets of {}) is not found in the files, the \
                     --configmap files or the store (`minipod secret ls`); its pulls go without \
                     it, as kubelet's do",
                    pod.owner
                ));
                continue;
            };
            if let Some(w) = objects.shadow_warning(ObjectKind::Secret, &pod.namespace, name) {
                warn(w);
            }
            let origin = format!("Secret {name} ({})", secret.origin);
            let type_ = secret.secret_type.as_deref().unwrap_or_default();
            let key = match type_ {
                objects::DOCKER_CONFIG_JSON => ".dockerconfigjson",
                objects::DOCKER_CFG => ".dockercfg",
                _ => {
                    warn(format!(
                        "{origin} is named in imagePullSecrets of {} but is of type {type_}, \
                         which holds no registry credentials; give a Secret of type {}",
                        pod.owner,
                        objects::DOCKER_CONFIG_JSON
                    ));
                    continue;
                }
            };
            let bytes = secret.data.get(key).map(Vec::as_slice).unwrap_or(b"{}");
            if let Err(e) = creds.add_docker_config(bytes, type_ == objects::DOCKER_CFG, &origin) {
                warn(format!("{e:#}; its pulls go without it"));
            }
        }
        if creds.is_empty() {
            continue;
        }
        // Its containers' images and its image volumes'.
        let images: Vec<String> = pod
            .init_containers
            .iter()
            .chain(&pod.containers)
            .map(|c| c.image.as_str())
            .chain(pod.volumes.iter().filter_map(|v| match &v.kind {
                VolumeKind::Image { reference, .. } => Some(reference.as_str()),
                _ => None,
            }))
            .filter_map(|image| Reference::parse(image).ok())
            .map(|r| r.to_string())
            .collect();
        for p in list.iter_mut() {
            if images.contains(&p.reference.to_string()) {
                p.credentials.append(&creds);
            }
        }
    }
    warnings
}

/// Pulls every image of `list` at once, in this process (which has joined
/// the user namespace), before anything of the pod is created.
pub fn pull_images(store: &Store, list: &[ToPull], opts: PullOptions) -> Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    let puller = Puller::new(opts)?;
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = list
            .iter()
            .map(|p| {
                let puller = &puller;
                s.spawn(move || {
                    puller
                        .pull(store, &p.reference, &p.credentials)
                        .map(|_| ())
                        .map_err(|e| explain_always(e, p))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("internal error: a pull panicked")))
            })
            .collect()
    });
    let errors: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err().map(|e| format!("{e:#}")))
        .collect();
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(())
}

fn explain_always(e: anyhow::Error, p: &ToPull) -> anyhow::Error {
    if p.present {
        e.context(format!(
            "image {} is in the store, but its pull policy is Always; run with --pull missing \
             to use the local copy",
            p.reference
        ))
    } else {
        e
    }
}

/// The same for `run -d`, whose caller must not join the user namespace:
/// each image is pulled by a `minipod pull` of its own (all at once), which
/// prints its own error.
pub fn pull_images_in_helpers(roots: &crate::paths::Roots, list: &[ToPull]) -> Result<()> {
    let mut children = Vec::new();
    for p in list {
        let mut cmd = std::process::Command::new("/proc/self/exe");
        cmd.arg("--root")
            .arg(&roots.data)
            .arg("--runroot")
            .arg(&roots.run)
            .arg("pull")
            .stdout(std::process::Stdio::null());
        if list.len() > 1 {
            cmd.arg("--quiet");
        }
        // A pod's credentials go through a pipe, never a file.
        if !p.credentials.is_empty() {
            cmd.arg("--credentials-stdin")
                .stdin(std::process::Stdio::piped());
        }
        cmd.arg(p.reference.to_string());
        let mut child = cmd.spawn().context("starting `minipod pull`")?;
        if let Some(mut stdin) = child.stdin.take() {
            let json = serde_json::to_vec(&p.credentials)?;
            // A helper that died early is reported by its exit below.
            let _ = std::io::Write::write_all(&mut stdin, &json);
        }
        children.push((p, child));
    }
    let mut failed = Vec::new();
    for (p, mut child) in children {
        if !child.wait().is_ok_and(|s| s.success()) {
            failed.push(p.reference.to_string());
        }
    }
    if !failed.is_empty() {
        bail!(
            "pulling {} failed (see above); nothing was started",
            failed.join(", ")
        );
    }
    Ok(())
}

/// Resolves every container of `plan` against the store. `env`: each
/// container's environment, by name (`spec::config::resolve_env`). All
/// problems are reported together.
pub fn containers(
    store: &Store,
    plan: &PodPlan,
    env: &std::collections::HashMap<String, Vec<(String, String)>>,
) -> Result<Vec<PreparedContainer>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    // Containers of a pod mostly share their profile and capabilities:
    // each distinct pair is compiled once.
    let mut filters: BTreeMap<(Seccomp, u64), Programs> = BTreeMap::new();
    for c in plan.init_containers.iter().chain(&plan.containers) {
        let env = env.get(&c.name).cloned().unwrap_or_default();
        let key = (c.security.seccomp.clone(), c.security.capabilities);
        let seccomp = match filters.get(&key) {
            Some(p) => p.clone(),
            None => match seccomp_programs(store.roots(), c) {
                Ok(p) => filters.entry(key).or_insert(p).clone(),
                Err(e) => {
                    errors.push(format!("{e:#}"));
                    continue;
                }
            },
        };
        match container(store, c, env, seccomp) {
            Ok(p) => out.push(p),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(out)
}

/// The layers of each image volume of `plan` (name, layers bottom first).
pub fn image_volumes(store: &Store, plan: &PodPlan) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let mut out = Vec::new();
    for v in &plan.volumes {
        let VolumeKind::Image { reference, .. } = &v.kind else {
            continue;
        };
        let (name, record) = store
            .lookup(reference)?
            .ok_or_else(|| anyhow!("{}", not_in_store(&format!("volume {}", v.name), reference)))?;
        let layers = layer_dirs(store, &name, &record.layers)?;
        out.push((v.name.clone(), layers));
    }
    Ok(out)
}

/// An image's unpacked layers, bottom first.
fn layer_dirs(store: &Store, image: &str, digests: &[String]) -> Result<Vec<PathBuf>> {
    digests
        .iter()
        .map(|d| {
            store
                .layer_dir(d)
                .ok_or_else(|| anyhow!("image {image}: bad layer digest {d}"))
        })
        .collect()
}

/// The container's seccomp filters, compiled here so that a profile that
/// cannot be read or used fails the run before anything starts.
fn seccomp_programs(roots: &crate::paths::Roots, c: &ContainerPlan) -> Result<Programs> {
    let (text, what) = match &c.security.seccomp {
        Seccomp::Unconfined => return Ok(Programs::default()),
        Seccomp::RuntimeDefault => (
            seccomp::RUNTIME_DEFAULT.to_string(),
            "the RuntimeDefault profile".to_string(),
        ),
        Seccomp::Localhost(file) => {
            let path = roots.seccomp_profiles().join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                anyhow!(
                    "container {:?}: seccompProfile.localhostProfile {file:?}: reading {}: {e}; \
                     put an OCI or Docker seccomp profile (JSON) there, or use type RuntimeDefault",
                    c.name,
                    path.display()
                )
            })?;
            (text, format!("seccomp profile {}", path.display()))
        }
    };
    let target = seccomp::Target {
        capabilities: c.security.capabilities,
        kernel: seccomp::running_kernel(),
    };
    seccomp::parse(&text)
        .and_then(|p| seccomp::resolve(&p, &target))
        .and_then(|r| seccomp::compile(&r))
        .map_err(|e| anyhow!("container {:?}: {what}: {e}", c.name))
}

fn not_in_store(container: &str, image: &str) -> String {
    format!(
        "container {container:?}: image {image} is not in the store; load it with `minipod load` \
         or `minipod import` (localhost/ images are never pulled), or pull it with `minipod pull`"
    )
}

fn container(
    store: &Store,
    c: &ContainerPlan,
    env: Vec<(String, String)>,
    seccomp: Programs,
) -> Result<PreparedContainer> {
    let (name, record) = store
        .lookup(&c.image)?
        .ok_or_else(|| anyhow!("{}", not_in_store(&c.name, &c.image)))?;
    let config = store.config(&record)?;
    if store.owners_lost(&record.layers) {
        tracing::warn!(
            "image {name} was unpacked before you had a subuid range, so every file in it is \
             owned by root and a non-root user in it does not own its own files; \
             `minipod rmi {name}` and pull, load or import it again"
        );
    }
    let layers = layer_dirs(store, &name, &record.layers)?;
    let defaults = config.config().as_ref();
    let image = ImageDefaults {
        entrypoint: defaults
            .and_then(|d| d.entrypoint().clone())
            .unwrap_or_default(),
        cmd: defaults.and_then(|d| d.cmd().clone()).unwrap_or_default(),
        env: defaults.and_then(|d| d.env().clone()).unwrap_or_default(),
        working_dir: defaults.and_then(|d| d.working_dir().clone()),
        user: defaults.and_then(|d| d.user().clone()),
    };
    let process = spec::resolve_process(c, env, &image)?;
    let passwd = read_image_file(&layers, "etc/passwd");
    let group = read_image_file(&layers, "etc/group");
    let ids = spec::resolve_user(
        c,
        image.user.as_deref(),
        passwd.as_deref(),
        group.as_deref(),
    )?;
    Ok(PreparedContainer {
        plan: c.clone(),
        image_name: name.clone(),
        image_id: record.id.clone(),
        layers,
        process: Process {
            argv: process.argv,
            env: process
                .env
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            cwd: process.cwd,
            uid: ids.uid,
            gid: ids.gid,
            additional_gids: ids.additional_gids,
            seccomp,
            security: c.security.clone(),
        },
        stop_signal: defaults.and_then(|d| d.stop_signal().clone()),
    })
}

/// A small file as the merged image shows it: the topmost layer that has it
/// wins. Paths resolve inside each layer only (RESOLVE_IN_ROOT), so a symlink
/// in an image cannot make minipod read a host file.
pub fn read_image_file(layers: &[PathBuf], rel: &str) -> Option<String> {
    for layer in layers.iter().rev() {
        let name = Path::new(rel).file_name()?.to_string_lossy().to_string();
        let parent = Path::new(rel).parent()?;
        if layer.join(parent).join(format!(".wh.{name}")).exists() {
            return None;
        }
        if let Some(text) = read_in_root(layer, rel) {
            return Some(text);
        }
        // A whiteout device hides the lower layers' file.
        if let Ok(m) = std::fs::symlink_metadata(layer.join(rel))
            && m.file_type().is_char_device()
        {
            return None;
        }
    }
    None
}

fn read_in_root(root: &Path, rel: &str) -> Option<String> {
    let dir = std::fs::File::open(root).ok()?;
    let fd = open_confined(
        dir.as_fd(),
        rel,
        nix::fcntl::OFlag::O_RDONLY,
        Confine::InRoot,
    )
    .ok()?;
    let file = std::fs::File::from(fd);
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, 1 << 20), &mut text).ok()?;
    Some(text)
}

/// Checks (and creates, for the *OrCreate types) every hostPath volume, as
/// kubelet does before it starts anything.
pub fn check_host_paths(plan: &PodPlan) -> Result<()> {
    for v in &plan.volumes {
        let VolumeKind::HostPath { path, type_check } = &v.kind else {
            continue;
        };
        let p = Path::new(path);
        let field = format!("volume {:?} (hostPath {path})", v.name);
        let meta = std::fs::metadata(p);
        let want = |ok: bool, what: &str| -> Result<()> {
            if ok {
                Ok(())
            } else {
                Err(anyhow!(
                    "{field}: type {type_check:?} wants {what}, and {path} is not one"
                ))
            }
        };
        match type_check {
            HostPathType::Unset => {
                if meta.is_err() {
                    // Kubernetes creates nothing here; the bind needs a source.
                    bail!(
                        "{field}: {path} does not exist; create it or set type: DirectoryOrCreate"
                    );
                }
            }
            HostPathType::DirectoryOrCreate => {
                if meta.is_err() {
                    std::fs::create_dir_all(p)
                        .with_context(|| format!("{field}: creating {path}"))?;
                } else {
                    want(meta.as_ref().is_ok_and(|m| m.is_dir()), "a directory")?;
                }
            }
            HostPathType::FileOrCreate => {
                if meta.is_err() {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)
                        .with_context(|| format!("{field}: creating {path}"))?;
                } else {
                    want(meta.as_ref().is_ok_and(|m| m.is_file()), "a file")?;
                }
            }
            other => {
                let m = meta.with_context(|| format!("{field}: {path} does not exist"))?;
                let ft = m.file_type();
                match other {
                    HostPathType::Directory => want(ft.is_dir(), "a directory")?,
                    HostPathType::File => want(ft.is_file(), "a file")?,
                    HostPathType::Socket => want(ft.is_socket(), "a socket")?,
                    HostPathType::CharDevice => want(ft.is_char_device(), "a character device")?,
                    HostPathType::BlockDevice => want(ft.is_block_device(), "a block device")?,
                    _ => unreachable!("handled above"),
                }
            }
        }
    }
    Ok(())
}

/// The source of a volume mount on the host side: the volume's directory
/// (with `subPath` appended, created if missing as kubelet does when
/// `create`; an image volume's exists only once the pause mounted it).
pub fn mount_source(volume_dir: &Path, sub_path: Option<&str>, create: bool) -> Result<PathBuf> {
    let Some(sub) = sub_path.filter(|s| !s.is_empty()) else {
        return Ok(volume_dir.to_path_buf());
    };
    let p = volume_dir.join(sub);
    if create && !p.exists() {
        std::fs::create_dir_all(&p).with_context(|| format!("creating subPath {}", p.display()))?;
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_secrets_reach_the_images_of_their_pod_and_missing_ones_warn() {
        let yaml = r#"apiVersion: v1
kind: Secret
metadata: {name: reg}
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{"auths": {"reg.example:5000": {"username": "alice", "password": "pw"}}}'
---
apiVersion: v1
kind: Secret
metadata: {name: plain}
stringData: {k: v}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  imagePullSecrets: [{name: gone}, {name: plain}, {name: reg}]
  containers:
  - {name: c, image: "reg.example:5000/app:1"}
---
apiVersion: v1
kind: Pod
metadata: {name: q}
spec:
  containers:
  - {name: c, image: "reg.example:5000/other:1"}
"#;
        let m = spec::manifest_from_yaml(yaml, "pods.yaml").unwrap();
        let reference = |s: &str| ToPull {
            reference: Reference::parse(s).unwrap(),
            present: false,
            credentials: PodCredentials::default(),
        };
        let mut list = vec![
            reference("reg.example:5000/app:1"),
            reference("reg.example:5000/other:1"),
        ];
        let warnings = add_pull_secrets(&mut list, m.pods(), &m.objects);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("Secret gone") && warnings[0].contains("not found"));
        assert!(
            warnings[1].contains("Secret plain (pods.yaml:8)") && warnings[1].contains("Opaque")
        );
        let creds = list[0].credentials.lookup("reg.example:5000/app").unwrap();
        assert_eq!(creds.username, "alice");
        assert_eq!(creds.origin, Path::new("Secret reg (pods.yaml:1)"));
        // The other pod named no Secret: its image gets none.
        assert!(list[1].credentials.is_empty());
    }
}
