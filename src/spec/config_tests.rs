use super::*;
use crate::spec::{PodPlan, manifest_from_yaml};

fn pod(spec_yaml: &str) -> Result<PodPlan, String> {
    let text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: {{app: web, tier: a}}\n  annotations: {{note: \"x\\ny\", q: \"a\\\"b\"}}\nspec:\n{spec_yaml}"
    );
    manifest_from_yaml(&text, "p.yaml")
        .map(|m| m.pods().next().unwrap().clone())
        .map_err(|e| e.to_string())
}

fn facts() -> PodFacts {
    PodFacts {
        name: "p".into(),
        namespace: "default".into(),
        uid: "u-1".into(),
        labels: BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            ("tier".to_string(), "a".to_string()),
        ]),
        annotations: BTreeMap::from([
            ("note".to_string(), "x\ny".to_string()),
            ("q".to_string(), "a\"b".to_string()),
        ]),
        node_name: "host".into(),
        service_account: "default".into(),
        host_ip: "10.0.2.2".into(),
        pod_ip: "POD".into(),
        cpu_millis: 4000,
        memory_bytes: 8 << 30,
        ephemeral_storage_bytes: 100 << 30,
    }
}

fn object(kind: ObjectKind, name: &str, data: &[(&str, &[u8])]) -> ConfigObject {
    ConfigObject {
        kind,
        name: name.into(),
        namespace: None,
        data: data
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect(),
        binary_keys: data
            .iter()
            .filter(|(k, _)| k.starts_with("bin"))
            .map(|(k, _)| k.to_string())
            .collect(),
        secret_type: (kind == ObjectKind::Secret).then(|| "Opaque".into()),
        immutable: false,
        origin: "the store".into(),
    }
}

fn objects() -> ConfigObjects {
    let mut all = ConfigObjects::default();
    all.add(object(
        ObjectKind::ConfigMap,
        "cm",
        &[("A", b"1"), ("B", b"$(A)"), ("bin", &[0xff, 0])],
    ));
    all.add(object(
        ObjectKind::Secret,
        "s",
        &[("pw", b"hunter2"), ("A", b"from-secret")],
    ));
    all
}

#[test]
fn env_follows_kubelets_order_and_expansion() {
    let p = pod("  containers:\n  - name: c\n    image: busybox\n    resources: {limits: {cpu: 1500m, memory: 1Gi}}\n    envFrom:\n    - configMapRef: {name: cm}\n    - secretRef: {name: s}\n      prefix: S_\n    - configMapRef: {name: gone, optional: true}\n    env:\n    - {name: X, value: \"$(A)-$(S_pw)-$(Y)\"}\n    - {name: A, value: override-$(A)}\n    - name: REF\n      valueFrom: {configMapKeyRef: {name: cm, key: B}}\n    - name: OPT\n      valueFrom: {secretKeyRef: {name: s, key: nope, optional: true}}\n    - name: NAME\n      valueFrom: {fieldRef: {fieldPath: metadata.name}}\n    - name: LABEL\n      valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}\n    - name: IP\n      valueFrom: {fieldRef: {fieldPath: status.podIP}}\n    - name: CPU\n      valueFrom: {resourceFieldRef: {resource: limits.cpu}}\n    - name: MCPU\n      valueFrom: {resourceFieldRef: {resource: requests.cpu, divisor: 1m}}\n    - name: MEM\n      valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}\n    - name: STORAGE\n      valueFrom: {resourceFieldRef: {resource: limits.ephemeral-storage, divisor: 1Gi}}\n    - name: LAST\n      value: $(CPU)/$(REF)\n").unwrap();
    let c = &p.containers[0];
    let env = resolve_env(&c.env, &c.env_from, "c", &objects(), &facts()).unwrap();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    // envFrom first; the binaryData key is not seen.
    assert_eq!(env[0].0, "A");
    assert_eq!(get("bin"), None);
    assert_eq!(get("S_pw"), Some("hunter2"));
    assert_eq!(get("X"), Some("1-hunter2-$(Y)"));
    assert_eq!(get("A"), Some("override-1"));
    // Values from valueFrom are not expanded.
    assert_eq!(get("REF"), Some("$(A)"));
    assert_eq!(get("OPT"), None);
    assert_eq!(get("NAME"), Some("p"));
    assert_eq!(get("LABEL"), Some("web"));
    assert_eq!(get("IP"), Some("POD"));
    assert_eq!(get("CPU"), Some("2"), "1500m rounds up");
    assert_eq!(
        get("MCPU"),
        Some("1500"),
        "the request defaults to the limit"
    );
    assert_eq!(get("MEM"), Some("1024"));
    assert_eq!(get("STORAGE"), Some("100"), "an unset limit is the node's");
    assert_eq!(get("LAST"), Some("2/$(A)"));
}

