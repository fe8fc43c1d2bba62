//! End-to-end tests of `plan_from_yaml`: text in, plan or errors out.

use std::time::Duration;

use super::objects::ObjectKind;
use super::*;

const FULL: &str = include_str!("testdata/full.yaml");
const KUBECTL_RUN: &str = include_str!("testdata/kubectl-run.yaml");
const FLOW: &str = include_str!("testdata/flow.yaml");

fn errors(text: &str) -> Vec<SpecError> {
    match plan_from_yaml(text, "pod.yaml") {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.errors,
    }
}

/// Asserts that exactly one error has `path` and its message contains `needle`.
#[track_caller]
fn assert_error(text: &str, path: &str, needle: &str) -> SpecError {
    let errs = errors(text);
    let found: Vec<_> = errs.iter().filter(|e| e.path == path).collect();
    assert!(
        found.len() == 1 && found[0].message.contains(needle),
        "wanted one error at {path} containing {needle:?}, got {errs:#?}"
    );
    found[0].clone()
}

/// A pod whose first container gets `container_extra` (indented lines) and
/// whose spec gets `spec_extra`.
fn pod(container_extra: &str, spec_extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n{container_extra}{spec_extra}"
    )
}

#[test]
fn full_example_plans_everything() {
    let plan = plan_from_yaml(FULL, "full.yaml").unwrap();
    assert_eq!(plan.name, "web");
    assert_eq!(plan.namespace, "dev");
    assert_eq!(plan.labels["app.kubernetes.io/name"], "web");
    assert_eq!(plan.annotations["note"], "kept");
    assert_eq!(plan.hostname, "front");
    assert!(plan.share_process_namespace);
    assert!(!plan.host_network);
    assert_eq!(plan.restart_policy, RestartPolicy::OnFailure);
    assert_eq!(plan.termination_grace, Duration::from_secs(5));
    assert_eq!(
        plan.host_aliases,
        vec![(
            "10.0.0.5".to_string(),
            vec!["db.local".to_string(), "cache.local".to_string()]
        )]
    );
    assert_eq!(
        plan.dns,
        DnsPlan {
            base: DnsBase::Empty,
            nameservers: vec!["1.1.1.1".into()],
            searches: vec!["example.com".into()],
            options: vec![("ndots".into(), Some("2".into())), ("edns0".into(), None)],
        }
    );
    assert_eq!(
        plan.volumes,
        vec![
            VolumePlan {
                name: "cache".into(),
                kind: VolumeKind::EmptyDir {
                    memory: true,
                    size_limit_bytes: Some(64 << 20)
                }
            },
            VolumePlan {
                name: "src".into(),
                kind: VolumeKind::HostPath {
                    path: "/srv/src".into(),
                    type_check: HostPathType::Directory
                }
            },
            VolumePlan {
                name: "scratch".into(),
                kind: VolumeKind::EmptyDir {
                    memory: false,
                    size_limit_bytes: None
                }
            },
        ]
    );
    let [proxy, setup] = &plan.init_containers[..] else {
        panic!("{:?}", plan.init_containers)
    };
    assert!(proxy.sidecar);
    assert_eq!(proxy.pull_policy, PullPolicy::IfNotPresent);
    assert!(!setup.sidecar);
    assert_eq!(setup.pull_policy, PullPolicy::IfNotPresent);
    assert_eq!(
        setup.run_as_user,
        Some(1000),
        "pod securityContext is the default"
    );
    assert_eq!(setup.mounts[0].mount_path, "/cache");

    let [app, sidecar] = &plan.containers[..] else {
        panic!("{:?}", plan.containers)
    };
    assert_eq!(app.image, "busybox");
    assert_eq!(app.pull_policy, PullPolicy::IfNotPresent, "as written");
    assert_eq!(app.command, Some(vec!["httpd".to_string()]));
    assert_eq!(
        app.args,
        Some(vec!["-f".into(), "-p".into(), "$(PORT)".into()]),
        "the plan keeps args unexpanded"
    );
    assert_eq!(app.working_dir.as_deref(), Some("/srv"));
    assert_eq!(
        app.env,
        vec![
            config::EnvVar::value("PORT", "8080"),
            config::EnvVar::value("URL", "http://localhost:$(PORT)/"),
        ]
    );
    assert_eq!((app.run_as_user, app.run_as_group), (Some(33), Some(1000)));
    assert!(app.run_as_non_root);
    assert_eq!(
        app.ports,
        vec![
            PortPlan {
                name: Some("http".into()),
                container_port: 8080,
                host_port: Some(18080),
                host_ip: Some("127.0.0.1".into()),
                protocol: Protocol::Tcp
            },
            PortPlan {
                name: None,
                container_port: 5353,
                host_port: None,
                host_ip: None,
                protocol: Protocol::Udp
            },
        ]
    );
    assert_eq!(
        app.mounts[1],
        MountPlan {
            volume: "src".into(),
            mount_path: "/srv".into(),
            read_only: false,
            sub_path: Some("www".into())
        }
    );
    assert!(app.mounts[0].read_only);
    assert_eq!(sidecar.pull_policy, PullPolicy::Always);
    assert_eq!(sidecar.command, None);

    let objects = manifest_from_yaml(FULL, "full.yaml").unwrap().objects;
    let settings = objects
        .find(ObjectKind::ConfigMap, "default", "settings")
        .unwrap();
    assert_eq!(settings.data["greeting"], b"hello");
    assert_eq!(settings.secret_type, None);
    let creds = objects
        .find(ObjectKind::Secret, "default", "creds")
        .unwrap();
    assert_eq!(creds.data["password"], b"pass");
    assert_eq!(creds.data["user"], b"admin");
    assert_eq!(creds.secret_type.as_deref(), Some("Opaque"));
    assert!(creds.origin.starts_with("full.yaml:"), "{}", creds.origin);
    assert_eq!(plan.warnings.len(), 1);
    assert!(plan.warnings[0].contains("spec.containers[0].resources"));

    // And the runtime's view of the app process, once the image is known.
    let img = ImageDefaults {
        entrypoint: vec!["/bin/sh".into()],
        cmd: vec!["-c".into(), "true".into()],
        env: vec!["PATH=/bin".into()],
        ..Default::default()
    };
    let env = config::resolve_env(
        &app.env,
        &app.env_from,
        &app.name,
        &Default::default(),
        &config_facts(),
    )
    .unwrap();
    let p = resolve_process(app, env, &img).unwrap();
    assert_eq!(p.argv, ["httpd", "-f", "-p", "8080"]);
    assert_eq!(p.env[2], ("URL".into(), "http://localhost:8080/".into()));
    assert_eq!(p.cwd, "/srv");
}

fn config_facts() -> config::PodFacts {
    config::PodFacts {
        name: "p".into(),
        namespace: "default".into(),
        uid: String::new(),
        labels: Default::default(),
        annotations: Default::default(),
        node_name: String::new(),
        service_account: "default".into(),
        host_ip: String::new(),
        pod_ip: String::new(),
        cpu_millis: 1000,
        memory_bytes: 0,
        ephemeral_storage_bytes: 0,
    }
}

#[test]
fn kubectl_generated_pod_is_accepted_with_defaults() {
    let plan = plan_from_yaml(KUBECTL_RUN, "kubectl-run.yaml").unwrap();
    assert_eq!(plan.name, "web");
    assert_eq!(plan.namespace, "default");
    assert_eq!(plan.hostname, "web");
    assert_eq!(plan.restart_policy, RestartPolicy::Always);
    assert_eq!(plan.termination_grace, DEFAULT_TERMINATION_GRACE);
    assert_eq!(plan.dns.base, DnsBase::Cluster);
    assert!(plan.service_links);
    assert_eq!(plan.containers[0].pull_policy, PullPolicy::Always);
    assert!(plan.warnings.is_empty(), "resources: {{}} warns of nothing");
}

#[test]
fn flow_style_is_read() {
    let plan = plan_from_yaml(FLOW, "flow.yaml").unwrap();
    assert_eq!(plan.name, "flow");
    assert_eq!(
        plan.containers[0].command,
        Some(vec!["sleep".into(), "10".into()])
    );
}

#[test]
fn flow_style_errors_have_lines() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: c, image: x}\n  - {name: c, imagePullPolicyy: Always}\n";
    let errs = errors(text);
    let dup = errs
        .iter()
        .find(|e| e.path == "spec.containers[1].name")
        .unwrap();
    assert_eq!(dup.line, Some(7));
    let unknown = errs
        .iter()
        .find(|e| e.path == "spec.containers[1].imagePullPolicyy")
        .unwrap();
    assert_eq!(unknown.line, Some(7));
}

#[test]
fn unknown_field_has_line_and_suggestion() {
    let text = pod("    imagePullPolicyy: Always\n", "");
    let e = assert_error(
        &text,
        "spec.containers[0].imagePullPolicyy",
        "did you mean \"imagePullPolicy\"?",
    );
    assert_eq!(e.line, Some(9));
    let shown = plan_from_yaml(&text, "pod.yaml").unwrap_err().to_string();
    assert_eq!(
        shown,
        "pod.yaml:9: spec.containers[0].imagePullPolicyy: unknown field; did you mean \"imagePullPolicy\"?"
    );
}

#[test]
fn unknown_fields_everywhere_are_all_reported() {
    let text = "apiVersion: v1\nkind: Pod\nmetadta: {}\nmetadata:\n  name: p\n  Labels: {}\nspec:\n  restartpolicy: Never\n  containers:\n  - name: c\n    image: i\n    bananas: 3\n    ports:\n    - containerport: 80\n";
    let errs = errors(text);
    let get = |p: &str| {
        errs.iter()
            .find(|e| e.path == p)
            .unwrap_or_else(|| panic!("{p}: {errs:#?}"))
    };
    assert!(get("metadta").message.contains("\"metadata\""));
    assert_eq!(get("metadta").line, Some(3));
    assert!(get("metadata.Labels").message.contains("\"labels\""));
    assert!(
        get("spec.restartpolicy")
            .message
            .contains("\"restartPolicy\"")
    );
    assert_eq!(get("spec.restartpolicy").line, Some(8));
    let b = get("spec.containers[0].bananas");
    assert!(b.message.contains("not a field"), "{}", b.message);
    assert_eq!(b.line, Some(12));
    // containerPort is then also missing: the type error names the port.
    assert!(
        get("spec.containers[0].ports[0].containerport")
            .message
            .contains("\"containerPort\"")
    );
}

