//! Pod YAML: parse, validate, and turn into a plan the runtime executes.
//!
//! The API is one function from text to what it runs or a list of errors,
//! [`manifest_from_yaml`]: every document is read and every check is made before
//! anything is created, and all errors are reported together, one per line as
//! `FILE:LINE: spec.path: what was wrong; what to do`.
//!
//! - [`support`] holds THE table of honoured fields (and renders it for the README);
//! - [`process`] applies Kubernetes' process semantics once the image config is
//!   known (argv, env with `$(VAR)` expansion, working dir, user);
//! - [`quantity`] parses resource quantities.

mod annotations;
pub mod claims;
pub mod config;
pub mod defaults;
pub mod expand;
pub mod names;
pub mod objects;
pub mod plan;
mod probes;
pub mod process;
pub mod quantity;
mod schema;
pub mod security;
pub mod service;
pub mod support;
mod validate;
pub mod workload;
pub mod yaml;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::batch::v1 as batch;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ReplicationController, Secret};

pub use plan::*;
pub use process::{ImageDefaults, resolve_process, resolve_user};
#[cfg(test)]
pub use support::{SUPPORTED_FIELDS, supported_fields_markdown};

use yaml::{Node, NodeValue, Positions};

/// One problem in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// 1-based line in the whole file, when known.
    pub line: Option<usize>,
    /// 1-based column, for YAML syntax and type errors.
    pub column: Option<usize>,
    /// `spec.containers[1].name`; empty for a whole-document problem.
    pub path: String,
    /// What was wrong; what to do.
    pub message: String,
}

/// Every problem found in one input, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecErrors {
    pub source_name: String,
    pub errors: Vec<SpecError>,
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.source_name)?;
            if let Some(line) = e.line {
                write!(f, ":{line}")?;
                if let Some(col) = e.column {
                    write!(f, ":{col}")?;
                }
            }
            if e.path.is_empty() {
                write!(f, ": {}", e.message)?;
            } else {
                write!(f, ": {}: {}", e.path, e.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

/// Everything one `run` starts: the workloads of its files (a bare Pod is a
/// workload of its own), in file order, and warnings about the input as a
/// whole.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    pub workloads: Vec<WorkloadPlan>,
    pub warnings: Vec<String>,
    /// What `run` says besides: names made from `generateName`.
    pub notes: Vec<String>,
    /// The ConfigMap and Secret documents, in file order.
    pub objects: objects::ConfigObjects,
    /// The volumes its claims make: PersistentVolumeClaim documents, then
    /// StatefulSets' templates, in file order.
    pub claims: Vec<claims::ClaimPlan>,
    /// The Service documents, in file order.
    pub services: Vec<service::ServicePlan>,
}

/// The pods one workload (or one bare Pod) runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadPlan {
    pub owner: Owner,
    pub namespace: String,
    /// The file it was read from, as given (`<stdin>` for `-`).
    pub source: String,
    pub order: workload::StartOrder,
    pub pods: Vec<PodPlan>,
    /// The line its document starts at.
    pub line: usize,
    /// A StatefulSet's claims, one per template and pod.
    pub claims: Vec<claims::ClaimPlan>,
}

impl Manifest {
    /// Why the input (all of `run`'s files) has nothing `run` could start.
    pub fn check_runnable(&self) -> Result<(), String> {
        if self.workloads.is_empty() && self.services.is_empty() {
            return Err(
                "nothing to run: the input holds no Pod and no workload (Deployment, \
                        StatefulSet, Job, …)"
                    .into(),
            );
        }
        Ok(())
    }

    /// The pods in the order they start: the pods of one wave start
    /// together, each wave once the one before runs. Every pod goes in the
    /// first wave but a StatefulSet's with OrderedReady, which start one per
    /// wave, each after the one before it.
    pub fn start_waves(&self) -> Vec<Vec<(&PodPlan, &WorkloadPlan)>> {
        let mut waves: Vec<Vec<(&PodPlan, &WorkloadPlan)>> = vec![Vec::new()];
        for w in &self.workloads {
            for (i, p) in w.pods.iter().enumerate() {
                if w.order == workload::StartOrder::Ordered {
                    if waves.len() <= i {
                        waves.push(Vec::new());
                    }
                    waves[i].push((p, w));
                } else {
                    waves[0].push((p, w));
                }
            }
        }
        waves.retain(|w| !w.is_empty());
        waves
    }

    pub fn pods(&self) -> impl Iterator<Item = &PodPlan> {
        self.workloads.iter().flat_map(|w| &w.pods)
    }

