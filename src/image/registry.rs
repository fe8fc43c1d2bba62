//! Pulls from registries speaking the OCI distribution API (v2): manifests
//! (OCI and Docker schema 2, indexes and manifest lists resolved to this
//! machine's platform), blobs, anonymous, bearer-token and basic auth.
//!
//! A pull is a `SourceImage` whose files are HTTP GETs: `blobs/sha256/<hex>`
//! streams the blob from the registry straight into the store's one-pass
//! verify + decompress + unpack, several layers at once, so nothing is staged
//! on disk and a layer the store already has is never requested. A stream cut
//! in the middle resumes where it stopped (HTTP `Range`); connection resets,
//! 429 and 5xx answers are retried with backoff.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use oci_spec::image::{ImageIndex, ImageManifest};
use serde::Deserialize;

use super::Store;
use super::auth::{self, Credentials};
use super::digest::{parse_sha256, sha256_of};
use super::reference::Reference;
use super::registries_conf::{Endpoint, RegistriesConf};
use super::source::{Files, SourceImage, SourceLayer, for_this_machine, host_arch};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json;q=0.9, \
     application/vnd.docker.distribution.manifest.v2+json;q=0.9";

/// Manifests and configs are small; this bounds what a bogus answer costs.
const MAX_DOCUMENT: u64 = 8 << 20;
/// Attempts for one request (connection resets, 429, 5xx) and for resuming
/// a blob stream that broke off.
const ATTEMPTS: u32 = 5;

/// How `minipod pull` (and `run`) reach registries.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// `--tls-verify=false`: no certificate checks, and plain HTTP allowed.
    pub tls_verify_off: bool,
    /// `--cert-dir`: CA certificates (`*.crt`) and client certificates
    /// (`*.cert` + `*.key`), instead of the per-registry `certs.d` dirs.
    pub cert_dir: Option<PathBuf>,
    /// `--authfile`: replaces podman's auth.json locations.
    pub authfile: Option<PathBuf>,
    /// Progress bars (only drawn when stderr is a terminal).
    pub progress: bool,
}

/// Pulls images; one per command, shared by the threads pulling a pod's images.
pub struct Puller {
    opts: PullOptions,
    conf: RegistriesConf,
    system_roots: Vec<ureq::tls::Certificate<'static>>,
    auth_files: Vec<PathBuf>,
    progress: Option<MultiProgress>,
}

/// What a pull did.
pub struct Pulled {
    pub name: String,
    /// The digest of the image's (platform) manifest.
    pub manifest_digest: String,
    pub up_to_date: bool,
}

impl Puller {
    pub fn new(opts: PullOptions) -> Result<Puller> {
        let conf = RegistriesConf::load()?;
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!("reading the system's CA certificates: {e}");
        }
        let system_roots = native
            .certs
            .iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        let progress = (opts.progress && std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Ok(Puller {
            auth_files: auth::auth_files(opts.authfile.as_deref()),
            opts,
            conf,
            system_roots,
            progress,
        })
    }

    /// Pulls `reference` into the store, trying a pod's credentials (its
    /// imagePullSecrets) before the auth files.
    pub fn pull(
        &self,
        store: &Store,
        reference: &Reference,
        pod_creds: &auth::PodCredentials,
    ) -> Result<Pulled> {
        let name = reference.to_string();
        let endpoints = self
            .conf
            .endpoints(&reference.domain, &reference.repository)
            .with_context(|| format!("image {name}"))?;
        // Mirrors first, then the registry itself: each failure moves on to
        // the next, and the last one's error is the answer.
        for (i, endpoint) in endpoints.iter().enumerate() {
            match self.pull_from(store, reference, &name, endpoint, pod_creds) {
                Ok(p) => return Ok(p),
                Err(e) if i + 1 < endpoints.len() => {
                    tracing::warn!(
                        "image {name}: {} failed, trying {}: {e:#}",
                        endpoint.display(),
                        endpoints[i + 1].display()
                    );
                }
                Err(e) => return Err(e),
            }
        }
        bail!("image {name}: no registry to pull from")
    }