#[test]
fn wrong_type_has_path_line_and_column() {
    let text = pod("    ports:\n    - containerPort: http\n", "");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let e = &errs[0];
    assert_eq!(e.path, "spec.containers[0].ports[0].containerPort");
    assert_eq!(e.line, Some(10));
    assert_eq!(e.column, Some(22));
    assert_eq!(
        e.message, "expected an integer, found the string \"http\"",
        "{}",
        e.message
    );
    let shown = SpecErrors {
        source_name: "pod.yaml".into(),
        errors: errs.clone(),
    }
    .to_string();
    assert!(
        shown.starts_with(
            "pod.yaml:10:22: spec.containers[0].ports[0].containerPort: expected an integer"
        ),
        "{shown}"
    );
}

#[test]
fn missing_required_field_is_named() {
    // k8s-openapi fills a missing required string with "", so the semantic
    // check names the field; the line is its object's.
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - image: busybox\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].path, "spec.containers[0].name");
    assert!(
        errs[0].message.starts_with("Required value"),
        "{}",
        errs[0].message
    );
    assert_eq!(errs[0].line, Some(6));
    // A required non-string field still fails in serde, with its path.
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: c, image: i}\n  hostAliases:\n  - hostnames: [a]\n";
    let errs = errors(text);
    assert!(
        errs.iter()
            .any(|e| e.path.starts_with("spec.hostAliases[0]")),
        "{errs:#?}"
    );
}

#[test]
fn unknown_kind_is_refused_by_name() {
    let text = "apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: d}\n";
    let errs = errors(text);
    let e = errs.iter().find(|e| e.path == "kind").unwrap();
    assert_eq!(e.line, Some(2));
    assert!(
        e.message.contains(
            "kind Deploymnet is not known to minipod; it runs Pods and the workloads Deployment"
        ),
        "{}",
        e.message
    );
}

#[test]
fn api_version_must_be_v1() {
    let text = "apiVersion: v2\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i}]}\n";
    let e = assert_error(text, "apiVersion", "use apiVersion: v1");
    assert_eq!(e.line, Some(1));
    assert_error(
        "kind: Pod\nmetadata: {name: p}\n",
        "apiVersion",
        "Required value",
    );
    assert_error(
        "apiVersion: v1\nmetadata: {name: p}\n",
        "kind",
        "Required value",
    );
}

#[test]
fn multi_document_input() {
    // empty documents and comments are skipped
    let text = format!("---\n# nothing here\n---\n{}\n---\n", pod("", ""));
    assert!(plan_from_yaml(&text, "pod.yaml").is_ok());
    // two pods of one name
    let text = format!("{}---\n{}", pod("", ""), pod("", ""));
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].message.contains("Pod/p is given twice"),
        "{errs:#?}"
    );
    assert_eq!(errs[0].line, Some(10));
    // two pods of two names: both run
    let second = pod("", "").replace("name: p\n", "name: q\n");
    let m = manifest_from_yaml(&format!("{}---\n{second}", pod("", "")), "f").unwrap();
    let names: Vec<&str> = m.pods().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["p", "q"]);
    // nothing to run (checked over all of run's files)
    let m = manifest_from_yaml(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
        "f",
    )
    .unwrap();
    assert!(m.check_runnable().unwrap_err().contains("nothing to run"));
    // lines count from the start of the file across documents
    let text = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\n---\n{}",
        pod("    imagePulPolicy: Never\n", "")
    );
    let e = assert_error(&text, "spec.containers[0].imagePulPolicy", "did you mean");
    assert_eq!(e.line, Some(13));
}

#[test]
fn config_maps_and_secrets_are_checked() {
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\ndata: {{k: v}}\nbinaryData: {{k: aGk=}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: Bad_Name}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\ntypo: 1\ndata: {{k: 5}}\n---\n{}",
        pod("", "")
    );
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.path == "binaryData.k" && e.line == Some(5)),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.message.contains("second ConfigMap named \"a\"") && e.line == Some(9))
    );
    assert!(
        errs.iter()
            .any(|e| e.path == "metadata.name" && e.line == Some(13))
    );
    assert!(errs.iter().any(|e| e.path == "typo" && e.line == Some(18)));
}

#[test]
fn config_map_and_secret_documents_are_checked_as_the_api_server_does() {
    let text = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: a}
data:
  "bad key": v
  ok.key: v
---
apiVersion: v1
kind: Secret
metadata: {name: tls}
type: kubernetes.io/tls
stringData:
  tls.crt: c
---
apiVersion: v1
kind: Secret
metadata: {name: reg}
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: "not json s3cr3t"
---
apiVersion: v1
kind: Secret
metadata: {name: fine}
type: kubernetes.io/basic-auth
stringData: {username: u}
"#;
    let text = format!(
        "{text}---
{}",
        pod("", "")
    );
    let errs = errors(&text);
    let at = |path: &str| errs.iter().find(|e| e.path == path);
    let key = at("data.bad key").expect("the bad key");
    assert_eq!(key.line, Some(5));
    assert!(key.message.contains("valid config key"), "{errs:#?}");
    assert!(at("data.ok.key").is_none());
    let tls = at("data.tls.key").expect("tls.key missing");
    assert_eq!(tls.line, Some(12), "{errs:#?}");
    let reg = at("stringData..dockerconfigjson").expect("bad docker config");
    assert_eq!(reg.line, Some(20));
    assert!(!reg.message.contains("s3cr3t"), "{}", reg.message);
    assert_eq!(errs.len(), 3, "{errs:#?}");
}

#[test]
fn a_configmap_file_holds_only_configmaps_and_secrets() {
    let objects = crate::spec::objects_from_yaml(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n",
        "cm.yaml",
    )
    .unwrap();
    assert_eq!(objects.iter().next().unwrap().origin, "cm.yaml:1");
    let e = crate::spec::objects_from_yaml(
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\n---\n{}",
            pod("", "")
        ),
        "cm.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("cm.yaml:6: kind: kind Pod: a --configmap file holds only"),
        "{e}"
    );
}

#[test]
fn syntax_errors_are_reported_with_position() {
    let errs = errors("apiVersion: v1\nkind: Pod\nspec: [\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].message.starts_with("YAML syntax error"));
    assert!(errs[0].line.is_some());
    let errs = errors("- just\n- a list\n");
    assert!(errs[0].message.contains("must be a Kubernetes object"));
}

#[test]
fn duplicate_keys_are_refused() {
    let text = pod("    image: other\n", "");
    let e = assert_error(&text, "spec.containers[0].image", "duplicate field");
    assert_eq!(e.line, Some(9));
}

#[test]
fn all_errors_are_collected_in_file_order() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\nspec:\n  restartPolicy: Sometimes\n  containers:\n  - name: c\n    image: ''\n    lifecycle: {stopSignal: SIGUSR1}\n";
    let err = plan_from_yaml(text, "p.yaml").unwrap_err();
    let lines: Vec<_> = err
        .errors
        .iter()
        .map(|e| (e.line, e.path.as_str()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (Some(4), "metadata.name"),
            (Some(6), "spec.restartPolicy"),
            (Some(9), "spec.containers[0].image"),
            (Some(10), "spec.containers[0].lifecycle.stopSignal"),
        ]
    );
    let shown = err.to_string();
    assert_eq!(shown.lines().count(), 4);
    assert!(shown.lines().all(|l| l.starts_with("p.yaml:")));
    assert!(shown.contains(
        "p.yaml:10: spec.containers[0].lifecycle.stopSignal: not supported yet by minipod; \
         remove it; the image's STOPSIGNAL (else SIGTERM) stops the container"
    ));
}