    /// Adds another file's manifest; a workload or pod named twice is an
    /// error of the later file.
    pub fn merge(&mut self, other: Manifest) -> Result<(), String> {
        for w in &other.workloads {
            if let Some(first) = self
                .workloads
                .iter()
                .find(|o| o.owner == w.owner && o.namespace == w.namespace)
            {
                return Err(format!(
                    "{}: {} is also in {}: each workload may be given once",
                    w.source, w.owner, first.source
                ));
            }
            for p in &w.pods {
                if self.pods().any(|q| q.name == p.name) {
                    return Err(format!(
                        "{}: pod {} of {} has the name of a pod in an earlier file; rename one",
                        w.source, p.name, w.owner
                    ));
                }
            }
        }
        self.workloads.extend(other.workloads);
        self.warnings.extend(other.warnings);
        self.notes.extend(other.notes);
        self.objects.extend(other.objects.iter().cloned());
        for c in other.claims {
            let document =
                |c: &claims::ClaimPlan| c.created_by.starts_with("PersistentVolumeClaim/");
            if let Some(first) = self.claims.iter().find(|f| f.name == c.name) {
                // A StatefulSet uses the claim of its pod's name that
                // exists, as its controller does; two documents clash.
                if !(document(first) && document(&c)) {
                    continue;
                }
                return Err(format!(
                    "{}:{}: a second claim of volume {} (the first is {}, in {}); names must be \
                     unique",
                    c.source, c.line, c.name, first.created_by, first.source
                ));
            }
            self.claims.push(c);
        }
        for s in other.services {
            if let Some(first) = self
                .services
                .iter()
                .find(|f| f.name == s.name && f.namespace == s.namespace)
            {
                return Err(format!(
                    "{}:{}: Service {} is also in {}: each Service may be given once",
                    s.source, s.line, s.name, first.source
                ));
            }
            self.services.push(s);
        }
        Ok(())
    }
}

/// What a document's `kind` makes of it.
enum DocKind {
    Pod,
    ConfigMap,
    Secret,
    /// A PersistentVolumeClaim: a named volume.
    Claim,
    Service,
    Workload(workload::WorkloadKind),
    /// Read and named in one warning (Service, RBAC, …).
    NotActedOn,
}

fn doc_kind(kind: &str) -> Option<DocKind> {
    Some(match kind {
        "Pod" => DocKind::Pod,
        "ConfigMap" => DocKind::ConfigMap,
        "Secret" => DocKind::Secret,
        "PersistentVolumeClaim" => DocKind::Claim,
        "Service" => DocKind::Service,
        k if workload::NOT_ACTED_ON.contains(&k) => DocKind::NotActedOn,
        k => DocKind::Workload(workload::WorkloadKind::parse(k)?),
    })
}

/// A Pod to validate: a bare one, or one a workload's controller would
/// create from its template.
struct PodSource<'a> {
    pod: Pod,
    /// Positions of the Pod's fields: the document's, or its template's.
    positions: Positions,
    /// Where the Pod sits in the document (`spec.template`), for paths.
    at: Option<workload::WorkloadKind>,
    owner: &'a Owner,
}

/// A random number for generated names, from the process's random hasher
/// keys (seeded by the OS) and the clock.
pub fn os_random() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
}

/// Reads every document of `text` (the file's contents, or stdin's for `-`;
/// `source_name` is what errors show as the file), validates all of it and
/// returns what it runs, or every error found.
pub fn manifest_from_yaml(text: &str, source_name: &str) -> Result<Manifest, SpecErrors> {
    manifest_with(text, source_name, &mut os_random)
}

/// What `run`'s flags change in how its input is read.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions<'a> {
    /// `run --name NAME`: every Pod's and workload's `metadata.name` is
    /// NAME (a workload's pods are then named from it, as its controller
    /// names them). The caller checks that the input holds one.
    pub rename: Option<&'a str>,
    /// `run -P`: every hostPort gets a free host port, so a template of
    /// several pods may declare one.
    pub free_host_ports: bool,
}

/// `manifest_from_yaml` as `run`'s flags ask.
pub fn manifest_for_run(
    text: &str,
    source_name: &str,
    options: ReadOptions<'_>,
) -> Result<Manifest, SpecErrors> {
    manifest_inner(text, source_name, &mut os_random, options)
}

/// The ConfigMaps and Secrets of a `run --configmap` file, checked as
/// documents of `run`'s files are; any other kind of document is an error.
pub fn objects_from_yaml(
    text: &str,
    source_name: &str,
) -> Result<objects::ConfigObjects, SpecErrors> {
    let trees = yaml::document_trees(text).map_err(|e| SpecErrors {
        source_name: source_name.to_string(),
        errors: vec![e],
    })?;
    let errors: Vec<SpecError> = trees
        .iter()
        .filter(|t| !t.is_null())
        .filter_map(|t| {
            let kind = t.get("kind").and_then(Node::scalar);
            if matches!(kind, Some("ConfigMap" | "Secret")) {
                return None;
            }
            Some(SpecError {
                line: Some(t.get("kind").map_or(t.line, |k| k.line)),
                column: None,
                path: "kind".into(),
                message: format!(
                    "{}: a --configmap file holds only ConfigMap and Secret documents; give \
                     the others to run as FILE",
                    kind.map_or("no kind".to_string(), |k| format!("kind {k}"))
                ),
            })
        })
        .collect();
    if !errors.is_empty() {
        return Err(SpecErrors {
            source_name: source_name.to_string(),
            errors,
        });
    }
    Ok(manifest_from_yaml(text, source_name)?.objects)
}

/// The plan of the one Pod of `text`; for tests of single pods.
#[cfg(test)]
pub fn plan_from_yaml(text: &str, source_name: &str) -> Result<PodPlan, SpecErrors> {
    let m = manifest_from_yaml(text, source_name)?;
    Ok(m.pods().next().expect("a pod").clone())
}