    fn pull_from(
        &self,
        store: &Store,
        reference: &Reference,
        name: &str,
        endpoint: &Endpoint,
        pod_creds: &auth::PodCredentials,
    ) -> Result<Pulled> {
        let client = Arc::new(Client::connect(self, endpoint, name, pod_creds)?);
        let want = reference
            .digest
            .clone()
            .or_else(|| reference.tag.clone())
            .unwrap_or_else(|| "latest".into());
        let (manifest_bytes, manifest_digest) = client.resolve_manifest(&want)?;
        let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| anyhow!("image {name}: the manifest is not valid: {e}"))?;
        if let Some((_, rec)) = store.lookup(name)?
            && rec.manifest == manifest_digest
            && rec.layers.iter().all(|d| store.has_layer(d))
        {
            return Ok(Pulled {
                name: name.to_string(),
                manifest_digest,
                up_to_date: true,
            });
        }
        let config_desc = manifest.config();
        let config = client.get_small_blob(config_desc.digest().as_ref(), config_desc.size())?;
        let mut sizes = HashMap::new();
        let layers = manifest
            .layers()
            .iter()
            .map(|l| {
                let digest = l.digest().to_string();
                let hex = parse_sha256(&digest).ok_or_else(|| {
                    anyhow!("image {name}: layer digest {digest} is not sha256, which minipod cannot verify")
                })?;
                sizes.insert(hex.to_string(), l.size());
                Ok(SourceLayer {
                    path: format!("blobs/sha256/{hex}"),
                    media_type: Some(l.media_type().to_string()),
                    digest: Some(digest),
                    size: Some(l.size()),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let files = RegistryFiles {
            client: client.clone(),
            sizes,
            progress: self.progress.clone(),
        };
        let image = SourceImage {
            name_hint: Some(name.to_string()),
            manifest: Some(manifest_bytes),
            config,
            layers,
            files: Arc::new(files),
            origin: format!("registry {}", endpoint.display()),
        };
        store.add(name, &image)?;
        Ok(Pulled {
            name: name.to_string(),
            manifest_digest,
            up_to_date: false,
        })
    }

    fn tls_config(&self, host: &str, verify: bool) -> Result<ureq::tls::TlsConfig> {
        let mut roots = self.system_roots.clone();
        let mut client_cert = None;
        let dirs: Vec<PathBuf> = match &self.opts.cert_dir {
            Some(d) => vec![d.clone()],
            None => {
                let mut v = Vec::new();
                if let Some(home) = std::env::var_os("HOME") {
                    v.push(
                        Path::new(&home)
                            .join(".config/containers/certs.d")
                            .join(host),
                    );
                }
                v.push(Path::new("/etc/containers/certs.d").join(host));
                v.push(Path::new("/etc/docker/certs.d").join(host));
                v
            }
        };
        for dir in &dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                if self.opts.cert_dir.is_some() {
                    bail!("--cert-dir {}: cannot read that directory", dir.display());
                }
                continue;
            };
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for p in paths {
                let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
                if ext == "crt" {
                    let pem =
                        std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
                    let mut found = false;
                    for item in ureq::tls::parse_pem(&pem) {
                        if let Ok(ureq::tls::PemItem::Certificate(c)) = item {
                            roots.push(c);
                            found = true;
                        }
                    }
                    if !found {
                        bail!("{}: no PEM certificate in it", p.display());
                    }
                } else if ext == "cert" {
                    let key = p.with_extension("key");
                    let pem =
                        std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
                    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                        .filter_map(|i| match i {
                            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                            _ => None,
                        })
                        .collect();
                    let key_pem = std::fs::read(&key).with_context(|| {
                        format!("{}: its key {} is missing", p.display(), key.display())
                    })?;
                    let key = ureq::tls::PrivateKey::from_pem(&key_pem)
                        .map_err(|e| anyhow!("{}: {e}", key.display()))?;
                    client_cert = Some(ureq::tls::ClientCert::new_with_certs(&certs, key));
                }
            }
        }
        Ok(ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
            .client_cert(client_cert)
            .disable_verification(!verify)
            .build())
    }
}

/// The WWW-Authenticate challenge of a registry.
#[derive(Debug, Clone)]
enum Challenge {
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// What a 401 answer's WWW-Authenticate header asks for.
fn challenge_of(resp: &ureq::http::Response<ureq::Body>) -> Challenge {
    resp.headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(parse_challenge)
        .unwrap_or(Challenge::None)
}

fn parse_challenge(header: &str) -> Challenge {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let mut params = HashMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let Some((key, after)) = s.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.insert(key, value.to_string());
        s = remainder.trim_start_matches([',', ' ']);
    }
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Challenge::Basic,
        "bearer" => match params.remove("realm") {
            Some(realm) => Challenge::Bearer {
                realm,
                service: params.remove("service"),
            },
            None => Challenge::None,
        },
        _ => Challenge::None,
    }
}

