//! ConfigMaps and Secrets: what a pod's volumes and environment read from.
//!
//! They come from several sources, looked at in order: documents of the
//! files given to `run`, then `run --configmap FILE`, then the local store
//! (`minipod secret|configmap create`). The first source that has a name
//! wins; a name found in more than one is worth a warning
//! ([`ConfigObjects::shadow_warning`]).

use std::collections::BTreeMap;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: ObjectKind, name: &str, ns: Option<&str>, origin: &str) -> ConfigObject {
        ConfigObject {
            kind,
            name: name.into(),
            namespace: ns.map(str::to_string),
            data: BTreeMap::from([("k".to_string(), origin.as_bytes().to_vec())]),
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
