//! Workload kinds: what a controller would do with a Deployment, a Job, …
//! on one node, decided from the document alone. This module says which
//! kinds exist and in which API version, which of their own fields minipod
//! honours (their pod template is checked as a Pod), how many pods each
//! runs, what they are named and labelled, and in which order they start.

use std::collections::BTreeMap;

use serde_json::Value;

use super::support::{FieldSupport, Support, Unsupported, Verdict, Warned, check_fields_in};
use super::yaml::Seg;

/// A kind minipod runs pods for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    ReplicationController,
    Job,
    CronJob,
}

use WorkloadKind::*;

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 7] = [
        Deployment,
        ReplicaSet,
        StatefulSet,
        DaemonSet,
        ReplicationController,
        Job,
        CronJob,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Deployment => "Deployment",
            ReplicaSet => "ReplicaSet",
            StatefulSet => "StatefulSet",
            DaemonSet => "DaemonSet",
            ReplicationController => "ReplicationController",
            Job => "Job",
            CronJob => "CronJob",
        }
    }

    pub fn parse(kind: &str) -> Option<WorkloadKind> {
        Self::ALL.into_iter().find(|k| k.name() == kind)
    }

    /// The API version the kind is served in today.
    pub fn api_version(self) -> &'static str {
        match self {
            Deployment | ReplicaSet | StatefulSet | DaemonSet => "apps/v1",
            ReplicationController => "v1",
            Job | CronJob => "batch/v1",
        }
    }

    /// Versions the kind was once served in, removed since (Kubernetes
    /// 1.16 for apps and extensions, 1.25 for batch/v1beta1).
    fn removed_versions(self) -> &'static [&'static str] {
        match self {
            Deployment => &["extensions/v1beta1", "apps/v1beta1", "apps/v1beta2"],
            DaemonSet | ReplicaSet => &["extensions/v1beta1", "apps/v1beta2"],
            StatefulSet => &["apps/v1beta1", "apps/v1beta2"],
            ReplicationController | Job => &[],
            CronJob => &["batch/v1beta1", "batch/v2alpha1"],
        }
    }

    /// Why `api_version` is refused, or None when it is the current one.
    pub fn check_api_version(self, api_version: &str) -> Option<String> {
        let current = self.api_version();
        if api_version == current {
            return None;
        }
        let kind = self.name();
        Some(if self.removed_versions().contains(&api_version) {
            format!(
                "{kind} is no longer served in {api_version} (removed from Kubernetes); \
                 use apiVersion: {current}, adjusting the fields that changed (see \
                 https://kubernetes.io/docs/reference/using-api/deprecation-guide/)"
            )
        } else {
            format!(
                "Unsupported value: \"{api_version}\": use apiVersion: {current} for kind {kind}"
            )
        })
    }

    /// The path of the pod template in the document, with its trailing dot.
    pub fn template_path(self) -> &'static str {
        match self {
            CronJob => "spec.jobTemplate.spec.template.",
            _ => "spec.template.",
        }
    }

    /// The rows for the kind's own fields; the template is checked as a Pod.
    pub fn fields(self) -> &'static [FieldSupport] {
        match self {
            Deployment => DEPLOYMENT_FIELDS,
            ReplicaSet => REPLICA_SET_FIELDS,
            StatefulSet => STATEFUL_SET_FIELDS,
            DaemonSet => DAEMON_SET_FIELDS,
            ReplicationController => REPLICATION_CONTROLLER_FIELDS,
            Job => JOB_FIELDS,
            CronJob => CRON_JOB_FIELDS,
        }
    }
}

/// Kinds a manifest often holds beside its workloads, which minipod reads
/// and does not act on (one warning names them).
pub const NOT_ACTED_ON: &[&str] = &[
    "ServiceAccount",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "PersistentVolume",
    "StorageClass",
    "Namespace",
    "Ingress",
    "IngressClass",
    "NetworkPolicy",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "LimitRange",
    "ResourceQuota",
    "PriorityClass",
    "Endpoints",
    "EndpointSlice",
];

const fn row(path: &'static str, support: Support, note: &'static str) -> FieldSupport {
    FieldSupport {
        path,
        support,
        note,
    }
}

use Support::*;