/// One registry endpoint, after the first contact (`GET /v2/`).
struct Client {
    agent: ureq::Agent,
    /// `https://host:port` (or `http://` for loopback and insecure ones).
    base: String,
    /// As the user knows it (`docker.io`, `127.0.0.1:5000`).
    host: String,
    repository: String,
    image: String,
    creds: Option<Credentials>,
    auth_files: Vec<PathBuf>,
    challenge: Challenge,
    /// The Authorization header in use.
    authorization: Mutex<Option<String>>,
}

/// A failed request, before it is turned into a message for a person.
#[derive(Debug)]
enum Failure {
    Status {
        status: u16,
        code: Option<String>,
        message: String,
    },
    Transport(ureq::Error),
}

impl Failure {
    fn transient(&self) -> bool {
        match self {
            Failure::Status { status, .. } => *status == 429 || *status >= 500,
            Failure::Transport(e) => transient_transport(e),
        }
    }
}

fn transient_transport(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Io(io) => transient_io(io),
        ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed => true,
        ureq::Error::Protocol(_) => true,
        _ => false,
    }
}

fn transient_io(io: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        io.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | TimedOut | Interrupted
    )
}

fn is_tls_error(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => true,
        ureq::Error::Io(io) => io.get_ref().is_some_and(|inner| {
            format!("{inner:?}").contains("Tls") || inner.to_string().contains("certificate")
        }),
        _ => false,
    }
}

