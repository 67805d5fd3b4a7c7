//! An SBOM generation as a unit of work: one digest, pulled by trivy from its registry with
//! the registry's credentials, rendered as SPDX 2.3 JSON (which needs no vulnerability
//! database) and uploaded to `PUT /api/v1/scans/:id/sbom`; then the final report line.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use scanplane_protocol::registry::{RegistryAuth, RegistryUnit};
use scanplane_protocol::report::ReportLine;
use tokio::process::Command;

use crate::discovery::fetch_unit;
use crate::{JobConfig, JobError, Reporter};

/// Longest trivy error output quoted in the scan's error.
const STDERR_MAX: usize = 2000;
/// Where Debian keeps the system's trusted roots, extended with a registry's `ca_bundle`.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

fn scan_error(config: &JobConfig, message: impl Into<String>, permanent: bool) -> JobError {
    JobError::Scan {
        scanner: config.scanner.clone(),
        message: message.into(),
        permanent,
    }
}

/// The reference trivy pulls: the target `image://HOST/REPO@DIGEST` without its scheme.
fn reference(config: &JobConfig) -> Result<String, JobError> {
    match config.targets.as_slice() {
        [target] => target
            .strip_prefix("image://")
            .filter(|r| r.contains('@'))
            .map(str::to_string)
            .ok_or_else(|| {
                JobError::Config(format!("target {target:?} is not image://HOST/REPO@DIGEST"))
            }),
        _ => Err(JobError::Config(format!(
            "an SBOM generation has one target, not {}",
            config.targets.len()
        ))),
    }
}

/// trivy's command line and environment for `unit`'s registry, writing to `output`.
fn command(
    trivy: &Path,
    unit: &RegistryUnit,
    reference: &str,
    work_dir: &Path,
    output: &Path,
) -> Result<Command, JobError> {
    let mut command = Command::new(trivy);
    command
        .arg("image")
        .args(["--format", "spdx-json", "--quiet"])
        .args([
            "--offline-scan",
            "--skip-db-update",
            "--skip-java-db-update",
        ])
        .args(["--skip-check-update", "--skip-version-check"])
        // Straight to the registry: no Docker, containerd or Podman daemon is asked first.
        .args(["--image-src", "remote"])
        .arg("--cache-dir")
        .arg(work_dir.join("trivy-cache"))
        .arg("--output")
        .arg(output)
        .env_remove("TRIVY_USERNAME")
        .env_remove("TRIVY_PASSWORD")
        .current_dir(work_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let spec = &unit.spec;
    // Plain HTTP registries and `insecure` both need it: trivy then also falls back to HTTP.
    if spec.insecure || spec.url.starts_with("http://") {
        command.arg("--insecure");
    }
    match &unit.auth {
        None => {}
        Some(RegistryAuth::Basic { username, password }) => {
            command
                .env("TRIVY_USERNAME", username)
                .env("TRIVY_PASSWORD", password);
        }
        Some(RegistryAuth::DockerConfig { config_json }) => {
            let dir = work_dir.join("docker");
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(dir.join("config.json"), config_json))
                .map_err(|e| JobError::Config(format!("writing the docker config: {e}")))?;
            command.env("DOCKER_CONFIG", dir);
        }
    }
    if let Some(pem) = &spec.ca_bundle {
        // Go replaces the system roots with SSL_CERT_FILE: give it both.
        let mut roots = std::fs::read(SYSTEM_ROOTS).unwrap_or_default();
        roots.push(b'\n');
        roots.extend_from_slice(pem.as_bytes());
        let path = work_dir.join("registry-roots.pem");
        std::fs::write(&path, roots)
            .map_err(|e| JobError::Config(format!("writing the CA bundle: {e}")))?;
        command.env("SSL_CERT_FILE", path);
    }
    command.arg(reference);
    Ok(command)
}

/// Runs trivy and returns the document, or why it failed.
async fn generate(
    config: &JobConfig,
    unit: &RegistryUnit,
    reference: &str,
) -> Result<Vec<u8>, JobError> {
    let trivy =
        scanplane_scanners::trivy::locate().map_err(|e| scan_error(config, e.to_string(), true))?;
    let output = config.work_dir.join("sbom.spdx.json");
    let child = command(&trivy, unit, reference, &config.work_dir, &output)?
        .spawn()
        .map_err(|e| scan_error(config, format!("starting {}: {e}", trivy.display()), true))?;
    let finished = tokio::time::timeout(config.timeout, child.wait_with_output()).await;
    let out = match finished {
        // Dropping the child on timeout kills it (kill_on_drop).
        Err(_) => {
            return Err(scan_error(
                config,
                format!("trivy timed out after {}s", config.timeout.as_secs()),
                false,
            ))
        }
        Ok(Err(e)) => return Err(scan_error(config, format!("waiting for trivy: {e}"), false)),
        Ok(Ok(out)) => out,
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: String = stderr
            .chars()
            .rev()
            .take(STDERR_MAX)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        // An unauthorized or missing manifest does not get better with retries.
        let permanent = ["UNAUTHORIZED", "MANIFEST_UNKNOWN", "DENIED", "NAME_UNKNOWN"]
            .iter()
            .any(|code| stderr.contains(code));
        return Err(scan_error(
            config,
            format!("trivy exited with {}: {}", out.status, tail.trim()),
            permanent,
        ));
    }
    tokio::fs::read(&output)
        .await
        .map_err(|e| scan_error(config, format!("reading trivy's output: {e}"), false))
}

