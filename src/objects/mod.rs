//! The local store of ConfigMaps and Secrets (`minipod secret|configmap
//! create`), the last source `run` looks in (`spec::objects`). One file per
//! object under the data root (`secrets/NAME`, `configmaps/NAME`), mode
//! 0600 in 0700 directories, each a Kubernetes document (JSON) so it reads
//! as one; written whole (`sys::fs::atomic_write_private`) under
//! `locks/objects.lock`. Readers take no lock: a file is there whole or not.
//! `sources` holds the pure reading of the `--from-*` flags.

pub mod sources;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::paths::Roots;
use crate::spec::objects::{ConfigObject, ObjectKind};
use crate::sys::lock::{FileLock, Mode};

/// What `origin` says of a store object in messages.
pub const STORE_ORIGIN: &str = "the store";

/// One stored object and when it was created.
pub struct Stored {
    pub object: ConfigObject,
    /// RFC 3339.
    pub created: String,
}

/// The file: a ConfigMap or Secret document as the API server returns it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    api_version: String,
    kind: String,
    metadata: Metadata,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    type_: Option<String>,
    /// A ConfigMap's UTF-8 values; a Secret's values in base64.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    data: BTreeMap<String, String>,
    /// A ConfigMap's other values, in base64 (as kubectl puts them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    binary_data: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    immutable: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    name: String,
    #[serde(default)]
    creation_timestamp: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The command's word for a kind: `secret`, `configmap`.
pub fn noun(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::ConfigMap => "configmap",
        ObjectKind::Secret => "secret",
    }
}

fn dir(roots: &Roots, kind: ObjectKind) -> PathBuf {
    match kind {
        ObjectKind::ConfigMap => roots.configmaps(),
        ObjectKind::Secret => roots.secrets(),
    }
}

fn lock(roots: &Roots) -> Result<FileLock> {
    let locks = roots.data_locks();
    std::fs::create_dir_all(&locks).with_context(|| format!("creating {}", locks.display()))?;
    FileLock::acquire(&locks.join("objects.lock"), Mode::Exclusive)
}

fn encode(o: &ConfigObject, created: &str) -> Document {
    let mut data = BTreeMap::new();
    let mut binary_data = BTreeMap::new();
    for (k, v) in &o.data {
        match (o.kind, std::str::from_utf8(v)) {
            (ObjectKind::ConfigMap, Ok(text)) if !o.binary_keys.contains(k) => {
                data.insert(k.clone(), text.to_string());
            }
            (ObjectKind::ConfigMap, _) => {
                binary_data.insert(k.clone(), b64().encode(v));
            }
            (ObjectKind::Secret, _) => {
                data.insert(k.clone(), b64().encode(v));
            }
        }
    }
    Document {
        api_version: "v1".into(),
        kind: o.kind.to_string(),
        metadata: Metadata {
            name: o.name.clone(),
            creation_timestamp: created.to_string(),
        },
        type_: o.secret_type.clone(),
        data,
        binary_data,
        immutable: o.immutable,
    }
}

fn decode(kind: ObjectKind, doc: Document) -> Result<Stored, String> {
    if doc.kind != kind.to_string() {
        return Err(format!("holds a {}, not a {kind}", doc.kind));
    }
    let mut data = BTreeMap::new();
    for (k, v) in doc.data {
        let value = match kind {
            ObjectKind::ConfigMap => v.into_bytes(),
            ObjectKind::Secret => b64()
                .decode(v)
                .map_err(|_| format!("the value of {k} is not base64"))?,
        };
        data.insert(k, value);
    }
    let mut binary_keys = std::collections::BTreeSet::new();
    for (k, v) in doc.binary_data {
        let value = b64()
            .decode(v)
            .map_err(|_| format!("the value of {k} is not base64"))?;
        binary_keys.insert(k.clone());
        data.insert(k, value);
    }
    Ok(Stored {
        object: ConfigObject {
            kind,
            name: doc.metadata.name,
            namespace: None,
            data,
            binary_keys,
            secret_type: match kind {
                ObjectKind::Secret => Some(doc.type_.unwrap_or_else(|| "Opaque".into())),
                ObjectKind::ConfigMap => None,
            },
            immutable: doc.immutable,
            origin: STORE_ORIGIN.into(),
        },
        created: doc.metadata.creation_timestamp,
    })
}