#[test]
fn missing_objects_and_keys_are_named_with_how_to_provide_them() {
    let p = pod("  containers:\n  - name: c\n    image: busybox\n    envFrom: [{secretRef: {name: nosuch}}]\n    env:\n    - name: K\n      valueFrom: {configMapKeyRef: {name: cm, key: nokey}}\n    - name: B\n      valueFrom: {configMapKeyRef: {name: cm, key: bin}}\n    volumeMounts: [{name: v, mountPath: /v}]\n  volumes:\n  - name: v\n    configMap:\n      name: cm\n      items: [{key: missing, path: m}]\n  - name: w\n    secret: {secretName: absent, optional: true}\n").unwrap();
    let errors = p.missing_objects(&objects());
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(errors[0].contains("container \"c\" envFrom nosuch: Secret nosuch is not found"));
    assert!(errors[0].contains("minipod secret create nosuch"));
    assert!(errors[0].contains("--configmap FILE"));
    assert!(
        errors[1].contains("ConfigMap cm (the store) has no key \"nokey\""),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].contains("no key \"bin\""),
        "binaryData is not for env"
    );
    assert!(errors[3].starts_with("volume \"v\""), "{}", errors[3]);
    // One error per problem, naming everyone it hits.
    let q = pod("  containers:\n  - name: c\n    image: busybox\n    env:\n    - name: A\n      valueFrom: {secretKeyRef: {name: gone, key: a}}\n    - name: B\n      valueFrom: {secretKeyRef: {name: gone, key: b}}\n").unwrap();
    let errors = q.missing_objects(&objects());
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0]
            .starts_with("container \"c\" env A, container \"c\" env B: Secret gone is not found"),
        "{}",
        errors[0]
    );
    let refs = p.referenced_objects();
    assert_eq!(
        refs,
        [
            (ObjectKind::Secret, "nosuch"),
            (ObjectKind::ConfigMap, "cm"),
            (ObjectKind::Secret, "absent")
        ]
    );
}

#[test]
fn volumes_project_items_modes_and_the_downward_api() {
    let p = pod("  containers:\n  - name: c\n    image: busybox\n    resources: {requests: {memory: 64Mi}}\n  volumes:\n  - name: all\n    configMap: {name: cm, defaultMode: 0400}\n  - name: some\n    secret:\n      secretName: s\n      items: [{key: pw, path: dir/pw, mode: 0600}, {key: gone, path: g}]\n      optional: true\n  - name: down\n    downwardAPI:\n      items:\n      - {path: labels, fieldRef: {fieldPath: metadata.labels}}\n      - {path: notes, fieldRef: {fieldPath: metadata.annotations}}\n      - {path: uid, fieldRef: {fieldPath: metadata.uid}}\n      - {path: mem, resourceFieldRef: {containerName: c, resource: requests.memory, divisor: 1Mi}}\n  - name: proj\n    projected:\n      defaultMode: 0444\n      sources:\n      - configMap: {name: cm, items: [{key: A, path: a}]}\n      - secret: {name: s, items: [{key: pw, path: p, mode: 0400}]}\n      - downwardAPI: {items: [{path: n, fieldRef: {fieldPath: metadata.name}}]}\n").unwrap();
    let (objects, facts) = (objects(), facts());
    let files = |name: &str| {
        let (_, v) = p.config_volumes().find(|(n, _)| *n == name).unwrap();
        volume_files(name, v, &objects, &facts).unwrap()
    };
    let all = files("all");
    assert_eq!(
        all.iter()
            .map(|f| (f.path.as_str(), f.mode))
            .collect::<Vec<_>>(),
        [("A", 0o400), ("B", 0o400), ("bin", 0o400)]
    );
    assert_eq!(all[2].data, [0xff, 0], "binary data byte-exact");
    let some = files("some");
    assert_eq!(some.len(), 1, "an optional missing key is skipped");
    assert_eq!((some[0].path.as_str(), some[0].mode), ("dir/pw", 0o600));
    let down = files("down");
    let text = |f: &VolumeFile| String::from_utf8(f.data.clone()).unwrap();
    assert_eq!(text(&down[0]), "app=\"web\"\ntier=\"a\"");
    assert_eq!(text(&down[2]), "note=\"x\\ny\"\nq=\"a\\\"b\"");
    assert_eq!(text(&down[3]), "u-1");
    assert_eq!(text(&down[1]), "64");
    let proj = files("proj");
    assert_eq!(
        proj.iter()
            .map(|f| (f.path.as_str(), f.mode))
            .collect::<Vec<_>>(),
        [("a", 0o444), ("n", 0o444), ("p", 0o400)]
    );
}

