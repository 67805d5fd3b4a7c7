//! Test support: a real registry (Debian's `docker-registry`, distribution v2) on loopback, and
//! fixture images built offline with `umoci` and pushed with `skopeo`.
//!
//! Every method blocks (it runs processes, and its HTTP requests on a thread of its own), so it
//! can be called from sync tests and from `#[tokio::test]` alike. Failures panic with a message
//! that says what to do: this is test code.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::future::Future;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::classify::ACCEPT;
use crate::{Access, Auth, Platform};

/// What installs the tools this module runs.
pub const INSTALL: &str = "apt-get install -y docker-registry umoci skopeo apache2-utils";

/// How the test registry is set up.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// (user, password) for an htpasswd (bcrypt) file: basic auth required.
    pub htpasswd: Option<(String, String)>,
    /// Serve HTTPS with a leaf for 127.0.0.1/localhost signed by a CA made for this registry.
    pub tls: bool,
}

/// Which package database a fixture image carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Distro {
    /// `etc/alpine-release`, `etc/os-release` 3.19, `lib/apk/db/installed` (musl, busybox,
    /// libcrypto3 and libssl3 of origin openssl).
    Alpine,
    /// `etc/os-release` Debian 12, `var/lib/dpkg/status` (libc6, libssl3 of source openssl).
    Debian,
}

/// A fixture image: a distro on a platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FixtureImage {
    pub distro: Distro,
    pub platform: Platform,
}

impl FixtureImage {
    /// Alpine 3.19 on linux/amd64.
    pub fn alpine() -> FixtureImage {
        FixtureImage {
            distro: Distro::Alpine,
            platform: Platform::new("linux", "amd64", None),
        }
    }

    /// Debian 12 on linux/amd64.
    pub fn debian() -> FixtureImage {
        FixtureImage {
            distro: Distro::Debian,
            platform: Platform::new("linux", "amd64", None),
        }
    }

    /// The same image on another platform.
    pub fn on(mut self, platform: Platform) -> FixtureImage {
        self.platform = platform;
        self
    }

    fn key(&self) -> String {
        format!(
            "{:?}-{}-{}-{}",
            self.distro,
            self.platform.os,
            self.platform.arch,
            self.platform.variant.as_deref().unwrap_or("")
        )
        .to_lowercase()
    }
}

/// A running `docker-registry serve`, killed on drop.
pub struct TestRegistry {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    options: RegistryOptions,
    ca_pem: Option<String>,
}

fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        panic!("`{tool}` is missing; the registry tests need it. Install with: {INSTALL}");
    }
}

fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e} (install with: {INSTALL})"));
    if !output.status.success() {
        panic!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a future on a runtime of its own thread: callable from sync code and from inside a
/// tokio runtime (where blocking on another runtime would panic).
fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("test registry: tokio runtime")
                    .block_on(future)
            })
            .join()
            .expect("test registry: request thread panicked")
    })
}

fn http_client(ca_pem: Option<&str>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder();
    if let Some(ca) = ca_pem {
        builder = builder.tls_certs_merge(vec![
            reqwest::Certificate::from_pem(ca.as_bytes()).expect("test CA")
        ]);
    }
    builder.build().expect("test registry: http client")
}

/// Ok when `/v2/` answers; Err(true) if the process exited, Err(false) on timeout.
fn wait_ready(child: &mut Child, url: &str, ca_pem: Option<&str>) -> Result<(), bool> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return Err(true);
        }
        let answered = block_on(async {
            http_client(ca_pem)
                .get(format!("{url}/v2/"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok()
        });
        if answered {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("test registry: no free port on 127.0.0.1")
        .port()
}

/// A CA and a leaf for 127.0.0.1/localhost signed by it: (ca pem, leaf pem, leaf key pem).
fn make_certificates() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose, SanType,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "scanplane test registry CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().expect("ca key");
    let ca_cert = ca.self_signed(&ca_key).expect("ca certificate");
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).expect("leaf params");
    leaf.subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf_cert = leaf
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .expect("leaf certificate");
    (ca_cert.pem(), leaf_cert.pem(), leaf_key.serialize_pem())
}