/// Adds `object` (its name already checked); a name in use is refused.
pub fn create(roots: &Roots, object: &ConfigObject) -> Result<()> {
    let noun = noun(object.kind);
    let name = &object.name;
    let _lock = lock(roots)?;
    let dir = dir(roots, object.kind);
    crate::sys::fs::create_private_dir(&dir)?;
    let path = dir.join(name);
    if path.exists() {
        bail!("{noun}s {name:?} already exists; remove it first with `minipod {noun} rm {name}`");
    }
    let created = crate::sys::time::now_rfc3339();
    let json = serde_json::to_vec_pretty(&encode(object, &created))?;
    crate::sys::fs::atomic_write_private(&path, &json)
}

/// The object of that kind and name, if stored.
pub fn get(roots: &Roots, kind: ObjectKind, name: &str) -> Result<Option<Stored>> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Ok(None);
    }
    let path = dir(roots, kind).join(name);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow!("reading {}: {e}", path.display())),
    };
    // Not `{e}`: serde_json's messages quote the value, a Secret's here.
    let damaged = |why: String| {
        anyhow!(
            "{}: {why}; remove it with `minipod {} rm {name}` and create it again",
            path.display(),
            noun(kind)
        )
    };
    let doc: Document = serde_json::from_slice(&bytes).map_err(|e| {
        damaged(format!(
            "not a {kind} document (at line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    decode(kind, doc).map(Some).map_err(damaged)
}

/// Every stored object of `kind`, by name.
pub fn list(roots: &Roots, kind: ObjectKind) -> Result<Vec<Stored>> {
    let dir = dir(roots, kind);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(anyhow!("reading {}: {e}", dir.display())),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // Temporary files of a write in progress.
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        if let Some(s) = get(roots, kind, &name)? {
            out.push(s);
        }
    }
    Ok(out)
}

/// Removes one object; false when there was none.
pub fn remove(roots: &Roots, kind: ObjectKind, name: &str) -> Result<bool> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Ok(false);
    }
    let _lock = lock(roots)?;
    let path = dir(roots, kind).join(name);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(anyhow!("removing {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_round_trips_with_binary_values_apart() {
        let object = ConfigObject {
            kind: ObjectKind::ConfigMap,
            name: "app".into(),
            namespace: None,
            data: BTreeMap::from([
                ("text".to_string(), b"hello".to_vec()),
                ("bin".to_string(), vec![0xff, 0x00]),
            ]),
            binary_keys: ["bin".to_string()].into(),
            secret_type: None,
            immutable: false,
            origin: STORE_ORIGIN.into(),
        };
        let doc = encode(&object, "2026-01-01T00:00:00Z");
        assert_eq!(doc.data["text"], "hello");
        assert_eq!(doc.binary_data["bin"], "/wA=");
        let json = serde_json::to_string(&doc).unwrap();
        let back = decode(ObjectKind::ConfigMap, serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(back.object, object);
        assert_eq!(back.created, "2026-01-01T00:00:00Z");
        assert!(decode(ObjectKind::Secret, serde_json::from_str(&json).unwrap()).is_err());
    }

    #[test]
    fn a_secret_is_stored_in_base64_with_its_type() {
        let object = ConfigObject {
            kind: ObjectKind::Secret,
            name: "db".into(),
            namespace: None,
            data: BTreeMap::from([("password".to_string(), b"hunter2".to_vec())]),
            binary_keys: Default::default(),
            secret_type: Some("Opaque".into()),
            immutable: false,
            origin: STORE_ORIGIN.into(),
        };
        let json = serde_json::to_string(&encode(&object, "")).unwrap();
        assert!(
            !json.contains("hunter2") && json.contains("aHVudGVyMg=="),
            "{json}"
        );
        let back = decode(ObjectKind::Secret, serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(back.object, object);
    }
}