/// Uploads the document; a refusal is permanent (the same document would be refused again).
async fn upload(
    client: &reqwest::Client,
    config: &JobConfig,
    document: Vec<u8>,
) -> Result<(), JobError> {
    let url = format!("{}/api/v1/scans/{}/sbom", config.server_url, config.scan_id);
    let body = bytes::Bytes::from(document);
    let mut backoff = std::time::Duration::from_millis(200);
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let reason = match client
            .put(&url)
            .bearer_auth(&config.report_token)
            .header(reqwest::header::CONTENT_TYPE, "application/spdx+json")
            .body(body.clone())
            .send()
            .await
        {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) if resp.status().is_client_error() => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                return Err(JobError::Scan {
                    scanner: config.scanner.clone(),
                    message: format!("the SBOM was refused: {status}: {text}"),
                    permanent: true,
                });
            }
            Ok(resp) => format!("server answered {}", resp.status()),
            Err(e) => e.to_string(),
        };
        if Instant::now() + backoff > deadline {
            return Err(JobError::Report {
                url,
                message: format!("gave up: {reason}"),
            });
        }
        tracing::warn!(%reason, retry_in = ?backoff, "SBOM upload not accepted; retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
    }
}

/// Generates, uploads and reports the SBOM. Returns 0: an SBOM has no findings.
pub(crate) async fn run(
    config: JobConfig,
    client: reqwest::Client,
    mut reporter: Reporter,
) -> Result<u64, JobError> {
    let started = Instant::now();
    let reference = reference(&config)?;
    let unit = fetch_unit(&client, &config).await?;
    tracing::info!(scan_run_id = %config.scan_id, %reference, "sbom generation starting");
    let outcome = match generate(&config, &unit, &reference).await {
        Ok(document) => {
            let bytes = document.len();
            upload(&client, &config, document).await.map(|()| bytes)
        }
        Err(e) => Err(e),
    };
    let (status, error) = match &outcome {
        Ok(_) => ("success", None),
        Err(e) => ("error", Some(e.to_string())),
    };
    let final_line = ReportLine::Final {
        scan_run_id: config.scan_id.clone(),
        status: status.to_string(),
        targets_scanned: if outcome.is_ok() {
            config.targets.clone()
        } else {
            Vec::new()
        },
        accounts_scanned: Vec::new(),
        duration_seconds: Some(started.elapsed().as_secs_f64()),
        error,
        findings_rejected: 0,
        rejections: Vec::new(),
        stats: outcome
            .as_ref()
            .ok()
            .map(|bytes| serde_json::json!({ "document_bytes": bytes })),
    };
    let mut body = Vec::new();
    final_line
        .encode_into(&mut body)
        .map_err(|e| JobError::Config(e.to_string()))?;
    reporter.send(body, true).await?;
    tracing::info!(scan_run_id = %config.scan_id, status, "sbom generation finished");
    outcome.map(|_| 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use scanplane_protocol::registry::{CatalogKind, RegistrySpec};
    use std::time::Duration;

    fn config(targets: &[&str]) -> JobConfig {
        JobConfig {
            scan_id: "s".into(),
            server_url: "http://127.0.0.1:1".into(),
            report_token: "t".into(),
            scanner: "sbom".into(),
            targets: targets.iter().map(|s| s.to_string()).collect(),
            billing: false,
            options: serde_json::json!({}),
            timeout: Duration::from_secs(5),
            work_dir: std::env::temp_dir(),
        }
    }

    #[test]
    fn the_reference_is_the_target_without_its_scheme() {
        let c = config(&["image://127.0.0.1:5000/app@sha256:ab"]);
        assert_eq!(reference(&c).unwrap(), "127.0.0.1:5000/app@sha256:ab");
        for bad in [&["image://r/app:1"][..], &["a", "b"], &[]] {
            assert!(matches!(reference(&config(bad)), Err(JobError::Config(_))));
        }
    }

    #[test]
    fn credentials_go_to_trivys_environment_never_its_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let unit = RegistryUnit {
            registry_id: "r".into(),
            spec: RegistrySpec {
                name: "r".into(),
                url: "http://127.0.0.1:5000".into(),
                catalog: CatalogKind::Oci,
                insecure: false,
                ca_bundle: None,
                repositories: vec![],
                platforms: vec![],
            },
            auth: Some(RegistryAuth::Basic {
                username: "scan".into(),
                password: "s3cret".into(),
            }),
            repositories: vec![],
        };
        let cmd = command(
            Path::new("trivy"),
            &unit,
            "127.0.0.1:5000/app@sha256:ab",
            dir.path(),
            &dir.path().join("o.json"),
        )
        .unwrap();
        let std = cmd.as_std();
        let args: Vec<String> = std
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(
            args.contains(&"--insecure".to_string()),
            "plain HTTP: {args:?}"
        );
        assert!(!args.iter().any(|a| a.contains("s3cret")));
        let password = std
            .get_envs()
            .find(|(k, _)| *k == "TRIVY_PASSWORD")
            .and_then(|(_, v)| v);
        assert_eq!(
            password
                .map(|v| v.to_string_lossy().into_owned())
                .as_deref(),
            Some("s3cret")
        );
        assert_eq!(
            args.last().map(String::as_str),
            Some("127.0.0.1:5000/app@sha256:ab")
        );
    }
}