#[test]
fn semantic_checks() {
    let c = |extra: &str| pod(extra, "");
    let s = |extra: &str| pod("", extra);
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {}\nspec: {containers: [{name: c, image: i}]}\n".into(),
            "metadata.name",
            "Required value; give the pod a name",
        ),
        (
            format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {}}}\nspec: {{containers: [{{name: c, image: i}}]}}\n", "a".repeat(254)),
            "metadata.name",
            "must be no more than 253 characters",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: Dev}\nspec: {containers: [{name: c, image: i}]}\n".into(),
            "metadata.namespace",
            "Invalid value: \"Dev\": a lowercase RFC 1123 label",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: -x-}}\nspec: {containers: [{name: c, image: i}]}\n".into(),
            "metadata.labels.app",
            "Invalid value: \"-x-\": a valid label must be an empty string",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n".into(),
            "spec.containers",
            "Required value; a Pod needs at least one container",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n".into(),
            "spec",
            "Required value",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: Web, image: i}]}\n".into(),
            "spec.containers[0].name",
            "Invalid value: \"Web\": a lowercase RFC 1123 label",
        ),
        (
            format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {{containers: [{{name: {}, image: i}}]}}\n", "a".repeat(64)),
            "spec.containers[0].name",
            "no more than 63",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  initContainers: [{name: c, image: i}]\n  containers: [{name: c, image: i}]\n".into(),
            "spec.containers[0].name",
            "Duplicate value: \"c\" (also spec.initContainers[0].name)",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n".into(),
            "spec.containers[0].image",
            "Required value",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: ' i'}]}\n".into(),
            "spec.containers[0].image",
            "Invalid value: \" i\": must not have leading or trailing whitespace",
        ),
        (c("    imagePullPolicy: Sometimes\n"), "spec.containers[0].imagePullPolicy", "Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\""),
        (c("    ports: [{containerPort: 0}]\n"), "spec.containers[0].ports[0].containerPort", "Required value; give the port"),
        (c("    ports: [{name: http}]\n"), "spec.containers[0].ports[0].containerPort", "Required value; give the port"),
        (c("    ports: [{containerPort: -1}]\n"), "spec.containers[0].ports[0].containerPort", "Invalid value: -1: must be between 1 and 65535, inclusive"),
        (c("    ports: [{containerPort: 65536}]\n"), "spec.containers[0].ports[0].containerPort", "between 1 and 65535"),
        (c("    ports: [{containerPort: 80, hostPort: 70000}]\n"), "spec.containers[0].ports[0].hostPort", "Invalid value: 70000: must be between 1 and 65535, inclusive"),
        (c("    ports: [{containerPort: 80, protocol: tcp}]\n"), "spec.containers[0].ports[0].protocol", "Unsupported value: \"tcp\": supported values: \"SCTP\", \"TCP\", \"UDP\""),
        (c("    ports: [{containerPort: 80, name: HTTP}]\n"), "spec.containers[0].ports[0].name", "Invalid value: \"HTTP\": must contain only alpha-numeric"),
        (c("    ports: [{containerPort: 80, name: a--b}]\n"), "spec.containers[0].ports[0].name", "consecutive hyphens"),
        (c("    ports: [{containerPort: 80, name: web}, {containerPort: 81, name: web}]\n"), "spec.containers[0].ports[1].name", "Duplicate value: \"web\""),
        (c("    ports: [{containerPort: 80, hostIP: localhost}]\n"), "spec.containers[0].ports[0].hostIP", "Invalid value: \"localhost\": must be a valid IP address"),
        (c("    ports: [{containerPort: 80, hostPort: 8080}, {containerPort: 81, hostPort: 8080}]\n"), "spec.containers[0].ports[1].hostPort", "Duplicate value: \"8080/TCP\" (also spec.containers[0].ports[0].hostPort)"),
        (c("    ports: [{containerPort: 80, hostPort: 8080, protocol: SCTP}]\n"), "spec.containers[0].ports[0].protocol", "SCTP with a hostPort is not supported yet"),
        (
            pod("    ports: [{containerPort: 80, hostPort: 8080}]\n", "  hostNetwork: true\n"),
            "spec.containers[0].ports[0].hostPort",
            "Invalid value: 8080: must match containerPort when hostNetwork is true",
        ),
        // Kubernetes 1.32's relaxed names: printable ASCII but '='.
        (c("    env: [{name: 'A=B', value: x}]\n"), "spec.containers[0].env[0].name", "Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='"),
        (c("    env: [{name: 'é'}]\n"), "spec.containers[0].env[0].name", "environment variable name"),
        (c("    env: [{name: ''}]\n"), "spec.containers[0].env[0].name", "environment variable name must be non-empty"),
        (c("    volumeMounts: [{name: nope, mountPath: /x}]\n"), "spec.containers[0].volumeMounts[0].name", "Not found: \"nope\"; define it in spec.volumes"),
        (
            pod("    volumeMounts: [{name: v, mountPath: data}]\n", "  volumes: [{name: v, emptyDir: {}}]\n"),
            "spec.containers[0].volumeMounts[0].mountPath",
            "Invalid value: \"data\": must be an absolute path",
        ),
        (
            pod("    volumeMounts: [{name: v, mountPath: /d}, {name: v, mountPath: /d}]\n", "  volumes: [{name: v, emptyDir: {}}]\n"),
            "spec.containers[0].volumeMounts[1].mountPath",
            "Invalid value: \"/d\": must be unique",
        ),
        (
            pod("    volumeMounts: [{name: v, mountPath: /d, subPath: ../etc}]\n", "  volumes: [{name: v, emptyDir: {}}]\n"),
            "spec.containers[0].volumeMounts[0].subPath",
            "Invalid value: \"../etc\": must not contain '..'",
        ),
        (c("    securityContext: {runAsUser: -1}\n"), "spec.containers[0].securityContext.runAsUser", "Invalid value: -1: must be between 0 and 2147483647, inclusive"),
        (c("    securityContext: {runAsGroup: -5}\n"), "spec.containers[0].securityContext.runAsGroup", "between 0 and 2147483647"),
        (s("  securityContext: {runAsUser: -1}\n"), "spec.securityContext.runAsUser", "between 0 and 2147483647"),
        (s("  securityContext: {runAsGroup: 4294967296}\n"), "spec.securityContext.runAsGroup", "Invalid value: 4294967296: must be between 0 and 2147483647, inclusive"),
        (c("    resources: {limits: {memory: lots}}\n"), "spec.containers[0].resources.limits.memory", "Invalid value: \"lots\": not a valid quantity"),
        (s("  restartPolicy: always\n"), "spec.restartPolicy", "Unsupported value: \"always\": supported values: \"Always\", \"Never\", \"OnFailure\""),
        (s("  terminationGracePeriodSeconds: -1\n"), "spec.terminationGracePeriodSeconds", "Invalid value: -1: must be greater than or equal to 0"),
        (s("  hostname: My_Host\n"), "spec.hostname", "Invalid value: \"My_Host\": a lowercase RFC 1123 label"),
        (s("  hostAliases: [{ip: not-an-ip, hostnames: [a]}]\n"), "spec.hostAliases[0].ip", "Invalid value: \"not-an-ip\": must be a valid IP address"),
        (s("  hostAliases: [{ip: 1.2.3.4, hostnames: [A_B]}]\n"), "spec.hostAliases[0].hostnames[0]", "Invalid value: \"A_B\": a lowercase RFC 1123 subdomain"),
        (s("  dnsPolicy: Cluster\n"), "spec.dnsPolicy", "Unsupported value: \"Cluster\": supported values: \"ClusterFirst\", \"ClusterFirstWithHostNet\", \"Default\", \"None\""),
        (s("  dnsPolicy: None\n"), "spec.dnsConfig.nameservers", "Required value: must provide at least one DNS nameserver when dnsPolicy is None"),
        (s("  dnsConfig: {nameservers: [1.1.1.1, 2.2.2.2, 3.3.3.3, 4.4.4.4]}\n"), "spec.dnsConfig.nameservers", "Invalid value: [\"1.1.1.1\", \"2.2.2.2\", \"3.3.3.3\", \"4.4.4.4\"]: must not have more than 3 nameservers"),
        (s("  dnsConfig: {nameservers: [dns.google]}\n"), "spec.dnsConfig.nameservers[0]", "Invalid value: \"dns.google\": must be a valid IP address"),
        (s("  dnsConfig: {options: [{value: '1'}]}\n"), "spec.dnsConfig.options[0].name", "Required value"),
        (s("  volumes: [{name: Data, emptyDir: {}}]\n"), "spec.volumes[0].name", "Invalid value: \"Data\": a lowercase RFC 1123 label"),
        (s("  volumes: [{name: v, emptyDir: {}}, {name: v, emptyDir: {}}]\n"), "spec.volumes[1].name", "Duplicate value: \"v\" (also spec.volumes[0].name)"),
        (s("  volumes: [{name: v}]\n"), "spec.volumes[0]", "Required value: must specify a volume type"),
        (s("  volumes: [{name: v, emptyDir: {}, hostPath: {path: /x}}]\n"), "spec.volumes[0].hostPath", "Forbidden: may not specify more than 1 volume type"),
        (s("  volumes: [{name: v, emptyDir: {medium: HugePages}}]\n"), "spec.volumes[0].emptyDir.medium", "Unsupported value: \"HugePages\": supported values: \"\", \"Memory\""),
        (s("  volumes: [{name: v, emptyDir: {sizeLimit: 1XB}}]\n"), "spec.volumes[0].emptyDir.sizeLimit", "Invalid value: \"1XB\": not a valid quantity"),
        (s("  volumes: [{name: v, hostPath: {path: ''}}]\n"), "spec.volumes[0].hostPath.path", "Required value"),
        (s("  volumes: [{name: v, hostPath: {path: /x, type: Dir}}]\n"), "spec.volumes[0].hostPath.type", "Unsupported value: \"Dir\": supported values: \"\", \"BlockDevice\", \"CharDevice\", \"Directory\", \"DirectoryOrCreate\""),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  initContainers: [{name: i, image: i, restartPolicy: Never}]\n  containers: [{name: c, image: i}]\n".into(),
            "spec.initContainers[0].restartPolicy",
            "Unsupported value: \"Never\": supported values: \"Always\"",
        ),
    ];
    for (text, path, needle) in &cases {
        let errs = errors(text);
        let hit = errs
            .iter()
            .find(|e| e.path == *path && e.message.contains(needle));
        let hit =
            hit.unwrap_or_else(|| panic!("wanted {path}: {needle:?} in {errs:#?}\nfor:\n{text}"));
        assert!(hit.line.is_some(), "no line for {path}");
    }
}

#[test]
fn not_supported_yet_fields() {
    let c = |extra: &str| pod(extra, "");
    let s = |extra: &str| pod("", extra);
    let cases: Vec<(String, &str)> = vec![
        (c("    env: [{name: A, valueFrom: {fileKeyRef: {volumeName: v, path: p, key: k}}}]\n"), "spec.containers[0].env[0].valueFrom.fileKeyRef"),
        (c("    securityContext: {windowsOptions: {runAsUserName: x}}\n"), "spec.containers[0].securityContext.windowsOptions"),
        (c("    lifecycle: {stopSignal: SIGUSR1}\n"), "spec.containers[0].lifecycle.stopSignal"),
        (c("    restartPolicy: Always\n"), "spec.containers[0].restartPolicy"),
        (c("    volumeMounts: [{name: v, mountPath: /x, mountPropagation: None}]\n"), "spec.containers[0].volumeMounts[0].mountPropagation"),
        (s("  securityContext: {seLinuxChangePolicy: Recursive}\n"), "spec.securityContext.seLinuxChangePolicy"),
        (s("  automountServiceAccountToken: true\n"), "spec.automountServiceAccountToken"),
        (s("  volumes: [{name: v, projected: {sources: [{clusterTrustBundle: {path: p, name: b}}]}}]\n"), "spec.volumes[0].projected.sources[0].clusterTrustBundle"),
        (s("  ephemeralContainers: [{name: e, image: i}]\n"), "spec.ephemeralContainers"),
        (s("  dnsConfig: {nameservers: [1.1.1.1]}\n  os: {name: linux}\n"), "spec.os"),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  initContainers: [{name: i, image: i, restartPolicy: Always, lifecycle: {stopSignal: SIGUSR1}}]\n  containers: [{name: c, image: i}]\n".into(),
            "spec.initContainers[0].lifecycle.stopSignal",
        ),
    ];
    for (text, path) in &cases {
        let errs = errors(text);
        let hit = errs
            .iter()
            .find(|e| e.path == *path && e.message.starts_with("not supported yet"));
        let hit = hit.unwrap_or_else(|| panic!("wanted not supported yet at {path} in {errs:#?}"));
        assert!(hit.line.is_some(), "no line for {path}");
    }
    // Harmless values are accepted.
    let ok = pod(
        "    stdin: false\n    tty: false\n    terminationMessagePolicy: File\n    resources: {}\n",
        "  automountServiceAccountToken: false\n",
    );
    plan_from_yaml(&ok, "pod.yaml").unwrap();
    let e = assert_error(
        &s("  automountServiceAccountToken: true\n"),
        "spec.automountServiceAccountToken",
        "only false is accepted",
    );
    assert_eq!(e.line, Some(9));
}

#[test]
fn hostname_defaults_to_truncated_pod_name() {
    let name = format!("{}-{}", "a".repeat(62), "b".repeat(10));
    let text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: {{containers: [{{name: c, image: i}}]}}\n"
    );
    let plan = plan_from_yaml(&text, "p").unwrap();
    assert_eq!(plan.hostname, "a".repeat(62));
}

#[test]
fn empty_command_and_args_are_unset() {
    let plan = plan_from_yaml(&pod("    command: []\n    args: []\n", ""), "p").unwrap();
    assert_eq!(plan.containers[0].command, None);
    assert_eq!(plan.containers[0].args, None);
}

