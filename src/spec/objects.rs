//! ConfigMaps and Secrets: what a pod's volumes and environment read from.
//!
//! They come from several sources, looked at in order: documents of the
//! files given to `run`, then `run --configmap FILE`, then the local store
//! (`minipod secret|configmap create`). The first source that has a name
//! wins; a name found in more than one is worth a warning
//! ([`ConfigObjects::shadow_warning`]).

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    ConfigMap,
    Secret,
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ObjectKind::ConfigMap => "ConfigMap",
            ObjectKind::Secret => "Secret",
        })
    }
}

/// One ConfigMap or Secret, its values decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigObject {
    pub kind: ObjectKind,
    pub name: String,
    /// `metadata.namespace` of a document; `None` for the store's objects,
    /// which every namespace sees.
    pub namespace: Option<String>,
    /// ConfigMap `data` and `binaryData`; Secret `data` (decoded) with
    /// `stringData` merged over it.
    pub data: BTreeMap<String, Vec<u8>>,
    /// The keys of a ConfigMap's `binaryData`: a container's environment
    /// does not see them (kubelet reads `data` only).
    pub binary_keys: BTreeSet<String>,
    /// A Secret's `type` (`Opaque` when unset); `None` for a ConfigMap.
    pub secret_type: Option<String>,
    pub immutable: bool,
    /// Where it was read, for messages: `pod.yaml:12`, `the store`.
    pub origin: String,
}

/// Values stay out of debug output: a Secret's must never reach a log.
impl std::fmt::Debug for ConfigObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigObject")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .field("binary_keys", &self.binary_keys)
            .field("secret_type", &self.secret_type)
            .field("immutable", &self.immutable)
            .field("origin", &self.origin)
            .finish()
    }
}

impl ConfigObject {
    /// Whether a pod in `namespace` sees this object.
    pub fn visible_in(&self, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
    }
}

/// Every ConfigMap and Secret `run` knows of, in the order of their sources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigObjects {
    objects: Vec<ConfigObject>,
}

impl ConfigObjects {
    /// Adds an object of a later source than every one added before.
    pub fn add(&mut self, object: ConfigObject) {
        self.objects.push(object);
    }

    pub fn extend(&mut self, objects: impl IntoIterator<Item = ConfigObject>) {
        self.objects.extend(objects);
    }

    pub fn iter(&self) -> impl Iterator<Item = &ConfigObject> {
        self.objects.iter()
    }

    /// The object of that kind and name a pod in `namespace` reads: the
    /// first source's.
    pub fn find(&self, kind: ObjectKind, namespace: &str, name: &str) -> Option<&ConfigObject> {
        self.all(kind, namespace, name).into_iter().next()
    }

    /// Every object of that kind and name a pod in `namespace` could read,
    /// in source order: the first wins, the others are shadowed by it.
    pub fn all(&self, kind: ObjectKind, namespace: &str, name: &str) -> Vec<&ConfigObject> {
        self.objects
            .iter()
            .filter(|o| o.kind == kind && o.name == name && o.visible_in(namespace))
            .collect()
    }

    /// The warning for a name found in more than one source, if it is.
    pub fn shadow_warning(&self, kind: ObjectKind, namespace: &str, name: &str) -> Option<String> {
        let all = self.all(kind, namespace, name);
        let (first, others) = all.split_first()?;
        let others: Vec<&str> = others.iter().map(|o| o.origin.as_str()).collect();
        if others.is_empty() {
            return None;
        }
        Some(format!(
            "{kind} {name} is given in {} and in {}; the first is used",
            first.origin,
            others.join(", ")
        ))
    }
}

/// The API server's limit on a ConfigMap's or Secret's values together
/// (`MaxSecretSize`, also used for ConfigMaps).
pub const MAX_TOTAL_SIZE: usize = 1024 * 1024;