fn is_loopback(host: &str) -> bool {
    let h = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        }),
    };
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Client {
    fn connect(
        puller: &Puller,
        endpoint: &Endpoint,
        image: &str,
        pod_creds: &auth::PodCredentials,
    ) -> Result<Client> {
        let host = endpoint.host.clone();
        // Docker Hub's API lives on its own host.
        let api_host = if host == "docker.io" {
            "registry-1.docker.io".to_string()
        } else {
            host.clone()
        };
        let insecure = puller.opts.tls_verify_off || endpoint.insecure;
        let allow_http = insecure || is_loopback(&host);
        let agent = ureq::Agent::config_builder()
            .tls_config(puller.tls_config(&host, !insecure)?)
            .http_status_as_error(false)
            .accept_encoding("identity")
            .user_agent(concat!("minipod/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .max_idle_connections_per_host(16)
            .build()
            .new_agent();
        let creds = match pod_creds.lookup(&endpoint.display()) {
            Some(c) => Some(c),
            None => auth::lookup(&puller.auth_files, &endpoint.display())?,
        };
        let mut client = Client {
            agent,
            base: format!("https://{api_host}"),
            host: host.clone(),
            repository: endpoint.repository.clone(),
            image: image.to_string(),
            creds,
            auth_files: puller.auth_files.clone(),
            challenge: Challenge::None,
            authorization: Mutex::new(None),
        };
        let challenge = match client.ping() {
            Ok(c) => c,
            Err(https_err) if allow_http => {
                let https = std::mem::replace(&mut client.base, format!("http://{api_host}"));
                match client.ping() {
                    Ok(c) => {
                        tracing::debug!("{host}: no HTTPS ({https_err:?}); using plain HTTP");
                        c
                    }
                    Err(_) => {
                        client.base = https;
                        return Err(client.explain(https_err, "contacting the registry"));
                    }
                }
            }
            Err(e) => return Err(client.explain(e, "contacting the registry")),
        };
        client.challenge = challenge;
        client.authenticate()?;
        Ok(client)
    }

    /// `GET /v2/`: is it a registry, and how does it want to be asked.
    fn ping(&self) -> Result<Challenge, Failure> {
        let url = format!("{}/v2/", self.base);
        let resp = self.agent.get(&url).call().map_err(Failure::Transport)?;
        let status = resp.status().as_u16();
        let challenge = challenge_of(&resp);
        match status {
            200..=299 => Ok(Challenge::None),
            401 => Ok(challenge),
            _ => Err(status_failure(resp)),
        }
    }

    /// Sets the Authorization header the challenge asks for.
    fn authenticate(&self) -> Result<()> {
        let header = self.authorization_for(&self.challenge)?;
        *self.authorization.lock().unwrap_or_else(|e| e.into_inner()) = header;
        Ok(())
    }

    /// The Authorization header that answers a challenge, if any.
    fn authorization_for(&self, challenge: &Challenge) -> Result<Option<String>> {
        Ok(match challenge {
            Challenge::None => None,
            Challenge::Basic => self.creds.as_ref().map(basic_header),
            Challenge::Bearer { realm, service } => {
                Some(self.fetch_token(realm, service.as_deref())?)
            }
        })
    }

    fn fetch_token(&self, realm: &str, service: Option<&str>) -> Result<String> {
        let scope = format!("repository:{}:pull", self.repository);
        let mut resp = retry(|| {
            let mut req = self.agent.get(realm).query("scope", &scope);
            if let Some(s) = service {
                req = req.query("service", s);
            }
            if let Some(c) = &self.creds {
                req = req.header("Authorization", &basic_header(c));
            }
            call(req)
        })
        .map_err(|e| self.explain(e, "getting a token"))?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(self.auth_refused());
        }
        if status != 200 {
            return Err(self.explain(status_failure(resp), "getting a token"));
        }
        #[derive(Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = resp
            .body_mut()
            .with_config()
            .limit(MAX_DOCUMENT)
            .read_to_vec()
            .map_err(anyhow::Error::from)
            .and_then(|b| serde_json::from_slice(&b).map_err(anyhow::Error::from))
            .map_err(|e| {
                anyhow!(
                    "image {}: the token from {realm} is not valid: {e}",
                    self.image
                )
            })?;
        let token = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| anyhow!("image {}: {realm} answered without a token", self.image))?;
        Ok(format!("Bearer {token}"))
    }

    fn auth_refused(&self) -> anyhow::Error {
        match &self.creds {
            Some(c) => anyhow!(
                "image {}: registry {} refused the credentials of user {:?} (from {}); \
                 check them, or log in again with `podman login {}`",
                self.image,
                self.host,
                c.username,
                c.origin.display(),
                self.host
            ),
            None => anyhow!(
                "image {}: registry {} requires authentication, and no credentials for it were found \
                 (looked in {}); log in with `podman login {}` (minipod reads the same auth.json) \
                 or name a file with --authfile",
                self.image,
                self.host,
                self.auth_files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                self.host
            ),
        }
    }

    /// Turns a failure into a message naming the image and what to do.
    fn explain(&self, failure: Failure, doing: &str) -> anyhow::Error {
        let image = &self.image;
        let host = &self.host;
        match failure {
            Failure::Transport(e) if is_tls_error(&e) => anyhow!(
                "image {image}: TLS with registry {host} failed ({e}); if the registry's certificate \
                 comes from a private CA, put the CA certificate (ca.crt) in a directory and pass \
                 --cert-dir DIR (or ~/.config/containers/certs.d/{host}/), or, for a registry you \
                 trust, use --tls-verify=false"
            ),
            Failure::Transport(e) => anyhow!(
                "image {image}: cannot reach registry {host} ({doing}: {e}); check the image name \
                 and that the registry is up and reachable from this machine"
            ),
            Failure::Status { status: 401, .. } => self.auth_refused(),
            Failure::Status {
                status: 403,
                message,
                ..
            } => anyhow!(
                "image {image}: registry {host} denied access ({message}); check that your \
                 account may pull {}/{}",
                host,
                self.repository
            ),
            Failure::Status {
                status,
                code,
                message,
            } => anyhow!(
                "image {image}: registry {host} answered {status}{} while {doing}: {message}",
                code.map(|c| format!(" ({c})")).unwrap_or_default()
            ),
        }
    }

    /// A GET with auth, retries and (for 401 with a bearer challenge) one
    /// token refresh. Any status is returned; transport errors are not.
    fn get(
        &self,
        path: &str,
        accept: Option<&str>,
        range_from: u64,
    ) -> Result<ureq::http::Response<ureq::Body>, Failure> {
        let url = format!("{}{path}", self.base);
        let mut refreshed = false;
        loop {
            let resp = retry(|| {
                let mut req = self.agent.get(&url);
                if let Some(a) = accept {
                    req = req.header("Accept", a);
                }
                if range_from > 0 {
                    req = req.header("Range", &format!("bytes={range_from}-"));
                }
                if let Some(h) = self
                    .authorization
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
                {
                    req = req.header("Authorization", &h);
                }
                call(req)
            })?;
            if resp.status().as_u16() == 401 && !refreshed {
                refreshed = true;
                // A token that expired mid-pull: answer the new challenge
                // once; anything else is the caller's 401 to explain.
                let header = match self.authorization_for(&challenge_of(&resp)) {
                    Ok(Some(h)) => Some(h),
                    _ => return Ok(resp),
                };
                *self.authorization.lock().unwrap_or_else(|e| e.into_inner()) = header;
                continue;
            }
            return Ok(resp);
        }
    }

    /// The manifest for a tag or digest, resolved to this platform's image
    /// manifest through an index; returns its bytes and digest.
    fn resolve_manifest(&self, reference: &str) -> Result<(Vec<u8>, String)> {
        let (bytes, digest, media_type) = self.get_manifest(reference)?;
        if !is_index(&bytes, &media_type) {
            return Ok((bytes, digest));
        }
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| anyhow!("image {}: the image index is not valid: {e}", self.image))?;
        let arch = host_arch();
        let chosen = index.manifests().iter().find(|d| for_this_machine(d));
        let Some(desc) = chosen else {
            let have: Vec<String> = index
                .manifests()
                .iter()
                .filter_map(|d| d.platform().as_ref())
                .map(|p| format!("{}/{}", p.os(), p.architecture()))
                .collect();
            bail!(
                "image {}: it has no variant for linux/{arch} (it has: {}); pick an image built for this machine",
                self.image,
                if have.is_empty() {
                    "none".into()
                } else {
                    have.join(", ")
                }
            );
        };
        let (bytes, digest, media_type) = self.get_manifest(desc.digest().as_ref())?;
        if is_index(&bytes, &media_type) {
            bail!(
                "image {}: the index entry for linux/{arch} is itself an index; minipod follows one level",
                self.image
            );
        }
        Ok((bytes, digest))
    }

    fn get_manifest(&self, reference: &str) -> Result<(Vec<u8>, String, String)> {
        let path = format!("/v2/{}/manifests/{reference}", self.repository);
        let mut resp = self
            .get(&path, Some(ACCEPT_MANIFESTS), 0)
            .map_err(|e| self.explain(e, "fetching the manifest"))?;
        let status = resp.status().as_u16();
        if status == 404 {
            let f = status_failure(resp);
            let Failure::Status { code, .. } = &f else {
                unreachable!()
            };
            // Registries answer MANIFEST_UNKNOWN for a missing repository
            // too; the tag list tells the two apart.
            let tags = if code.as_deref() == Some("NAME_UNKNOWN") {
                None
            } else {
                self.tags()
            };
            if tags.is_none() {
                bail!(
                    "image {}: registry {} has no repository {:?}; check the image name",
                    self.image,
                    self.host,
                    self.repository
                );
            }
            if reference.starts_with("sha256:") {
                bail!(
                    "image {}: registry {} has no manifest {reference} in {}; check the digest",
                    self.image,
                    self.host,
                    self.repository
                );
            }
            let tags = tags.unwrap_or_default();
            let shown: Vec<&str> = tags.iter().take(10).map(String::as_str).collect();
            bail!(
                "image {}: {}/{} has no tag {reference:?} (it has {}{}); check the tag",
                self.image,
                self.host,
                self.repository,
                if shown.is_empty() {
                    "none".to_string()
                } else {
                    shown.join(", ")
                },
                if tags.len() > shown.len() {
                    ", …"
                } else {
                    ""
                }
            );
        }
        if status != 200 {
            return Err(self.explain(status_failure(resp), "fetching the manifest"));
        }
        let media_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_DOCUMENT)
            .read_to_vec()
            .map_err(|e| self.explain(Failure::Transport(e), "reading the manifest"))?;
        let digest = sha256_of(&bytes);
        let expected = if reference.starts_with("sha256:") {
            Some(reference.to_string())
        } else {
            header_digest.filter(|d| d.starts_with("sha256:"))
        };
        if let Some(want) = expected
            && want != digest
        {
            bail!(
                "image {}: the manifest from {} does not match its digest {want} (it hashes to {digest}); \
                 the registry's copy is damaged or was changed in transit: pull again, or ask the \
                 registry's owner to push the image again",
                self.image,
                self.host
            );
        }
        #[derive(Deserialize)]
        struct Version {
            #[serde(rename = "schemaVersion")]
            schema_version: Option<u32>,
        }
        if let Ok(Version {
            schema_version: Some(1),
        }) = serde_json::from_slice(&bytes)
        {
            bail!(
                "image {}: the registry serves only a Docker schema 1 manifest, which is deprecated \
                 and not supported; push the image again with a current tool",
                self.image
            );
        }
        Ok((bytes, digest, media_type))
    }

    /// The repository's tags, or `None` when the repository is unknown (or
    /// the list cannot be had).
    fn tags(&self) -> Option<Vec<String>> {
        let mut resp = self
            .get(&format!("/v2/{}/tags/list", self.repository), None, 0)
            .ok()?;
        if resp.status().as_u16() != 200 {
            return None;
        }
        #[derive(Deserialize)]
        struct Tags {
            tags: Option<Vec<String>>,
        }
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_DOCUMENT)
            .read_to_vec()
            .ok()?;
        let t: Tags = serde_json::from_slice(&bytes).ok()?;
        Some(t.tags.unwrap_or_default())
    }

    /// A config blob, read whole and checked.
    fn get_small_blob(&self, digest: &str, size: u64) -> Result<Vec<u8>> {
        if parse_sha256(digest).is_none() {
            bail!("image {}: config digest {digest} is not sha256", self.image);
        }
        let path = format!("/v2/{}/blobs/{digest}", self.repository);
        let mut resp = self
            .get(&path, None, 0)
            .map_err(|e| self.explain(e, "fetching the image config"))?;
        if resp.status().as_u16() == 404 {
            bail!(
                "image {}: registry {} is missing the image config {digest}; the image in the \
                 registry is incomplete: push it again",
                self.image,
                self.host
            );
        }
        if resp.status().as_u16() != 200 {
            return Err(self.explain(status_failure(resp), "fetching the image config"));
        }
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_DOCUMENT.min(size.saturating_add(1)))
            .read_to_vec()
            .map_err(|e| self.explain(Failure::Transport(e), "reading the image config"))?;
        let actual = sha256_of(&bytes);
        if actual != digest || bytes.len() as u64 != size {
            bail!(
                "image {}: the config blob {digest} from {} does not match its digest (it hashes \
                 to {actual}, {} bytes, {size} expected); pull again, or push the image again",
                self.image,
                self.host,
                bytes.len()
            );
        }
        Ok(bytes)
    }

    /// A blob stream from `offset` on.
    fn open_blob(&self, digest: &str, offset: u64) -> std::io::Result<Box<dyn Read + Send>> {
        let path = format!("/v2/{}/blobs/{digest}", self.repository);
        let to_io = |e: anyhow::Error| std::io::Error::other(format!("{e:#}"));
        let resp = self
            .get(&path, None, offset)
            .map_err(|e| to_io(self.explain(e, &format!("fetching blob {digest}"))))?;
        let status = resp.status().as_u16();
        match status {
            200 | 206 => {}
            404 => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "registry {} does not have it; the image in the registry is incomplete: push it again",
                        self.host
                    ),
                ));
            }
            _ => {
                return Err(to_io(
                    self.explain(status_failure(resp), &format!("fetching blob {digest}")),
                ));
            }
        }
        let mut reader: Box<dyn Read + Send> =
            Box::new(resp.into_body().into_with_config().limit(u64::MAX).reader());
        if offset > 0 && status == 200 {
            // The server ignored the Range: skip what was read already.
            std::io::copy(&mut (&mut reader).take(offset), &mut std::io::sink())?;
        }
        Ok(reader)
    }
}