#[test]
fn markdown_table_is_exported() {
    let md = supported_fields_markdown();
    assert!(md.contains("| `spec.containers[].image` | supported |"));
    assert!(md.contains("not supported yet"));
    assert_eq!(
        SUPPORTED_FIELDS.len(),
        md.lines().filter(|l| l.starts_with("| `")).count()
    );
}

#[test]
fn fields_without_meaning_on_one_machine_are_accepted_with_one_warning() {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: placed}
spec:
  nodeSelector: {disktype: ssd}
  tolerations: [{key: k, operator: Exists}]
  priorityClassName: high
  serviceAccountName: builder
  enableServiceLinks: false
  readinessGates: [{conditionType: example.com/ready}]
  containers:
  - {name: c, image: busybox}
"#;
    let plan = plan_from_yaml(yaml, "pod.yaml").unwrap();
    assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
    let w = &plan.warnings[0];
    assert!(
        w.starts_with("pod placed: accepted without effect on one machine: "),
        "{w}"
    );
    assert!(
        w.contains(
            "spec.nodeSelector, spec.priorityClassName, spec.tolerations (scheduling: there is one node, this one)"
        ),
        "{w}"
    );
    assert!(
        w.contains("spec.serviceAccountName (there is no API server"),
        "{w}"
    );
    assert!(!w.contains("enableServiceLinks"), "honoured: {w}");
    assert!(!plan.service_links);
    assert!(!w.contains("imagePullSecrets"), "{w}");
    assert!(
        w.contains("spec.readinessGates (no controller sets readiness gates"),
        "{w}"
    );
}

#[test]
fn generate_name_makes_a_name_as_the_api_server_does() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {generateName: web-}\nspec: {containers: [{name: c, image: i}]}\n";
    let m = manifest_with(text, "f", &mut || 0).unwrap();
    let pod = m.pods().next().unwrap();
    assert_eq!(pod.name, "web-bbbbb");
    assert_eq!(pod.owner.name, "web-bbbbb");
    assert!(
        m.notes.iter().any(|n| n.contains("web-bbbbb")),
        "{:?}",
        m.notes
    );
    // A name wins over generateName, as in Kubernetes.
    let text = text.replace("{generateName: web-}", "{name: p, generateName: web-}");
    assert_eq!(plan_from_yaml(&text, "f").unwrap().name, "p");
    // A Job named by generateName names its pods after that name.
    let job = "apiVersion: batch/v1\nkind: Job\nmetadata: {generateName: pi-}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: i}]\n";
    let m = manifest_with(job, "f", &mut || 0).unwrap();
    assert_eq!(m.workloads[0].owner.name, "pi-bbbbb");
    assert_eq!(m.pods().next().unwrap().name, "pi-bbbbb-bbbbb");
}

/// Issue 12, "Clearer refusals": each refusal once, in YAML's and the API
/// server's words.
mod messages {
    use super::*;

    /// The one error at `path`, with every error shown when there is not one.
    #[track_caller]
    fn only_at(text: &str, path: &str) -> String {
        let errs = errors(text);
        let found: Vec<_> = errs.iter().filter(|e| e.path == path).collect();
        assert_eq!(found.len(), 1, "wanted one error at {path}, got {errs:#?}");
        found[0].message.clone()
    }

    #[test]
    fn a_volume_of_an_unsupported_type_is_reported_once_not_also_as_not_found() {
        let text = pod(
            "    volumeMounts: [{name: data, mountPath: /d}]\n",
            "  volumes: [{name: data, nfs: {server: s, path: /x}}]\n",
        );
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(errs[0].path, "spec.volumes[0].nfs");
        assert!(
            errs[0].message.starts_with("not supported yet"),
            "{}",
            errs[0].message
        );

        // A volume refused for its definition is still defined.
        let text = pod(
            "    volumeMounts: [{name: both, mountPath: /b}, {name: none, mountPath: /n}]\n",
            "  volumes: [{name: both, emptyDir: {}, hostPath: {path: /x}}, {name: none}]\n",
        );
        let errs = errors(&text);
        assert!(
            errs.iter().all(|e| !e.path.contains("volumeMounts")),
            "{errs:#?}"
        );
        assert_eq!(errs.len(), 2, "{errs:#?}");

        // A name defined nowhere is still not found, beside a defined one.
        let text = pod(
            "    volumeMounts: [{name: data, mountPath: /d}, {name: nope, mountPath: /n}]\n",
            "  volumes: [{name: data, emptyDir: {}}]\n",
        );
        assert_eq!(
            only_at(&text, "spec.containers[0].volumeMounts[1].name"),
            "Not found: \"nope\"; define it in spec.volumes or fix the name"
        );
        assert!(
            errors(&text)
                .iter()
                .all(|e| e.path != "spec.containers[0].volumeMounts[0].name")
        );
    }

    /// Words of Rust, serde or k8s-openapi that a Kubernetes user should not
    /// have to read.
    const RUST_WORDS: [&str; 14] = [
        "struct ",
        "i32",
        "i64",
        "u16",
        "Option",
        "IntOrString",
        "BTreeMap",
        "Vec",
        "borrowed",
        "sequence",
        "invalid type",
        "Quantity",
        "a map,",
        "boolean",
    ];

    /// `word` in `text` on its own, not inside a longer name (the Kubernetes
    /// type PodDNSConfigOption is not Rust's Option).
    fn contains_word(text: &str, word: &str) -> bool {
        let is_name = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        text.match_indices(word).any(|(i, _)| {
            !is_name(text[..i].chars().next_back())
                && !is_name(text[i + word.len()..].chars().next())
        })
    }

    #[test]
    fn type_errors_say_what_was_expected_and_found_in_yaml_words() {
        let c = |extra: &str| pod(extra, "");
        let s = |extra: &str| pod("", extra);
        let head = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n";
        let cases: Vec<(String, &str, &str)> = vec![
            (
                format!("{head}  containers: abc\n"),
                "spec.containers",
                "expected a list, found the string \"abc\"",
            ),
            (
                format!("{head}  containers: [abc]\n"),
                "spec.containers[0]",
                "expected a mapping (a Container, with fields such as name, image, command), \
                 found the string \"abc\"",
            ),
            (
                format!("{head}  containers: [5]\n"),
                "spec.containers[0]",
                "expected a mapping (a Container, with fields such as name, image, command), \
                 found the number 5",
            ),
            (
                c("    ports: [{containerPort: \"abc\"}]\n"),
                "spec.containers[0].ports[0].containerPort",
                "expected an integer, found the string \"abc\"",
            ),
            (
                c("    ports: [{containerPort: 99999999999}]\n"),
                "spec.containers[0].ports[0].containerPort",
                "expected an integer between -2147483648 and 2147483647, found the number \
                 99999999999",
            ),
            (
                c("    env: {A: b}\n"),
                "spec.containers[0].env",
                "expected a list, found a mapping",
            ),
            (
                s("  nodeSelector: [a, b]\n"),
                "spec.nodeSelector",
                "expected a mapping of keys to values, found a list",
            ),
            (
                s(
                    "  affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: ssd}}\n",
                ),
                "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution",
                "expected a mapping (a NodeSelector, with nodeSelectorTerms), found the string \
                 \"ssd\"",
            ),
            (
                c("    command: sleep 10\n"),
                "spec.containers[0].command",
                "expected a list, found the string \"sleep 10\"",
            ),
            (
                c("    resources: {limits: {memory: {a: b}}}\n"),
                "spec.containers[0].resources.limits.memory",
                "expected a quantity such as 2, 500m or 128Mi, found a mapping",
            ),
            (
                c("    livenessProbe: {httpGet: {port: true}}\n"),
                "spec.containers[0].livenessProbe.httpGet.port",
                "expected a number or a string such as \"8080\" or \"http\", found true",
            ),
            (
                s("  hostNetwork: \"yes\"\n"),
                "spec.hostNetwork",
                "expected true or false, found the string \"yes\"",
            ),
            (
                c("    stdin: 1\n"),
                "spec.containers[0].stdin",
                "expected true or false, found the number 1",
            ),
            (
                c("    env: [{name: A, value: {x: y}}]\n"),
                "spec.containers[0].env[0].value",
                "expected a string, found a mapping",
            ),
            (
                "apiVersion: v1\nkind: Secret\nmetadata: {name: m}\ndata: {a: '!!!'}\n---\n"
                    .to_string()
                    + &pod("", ""),
                "data.a",
                "expected a base64-encoded string, found a string that is not valid base64 \
                 (invalid symbol 33, offset 0)",
            ),
        ];
        for (text, path, want) in &cases {
            let message = only_at(text, path);
            assert!(
                message.starts_with(want),
                "at {path}:\n  got  {message}\n  want {want}"
            );
        }
        // Position and path are those of the value, as before.
        let e = assert_error(
            &c("    command: sleep 10\n"),
            "spec.containers[0].command",
            "expected a list",
        );
        assert_eq!((e.line, e.column), (Some(9), Some(14)));
    }

    #[test]
    fn no_type_error_names_a_rust_type() {
        let c = |extra: &str| pod(extra, "");
        let s = |extra: &str| pod("", extra);
        let head = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n";
        let cases: Vec<String> = vec![
            format!("{head}  containers: {{a: b}}\n"),
            format!("{head}  containers: [~]\n"),
            "apiVersion: v1\nkind: Pod\nmetadata: p\nspec: {containers: [{name: c, image: i}]}\n"
                .into(),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: [a]\n".into(),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: {a: b}}\nspec: {containers: [{name: c, image: i}]}\n".into(),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: [a]}\nspec: {containers: [{name: c, image: i}]}\n".into(),
            c("    ports: [{containerPort: 80.5}]\n"),
            c("    ports: [{containerPort: true}]\n"),
            c("    ports: [{containerPort: 80, hostPort: abc}]\n"),
            c("    ports: [{name: http}]\n"),
            c("    command: [{a: b}]\n"),
            c("    args: 5\n"),
            c("    resources: {limits: [a]}\n"),
            c("    resources: {requests: {cpu: [1]}}\n"),
            c("    livenessProbe: {httpGet: {port: {a: b}}}\n"),
            c("    livenessProbe: {httpGet: {port: [1]}}\n"),
            c("    securityContext: {runAsNonRoot: yes}\n"),
            c("    securityContext: {runAsUser: 1.5}\n"),
            c("    securityContext: abc\n"),
            c("    volumeMounts: [{name: v, mountPath: /x, readOnly: 1}]\n"),
            s("  nodeSelector: {a: [b]}\n"),
            s("  affinity: abc\n"),
            s("  terminationGracePeriodSeconds: abc\n"),
            s("  tolerations: {a: b}\n"),
            s("  hostAliases: [{ip: 1.2.3.4, hostnames: a}]\n"),
            s("  volumes: [{name: v, emptyDir: x}]\n"),
            s("  volumes: [{name: v, emptyDir: {sizeLimit: true}}]\n"),
            s("  volumes: [{name: v, hostPath: [a]}]\n"),
            s("  dnsConfig: {options: [a]}\n"),
            s("  securityContext: {sysctls: {a: b}}\n"),
            s("  shareProcessNamespace: 0\n"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\ndata: [a]\n".into(),
            "apiVersion: v1\nkind: Secret\nmetadata: {name: m}\ndata: {a: [b]}\n".into(),
            "apiVersion: v1\nkind: Secret\nmetadata: {name: m}\ndata: {a: 5}\n".into(),
        ];
        for text in &cases {
            let shown = plan_from_yaml(text, "pod.yaml")
                .expect_err(text)
                .to_string();
            for word in RUST_WORDS {
                assert!(
                    !contains_word(&shown, word),
                    "{word:?} in:\n{shown}\nfor:\n{text}"
                );
            }
        }
    }

