//! Reading the YAML: documents, a locator (path ↦ line), typed parsing with
//! unknown-field detection (kubectl's strict field validation) and wrong-type
//! errors that carry path, line and column.
//!
//! serde_yaml_ng gives no positions for keys, so the text is also read by
//! saphyr-parser's event parser (which carries marks) into a small tree of
//! positions. Both parsers read the same text, one document at a time, in order.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScanError, Span};
use serde::de::DeserializeOwned;

use super::SpecError;

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Renders a path the way kubectl and serde_yaml_ng do: `spec.containers[0].name`.
pub fn render(path: &[Seg]) -> String {
    join(path, |i| format!("[{i}]"))
}

/// Joins keys with `.` and writes each index as `index` renders it.
fn join(path: &[Seg], index: impl Fn(usize) -> String) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&index(*i)),
        }
    }
    out
}

/// A node of the position tree: where it starts (1-based line and column) and
/// what it holds.
#[derive(Debug, Clone)]
pub struct Node {
    pub line: usize,
    pub col: usize,
    pub value: NodeValue,
}

#[derive(Debug, Clone)]
pub enum NodeValue {
    Scalar(String),
    Seq(Vec<Node>),
    /// (key text, key line, key column, value)
    Map(Vec<(String, usize, usize, Node)>),
    Alias,
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            NodeValue::Map(entries) => entries.iter().find(|e| e.0 == key).map(|e| &e.3),
            _ => None,
        }
    }

    pub fn scalar(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.value, NodeValue::Scalar(s) if s.is_empty() || s == "~" || s == "null" || s == "Null" || s == "NULL")
    }

    /// Every path in the tree ↦ (line, column): a map entry's key position, a
    /// sequence item's start.
    pub fn positions(&self) -> Positions {
        let mut map = HashMap::new();
        fn walk(n: &Node, path: &mut Vec<Seg>, map: &mut HashMap<String, (usize, usize)>) {
            match &n.value {
                NodeValue::Map(entries) => {
                    for (k, line, col, v) in entries {
                        path.push(Seg::Key(k.clone()));
                        map.entry(render(path)).or_insert((*line, *col));
                        walk(v, path, map);
                        path.pop();
                    }
                }
                NodeValue::Seq(items) => {
                    for (i, v) in items.iter().enumerate() {
                        path.push(Seg::Index(i));
                        map.entry(render(path)).or_insert((v.line, v.col));
                        walk(v, path, map);
                        path.pop();
                    }
                }
                _ => {}
            }
        }
        map.insert(String::new(), (self.line, self.col));
        walk(self, &mut Vec::new(), &mut map);
        Positions(map)
    }
}