/// Why `key` cannot name a value of a ConfigMap or Secret, as
/// apimachinery's `IsConfigMapKey` says it.
pub fn key_problem(key: &str) -> Option<String> {
    let mut why = Vec::new();
    if key.len() > 253 {
        why.push("must be no more than 253 characters".to_string());
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        why.push(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' \
             (e.g. 'key.name', or 'KEY_NAME', or 'key-name', regex used for validation is \
             '[-._a-zA-Z0-9]+')"
                .to_string(),
        );
    }
    if key == "." {
        why.push("must not be '.'".into());
    } else if key == ".." {
        why.push("must not be '..'".into());
    } else if key.starts_with("..") {
        why.push("must not start with '..'".into());
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// The message for values too large together.
pub fn too_large(total: usize) -> Option<String> {
    (total > MAX_TOTAL_SIZE).then(|| {
        format!(
            "Too long: the values add up to {total} bytes, more than the {MAX_TOTAL_SIZE} \
             (1 MiB) allowed; keep large files in a hostPath or image volume instead"
        )
    })
}

/// What a Secret's `type` asks of its data, as the API server's
/// `ValidateSecret` checks it: (field, message) for each problem, the
/// field being `data.KEY` or `metadata.annotations`. `annotations` are the
/// document's (none for the store). Values are never quoted.
pub fn secret_type_problems(
    secret_type: &str,
    data: &BTreeMap<String, Vec<u8>>,
    annotations: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let required = |key: &str| {
        (
            format!("data.{key}"),
            format!("Required value: a Secret of type {secret_type} needs the key {key}"),
        )
    };
    let json_object = |key: &str| -> Vec<(String, String)> {
        match data.get(key) {
            None => vec![required(key)],
            Some(v) => {
                match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(v) {
                    Ok(_) => Vec::new(),
                    Err(e) => vec![(
                        format!("data.{key}"),
                        format!(
                            // Not `{e}`: serde_json's messages quote the value.
                            "Invalid value: <secret contents redacted>: not a JSON object (at \
                             line {}, column {}); give the content of a docker config file",
                            e.line(),
                            e.column()
                        ),
                    )],
                }
            }
        }
    };
    match secret_type {
        "" | "Opaque" => Vec::new(),
        DOCKER_CONFIG_JSON => json_object(".dockerconfigjson"),
        DOCKER_CFG => json_object(".dockercfg"),
        "kubernetes.io/basic-auth" => {
            if data.contains_key("username") || data.contains_key("password") {
                Vec::new()
            } else {
                vec![required("username"), required("password")]
            }
        }
        "kubernetes.io/ssh-auth" => {
            if data.get("ssh-privatekey").is_some_and(|v| !v.is_empty()) {
                Vec::new()
            } else {
                vec![required("ssh-privatekey")]
            }
        }
        "kubernetes.io/tls" => ["tls.crt", "tls.key"]
            .into_iter()
            .filter(|k| !data.contains_key(*k))
            .map(required)
            .collect(),
        "kubernetes.io/service-account-token" => {
            if annotations
                .get("kubernetes.io/service-account.name")
                .is_some_and(|v| !v.is_empty())
            {
                Vec::new()
            } else {
                vec![(
                    "metadata.annotations".into(),
                    "Required value: a Secret of type kubernetes.io/service-account-token needs \
                     the annotation kubernetes.io/service-account.name"
                        .into(),
                )]
            }
        }
        _ => Vec::new(),
    }
}

/// The Secret type whose `.dockerconfigjson` holds registry credentials.
pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
/// The older one, whose `.dockercfg` holds them.
pub const DOCKER_CFG: &str = "kubernetes.io/dockercfg";

impl ConfigObject {
    /// Every problem the API server would find in it (keys, size, type),
    /// as (field, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .data
            .keys()
            .filter_map(|k| {
                key_problem(k)
                    .map(|why| (format!("data.{k}"), format!("Invalid value: {k:?}: {why}")))
            })
            .collect();
        if let Some(why) = too_large(self.data.values().map(Vec::len).sum()) {
            out.push(("data".into(), why));
        }
        if let Some(t) = &self.secret_type {
            out.extend(secret_type_problems(t, &self.data, &BTreeMap::new()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: ObjectKind, name: &str, ns: Option<&str>, origin: &str) -> ConfigObject {
        ConfigObject {
            kind,
            name: name.into(),
            namespace: ns.map(str::to_string),
            data: BTreeMap::from([("k".to_string(), origin.as_bytes().to_vec())]),
            binary_keys: BTreeSet::new(),
            secret_type: None,
            immutable: false,
            origin: origin.into(),
        }
    }

    #[test]
    fn the_first_source_wins_and_the_others_are_named() {
        let mut all = ConfigObjects::default();
        all.add(object(
            ObjectKind::ConfigMap,
            "app",
            Some("default"),
            "pod.yaml:3",
        ));
        all.add(object(
            ObjectKind::Secret,
            "app",
            Some("default"),
            "pod.yaml:9",
        ));
        all.add(object(ObjectKind::ConfigMap, "app", None, "the store"));
        let found = all.find(ObjectKind::ConfigMap, "default", "app").unwrap();
        assert_eq!(found.origin, "pod.yaml:3");
        assert_eq!(
            all.shadow_warning(ObjectKind::ConfigMap, "default", "app")
                .unwrap(),
            "ConfigMap app is given in pod.yaml:3 and in the store; the first is used"
        );
        assert_eq!(
            all.shadow_warning(ObjectKind::Secret, "default", "app"),
            None
        );
    }

    #[test]
    fn documents_are_seen_in_their_namespace_only_the_store_everywhere() {
        let mut all = ConfigObjects::default();
        all.add(object(
            ObjectKind::ConfigMap,
            "app",
            Some("team"),
            "a.yaml:1",
        ));
        all.add(object(ObjectKind::ConfigMap, "app", None, "the store"));
        assert_eq!(
            all.find(ObjectKind::ConfigMap, "default", "app")
                .unwrap()
                .origin,
            "the store"
        );
        assert_eq!(
            all.find(ObjectKind::ConfigMap, "team", "app")
                .unwrap()
                .origin,
            "a.yaml:1"
        );
        assert!(all.find(ObjectKind::Secret, "team", "app").is_none());
    }

    #[test]
    fn keys_follow_is_config_map_key() {
        for ok in ["a", "A_b-c.d", ".env", "x..y", &"k".repeat(253)] {
            assert_eq!(key_problem(ok), None, "{ok}");
        }
        assert!(key_problem("a b").unwrap().contains("[-._a-zA-Z0-9]+"));
        assert!(key_problem("").is_some());
        assert_eq!(key_problem(".").unwrap(), "must not be '.'");
        assert_eq!(key_problem("..").unwrap(), "must not be '..'");
        assert_eq!(key_problem("..a").unwrap(), "must not start with '..'");
        assert!(key_problem(&"k".repeat(254)).unwrap().contains("253"));
    }

    #[test]
    fn secret_types_ask_for_their_keys() {
        let data = |pairs: &[(&str, &str)]| -> BTreeMap<String, Vec<u8>> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect()
        };
        let none = BTreeMap::new();
        let fields = |t: &str, d: &BTreeMap<String, Vec<u8>>| -> Vec<String> {
            secret_type_problems(t, d, &none)
                .into_iter()
                .map(|(f, _)| f)
                .collect()
        };
        assert!(fields("Opaque", &data(&[])).is_empty());
        assert!(fields("example.com/own", &data(&[])).is_empty());
        assert_eq!(
            fields(DOCKER_CONFIG_JSON, &data(&[])),
            ["data..dockerconfigjson"]
        );
        assert!(
            fields(
                DOCKER_CONFIG_JSON,
                &data(&[(".dockerconfigjson", "{\"auths\":{}}")])
            )
            .is_empty()
        );
        let bad = secret_type_problems(
            DOCKER_CONFIG_JSON,
            &data(&[(".dockerconfigjson", "[\"s3cr3t\"]")]),
            &none,
        );
        assert!(
            bad[0].1.contains("not a JSON object") && !bad[0].1.contains("s3cr3t"),
            "{bad:?}"
        );
        // serde_json's own message would quote a string given instead.
        let bad = secret_type_problems(
            DOCKER_CONFIG_JSON,
            &data(&[(".dockerconfigjson", "\"hunter2\"")]),
            &none,
        );
        assert!(!bad[0].1.contains("hunter2"), "{bad:?}");
        assert_eq!(fields(DOCKER_CFG, &data(&[])), ["data..dockercfg"]);
        assert_eq!(
            fields("kubernetes.io/tls", &data(&[("tls.crt", "c")])),
            ["data.tls.key"]
        );
        assert_eq!(
            fields("kubernetes.io/basic-auth", &data(&[])),
            ["data.username", "data.password"]
        );
        assert!(fields("kubernetes.io/basic-auth", &data(&[("password", "")])).is_empty());
        assert_eq!(
            fields("kubernetes.io/ssh-auth", &data(&[("ssh-privatekey", "")])),
            ["data.ssh-privatekey"]
        );
        assert_eq!(
            fields("kubernetes.io/service-account-token", &data(&[])),
            ["metadata.annotations"]
        );
        let annotated = BTreeMap::from([(
            "kubernetes.io/service-account.name".to_string(),
            "builder".to_string(),
        )]);
        assert!(
            secret_type_problems(
                "kubernetes.io/service-account-token",
                &data(&[]),
                &annotated
            )
            .is_empty()
        );
    }

    #[test]
    fn an_object_over_one_mebibyte_is_refused() {
        let mut o = object(ObjectKind::ConfigMap, "big", None, "the store");
        o.data.insert("a".into(), vec![b'x'; MAX_TOTAL_SIZE]);
        let p = o.problems();
        assert_eq!(p.len(), 1);
        assert!(p[0].1.starts_with("Too long"), "{p:?}");
    }

    #[test]
    fn debug_output_has_no_values() {
        let o = object(ObjectKind::Secret, "db", None, "s3cr3t-origin");
        let mut o = o;
        o.data.insert("password".into(), b"hunter2".to_vec());
        let shown = format!("{o:?}");
        assert!(
            shown.contains("password") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