    #[test]
    fn semantic_errors_quote_the_value_as_the_api_server_does() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec: {containers: [{name: c, image: i}]}\n";
        assert_eq!(
            only_at(text, "metadata.name"),
            "Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower \
             case alphanumeric characters, '-' or '.', and must start and end with an \
             alphanumeric character (e.g. 'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        let shown = plan_from_yaml(text, "pod.yaml").unwrap_err().to_string();
        assert!(
            shown.starts_with("pod.yaml:3: metadata.name: Invalid value: \"Bad_Name\": "),
            "{shown}"
        );
        // ConfigMaps and Secrets are named the same way.
        let text = format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: My.Secret}}\n---\n{}",
            pod("", "")
        );
        assert!(only_at(&text, "metadata.name").starts_with(
            "Invalid value: \"My.Secret\": a lowercase RFC 1123 subdomain must consist"
        ));
        let text = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{}}\n---\n{}",
            pod("", "")
        );
        assert_eq!(
            only_at(&text, "metadata.name"),
            "Required value; give the ConfigMap a name"
        );

        let c = |extra: &str| pod(extra, "");
        let s = |extra: &str| pod("", extra);
        let cases: Vec<(String, &str, &str)> = vec![
            (
                s("  volumes: [{name: my.data, emptyDir: {}}]\n"),
                "spec.volumes[0].name",
                "Invalid value: \"my.data\": must not contain dots",
            ),
            (
                c("    ports: [{containerPort: 80, name: http-}]\n"),
                "spec.containers[0].ports[0].name",
                "Invalid value: \"http-\": must not begin or end with a hyphen",
            ),
            (
                c("    ports: [{containerPort: 70000}]\n"),
                "spec.containers[0].ports[0].containerPort",
                "Invalid value: 70000: must be between 1 and 65535, inclusive",
            ),
            (
                c("    imagePullPolicy: always\n"),
                "spec.containers[0].imagePullPolicy",
                "Unsupported value: \"always\": supported values: \"Always\", \"IfNotPresent\", \
                 \"Never\"",
            ),
            (
                s("  restartPolicy: Sometimes\n"),
                "spec.restartPolicy",
                "Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\", \
                 \"OnFailure\"",
            ),
            (
                s("  volumes: [{name: v, hostPath: {path: /x, type: dir}}]\n"),
                "spec.volumes[0].hostPath.type",
                "Unsupported value: \"dir\": supported values: \"\", \"BlockDevice\", \
                 \"CharDevice\", \"Directory\", \"DirectoryOrCreate\", \"File\", \
                 \"FileOrCreate\", \"Socket\"",
            ),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: c, image: i}\n  - {name: c, image: i}\n".into(),
                "spec.containers[1].name",
                "Duplicate value: \"c\" (also spec.containers[0].name); container names must be \
                 unique",
            ),
            (
                c("    ports: [{containerPort: 80, hostPort: 80, hostIP: 127.0.0.1}, {containerPort: 81, hostPort: 80, hostIP: 127.0.0.1}]\n"),
                "spec.containers[0].ports[1].hostPort",
                "Duplicate value: \"127.0.0.1:80/TCP\"",
            ),
            (
                c("    resources: {requests: {cpu: 1.5.0}}\n"),
                "spec.containers[0].resources.requests.cpu",
                "Invalid value: \"1.5.0\": not a valid quantity (more than one decimal point); \
                 write e.g. 128Mi",
            ),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n".into(),
                "spec.containers[0].image",
                "Required value; name the image to run, e.g. busybox:1.36",
            ),
            (
                s("  hostAliases: [{hostnames: [db]}]\n"),
                "spec.hostAliases[0].ip",
                "Required value; give the IP address",
            ),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {example.com/a/b: x}}\nspec: {containers: [{name: c, image: i}]}\n".into(),
                "metadata.labels.example.com/a/b",
                "Invalid value: \"example.com/a/b\": a valid label key must consist of",
            ),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {Example.com/a: x}}\nspec: {containers: [{name: c, image: i}]}\n".into(),
                "metadata.annotations.Example.com/a",
                "Invalid value: \"Example.com/a\": prefix part a lowercase RFC 1123 subdomain",
            ),
        ];
        for (text, path, want) in &cases {
            let message = only_at(text, path);
            assert!(
                message.starts_with(want),
                "at {path}:\n  got  {message}\n  want {want}"
            );
        }
    }
}

#[test]
fn metadata_written_by_the_system_is_accepted() {
    // As `kubectl get pod -o yaml` prints it, fed back in.
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata:
  name: copied
  creationTimestamp: "2024-05-01T10:00:00Z"
  uid: 0d7f3a36-8a55-4c1e-9b5e-2f4c1d2e3f40
  generation: 1
  resourceVersion: "4711"
  deletionGracePeriodSeconds: 30
  managedFields:
  - manager: kubectl-run
    operation: Update
    apiVersion: v1
    time: "2024-05-01T10:00:00Z"
    fieldsType: FieldsV1
    fieldsV1: {f:spec: {}}
  ownerReferences:
  - {apiVersion: apps/v1, kind: ReplicaSet, name: web-5d8f, uid: 1a2b, controller: true}
  finalizers: [example.com/cleanup]
spec:
  containers:
  - {name: c, image: busybox}
"#;
    let plan = plan_from_yaml(yaml, "pod.yaml").unwrap();
    assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
    let w = &plan.warnings[0];
    for clause in [
        "metadata.resourceVersion (there is no API server to compare versions with)",
        "metadata.ownerReferences (no garbage collector runs here: the pod is removed by `minipod down`/`rm`)",
        "metadata.finalizers (no controller runs here to finish them: `rm` removes the pod at once)",
    ] {
        assert!(w.contains(clause), "{clause} in {w}");
    }
    for quiet in [
        "creationTimestamp",
        "uid",
        "generation",
        "managedFields",
        "deletionGrace",
    ] {
        assert!(!w.contains(quiet), "{quiet} in {w}");
    }
}

#[test]
fn values_that_ask_for_what_minipod_does_are_accepted() {
    let sc = "    stdin: false\n    tty: false\n    securityContext:\n      privileged: false\n      readOnlyRootFilesystem: false\n      allowPrivilegeEscalation: true\n      capabilities: {}\n      seLinuxOptions: {}\n      procMount: Default\n";
    let spec = "  hostPID: false\n  hostIPC: false\n  securityContext: {seLinuxOptions: {}}\n";
    let plan = plan_from_yaml(&pod(sc, spec), "pod.yaml").unwrap();
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    // Empty lists of capabilities ask for nothing either, in init containers too.
    let empty = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  initContainers: [{name: i, image: i, securityContext: {capabilities: {add: [], drop: []}}}]\n  containers: [{name: c, image: i, securityContext: {capabilities: {add: [], drop: []}}}]\n";
    plan_from_yaml(empty, "pod.yaml").unwrap();
}

#[test]
fn values_that_ask_for_more_are_refused_naming_the_path() {
    let cases: Vec<(String, &str, &str)> = vec![(
        pod("", "  automountServiceAccountToken: true\n"),
        "spec.automountServiceAccountToken",
        "only false",
    )];
    for (text, path, only) in &cases {
        let e = assert_error(text, path, "not supported yet by minipod with this value; ");
        assert!(e.message.contains(&format!("{only} is accepted")), "{e:?}");
        assert!(e.line.is_some(), "no line for {path}");
    }
}

#[test]
fn a_refusal_says_what_to_do_now() {
    let c = |extra: &str| pod(extra, "");
    let s = |extra: &str| pod("", extra);
    let cases: Vec<(String, &str, &str)> = vec![
        (
            s("  volumes: [{name: v, projected: {sources: [{serviceAccountToken: {path: t}}]}}]\n"),
            "spec.volumes[0].projected.sources[0].serviceAccountToken",
            "not supported yet by minipod; there is no API server to issue a service-account \
             token; put the token you need in a Secret (`minipod secret create NAME --from-file \
             token=FILE`) and project that",
        ),
        (
            c("    securityContext: {windowsOptions: {runAsUserName: x}}\n"),
            "spec.containers[0].securityContext.windowsOptions",
            "not supported yet by minipod; remove it; minipod's containers run in a user namespace without the host's privileges",
        ),
        (
            s("  securityContext: {seLinuxChangePolicy: Recursive}\n"),
            "spec.securityContext.seLinuxChangePolicy",
            "without the host's privileges",
        ),
        (
            c("    lifecycle: {stopSignal: SIGUSR1}\n"),
            "spec.containers[0].lifecycle.stopSignal",
            "not supported yet by minipod; remove it; the image's STOPSIGNAL",
        ),
        (
            s("  os: {name: linux}\n"),
            "spec.os",
            "not supported yet by minipod; remove the field to run this pod",
        ),
    ];
    for (text, path, message) in &cases {
        let e = assert_error(text, path, message);
        assert!(e.message.starts_with("not supported yet"), "{e:?}");
    }
    // Init containers get the advice of app containers.
    let init = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  initContainers: [{name: i, image: i, restartPolicy: Always, lifecycle: {stopSignal: SIGUSR1}}]\n  containers: [{name: c, image: i}]\n";
    assert_error(
        init,
        "spec.initContainers[0].lifecycle.stopSignal",
        "the image's STOPSIGNAL",
    );
    // A plain init container may have no hooks at all (the API server's rule).
    let plain = init
        .replace("restartPolicy: Always, ", "")
        .replace("postStart", "preStop");
    assert_error(
        &plain,
        "spec.initContainers[0].lifecycle",
        "Forbidden: may not be set for init containers",
    );
    // The shape a script classifies on: FILE:LINE: PATH: not supported yet...
    let shown = plan_from_yaml(&pod("", "  automountServiceAccountToken: true\n"), "p.yaml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        shown,
        "p.yaml:9: spec.automountServiceAccountToken: not supported yet by minipod with this value; only false is accepted"
    );
}

