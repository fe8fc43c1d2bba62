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

#[derive(Clone, PartialEq, Eq)]
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
        let mut key = repo.to_string();
        loop {
            if let Some(entry) = entries.get(&key)
                && let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty())
            {
                return decode(auth, file).map(Some);
            }
            match key.rsplit_once('/') {
                Some((shorter, _)) => key = shorter.to_string(),
                None => break,
            }
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
}