/// Keys that appear twice in one mapping (kubectl's strict validation refuses
/// them): (path, line) of each repetition.
pub fn duplicate_keys(root: &Node) -> Vec<(String, usize)> {
    fn walk(n: &Node, path: &mut Vec<Seg>, out: &mut Vec<(String, usize)>) {
        match &n.value {
            NodeValue::Map(entries) => {
                let mut seen = std::collections::HashSet::new();
                for (k, line, _, v) in entries {
                    path.push(Seg::Key(k.clone()));
                    if !seen.insert(k.as_str()) {
                        out.push((render(path), *line));
                    }
                    walk(v, path, out);
                    path.pop();
                }
            }
            NodeValue::Seq(items) => {
                for (i, v) in items.iter().enumerate() {
                    path.push(Seg::Index(i));
                    walk(v, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(root, &mut Vec::new(), &mut out);
    out
}

/// Path ↦ position for one document.
#[derive(Debug, Clone, Default)]
pub struct Positions(HashMap<String, (usize, usize)>);

impl Positions {
    /// The line of `path`, or of its nearest ancestor present in the text.
    pub fn line(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some((line, _)) = self.0.get(p) {
                return Some(*line);
            }
            if p.is_empty() {
                return None;
            }
            p = &p[..p.rfind(['.', '[']).unwrap_or(0)];
        }
    }

    /// Whether `path` itself is written in the text (not only an ancestor).
    pub fn has(&self, path: &str) -> bool {
        self.0.contains_key(path)
    }
}

fn scan_error(e: &ScanError) -> SpecError {
    SpecError {
        line: Some(e.marker().line()),
        column: Some(e.marker().col() + 1),
        path: String::new(),
        message: format!("YAML syntax error: {}", e.info()),
    }
}

struct TreeBuilder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
}

impl<'a> TreeBuilder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), SpecError> {
        match self.parser.next_event() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => Err(scan_error(&e)),
            None => Ok((Event::StreamEnd, Span::default())),
        }
    }

    fn node(&mut self, ev: Event<'a>, span: Span) -> Result<Node, SpecError> {
        let (line, col) = (span.start.line(), span.start.col() + 1);
        let value = match ev {
            Event::Scalar(s, ..) => NodeValue::Scalar(s.into_owned()),
            Event::Alias(_) => NodeValue::Alias,
            Event::SequenceStart(..) => {
                let mut items = Vec::new();
                loop {
                    let (ev, sp) = self.next()?;
                    if matches!(ev, Event::SequenceEnd | Event::StreamEnd) {
                        break;
                    }
                    items.push(self.node(ev, sp)?);
                }
                NodeValue::Seq(items)
            }
            Event::MappingStart(..) => {
                let mut entries = Vec::new();
                loop {
                    let (ev, sp) = self.next()?;
                    if matches!(ev, Event::MappingEnd | Event::StreamEnd) {
                        break;
                    }
                    let key = self.node(ev, sp)?;
                    let key_text = match &key.value {
                        NodeValue::Scalar(s) => s.clone(),
                        _ => String::from("?"),
                    };
                    let (ev, sp) = self.next()?;
                    let value = self.node(ev, sp)?;
                    entries.push((key_text, key.line, key.col, value));
                }
                NodeValue::Map(entries)
            }
            _ => NodeValue::Scalar(String::new()),
        };
        Ok(Node { line, col, value })
    }
}

/// The position trees of every document of `text`, in order.
pub fn document_trees(text: &str) -> Result<Vec<Node>, SpecError> {
    let mut b = TreeBuilder {
        parser: Parser::new_from_str(text),
    };
    let mut docs = Vec::new();
    loop {
        let (ev, span) = b.next()?;
        match ev {
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                let (ev, span) = b.next()?;
                let root = if matches!(ev, Event::DocumentEnd) {
                    Node {
                        line: span.start.line(),
                        col: 1,
                        value: NodeValue::Scalar(String::new()),
                    }
                } else {
                    let root = b.node(ev, span)?;
                    // DocumentEnd
                    let (ev, _) = b.next()?;
                    debug_assert!(matches!(ev, Event::DocumentEnd | Event::StreamEnd));
                    root
                };
                docs.push(root);
            }
            _ => {
                let _ = span;
            }
        }
    }
    Ok(docs)
}