#[test]
fn confinement_annotations_are_never_silently_ignored() {
    let with = |annotations: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n{annotations}spec:\n  containers:\n  - {{name: web, image: i}}\n"
        )
    };
    // What minipod does anyway passes silently.
    let quiet = with(
        "    container.apparmor.security.beta.kubernetes.io/web: unconfined\n    seccomp.security.alpha.kubernetes.io/pod: unconfined\n",
    );
    let plan = plan_from_yaml(&quiet, "pod.yaml").unwrap();
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    assert_eq!(plan.annotations.len(), 2, "kept as written");
    // Confinement is warned of, naming the annotation.
    let confined =
        with("    container.apparmor.security.beta.kubernetes.io/web: runtime/default\n");
    let plan = plan_from_yaml(&confined, "pod.yaml").unwrap();
    assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
    assert!(
        plan.warnings[0].starts_with(
            "pod p: the annotation container.apparmor.security.beta.kubernetes.io/web=runtime/default asks for confinement"
        ),
        "{}",
        plan.warnings[0]
    );
    // What the API server refuses is refused, at the annotation's line.
    let ghost = with("    container.apparmor.security.beta.kubernetes.io/db: runtime/default\n");
    let e = assert_error(
        &ghost,
        "metadata.annotations.container.apparmor.security.beta.kubernetes.io/db",
        "container \"db\" not found in the pod",
    );
    assert_eq!(e.line, Some(6));
    assert_error(
        &with("    seccomp.security.alpha.kubernetes.io/pod: strict\n"),
        "metadata.annotations.seccomp.security.alpha.kubernetes.io/pod",
        "invalid seccomp profile \"strict\"",
    );
}

#[test]
fn a_templates_warning_is_said_once_not_once_per_replica() {
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 3\n  selector: {matchLabels: {a: w}}\n  template:\n    metadata: {labels: {a: w}}\n    spec: {containers: [{name: c, image: i, resources: {requests: {cpu: 100m}}}]}\n";
    let mut n = 0;
    let m = manifest_with(text, "f", &mut || {
        n += 1;
        n
    })
    .unwrap();
    let warnings: Vec<&String> = m.workloads[0]
        .pods
        .iter()
        .flat_map(|p| &p.warnings)
        .filter(|w| w.contains("resources"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    // At its path in the document.
    assert!(
        warnings[0].starts_with("spec.template.spec.containers[0].resources: "),
        "{warnings:?}"
    );
}

#[test]
fn pods_start_in_waves_with_a_stateful_sets_one_after_another() {
    let text = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  replicas: 3\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: i}]}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {a: w}}\n  template:\n    metadata: {labels: {a: w}}\n    spec: {containers: [{name: c, image: i}]}\n";
    let mut n = 0;
    let mut counter = || {
        n += 1;
        n
    };
    let m = manifest_with(text, "f", &mut counter).unwrap();
    let waves: Vec<Vec<&str>> = m
        .start_waves()
        .iter()
        .map(|w| w.iter().map(|(p, _)| p.name.as_str()).collect())
        .collect();
    assert_eq!(waves.len(), 3, "{waves:?}");
    assert_eq!(waves[0].len(), 3, "{waves:?}");
    assert_eq!(waves[0][0], "db-0");
    assert_eq!(waves[1], ["db-1"]);
    assert_eq!(waves[2], ["db-2"]);
    // Parallel: all at once.
    let parallel = text.replace(
        "replicas: 3\n",
        "replicas: 3\n  podManagementPolicy: Parallel\n",
    );
    let m = manifest_with(&parallel, "f", &mut counter).unwrap();
    assert_eq!(m.start_waves().len(), 1);
}

mod probes_spec {
    use super::*;

    /// The first container's probes of a pod whose first container gets
    /// `container_extra`.
    fn probes(container_extra: &str) -> Probes {
        let plan = plan_from_yaml(&pod(container_extra, ""), "pod.yaml").unwrap();
        plan.containers[0].probes.clone()
    }

    /// Asserts that some error has `path` and exactly `message`, with a line.
    #[track_caller]
    fn assert_message(text: &str, path: &str, message: &str) {
        let errs = errors(text);
        let hit = errs.iter().find(|e| e.path == path && e.message == message);
        let hit = hit.unwrap_or_else(|| panic!("wanted {path}: {message:?} in {errs:#?}"));
        assert!(hit.line.is_some(), "no line for {path}");
    }

    fn tcp(port: u16) -> ProbeHandler {
        ProbeHandler::Tcp {
            host: None,
            port: ProbePort::Number(port),
        }
    }

    #[test]
    fn absent_and_zero_fields_get_the_api_servers_defaults() {
        let want = ProbePlan {
            handler: tcp(8080),
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
            termination_grace: None,
        };
        let p = probes("    livenessProbe: {tcpSocket: {port: 8080}}\n");
        assert_eq!(p.liveness, Some(want.clone()));
        assert_eq!((p.readiness, p.startup), (None, None));
        let zeros = probes(
            "    readinessProbe:\n      tcpSocket: {port: 8080}\n      initialDelaySeconds: 0\n      \
             periodSeconds: 0\n      timeoutSeconds: 0\n      successThreshold: 0\n      \
             failureThreshold: 0\n",
        );
        assert_eq!(zeros.readiness, Some(want));
        // No probe at all: none planned.
        assert_eq!(probes(""), Probes::default());
    }

    #[test]
    fn every_field_is_read() {
        let p = probes(
            "    ports: [{name: http, containerPort: 8080}, {name: admin, containerPort: 9090, protocol: UDP}]\n    \
             livenessProbe:\n      httpGet:\n        path: healthz?full=1\n        port: http\n        \
             host: 127.0.0.1\n        scheme: HTTP\n        httpHeaders: [{name: X-Probe, value: a b}, {name: Accept, value: '*/*'}]\n      \
             initialDelaySeconds: 3\n      periodSeconds: 4\n      timeoutSeconds: 5\n      \
             successThreshold: 1\n      failureThreshold: 6\n      terminationGracePeriodSeconds: 7\n    \
             readinessProbe:\n      exec: {command: [cat, /tmp/ready]}\n      successThreshold: 2\n    \
             startupProbe:\n      tcpSocket: {port: admin, host: localhost}\n      failureThreshold: 30\n",
        );
        assert_eq!(
            p.liveness,
            Some(ProbePlan {
                handler: ProbeHandler::Http {
                    host: Some("127.0.0.1".into()),
                    https: false,
                    port: ProbePort::Number(8080),
                    path: "/healthz?full=1".into(),
                    headers: vec![
                        ("X-Probe".into(), "a b".into()),
                        ("Accept".into(), "*/*".into())
                    ],
                },
                initial_delay: Duration::from_secs(3),
                period: Duration::from_secs(4),
                timeout: Duration::from_secs(5),
                success_threshold: 1,
                failure_threshold: 6,
                termination_grace: Some(Duration::from_secs(7)),
            })
        );
        let readiness = p.readiness.unwrap();
        assert_eq!(
            readiness.handler,
            ProbeHandler::Exec {
                command: vec!["cat".into(), "/tmp/ready".into()]
            }
        );
        assert_eq!(readiness.success_threshold, 2, "readiness may ask for more");
        let startup = p.startup.unwrap();
        assert_eq!(
            startup.handler,
            ProbeHandler::Tcp {
                host: Some("localhost".into()),
                port: ProbePort::Number(9090),
            },
            "a name is looked up whatever the port's protocol"
        );
        assert_eq!(startup.failure_threshold, 30);
    }

    #[test]
    fn http_path_defaults_to_the_root() {
        let path = |extra: &str| match probes(extra).liveness.unwrap().handler {
            ProbeHandler::Http { path, .. } => path,
            h => panic!("{h:?}"),
        };
        assert_eq!(path("    livenessProbe: {httpGet: {port: 80}}\n"), "/");
        assert_eq!(
            path("    livenessProbe: {httpGet: {port: 80, path: ''}}\n"),
            "/"
        );
        assert_eq!(
            path("    livenessProbe: {httpGet: {port: 80, path: /a/b?c=d&e}}\n"),
            "/a/b?c=d&e"
        );
    }

    #[test]
    fn a_port_name_no_port_has_is_accepted_and_left_unknown() {
        let p = probes(
            "    ports: [{name: http, containerPort: 80}]\n    \
             readinessProbe: {tcpSocket: {port: metrics}}\n",
        );
        assert_eq!(
            p.readiness.unwrap().handler,
            ProbeHandler::Tcp {
                host: None,
                port: ProbePort::Unknown("metrics".into()),
            }
        );
        // Another container's port name does not count.
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  \
                    - {name: a, image: i, ports: [{name: web, containerPort: 80}]}\n  \
                    - {name: b, image: i, livenessProbe: {httpGet: {port: web}}}\n";
        let plan = plan_from_yaml(text, "pod.yaml").unwrap();
        assert!(matches!(
            plan.containers[1].probes.liveness.as_ref().unwrap().handler,
            ProbeHandler::Http { port: ProbePort::Unknown(ref n), .. } if n == "web"
        ));
    }

