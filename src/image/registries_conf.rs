//! A subset of containers-registries.conf(5), version 2: `[[registry]]`
//! tables with `prefix`, `location`, `insecure`, `blocked` and
//! `[[registry.mirror]]` (`location`, `insecure`). Other keys are read and
//! ignored. The file is `$CONTAINERS_REGISTRIES_CONF` (as in podman), else
//! `~/.config/containers/registries.conf`, else
//! `/etc/containers/registries.conf`; drop-in directories are not read.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct RegistriesConf {
    #[serde(default)]
    registry: Vec<Registry>,
    #[serde(skip)]
    pub origin: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct Registry {
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror: Vec<Mirror>,
}

#[derive(Debug, Deserialize)]
struct Mirror {
    location: String,
    #[serde(default)]
    insecure: bool,
}

/// One place to pull a repository from: `host[:port]/path/to/repo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub repository: String,
    pub insecure: bool,
    pub mirror: bool,
}

impl Endpoint {
    pub fn display(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }
}

impl RegistriesConf {
    /// The configuration file in force, if any.
    pub fn path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("CONTAINERS_REGISTRIES_CONF").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")));
        if let Some(user) = config.map(|c| c.join("containers/registries.conf"))
            && user.is_file()
        {
            return Some(user);
        }
        let system = PathBuf::from("/etc/containers/registries.conf");
        system.is_file().then_some(system)
    }

    pub fn load() -> Result<RegistriesConf> {
        match Self::path() {
            Some(p) => {
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("reading registries configuration {}", p.display()))?;
                let mut conf = Self::parse(&text)
                    .with_context(|| format!("registries configuration {}", p.display()))?;
                conf.origin = Some(p);
                Ok(conf)
            }
            None => Ok(RegistriesConf::default()),
        }
    }

    pub fn parse(text: &str) -> Result<RegistriesConf> {
        let conf: RegistriesConf =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
        for r in &conf.registry {
            if r.prefix.is_none() && r.location.is_none() {
                bail!("a [[registry]] has neither prefix nor location");
            }
        }
        Ok(conf)
    }

    /// Where to pull `domain/repository` from: the mirrors of the matching
    /// `[[registry]]` in order, then its location (the longest prefix wins).
    pub fn endpoints(&self, domain: &str, repository: &str) -> Result<Vec<Endpoint>> {
        let full = format!("{domain}/{repository}");
        let best = self
            .registry
            .iter()
            .filter_map(|r| {
                let prefix = r.prefix.as_deref().or(r.location.as_deref())?;
                prefix_matches(prefix, domain, &full).then_some((prefix.len(), prefix, r))
            })
            .max_by_key(|(len, _, _)| *len);
        let Some((_, prefix, reg)) = best else {
            return Ok(vec![split(&full, false, false)]);
        };
        if reg.blocked {
            bail!(
                "{full} is blocked by the registries configuration{} ([[registry]] prefix {prefix:?})",
                self.origin
                    .as_ref()
                    .map(|p| format!(" {}", p.display()))
                    .unwrap_or_default()
            );
        }
        // A wildcard prefix keeps the name as it is; otherwise the prefix is
        // replaced by the location.
        let rewrite = |location: &str| -> String {
            if prefix.starts_with("*.") {
                full.clone()
            } else {
                format!("{location}{}", &full[prefix.len()..])
            }
        };
        let mut out: Vec<Endpoint> = reg
            .mirror
            .iter()
            .map(|m| split(&rewrite(&m.location), m.insecure, true))
            .collect();
        let location = reg.location.as_deref().unwrap_or(prefix);
        out.push(split(&rewrite(location), reg.insecure, false));
        Ok(out)
    }
}

/// `prefix` matches `full` (`domain/repo`) at a path boundary; `*.example.com`
/// matches any subdomain of example.com.
fn prefix_matches(prefix: &str, domain: &str, full: &str) -> bool {
    if let Some(suffix) = prefix.strip_prefix("*.") {
        let host = domain.split(':').next().unwrap_or(domain);
        return host.ends_with(&format!(".{suffix}"));
    }
    full == prefix
        || (full.starts_with(prefix)
            && (prefix.ends_with('/') || full.as_bytes().get(prefix.len()) == Some(&b'/')))
}

fn split(full: &str, insecure: bool, mirror: bool) -> Endpoint {
    let (host, repository) = full.split_once('/').unwrap_or((full, ""));
    Endpoint {
        host: host.to_string(),
        repository: repository.trim_matches('/').to_string(),
        insecure,
        mirror,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_then_location_longest_prefix() {
        let conf = RegistriesConf::parse(
            r#"
unqualified-search-registries = ["docker.io"]

[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "127.0.0.1:5000/hub"
insecure = true

[[registry]]
prefix = "docker.io/library/special"
location = "special.example/x"

[[registry]]
location = "insecure.example:8443"
insecure = true

[[registry]]
prefix = "*.blocked.example"
blocked = true
"#,
        )
        .unwrap();
        let e = conf.endpoints("docker.io", "library/busybox").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].display(), "127.0.0.1:5000/hub/library/busybox");
        assert!(e[0].insecure && e[0].mirror);
        assert_eq!(e[1].display(), "docker.io/library/busybox");
        let e = conf
            .endpoints("docker.io", "library/special/thing")
            .unwrap();
        assert_eq!(e[0].display(), "special.example/x/thing");
        // A prefix must end at a path boundary.
        let e = conf.endpoints("docker.io", "library/specialist").unwrap();
        assert_eq!(e.len(), 2);
        let e = conf.endpoints("insecure.example:8443", "a/b").unwrap();
        assert!(e[0].insecure);
        let e = conf.endpoints("quay.io", "a/b").unwrap();
        assert_eq!(e, vec![split("quay.io/a/b", false, false)]);
        assert!(conf.endpoints("r.blocked.example", "a").is_err());
    }
}
