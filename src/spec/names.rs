//! Name formats the API server enforces (apimachinery/pkg/util/validation).
//! Each check returns `None` when valid, or the reason in the API server's words.

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const IANA_SVC_NAME_MAX: usize = 15;
const QUALIFIED_NAME_MAX: usize = 63;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_FMT: &str =
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const ENV_VAR_NAME_FMT: &str = "[-._a-zA-Z][-._a-zA-Z0-9]*";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const HTTP_HEADER_NAME_FMT: &str = "[-A-Za-z0-9]+";

/// The API server's field error for a value it refuses:
/// `Invalid value: "Bad_Name": why` (the value quoted as Go's `%q` does).
pub fn invalid(value: &str, why: &str) -> String {
    format!("Invalid value: {value:?}: {why}")
}

/// apimachinery's `MaxLenError`.
fn max_len_error(max: usize) -> String {
    format!("must be no more than {max} characters")
}

/// apimachinery's `RegexError`: the rule, examples, and the regex itself.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}'")).collect();
    format!(
        "{msg} (e.g. {}, regex used for validation is '{fmt}')",
        examples.join(", or ")
    )
}

fn is_label_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn label_shape_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_label_char(b[0])
        && is_label_char(b[b.len() - 1])
        && b.iter().all(|&c| is_label_char(c) || c == b'-')
}

fn subdomain_shape_ok(s: &str) -> bool {
    s.split('.').all(label_shape_ok)
}

/// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn dns1123_label(s: &str) -> Option<String> {
    if s.len() > DNS1123_LABEL_MAX {
        return Some(max_len_error(DNS1123_LABEL_MAX));
    }
    if !label_shape_ok(s) {
        if subdomain_shape_ok(s) {
            // A valid subdomain that is not a label: it has dots.
            return Some("must not contain dots".into());
        }
        return Some(regex_error(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters \
             or '-', and must start and end with an alphanumeric character",
            DNS1123_LABEL_FMT,
            &["my-name", "123-abc"],
        ));
    }
    None
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn dns1123_subdomain(s: &str) -> Option<String> {
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        return Some(max_len_error(DNS1123_SUBDOMAIN_MAX));
    }
    if !subdomain_shape_ok(s) {
        return Some(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
             characters, '-' or '.', and must start and end with an alphanumeric character",
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    None
}

/// IANA_SVC_NAME (port names): at most 15 characters, `[a-z0-9-]`, at least one
/// letter, no leading, trailing or doubled '-'.
pub fn iana_svc_name(s: &str) -> Option<String> {
    if s.len() > IANA_SVC_NAME_MAX {
        return Some(max_len_error(IANA_SVC_NAME_MAX));
    }
    if s.is_empty() || !s.bytes().all(|c| is_label_char(c) || c == b'-') {
        return Some(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into(),
        );
    }
    if !s.bytes().any(|c| c.is_ascii_lowercase()) {
        return Some("must contain at least one letter (a-z)".into());
    }
    if s.contains("--") {
        return Some("must not contain consecutive hyphens".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Some("must not begin or end with a hyphen".into());
    }
    None
}

/// HTTP header names (a probe's `httpHeaders[].name`): `[-A-Za-z0-9]+`, the
/// API server's subset of RFC 7230 tokens.
pub fn http_header_name(s: &str) -> Option<String> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
        return Some(regex_error(
            "a valid HTTP header must consist of alphanumeric characters or '-'",
            HTTP_HEADER_NAME_FMT,
            &["X-Header-Name"],
        ));
    }
    None
}

/// Environment variable names: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
pub fn env_var_name(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let first_ok = |c: u8| c.is_ascii_alphabetic() || matches!(c, b'-' | b'.' | b'_');
    if b.is_empty() || !first_ok(b[0]) || !b.iter().all(|&c| first_ok(c) || c.is_ascii_digit()) {
        return Some(regex_error(
            "a valid environment variable name must consist of alphabetic characters, \
             digits, '_', '-', or '.', and must not start with a digit",
            ENV_VAR_NAME_FMT,
            &["my.env-name", "MY_ENV.NAME", "MyEnvName1"],
        ));
    }
    None
}

fn qualified_name_part_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= QUALIFIED_NAME_MAX
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

const QUALIFIED_NAME_RULE: &str = "must consist of alphanumeric characters, '-', '_' or '.', \
                                   and must start and end with an alphanumeric character";
const QUALIFIED_NAME_EXAMPLES: [&str; 3] = ["MyName", "my.name", "123-abc"];

