//! `minipod secret|configmap create|ls|inspect|rm`: the local store
//! (`objects`), and `config_objects`, which gathers every ConfigMap and
//! Secret a `run` sees. A Secret's values are never printed.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::objects::{self, noun, sources};
use crate::paths::Roots;
use crate::spec::objects::{ConfigObject, ConfigObjects, ObjectKind};

/// Where `create` reads the values, as kubectl's flags give them.
#[derive(Default)]
pub struct CreateOptions {
    /// A Secret's `type` (`Opaque` when unset).
    pub type_: Option<String>,
    pub literals: Vec<String>,
    pub files: Vec<String>,
    pub env_files: Vec<String>,
}

pub fn create(
    roots: &Roots,
    kind: ObjectKind,
    name: &str,
    opts: CreateOptions,
) -> Result<ExitCode> {
    let noun = noun(kind);
    if let Some(why) = crate::spec::names::dns1123_subdomain(name) {
        bail!("{noun} name: {}", crate::spec::names::invalid(name, &why));
    }
    let others = !opts.literals.is_empty() || !opts.files.is_empty();
    if !opts.env_files.is_empty() && others {
        // As kubectl: an env file is the whole content.
        bail!("--from-env-file cannot be combined with --from-file or --from-literal");
    }
    let mut gathered = sources::Gathered::default();
    let fail = |e: String| anyhow::anyhow!("{noun} {name}: {e}");
    for l in &opts.literals {
        let (k, v) = sources::literal(l).map_err(fail)?;
        gathered
            .add(&k, v.into_bytes(), &format!("--from-literal {k}=…"))
            .map_err(fail)?;
    }
    for f in &opts.files {
        let (key, path) = sources::file(f).map_err(fail)?;
        read_file_source(&mut gathered, key, &path).map_err(|e| fail(format!("{e:#}")))?;
    }
    for path in &opts.env_files {
        let text = std::fs::read(path).with_context(|| format!("{noun} {name}: reading {path}"))?;
        let from = format!("--from-env-file {path}");
        for (k, v) in sources::env_file(&text, path, |k| std::env::var(k).ok()).map_err(fail)? {
            gathered.add(&k, v.into_bytes(), &from).map_err(fail)?;
        }
    }
    // As kubectl: a ConfigMap value that is not UTF-8 goes to binaryData.
    let binary_keys = match kind {
        ObjectKind::ConfigMap => gathered
            .data
            .iter()
            .filter(|(_, v)| std::str::from_utf8(v).is_err())
            .map(|(k, _)| k.clone())
            .collect(),
        ObjectKind::Secret => Default::default(),
    };
    let object = ConfigObject {
        kind,
        name: name.to_string(),
        namespace: None,
        data: gathered.data,
        binary_keys,
        secret_type: match kind {
            ObjectKind::Secret => Some(opts.type_.unwrap_or_else(|| "Opaque".into())),
            ObjectKind::ConfigMap => None,
        },
        immutable: false,
        origin: objects::STORE_ORIGIN.into(),
    };
    let problems = object.problems();
    if !problems.is_empty() {
        let lines: Vec<String> = problems
            .iter()
            .map(|(field, why)| format!("{noun} {name}: {field}: {why}"))
            .collect();
        bail!("{}", lines.join("\n"));
    }
    objects::create(roots, &object)?;
    println!("{noun}/{name} created");
    Ok(ExitCode::SUCCESS)
}

/// `--from-file [K=]PATH`: a file under its key (its base name by
/// default), or each regular file of a directory under its own name.
fn read_file_source(
    gathered: &mut sources::Gathered,
    key: Option<String>,
    path: &str,
) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("--from-file {path}"))?;
    let from = format!("--from-file {path}");
    if !meta.is_dir() {
        let key = key.unwrap_or_else(|| sources::base_name(path));
        let value = std::fs::read(path).with_context(|| format!("reading {path}"))?;
        return gathered.add(&key, value, &from).map_err(anyhow::Error::msg);
    }
    if key.is_some() {
        bail!("--from-file {path}: a directory takes no key name; its files' names are the keys");
    }
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .with_context(|| format!("reading {path}"))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {path}"))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        // Subdirectories, symlinks, devices and pipes are skipped, as kubectl does.
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let file = entry.path();
        let key = entry.file_name().to_string_lossy().into_owned();
        let value = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        gathered
            .add(&key, value, &format!("--from-file {}", file.display()))
            .map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