fn is_index(bytes: &[u8], media_type: &str) -> bool {
    let mt = media_type.split(';').next().unwrap_or("").trim();
    if mt == OCI_INDEX || mt == DOCKER_LIST {
        return true;
    }
    if mt == OCI_MANIFEST || mt == DOCKER_MANIFEST {
        return false;
    }
    #[derive(Deserialize)]
    struct Probe {
        manifests: Option<serde_json::Value>,
    }
    serde_json::from_slice::<Probe>(bytes).is_ok_and(|p| p.manifests.is_some())
}

fn basic_header(c: &Credentials) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password))
    )
}

/// Sends a request; "too many requests" and server errors are failures
/// (`retry` tries those again), any other answer is the caller's.
fn call(
    req: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
) -> Result<ureq::http::Response<ureq::Body>, Failure> {
    let r = req.call().map_err(Failure::Transport)?;
    if r.status().as_u16() == 429 || r.status().is_server_error() {
        return Err(status_failure(r));
    }
    Ok(r)
}

fn status_failure(mut resp: ureq::http::Response<ureq::Body>) -> Failure {
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_string()
        .unwrap_or_default();
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(Deserialize)]
    struct ErrorItem {
        code: Option<String>,
        message: Option<String>,
    }
    let parsed: Option<Errors> = serde_json::from_str(&body).ok();
    let first = parsed.and_then(|e| e.errors.into_iter().next());
    let code = first.as_ref().and_then(|e| e.code.clone());
    let message = first.and_then(|e| e.message).unwrap_or_else(|| {
        let t = body.trim();
        if t.is_empty() {
            resp.status().canonical_reason().unwrap_or("").to_string()
        } else {
            t.chars().take(200).collect()
        }
    });
    Failure::Status {
        status,
        code,
        message,
    }
}