impl TestRegistry {
    /// Starts a registry on a free port of 127.0.0.1 and waits until `/v2/` answers.
    pub fn start(options: RegistryOptions) -> TestRegistry {
        for tool in ["docker-registry", "umoci", "skopeo", "htpasswd"] {
            require(tool);
        }
        let dir = tempfile::tempdir().expect("test registry: temp dir");
        let root = dir.path().to_path_buf();
        let root = root.as_path();
        let mut extra = String::new();
        let mut ca_pem = None;
        if options.tls {
            let (ca, leaf, key) = make_certificates();
            std::fs::write(root.join("leaf.pem"), &leaf).expect("write leaf");
            std::fs::write(root.join("leaf.key"), &key).expect("write key");
            // skopeo's --dest-cert-dir takes CA files named *.crt.
            std::fs::create_dir_all(root.join("certs.d")).expect("certs dir");
            std::fs::write(root.join("certs.d/ca.crt"), &ca).expect("write ca");
            extra.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                root.join("leaf.pem").display(),
                root.join("leaf.key").display()
            ));
            ca_pem = Some(ca);
        }
        let mut auth = String::new();
        if let Some((user, password)) = &options.htpasswd {
            let line = run(Command::new("htpasswd").args(["-Bbn", user, password]));
            std::fs::write(root.join("htpasswd"), line.trim_end().to_string() + "\n")
                .expect("write htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: scanplane-test\n    path: {}\n",
                root.join("htpasswd").display()
            );
        }
        // A port taken between free_port() and the registry's bind makes it exit: try again.
        for _attempt in 0..5 {
            let port = free_port();
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: scanplane-test-secret\n{extra}{auth}",
                root.join("data").display()
            );
            std::fs::write(root.join("config.yml"), config).expect("write config.yml");
            let log = std::fs::File::create(root.join("registry.log")).expect("registry log");
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(root.join("config.yml"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start docker-registry: {e}; install with: {INSTALL}")
                });
            let mut child = child;
            let scheme = if options.tls { "https" } else { "http" };
            let url = format!("{scheme}://127.0.0.1:{port}");
            match wait_ready(&mut child, &url, ca_pem.as_deref()) {
                Ok(()) => {
                    return TestRegistry {
                        child,
                        dir,
                        port,
                        options,
                        ca_pem,
                    }
                }
                Err(exited) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log =
                        std::fs::read_to_string(root.join("registry.log")).unwrap_or_default();
                    if !exited || !log.contains("address already in use") {
                        panic!("docker-registry did not come up on port {port}:\n{log}");
                    }
                }
            }
        }
        panic!("docker-registry: no free port after 5 attempts");
    }

    /// "http://127.0.0.1:PORT" or "https://127.0.0.1:PORT".
    pub fn url(&self) -> String {
        let scheme = if self.options.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// "127.0.0.1:PORT".
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The CA that signed the TLS leaf (None without TLS).
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// Access with the right auth and CA.
    pub fn access(&self) -> Access {
        Access {
            url: self.url(),
            insecure: false,
            ca_bundle: self.ca_pem(),
            auth: match &self.options.htpasswd {
                Some((username, password)) => Auth::Basic {
                    username: username.clone(),
                    password: password.clone(),
                },
                None => Auth::Anonymous,
            },
        }
    }

    /// The registry's log so far (for failing tests).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    fn client(&self) -> reqwest::Client {
        http_client(self.ca_pem.as_deref())
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.options.htpasswd {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }

    fn skopeo_dest_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.options.tls {
            args.push(format!(
                "--dest-cert-dir={}",
                self.dir.path().join("certs.d").display()
            ));
        } else {
            args.push("--dest-tls-verify=false".to_string());
        }
        if let Some((user, password)) = &self.options.htpasswd {
            args.push(format!("--dest-creds={user}:{password}"));
        }
        args
    }

    fn skopeo_copy(&self, layout: &Path, reference: &str, repo: &str, tag: &str, all: bool) {
        let mut command = Command::new("skopeo");
        command.args(["--insecure-policy", "copy", "--quiet", "--retry-times=2"]);
        if all {
            command.arg("--all");
        }
        command
            .args(self.skopeo_dest_args())
            .arg(format!("oci:{}:{reference}", layout.display()))
            .arg(format!("docker://{}/{repo}:{tag}", self.host()));
        run(&mut command);
    }

    /// Builds (or reuses) a real image with umoci and pushes it as `repo:tag`; its digest.
    pub fn build_image(&self, repo: &str, tag: &str, image: FixtureImage) -> String {
        let layout = cached_layout(&image.key(), |layout| {
            umoci_image(layout, "image", &image);
        });
        self.skopeo_copy(&layout, "image", repo, tag, false);
        self.digest(repo, tag)
    }

    /// Pushes a multi-platform index (Alpine on each platform, plus a buildkit-style
    /// `unknown/unknown` attestation manifest) as `repo:tag`; the index digest.
    pub fn push_index(&self, repo: &str, tag: &str, platforms: &[Platform]) -> String {
        let key = platforms
            .iter()
            .map(|p| FixtureImage::alpine().on(p.clone()).key())
            .collect::<Vec<_>>()
            .join("+");
        let layout = cached_layout(&format!("index-{key}"), |layout| {
            let mut entries = Vec::new();
            for (i, platform) in platforms.iter().enumerate() {
                let image = FixtureImage::alpine().on(platform.clone());
                let name = format!("p{i}");
                umoci_image(layout, &name, &image);
                let mut descriptor = layout_ref(layout, &name);
                let mut p = json!({"os": platform.os, "architecture": platform.arch});
                if let Some(v) = &platform.variant {
                    p["variant"] = json!(v);
                }
                descriptor["platform"] = p;
                if let Some(obj) = descriptor.as_object_mut() {
                    obj.remove("annotations");
                }
                entries.push(descriptor);
            }
            // buildkit's provenance attestation: an in-toto layer under an unknown/unknown entry.
            let statement = json!({"_type": "https://in-toto.io/Statement/v0.1",
                "predicateType": "https://slsa.dev/provenance/v0.2", "subject": [], "predicate": {}});
            let statement = write_blob(layout, statement.to_string().as_bytes());
            let config = json!({"architecture": "unknown", "os": "unknown", "config": {},
                "rootfs": {"type": "layers", "diff_ids": [statement.0]}});
            let config = write_blob(layout, config.to_string().as_bytes());
            let manifest = json!({"schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
                "layers": [{"mediaType": "application/vnd.in-toto+json", "digest": statement.0, "size": statement.1,
                    "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}}]});
            let manifest = write_blob(layout, manifest.to_string().as_bytes());
            let first = entries
                .first()
                .and_then(|e| e["digest"].as_str())
                .unwrap_or_default()
                .to_string();
            entries.push(
                json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest.0, "size": manifest.1,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {"vnd.docker.reference.digest": first,
                    "vnd.docker.reference.type": "attestation-manifest"}}),
            );
            let index = json!({"schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
            let index = write_blob(layout, index.to_string().as_bytes());
            add_layout_ref(
                layout,
                "index",
                json!({"mediaType": "application/vnd.oci.image.index.v1+json",
                    "digest": index.0, "size": index.1}),
            );
        });
        self.skopeo_copy(&layout, "index", repo, tag, true);
        self.digest(repo, tag)
    }

    /// A Helm chart (OCI artifact with the helm config media type) as `repo:tag`; its digest.
    pub fn push_helm_chart(&self, repo: &str, tag: &str) -> String {
        let config = br#"{"apiVersion":"v2","name":"demo","version":"0.1.0"}"#.to_vec();
        let chart = b"not really a tarball: discovery never reads it".to_vec();
        let manifest = json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json",
                "digest": sha256(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                "digest": sha256(&chart), "size": chart.len()}]});
        self.push_artifact(repo, tag, &[config, chart], &manifest)
    }

    /// A cosign-style signature of `of_digest`, tagged `sha256-<hex>.sig`; its digest.
    pub fn push_signature(&self, repo: &str, of_digest: &str) -> String {
        let payload = json!({"critical": {"identity": {"docker-reference": format!("{}/{repo}", self.host())},
            "image": {"docker-manifest-digest": of_digest}, "type": "cosign container image signature"},
            "optional": null})
        .to_string()
        .into_bytes();
        let config = json!({"architecture": "", "os": "", "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha256(&payload)]}})
        .to_string()
        .into_bytes();
        let manifest = json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "digest": sha256(&payload), "size": payload.len(),
                "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQDfake"}}]});
        let tag = format!("{}.sig", of_digest.replace(':', "-"));
        self.push_artifact(repo, &tag, &[config, payload], &manifest)
    }

    /// Plain HTTP: monolithic blob uploads (POST, then PUT ?digest=), then the manifest PUT.
    fn push_artifact(&self, repo: &str, tag: &str, blobs: &[Vec<u8>], manifest: &Value) -> String {
        let body = manifest.to_string().into_bytes();
        block_on(async {
            let client = self.client();
            for blob in blobs {
                let start = self
                    .authorized(client.post(format!("{}/v2/{repo}/blobs/uploads/", self.url())))
                    .send()
                    .await
                    .expect("blob upload start");
                assert_eq!(
                    start.status().as_u16(),
                    202,
                    "blob upload start: {:?}",
                    start
                );
                let location = start
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .expect("upload location")
                    .to_string();
                let mut url = reqwest::Url::parse(&self.url())
                    .and_then(|base| base.join(&location))
                    .expect("upload url");
                url.query_pairs_mut().append_pair("digest", &sha256(blob));
                let put = self
                    .authorized(client.put(url))
                    .header("content-type", "application/octet-stream")
                    .body(blob.clone())
                    .send()
                    .await
                    .expect("blob upload");
                assert_eq!(put.status().as_u16(), 201, "blob upload: {:?}", put);
            }
            self.put_manifest(
                &client,
                repo,
                tag,
                "application/vnd.oci.image.manifest.v1+json",
                body,
            )
            .await;
        });
        self.digest(repo, tag)
    }

    async fn put_manifest(
        &self,
        client: &reqwest::Client,
        repo: &str,
        tag: &str,
        content_type: &str,
        body: Vec<u8>,
    ) {
        let response = self
            .authorized(client.put(format!("{}/v2/{repo}/manifests/{tag}", self.url())))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("manifest put");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(
            status.as_u16(),
            201,
            "manifest put {repo}:{tag}: {status} {text}"
        );
    }

    async fn get_manifest(
        &self,
        client: &reqwest::Client,
        repo: &str,
        reference: &str,
    ) -> (String, Vec<u8>, String) {
        let response = self
            .authorized(client.get(format!("{}/v2/{repo}/manifests/{reference}", self.url())))
            .header("accept", ACCEPT.join(", "))
            .send()
            .await
            .expect("manifest get");
        assert!(
            response.status().is_success(),
            "manifest {repo}:{reference}: {}",
            response.status()
        );
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/vnd.oci.image.manifest.v1+json")
            .to_string();
        let body = response.bytes().await.expect("manifest body").to_vec();
        let digest = sha256(&body);
        (content_type, body, digest)
    }

    /// The manifest digest `repo:tag` points at.
    pub fn digest(&self, repo: &str, tag: &str) -> String {
        block_on(async { self.get_manifest(&self.client(), repo, tag).await.2 })
    }

    /// Re-PUTs the manifest of `existing_tag` as `new_tag` (cheap: no blob moves).
    pub fn tag(&self, repo: &str, existing_tag: &str, new_tag: &str) {
        self.tag_many(repo, existing_tag, &[new_tag.to_string()]);
    }

    /// [`TestRegistry::tag`] for many new tags with one client.
    pub fn tag_many(&self, repo: &str, existing_tag: &str, new_tags: &[String]) {
        block_on(async {
            let client = self.client();
            let (content_type, body, _) = self.get_manifest(&client, repo, existing_tag).await;
            for new_tag in new_tags {
                self.put_manifest(&client, repo, new_tag, &content_type, body.clone())
                    .await;
            }
        });
    }

    /// Deletes the manifest `tag` points at. Distribution v2.8 deletes manifests by digest only,
    /// so every tag pointing at the same digest goes with it.
    pub fn delete_tag(&self, repo: &str, tag: &str) {
        block_on(async {
            let client = self.client();
            let (_, _, digest) = self.get_manifest(&client, repo, tag).await;
            let response = self
                .authorized(client.delete(format!("{}/v2/{repo}/manifests/{digest}", self.url())))
                .send()
                .await
                .expect("manifest delete");
            assert_eq!(
                response.status().as_u16(),
                202,
                "delete {repo}:{tag}: {}",
                response.status()
            );
        });
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Writes a blob into an OCI layout: (digest, size).
fn write_blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let digest = sha256(bytes);
    let path = layout.join("blobs/sha256").join(&digest["sha256:".len()..]);
    std::fs::write(path, bytes).expect("write layout blob");
    (digest, bytes.len())
}