#[test]
fn the_atomic_layout_links_each_top_level_name_through_data() {
    let f = |path: &str| VolumeFile {
        path: path.into(),
        mode: 0o644,
        data: vec![],
    };
    let files = [f("a"), f("d/b"), f("d/e/c")];
    let steps = atomic_layout(&files, "..T");
    let shown: Vec<String> = steps
        .iter()
        .map(|s| match s {
            LayoutStep::Dir(d) => format!("dir {d}"),
            LayoutStep::File(p, _) => format!("file {p}"),
            LayoutStep::Symlink(l, t) => format!("{l} -> {t}"),
        })
        .collect();
    assert_eq!(
        shown,
        [
            "dir ..T",
            "file ..T/a",
            "dir ..T/d",
            "file ..T/d/b",
            "dir ..T/d/e",
            "file ..T/d/e/c",
            "..data -> ..T",
            "a -> ..data/a",
            "d -> ..data/d",
        ]
    );
    assert_eq!(
        stamp_dir("2026-12-03T07:34:12Z", 42),
        "..2026_12_03_07_34_12.42"
    );
    assert_eq!(sub_path_problem("v", &files, "d/b"), None);
    assert!(
        sub_path_problem("v", &files, "x")
            .unwrap()
            .contains("holds a, d")
    );
}

#[test]
fn go_quote_escapes_as_go_does() {
    assert_eq!(go_quote("plain é"), "\"plain é\"");
    assert_eq!(
        go_quote("a\"b\\c\n\t\u{1}\u{7f}"),
        "\"a\\\"b\\\\c\\n\\t\\x01\\x7f\""
    );
    assert_eq!(go_quote("\u{a0}\u{2028}"), "\"\\u00a0\\u2028\"");
    assert_eq!(go_quote("a\u{ad}\u{200b}"), "\"a\\u00ad\\u200b\"");
}

