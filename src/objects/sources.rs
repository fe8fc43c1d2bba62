//! What `minipod secret|configmap create` reads its values from, as
//! kubectl's `create secret generic` and `create configmap` define the
//! flags: `--from-literal K=V`, `--from-file [K=]PATH`, `--from-env-file
//! PATH`. Pure: the files' contents are read by the caller.

use std::collections::BTreeMap;

use crate::spec::objects::key_problem;

/// `K=V`: the value may hold `=`; the key may not be empty.
pub fn literal(source: &str) -> Result<(String, String), String> {
    match source.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!(
            "--from-literal {source:?}: invalid literal source, expected key=value"
        )),
    }
}

/// `[K=]PATH`: the key, when given, and the path. Without a key, the key is
/// the file's base name (a directory gives one key per regular file).
pub fn file(source: &str) -> Result<(Option<String>, String), String> {
    let err = |why: &str| Err(format!("--from-file {source:?}: {why}"));
    match source.matches('=').count() {
        0 => Ok((None, source.to_string())),
        1 => {
            let (k, p) = source.split_once('=').unwrap_or_default();
            if k.is_empty() {
                err("the key name before = is missing; give KEY=PATH or PATH")
            } else if p.is_empty() {
                err("the file path after = is missing; give KEY=PATH or PATH")
            } else {
                Ok((Some(k.to_string()), p.to_string()))
            }
        }
        _ => err("key names or file paths cannot contain '='"),
    }
}

/// A file's base name: its default key.
pub fn base_name(path: &str) -> String {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
        .to_string()
}

/// The `KEY=VALUE` lines of an env file, as kubectl reads them: leading
/// blanks dropped, `#` comments and blank lines skipped, a UTF-8 BOM on the
/// first line dropped, the value kept as written (no quotes removed), and a
/// line `KEY` alone takes the value from `env` (minipod's own environment;
/// empty when unset). Keys must be environment variable names.
pub fn env_file(
    text: &[u8],
    path: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, String> {
    let text = std::str::from_utf8(text)
        .map_err(|e| format!("--from-env-file {path}: not UTF-8 text ({e})"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, v.to_string()),
            None => (line, env(line).unwrap_or_default()),
        };
        if let Some(why) = crate::spec::names::env_var_name(key) {
            return Err(format!(
                "--from-env-file {path}:{}: {key:?} is not a valid key name: {why}",
                i + 1
            ));
        }
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// The keys and values gathered from every source, each key once.
#[derive(Default)]
pub struct Gathered {
    pub data: BTreeMap<String, Vec<u8>>,
    /// Where each key came from, for the message of a key given twice.
    from: BTreeMap<String, String>,
}

impl Gathered {
    /// Adds a key, refusing one Kubernetes would not take, or one given
    /// before.
    pub fn add(&mut self, key: &str, value: Vec<u8>, from: &str) -> Result<(), String> {
        if let Some(why) = key_problem(key) {
            return Err(format!("{from}: key {key:?} is not valid: {why}"));
        }
        if let Some(first) = self.from.get(key) {
            return Err(format!(
                "{from}: key {key:?} is also given by {first}; give each key once"
            ));
        }
        self.data.insert(key.to_string(), value);
        self.from.insert(key.to_string(), from.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_split_at_the_first_equals_sign() {
        assert_eq!(literal("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(literal("a=").unwrap(), ("a".into(), String::new()));
        assert!(literal("=b").unwrap_err().contains("expected key=value"));
        assert!(literal("ab").unwrap_err().contains("expected key=value"));
    }

    #[test]
    fn file_sources_name_their_key_or_take_the_base_name() {
        assert_eq!(file("dir/app.conf").unwrap(), (None, "dir/app.conf".into()));
        assert_eq!(
            file("conf=dir/app.conf").unwrap(),
            (Some("conf".into()), "dir/app.conf".into())
        );
        assert!(file("=x").unwrap_err().contains("key name"));
        assert!(file("k=").unwrap_err().contains("file path"));
        assert!(file("a=b=c").unwrap_err().contains("cannot contain '='"));
        assert_eq!(base_name("dir/app.conf"), "app.conf");
        assert_eq!(base_name("app.conf"), "app.conf");
        assert_eq!(base_name("dir/sub/"), "sub");
    }

    #[test]
    fn env_files_read_as_kubectl_does() {
        let text = "\u{feff}# comment\n\n  A=1\nB= two words \nC=x=y\nFROM_ENV\nUNSET\n";
        let env = |k: &str| (k == "FROM_ENV").then(|| "outside".to_string());
        let got = env_file(text.as_bytes(), "f.env", env).unwrap();
        assert_eq!(
            got,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), " two words ".into()),
                ("C".into(), "x=y".into()),
                ("FROM_ENV".into(), "outside".into()),
                ("UNSET".into(), String::new()),
            ]
        );
        let e = env_file(b"OK=1\n1BAD=2\n", "f.env", |_| None).unwrap_err();
        assert!(e.contains("f.env:2") && e.contains("\"1BAD\""), "{e}");
        let e = env_file(b"A B=2\n", "f.env", |_| None).unwrap_err();
        assert!(e.contains("not a valid key name"), "{e}");
        assert!(env_file(b"A=\xff\n", "f.env", |_| None).is_err());
    }

    #[test]
    fn keys_are_checked_and_given_once() {
        let mut g = Gathered::default();
        g.add("a.b_c-1", b"v".to_vec(), "--from-literal").unwrap();
        let e = g
            .add("a.b_c-1", b"w".to_vec(), "--from-file x")
            .unwrap_err();
        assert!(e.contains("also given by --from-literal"), "{e}");
        for bad in ["", "a b", "..x", ".", "..", "é", &"k".repeat(254)] {
            assert!(g.add(bad, Vec::new(), "f").is_err(), "{bad:?}");
        }
        g.add(".hidden", Vec::new(), "f").unwrap();
        g.add(&"k".repeat(253), Vec::new(), "f").unwrap();
    }
}