/// Label and annotation keys: `[prefix/]name`, the prefix a DNS subdomain, the
/// name at most 63 characters of `[A-Za-z0-9_.-]` starting and ending alphanumeric.
pub fn qualified_name(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts[..] {
        [name] => name,
        [prefix, name] => {
            if prefix.is_empty() {
                return Some("prefix part must be non-empty".into());
            }
            if let Some(why) = dns1123_subdomain(prefix) {
                return Some(format!("prefix part {why}"));
            }
            name
        }
        _ => {
            return Some(format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. \
                 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_RULE,
                    QUALIFIED_NAME_FMT,
                    &QUALIFIED_NAME_EXAMPLES
                )
            ));
        }
    };
    if name.is_empty() {
        return Some("name part must be non-empty".into());
    }
    if name.len() > QUALIFIED_NAME_MAX {
        return Some(format!("name part {}", max_len_error(QUALIFIED_NAME_MAX)));
    }
    if !qualified_name_part_ok(name) {
        return Some(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_RULE,
                QUALIFIED_NAME_FMT,
                &QUALIFIED_NAME_EXAMPLES
            )
        ));
    }
    None
}

/// Label values: empty, or a qualified-name part (at most 63 characters).
pub fn label_value(s: &str) -> Option<String> {
    if s.len() > QUALIFIED_NAME_MAX {
        return Some(max_len_error(QUALIFIED_NAME_MAX));
    }
    if s.is_empty() || qualified_name_part_ok(s) {
        None
    } else {
        Some(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, \
             '-', '_' or '.', and must start and end with an alphanumeric character",
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ))
    }
}

/// `run --label KEY[=VALUE]` (podman's `--label`): the key and value, each
/// checked as `metadata.labels` are; no `=` is an empty value.
pub fn label_flag(flag: &str) -> Result<(String, String), String> {
    let (key, value) = flag.split_once('=').unwrap_or((flag, ""));
    if let Some(why) = qualified_name(key) {
        return Err(format!("--label {flag:?}: the key: {why}"));
    }
    if let Some(why) = label_value(value) {
        return Err(format!("--label {flag:?}: the value: {why}"));
    }
    Ok((key.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_flags() {
        assert_eq!(label_flag("a=b"), Ok(("a".into(), "b".into())));
        assert_eq!(
            label_flag("minipod.test/pid=42"),
            Ok(("minipod.test/pid".into(), "42".into()))
        );
        assert_eq!(label_flag("k"), Ok(("k".into(), String::new())));
        assert_eq!(label_flag("k="), Ok(("k".into(), String::new())));
        let e = label_flag("=v").unwrap_err();
        assert!(e.contains("the key"), "{e}");
        let e = label_flag("k=a b").unwrap_err();
        assert!(e.contains("the value") && e.contains("alphanumeric"), "{e}");
    }

    #[test]
    fn labels() {
        for ok in ["a", "web", "my-app-1", "0", "a0-b1"] {
            assert_eq!(dns1123_label(ok), None, "{ok}");
        }
        for bad in ["", "Web", "-a", "a-", "a_b", "a.b", &"a".repeat(64)] {
            assert!(dns1123_label(bad).is_some(), "{bad}");
        }
        assert_eq!(dns1123_label(&"a".repeat(63)), None);
    }

    #[test]
    fn subdomains() {
        for ok in ["a", "a.b", "web-1.example.com"] {
            assert_eq!(dns1123_subdomain(ok), None, "{ok}");
        }
        for bad in ["", "a..b", ".a", "a.", "A.b", "a_b"] {
            assert!(dns1123_subdomain(bad).is_some(), "{bad}");
        }
        let long = vec!["a".repeat(63); 4].join(".");
        assert_eq!(long.len(), 255);
        assert!(dns1123_subdomain(&long).is_some());
    }

    #[test]
    fn port_names() {
        for ok in ["http", "web-8080", "a1", "h2c"] {
            assert_eq!(iana_svc_name(ok), None, "{ok}");
        }
        for bad in [
            "",
            "80",
            "a--b",
            "-http",
            "http-",
            "HTTP",
            "http_x",
            "abcdefghijklmnop",
        ] {
            assert!(iana_svc_name(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn http_header_names() {
        for ok in ["X-Header-Name", "Accept", "x-1", "-"] {
            assert_eq!(http_header_name(ok), None, "{ok}");
        }
        for bad in ["", "X Header", "X_Header", "X:Y", "é"] {
            assert!(http_header_name(bad).is_some(), "{bad}");
        }
        assert_eq!(
            http_header_name("a b").unwrap(),
            "a valid HTTP header must consist of alphanumeric characters or '-' (e.g. \
             'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')"
        );
    }

    #[test]
    fn env_names() {
        for ok in [
            "A",
            "_A",
            "my.env-name",
            "MY_ENV.NAME",
            "MyEnvName1",
            "-x",
            ".",
        ] {
            assert_eq!(env_var_name(ok), None, "{ok}");
        }
        for bad in ["", "1A", "A=B", "A B", "é"] {
            assert!(env_var_name(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn qualified_names_and_label_values() {
        for ok in ["app", "app.kubernetes.io/name", "A_b.c-d"] {
            assert_eq!(qualified_name(ok), None, "{ok}");
        }
        for bad in ["", "/a", "a/", "Ex.com/a", "-a", "a/b/c"] {
            assert!(qualified_name(bad).is_some(), "{bad}");
        }
        assert_eq!(label_value(""), None);
        assert_eq!(label_value("v1.2"), None);
        assert!(label_value("-x").is_some());
        assert!(label_value(&"x".repeat(64)).is_some());
    }
}
