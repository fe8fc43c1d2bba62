//! Image names, normalised as podman does: `busybox` ↦
//! `docker.io/library/busybox:latest`.

use std::fmt;

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host, with port if any: `docker.io`, `localhost:5000`.
    pub domain: String,
    /// Path within the registry: `library/busybox`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:…` when pinned by digest.
    pub digest: Option<String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid image name {name:?}: {why}")]
pub struct ReferenceError {
    pub name: String,
    pub why: &'static str,
}

impl Reference {
    pub fn parse(name: &str) -> Result<Reference, ReferenceError> {
        let err = |why| ReferenceError {
            name: name.to_string(),
            why,
        };
        if name.is_empty() {
            return Err(err("the name is empty"));
        }
        let (rest, digest) = match name.split_once('@') {
            Some((r, d)) => {
                let hex = d
                    .strip_prefix("sha256:")
                    .ok_or_else(|| err("only sha256 digests are supported"))?;
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(err("a sha256 digest has 64 hex digits"));
                }
                (r, Some(d.to_ascii_lowercase()))
            }
            None => (name, None),
        };
        // A ':' after the last '/' starts the tag; one before it is a port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match rest[last_slash..].find(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !ok {
                return Err(err("a tag is up to 128 letters, digits, '_', '.' or '-'"));
            }
        }
        let (domain, repository) = match path.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ if path.contains('/') => ("docker.io".to_string(), path.to_string()),
            _ => ("docker.io".to_string(), format!("library/{path}")),
        };
        let (host, port) = match domain.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain.as_str(), None),
        };
        let host_ok = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !host_ok || !port_ok {
            return Err(err("the registry must be HOST or HOST:PORT"));
        }
        let domain = if domain == "index.docker.io" {
            "docker.io".to_string()
        } else {
            domain
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.as_bytes()[0].is_ascii_alphanumeric()
                && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
        };
        if !repository.split('/').all(component_ok) {
            return Err(err(
                "repository components are lowercase letters, digits and separators ('.', '_', '-')",
            ));
        }
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t.map(str::to_string),
        };
        Ok(Reference {
            domain,
            repository,
            tag,
            digest,
        })
    }

    /// `docker.io/library/busybox`, without tag or digest.
    pub fn repo(&self) -> String {
        format!("{}/{}", self.domain, self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// The normalised form of `name`, as stored in images.json.
pub fn normalize(name: &str) -> Result<String, ReferenceError> {
    Reference::parse(name).map(|r| r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_normalisation() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("user/app", "docker.io/user/app:latest"),
            ("quay.io/a/b:v1", "quay.io/a/b:v1"),
            ("localhost/test", "localhost/test:latest"),
            ("localhost:5000/x/y:2", "localhost:5000/x/y:2"),
            (
                "index.docker.io/library/nginx",
                "docker.io/library/nginx:latest",
            ),
            ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).unwrap(), want, "{input}");
        }
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            normalize(&format!("busybox@{d}")).unwrap(),
            format!("docker.io/library/busybox@{d}")
        );
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", "UPPER", "a:", "x@sha256:12", "a//b", "a:b:c/d", "-a"] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }
}