    #[test]
    fn each_check_of_the_api_server_with_its_path_and_message() {
        let c = |extra: &str| pod(extra, "");
        let l = "spec.containers[0].livenessProbe";
        let r = "spec.containers[0].readinessProbe";
        let s = "spec.containers[0].startupProbe";
        let cases: Vec<(String, String, &str)> = vec![
            (
                c("    livenessProbe: {tcpSocket: {port: 80}, initialDelaySeconds: -1}\n"),
                format!("{l}.initialDelaySeconds"),
                "Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                c("    livenessProbe: {tcpSocket: {port: 80}, timeoutSeconds: -2}\n"),
                format!("{l}.timeoutSeconds"),
                "Invalid value: -2: must be greater than or equal to 0",
            ),
            (
                c("    readinessProbe: {tcpSocket: {port: 80}, periodSeconds: -3}\n"),
                format!("{r}.periodSeconds"),
                "Invalid value: -3: must be greater than or equal to 0",
            ),
            (
                c("    readinessProbe: {tcpSocket: {port: 80}, successThreshold: -4}\n"),
                format!("{r}.successThreshold"),
                "Invalid value: -4: must be greater than or equal to 0",
            ),
            (
                c("    startupProbe: {tcpSocket: {port: 80}, failureThreshold: -5}\n"),
                format!("{s}.failureThreshold"),
                "Invalid value: -5: must be greater than or equal to 0",
            ),
            (
                c("    livenessProbe: {tcpSocket: {port: 80}, successThreshold: 2}\n"),
                format!("{l}.successThreshold"),
                "Invalid value: 2: must be 1",
            ),
            (
                c("    startupProbe: {tcpSocket: {port: 80}, successThreshold: 3}\n"),
                format!("{s}.successThreshold"),
                "Invalid value: 3: must be 1",
            ),
            (
                c("    livenessProbe: {tcpSocket: {port: 80}, terminationGracePeriodSeconds: 0}\n"),
                format!("{l}.terminationGracePeriodSeconds"),
                "Invalid value: 0: must be greater than 0",
            ),
            (
                c("    startupProbe: {tcpSocket: {port: 80}, terminationGracePeriodSeconds: -1}\n"),
                format!("{s}.terminationGracePeriodSeconds"),
                "Invalid value: -1: must be greater than 0",
            ),
            (
                c(
                    "    readinessProbe: {tcpSocket: {port: 80}, terminationGracePeriodSeconds: 5}\n",
                ),
                format!("{r}.terminationGracePeriodSeconds"),
                "Invalid value: 5: must not be set for readinessProbes",
            ),
            (
                c("    livenessProbe: {exec: {command: [x]}, tcpSocket: {port: 80}}\n"),
                format!("{l}.tcpSocket"),
                "Forbidden: may not specify more than 1 handler type",
            ),
            (
                c("    livenessProbe: {httpGet: {port: 80}, tcpSocket: {port: 80}}\n"),
                format!("{l}.tcpSocket"),
                "Forbidden: may not specify more than 1 handler type",
            ),
            (
                c("    readinessProbe: {periodSeconds: 5}\n"),
                r.to_string(),
                "Required value: must specify a handler type",
            ),
            (
                c("    livenessProbe: {exec: {}}\n"),
                format!("{l}.exec.command"),
                "Required value; give the command to run in the container, e.g. [cat, /tmp/healthy]",
            ),
            (
                c("    livenessProbe: {exec: {command: []}}\n"),
                format!("{l}.exec.command"),
                "Required value; give the command to run in the container, e.g. [cat, /tmp/healthy]",
            ),
            (
                c("    livenessProbe: {tcpSocket: {host: localhost}}\n"),
                format!("{l}.tcpSocket.port"),
                "Required value; give the port to probe: a number, or the name of one of the \
                 container's ports",
            ),
            (
                c("    livenessProbe: {httpGet: {path: /}}\n"),
                format!("{l}.httpGet.port"),
                "Required value; give the port to probe: a number, or the name of one of the \
                 container's ports",
            ),
            (
                c("    livenessProbe: {tcpSocket: {port: 0}}\n"),
                format!("{l}.tcpSocket.port"),
                "Invalid value: 0: must be between 1 and 65535, inclusive",
            ),
            (
                c("    readinessProbe: {httpGet: {port: 70000}}\n"),
                format!("{r}.httpGet.port"),
                "Invalid value: 70000: must be between 1 and 65535, inclusive",
            ),
            (
                c("    readinessProbe: {httpGet: {port: Web_Port}}\n"),
                format!("{r}.httpGet.port"),
                "Invalid value: \"Web_Port\": must contain only alpha-numeric characters (a-z, \
                 0-9), and hyphens (-)",
            ),
            (
                c("    readinessProbe: {tcpSocket: {port: \"8080\"}}\n"),
                format!("{r}.tcpSocket.port"),
                "Invalid value: \"8080\": must contain at least one letter (a-z)",
            ),
            (
                c("    readinessProbe: {tcpSocket: {port: a-very-long-port-name}}\n"),
                format!("{r}.tcpSocket.port"),
                "Invalid value: \"a-very-long-port-name\": must be no more than 15 characters",
            ),
            (
                c(
                    "    livenessProbe: {httpGet: {port: 80, httpHeaders: [{name: X-Ok, value: a}, {name: 'X Bad', value: b}]}}\n",
                ),
                format!("{l}.httpGet.httpHeaders"),
                "Invalid value: \"X Bad\": a valid HTTP header must consist of alphanumeric \
                 characters or '-' (e.g. 'X-Header-Name', regex used for validation is \
                 '[-A-Za-z0-9]+')",
            ),
            (
                c("    livenessProbe: {httpGet: {port: 80, scheme: ftp}}\n"),
                format!("{l}.httpGet.scheme"),
                "Unsupported value: \"ftp\": supported values: \"HTTP\", \"HTTPS\"",
            ),
        ];
        for (text, path, message) in &cases {
            assert_message(text, path, message);
        }
        // Only the listed error: nothing else is said of these probes.
        for (text, path, _) in &cases[..cases.len() - 1] {
            let errs = errors(text);
            assert_eq!(errs.len(), 1, "{path}: {errs:#?}");
        }
    }

    #[test]
    fn a_negative_success_threshold_of_a_liveness_probe_is_said_twice() {
        let text = pod(
            "    livenessProbe: {tcpSocket: {port: 80}, successThreshold: -1}\n",
            "",
        );
        let errs = errors(&text);
        let messages: Vec<&str> = errs.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "Invalid value: -1: must be greater than or equal to 0",
                "Invalid value: -1: must be 1"
            ]
        );
    }

    #[test]
    fn errors_in_a_template_have_the_documents_paths_and_lines() {
        let deploy = |probe: &str| {
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  \
                 selector: {{matchLabels: {{a: b}}}}\n  template:\n    metadata: {{labels: {{a: b}}}}\n    \
                 spec:\n      containers:\n      - name: c\n        image: i\n        {probe}\n"
            )
        };
        let at = "spec.template.spec.containers[0].livenessProbe";
        let e = assert_error(
            &deploy("livenessProbe: {tcpSocket: {port: 80}, periodSeconds: -1}"),
            &format!("{at}.periodSeconds"),
            "Invalid value: -1: must be greater than or equal to 0",
        );
        assert_eq!(e.line, Some(12));
        assert_error(
            &deploy("livenessProbe: {tcpSocket: {}}"),
            &format!("{at}.tcpSocket.port"),
            "Required value",
        );
        assert_error(
            &deploy("livenessProbe: {tcpSocket: {port: 0}}"),
            &format!("{at}.tcpSocket.port"),
            "Invalid value: 0: must be between 1 and 65535, inclusive",
        );
        let m = manifest_from_yaml(&deploy("livenessProbe: {httpGet: {port: 8080}}"), "d.yaml")
            .unwrap();
        assert!(
            m.pods().next().unwrap().containers[0]
                .probes
                .liveness
                .is_some()
        );
    }

    #[test]
    fn a_plain_init_container_may_have_no_probe() {
        let text = |init: &str| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  initContainers:\n  \
                 - name: i\n    image: i\n{init}  containers: [{{name: c, image: i}}]\n"
            )
        };
        let forbidden =
            "Forbidden: may not be set for init containers without restartPolicy=Always";
        for field in ["livenessProbe", "readinessProbe", "startupProbe"] {
            let e = assert_error(
                &text(&format!("    {field}: {{tcpSocket: {{port: 80}}}}\n")),
                &format!("spec.initContainers[0].{field}"),
                forbidden,
            );
            assert_eq!(e.message, forbidden);
            assert_eq!(e.line, Some(8));
        }
        // Only that is said: the probe itself is not checked further.
        let errs = errors(&text(
            "    livenessProbe: {periodSeconds: -1}\n    readinessProbe: {exec: {}}\n",
        ));
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.initContainers[0].livenessProbe",
                "spec.initContainers[0].readinessProbe"
            ]
        );
        // A restartPolicy other than Always does not make a sidecar.
        let errs = errors(&text(
            "    restartPolicy: Never\n    startupProbe: {tcpSocket: {port: 80}}\n",
        ));
        assert!(
            errs.iter()
                .any(|e| e.path == "spec.initContainers[0].startupProbe" && e.message == forbidden),
            "{errs:#?}"
        );
    }

    #[test]
    fn a_sidecar_may_have_all_three_probes() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  initContainers:\n  \
                    - name: proxy\n    image: i\n    restartPolicy: Always\n    \
                    ports: [{name: admin, containerPort: 15000}]\n    \
                    startupProbe: {tcpSocket: {port: admin}, failureThreshold: 30}\n    \
                    livenessProbe: {httpGet: {port: admin, path: /live}}\n    \
                    readinessProbe: {exec: {command: [ready]}, successThreshold: 2}\n  \
                    containers: [{name: c, image: i}]\n";
        let plan = plan_from_yaml(text, "pod.yaml").unwrap();
        let sidecar = &plan.init_containers[0];
        assert!(sidecar.sidecar);
        let p = &sidecar.probes;
        assert_eq!(p.startup.as_ref().unwrap().handler, tcp(15000));
        assert_eq!(p.startup.as_ref().unwrap().failure_threshold, 30);
        assert!(matches!(
            p.liveness.as_ref().unwrap().handler,
            ProbeHandler::Http { port: ProbePort::Number(15000), ref path, .. } if path == "/live"
        ));
        assert_eq!(p.readiness.as_ref().unwrap().success_threshold, 2);
        // A sidecar's probes are checked as an app container's.
        let bad = text.replace("failureThreshold: 30", "successThreshold: 2");
        assert_error(
            &bad,
            "spec.initContainers[0].startupProbe.successThreshold",
            "Invalid value: 2: must be 1",
        );
    }

    #[test]
    fn https_and_grpc_probes_are_read() {
        let c = |extra: &str| pod(extra, "");
        let p = probes("    readinessProbe: {httpGet: {port: 443, scheme: HTTPS}}\n");
        assert!(matches!(
            p.readiness.unwrap().handler,
            ProbeHandler::Http { https: true, .. }
        ));
        let p = probes("    readinessProbe: {httpGet: {port: 80, scheme: HTTP}}\n");
        assert!(matches!(
            p.readiness.unwrap().handler,
            ProbeHandler::Http { https: false, .. }
        ));
        // A scheme Kubernetes does not know is refused as it refuses it.
        let errs = errors(&c(
            "    livenessProbe: {httpGet: {port: 80, scheme: ftp}}\n",
        ));
        assert_eq!(errs.len(), 1, "{errs:#?}");

        for field in ["livenessProbe", "readinessProbe", "startupProbe"] {
            let p = probes(&format!(
                "    {field}: {{grpc: {{port: 9000, service: ready}}}}\n"
            ));
            let plan = [p.liveness, p.readiness, p.startup]
                .into_iter()
                .flatten()
                .next()
                .unwrap();
            assert_eq!(
                plan.handler,
                ProbeHandler::Grpc {
                    port: 9000,
                    service: "ready".into()
                }
            );
        }
        let p = probes("    livenessProbe: {grpc: {port: 9000}}\n");
        assert_eq!(
            p.liveness.unwrap().handler,
            ProbeHandler::Grpc {
                port: 9000,
                service: String::new()
            },
            "no service: the server as a whole"
        );
        // A grpc handler counts as one: a second handler is forbidden.
        let errs = errors(&c(
            "    livenessProbe: {exec: {command: [x]}, grpc: {port: 9000}}\n",
        ));
        let at = "spec.containers[0].livenessProbe.grpc";
        assert!(
            errs.iter().any(|e| e.path == at
                && e.message == "Forbidden: may not specify more than 1 handler type"),
            "{errs:#?}"
        );
        // Its port is checked as the API server checks it.
        assert_message(
            &c("    livenessProbe: {grpc: {port: 0}}\n"),
            "spec.containers[0].livenessProbe.grpc.port",
            "Invalid value: 0: must be between 1 and 65535, inclusive",
        );
    }
}

