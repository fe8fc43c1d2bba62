//! Registry credentials from the files `podman login` and `docker login`
//! write: `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `~/.config/containers/auth.json` (podman's order), then
//! `~/.docker/config.json`. Only inline `auth` entries (base64 of
//! `user:password`) are read; credential helpers are not run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine as _;
use serde::Deserialize;

#[derive(Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// Which file they came from, for error messages.
    pub origin: PathBuf,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials({} from {})",
            self.username,
            self.origin.display()
        )
    }
}

#[derive(Deserialize, Default)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    /// A Secret's entries may give these instead of `auth`.
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Credentials given with a pod (its `imagePullSecrets`), each under the
/// registry key its Secret names, in the pod's order: they come before the
/// auth files for the registries they name.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct PodCredentials(Vec<(String, Credentials)>);

impl std::fmt::Debug for PodCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, c)| (k, c)))
            .finish()
    }
}

impl PodCredentials {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds the entries of a Secret's docker config (`.dockerconfigjson`,
    /// `{"auths": {...}}`; or `.dockercfg`, the bare map), as kubelet reads
    /// them: `auth` (base64 of USER:PASSWORD) wins over `username` and
    /// `password`. `origin` names the Secret in messages.
    pub fn add_docker_config(&mut self, bytes: &[u8], dockercfg: bool, origin: &str) -> Result<()> {
        let entries: BTreeMap<String, AuthEntry> = if dockercfg {
            serde_json::from_slice(bytes)
        } else {
            serde_json::from_slice::<AuthFile>(bytes).map(|f| f.auths)
        }
        // Not `{e}`: serde_json's messages quote the value, a password here.
        .map_err(|e| {
            anyhow::anyhow!(
                "{origin}: not a docker config (at line {}, column {}); give the content of a \
                 ~/.docker/config.json",
                e.line(),
                e.column()
            )
        })?;
        let origin_path = PathBuf::from(origin);
        for (key, entry) in entries {
            let creds = match entry.auth.as_deref().filter(|a| !a.is_empty()) {
                Some(auth) => decode(auth, &origin_path)?,
                None => match (entry.username, entry.password) {
                    (None, None) => continue,
                    (u, p) => Credentials {
                        username: u.unwrap_or_default(),
                        password: p.unwrap_or_default(),
                        origin: origin_path.clone(),
                    },
                },
            };
            self.0.push((normalize_key(&key), creds));
        }
        Ok(())
    }

    /// Adds another pod's credentials after these.
    pub fn append(&mut self, other: &PodCredentials) {
        self.0.extend(other.0.iter().cloned());
    }

    /// The credentials for `repo`: the most specific key, the first
    /// Secret's among equals.
    pub fn lookup(&self, repo: &str) -> Option<Credentials> {
        most_specific(repo, |key| {
            self.0
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, c)| c.clone())
        })
    }
}

/// The first answer of `find` for `repo`'s keys, most specific first:
/// `host/path/to/repo`, then `host/path/to`, …, then `host`.
fn most_specific<T>(repo: &str, mut find: impl FnMut(&str) -> Option<T>) -> Option<T> {
    let mut key = repo;
    loop {
        if let Some(found) = find(key) {
            return Some(found);
        }
        key = key.rsplit_once('/')?.0;
    }
}

/// The auth files to read, most important first. `explicit` (`--authfile`)
/// replaces podman's own locations, as in podman.
pub fn auth_files(explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(p) = explicit {
        files.push(p.to_path_buf());
    } else if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        files.push(PathBuf::from(p));
    } else {
        if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
            files.push(Path::new(&run).join("containers/auth.json"));
        }
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")));
        if let Some(c) = config {
            files.push(c.join("containers/auth.json"));
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        files.push(Path::new(&home).join(".docker/config.json"));
    }
    files
}