/// `manifest_from_yaml` with the random numbers for generated names given.
pub fn manifest_with(
    text: &str,
    source_name: &str,
    random: &mut dyn FnMut() -> u64,
) -> Result<Manifest, SpecErrors> {
    manifest_inner(text, source_name, random, ReadOptions::default())
}

fn manifest_inner(
    text: &str,
    source_name: &str,
    random: &mut dyn FnMut() -> u64,
    options: ReadOptions<'_>,
) -> Result<Manifest, SpecErrors> {
    let rename = options.rename;
    let fail = |mut errors: Vec<SpecError>| {
        errors.sort_by_key(|e| (e.line.unwrap_or(usize::MAX), e.column.unwrap_or(0)));
        Err(SpecErrors {
            source_name: source_name.to_string(),
            errors,
        })
    };
    let text = &*yaml::yaml11_octals(text);
    let trees = match yaml::document_trees(text) {
        Ok(t) => t,
        Err(e) => return fail(vec![e]),
    };
    let mut typed_docs = serde_yaml_ng::Deserializer::from_str(text);
    let mut errors = Vec::new();
    let mut manifest = Manifest::default();
    let mut not_acted_on: Vec<String> = Vec::new();

    for tree in &trees {
        let Some(de) = typed_docs.next() else {
            break;
        };
        if tree.is_null() {
            continue;
        }
        let pos = tree.positions();
        let at = |path: &str, message: String| SpecError {
            line: pos.line(path),
            column: None,
            path: path.to_string(),
            message,
        };
        if !matches!(tree.value, NodeValue::Map(_)) {
            errors.push(SpecError {
                line: Some(tree.line),
                column: None,
                path: String::new(),
                message: "a document must be a Kubernetes object (a mapping with apiVersion \
                          and kind); this one is not"
                    .into(),
            });
            continue;
        }
        for (path, line) in yaml::duplicate_keys(tree) {
            errors.push(SpecError {
                line: Some(line),
                column: None,
                path,
                message: "duplicate field; keep only one".into(),
            });
        }
        let Some(kind) = tree.get("kind").and_then(Node::scalar) else {
            errors.push(at(
                "kind",
                "Required value: set kind: Pod, or a workload such as Deployment or Job".into(),
            ));
            continue;
        };
        let Some(doc_kind) = doc_kind(kind) else {
            let runs: Vec<&str> = workload::WorkloadKind::ALL
                .iter()
                .map(|k| k.name())
                .collect();
            errors.push(at(
                "kind",
                format!(
                    "kind {kind} is not known to minipod; it runs Pods and the workloads {} \
                     (with the ConfigMaps, Secrets and Services they use), and skips with a warning {}",
                    runs.join(", "),
                    workload::NOT_ACTED_ON.join(", ")
                ),
            ));
            continue;
        };
        let api_version = tree.get("apiVersion").and_then(Node::scalar);
        let wanted = match &doc_kind {
            DocKind::Workload(k) => Some(k.api_version()),
            DocKind::NotActedOn => None,
            _ => Some("v1"),
        };
        match (api_version, wanted) {
            (None, _) => {
                errors.push(at(
                    "apiVersion",
                    format!(
                        "Required value: set apiVersion: {}",
                        wanted.unwrap_or("(the kind's API version)")
                    ),
                ));
                continue;
            }
            (Some(v), Some(want)) if v != want => {
                let why = match &doc_kind {
                    DocKind::Workload(k) => k.check_api_version(v).unwrap_or_default(),
                    _ => format!(
                        "Unsupported value: \"{v}\": use apiVersion: {want} for kind {kind}"
                    ),
                };
                errors.push(at("apiVersion", why));
                continue;
            }
            _ => {}
        }
        let known = |parent: &str| schema::known_fields(kind, parent);
        match doc_kind {
            DocKind::Pod => {
                let typed = yaml::parse_typed::<Pod>(de, &pos, known);
                errors.extend(typed.errors);
                let Some(mut pod) = typed.value else { continue };
                if let Some(name) = rename {
                    pod.metadata.name = Some(name.to_string());
                }
                if let Some(name) = generate_name(&pod.metadata, random) {
                    manifest
                        .notes
                        .push(format!("{source_name}: a Pod is named {name}"));
                    pod.metadata.name = Some(name);
                }
                let owner = Owner {
                    kind: "Pod".into(),
                    name: pod.metadata.name.clone().unwrap_or_default(),
                };
                let namespace = pod
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into());
                let source = PodSource {
                    pod,
                    positions: pos.clone(),
                    at: None,
                    owner: &owner,
                };
                let (plan, mut errs, _) = pod_plan(&source, &pos);
                errors.append(&mut errs);
                manifest.workloads.push(WorkloadPlan {
                    owner: owner.clone(),
                    namespace,
                    source: source_name.to_string(),
                    order: workload::StartOrder::Parallel,
                    pods: vec![plan],
                    line: tree.line,
                    claims: Vec::new(),
                });
            }
            DocKind::Workload(wk) => {
                let typed = match wk {
                    workload::WorkloadKind::Deployment => {
                        typed_json::<apps::Deployment>(de, &pos, known)
                    }
                    workload::WorkloadKind::ReplicaSet => {
                        typed_json::<apps::ReplicaSet>(de, &pos, known)
                    }
                    workload::WorkloadKind::StatefulSet => {
                        typed_json::<apps::StatefulSet>(de, &pos, known)
                    }
                    workload::WorkloadKind::DaemonSet => {
                        typed_json::<apps::DaemonSet>(de, &pos, known)
                    }
                    workload::WorkloadKind::ReplicationController => {
                        typed_json::<ReplicationController>(de, &pos, known)
                    }
                    workload::WorkloadKind::Job => typed_json::<batch::Job>(de, &pos, known),
                    workload::WorkloadKind::CronJob => {
                        typed_json::<batch::CronJob>(de, &pos, known)
                    }
                };
                errors.extend(typed.errors);
                if let Some(mut doc) = typed.value {
                    if let Some(name) = rename {
                        doc["metadata"]["name"] = serde_json::json!(name);
                    }
                    let meta = serde_json::from_value(doc["metadata"].clone()).unwrap_or_default();
                    if let Some(name) = generate_name(&meta, random) {
                        manifest
                            .notes
                            .push(format!("{source_name}: a {kind} is named {name}"));
                        doc["metadata"]["name"] = serde_json::json!(name);
                    }
                    match workload_plan(wk, &doc, tree, &pos, source_name, random, options) {
                        Ok(w) => {
                            manifest.claims.extend(w.claims.iter().cloned());
                            if w.pods.is_empty() {
                                manifest
                                    .warnings
                                    .push(format!("{}: replicas is 0: nothing to run", w.owner));
                            }
                            manifest.workloads.push(w);
                        }
                        Err(mut errs) => errors.append(&mut errs),
                    }
                }
            }
            DocKind::Claim => {
                let typed = typed_json::<k8s_openapi::api::core::v1::PersistentVolumeClaim>(
                    de, &pos, known,
                );
                errors.extend(typed.errors);
                if let Some(doc) = typed.value {
                    match claim_plan(&doc, &pos, source_name, tree.line) {
                        Ok((claim, warning)) => {
                            if let Some(first) =
                                manifest.claims.iter().find(|c| c.name == claim.name)
                            {
                                errors.push(at(
                                    "metadata.name",
                                    format!(
                                        "a second PersistentVolumeClaim named \"{}\" (the first \
                                         is at {}:{}); names must be unique",
                                        claim.name, first.source, first.line
                                    ),
                                ));
                            } else {
                                manifest.claims.push(claim);
                            }
                            manifest.warnings.extend(warning);
                        }
                        Err(mut errs) => errors.append(&mut errs),
                    }
                }
            }
            DocKind::Service => {
                let typed = typed_json::<k8s_openapi::api::core::v1::Service>(de, &pos, known);
                errors.extend(typed.errors);
                if let Some(doc) = typed.value {
                    match service_doc(&doc, &pos, source_name, tree.line) {
                        Ok((plan, warning)) => {
                            if let Some(first) = manifest
                                .services
                                .iter()
                                .find(|s| s.name == plan.name && s.namespace == plan.namespace)
                            {
                                errors.push(at(
                                    "metadata.name",
                                    format!(
                                        "a second Service named \"{}\" (the first is at line \
                                         {}); names must be unique",
                                        plan.name, first.line
                                    ),
                                ));
                            } else {
                                manifest.services.push(plan);
                            }
                            manifest.warnings.extend(warning);
                        }
                        Err(mut errs) => errors.append(&mut errs),
                    }
                }
            }
            DocKind::NotActedOn => {
                let name = tree
                    .get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(Node::scalar)
                    .unwrap_or("?");
                not_acted_on.push(format!("{kind}/{name} (line {})", tree.line));
            }
            DocKind::ConfigMap => {
                let typed = yaml::parse_typed::<ConfigMap>(de, &pos, known);
                errors.extend(typed.errors);
                if let Some(cm) = typed.value {
                    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                    for (k, v) in cm.data.into_iter().flatten() {
                        check_key("data", &k, &pos, &mut errors);
                        data.insert(k, v.into_bytes());
                    }
                    let mut binary_keys = std::collections::BTreeSet::new();
                    for (k, v) in cm.binary_data.into_iter().flatten() {
                        check_key("binaryData", &k, &pos, &mut errors);
                        binary_keys.insert(k.clone());
                        if data.insert(k.clone(), v.0).is_some() {
                            errors.push(at(
                                &format!("binaryData.{k}"),
                                format!("key \"{k}\" is also in data; keep it in one of them"),
                            ));
                        }
                    }
                    if let Some(why) = objects::too_large(data.values().map(Vec::len).sum()) {
                        errors.push(at("data", why));
                    }
                    keep_named(
                        objects::ConfigObject {
                            kind: objects::ObjectKind::ConfigMap,
                            name: cm.metadata.name.clone().unwrap_or_default(),
                            namespace: Some(doc_namespace(&cm.metadata)),
                            data,
                            binary_keys,
                            secret_type: None,
                            immutable: cm.immutable.unwrap_or(false),
                            origin: format!("{source_name}:{}", tree.line),
                        },
                        &mut manifest.objects,
                        &pos,
                        &mut errors,
                    );
                }
            }
            DocKind::Secret => {
                let typed = yaml::parse_typed::<Secret>(de, &pos, known);
                errors.extend(typed.errors);
                if let Some(s) = typed.value {
                    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                    for (k, v) in s.data.into_iter().flatten() {
                        check_key("data", &k, &pos, &mut errors);
                        data.insert(k, v.0);
                    }
                    // The API server merges stringData over data, then checks.
                    for (k, v) in s.string_data.into_iter().flatten() {
                        check_key("stringData", &k, &pos, &mut errors);
                        data.insert(k, v.into_bytes());
                    }
                    if let Some(why) = objects::too_large(data.values().map(Vec::len).sum()) {
                        errors.push(at("data", why));
                    }
                    let secret_type = s.type_.clone().unwrap_or_else(|| "Opaque".into());
                    let annotations = s.metadata.annotations.clone().unwrap_or_default();
                    for (field, why) in
                        objects::secret_type_problems(&secret_type, &data, &annotations)
                    {
                        // A key may be given in stringData.
                        let field = match field.strip_prefix("data.") {
                            Some(k) if !pos.has(&field) && pos.has(&format!("stringData.{k}")) => {
                                format!("stringData.{k}")
                            }
                            _ => field,
                        };
                        // A missing key: the map it belongs in, else the type.
                        let line = [field.as_str(), "data", "stringData", "type"]
                            .into_iter()
                            .find(|p| pos.has(p))
                            .and_then(|p| pos.line(p));
                        errors.push(SpecError {
                            line: line.or(pos.line(&field)),
                            column: None,
                            path: field,
                            message: why,
                        });
                    }
                    keep_named(
                        objects::ConfigObject {
                            kind: objects::ObjectKind::Secret,
                            name: s.metadata.name.clone().unwrap_or_default(),
                            namespace: Some(doc_namespace(&s.metadata)),
                            data,
                            binary_keys: Default::default(),
                            secret_type: Some(secret_type),
                            immutable: s.immutable.unwrap_or(false),
                            origin: format!("{source_name}:{}", tree.line),
                        },
                        &mut manifest.objects,
                        &pos,
                        &mut errors,
                    );
                }
            }
        }
    }

    // Workloads and pods named twice in one file.
    let mut seen: Vec<(&Owner, &str)> = Vec::new();
    let mut pod_names: Vec<&str> = Vec::new();
    for w in &manifest.workloads {
        if seen.contains(&(&w.owner, w.namespace.as_str())) {
            errors.push(SpecError {
                line: Some(w.line),
                column: None,
                path: String::new(),
                message: format!("{} is given twice; keep one", w.owner),
            });
            continue;
        }
        seen.push((&w.owner, &w.namespace));
        for p in &w.pods {
            if pod_names.contains(&p.name.as_str()) {
                errors.push(SpecError {
                    line: Some(w.line),
                    column: None,
                    path: String::new(),
                    message: format!(
                        "two pods would be named {}: the second comes from {}; rename one",
                        p.name, w.owner
                    ),
                });
            }
            pod_names.push(&p.name);
        }
    }
    if !errors.is_empty() {
        return fail(errors);
    }
    if !not_acted_on.is_empty() {
        manifest.warnings.push(format!(
            "{source_name}: not acted on (minipod runs Pods and their workloads): {}",
            not_acted_on.join(", ")
        ));
    }
    Ok(manifest)
}