/// Kubernetes reads YAML 1.1 (go-yaml through kubectl), where an integer
/// written with a leading zero is octal: `defaultMode: 0400` is 256. The
/// YAML 1.2 reader here takes `0400` for a string (and `0o400` for 256),
/// so such plain scalars are rewritten to their decimal value, for the
/// keys `mode` and `defaultMode` under a `volumes` list (the Pod's integer
/// fields written in octal; string fields, such as a ConfigMap's data,
/// keep what was written).
pub fn yaml11_octals(text: &str) -> std::borrow::Cow<'_, str> {
    enum Frame {
        Map {
            expect_key: bool,
            key: Option<String>,
            /// The key whose value this mapping is.
            under: Option<String>,
        },
        Seq {
            under: Option<String>,
        },
    }
    let under_volumes = |stack: &[Frame]| {
        stack.iter().any(|f| {
            let (Frame::Map { under, .. } | Frame::Seq { under }) = f;
            under.as_deref() == Some("volumes")
        })
    };
    let mut stack: Vec<Frame> = Vec::new();
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut parser = Parser::new_from_str(text);
    // Whether the node now starting is a mapping value, and under which key.
    let take_slot = |stack: &mut Vec<Frame>| -> Option<Option<String>> {
        match stack.last_mut() {
            Some(Frame::Map {
                expect_key, key, ..
            }) => {
                let was_key = *expect_key;
                *expect_key = !was_key;
                (!was_key).then(|| key.take())
            }
            _ => None,
        }
    };
    while let Some(Ok((ev, span))) = parser.next_event() {
        match ev {
            Event::Scalar(value, style, _, tag) => {
                let in_map_key = matches!(
                    stack.last(),
                    Some(Frame::Map {
                        expect_key: true,
                        ..
                    })
                );
                if in_map_key {
                    take_slot(&mut stack);
                    if let Some(Frame::Map { key, .. }) = stack.last_mut() {
                        *key = Some(value.to_string());
                    }
                    continue;
                }
                let under = take_slot(&mut stack).flatten();
                let octal = value.len() > 1
                    && value.starts_with('0')
                    && value.bytes().all(|b| (b'0'..=b'7').contains(&b));
                if octal
                    && tag.is_none()
                    && style == saphyr_parser::ScalarStyle::Plain
                    && matches!(under.as_deref(), Some("mode" | "defaultMode"))
                    && under_volumes(&stack)
                    && let Ok(n) = u64::from_str_radix(&value, 8)
                {
                    edits.push((span.start.index(), span.end.index(), n.to_string()));
                }
            }
            Event::MappingStart(..) => {
                let under = take_slot(&mut stack).flatten();
                stack.push(Frame::Map {
                    expect_key: true,
                    key: None,
                    under,
                });
            }
            Event::SequenceStart(..) => {
                let under = take_slot(&mut stack).flatten();
                stack.push(Frame::Seq { under });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            Event::Alias(_) => {
                take_slot(&mut stack);
            }
            Event::StreamEnd => break,
            _ => {}
        }
    }
    if edits.is_empty() {
        return std::borrow::Cow::Borrowed(text);
    }
    // Marks count characters; edits are made on byte offsets.
    let byte_at: Vec<usize> = text
        .char_indices()
        .map(|(b, _)| b)
        .chain([text.len()])
        .collect();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, end, with) in edits {
        let (Some(&b0), Some(&b1)) = (byte_at.get(start), byte_at.get(end)) else {
            continue;
        };
        if b0 < last {
            continue;
        }
        out.push_str(&text[last..b0]);
        out.push_str(&with);
        last = b1;
    }
    out.push_str(&text[last..]);
    std::borrow::Cow::Owned(out)
}

/// The outcome of reading one document as `T`.
pub struct Typed<T> {
    pub value: Option<T>,
    pub errors: Vec<SpecError>,
}

/// Deserializes one document as `T`, collecting unknown fields (with a
/// did-you-mean from `known_fields`) and the first wrong-type error.
pub fn parse_typed<T: DeserializeOwned>(
    de: serde_yaml_ng::Deserializer<'_>,
    positions: &Positions,
    known_fields: impl Fn(&str) -> Option<&'static [&'static str]>,
) -> Typed<T> {
    let mut unknown: Vec<Vec<Seg>> = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let result = {
        let mut record = |path: serde_ignored::Path<'_>| unknown.push(ignored_path(&path));
        let ignored = serde_ignored::Deserializer::new(de, &mut record);
        let tracked = serde_path_to_error::Deserializer::new(ignored, &mut track);
        T::deserialize(tracked)
    };
    let mut errors = Vec::new();
    for path in &unknown {
        let rendered = render(path);
        let field = match path.last() {
            Some(Seg::Key(k)) => k.as_str(),
            _ => "",
        };
        let parent = normalized(&path[..path.len().saturating_sub(1)]);
        let hint = known_fields(&parent)
            .and_then(|known| did_you_mean(field, known))
            .map(|s| format!("did you mean \"{s}\"?"))
            .unwrap_or_else(|| {
                "it is not a field of the Kubernetes v1 schema here (kubectl would refuse it too)"
                    .to_string()
            });
        errors.push(SpecError {
            line: positions.line(&rendered),
            column: None,
            path: rendered,
            message: format!("unknown field; {hint}"),
        });
    }
    let value = match result {
        Ok(v) => Some(v),
        Err(e) => {
            let path = render(&tracked_path(&track.path()));
            errors.push(type_error(&path, &e, positions, &known_fields));
            None
        }
    };
    Typed { value, errors }
}

