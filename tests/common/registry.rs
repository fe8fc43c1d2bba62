//! A real registry (Debian's `docker-registry`, the CNCF distribution
//! server) on 127.0.0.1 with a free port and a temp storage dir, killed on
//! drop; optionally with TLS (a test CA made by the openssl CLI) and htpasswd
//! basic auth. Images are pushed with a small client of our own (ureq, the
//! distribution spec's monolithic upload: POST, then PUT with `?digest=`), so
//! the tests need no skopeo and can push whatever they like: indexes, odd
//! media types, blobs that are then damaged on disk.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;
use super::oci::{self, BuiltLayer};

pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub dir: PathBuf,
    /// The CA that signed the server certificate (TLS registries only).
    pub ca: Option<PathBuf>,
    pub user: Option<(String, String)>,
    agent: ureq::Agent,
}

fn sh(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 and localhost, in `dir`.
fn make_certs(dir: &Path) -> PathBuf {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    sh(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509"])
        .args(ec)
        .args(["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"])
        .args(["-subj", "/CN=minipod test CA"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]));
    sh(Command::new("openssl")
        .current_dir(dir)
        .arg("req")
        .args(ec)
        .args(["-keyout", "server.key", "-out", "server.csr"])
        .args(["-subj", "/CN=127.0.0.1"]));
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    sh(Command::new("openssl")
        .current_dir(dir)
        .args(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt"])
        .args(["-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt"])
        .args(["-days", "2", "-extfile", "ext.cnf"]));
    dir.join("ca.crt")
}

impl Registry {
    /// Plain HTTP, anonymous.
    pub fn start() -> Registry {
        Self::launch(false, None)
    }

    /// HTTPS with a test CA, and htpasswd basic auth for `user`.
    pub fn start_tls_auth(user: &str, password: &str) -> Registry {
        Self::launch(true, Some((user.to_string(), password.to_string())))
    }

    fn launch(tls: bool, user: Option<(String, String)>) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("minipod-registry-")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        super::set_mode(&dir, 0o755);
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: {addr}\n",
            dir.join("storage").display()
        );
        let ca = tls.then(|| {
            let ca = make_certs(&dir);
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.join("server.crt").display(),
                dir.join("server.key").display()
            ));
            ca
        });
        if let Some((u, p)) = &user {
            sh(Command::new("htpasswd").args([
                "-Bbc",
                dir.join("htpasswd").to_str().unwrap(),
                u,
                p,
            ]));
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: minipod-test\n    path: {}\n",
                dir.join("htpasswd").display()
            ));
        }
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("registry.log")).unwrap())
            .spawn()
            .expect("docker-registry is installed (scripts/setup-host)");
        let mut tls_config = ureq::tls::TlsConfig::builder();
        if let Some(ca) = &ca {
            let pem = std::fs::read(ca).unwrap();
            let cert = ureq::tls::Certificate::from_pem(&pem).unwrap();
            tls_config = tls_config.root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]));
        }
        let agent = ureq::Agent::config_builder()
            .tls_config(tls_config.build())
            .http_status_as_error(false)
            .build()
            .new_agent();
        let reg = Registry {
            child,
            addr,
            dir,
            ca,
            user,
            agent,
        };
        reg.wait_ready();
        reg
    }

    fn base(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = self.agent.get(format!("{}/v2/", self.base())).call()
                && matches!(r.status().as_u16(), 200 | 401)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the registry did not start: {}",
                std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn auth(&self) -> Option<String> {
        use base64::Engine as _;
        self.user.as_ref().map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        })
    }

    /// Uploads a blob (POST an upload, PUT it whole with its digest).
    pub fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = oci::sha256(bytes);
        let mut req = self
            .agent
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.base()));
        if let Some(a) = self.auth() {
            req = req.header("Authorization", &a);
        }
        let resp = req.send_empty().unwrap();
        assert_eq!(resp.status().as_u16(), 202, "starting an upload");
        let location = resp.headers()["location"].to_str().unwrap().to_string();
        let url = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.base())
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let mut req = self
            .agent
            .put(format!("{url}{sep}digest={digest}"))
            .header("Content-Type", "application/octet-stream");
        if let Some(a) = self.auth() {
            req = req.header("Authorization", &a);
        }
        let resp = req.send(bytes).unwrap();
        assert_eq!(resp.status().as_u16(), 201, "uploading blob {digest}");
        digest
    }

    /// Puts a manifest (or index) under `reference` (a tag or its digest).
    pub fn push_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) {
        let mut req = self
            .agent
            .put(format!("{}/v2/{repo}/manifests/{reference}", self.base()))
            .header("Content-Type", media_type);
        if let Some(a) = self.auth() {
            req = req.header("Authorization", &a);
        }
        let mut resp = req.send(bytes).unwrap();
        let status = resp.status().as_u16();
        assert_eq!(
            status,
            201,
            "pushing manifest {repo}:{reference}: {}",
            resp.body_mut().read_to_string().unwrap_or_default()
        );
    }

    /// Pushes an image (config + layers) and tags it; returns the manifest's
    /// digest and bytes.
    pub fn push_image(
        &self,
        repo: &str,
        tag: &str,
        layers: &[BuiltLayer],
        config: &[u8],
    ) -> (String, Vec<u8>) {
        for l in layers {
            self.push_blob(repo, &l.blob);
        }
        let config_digest = self.push_blob(repo, config);
        let manifest = super::oci::manifest_json(&config_digest, config.len(), layers);
        self.push_manifest(
            repo,
            tag,
            "application/vnd.oci.image.manifest.v1+json",
            &manifest,
        );
        (oci::sha256(&manifest), manifest)
    }

    /// Where the registry keeps a blob on disk (the filesystem driver).
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("MINIPOD_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