const DEPLOYMENT_FIELDS: &[FieldSupport] = &[
    row("spec.replicas", Yes, "default 1; 0 runs nothing"),
    row(
        "spec.selector",
        Yes,
        "required; must match the template's labels",
    ),
    row(
        "spec.strategy",
        Ignored,
        "rollouts only: `run --replace` replaces every pod at once",
    ),
    row("spec.minReadySeconds", Ignored, "rollouts only"),
    row("spec.revisionHistoryLimit", Ignored, "rollouts only"),
    row("spec.progressDeadlineSeconds", Ignored, "rollouts only"),
    row(
        "spec.paused",
        OnlyValue("false"),
        "a paused Deployment starts nothing",
    ),
];

const REPLICA_SET_FIELDS: &[FieldSupport] = &[
    row("spec.replicas", Yes, "default 1; 0 runs nothing"),
    row(
        "spec.selector",
        Yes,
        "required; must match the template's labels",
    ),
    row("spec.minReadySeconds", Ignored, "availability only"),
];

const REPLICATION_CONTROLLER_FIELDS: &[FieldSupport] = &[
    row("spec.replicas", Yes, "default 1; 0 runs nothing"),
    row(
        "spec.selector",
        Yes,
        "default: the template's labels; must match them",
    ),
    row("spec.minReadySeconds", Ignored, "availability only"),
];

const STATEFUL_SET_FIELDS: &[FieldSupport] = &[
    row(
        "spec.replicas",
        Yes,
        "default 1; pods `NAME-0`, `NAME-1`, …",
    ),
    row(
        "spec.selector",
        Yes,
        "required; must match the template's labels",
    ),
    row(
        "spec.podManagementPolicy",
        Yes,
        "OrderedReady (default): each pod starts once the one before runs; Parallel",
    ),
    row("spec.ordinals.start", Yes, "the first ordinal, default 0"),
    row(
        "spec.serviceName",
        Yes,
        "each pod's spec.subdomain: with a headless Service of that name, pods answer as POD.SERVICE.NAMESPACE.svc.DOMAIN",
    ),
    row("spec.updateStrategy", Ignored, "rollouts only"),
    row("spec.revisionHistoryLimit", Ignored, "rollouts only"),
    row(
        "spec.minReadySeconds",
        Warned("the next pod starts once this one runs, without waiting minReadySeconds"),
        "",
    ),
    row(
        "spec.persistentVolumeClaimRetentionPolicy",
        Ignored,
        "the volumes stay until `down --volumes` or `volume rm`, as with Retain (the default)",
    ),
    row(
        "spec.volumeClaimTemplates[].metadata.name",
        Yes,
        "required; pod `NAME-N` mounts volume `TEMPLATE-NAME-N` where volumeMounts name the template",
    ),
    row(
        "spec.volumeClaimTemplates[].metadata.labels",
        Yes,
        "kept in the volume's record",
    ),
    row(
        "spec.volumeClaimTemplates[].apiVersion",
        Ignored,
        "a template is a claim",
    ),
    row(
        "spec.volumeClaimTemplates[].kind",
        Ignored,
        "a template is a claim",
    ),
    row(
        "spec.volumeClaimTemplates[].metadata.annotations",
        Ignored,
        "",
    ),
    row(
        "spec.volumeClaimTemplates[].spec.resources.requests.storage",
        Yes,
        "required; recorded with each volume, not enforced",
    ),
    row(
        "spec.volumeClaimTemplates[].spec.resources.limits.storage",
        Warned(CLAIM_HERE),
        "",
    ),
    row(
        "spec.volumeClaimTemplates[].spec.accessModes",
        Warned(CLAIM_HERE),
        "required",
    ),
    row(
        "spec.volumeClaimTemplates[].spec.storageClassName",
        Warned(CLAIM_HERE),
        "",
    ),
    row(
        "spec.volumeClaimTemplates[].spec.volumeMode",
        OnlyValue("\"Filesystem\""),
        "",
    ),
];

/// Why a template's class and access modes change nothing.
const CLAIM_HERE: &str = "a claim is a folder under minipod's data root, on this one machine";

const DAEMON_SET_FIELDS: &[FieldSupport] = &[
    row(
        "spec.selector",
        Yes,
        "required; must match the template's labels; one pod, for the one node",
    ),
    row("spec.updateStrategy", Ignored, "rollouts only"),
    row("spec.revisionHistoryLimit", Ignored, "rollouts only"),
    row("spec.minReadySeconds", Ignored, "availability only"),
];