#[test]
fn security_contexts_become_the_runtimes_plan() {
    use super::security::{ALL_CAPABILITIES, default_capabilities};
    let plan_of = |extra: &str| plan_from_yaml(&pod(extra, ""), "pod.yaml").unwrap();
    let p = plan_of("");
    assert_eq!(
        p.containers[0].security.capabilities,
        default_capabilities()
    );
    assert!(!p.containers[0].security.no_new_privs);
    let p = plan_of(
        "    securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}\n",
    );
    let s = p.containers[0].security.clone();
    assert!(s.no_new_privs && s.read_only_root && !s.privileged);
    assert_eq!(s.capabilities, 0);
    let p = plan_of("    securityContext: {privileged: true, capabilities: {drop: [ALL]}}\n");
    assert!(p.containers[0].security.privileged);
    assert_eq!(p.containers[0].security.capabilities, ALL_CAPABILITIES);
    // CAP_SYS_ADMIN always allows escalation, so the API server refuses both.
    assert_error(
        &pod(
            "    securityContext: {allowPrivilegeEscalation: false, capabilities: {add: [CAP_SYS_ADMIN]}}\n",
            "",
        ),
        "spec.containers[0].securityContext",
        "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
    );
    assert_error(
        &pod(
            "    securityContext: {capabilities: {drop: [CAP_NOPE]}}\n",
            "",
        ),
        "spec.containers[0].securityContext.capabilities.drop[0]",
        "Unsupported value: \"CAP_NOPE\"",
    );
}

#[test]
fn seccomp_profiles_are_checked_and_inherited_from_the_pod() {
    use super::security::Seccomp;
    let plan = plan_from_yaml(
        &pod(
            "",
            "  securityContext: {seccompProfile: {type: Localhost, localhostProfile: my/strict.json}}\n  initContainers:\n  - name: i\n    image: busybox\n    securityContext: {seccompProfile: {type: Unconfined}}\n",
        ),
        "pod.yaml",
    )
    .unwrap();
    assert_eq!(
        plan.containers[0].security.seccomp,
        Seccomp::Localhost("my/strict.json".into())
    );
    assert_eq!(
        plan.init_containers[0].security.seccomp,
        Seccomp::Unconfined
    );
    let plan = plan_from_yaml(
        &pod("    securityContext: {privileged: true}\n", ""),
        "pod.yaml",
    )
    .unwrap();
    assert_eq!(plan.containers[0].security.seccomp, Seccomp::Unconfined);
    let plan = plan_from_yaml(&pod("", ""), "pod.yaml").unwrap();
    assert_eq!(plan.containers[0].security.seccomp, Seccomp::RuntimeDefault);
    assert_error(
        &pod(
            "    securityContext: {seccompProfile: {type: Localhost}}\n",
            "",
        ),
        "spec.containers[0].securityContext.seccompProfile.localhostProfile",
        "Required value",
    );
    assert_error(
        &pod(
            "    securityContext: {seccompProfile: {type: Localhost, localhostProfile: ../x}}\n",
            "",
        ),
        "spec.containers[0].securityContext.seccompProfile.localhostProfile",
        "must not contain '..'",
    );
    assert_error(
        &pod(
            "    securityContext: {seccompProfile: {type: Strict}}\n",
            "",
        ),
        "spec.containers[0].securityContext.seccompProfile.type",
        "Unsupported value: \"Strict\"",
    );
}

mod rename {
    use super::*;

    fn named(name: &str) -> ReadOptions<'_> {
        ReadOptions {
            rename: Some(name),
            free_host_ports: false,
        }
    }

    #[test]
    fn free_host_ports_let_a_template_of_several_pods_declare_one() {
        let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: x}}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n        ports: [{containerPort: 80, hostPort: 18080}]\n";
        let err = manifest_from_yaml(yaml, "d.yaml").unwrap_err().to_string();
        assert!(
            err.contains("2 pods would publish it") && err.contains("run -P"),
            "{err}"
        );
        let options = ReadOptions {
            rename: None,
            free_host_ports: true,
        };
        let m = manifest_for_run(yaml, "d.yaml", options).unwrap();
        assert_eq!(m.pods().count(), 2);
    }

    const STATEFUL: &str = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  replicas: 2\n  serviceName: db\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n        volumeMounts: [{name: data, mountPath: /data}]\n  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n";

    #[test]
    fn run_name_renames_a_pod_and_a_workload_with_its_pods_and_claims() {
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {generateName: web-}\nspec:\n  containers:\n  - {name: c, image: busybox}\n";
        let m = manifest_for_run(pod, "p.yaml", named("a")).unwrap();
        assert_eq!(m.workloads[0].owner.to_string(), "Pod/a");
        assert_eq!(m.workloads[0].pods[0].name, "a");
        assert!(m.notes.is_empty(), "{:?}", m.notes);

        let m = manifest_for_run(STATEFUL, "s.yaml", named("t1")).unwrap();
        assert_eq!(m.workloads[0].owner.to_string(), "StatefulSet/t1");
        let names: Vec<&str> = m.pods().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["t1-0", "t1-1"]);
        let claims: Vec<&str> = m.claims.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(claims, ["data-t1-0", "data-t1-1"]);
    }

    #[test]
    fn pod_and_workload_documents_are_counted_by_kind() {
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n";
        assert_eq!(pod_and_workload_documents(STATEFUL), 1);
        assert_eq!(
            pod_and_workload_documents(&format!("{cm}---\n{STATEFUL}")),
            1
        );
        assert_eq!(
            pod_and_workload_documents(&format!("{STATEFUL}---\n{STATEFUL}")),
            2
        );
        assert_eq!(pod_and_workload_documents(cm), 0);
    }
}

#[test]
fn stdin_stdin_once_and_tty_are_planned_as_given() {
    let plan = plan_from_yaml(
        &pod("    stdin: true\n    stdinOnce: true\n    tty: true\n", ""),
        "p.yaml",
    )
    .unwrap();
    let c = &plan.containers[0];
    assert!(c.stdin && c.stdin_once && c.tty);
    // tty without stdin is allowed, as the API server allows it.
    let plan = plan_from_yaml(&pod("    tty: true\n", ""), "p.yaml").unwrap();
    let c = &plan.containers[0];
    assert!(!c.stdin && !c.stdin_once && c.tty);
    let plan = plan_from_yaml(&pod("", ""), "p.yaml").unwrap();
    assert!(!plan.containers[0].stdin && !plan.containers[0].tty);
}

/// `run --label`: the labels reach the plan, the downward API's facts and
/// the manifest `inspect` prints, over a template's of the same key.
#[test]
fn added_labels_reach_the_plan_and_its_manifest() {
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: x, tier: a}}\n    spec:\n      containers:\n      - {name: c, image: busybox:1.36}\n";
    let mut m = manifest_from_yaml(yaml, "d.yaml").unwrap();
    let added: std::collections::BTreeMap<String, String> = [
        ("tier".to_string(), "b".to_string()),
        ("t/pid".into(), "7".into()),
    ]
    .into();
    let pod = &mut m.workloads[0].pods[0];
    pod.add_labels(&added);
    assert_eq!(pod.labels["app"], "x");
    assert_eq!(pod.labels["tier"], "b");
    assert_eq!(pod.labels["t/pid"], "7");
    assert!(pod.labels.contains_key("pod-template-hash"));
    let shown: serde_json::Value = serde_json::from_str(&pod.manifest).unwrap();
    assert_eq!(shown["metadata"]["labels"]["tier"], "b");
    assert_eq!(shown["metadata"]["labels"]["t/pid"], "7");
    assert_eq!(shown["metadata"]["name"], pod.name.as_str());
}

#[test]
fn service_documents_become_plans_with_lines_warnings_and_refusals() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  sessionAffinity: None\n  externalTrafficPolicy: Local\n  ports:\n  - {name: http, port: 80, targetPort: http}\n  - {name: dns, port: 53, protocol: UDP}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: web}}\nspec:\n  containers:\n  - {name: c, image: busybox}\n";
    let m = manifest_from_yaml(text, "app.yaml").unwrap();
    assert_eq!(m.services.len(), 1);
    let s = &m.services[0];
    assert_eq!(
        (s.name.as_str(), s.namespace.as_str(), s.line),
        ("web", "default", 1)
    );
    assert_eq!(s.ports[1].protocol, "UDP");
    // Defaults say nothing; a field without meaning here is named once.
    let w = m.warnings.join("\n");
    assert!(
        w.contains(
            "Service web: accepted without effect on one machine: spec.externalTrafficPolicy"
        ),
        "{w}"
    );
    assert!(
        !w.contains("sessionAffinity") && !w.contains("not acted on"),
        "{w}"
    );

    let bad = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  type: LoadBalancer\n  ports:\n  - port: 80\n    targetPort: 0x\n    bogus: 1\n    nodePort: 80\n";
    let e = manifest_from_yaml(bad, "bad.yaml").unwrap_err().to_string();
    assert!(
        e.contains("bad.yaml:10: spec.ports[0].nodePort: Invalid value: 80"),
        "{e}"
    );
    assert!(e.contains("bad.yaml:9: spec.ports[0].bogus"), "{e}");
    // A file of Services alone is runnable: it registers them.
    let only = "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec:\n  clusterIP: None\n";
    assert!(
        manifest_from_yaml(only, "s.yaml")
            .unwrap()
            .check_runnable()
            .is_ok()
    );
}
