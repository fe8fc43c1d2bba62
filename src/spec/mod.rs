//! Pod YAML: parse, validate, and turn into a plan the runtime executes.
//!
//! The API is one function from text to a plan or a list of errors,
//! [`plan_from_yaml`]: every document is read and every check is made before
//! anything is created, and all errors are reported together, one per line as
//! `FILE:LINE: spec.path: what was wrong; what to do`.
//!
//! - [`support`] holds THE table of honoured fields (and renders it for the README);
//! - [`process`] applies Kubernetes' process semantics once the image config is
//!   known (argv, env with `$(VAR)` expansion, working dir, user);
//! - [`quantity`] parses resource quantities.

mod annotations;
pub mod expand;
pub mod names;
pub mod plan;
pub mod process;
pub mod quantity;
mod schema;
pub mod support;
mod validate;
pub mod yaml;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};

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

const KINDS: [&str; 3] = ["Pod", "ConfigMap", "Secret"];

/// Reads every document of `text` (the file's contents, or stdin's for `-`;
/// `source_name` is what errors show as the file), validates all of it and
/// returns the plan of its one Pod, or every error found.
pub fn plan_from_yaml(text: &str, source_name: &str) -> Result<PodPlan, SpecErrors> {
    let fail = |mut errors: Vec<SpecError>| {
        errors.sort_by_key(|e| (e.line.unwrap_or(usize::MAX), e.column.unwrap_or(0)));
        Err(SpecErrors {
            source_name: source_name.to_string(),
            errors,
        })
    };
    let trees = match yaml::document_trees(text) {
        Ok(t) => t,
        Err(e) => return fail(vec![e]),
    };
    let mut typed_docs = serde_yaml_ng::Deserializer::from_str(text);
    let mut errors = Vec::new();
    let mut pod: Option<(Pod, Positions)> = None;
    let mut first_pod_line: Option<usize> = None;
    let mut config_maps = BTreeMap::new();
    let mut secrets = BTreeMap::new();

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
        let kind = match tree.get("kind").and_then(Node::scalar) {
            Some(k) => k,
            None => {
                errors.push(at(
                    "kind",
                    "required; set kind: Pod (or ConfigMap, Secret)".into(),
                ));
                continue;
            }
        };
        if !KINDS.contains(&kind) {
            errors.push(at(
                "kind",
                format!(
                    "kind {kind} is not supported; minipod runs Pods (with the ConfigMaps \
                     and Secrets they use)"
                ),
            ));
            continue;
        }
        match tree.get("apiVersion").and_then(Node::scalar) {
            Some("v1") => {}
            Some(other) => {
                errors.push(at(
                    "apiVersion",
                    format!("apiVersion \"{other}\" is not valid for kind {kind}; use v1"),
                ));
                continue;
            }
            None => {
                errors.push(at("apiVersion", "required; set apiVersion: v1".into()));
                continue;
            }
        }
        let known = |parent: &str| schema::known_fields(kind, parent);
        match kind {
            "Pod" => {
                let typed = yaml::parse_typed::<Pod>(de, &pos, known);
                errors.extend(typed.errors);
                if let Some(first) = first_pod_line {
                    errors.push(SpecError {
                        line: Some(tree.line),
                        column: None,
                        path: String::new(),
                        message: format!(
                            "a second Pod (the first is at line {first}); minipod runs one \
                             Pod per file: split them into several files"
                        ),
                    });
                    continue;
                }
                first_pod_line = Some(tree.line);
                pod = typed.value.map(|p| (p, pos));
            }
            "ConfigMap" => {
                let typed = yaml::parse_typed::<ConfigMap>(de, &pos, known);
                errors.extend(typed.errors);
                if let Some(cm) = typed.value {
                    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                    for (k, v) in cm.data.into_iter().flatten() {
                        data.insert(k, v.into_bytes());
                    }
                    for (k, v) in cm.binary_data.into_iter().flatten() {
                        if data.insert(k.clone(), v.0).is_some() {
                            errors.push(at(
                                &format!("binaryData.{k}"),
                                format!("key \"{k}\" is also in data; keep it in one of them"),
                            ));
                        }
                    }
                    keep_named(
                        &cm.metadata.name,
                        data,
                        &mut config_maps,
                        "ConfigMap",
                        &pos,
                        &mut errors,
                    );
                }
            }
            _ => {
                let typed = yaml::parse_typed::<Secret>(de, &pos, known);
                errors.extend(typed.errors);
                if let Some(s) = typed.value {
                    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                    for (k, v) in s.data.into_iter().flatten() {
                        data.insert(k, v.0);
                    }
                    for (k, v) in s.string_data.into_iter().flatten() {
                        data.insert(k, v.into_bytes());
                    }
                    keep_named(
                        &s.metadata.name,
                        data,
                        &mut secrets,
                        "Secret",
                        &pos,
                        &mut errors,
                    );
                }
            }
        }
    }

    if first_pod_line.is_none() {
        errors.push(SpecError {
            line: None,
            column: None,
            path: String::new(),
            message: "no Pod in the input; it must hold one document of kind: Pod".into(),
        });
    }
    let Some((pod, pos)) = pod else {
        return fail(errors);
    };

    let mut ctx = validate::Ctx::new(&pos);
    let mut plan = validate::build_pod_plan(&pod, &mut ctx);
    errors.append(&mut ctx.errors);
    let json = serde_json::to_value(&pod).unwrap_or_default();
    let verdict = support::check_fields(&json);
    if let Some(w) = warned_fields(&plan.name, &verdict.warned) {
        plan.warnings.push(w);
    }
    annotations::check(&plan.name, &pod, &pos, &mut plan.warnings, &mut errors);
    for u in verdict.unsupported {
        let path = yaml::render(&u.path);
        let message = support::refusal_message(&u);
        errors.push(SpecError {
            line: pos.line(&path),
            column: None,
            path,
            message,
        });
    }
    if !errors.is_empty() {
        return fail(errors);
    }
    plan.config_maps = config_maps;
    plan.secrets = secrets;
    Ok(plan)
}

/// The one warning for a pod's fields that have no meaning on one machine:
/// each field by its path, grouped by why.
fn warned_fields(pod: &str, warned: &[support::Warned]) -> Option<String> {
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
        "pod {pod}: accepted without effect on one machine: {}",
        clauses.join("; ")
    ))
}

fn keep_named(
    name: &Option<String>,
    data: BTreeMap<String, Vec<u8>>,
    into: &mut BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    kind: &str,
    pos: &Positions,
    errors: &mut Vec<SpecError>,
) {
    let err = |message: String| SpecError {
        line: pos.line("metadata.name"),
        column: None,
        path: "metadata.name".into(),
        message,
    };
    let name = name.clone().unwrap_or_default();
    if name.is_empty() {
        errors.push(err(format!("required; give the {kind} a name")));
        return;
    }
    if let Some(why) = names::dns1123_subdomain(&name) {
        errors.push(err(why));
        return;
    }
    if into.insert(name.clone(), data).is_some() {
        errors.push(err(format!(
            "a second {kind} named \"{name}\"; names must be unique"
        )));
    }
}