const JOB_FIELDS: &[FieldSupport] = &[
    row(
        "spec.backoffLimit",
        Yes,
        "default 6; OnFailure counts container restarts, Never counts failed attempts",
    ),
    row(
        "spec.activeDeadlineSeconds",
        Yes,
        "the Job fails (`DeadlineExceeded`) once it has run this long",
    ),
    row(
        "spec.completions",
        OnlyValue("1"),
        "one pod per Job for now",
    ),
    row(
        "spec.parallelism",
        OnlyValue("1"),
        "one pod per Job for now",
    ),
    row("spec.completionMode", OnlyValue("\"NonIndexed\""), ""),
    row(
        "spec.suspend",
        OnlyValue("false"),
        "a suspended Job starts nothing",
    ),
    row(
        "spec.selector",
        Yes,
        "generated by Kubernetes; when given, must match the template's labels",
    ),
    row("spec.manualSelector", Yes, ""),
    row(
        "spec.ttlSecondsAfterFinished",
        Warned("a finished Job's pod stays until `minipod rm` or `down`"),
        "",
    ),
    row(
        "spec.podReplacementPolicy",
        Ignored,
        "a failed attempt is replaced once it has stopped, which both values allow",
    ),
];

const CRON_JOB_FIELDS: &[FieldSupport] = &[
    row(
        "spec.schedule",
        Warned("`run` starts the job once, now: the schedule is not followed"),
        "",
    ),
    row(
        "spec.timeZone",
        Warned("`run` starts the job once, now: the schedule is not followed"),
        "",
    ),
    row(
        "spec.concurrencyPolicy",
        Ignored,
        "only one job runs: the one `run` starts",
    ),
    row(
        "spec.startingDeadlineSeconds",
        Ignored,
        "the job starts now, never late",
    ),
    row("spec.successfulJobsHistoryLimit", Ignored, "one job runs"),
    row("spec.failedJobsHistoryLimit", Ignored, "one job runs"),
    row(
        "spec.suspend",
        OnlyValue("false"),
        "a suspended CronJob starts nothing",
    ),
    row("spec.jobTemplate.metadata.labels", Yes, "the Job's labels"),
    row("spec.jobTemplate.metadata.annotations", Yes, ""),
    row(
        "spec.jobTemplate.spec",
        Yes,
        "checked against the Job's table above",
    ),
];

/// Each kind's own fields as Markdown, for the README.
#[cfg(test)]
pub fn workload_fields_markdown() -> String {
    let mut s = String::new();
    for kind in WorkloadKind::ALL {
        s.push_str(&format!(
            "#### {} (`{}`)\n\nIts pod template (`{}`) is checked as a Pod.\n\n{}\n",
            kind.name(),
            kind.api_version(),
            kind.template_path().trim_end_matches('.'),
            super::support::rows_markdown(kind.fields())
        ));
    }
    s
}

/// What the tables say of the document's own fields (its pod template is
/// checked as a Pod): a CronJob's job template is judged by the Job's rows,
/// at its own paths.
pub fn check_own_fields(kind: WorkloadKind, doc: &Value) -> Verdict {
    let tables = [kind.fields(), super::support::SUPPORTED_FIELDS];
    let mut own = own_fields(kind, doc);
    let job_spec = match kind {
        CronJob => own
            .pointer_mut("/spec/jobTemplate")
            .and_then(Value::as_object_mut)
            .and_then(|t| t.remove("spec")),
        _ => None,
    };
    let mut verdict = check_fields_in(&own, &tables);
    if let Some(spec) = job_spec {
        let job = check_fields_in(&serde_json::json!({ "spec": spec }), &[JOB_FIELDS]);
        // `spec.X` of the Job is `spec.jobTemplate.spec.X` here.
        let place = |path: Vec<Seg>| {
            let mut p: Vec<Seg> = ["spec", "jobTemplate"]
                .iter()
                .map(|k| Seg::Key(k.to_string()))
                .collect();
            p.extend(path);
            p
        };
        for u in job.unsupported {
            verdict.unsupported.push(Unsupported {
                path: place(u.path),
                ..u
            });
        }
        for w in job.warned {
            verdict.warned.push(Warned {
                path: place(w.path),
                ..w
            });
        }
    }
    verdict
}