/// The name the API server makes from `generateName` when `name` is not
/// set: the prefix (cut to 58 characters) and five random characters.
fn generate_name(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    random: &mut dyn FnMut() -> u64,
) -> Option<String> {
    if meta.name.as_deref().is_some_and(|n| !n.is_empty()) {
        return None;
    }
    let prefix = meta.generate_name.as_deref().filter(|p| !p.is_empty())?;
    let cut: String = prefix.chars().take(58).collect();
    Some(format!("{cut}{}", workload::random_suffix(random())))
}

/// Reads a workload document as its k8s-openapi type (for unknown fields
/// and wrong types) and hands it on as JSON.
/// A document's `metadata.name`, checked as the API server checks an
/// object's name (a DNS subdomain); `required` says what to do when it is
/// missing.
fn checked_name(
    doc: &serde_json::Value,
    required: &str,
    err_at: &dyn Fn(&str, String) -> SpecError,
    errors: &mut Vec<SpecError>,
) -> String {
    let name = doc["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        errors.push(err_at(
            "metadata.name",
            format!("Required value: {required}"),
        ));
    } else if let Some(why) = names::dns1123_subdomain(&name) {
        errors.push(err_at("metadata.name", names::invalid(&name, &why)));
    }
    name
}

fn typed_json<T: serde::de::DeserializeOwned + serde::Serialize>(
    de: serde_yaml_ng::Deserializer<'_>,
    pos: &Positions,
    known: impl Fn(&str) -> Option<&'static [&'static str]>,
) -> yaml::Typed<serde_json::Value> {
    let typed = yaml::parse_typed::<T>(de, pos, known);
    yaml::Typed {
        value: typed.value.and_then(|v| serde_json::to_value(v).ok()),
        errors: typed.errors,
    }
}

