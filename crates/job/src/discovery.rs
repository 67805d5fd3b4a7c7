//! A registry discovery as a unit of work: reads its registry (definition and credentials)
//! from the control plane with the report token, walks it with `scanplane-oci`, and streams
//! every image it finds as an `image` report line, then a final line with the counts.
//!
//! Tag conditions are compiled here again from the definition (they were checked when the
//! registry was saved), so a unit never trusts a selection it did not compute itself.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use scanplane_oci::{
    Access, Auth, Catalog, DiscoveredImage, Discoverer, DiscoveryStats, Platform, Selection,
    TagSelector,
};
use scanplane_protocol::registry::{CatalogKind, MatchOperatorSpec, RegistryAuth, RegistryUnit};
use scanplane_protocol::report::{ReportLine, MAX_LINE};
use scanplane_tagfilter::{MatchCondition, MatchOperator, TagFilter};
use tokio::sync::mpsc;

use crate::{JobConfig, JobError, Reporter, CHUNK, CHUNK_BYTES, FLUSH_EVERY};

/// Registry requests in flight at once, per discovery.
const CONCURRENCY: usize = 8;
/// Images buffered between the discoverer and the report.
const CHANNEL: usize = 1024;

/// The tag conditions of each listed repository; other repositories keep every tag.
struct Conditions(HashMap<String, TagFilter>);

impl TagSelector for Conditions {
    fn select(&self, repository: &str, tag: &str) -> Result<bool, String> {
        match self.0.get(repository) {
            Some(filter) => filter.matches(tag).map_err(|e| e.to_string()),
            None => Ok(true),
        }
    }
}

fn config_error(message: impl std::fmt::Display) -> JobError {
    JobError::Config(message.to_string())
}

/// What the unit discovers: the registry's access, the selection and the tag conditions.
fn plan(unit: &RegistryUnit) -> Result<(Access, Selection, Conditions), JobError> {
    let spec = &unit.spec;
    let auth = match &unit.auth {
        None => Auth::Anonymous,
        Some(RegistryAuth::Basic { username, password }) => Auth::Basic {
            username: username.clone(),
            password: password.clone(),
        },
        Some(RegistryAuth::DockerConfig { config_json }) => Auth::DockerConfig {
            config_json: config_json.clone(),
        },
    };
    let access = Access {
        url: spec.url.clone(),
        insecure: spec.insecure,
        ca_bundle: spec.ca_bundle.clone(),
        auth,
    };
    let mut filters = HashMap::new();
    for (i, repository) in spec.repositories.iter().enumerate() {
        let conditions: Vec<MatchCondition> = repository
            .match_conditions
            .iter()
            .map(|c| MatchCondition {
                name: c.name.clone(),
                expression: c.expression.clone(),
            })
            .collect();
        let operator = match repository.match_operator {
            MatchOperatorSpec::And => MatchOperator::And,
            MatchOperatorSpec::Or => MatchOperator::Or,
        };
        let filter = TagFilter::compile(&conditions, operator)
            .map_err(|e| config_error(format!("repositories[{i}].match_conditions: {e}")))?;
        if !filter.is_empty() {
            filters.insert(repository.name.clone(), filter);
        }
    }
    // A narrower run (`repositories` given when it was asked for) discovers only those.
    let repositories = if unit.repositories.is_empty() {
        spec.repositories.iter().map(|r| r.name.clone()).collect()
    } else {
        unit.repositories.clone()
    };
    let selection = Selection {
        catalog: match spec.catalog {
            CatalogKind::Oci => Catalog::Oci,
            CatalogKind::None => Catalog::None,
        },
        repositories,
        platforms: spec
            .platforms
            .iter()
            .map(|p| Platform::new(&p.os, &p.arch, p.variant.as_deref()))
            .collect(),
    };
    Ok((access, selection, Conditions(filters)))
}