/// `ls`: NAME, TYPE (Secrets), KEYS, CREATED; or JSON.
pub fn ls(roots: &Roots, kind: ObjectKind, format: &str) -> Result<ExitCode> {
    let stored = objects::list(roots, kind)?;
    match format {
        "json" => {
            let rows: Vec<serde_json::Value> = stored
                .iter()
                .map(|s| {
                    let mut row = serde_json::json!({
                        "name": s.object.name,
                        "keys": s.object.data.keys().collect::<Vec<_>>(),
                        "created": s.created,
                    });
                    if let Some(t) = &s.object.secret_type {
                        row["type"] = serde_json::json!(t);
                    }
                    row
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        "table" => {
            let secret = kind == ObjectKind::Secret;
            if secret {
                println!("{:<32} {:<36} {:<21} KEYS", "NAME", "TYPE", "CREATED");
            } else {
                println!("{:<32} {:<21} KEYS", "NAME", "CREATED");
            }
            for s in &stored {
                let keys: Vec<&str> = s.object.data.keys().map(String::as_str).collect();
                let keys = keys.join(",");
                if secret {
                    let t = s.object.secret_type.as_deref().unwrap_or_default();
                    println!("{:<32} {t:<36} {:<21} {keys}", s.object.name, s.created);
                } else {
                    println!("{:<32} {:<21} {keys}", s.object.name, s.created);
                }
            }
        }
        other => bail!("--format {other:?}: use table or json"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `inspect`: the object without its values, each key with its size.
pub fn inspect(roots: &Roots, kind: ObjectKind, names: &[String]) -> Result<ExitCode> {
    let mut shown = Vec::new();
    for name in names {
        let s = objects::get(roots, kind, name)?.ok_or_else(|| not_found(kind, name))?;
        let sizes: serde_json::Map<String, serde_json::Value> = s
            .object
            .data
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::json!(v.len())))
            .collect();
        let mut json = serde_json::json!({
            "kind": kind.to_string(),
            "name": s.object.name,
            "created": s.created,
            "immutable": s.object.immutable,
            "keys": sizes,
        });
        if let Some(t) = &s.object.secret_type {
            json["type"] = serde_json::json!(t);
        }
        if kind == ObjectKind::ConfigMap {
            let binary: Vec<&String> = s
                .object
                .data
                .iter()
                .filter(|(_, v)| std::str::from_utf8(v).is_err())
                .map(|(k, _)| k)
                .collect();
            json["binaryKeys"] = serde_json::json!(binary);
        }
        shown.push(json);
    }
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(ExitCode::SUCCESS)
}

fn not_found(kind: ObjectKind, name: &str) -> anyhow::Error {
    let noun = noun(kind);
    anyhow::anyhow!(
        "no {noun} {name:?} in the store; `minipod {noun} ls` lists them, `minipod {noun} create \
         {name} --from-literal KEY=VALUE` makes one"
    )
}

/// `rm`: removes each that exists; names one that does not as an error.
pub fn rm(roots: &Roots, kind: ObjectKind, names: &[String]) -> Result<ExitCode> {
    let mut missing = Vec::new();
    for name in names {
        if objects::remove(roots, kind, name)? {
            println!("{name}");
        } else {
            missing.push(not_found(kind, name).to_string());
        }
    }
    if !missing.is_empty() {
        bail!("{}", missing.join("\n"));
    }
    Ok(ExitCode::SUCCESS)
}

/// Every ConfigMap and Secret a `run` sees, in the order their sources are
/// looked in: the documents of its files (`documents`), then each
/// `--configmap` file in the order given, then the store. Of the store,
/// only what the pods refer to (`wanted`) is read: a `run` that names
/// nothing pays nothing for it, and one damaged object fails only the
/// pods that read it.
pub fn config_objects(
    roots: &Roots,
    documents: ConfigObjects,
    configmap_files: &[String],
    wanted: &[(ObjectKind, &str)],
) -> Result<ConfigObjects> {
    let mut all = documents;
    let mut errors = Vec::new();
    for file in configmap_files {
        let text = std::fs::read_to_string(Path::new(file))
            .with_context(|| format!("--configmap {file}: reading it"))?;
        match crate::spec::objects_from_yaml(&text, file) {
            Ok(objects) => all.extend(objects.iter().cloned()),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    let mut read: Vec<&(ObjectKind, &str)> = Vec::new();
    for w in wanted {
        if read.contains(&w) {
            continue;
        }
        read.push(w);
        if let Some(stored) = objects::get(roots, w.0, w.1)? {
            all.add(stored.object);
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_come_before_configmap_files_before_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let roots = Roots::under(dir.path());
        let stored = |name: &str| ConfigObject {
            kind: ObjectKind::ConfigMap,
            name: name.into(),
            namespace: None,
            data: Default::default(),
            binary_keys: Default::default(),
            secret_type: None,
            immutable: false,
            origin: objects::STORE_ORIGIN.into(),
        };
        // An empty store costs nothing and gives nothing.
        let wanted = [
            (ObjectKind::ConfigMap, "app"),
            (ObjectKind::ConfigMap, "only-stored"),
        ];
        let none = config_objects(&roots, ConfigObjects::default(), &[], &wanted).unwrap();
        assert_eq!(none.iter().count(), 0);
        objects::create(&roots, &stored("app")).unwrap();
        objects::create(&roots, &stored("only-stored")).unwrap();
        let file = dir.path().join("cm.yaml");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-file, namespace: team}\n",
        )
        .unwrap();
        let file = file.display().to_string();
        let documents = crate::spec::objects_from_yaml(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\n",
            "pod.yaml",
        )
        .unwrap();
        let all = config_objects(&roots, documents, std::slice::from_ref(&file), &wanted).unwrap();
        let origin = |ns: &str, name: &str| {
            all.find(ObjectKind::ConfigMap, ns, name)
                .map(|o| o.origin.clone())
        };
        assert_eq!(origin("default", "app").unwrap(), "pod.yaml:1");
        assert_eq!(
            all.shadow_warning(ObjectKind::ConfigMap, "default", "app")
                .unwrap(),
            format!(
                "ConfigMap app is given in pod.yaml:1 and in {file}:1, the store; the first is used"
            )
        );
        assert_eq!(origin("team", "from-file").unwrap(), format!("{file}:5"));
        assert_eq!(origin("default", "from-file"), None);
        assert_eq!(origin("any", "only-stored").unwrap(), "the store");
        // What no pod refers to is not read from the store.
        let unread = config_objects(&roots, ConfigObjects::default(), &[], &[]).unwrap();
        assert_eq!(unread.iter().count(), 0);
        // Without the documents, the file's comes first.
        let all = config_objects(
            &roots,
            ConfigObjects::default(),
            std::slice::from_ref(&file),
            &wanted,
        )
        .unwrap();
        assert_eq!(
            all.find(ObjectKind::ConfigMap, "default", "app")
                .unwrap()
                .origin,
            format!("{file}:1")
        );
    }
}