/// The pods a workload runs, each validated as the Pod its controller
/// would create, or every error found (paths in the workload's document).
fn workload_plan(
    kind: workload::WorkloadKind,
    doc: &serde_json::Value,
    tree: &Node,
    pos: &Positions,
    source_name: &str,
    random: &mut dyn FnMut() -> u64,
    options: ReadOptions<'_>,
) -> Result<WorkloadPlan, Vec<SpecError>> {
    let mut errors = Vec::new();
    let err_at = |path: &str, message: String| SpecError {
        line: pos.line(path),
        column: None,
        path: path.to_string(),
        message,
    };
    let name = checked_name(
        doc,
        &format!("give the {} a name", kind.name()),
        &err_at,
        &mut errors,
    );
    let namespace = doc["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let owner = Owner {
        kind: kind.name().into(),
        name: name.clone(),
    };

    // The workload's own fields, then its template as a Pod.
    let own = workload::check_own_fields(kind, doc);
    errors.extend(refusals(&own.unsupported, pos, <[yaml::Seg]>::to_vec));
    let template_at = kind.template_path().trim_end_matches('.');
    let template = workload::at(doc, template_at).cloned().unwrap_or_default();
    let template_labels: BTreeMap<String, String> = template["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let expansion = workload::expand(kind, doc, &name, &template_labels, random);
    for (path, message) in &expansion.errors {
        errors.push(err_at(path, message.clone()));
    }
    let template_node = template_at
        .split('.')
        .try_fold(tree, |n, k| n.get(k))
        .cloned();
    let template_pos = template_node.map(|n| n.positions()).unwrap_or_default();
    let mut warned = own.warned;
    let mut pods: Vec<PodPlan> = Vec::new();
    let templates = claims::templates(doc);
    for (path, message) in claims::check_templates(doc) {
        errors.push(err_at(&path, message));
    }
    let mut workload_claims = Vec::new();
    for (i, identity) in expansion.pods.iter().enumerate() {
        let mut labels = template_labels.clone();
        labels.extend(identity.labels.clone());
        let mut pod_json = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": template.get("metadata").cloned().unwrap_or_else(|| serde_json::json!({})),
            "spec": template.get("spec").cloned().unwrap_or_else(|| serde_json::json!({})),
        });
        pod_json["metadata"]["name"] = serde_json::json!(identity.name);
        pod_json["metadata"]["namespace"] = serde_json::json!(namespace);
        pod_json["metadata"]["labels"] = serde_json::json!(labels);
        if let Some(subdomain) = &identity.subdomain {
            pod_json["spec"]["subdomain"] = serde_json::json!(subdomain);
        }
        if let Some(hostname) = &identity.hostname {
            pod_json["spec"]["hostname"] = serde_json::json!(hostname);
        }
        // A StatefulSet's pod mounts its own claim of each template.
        claims::add_template_volumes(&mut pod_json, &templates, &identity.name);
        for (t, (template, json)) in templates.iter().enumerate() {
            workload_claims.push(claims::ClaimPlan {
                name: claims::template_claim_name(template, &identity.name),
                namespace: namespace.clone(),
                created_by: format!("{owner} (volumeClaimTemplates {template})"),
                requested_storage: json.get("spec").and_then(claims::requested_storage),
                labels: claims::labels(json.get("metadata").unwrap_or(&serde_json::Value::Null)),
                source: source_name.to_string(),
                line: pos
                    .line(&format!("spec.volumeClaimTemplates[{t}]"))
                    .unwrap_or(tree.line),
            });
        }
        let pod: Pod = match serde_json::from_value(pod_json) {
            Ok(p) => p,
            Err(e) => {
                errors.push(err_at(template_at, format!("not a pod template: {e}")));
                break;
            }
        };
        let source = PodSource {
            pod,
            positions: template_pos.clone(),
            at: Some(kind),
            owner: &owner,
        };
        let (mut plan, errs, template_warned) = pod_plan(&source, pos);
        // Every replica is the same template: its errors, warnings (but
        // those of its own name) and warned fields are said once.
        for e in errs {
            if !errors.contains(&e) {
                errors.push(e);
            }
        }
        if let Some(first) = pods.first() {
            plan.warnings.retain(|w| !first.warnings.contains(w));
        }
        if i == 0 {
            warned.extend(template_warned.into_iter().map(|w| support::Warned {
                path: workload::in_template(kind, &w.path),
                why: w.why,
            }));
        }
        if let Some(limit) = expansion.backoff_limit {
            plan.job = Some(JobPlan {
                backoff_limit: limit,
                active_deadline: expansion
                    .active_deadline_seconds
                    .map(|s| std::time::Duration::from_secs(s as u64)),
            });
        }
        pods.push(plan);
    }
    if pods.len() > 1 && !options.free_host_ports {
        for (c, container) in pods[0].containers.iter().enumerate() {
            for (p, port) in container.ports.iter().enumerate() {
                if let Some(host_port) = port.host_port {
                    let path = format!("{template_at}.spec.containers[{c}].ports[{p}].hostPort");
                    errors.push(err_at(
                        &path,
                        format!(
                            "Invalid value: {host_port}: {} pods would publish it, and a host \
                             port can be published by one pod only; remove hostPort (each pod \
                             has its own address), run one replica, or give run -P (a free host \
                             port for each pod)",
                            pods.len()
                        ),
                    ));
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if let (Some(w), Some(first)) = (
        warned_fields(&format!("{} {name}", kind.name()), &warned),
        pods.first_mut(),
    ) {
        first.warnings.push(w);
    }
    Ok(WorkloadPlan {
        owner,
        namespace,
        source: source_name.to_string(),
        order: expansion.order,
        pods,
        line: tree.line,
        claims: workload_claims,
    })
}

/// Validates one Pod (bare, or from a template) into its plan; errors carry
/// the document's paths and lines (`doc_pos`). Also returns the fields the
/// support table warns of, at their paths in the Pod (a bare pod's warning
/// is already in its plan). The Pod is serialized once, for the field check
/// and the plan's manifest.
fn pod_plan(
    source: &PodSource<'_>,
    doc_pos: &Positions,
) -> (PodPlan, Vec<SpecError>, Vec<support::Warned>) {
    let mut ctx = validate::Ctx::new(&source.positions);
    let mut plan = validate::build_pod_plan(&source.pod, &mut ctx);
    let mut errors = std::mem::take(&mut ctx.errors);
    // The validator's warnings start with their path in the Pod: in a
    // template, say where that is in the document, as errors do below.
    if let Some(kind) = source.at {
        for w in &mut plan.warnings {
            w.insert_str(0, kind.template_path());
        }
    }
    annotations::check(
        &plan.name,
        &source.pod,
        &source.positions,
        &mut plan.warnings,
        &mut errors,
    );
    // Paths in a template are the document's.
    if let Some(kind) = source.at {
        for e in &mut errors {
            e.path = format!("{}{}", kind.template_path(), e.path);
        }
    }
    let json = serde_json::to_value(&source.pod).unwrap_or_default();
    let verdict = support::check_fields(&json);
    if source.at.is_none()
        && let Some(w) = warned_fields(&format!("pod {}", plan.name), &verdict.warned)
    {
        plan.warnings.push(w);
    }
    // The advice is the Pod field's; the path is where it is in the document.
    errors.extend(refusals(
        &verdict.unsupported,
        doc_pos,
        |path| match source.at {
            Some(kind) => workload::in_template(kind, path),
            None => path.to_vec(),
        },
    ));
    plan.owner = source.owner.clone();
    plan.manifest = json.to_string();
    (plan, errors, verdict.warned)
}

/// What a document that is not a Pod starts with: its name (checked;
/// `advice` says what to do when it is missing), its namespace, and itself
/// without `status`, for its kind's field table.
struct DocHead {
    name: String,
    namespace: String,
    own: serde_json::Value,
    errors: Vec<SpecError>,
}

fn doc_head(doc: &serde_json::Value, pos: &Positions, advice: &str) -> DocHead {
    let err_at = |path: &str, message: String| SpecError {
        line: pos.line(path),
        column: None,
        path: path.to_string(),
        message,
    };
    let mut errors = Vec::new();
    let name = checked_name(doc, advice, &err_at, &mut errors);
    let mut own = doc.clone();
    if let Some(map) = own.as_object_mut() {
        map.remove("status");
    }
    DocHead {
        name,
        namespace: doc_namespace(
            &serde_json::from_value(doc["metadata"].clone()).unwrap_or_default(),
        ),
        own,
        errors,
    }
}

/// A PersistentVolumeClaim document's claim and the warning for its
/// fields that mean nothing here, or its errors.
fn claim_plan(
    doc: &serde_json::Value,
    pos: &Positions,
    source_name: &str,
    line: usize,
) -> Result<(claims::ClaimPlan, Option<String>), Vec<SpecError>> {
    let DocHead {
        name,
        namespace,
        own,
        mut errors,
    } = doc_head(doc, pos, "give the claim a name, the claimName pods use");
    let verdict =
        support::check_fields_in(&own, &[claims::CLAIM_FIELDS, support::SUPPORTED_FIELDS]);
    errors.extend(refusals(&verdict.unsupported, pos, <[yaml::Seg]>::to_vec));
    let spec = doc.get("spec").cloned().unwrap_or(serde_json::Value::Null);
    for (path, message) in claims::check_claim_spec(&spec, "spec") {
        errors.push(SpecError {
            // A missing field: its nearest parent's line.
            line: pos.line(&path).or(Some(line)),
            column: None,
            path,
            message,
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let warning = warned_fields(&format!("PersistentVolumeClaim {name}"), &verdict.warned);
    Ok((
        claims::ClaimPlan {
            requested_storage: claims::requested_storage(&spec),
            labels: claims::labels(&doc["metadata"]),
            created_by: format!("PersistentVolumeClaim/{name}"),
            namespace,
            name,
            source: source_name.to_string(),
            line,
        },
        warning,
    ))
}

/// A Service document: its fields against the table, then the API
/// server's checks.
fn service_doc(
    doc: &serde_json::Value,
    pos: &Positions,
    source_name: &str,
    line: usize,
) -> Result<(service::ServicePlan, Option<String>), Vec<SpecError>> {
    let DocHead {
        name,
        namespace,
        mut own,
        mut errors,
    } = doc_head(
        doc,
        pos,
        "give the Service a name, the name pods reach it by",
    );
    // Fields the checks below refuse with their own advice.
    if let Some(spec) = own.get_mut("spec").and_then(|s| s.as_object_mut()) {
        spec.remove("externalIPs");
        spec.remove("externalName");
        // The API server's defaults (what `kubectl get -o yaml` writes)
        // ask for nothing: no warning.
        for (field, default) in [
            ("sessionAffinity", "None"),
            ("externalTrafficPolicy", "Cluster"),
            ("internalTrafficPolicy", "Cluster"),
            ("ipFamilyPolicy", "SingleStack"),
        ] {
            if spec.get(field).and_then(|v| v.as_str()) == Some(default) {
                spec.remove(field);
            }
        }
    }
    let verdict =
        support::check_fields_in(&own, &[service::SERVICE_FIELDS, support::SUPPORTED_FIELDS]);
    errors.extend(refusals(&verdict.unsupported, pos, <[yaml::Seg]>::to_vec));
    match service::service_plan(doc, &name, &namespace, source_name, line) {
        Ok(plan) if errors.is_empty() => Ok((
            plan,
            warned_fields(&format!("Service {name}"), &verdict.warned),
        )),
        Ok(_) => Err(errors),
        Err(found) => {
            errors.extend(found.into_iter().map(|(path, message)| SpecError {
                line: pos.line(&path).or(Some(line)),
                column: None,
                path,
                message,
            }));
            Err(errors)
        }
    }
}

/// The errors for fields the tables do not cover, each at `place(path)`
/// in the document.
fn refusals(
    unsupported: &[support::Unsupported],
    pos: &Positions,
    place: impl Fn(&[yaml::Seg]) -> Vec<yaml::Seg>,
) -> Vec<SpecError> {
    unsupported
        .iter()
        .map(|u| {
            let path = yaml::render(&place(&u.path));
            let message = support::refusal_message(u);
            SpecError {
                line: pos.line(&path),
                column: None,
                path,
                message,
            }
        })
        .collect()
}

/// The one warning for a pod's fields that have no meaning on one machine:
/// each field by its path, grouped by why.
fn warned_fields(what: &str, warned: &[support::Warned]) -> Option<String> {
    let mut groups: Vec<(&str, Vec<String>)> = Vec::new();
    for w in warned {
        let path = yaml::render(&w.path);
        match groups.iter_mut().find(|(why, _)| *why == w.why) {
            Some((_, paths)) => paths.push(path),
            None => groups.push((w.why, vec![path])),
        }
    }
    if groups.is_empty() {
        return None;
    }
    let clauses: Vec<String> = groups
        .iter()
        .map(|(why, paths)| format!("{} ({why})", paths.join(", ")))
        .collect();
    Some(format!(
        "{what}: accepted without effect on one machine: {}",
        clauses.join("; ")
    ))
}

fn keep_named(
    object: objects::ConfigObject,
    into: &mut objects::ConfigObjects,
    pos: &Positions,
    errors: &mut Vec<SpecError>,
) {
    let err = |message: String| SpecError {
        line: pos.line("metadata.name"),
        column: None,
        path: "metadata.name".into(),
        message,
    };
    let (kind, name) = (object.kind, &object.name);
    if name.is_empty() {
        errors.push(err(format!("Required value; give the {kind} a name")));
        return;
    }
    if let Some(why) = names::dns1123_subdomain(name) {
        errors.push(err(names::invalid(name, &why)));
        return;
    }
    let namespace = object.namespace.as_deref().unwrap_or_default();
    if let Some(first) = into.find(kind, namespace, name) {
        errors.push(err(format!(
            "a second {kind} named \"{name}\" (the first is at {}); names must be unique",
            first.origin
        )));
        return;
    }
    into.add(object);
}

/// An error for a key of `data`, `binaryData` or `stringData` the API
/// server would refuse.
fn check_key(map: &str, key: &str, pos: &Positions, errors: &mut Vec<SpecError>) {
    if let Some(why) = objects::key_problem(key) {
        let path = format!("{map}.{key}");
        errors.push(SpecError {
            line: pos.line(&path),
            column: None,
            path,
            message: format!("Invalid value: {key:?}: {why}"),
        });
    }
}

/// A document's namespace: `metadata.namespace`, else `default`.
fn doc_namespace(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".into())
}

/// How many Pod and workload documents `text` holds (what `run --name`
/// may rename only one of); 0 when it does not parse.
pub fn pod_and_workload_documents(text: &str) -> usize {
    let Ok(trees) = yaml::document_trees(text) else {
        return 0;
    };
    trees
        .iter()
        .filter(|t| {
            t.get("kind")
                .and_then(Node::scalar)
                .and_then(doc_kind)
                .is_some_and(|k| matches!(k, DocKind::Pod | DocKind::Workload(_)))
        })
        .count()
}

/// The Pods and workloads a YAML text names, read leniently (kind and
/// `metadata.name` only), for `down -` to find what a `run` of it started.
pub fn named_owners(text: &str) -> Vec<(Owner, String)> {
    let Ok(trees) = yaml::document_trees(text) else {
        return Vec::new();
    };
    trees
        .iter()
        .filter_map(|t| {
            let kind = t.get("kind").and_then(Node::scalar)?;
            let meta = t.get("metadata")?;
            let name = meta.get("name").and_then(Node::scalar)?;
            let namespace = meta
                .get("namespace")
                .and_then(Node::scalar)
                .unwrap_or("default");
            let owner = Owner {
                kind: kind.to_string(),
                name: name.to_string(),
            };
            matches!(doc_kind(kind), Some(DocKind::Pod | DocKind::Workload(_)))
                .then(|| (owner, namespace.to_string()))
        })
        .collect()
}