fn image_line(image: DiscoveredImage) -> ReportLine {
    ReportLine::Image {
        repository: image.repository,
        tag: image.tag,
        platform: image.platform.map(|p| p.to_string()).unwrap_or_default(),
        digest: image.digest,
        index_digest: image.index_digest,
        media_type: image.media_type,
        config_digest: image.config_digest,
        layers: image
            .layers
            .iter()
            .filter_map(|l| serde_json::to_value(l).ok())
            .collect(),
        size: image.size,
        created: image.created,
    }
}

/// Reads the registry this discovery is for from the control plane.
pub(crate) async fn fetch_unit(
    client: &reqwest::Client,
    config: &JobConfig,
) -> Result<RegistryUnit, JobError> {
    let url = format!(
        "{}/api/v1/scans/{}/registry-access",
        config.server_url, config.scan_id
    );
    let mut backoff = Duration::from_millis(200);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reason = match client
            .get(&url)
            .bearer_auth(&config.report_token)
            .send()
            .await
        {
            Ok(resp) if resp.status().is_success() => {
                return resp
                    .json::<RegistryUnit>()
                    .await
                    .map_err(|e| JobError::Report {
                        url: url.clone(),
                        message: format!("not a registry unit: {e}"),
                    })
            }
            Ok(resp) if resp.status().is_client_error() => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                return Err(JobError::Report {
                    url,
                    message: format!("{status}: {text}"),
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
        tracing::warn!(%reason, retry_in = ?backoff, "registry access not read; retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Runs the discovery and reports it. Returns the number of images reported.
pub(crate) async fn run(
    config: JobConfig,
    client: reqwest::Client,
    mut reporter: Reporter,
) -> Result<u64, JobError> {
    let started = Instant::now();
    let unit = fetch_unit(&client, &config).await?;
    let (access, selection, conditions) = plan(&unit)?;
    tracing::info!(scan_run_id = %config.scan_id, registry = %access.url, repositories = selection.repositories.len(), "discovery starting");
    let discoverer = Discoverer::new(access, CONCURRENCY).map_err(|e| JobError::Scan {
        scanner: config.scanner.clone(),
        message: e.to_string(),
        permanent: e.is_permanent(),
    })?;

    let (tx, mut rx) = mpsc::channel::<DiscoveredImage>(CHANNEL);
    let discover = async {
        match tokio::time::timeout(config.timeout, discoverer.run(&selection, &conditions, tx))
            .await
        {
            Ok(result) => result.map_err(|e| (e.to_string(), e.is_permanent())),
            Err(_) => Err((
                format!("timed out after {}s", config.timeout.as_secs()),
                false,
            )),
        }
    };
    let report = async {
        let mut pending: Vec<u8> = Vec::new();
        let mut pending_count = 0usize;
        let mut reported = 0u64;
        let mut dropped = 0u64;
        let mut last_flush = Instant::now();
        loop {
            let next = tokio::time::timeout(FLUSH_EVERY, rx.recv()).await;
            let closed = matches!(next, Ok(None));
            if let Ok(Some(image)) = next {
                let start = pending.len();
                let fits = image_line(image).encode_into(&mut pending).is_ok()
                    && pending.len() - start <= MAX_LINE + 1;
                if fits {
                    pending_count += 1;
                } else {
                    pending.truncate(start);
                    dropped += 1;
                }
            }
            if pending_count >= CHUNK
                || pending.len() >= CHUNK_BYTES
                || (pending_count > 0 && (closed || last_flush.elapsed() >= FLUSH_EVERY))
            {
                reporter.send(std::mem::take(&mut pending), false).await?;
                reported += pending_count as u64;
                pending_count = 0;
                last_flush = Instant::now();
            }
            if closed {
                return Ok::<_, JobError>((reported, dropped, reporter));
            }
        }
    };
    // The report side ends when the discoverer drops its sender; a failed report ends the
    // unit (dropping the receiver, which stops the discoverer).
    let (outcome, reported) = tokio::join!(discover, report);
    let (reported, dropped, mut reporter) = reported?;

    let duration_seconds = started.elapsed().as_secs_f64();
    let stats: Option<DiscoveryStats> = outcome.as_ref().ok().cloned();
    let (status, error) = match &outcome {
        Ok(_) => ("success", None),
        Err((message, _)) => ("error", Some(message.clone())),
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
        duration_seconds: Some(duration_seconds),
        error,
        findings_rejected: dropped,
        rejections: if dropped > 0 {
            vec![format!(
                "{dropped} images dropped: their report line is longer than {MAX_LINE} bytes"
            )]
        } else {
            Vec::new()
        },
        stats: stats.and_then(|s| serde_json::to_value(s).ok()),
    };
    let mut body = Vec::new();
    final_line
        .encode_into(&mut body)
        .map_err(|e| JobError::Config(e.to_string()))?;
    reporter.send(body, true).await?;
    tracing::info!(scan_run_id = %config.scan_id, status, images = reported, duration_seconds, "discovery finished");
    match outcome {
        Ok(_) => Ok(reported),
        Err((message, permanent)) => Err(JobError::Scan {
            scanner: config.scanner,
            message,
            permanent,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scanplane_protocol::registry::{MatchConditionSpec, RegistrySpec, RepositorySpec};

    fn unit(repositories: Vec<RepositorySpec>, narrow: &[&str]) -> RegistryUnit {
        RegistryUnit {
            registry_id: "r".into(),
            spec: RegistrySpec {
                name: "r".into(),
                url: "http://127.0.0.1:5000".into(),
                catalog: CatalogKind::Oci,
                insecure: false,
                ca_bundle: None,
                repositories,
                platforms: vec![],
            },
            auth: Some(RegistryAuth::Basic {
                username: "u".into(),
                password: "p".into(),
            }),
            repositories: narrow.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn repo(name: &str, expressions: &[&str]) -> RepositorySpec {
        RepositorySpec {
            name: name.into(),
            match_conditions: expressions
                .iter()
                .enumerate()
                .map(|(i, e)| MatchConditionSpec {
                    name: format!("c{i}"),
                    expression: e.to_string(),
                })
                .collect(),
            match_operator: MatchOperatorSpec::And,
        }
    }

    #[test]
    fn the_plan_narrows_and_filters_per_repository() {
        let u = unit(
            vec![repo("app", &["tag.endsWith('-prod')"]), repo("db", &[])],
            &[],
        );
        let (access, selection, conditions) = plan(&u).unwrap();
        assert!(matches!(access.auth, Auth::Basic { .. }));
        assert_eq!(selection.repositories, ["app", "db"]);
        assert_eq!(conditions.select("app", "1-prod"), Ok(true));
        assert_eq!(conditions.select("app", "1-dev"), Ok(false));
        assert_eq!(conditions.select("db", "anything"), Ok(true));

        let narrowed = unit(vec![repo("app", &[]), repo("db", &[])], &["db"]);
        assert_eq!(plan(&narrowed).unwrap().1.repositories, ["db"]);
        // No repositories: the whole catalog.
        assert!(plan(&unit(vec![], &[])).unwrap().1.repositories.is_empty());
    }

    #[test]
    fn a_condition_that_no_longer_compiles_is_a_configuration_error() {
        let err = plan(&unit(vec![repo("app", &["tag.endsWith("])], &[])).err();
        assert!(
            matches!(&err, Some(JobError::Config(m)) if m.contains("repositories[0].match_conditions")),
            "{err:?}"
        );
    }

    #[test]
    fn a_failing_condition_is_reported_with_its_name() {
        let (_, _, conditions) =
            plan(&unit(vec![repo("app", &["semver(tag).major() > 1"])], &[])).unwrap();
        let error = conditions.select("app", "latest").unwrap_err();
        assert!(error.starts_with("condition 'c0': "), "{error}");
    }
}