/// Credentials for `repo` (`host[:port]/path/to/repo`): the most specific key
/// wins (`host/path/to/repo`, then `host/path/to`, …, then `host`), from the
/// first file that has any match.
pub fn lookup(files: &[PathBuf], repo: &str) -> Result<Option<Credentials>> {
    for file in files {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!("reading credentials from {}: {e}", file.display());
                continue;
            }
        };
        let parsed: AuthFile = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not a valid auth file (JSON with an \"auths\" object); fix or remove it",
                file.display()
            )
        })?;
        let entries: BTreeMap<String, &AuthEntry> = parsed
            .auths
            .iter()
            .map(|(k, v)| (normalize_key(k), v))
            .collect();
        let found = most_specific(repo, |key| {
            entries
                .get(key)
                .and_then(|e| e.auth.as_deref().filter(|a| !a.is_empty()))
        });
        if let Some(auth) = found {
            return decode(auth, file).map(Some);
        }
    }
    Ok(None)
}

/// `https://index.docker.io/v1/` ↦ `docker.io`; `https://host/` ↦ `host`.
fn normalize_key(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let k = k
        .strip_suffix("/v1/")
        .or(k.strip_suffix("/v2/"))
        .unwrap_or(k);
    let k = k.trim_end_matches('/');
    match k {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        other => other
            .strip_prefix("index.docker.io/")
            .map(|rest| format!("docker.io/{rest}"))
            .unwrap_or_else(|| other.to_string()),
    }
}

fn decode(auth: &str, file: &Path) -> Result<Credentials> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .with_context(|| format!("{}: an \"auth\" value is not base64 text", file.display()))?;
    let (user, pass) = raw.split_once(':').with_context(|| {
        format!(
            "{}: an \"auth\" value is not base64 of USER:PASSWORD",
            file.display()
        )
    })?;
    Ok(Credentials {
        username: user.to_string(),
        password: pass.to_string(),
        origin: file.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secrets_docker_config_gives_credentials() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let mut creds = PodCredentials::default();
        let json = serde_json::json!({"auths": {
            "https://reg.example:5000/v1/": {"auth": b64("alice:s3cret")},
            "reg.example:5000/team": {"username": "bob", "password": "pw"},
        }});
        creds
            .add_docker_config(json.to_string().as_bytes(), false, "Secret a (pod.yaml:1)")
            .unwrap();
        // The older format: the map alone; later Secrets come after.
        let cfg = serde_json::json!({"reg.example:5000": {"auth": b64("carol:x")}});
        creds
            .add_docker_config(cfg.to_string().as_bytes(), true, "Secret b")
            .unwrap();
        let got = |r: &str| creds.lookup(r).map(|c| (c.username, c.origin));
        assert_eq!(
            got("reg.example:5000/app"),
            Some(("alice".into(), PathBuf::from("Secret a (pod.yaml:1)")))
        );
        assert_eq!(
            got("reg.example:5000/team/app"),
            Some(("bob".into(), PathBuf::from("Secret a (pod.yaml:1)")))
        );
        assert_eq!(got("other.example/app"), None);
        let shown = format!("{creds:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("pw\""),
            "{shown}"
        );
        assert!(creds.add_docker_config(b"[1]", false, "Secret c").is_err());
    }

    #[test]
    fn most_specific_key_wins() {
        let dir = tempfile::tempdir().unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let file = dir.path().join("auth.json");
        std::fs::write(
            &file,
            serde_json::to_vec(&serde_json::json!({"auths": {
                "reg.example:5000": {"auth": b64("host:h")},
                "reg.example:5000/team": {"auth": b64("team:t")},
                "https://index.docker.io/v1/": {"auth": b64("hub:x:y")},
            }}))
            .unwrap(),
        )
        .unwrap();
        let files = vec![dir.path().join("missing.json"), file];
        let got = |r: &str| lookup(&files, r).unwrap().map(|c| (c.username, c.password));
        assert_eq!(
            got("reg.example:5000/team/app"),
            Some(("team".into(), "t".into()))
        );
        assert_eq!(
            got("reg.example:5000/other/app"),
            Some(("host".into(), "h".into()))
        );
        assert_eq!(
            got("docker.io/library/busybox"),
            Some(("hub".into(), "x:y".into()))
        );
        assert_eq!(got("quay.io/a/b"), None);
    }

    #[test]
    fn a_docker_config_that_does_not_parse_is_not_quoted() {
        let mut creds = PodCredentials::default();
        let err = creds
            .add_docker_config(br#"{"auths": "hunter2"}"#, false, "Secret regcred")
            .unwrap_err();
        let err = format!("{err:#}");
        assert!(
            err.starts_with("Secret regcred: not a docker config"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }
}