/// Runs `op` until it succeeds, fails for good, or the attempts are used up;
/// waits 0.25 s, 0.5 s, 1 s, 2 s between attempts.
fn retry<T>(mut op: impl FnMut() -> Result<T, Failure>) -> Result<T, Failure> {
    let mut attempt = 0;
    loop {
        match op() {
            Err(e) if e.transient() && attempt + 1 < ATTEMPTS => {
                tracing::debug!("retrying after {e:?}");
                std::thread::sleep(backoff(attempt));
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250 << attempt.min(6))
}

/// The `Files` of a registry: `blobs/sha256/<hex>` are streamed over HTTP.
struct RegistryFiles {
    client: Arc<Client>,
    /// Declared sizes: a stream is never read past its blob's size.
    sizes: HashMap<String, u64>,
    progress: Option<MultiProgress>,
}

impl Files for RegistryFiles {
    fn open(&self, path: &str) -> std::io::Result<Box<dyn Read + Send>> {
        let hex = path
            .strip_prefix("blobs/sha256/")
            .filter(|h| self.sizes.contains_key(*h))
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "not a layer of this image")
            })?;
        let size = self.sizes[hex];
        let digest = format!("sha256:{hex}");
        let client = self.client.clone();
        let d = digest.clone();
        let reader =
            ResumingReader::new(size, Box::new(move |offset| client.open_blob(&d, offset)))?;
        let bar = self.progress.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(size));
            bar.set_style(
                ProgressStyle::with_template(
                    "Copying blob {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(hex[..12].to_string());
            bar
        });
        Ok(Box::new(ProgressReader { inner: reader, bar }))
    }

    /// Blobs are not asked for in advance: a missing one fails its GET, and
    /// the store leaves nothing behind.
    fn exists(&self, path: &str) -> bool {
        path.strip_prefix("blobs/sha256/")
            .is_some_and(|h| self.sizes.contains_key(h))
    }

    fn parallelism(&self) -> Option<usize> {
        // Network latency, not CPU, bounds a remote pull.
        Some(6)
    }
}