/// The document's own fields, for the field check: everything but the pod
/// template (checked as a Pod) and `status`.
fn own_fields(kind: WorkloadKind, doc: &Value) -> Value {
    let mut doc = doc.clone();
    let template = kind.template_path().trim_end_matches('.');
    let (parent, last) = template.rsplit_once('.').expect("a dotted path");
    let mut at = &mut doc;
    for key in parent.split('.') {
        match at.get_mut(key) {
            Some(v) => at = v,
            None => return doc,
        }
    }
    if let Some(map) = at.as_object_mut() {
        map.remove(last);
    }
    if let Some(map) = doc.as_object_mut() {
        map.remove("status");
    }
    doc
}

/// The value at a dotted path of a JSON document.
pub fn at<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .filter(|k| !k.is_empty())
        .try_fold(doc, |v, k| v.get(k))
}

/// How pods of a workload start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOrder {
    /// Together (each start is a few milliseconds; none waits on another).
    Parallel,
    /// Each once the one before runs (a StatefulSet's OrderedReady).
    Ordered,
}

/// One pod a workload's controller would create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentity {
    pub name: String,
    /// Labels the controller adds to the template's.
    pub labels: BTreeMap<String, String>,
    /// `spec.hostname` the controller sets (a StatefulSet: the pod's name).
    pub hostname: Option<String>,
    /// `spec.subdomain` the controller sets (a StatefulSet: its
    /// `serviceName`, so the pod answers as POD.SERVICE.NAMESPACE.svc…).
    pub subdomain: Option<String>,
}

/// What a workload's controller would create on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    pub pods: Vec<PodIdentity>,
    pub order: StartOrder,
    /// `backoffLimit` for a Job's pods.
    pub backoff_limit: Option<u32>,
    /// The Job's `activeDeadlineSeconds`.
    pub active_deadline_seconds: Option<i64>,
    /// Errors in the workload's own fields: (path, message).
    pub errors: Vec<(String, String)>,
}

/// More pods than one machine should run for one workload (each has its
/// own supervisor, pause and address).
const MAX_REPLICAS: i64 = 1000;

/// The characters of Kubernetes' generated names (no vowels, no look-alikes).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A name suffix as the API server generates it for `generateName` and
/// controllers do for pods: five of `ALPHANUMS`, from `random`.
pub fn random_suffix(random: u64) -> String {
    let mut n = random;
    (0..5)
        .map(|_| {
            let c = ALPHANUMS[(n % ALPHANUMS.len() as u64) as usize] as char;
            n /= ALPHANUMS.len() as u64;
            c
        })
        .collect()
}

/// A Deployment's `pod-template-hash`: a hash of the template, written as
/// Kubernetes writes it (the decimal digits of a 32-bit hash, each mapped
/// to `ALPHANUMS`). The hash function differs from Kubernetes' (which hashes
/// Go's dump of the struct), so the value does too; it is stable for a
/// given template.
pub fn template_hash(template: &Value) -> String {
    let h = crate::sys::hash::fnv1a64(&template.to_string());
    let h32 = (h ^ (h >> 32)) as u32;
    h32.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// Whether a LabelSelector (`matchLabels`, `matchExpressions`) selects
/// `labels`; an error names what is wrong in the selector.
pub fn selects(selector: &Value, labels: &BTreeMap<String, String>) -> Result<bool, String> {
    let mut ok = true;
    if let Some(m) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            ok &= labels.get(k).map(String::as_str) == v.as_str();
        }
    }
    for e in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let op = e
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let have = labels.get(key).map(String::as_str);
        if key.is_empty() {
            return Err("matchExpressions.key: Required value".into());
        }
        ok &= match op {
            "In" | "NotIn" if values.is_empty() => {
                return Err(format!(
                    "matchExpressions.values: Required value: must be specified when \
                     `operator` is '{op}'"
                ));
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(format!(
                    "matchExpressions.values: Forbidden: may not be specified when \
                     `operator` is '{op}'"
                ));
            }
            "In" => have.is_some_and(|h| values.contains(&h)),
            "NotIn" => !have.is_some_and(|h| values.contains(&h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            other => {
                return Err(format!(
                    "matchExpressions: Unsupported value: \"{other}\": supported values: \
                     \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\""
                ));
            }
        };
    }
    Ok(ok)
}