fn read_index(layout: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
        .expect("index.json is JSON")
}

/// The index.json descriptor named `name`.
fn layout_ref(layout: &Path, name: &str) -> Value {
    read_index(layout)["manifests"]
        .as_array()
        .and_then(|m| {
            m.iter()
                .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == name)
                .cloned()
        })
        .unwrap_or_else(|| panic!("layout {} has no ref {name}", layout.display()))
}

fn add_layout_ref(layout: &Path, name: &str, mut descriptor: Value) {
    let mut index = read_index(layout);
    descriptor["annotations"] = json!({"org.opencontainers.image.ref.name": name});
    index["manifests"]
        .as_array_mut()
        .expect("index.json manifests")
        .push(descriptor);
    std::fs::write(layout.join("index.json"), index.to_string()).expect("write index.json");
}

/// The process-wide fixture directory; layouts of earlier, finished processes are removed.
fn cache_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let tmp = std::env::temp_dir();
        let prefix = "scanplane-oci-fixtures-";
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix(prefix) {
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = std::fs::remove_dir_all(entry.path());
                    }
                }
            }
        }
        let root = tmp.join(format!("{prefix}{}", std::process::id()));
        std::fs::create_dir_all(&root).expect("fixture cache dir");
        root
    })
}

/// The OCI layout `key`, built by `build` the first time in this process.
fn cached_layout(key: &str, build: impl FnOnce(&Path)) -> PathBuf {
    static BUILDING: Mutex<()> = Mutex::new(());
    let _guard = BUILDING.lock().unwrap_or_else(|p| p.into_inner());
    let path = cache_root().join(key);
    if path.join("index.json").exists() {
        return path;
    }
    let work = cache_root().join(format!("{key}.building"));
    let _ = std::fs::remove_dir_all(&work);
    run(Command::new("umoci").args(["init", "--layout"]).arg(&work));
    build(&work);
    std::fs::rename(&work, &path).expect("move built layout into the cache");
    path
}