type Opener = Box<dyn Fn(u64) -> std::io::Result<Box<dyn Read + Send>> + Send + Sync>;

/// Reads a blob of known size, reopening it from where it stopped when the
/// stream breaks off (a reset, or an early end).
struct ResumingReader {
    open: Opener,
    inner: Option<Box<dyn Read + Send>>,
    offset: u64,
    size: u64,
    failures: u32,
}

impl ResumingReader {
    fn new(size: u64, open: Opener) -> std::io::Result<ResumingReader> {
        let inner = open(0)?;
        Ok(ResumingReader {
            open,
            inner: Some(inner),
            offset: 0,
            size,
            failures: 0,
        })
    }
}

impl Read for ResumingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.size - self.offset;
        if left == 0 || buf.is_empty() {
            // Never past the declared size: a longer blob is cut here and its
            // digest does not match.
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        loop {
            let inner = match &mut self.inner {
                Some(r) => r,
                None => {
                    let r = (self.open)(self.offset)?;
                    self.inner.insert(r)
                }
            };
            let err = match inner.read(&mut buf[..want]) {
                Ok(0) => std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "the stream ended after {} of {} bytes",
                        self.offset, self.size
                    ),
                ),
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) => e,
            };
            let transient = transient_io(&err)
                || err
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<ureq::Error>())
                    .is_some_and(transient_transport);
            if !transient || self.failures + 1 >= ATTEMPTS {
                return Err(err);
            }
            tracing::debug!(
                "blob stream broke at {} bytes ({err}); resuming",
                self.offset
            );
            self.inner = None;
            std::thread::sleep(backoff(self.failures));
            self.failures += 1;
        }
    }
}