fn type_error(
    path: &str,
    e: &serde_yaml_ng::Error,
    positions: &Positions,
    known_fields: &dyn Fn(&str) -> Option<&'static [&'static str]>,
) -> SpecError {
    let mut message = e.to_string();
    let (line, column) = match e.location() {
        Some(loc) => {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_string();
            }
            (Some(loc.line()), Some(loc.column()))
        }
        None => (positions.line(path), None),
    };
    if let Some(stripped) = message.strip_prefix(&format!("{path}: ")) {
        message = stripped.to_string();
    }
    // The fields of the object expected at `path`, when the schema knows them.
    let here = normalized_str(path);
    let fields_here = || known_fields(&here);
    SpecError {
        line,
        column,
        path: path.to_string(),
        message: yaml_words(&message, &fields_here),
    }
}

/// `spec.containers[0].ports[1]` → `spec.containers[].ports[]`.
fn normalized_str(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push_str("[]");
            }
            ']' => in_index = false,
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// Rewrites serde's message about a value of the wrong type into YAML's and
/// Kubernetes' words: what shape was expected and what was found, without
/// the Rust type names serde speaks in (`struct NodeSelector`, `i32`, …).
fn yaml_words(message: &str, fields_here: &dyn Fn() -> Option<&'static [&'static str]>) -> String {
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        return format!("Required value: {field} is missing; add it here");
    }
    if is_base64_error(message) {
        let why = message.trim_end_matches('.');
        let mut why_lower = why[..1].to_ascii_lowercase();
        why_lower.push_str(&why[1..]);
        return format!(
            "expected a base64-encoded string, found a string that is not valid base64 \
             ({why_lower}); encode the value with base64, or put it as plain text under \
             stringData (Secret) or data (ConfigMap)"
        );
    }
    let (rest, out_of_range) = if let Some(r) = message.strip_prefix("invalid type: ") {
        (r, false)
    } else if let Some(r) = message.strip_prefix("invalid value: ") {
        (r, true)
    } else {
        return message.to_string();
    };
    let Some(at) = rest.rfind(", expected ") else {
        return message.to_string();
    };
    let (found, expected) = (&rest[..at], &rest[at + ", expected ".len()..]);
    let found = found_words(found);
    if out_of_range && let Some((lo, hi)) = integer_range(expected) {
        return format!("expected an integer between {lo} and {hi}, found {found}");
    }
    format!(
        "expected {}, found {found}",
        expected_words(expected, fields_here)
    )
}

/// Messages of the base64 decoder behind `data` of a Secret and `binaryData`.
fn is_base64_error(message: &str) -> bool {
    [
        "Invalid symbol",
        "Invalid input length",
        "Invalid last symbol",
        "Invalid padding",
        "Encoded text cannot have",
    ]
    .iter()
    .any(|p| message.starts_with(p))
}

/// serde's `Unexpected` in YAML's words.
fn found_words(found: &str) -> String {
    let quoted = |s: &str| {
        s.strip_prefix('`')
            .and_then(|s| s.strip_suffix('`'))
            .map(str::to_string)
    };
    if let Some(s) = found.strip_prefix("string ") {
        return format!("the string {s}");
    }
    if let Some(n) = found
        .strip_prefix("integer ")
        .or_else(|| found.strip_prefix("floating point "))
        .and_then(quoted)
    {
        return format!("the number {n}");
    }
    if let Some(b) = found.strip_prefix("boolean ").and_then(quoted) {
        return b;
    }
    if let Some(c) = found.strip_prefix("character ").and_then(quoted) {
        return format!("the string {c:?}");
    }
    match found {
        "map" => "a mapping".into(),
        "sequence" => "a list".into(),
        "unit value" | "unit" | "Option value" => "null (an empty value)".into(),
        other => other.to_string(),
    }
}