/// umoci: new, unpack --rootless, write the package database, repack, config os/arch.
fn umoci_image(layout: &Path, name: &str, image: &FixtureImage) {
    let target = format!("{}:{name}", layout.display());
    run(Command::new("umoci").args(["new", "--image", &target]));
    let bundle = layout.with_extension(format!("bundle-{name}"));
    let _ = std::fs::remove_dir_all(&bundle);
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image", &target])
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    for (path, content) in package_files(image) {
        let file = rootfs.join(path);
        std::fs::create_dir_all(file.parent().expect("fixture file has a parent"))
            .expect("fixture dirs");
        let mut f = std::fs::File::create(&file).expect("fixture file");
        f.write_all(content.as_bytes()).expect("write fixture file");
    }
    run(Command::new("umoci")
        .args(["repack", "--image", &target])
        .arg(&bundle));
    run(Command::new("umoci").args([
        "config",
        "--image",
        &target,
        "--os",
        &image.platform.os,
        "--architecture",
        &image.platform.arch,
        "--created",
        "2024-01-15T10:00:00Z",
        "--config.cmd",
        "/bin/sh",
    ]));
    let _ = std::fs::remove_dir_all(&bundle);
}

fn package_files(image: &FixtureImage) -> HashMap<&'static str, String> {
    let mut files = HashMap::new();
    match image.distro {
        Distro::Alpine => {
            let arch = match image.platform.arch.as_str() {
                "amd64" => "x86_64",
                "arm64" => "aarch64",
                "arm" => "armv7",
                "386" => "x86",
                other => other,
            };
            files.insert("etc/alpine-release", "3.19.1\n".to_string());
            files.insert(
                "etc/os-release",
                "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n\
                 PRETTY_NAME=\"Alpine Linux v3.19\"\nHOME_URL=\"https://alpinelinux.org/\"\n"
                    .to_string(),
            );
            let packages = [
                (
                    "musl",
                    "1.2.4_git20230717-r4",
                    "musl",
                    "MIT",
                    "the musl c library (libc) implementation",
                ),
                (
                    "busybox",
                    "1.36.1-r15",
                    "busybox",
                    "GPL-2.0-only",
                    "Size optimized toolbox of many common UNIX utilities",
                ),
                (
                    "libcrypto3",
                    "3.1.4-r2",
                    "openssl",
                    "Apache-2.0",
                    "Crypto library from openssl",
                ),
                (
                    "libssl3",
                    "3.1.4-r2",
                    "openssl",
                    "Apache-2.0",
                    "SSL shared libraries",
                ),
            ];
            let db: String = packages
                .iter()
                .map(|(name, version, origin, license, description)| {
                    format!(
                        "C:Q1{}=\nP:{name}\nV:{version}\nA:{arch}\nS:100000\nI:300000\n\
                         T:{description}\nU:https://alpinelinux.org\nL:{license}\no:{origin}\n\
                         m:Natanael Copa <ncopa@alpinelinux.org>\nt:1700000000\n\n",
                        &hex::encode(Sha256::digest(name.as_bytes()))[..27]
                    )
                })
                .collect();
            files.insert("lib/apk/db/installed", db);
        }
        Distro::Debian => {
            let arch = image.platform.arch.as_str();
            files.insert("etc/debian_version", "12.4\n".to_string());
            files.insert(
                "etc/os-release",
                "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
                 VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n"
                    .to_string(),
            );
            files.insert(
                "var/lib/dpkg/status",
                format!(
                    "Package: libc6\nStatus: install ok installed\nPriority: optional\nSection: libs\n\
                     Installed-Size: 12986\nMaintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\n\
                     Architecture: {arch}\nMulti-Arch: same\nSource: glibc\nVersion: 2.36-9+deb12u3\n\
                     Description: GNU C Library: Shared libraries\n\n\
                     Package: libssl3\nStatus: install ok installed\nPriority: optional\nSection: libs\n\
                     Installed-Size: 6075\nMaintainer: Debian OpenSSL Team <pkg-openssl-devel@alioth-lists.debian.net>\n\
                     Architecture: {arch}\nMulti-Arch: same\nSource: openssl\nVersion: 3.0.11-1~deb12u2\n\
                     Depends: libc6 (>= 2.34)\nDescription: Secure Sockets Layer toolkit - shared libraries\n\n"
                ),
            );
        }
    }
    files
}