fn int(doc: &Value, path: &str) -> Option<i64> {
    at(doc, path).and_then(Value::as_i64)
}

/// What the workload's controller would create, from the document (as
/// JSON), the workload's name, the template's labels, and a source of
/// random numbers for generated names.
pub fn expand(
    kind: WorkloadKind,
    doc: &Value,
    name: &str,
    template_labels: &BTreeMap<String, String>,
    random: &mut dyn FnMut() -> u64,
) -> Expansion {
    let mut errors = Vec::new();
    let mut err = |path: &str, message: String| errors.push((path.to_string(), message));
    let job_spec = match kind {
        CronJob => "spec.jobTemplate.spec",
        _ => "spec",
    };
    let template = at(doc, kind.template_path())
        .cloned()
        .unwrap_or(Value::Null);
    if template.is_null() {
        err(
            kind.template_path().trim_end_matches('.'),
            format!("Required value: a {} needs a pod template", kind.name()),
        );
    }

    // The selector: required, and it must select the template's pods.
    let selector_path = format!("{job_spec}.selector");
    match at(doc, &selector_path) {
        None if matches!(kind, Deployment | ReplicaSet | StatefulSet | DaemonSet) => err(
            &selector_path,
            format!(
                "Required value: a {} selects its pods by labels; e.g. selector: \
                 {{matchLabels: {{app: {name}}}}} with the same label in the template",
                kind.name()
            ),
        ),
        None => {}
        Some(sel) => {
            let sel = if kind == ReplicationController {
                // A plain map of labels.
                serde_json::json!({ "matchLabels": sel })
            } else {
                sel.clone()
            };
            let entries = |key: &str| {
                sel.get(key).map_or(0, |v| {
                    v.as_object()
                        .map_or_else(|| v.as_array().map_or(0, Vec::len), |o| o.len())
                })
            };
            let empty = entries("matchLabels") + entries("matchExpressions") == 0;
            match selects(&sel, template_labels) {
                Err(why) => err(&selector_path, why),
                Ok(_) if empty && kind != ReplicationController => err(
                    &selector_path,
                    "Invalid value: {}: empty selector is invalid for this workload".into(),
                ),
                Ok(false) => err(
                    &format!("{}metadata.labels", kind.template_path()),
                    "Invalid value: `selector` does not match template `labels`".into(),
                ),
                Ok(true) => {}
            }
        }
    }
    if kind == Job || kind == CronJob {
        let manual = at(doc, &format!("{job_spec}.manualSelector")).and_then(Value::as_bool);
        if at(doc, &selector_path).is_some() && manual != Some(true) {
            err(
                &selector_path,
                "Invalid value: `selector` will be auto-generated; remove it, or set \
                 manualSelector: true"
                    .into(),
            );
        }
    }

    let template_policy =
        at(doc, &format!("{}spec.restartPolicy", kind.template_path())).and_then(Value::as_str);
    let policy_path = format!("{}spec.restartPolicy", kind.template_path());
    match kind {
        Job | CronJob => {
            if !matches!(template_policy, Some("OnFailure" | "Never")) {
                err(
                    &policy_path,
                    match template_policy {
                        None => "Required value: valid values: \"OnFailure\", \"Never\"".into(),
                        Some(p) => format!(
                            "Unsupported value: \"{p}\": supported values: \"OnFailure\", \"Never\""
                        ),
                    },
                );
            }
        }
        _ => {
            if let Some(p) = template_policy.filter(|p| *p != "Always") {
                err(
                    &policy_path,
                    format!("Unsupported value: \"{p}\": supported values: \"Always\""),
                );
            }
        }
    }

    let non_negative = |path: &str, errors: &mut Vec<(String, String)>| -> Option<i64> {
        let v = int(doc, path)?;
        if v < 0 {
            errors.push((
                path.to_string(),
                format!("Invalid value: {v}: must be greater than or equal to 0"),
            ));
            return None;
        }
        Some(v)
    };
    let replicas = match kind {
        Deployment | ReplicaSet | StatefulSet | ReplicationController => {
            non_negative("spec.replicas", &mut errors).unwrap_or(1)
        }
        _ => 1,
    };
    let replicas = if replicas > MAX_REPLICAS {
        errors.push((
            "spec.replicas".into(),
            format!(
                "Invalid value: {replicas}: minipod runs at most {MAX_REPLICAS} pods of a \
                 workload on one machine"
            ),
        ));
        0
    } else {
        replicas
    };
    let backoff_limit = match kind {
        Job | CronJob => {
            Some(non_negative(&format!("{job_spec}.backoffLimit"), &mut errors).unwrap_or(6) as u32)
        }
        _ => None,
    };
    let deadline_path = format!("{job_spec}.activeDeadlineSeconds");
    let active_deadline_seconds = match int(doc, &deadline_path) {
        Some(v) if v <= 0 => {
            errors.push((
                deadline_path,
                format!("Invalid value: {v}: must be greater than 0"),
            ));
            None
        }
        v if matches!(kind, Job | CronJob) => v,
        _ => None,
    };
    let order = match at(doc, "spec.podManagementPolicy").and_then(Value::as_str) {
        _ if kind != StatefulSet => StartOrder::Parallel,
        None | Some("OrderedReady") => StartOrder::Ordered,
        Some("Parallel") => StartOrder::Parallel,
        Some(other) => {
            errors.push((
                "spec.podManagementPolicy".into(),
                format!(
                    "Unsupported value: \"{other}\": supported values: \"OrderedReady\", \"Parallel\""
                ),
            ));
            StartOrder::Ordered
        }
    };

    let mut pods = Vec::new();
    let label = |k: &str, v: &str| (k.to_string(), v.to_string());
    match kind {
        Deployment => {
            let hash = template_hash(&template);
            for _ in 0..replicas {
                pods.push(PodIdentity {
                    name: format!("{name}-{hash}-{}", random_suffix(random())),
                    labels: [label("pod-template-hash", &hash)].into(),
                    hostname: None,
                    subdomain: None,
                });
            }
        }
        ReplicaSet | ReplicationController => {
            for _ in 0..replicas {
                pods.push(PodIdentity {
                    name: format!("{name}-{}", random_suffix(random())),
                    labels: BTreeMap::new(),
                    hostname: None,
                    subdomain: None,
                });
            }
        }
        DaemonSet => pods.push(PodIdentity {
            name: format!("{name}-{}", random_suffix(random())),
            labels: [
                label("controller-revision-hash", &template_hash(&template)),
                label("pod-template-generation", "1"),
            ]
            .into(),
            hostname: None,
            subdomain: None,
        }),
        StatefulSet => {
            let start = non_negative("spec.ordinals.start", &mut errors).unwrap_or(0);
            let revision = format!("{name}-{}", template_hash(&template));
            let service_name = at(doc, "spec.serviceName")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            for ordinal in start..start + replicas {
                let pod = format!("{name}-{ordinal}");
                pods.push(PodIdentity {
                    labels: [
                        label("statefulset.kubernetes.io/pod-name", &pod),
                        label("apps.kubernetes.io/pod-index", &ordinal.to_string()),
                        label("controller-revision-hash", &revision),
                    ]
                    .into(),
                    hostname: Some(pod.clone()),
                    subdomain: service_name.clone(),
                    name: pod,
                });
            }
        }
        Job | CronJob => {
            let job = if kind == CronJob {
                // The scheduled time in minutes, as the CronJob controller
                // names its Jobs; `run` schedules it now.
                let minutes = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() / 60);
                format!("{name}-{minutes}")
            } else {
                name.to_string()
            };
            // The Job's generated selector comes with these labels; with
            // `manualSelector: true` the template's own labels are all.
            let manual = at(doc, &format!("{job_spec}.manualSelector")) == Some(&Value::Bool(true));
            let labels = if manual {
                BTreeMap::new()
            } else {
                [
                    label("batch.kubernetes.io/job-name", &job),
                    label("job-name", &job),
                ]
                .into()
            };
            pods.push(PodIdentity {
                name: format!("{job}-{}", random_suffix(random())),
                labels,
                hostname: None,
                subdomain: None,
            });
        }
    }
    Expansion {
        pods,
        order,
        backoff_limit,
        active_deadline_seconds,
        errors,
    }
}