struct ProgressReader {
    inner: ResumingReader,
    bar: Option<ProgressBar>,
}

impl Read for ProgressReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(b) = &self.bar {
            b.inc(n as u64);
            if n == 0 || b.position() >= b.length().unwrap_or(u64::MAX) {
                b.finish();
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        match parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        ) {
            Challenge::Bearer { realm, service } => {
                assert_eq!(realm, "https://auth.docker.io/token");
                assert_eq!(service.as_deref(), Some("registry.docker.io"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Challenge::Basic
        ));
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1:5000",
            "localhost",
            "localhost:80",
            "[::1]:5000",
            "127.1.2.3",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["10.0.0.1:5000", "docker.io", "example.com:443"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    /// A stream that breaks off (a reset, then an early end) is resumed at
    /// the right offset and yields every byte once.
    #[test]
    fn resumes_broken_streams() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let opens = Arc::new(Mutex::new(Vec::new()));
        let (d, o) = (data.clone(), opens.clone());
        let open: Opener = Box::new(move |offset| {
            let mut log = o.lock().unwrap();
            log.push(offset);
            let rest = d[offset as usize..].to_vec();
            let r: Box<dyn Read + Send> = match log.len() {
                // First: 1000 bytes, then a reset.
                1 => Box::new(std::io::Cursor::new(rest[..1000].to_vec()).chain(Failing)),
                // Second: 5000 bytes, then the connection closes early.
                2 => Box::new(std::io::Cursor::new(rest[..5000].to_vec())),
                _ => Box::new(std::io::Cursor::new(rest)),
            };
            Ok(r)
        });
        let mut r = ResumingReader::new(data.len() as u64, open).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(*opens.lock().unwrap(), vec![0, 1000, 6000]);
    }

    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "reset",
            ))
        }
    }
}