/// The range of a Rust integer type, as serde names it.
fn integer_range(expected: &str) -> Option<(i128, i128)> {
    Some(match expected {
        "i8" => (i8::MIN.into(), i8::MAX.into()),
        "i16" => (i16::MIN.into(), i16::MAX.into()),
        "i32" => (i32::MIN.into(), i32::MAX.into()),
        "i64" => (i64::MIN.into(), i64::MAX.into()),
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "u64" => (0, u64::MAX.into()),
        _ => return None,
    })
}

const MAPPING: &str = "a mapping (an object with fields)";

/// serde's `expected …` in YAML's words.
fn expected_words(
    expected: &str,
    fields_here: &dyn Fn() -> Option<&'static [&'static str]>,
) -> String {
    let words = match expected {
        "a sequence" | "a sequence of strings" | "a list" => "a list",
        "a map" => "a mapping of keys to values",
        "a YAML mapping" | "a mapping" => MAPPING,
        "a string" | "a borrowed string" | "a character" | "a string or bytes" => "a string",
        "a boolean" | "bool" => "true or false",
        "i8" | "i16" | "i32" | "i64" | "i128" | "u8" | "u16" | "u32" | "u64" | "u128" | "isize"
        | "usize" | "an integer" => "an integer",
        "f32" | "f64" | "a number" => "a number",
        "IntOrString" => "a number or a string such as \"8080\" or \"http\"",
        "Quantity" => "a quantity such as 2, 500m or 128Mi",
        "a base64-encoded string" => "a base64-encoded string",
        "a timestamp string" | "Time" | "MicroTime" => {
            "a timestamp such as \"2024-01-02T15:04:05Z\""
        }
        "field identifier" => "a field name",
        other => {
            let name = other.strip_prefix("struct ").unwrap_or(other);
            if let Some(fields) = FEW_FIELDS
                .iter()
                .find(|(t, _)| *t == name)
                .map(|(_, f)| *f)
                .or_else(|| fields_here().map(|f| &f[..f.len().min(3)]))
                .filter(|f| !f.is_empty())
            {
                return match fields {
                    [one] => format!("a mapping ({}, with {one})", article(name)),
                    _ => format!(
                        "a mapping ({}, with fields such as {})",
                        article(name),
                        fields.join(", ")
                    ),
                };
            }
            if is_type_name(name) {
                return format!("a mapping ({})", article(name));
            }
            return other.to_string();
        }
    };
    words.to_string()
}

/// `Container` → `a Container`, `EnvVar` → `an EnvVar`.
fn article(name: &str) -> String {
    let vowel = name.starts_with(['A', 'E', 'I', 'O', 'U']);
    format!("{} {name}", if vowel { "an" } else { "a" })
}