#[test]
fn validation_speaks_as_the_api_server() {
    let cases: &[(&str, &str)] = &[
        (
            "  volumes:\n  - name: v\n    configMap: {name: cm, defaultMode: 01000}\n",
            "spec.volumes[0].configMap.defaultMode: Invalid value: 512: must be a number between 0 and 0777 (octal), both inclusive",
        ),
        (
            "  volumes:\n  - name: v\n    configMap: {name: cm, items: [{key: k, path: ../x}]}\n",
            "spec.volumes[0].configMap.items[0].path: Invalid value: \"../x\": must not contain '..'",
        ),
        (
            "  volumes:\n  - name: v\n    secret: {items: [{key: k, path: /x}]}\n",
            "spec.volumes[0].secret.secretName: Required value",
        ),
        (
            "  volumes:\n  - name: v\n    secret: {secretName: s, items: [{key: k, path: /x}]}\n",
            "spec.volumes[0].secret.items[0].path: Invalid value: \"/x\": must be a relative path",
        ),
        (
            "  volumes:\n  - name: v\n    downwardAPI: {items: [{path: ip, fieldRef: {fieldPath: status.podIP}}]}\n",
            "spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath: Unsupported value: \"status.podIP\": supported values: \"metadata.annotations\", \"metadata.labels\", \"metadata.name\", \"metadata.namespace\", \"metadata.uid\"",
        ),
        (
            "  volumes:\n  - name: v\n    downwardAPI: {items: [{path: m, resourceFieldRef: {resource: limits.memory}}]}\n",
            "spec.volumes[0].downwardAPI.items[0].resourceFieldRef.containerName: Required value",
        ),
        (
            "  volumes:\n  - name: v\n    projected: {sources: [{serviceAccountToken: {path: t}}]}\n",
            "there is no API server to issue a service-account token",
        ),
        (
            "  volumes:\n  - name: v\n    projected: {sources: [{configMap: {name: a, items: [{key: k, path: x}]}}, {secret: {name: b, items: [{key: k, path: x}]}}]}\n",
            "spec.volumes[0].projected: Invalid value: \"b\": conflicting duplicate paths",
        ),
        (
            "  containers:\n  - name: c\n    image: busybox\n    env:\n    - name: A\n      value: x\n      valueFrom: {fieldRef: {fieldPath: metadata.name}}\n",
            "spec.containers[0].env[0].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty",
        ),
        (
            "  containers:\n  - name: c\n    image: busybox\n    env:\n    - name: A\n      valueFrom: {fieldRef: {fieldPath: metadata.labels}}\n",
            "Unsupported value: \"metadata.labels\": supported values: \"metadata.name\"",
        ),
        (
            "  containers:\n  - name: c\n    image: busybox\n    env:\n    - name: A\n      valueFrom: {fieldRef: {fieldPath: spec.nope}}\n",
            "Invalid value: \"spec.nope\": error converting fieldPath: field label not supported: spec.nope",
        ),
        (
            "  containers:\n  - name: c\n    image: busybox\n    env:\n    - name: A\n      valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 2}}\n",
            "spec.containers[0].env[0].valueFrom.resourceFieldRef.divisor: Invalid value: \"2\": only divisor's values 1m and 1 are supported with the cpu resource",
        ),
        (
            "  containers:\n  - name: c\n    image: busybox\n    env:\n    - name: A\n      valueFrom: {resourceFieldRef: {resource: limits.gpu}}\n",
            "Unsupported value: \"limits.gpu\"",
        ),
        (
            "  containers:\n  - name: c\n    image: busybox\n    env:\n    - name: A\n      valueFrom: {secretKeyRef: {name: s, key: \"a b\"}}\n",
            "spec.containers[0].env[0].valueFrom.secretKeyRef.key: Invalid value: \"a b\"",
        ),
        (
            "  containers:\n  - name: c\n    image: busybox\n    envFrom: [{prefix: \"A=\", configMapRef: {name: cm}}]\n",
            "spec.containers[0].envFrom[0].prefix: Invalid value: \"A=\": a valid environment variable name must consist only of printable ASCII characters other than '='",
        ),
        (
            "  containers:\n  - name: c\n    image: busybox\n    envFrom: [{configMapRef: {name: cm}, secretRef: {name: s}}]\n",
            "spec.containers[0].envFrom: Invalid value: \"\": may not have more than one field specified at a time",
        ),
    ];
    let container = "  containers:\n  - name: c\n    image: busybox\n";
    for (spec, want) in cases {
        let spec = if spec.contains("containers:") {
            spec.to_string()
        } else {
            format!("{container}{spec}")
        };
        let err = pod(&spec).unwrap_err();
        assert!(err.contains(want), "want {want}\n got {err}");
    }
    // Relaxed names: any printable name or prefix but '='.
    assert!(pod("  containers:\n  - name: c\n    image: busybox\n    env: [{name: \"1 a:b\", value: x}]\n").is_ok());
    let ok = pod(
        "  containers:\n  - name: c\n    image: busybox\n    envFrom: [{prefix: \"1 weird-\", configMapRef: {name: cm}}]\n",
    );
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn a_zero_limit_is_the_nodes_and_a_missing_request_zero() {
    let r = |resource, value| ResourceRef {
        resource,
        value,
        divisor: 1000,
    };
    let f = facts();
    assert_eq!(resource_value(&r(Resource::LimitsCpu, Some(0)), &f), "4");
    assert_eq!(resource_value(&r(Resource::LimitsCpu, None), &f), "4");
    assert_eq!(resource_value(&r(Resource::RequestsCpu, None), &f), "0");
    assert_eq!(resource_value(&r(Resource::RequestsCpu, Some(1)), &f), "1");
}

#[test]
fn service_variables_come_first_are_overridden_and_can_be_named() {
    let p = pod("  containers:\n  - name: c\n    image: busybox\n    envFrom:\n    - configMapRef: {name: cm}\n    env:\n    - {name: URL, value: \"http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)\"}\n    - {name: WEB_SERVICE_PORT, value: \"8080\"}\n").unwrap();
    let c = &p.containers[0];
    let service_env = [
        ("WEB_SERVICE_HOST".to_string(), "10.89.0.10".to_string()),
        ("WEB_SERVICE_PORT".to_string(), "80".to_string()),
        ("A".to_string(), "from-service".to_string()),
    ];
    let env =
        resolve_env_with(&service_env, &c.env, &c.env_from, "c", &objects(), &facts()).unwrap();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(env[0].0, "WEB_SERVICE_HOST");
    assert_eq!(get("URL"), Some("http://10.89.0.10:80"));
    assert_eq!(get("WEB_SERVICE_PORT"), Some("8080"), "env overrides");
    assert_eq!(get("A"), Some("1"), "envFrom overrides");
}