/// Where in `path` the pod template starts, for errors found in the
/// template (checked as a Pod) to be reported at their place.
pub fn in_template(kind: WorkloadKind, pod_path: &[Seg]) -> Vec<Seg> {
    let mut out: Vec<Seg> = kind
        .template_path()
        .trim_end_matches('.')
        .split('.')
        .map(|k| Seg::Key(k.to_string()))
        .collect();
    out.extend_from_slice(pod_path);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn counter() -> impl FnMut() -> u64 {
        let mut n = 0;
        move || {
            n += 1;
            n
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn suffixes_use_kubernetes_alphabet() {
        assert_eq!(random_suffix(0), "bbbbb");
        let s = random_suffix(u64::MAX);
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|b| ALPHANUMS.contains(&b)), "{s}");
        assert_ne!(random_suffix(1), random_suffix(2));
    }

    #[test]
    fn selectors() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert_eq!(
            selects(&json!({"matchLabels": {"app": "web"}}), &l),
            Ok(true)
        );
        assert_eq!(
            selects(&json!({"matchLabels": {"app": "db"}}), &l),
            Ok(false)
        );
        let expr = |op: &str, values: &[&str]| json!({"matchExpressions": [{"key": "tier", "operator": op, "values": values}]});
        assert_eq!(selects(&expr("In", &["front", "back"]), &l), Ok(true));
        assert_eq!(selects(&expr("NotIn", &["front"]), &l), Ok(false));
        assert_eq!(selects(&expr("Exists", &[]), &l), Ok(true));
        assert_eq!(selects(&expr("DoesNotExist", &[]), &l), Ok(false));
        assert!(selects(&expr("In", &[]), &l).is_err());
        assert!(selects(&expr("Exists", &["x"]), &l).is_err());
        assert!(selects(&expr("Like", &["x"]), &l).is_err());
    }

    fn deployment(replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "c", "image": "i"}]}}
            }
        })
    }

    #[test]
    fn deployment_pods_share_the_template_hash() {
        let doc = deployment(3);
        let e = expand(
            Deployment,
            &doc,
            "web",
            &labels(&[("app", "web")]),
            &mut counter(),
        );
        assert!(e.errors.is_empty(), "{:?}", e.errors);
        assert_eq!(e.pods.len(), 3);
        let hash = template_hash(&doc["spec"]["template"]);
        for p in &e.pods {
            assert!(p.name.starts_with(&format!("web-{hash}-")), "{}", p.name);
            assert_eq!(p.labels["pod-template-hash"], hash);
        }
        assert_ne!(e.pods[0].name, e.pods[1].name);
        assert_eq!(e.order, StartOrder::Parallel);
        let none = expand(
            Deployment,
            &deployment(0),
            "web",
            &labels(&[("app", "web")]),
            &mut counter(),
        );
        assert!(none.pods.is_empty());
    }

    #[test]
    fn selector_must_match_template_labels() {
        let doc = deployment(1);
        let e = expand(
            Deployment,
            &doc,
            "web",
            &labels(&[("app", "db")]),
            &mut counter(),
        );
        assert_eq!(
            e.errors,
            vec![(
                "spec.template.metadata.labels".to_string(),
                "Invalid value: `selector` does not match template `labels`".to_string()
            )]
        );
        let mut doc = deployment(1);
        doc["spec"].as_object_mut().unwrap().remove("selector");
        let e = expand(
            Deployment,
            &doc,
            "web",
            &labels(&[("app", "web")]),
            &mut counter(),
        );
        assert_eq!(e.errors[0].0, "spec.selector");
    }

    #[test]
    fn stateful_set_names_and_order() {
        let doc = json!({"spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                         "template": {"metadata": {"labels": {"a": "b"}}}}});
        let e = expand(
            StatefulSet,
            &doc,
            "db",
            &labels(&[("a", "b")]),
            &mut counter(),
        );
        let names: Vec<&str> = e.pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["db-0", "db-1"]);
        assert_eq!(e.pods[1].labels["apps.kubernetes.io/pod-index"], "1");
        assert_eq!(e.order, StartOrder::Ordered);
        let mut doc = doc;
        doc["spec"]["podManagementPolicy"] = json!("Parallel");
        doc["spec"]["ordinals"] = json!({"start": 5});
        let e = expand(
            StatefulSet,
            &doc,
            "db",
            &labels(&[("a", "b")]),
            &mut counter(),
        );
        assert_eq!(e.pods[0].name, "db-5");
        assert_eq!(e.order, StartOrder::Parallel);
    }

    #[test]
    fn job_policy_backoff_and_names() {
        let doc = json!({"spec": {"backoffLimit": 2, "activeDeadlineSeconds": 30,
                         "template": {"spec": {"restartPolicy": "Never"}}}});
        let e = expand(Job, &doc, "pi", &BTreeMap::new(), &mut counter());
        assert!(e.errors.is_empty(), "{:?}", e.errors);
        assert_eq!(e.backoff_limit, Some(2));
        assert_eq!(e.active_deadline_seconds, Some(30));
        assert!(e.pods[0].name.starts_with("pi-") && e.pods[0].name.len() == 8);
        assert_eq!(e.pods[0].labels["job-name"], "pi");

        let always = json!({"spec": {"template": {"spec": {"restartPolicy": "Always"}}}});
        let e = expand(Job, &always, "pi", &BTreeMap::new(), &mut counter());
        assert_eq!(e.errors[0].0, "spec.template.spec.restartPolicy");
        let unset = json!({"spec": {"template": {"spec": {}}}});
        let e = expand(Job, &unset, "pi", &BTreeMap::new(), &mut counter());
        assert!(
            e.errors[0].1.starts_with("Required value"),
            "{:?}",
            e.errors
        );
        assert_eq!(
            expand(Job, &doc, "pi", &BTreeMap::new(), &mut counter()).backoff_limit,
            Some(2)
        );
    }

    #[test]
    fn cron_job_runs_one_job_named_by_the_minute() {
        let doc = json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {
            "template": {"spec": {"restartPolicy": "OnFailure"}}}}}});
        let e = expand(CronJob, &doc, "hello", &BTreeMap::new(), &mut counter());
        assert!(e.errors.is_empty(), "{:?}", e.errors);
        assert_eq!(e.backoff_limit, Some(6));
        let job = &e.pods[0].labels["job-name"];
        assert!(job.starts_with("hello-2"), "{job}");
        assert!(e.pods[0].name.starts_with(&format!("{job}-")));
    }

    #[test]
    fn api_versions() {
        assert_eq!(Deployment.check_api_version("apps/v1"), None);
        let old = Deployment.check_api_version("extensions/v1beta1").unwrap();
        assert!(old.contains("use apiVersion: apps/v1"), "{old}");
        assert!(
            CronJob
                .check_api_version("batch/v1beta1")
                .unwrap()
                .contains("batch/v1")
        );
        assert!(Job.check_api_version("v1").unwrap().contains("batch/v1"));
    }

    #[test]
    fn a_cron_jobs_job_template_is_judged_as_a_job() {
        let cron = json!({"spec": {"schedule": "x", "jobTemplate": {"spec": {
            "backoffLimit": 1, "suspend": false, "podFailurePolicy": {"rules": []},
            "ttlSecondsAfterFinished": 5, "template": {}}}}});
        let v = check_own_fields(CronJob, &cron);
        let render = |p: &[Seg]| super::super::yaml::render(p);
        let refused: Vec<String> = v.unsupported.iter().map(|u| render(&u.path)).collect();
        assert_eq!(refused, ["spec.jobTemplate.spec.podFailurePolicy"]);
        let warned: Vec<String> = v.warned.iter().map(|w| render(&w.path)).collect();
        assert!(warned.contains(&"spec.schedule".to_string()), "{warned:?}");
        assert!(
            warned.contains(&"spec.jobTemplate.spec.ttlSecondsAfterFinished".to_string()),
            "{warned:?}"
        );
    }

    #[test]
    fn own_fields_leave_out_the_template() {
        let doc = deployment(1);
        let own = own_fields(Deployment, &doc);
        assert!(own["spec"].get("template").is_none());
        assert_eq!(own["spec"]["replicas"], 1);
        let cron = json!({"spec": {"schedule": "x", "jobTemplate": {"spec": {"backoffLimit": 1, "template": {}}}}});
        let own = own_fields(CronJob, &cron);
        assert!(own["spec"]["jobTemplate"]["spec"].get("template").is_none());
    }
}