/// A Kubernetes object type's name as serde prints it: `NodeSelector`.
fn is_type_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase()) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The fields that tell best what an object of each type looks like (each one
/// checked against the type's real fields by a unit test).
const FEW_FIELDS: &[(&str, &[&str])] = &[
    ("Pod", &["apiVersion", "kind", "metadata", "spec"]),
    ("ConfigMap", &["data", "binaryData"]),
    ("Secret", &["data", "stringData", "type"]),
    ("ObjectMeta", &["name", "labels", "annotations"]),
    ("PodSpec", &["containers", "volumes", "restartPolicy"]),
    ("Container", &["name", "image", "command"]),
    ("EphemeralContainer", &["name", "image", "command"]),
    ("ContainerPort", &["containerPort", "protocol", "hostPort"]),
    ("EnvVar", &["name", "value"]),
    (
        "EnvVarSource",
        &["configMapKeyRef", "secretKeyRef", "fieldRef"],
    ),
    ("EnvFromSource", &["configMapRef", "secretRef", "prefix"]),
    ("VolumeMount", &["name", "mountPath", "readOnly"]),
    ("Volume", &["name", "emptyDir", "hostPath"]),
    ("EmptyDirVolumeSource", &["medium", "sizeLimit"]),
    ("HostPathVolumeSource", &["path", "type"]),
    ("ConfigMapVolumeSource", &["name", "items"]),
    ("SecretVolumeSource", &["secretName", "items"]),
    ("KeyToPath", &["key", "path"]),
    (
        "SecurityContext",
        &["runAsUser", "runAsGroup", "runAsNonRoot"],
    ),
    (
        "PodSecurityContext",
        &["runAsUser", "runAsGroup", "fsGroup"],
    ),
    ("Capabilities", &["add", "drop"]),
    ("ResourceRequirements", &["limits", "requests"]),
    ("Probe", &["httpGet", "exec", "periodSeconds"]),
    ("Lifecycle", &["postStart", "preStop"]),
    ("LifecycleHandler", &["exec", "httpGet"]),
    ("ExecAction", &["command"]),
    ("HTTPGetAction", &["path", "port"]),
    ("TCPSocketAction", &["port"]),
    (
        "Affinity",
        &["nodeAffinity", "podAffinity", "podAntiAffinity"],
    ),
    (
        "NodeAffinity",
        &[
            "requiredDuringSchedulingIgnoredDuringExecution",
            "preferredDuringSchedulingIgnoredDuringExecution",
        ],
    ),
    ("NodeSelector", &["nodeSelectorTerms"]),
    ("NodeSelectorTerm", &["matchExpressions", "matchFields"]),
    ("NodeSelectorRequirement", &["key", "operator", "values"]),
    ("PreferredSchedulingTerm", &["weight", "preference"]),
    (
        "PodAffinity",
        &[
            "requiredDuringSchedulingIgnoredDuringExecution",
            "preferredDuringSchedulingIgnoredDuringExecution",
        ],
    ),
    (
        "PodAntiAffinity",
        &[
            "requiredDuringSchedulingIgnoredDuringExecution",
            "preferredDuringSchedulingIgnoredDuringExecution",
        ],
    ),
    ("PodAffinityTerm", &["labelSelector", "topologyKey"]),
    ("WeightedPodAffinityTerm", &["weight", "podAffinityTerm"]),
    ("LabelSelector", &["matchLabels", "matchExpressions"]),
    ("Toleration", &["key", "operator", "effect"]),
    ("HostAlias", &["ip", "hostnames"]),
    ("PodDNSConfig", &["nameservers", "searches", "options"]),
    ("PodDNSConfigOption", &["name", "value"]),
    ("LocalObjectReference", &["name"]),
    ("ConfigMapKeySelector", &["name", "key"]),
    ("SecretKeySelector", &["name", "key"]),
    (
        "TopologySpreadConstraint",
        &["maxSkew", "topologyKey", "whenUnsatisfiable"],
    ),
];

fn ignored_path(path: &serde_ignored::Path<'_>) -> Vec<Seg> {
    use serde_ignored::Path as P;
    match path {
        P::Root => Vec::new(),
        P::Seq { parent, index } => {
            let mut v = ignored_path(parent);
            v.push(Seg::Index(*index));
            v
        }
        P::Map { parent, key } => {
            let mut v = ignored_path(parent);
            v.push(Seg::Key(key.clone()));
            v
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            ignored_path(parent)
        }
    }
}

fn tracked_path(path: &serde_path_to_error::Path) -> Vec<Seg> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|seg| match seg {
            Segment::Seq { index } => Some(Seg::Index(*index)),
            Segment::Map { key } => Some(Seg::Key(key.clone())),
            Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
            Segment::Unknown => None,
        })
        .collect()
}

/// A path with indices replaced by `[]`: `spec.containers[].ports[]`.
pub fn normalized(path: &[Seg]) -> String {
    join(path, |_| "[]".to_string())
}

/// The known field closest to `field`: same letters ignoring case, else the
/// nearest within edit distance 2.
pub fn did_you_mean(field: &str, known: &[&'static str]) -> Option<&'static str> {
    if let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(field)) {
        return Some(k);
    }
    known
        .iter()
        .map(|k| (levenshtein(field, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The field names a k8s-openapi type accepts, read from its `Deserialize`
/// impl (the `fields` it passes to `deserialize_struct`).
pub fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> de::Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("probe"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("probe"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    #[test]
    fn modes_with_a_leading_zero_are_octal_as_kubernetes_reads_them() {
        let text = "volumes:\n- secret: {secretName: s, defaultMode: 0400}\n  x:\n    items:\n    - {key: k, path: p, mode: 0640}\n    - mode: '0600'\n    value: 0400\n    mode: 0o600\n    é: é\n    mode: 0755 # c\ndata: {mode: 0644}\n";
        assert_eq!(
            super::yaml11_octals(text),
            "volumes:\n- secret: {secretName: s, defaultMode: 256}\n  x:\n    items:\n    - {key: k, path: p, mode: 416}\n    - mode: '0600'\n    value: 0400\n    mode: 0o600\n    é: é\n    mode: 493 # c\ndata: {mode: 0644}\n"
        );
        assert!(matches!(
            super::yaml11_octals("a: 1\n"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
    use super::*;

    #[test]
    fn tree_positions_block_flow_and_multi_doc() {
        let text = "# comment\n\
                    apiVersion: v1\n\
                    kind: Pod\n\
                    spec:\n  \
                      containers:\n  \
                      - name: a\n    \
                        image: busybox\n  \
                      - {name: b, image: x}\n\
                    ---\n\
                    kind: ConfigMap\n\
                    data: {k: v}\n";
        let docs = document_trees(text).unwrap();
        assert_eq!(docs.len(), 2);
        let p = docs[0].positions();
        assert_eq!(p.line("kind"), Some(3));
        assert_eq!(p.line("spec.containers"), Some(5));
        assert_eq!(p.line("spec.containers[0]"), Some(6));
        assert_eq!(p.line("spec.containers[0].image"), Some(7));
        assert_eq!(p.line("spec.containers[1].image"), Some(8));
        assert_eq!(p.line("spec.containers[1].nope.deeper"), Some(8));
        let p = docs[1].positions();
        assert_eq!(p.line("data.k"), Some(11));
        assert_eq!(
            docs[1].get("kind").and_then(Node::scalar),
            Some("ConfigMap")
        );
    }

    #[test]
    fn empty_documents_are_null() {
        let docs = document_trees("---\n---\nkind: Pod\n---\n").unwrap();
        assert!(docs.len() >= 2);
        assert!(docs[0].is_null());
        assert!(docs.iter().any(|d| d.get("kind").is_some()));
    }

    #[test]
    fn syntax_error_has_line() {
        let err = document_trees("a: b\nc: [d\n").unwrap_err();
        assert!(err.line.is_some());
        assert!(err.message.contains("YAML syntax error"), "{}", err.message);
    }

    #[test]
    fn suggestions() {
        let known = &["imagePullPolicy", "image", "name", "workingDir"];
        assert_eq!(
            did_you_mean("imagePullPolicyy", known),
            Some("imagePullPolicy")
        );
        assert_eq!(
            did_you_mean("imagepullpolicy", known),
            Some("imagePullPolicy")
        );
        assert_eq!(did_you_mean("imgae", known), Some("image"));
        assert_eq!(did_you_mean("workdir", known), None);
        assert_eq!(did_you_mean("banana", known), None);
    }

    #[test]
    fn few_fields_are_real_fields_of_their_types() {
        use k8s_openapi::api::core::v1 as core;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
        macro_rules! fields {
            ($($module:ident::$t:ident),* $(,)?) => {
                [$((stringify!($t), fields_of::<$module::$t>())),*]
            };
        }
        let real = fields![
            core::Pod,
            core::ConfigMap,
            core::Secret,
            meta::ObjectMeta,
            core::PodSpec,
            core::Container,
            core::EphemeralContainer,
            core::ContainerPort,
            core::EnvVar,
            core::EnvVarSource,
            core::EnvFromSource,
            core::VolumeMount,
            core::Volume,
            core::EmptyDirVolumeSource,
            core::HostPathVolumeSource,
            core::ConfigMapVolumeSource,
            core::SecretVolumeSource,
            core::KeyToPath,
            core::SecurityContext,
            core::PodSecurityContext,
            core::Capabilities,
            core::ResourceRequirements,
            core::Probe,
            core::Lifecycle,
            core::LifecycleHandler,
            core::ExecAction,
            core::HTTPGetAction,
            core::TCPSocketAction,
            core::Affinity,
            core::NodeAffinity,
            core::NodeSelector,
            core::NodeSelectorTerm,
            core::NodeSelectorRequirement,
            core::PreferredSchedulingTerm,
            core::PodAffinity,
            core::PodAntiAffinity,
            core::PodAffinityTerm,
            core::WeightedPodAffinityTerm,
            meta::LabelSelector,
            core::Toleration,
            core::HostAlias,
            core::PodDNSConfig,
            core::PodDNSConfigOption,
            core::LocalObjectReference,
            core::ConfigMapKeySelector,
            core::SecretKeySelector,
            core::TopologySpreadConstraint,
        ];
        assert_eq!(real.len(), FEW_FIELDS.len());
        for (name, few) in FEW_FIELDS {
            let (_, all) = real
                .iter()
                .find(|(t, _)| t == name)
                .unwrap_or_else(|| panic!("{name} is not checked"));
            for f in *few {
                assert!(all.contains(f), "{name} has no field {f}: {all:?}");
            }
        }
    }

    #[test]
    fn type_errors_in_yaml_words() {
        let none = || None;
        let cases = [
            (
                "invalid type: string \"x\", expected struct NodeSelector",
                "expected a mapping (a NodeSelector, with nodeSelectorTerms), found the string \"x\"",
            ),
            (
                "invalid type: map, expected a borrowed string",
                "expected a string, found a mapping",
            ),
            (
                "invalid type: integer `80`, expected a string",
                "expected a string, found the number 80",
            ),
            (
                "invalid type: boolean `true`, expected IntOrString",
                "expected a number or a string such as \"8080\" or \"http\", found true",
            ),
            (
                "invalid type: sequence, expected a YAML mapping",
                "expected a mapping (an object with fields), found a list",
            ),
            (
                "invalid type: string \"a\", expected u16",
                "expected an integer, found the string \"a\"",
            ),
            (
                "invalid value: integer `70000`, expected u16",
                "expected an integer between 0 and 65535, found the number 70000",
            ),
            (
                "invalid type: map, expected struct Unheard",
                "expected a mapping (an Unheard), found a mapping",
            ),
            (
                "missing field `ip`",
                "Required value: ip is missing; add it here",
            ),
            ("something else entirely", "something else entirely"),
        ];
        for (serde, want) in cases {
            assert_eq!(yaml_words(serde, &none), want);
        }
        // A type without a table entry gets the fields the schema knows at its path.
        let some = || Some(&["alpha", "beta", "gamma", "delta"][..]);
        assert_eq!(
            yaml_words("invalid type: string \"x\", expected Unheard", &some),
            "expected a mapping (an Unheard, with fields such as alpha, beta, gamma), found the \
             string \"x\""
        );
        assert_eq!(normalized_str("a.b[0].c[12]"), "a.b[].c[]");
    }

    #[test]
    fn fields_probe_reads_k8s_types() {
        use k8s_openapi::api::core::v1::Container;
        let f = fields_of::<Container>();
        assert!(
            f.contains(&"imagePullPolicy") && f.contains(&"volumeMounts"),
            "{f:?}"
        );
    }
}
