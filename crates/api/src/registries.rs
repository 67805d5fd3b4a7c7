//! Registry endpoints: CRUD at `/api/v1/registries`, on-demand discovery
//! (`POST /api/v1/registries/:id/discover`) and the latest discoveries of a registry.
//!
//! A registry is stored as its public definition (a [`RegistrySpec`], JSON) and its
//! credentials (a [`RegistryAuth`], JSON) apart: no answer of this module carries a password
//! or a docker config, only which kind of credentials is set. Its discovery cadence is an
//! ordinary schedule of the reserved scanner [`DISCOVERY_SCANNER`], written in the same
//! transaction as the registry, so the scheduler fires it like any other.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use scanplane_core::duration::format_duration;
use scanplane_core::limits::DurationLimit;
use scanplane_core::maintenance::WindowAction;
use scanplane_core::scan::Trigger;
use scanplane_core::schedule::{
    initial_ticks, Cadence, CadenceError, MissedTickPolicy, Schedule, ScheduleStatus,
};
use scanplane_core::target::Target;
use scanplane_core::Timestamp;
use scanplane_protocol::registry::{
    provider, CatalogKind, DiscoveryOptions, MatchOperatorSpec, PlatformSpec, RegistryAuth,
    RegistrySpec, RepositorySpec, DISCOVERY_SCANNER,
};
use scanplane_store::{DiscoveryRecord, NewScan, RegistryRecord};
use scanplane_tagfilter::{MatchCondition, MatchOperator, TagFilter};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{self, ApiError};
use crate::extract::{cursor, AppJson, AppPath, AppQuery};
use crate::scans::{page_limit, ScanAccepted};
use crate::tenancy::{listing_scope, tenant_name, TenantNames};
use crate::{fmt_ts, AppState, Page};

/// Longest registry name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest repository name, in bytes (the distribution spec's practical limit).
pub const MAX_REPOSITORY_BYTES: usize = 255;
/// Most repositories one registry (or one discovery) may list.
pub const MAX_REPOSITORIES: usize = 1000;
/// Most platforms one registry may keep.
pub const MAX_PLATFORMS: usize = 32;
/// Longest `os`, `arch` or `variant` of a platform.
const MAX_PLATFORM_PART: usize = 64;
/// Largest CA bundle accepted.
pub const MAX_CA_BUNDLE: usize = 1024 * 1024;
/// Longest basic-auth username.
const MAX_USERNAME: usize = 255;

/// The message of a refused `scan` schedule: SBOM generation is queued by discovery, and no
/// unit runs a scheduled image scan yet.
pub const SCAN_SCHEDULE_REFUSED: &str = "scheduled image scans arrive with SBOM generation; use discovery, which queues an SBOM for every new digest";

/// A registry's cadence: `cron_exp` (with `timezone`) or `every`, exactly one of them.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CadenceRequest {
    /// Cron expression, 5 fields or 6 with seconds. Exclusive with `every`.
    pub cron_exp: Option<String>,
    /// IANA time zone of `cron_exp` (default UTC).
    pub timezone: Option<String>,
    /// An interval of at least `1m`, e.g. `6h`. Exclusive with `cron_exp`.
    pub every: Option<String>,
    /// Spread each run over this window (e.g. `15m`).
    pub jitter: Option<String>,
}

/// Body of `POST /api/v1/registries`: the registry's definition, its credentials and its
/// discovery cadence.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryCreate {
    /// 1-100 characters, unique within the tenant.
    pub name: String,
    /// `https://host[:port]`, or `http://host[:port]` for a plain-HTTP registry; no path.
    pub url: String,
    /// `oci` (default: `GET /v2/_catalog`) or `none` (then `repositories` lists them).
    #[serde(default)]
    pub catalog: CatalogKind,
    /// Skip TLS certificate verification.
    #[serde(default)]
    pub insecure: bool,
    /// PEM certificates trusted besides the system roots.
    pub ca_bundle: Option<String>,
    /// Empty: every repository of the catalog.
    #[serde(default)]
    pub repositories: Vec<RepositorySpec>,
    /// Empty: every platform of an index.
    #[serde(default)]
    pub platforms: Vec<PlatformSpec>,
    /// `{username, password}` or `{config_json}`; never shown again.
    pub auth: Option<RegistryAuth>,
    /// When discovery runs; without it, only `POST .../discover` runs it.
    pub discovery: Option<CadenceRequest>,
    /// Scheduled image scans: not available yet (discovery queues SBOM generation).
    pub scan: Option<CadenceRequest>,
}

/// Body of `PATCH /api/v1/registries/:id`: every field optional. `auth`, `ca_bundle`,
/// `discovery` and `scan` given as `null` remove what was set; absent, they stay.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryPatch {
    pub name: Option<String>,
    pub url: Option<String>,
    pub catalog: Option<CatalogKind>,
    pub insecure: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub ca_bundle: Option<Option<String>>,
    pub repositories: Option<Vec<RepositorySpec>>,
    pub platforms: Option<Vec<PlatformSpec>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<RegistryAuth>, nullable)]
    pub auth: Option<Option<RegistryAuth>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<CadenceRequest>, nullable)]
    pub discovery: Option<Option<CadenceRequest>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<CadenceRequest>, nullable)]
    pub scan: Option<Option<CadenceRequest>>,
}

/// Tells a field given as `null` (`Some(None)`) from an absent one (`None`, by `default`).
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Which credentials a registry has, without them.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthView {
    /// `basic` or `docker_config`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The basic-auth username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

impl From<&RegistryAuth> for AuthView {
    fn from(a: &RegistryAuth) -> Self {
        match a {
            RegistryAuth::Basic { username, .. } => AuthView {
                kind: "basic".to_string(),
                username: Some(username.clone()),
            },
            RegistryAuth::DockerConfig { .. } => AuthView {
                kind: "docker_config".to_string(),
                username: None,
            },
        }
    }
}

/// A registry's schedule as its registry shows it (the whole schedule is at
/// `GET /scans/schedule/:schedule_id`).
#[derive(Debug, Serialize, ToSchema)]
pub struct CadenceView {
    pub schedule_id: String,
    pub cron_exp: Option<String>,
    /// The time zone of `cron_exp`; null for an interval.
    pub timezone: Option<String>,
    pub every: Option<String>,
    pub jitter: Option<String>,
    pub enabled: bool,
    /// When it next runs; null when disabled.
    pub next_fire_at: Option<String>,
    pub last_fired_at: Option<String>,
}

impl From<Schedule> for CadenceView {
    fn from(s: Schedule) -> Self {
        let (cron_exp, timezone, every) = match &s.cadence {
            Cadence::Cron { expr, timezone } => {
                (Some(expr.clone()), Some(timezone.name().to_string()), None)
            }
            Cadence::Every { period, .. } => (None, None, Some(format_duration(*period))),
            // Registries are never given one-shot schedules.
            Cadence::Once { .. } => (None, None, None),
        };
        CadenceView {
            schedule_id: s.id,
            cron_exp,
            timezone,
            every,
            jitter: s.jitter.map(format_duration),
            enabled: s.enabled,
            next_fire_at: s.next_fire_at.map(fmt_ts),
            last_fired_at: s.last_fired_at.map(fmt_ts),
        }
    }
}

/// One discovery run of a registry.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscoveryView {
    /// The discovery's scan (`GET /api/v1/scans/:scan_id`).
    pub scan_id: String,
    /// What the discovery unit reported about its run (JSON when it sent JSON).
    #[schema(value_type = Object)]
    pub stats: serde_json::Value,
    pub images_seen: u64,
    pub images_removed: u64,
    /// SBOM generations it queued.
    pub sboms_queued: u64,
    pub finished_at: Option<String>,
}

impl From<DiscoveryRecord> for DiscoveryView {
    fn from(d: DiscoveryRecord) -> Self {
        let stats = match d.stats {
            None => serde_json::Value::Null,
            Some(text) => serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        };
        DiscoveryView {
            scan_id: d.scan_id,
            stats,
            images_seen: d.images_seen,
            images_removed: d.images_removed,
            sboms_queued: d.sboms_queued,
            finished_at: d.finished_at.map(fmt_ts),
        }
    }
}

/// A registry as the API shows it: its definition and which credentials it has, never them.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistryView {
    pub id: String,
    /// The owning tenant's name.
    pub tenant: String,
    pub name: String,
    pub url: String,
    pub catalog: CatalogKind,
    pub insecure: bool,
    pub ca_bundle: Option<String>,
    pub repositories: Vec<RepositorySpec>,
    pub platforms: Vec<PlatformSpec>,
    /// Which credentials are set (`{"type": "basic", "username": ...}` or
    /// `{"type": "docker_config"}`); null without.
    pub auth: Option<AuthView>,
    pub discovery: Option<CadenceView>,
    pub scan: Option<CadenceView>,
    /// The latest discovery that finished.
    pub last_discovery: Option<DiscoveryView>,
    pub created_at: String,
    pub updated_at: String,
}

/// The stored definition of a registry. Only this module writes it: it always parses.
fn spec_of(r: &RegistryRecord) -> Result<RegistrySpec, ApiError> {
    serde_json::from_str(&r.definition)
        .map_err(|e| ApiError::internal(format!("registry {} definition: {e}", r.id)))
}

/// The stored credentials of a registry.
fn auth_of(r: &RegistryRecord) -> Result<Option<RegistryAuth>, ApiError> {
    r.auth
        .as_deref()
        .map(serde_json::from_str::<RegistryAuth>)
        .transpose()
        // The error names the position only, never the text: it is credentials.
        .map_err(|e| {
            ApiError::internal(format!(
                "registry {} credentials do not parse at line {} column {}",
                r.id,
                e.line(),
                e.column()
            ))
        })
}

async fn schedule_view(
    state: &AppState,
    id: Option<&str>,
) -> Result<Option<CadenceView>, ApiError> {
    let Some(id) = id else { return Ok(None) };
    // The registry was found in the caller's scope; its schedules are its own.
    Ok(state.store.schedule(None, id).await?.map(CadenceView::from))
}

/// The view of a registry; `tenant` is its tenant's name.
async fn view(
    state: &AppState,
    r: RegistryRecord,
    tenant: String,
) -> Result<RegistryView, ApiError> {
    let spec = spec_of(&r)?;
    let auth = auth_of(&r)?;
    let discovery = schedule_view(state, r.discovery_schedule_id.as_deref()).await?;
    let scan = schedule_view(state, r.scan_schedule_id.as_deref()).await?;
    let last_discovery = state
        .store
        .discoveries(&r.id, 1)
        .await?
        .into_iter()
        .next()
        .map(DiscoveryView::from);
    Ok(RegistryView {
        id: r.id,
        tenant,
        name: r.name,
        url: spec.url,
        catalog: spec.catalog,
        insecure: spec.insecure,
        ca_bundle: spec.ca_bundle,
        repositories: spec.repositories,
        platforms: spec.platforms,
        auth: auth.as_ref().map(AuthView::from),
        discovery,
        scan,
        last_discovery,
        created_at: fmt_ts(r.created_at),
        updated_at: fmt_ts(r.updated_at),
    })
}

/// A registry host as URLs and targets name it: a DNS name or IPv4 address (lowercased),
/// or a bracketed IPv6 address.
fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Checks a registry URL; returns it normalised (lowercase scheme and host, no trailing
/// `/`) and its `host[:port]`.
pub fn parse_url(url: &str) -> Result<(String, String), ApiError> {
    let bad = |problem: &str| {
        ApiError::invalid(
            "url",
            format!("{url:?} {problem}; expected https://host[:port] or http://host[:port]"),
        )
    };
    let starts = |prefix: &str| {
        url.get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    };
    let scheme = if starts("https://") {
        "https"
    } else if starts("http://") {
        "http"
    } else {
        return Err(bad("is not an https or http URL"));
    };
    let rest = &url[scheme.len() + 3..];
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        // Not quoted: what precedes the `@` is a password.
        return Err(ApiError::invalid(
            "url",
            "must not hold credentials (user:password@); give them as auth, which is never shown",
        ));
    }
    if rest.contains('/') {
        return Err(bad("has a path"));
    }
    if rest.contains('?') {
        return Err(bad("has a query"));
    }
    if rest.contains('#') {
        return Err(bad("has a fragment"));
    }
    let authority = rest.to_ascii_lowercase();
    // The port follows the last `:` outside an IPv6 address's brackets.
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority.as_str(), None),
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if !valid_host(host) {
        return Err(bad("has an invalid host"));
    }
    if let Some(port) = port {
        let ok = !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p > 0);
        if !ok {
            return Err(bad("has an invalid port (1-65535)"));
        }
    }
    // The target the discovery scans carry must parse as one.
    let target = Target::parse(&format!("registry://{authority}"))
        .map_err(|e| ApiError::invalid("url", e))?;
    let Target::Registry { registry, .. } = target else {
        return Err(bad("does not name a registry"));
    };
    Ok((format!("{scheme}://{authority}"), registry))
}

/// Why `name` is not a repository name of the distribution spec (lowercase path
/// components of letters and digits, separated by `.`, `_` or `-`), if it is not.
fn repository_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".to_string());
    }
    if name.len() > MAX_REPOSITORY_BYTES {
        return Some(format!(
            "{} bytes; at most {MAX_REPOSITORY_BYTES}",
            name.len()
        ));
    }
    for component in name.split('/') {
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let bytes = component.as_bytes();
        let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
            return Some(format!("{name:?} has an empty path component"));
        };
        if !alnum(first)
            || !alnum(last)
            || !bytes
                .iter()
                .all(|&b| alnum(b) || matches!(b, b'.' | b'_' | b'-'))
        {
            return Some(format!(
                "{name:?} is not a repository name: lowercase letters and digits, separated by '.', '_', '-' or '/'"
            ));
        }
    }
    None
}

fn validate_name(name: &str) -> Result<(), ApiError> {
    let chars = name.chars().count();
    if name.trim().is_empty() || chars > MAX_NAME_CHARS {
        return Err(ApiError::invalid(
            "name",
            format!("must be 1-{MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn validate_repositories(catalog: CatalogKind, repos: &[RepositorySpec]) -> Result<(), ApiError> {
    if catalog == CatalogKind::None && repos.is_empty() {
        return Err(ApiError::invalid(
            "repositories",
            "a registry without a catalog (catalog: none) must list its repositories",
        ));
    }
    if repos.len() > MAX_REPOSITORIES {
        return Err(ApiError::invalid(
            "repositories",
            format!("{} repositories; at most {MAX_REPOSITORIES}", repos.len()),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, repo) in repos.iter().enumerate() {
        if let Some(problem) = repository_problem(&repo.name) {
            return Err(ApiError::invalid(
                &format!("repositories[{i}].name"),
                problem,
            ));
        }
        if !seen.insert(repo.name.as_str()) {
            return Err(ApiError::invalid(
                &format!("repositories[{i}].name"),
                format!("{:?} is listed twice", repo.name),
            ));
        }
        let conditions: Vec<MatchCondition> = repo
            .match_conditions
            .iter()
            .map(|c| MatchCondition {
                name: c.name.clone(),
                expression: c.expression.clone(),
            })
            .collect();
        let operator = match repo.match_operator {
            MatchOperatorSpec::And => MatchOperator::And,
            MatchOperatorSpec::Or => MatchOperator::Or,
        };
        // Compiled now so that a condition the discovery unit cannot evaluate is a 422
        // here, not a failed run later.
        if let Err(e) = TagFilter::compile(&conditions, operator) {
            let field = match e.condition {
                Some(j) => format!(
                    "repositories[{i}].match_conditions[{j}].{}",
                    e.field.as_str()
                ),
                None => format!("repositories[{i}].match_conditions"),
            };
            return Err(ApiError::invalid(&field, e.message));
        }
    }
    Ok(())
}

fn validate_platforms(platforms: &[PlatformSpec]) -> Result<(), ApiError> {
    if platforms.len() > MAX_PLATFORMS {
        return Err(ApiError::invalid(
            "platforms",
            format!("{} platforms; at most {MAX_PLATFORMS}", platforms.len()),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, p) in platforms.iter().enumerate() {
        let parts = [
            ("os", Some(p.os.as_str())),
            ("arch", Some(p.arch.as_str())),
            ("variant", p.variant.as_deref()),
        ];
        for (part, value) in parts {
            let Some(value) = value else { continue };
            if value.trim().is_empty() {
                return Err(ApiError::invalid(
                    &format!("platforms[{i}].{part}"),
                    "must not be empty",
                ));
            }
            if value.len() > MAX_PLATFORM_PART
                || !value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(ApiError::invalid(
                    &format!("platforms[{i}].{part}"),
                    format!("{value:?} is not a platform {part} (e.g. linux, amd64, v8)"),
                ));
            }
        }
        if !seen.insert((&p.os, &p.arch, &p.variant)) {
            return Err(ApiError::invalid(
                &format!("platforms[{i}]"),
                "is listed twice",
            ));
        }
    }
    Ok(())
}

fn validate_ca_bundle(ca: Option<&str>) -> Result<(), ApiError> {
    let Some(ca) = ca else { return Ok(()) };
    if ca.len() > MAX_CA_BUNDLE {
        return Err(ApiError::invalid(
            "ca_bundle",
            format!("{} bytes; at most 1 MiB", ca.len()),
        ));
    }
    if !ca.contains("-----BEGIN CERTIFICATE-----") {
        return Err(ApiError::invalid(
            "ca_bundle",
            "must hold PEM certificates (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(())
}

/// Checks credentials. Messages never quote them.
pub(crate) fn validate_auth(auth: &RegistryAuth) -> Result<(), ApiError> {
    match auth {
        RegistryAuth::Basic { username, password } => {
            if username.trim().is_empty() || username.len() > MAX_USERNAME {
                return Err(ApiError::invalid(
                    "auth.username",
                    format!("must be 1-{MAX_USERNAME} bytes"),
                ));
            }
            // Basic auth joins the two with a colon: one in the username would split wrong.
            if username.contains(':') || username.chars().any(char::is_control) {
                return Err(ApiError::invalid(
                    "auth.username",
                    "must not contain ':' or control characters",
                ));
            }
            if password.is_empty() {
                return Err(ApiError::invalid("auth.password", "must not be empty"));
            }
        }
        RegistryAuth::DockerConfig { config_json } => {
            let doc: serde_json::Value = serde_json::from_str(config_json).map_err(|e| {
                ApiError::invalid(
                    "auth.config_json",
                    format!("is not JSON (line {} column {})", e.line(), e.column()),
                )
            })?;
            if !doc.get("auths").is_some_and(serde_json::Value::is_object) {
                return Err(ApiError::invalid(
                    "auth.config_json",
                    "must be a docker config.json document with an \"auths\" object",
                ));
            }
        }
    }
    Ok(())
}

/// Checks a whole definition and normalises its URL; returns the registry's `host[:port]`.
pub(crate) fn validate_spec(spec: &mut RegistrySpec) -> Result<String, ApiError> {
    validate_name(&spec.name)?;
    let (url, host) = parse_url(&spec.url)?;
    spec.url = url;
    validate_repositories(spec.catalog, &spec.repositories)?;
    validate_platforms(&spec.platforms)?;
    validate_ca_bundle(spec.ca_bundle.as_deref())?;
    Ok(host)
}

/// The cadence and jitter of a registry schedule given in `field`, anchored at `now`.
pub(crate) fn cadence(
    field: &str,
    req: &CadenceRequest,
    now: Timestamp,
) -> Result<(Cadence, Option<Duration>), ApiError> {
    let at = |name: &str| format!("{field}.{name}");
    let cadence = match (&req.cron_exp, &req.every) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                &format!("{field}.cron_exp, {field}.every"),
                "give either cron_exp or every, not both",
            ))
        }
        (None, None) => {
            return Err(ApiError::invalid(
                &format!("{field}.cron_exp, {field}.every"),
                "one of them is required",
            ))
        }
        (Some(expr), None) => Cadence::cron(expr, req.timezone.as_deref().unwrap_or("UTC"))
            .map_err(|e| {
                let name = if matches!(e, CadenceError::UnknownTimezone(_)) {
                    "timezone"
                } else {
                    "cron_exp"
                };
                ApiError::invalid(&at(name), e)
            })?,
        (None, Some(every)) => {
            if req.timezone.is_some() {
                return Err(ApiError::invalid(
                    &at("timezone"),
                    "applies only to cron_exp",
                ));
            }
            let period = DurationLimit::Interval
                .parse(every)
                .map_err(|e| ApiError::invalid(&at("every"), e))?;
            Cadence::every(period, now).map_err(|e| ApiError::invalid(&at("every"), e))?
        }
    };
    let jitter = req
        .jitter
        .as_deref()
        .map(|j| DurationLimit::Jitter.parse(j))
        .transpose()
        .map_err(|e| ApiError::invalid(&at("jitter"), e))?;
    Ok((cadence, jitter))
}

/// The discovery scan's target and options as a registry's schedule and on-demand runs
/// carry them.
fn discovery_options(registry_id: &str, repositories: Vec<String>) -> String {
    let options = DiscoveryOptions {
        registry_id: registry_id.to_string(),
        repositories,
    };
    // A struct of strings always serializes.
    serde_json::to_string(&options).unwrap_or_else(|_| "{}".to_string())
}

/// The name of a registry's discovery schedule: from the registry's id, so that it never
/// collides with a schedule a user named and survives renaming the registry.
fn discovery_schedule_name(registry_id: &str) -> String {
    format!("registry:{registry_id}:discovery")
}

/// Recomputes a schedule's next tick from now, as schedule edits do.
pub(crate) fn arm(s: &mut Schedule, now: Timestamp) -> Result<(), ApiError> {
    if s.enabled {
        let (tick, fire) = initial_ticks(&s.id, &s.cadence, s.jitter, now)
            .map_err(|e| ApiError::invalid("discovery", e))?;
        s.next_tick = tick;
        s.next_fire_at = fire;
        s.status = if tick.is_some() {
            ScheduleStatus::Active
        } else {
            ScheduleStatus::Completed
        };
    } else {
        s.next_tick = None;
        s.next_fire_at = None;
    }
    Ok(())
}

/// A new discovery schedule of a registry.
pub(crate) fn new_discovery_schedule(
    r: &RegistryRecord,
    host: &str,
    cadence: Cadence,
    jitter: Option<Duration>,
    now: Timestamp,
) -> Result<Schedule, ApiError> {
    let mut s = Schedule {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: r.tenant_id.clone(),
        project_id: None,
        name: discovery_schedule_name(&r.id),
        cadence,
        scanner: DISCOVERY_SCANNER.to_string(),
        targets: vec![format!("registry://{host}")],
        billing: false,
        options: discovery_options(&r.id, Vec::new()),
        enabled: true,
        status: ScheduleStatus::Active,
        // After downtime one discovery catches up on everything missed.
        missed_tick_policy: MissedTickPolicy::CatchUpOnce,
        starting_deadline: None,
        jitter,
        on_maintenance: WindowAction::Hold,
        next_tick: None,
        next_fire_at: None,
        last_fired_at: None,
        created_at: now,
        updated_at: now,
    };
    arm(&mut s, now)?;
    Ok(s)
}

/// A registry's discovery schedule on a new cadence: a new one, or `current` re-armed so
/// that its id and history stay.
pub(crate) fn rearmed_discovery_schedule(
    r: &RegistryRecord,
    host: &str,
    cadence: Cadence,
    jitter: Option<Duration>,
    current: Option<Schedule>,
    now: Timestamp,
) -> Result<Schedule, ApiError> {
    let mut s = new_discovery_schedule(r, host, cadence, jitter, now)?;
    if let Some(old) = current {
        s.id = old.id;
        s.enabled = old.enabled;
        s.last_fired_at = old.last_fired_at;
        s.created_at = old.created_at;
        arm(&mut s, now)?;
    }
    Ok(s)
}

/// Refuses a `scan` schedule (see [`SCAN_SCHEDULE_REFUSED`]).
fn refuse_scan_schedule(scan: Option<&CadenceRequest>, now: Timestamp) -> Result<(), ApiError> {
    if let Some(req) = scan {
        // Its own shape is checked first, so that a later version accepting it takes the
        // same bodies.
        cadence("scan", req, now)?;
        return Err(ApiError::invalid("scan", SCAN_SCHEDULE_REFUSED));
    }
    Ok(())
}

pub(crate) fn auth_json(auth: Option<&RegistryAuth>) -> Result<Option<String>, ApiError> {
    auth.map(serde_json::to_string)
        .transpose()
        .map_err(|e| ApiError::internal(format!("serializing credentials: {e}")))
}

pub(crate) fn definition_json(spec: &RegistrySpec) -> Result<String, ApiError> {
    serde_json::to_string(spec)
        .map_err(|e| ApiError::internal(format!("serializing a registry: {e}")))
}

/// A new registry record with its discovery schedule (when `discovery` is given), for
/// [`create_registry`] and the registries resources declare.
pub(crate) fn new_record(
    id: String,
    tenant_id: String,
    spec: &RegistrySpec,
    auth: Option<&RegistryAuth>,
    discovery: Option<(Cadence, Option<Duration>)>,
    host: &str,
    now: Timestamp,
) -> Result<(RegistryRecord, Vec<Schedule>), ApiError> {
    let mut record = RegistryRecord {
        id,
        tenant_id,
        name: spec.name.clone(),
        definition: definition_json(spec)?,
        auth: auth_json(auth)?,
        discovery_schedule_id: None,
        scan_schedule_id: None,
        created_at: now,
        updated_at: now,
    };
    let mut schedules = Vec::new();
    if let Some((cadence, jitter)) = discovery {
        let s = new_discovery_schedule(&record, host, cadence, jitter, now)?;
        record.discovery_schedule_id = Some(s.id.clone());
        schedules.push(s);
    }
    Ok((record, schedules))
}

/// Creates a registry, with its discovery schedule when `discovery` is given.
#[utoipa::path(post, path = "/api/v1/registries", request_body = RegistryCreate, tag = "registries",
    security(("bearer" = [])),
    responses((status = 201, body = RegistryView),
        (status = 409, body = error::ErrorBody, description = "The tenant already has a registry of this name"),
        error::Auth, error::JsonBody, error::Common))]
pub async fn create_registry(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppJson(req): AppJson<RegistryCreate>,
) -> Result<(StatusCode, Json<RegistryView>), ApiError> {
    let now = state.clock.now();
    let mut spec = RegistrySpec {
        name: req.name,
        url: req.url,
        catalog: req.catalog,
        insecure: req.insecure,
        ca_bundle: req.ca_bundle,
        repositories: req.repositories,
        platforms: req.platforms,
    };
    let host = validate_spec(&mut spec)?;
    if let Some(a) = &req.auth {
        validate_auth(a)?;
    }
    let discovery = req
        .discovery
        .as_ref()
        .map(|d| cadence("discovery", d, now))
        .transpose()?;
    refuse_scan_schedule(req.scan.as_ref(), now)?;

    let (record, schedules) = new_record(
        uuid::Uuid::now_v7().to_string(),
        caller.tenant.id.clone(),
        &spec,
        req.auth.as_ref(),
        discovery,
        &host,
        now,
    )?;
    state.store.create_registry(&record, &schedules).await?;
    tracing::info!(registry_id = %record.id, name = %record.name, host = %host, "registry created");
    if !schedules.is_empty() {
        state.wake_scheduler.notify_one();
    }
    let view = view(&state, record, caller.tenant.name.clone()).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Query of `GET /api/v1/registries`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RegistryQuery {
    /// Only this tenant's registries (a tenant name; the admin sees every tenant's by default).
    pub tenant: Option<String>,
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Lists registries in id order.
#[utoipa::path(get, path = "/api/v1/registries", params(RegistryQuery), tag = "registries",
    security(("bearer" = [])),
    responses((status = 200, body = Page<RegistryView>), error::Auth, error::QueryParams, error::Common))]
pub async fn list_registries(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppQuery(q): AppQuery<RegistryQuery>,
) -> Result<Json<Page<RegistryView>>, ApiError> {
    let limit = page_limit(q.limit)?;
    let after = cursor(q.cursor)?;
    let scope = listing_scope(&state, &caller, q.tenant.as_deref()).await?;
    let records = state
        .store
        .list_registries(scope.as_deref(), after.as_deref(), limit)
        .await?;
    let names = TenantNames::for_caller(&state, &caller).await?;
    let page = Page::of(records, limit, |r| &r.id, |r| r);
    let mut items = Vec::with_capacity(page.items.len());
    for r in page.items {
        let mut tenant = r.tenant_id.clone();
        names.name(&mut tenant);
        items.push(view(&state, r, tenant).await?);
    }
    Ok(Json(Page {
        items,
        next_cursor: page.next_cursor,
    }))
}

/// The caller's registry `id`, or a 404.
async fn registry_of(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<RegistryRecord, ApiError> {
    state
        .store
        .registry(caller.scope(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("registry", id))
}

/// One registry.
#[utoipa::path(get, path = "/api/v1/registries/{id}", tag = "registries",
    params(("id" = String, Path, description = "Registry id")),
    security(("bearer" = [])),
    responses((status = 200, body = RegistryView), error::Auth, error::PathId, error::Common))]
pub async fn get_registry(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppPath(id): AppPath<String>,
) -> Result<Json<RegistryView>, ApiError> {
    let r = registry_of(&state, &caller, &id).await?;
    let tenant = tenant_name(&state, &caller, &r.tenant_id).await?;
    Ok(Json(view(&state, r, tenant).await?))
}

/// Changes some fields of a registry; the whole definition is checked again.
#[utoipa::path(patch, path = "/api/v1/registries/{id}", request_body = RegistryPatch, tag = "registries",
    params(("id" = String, Path, description = "Registry id")),
    security(("bearer" = [])),
    responses((status = 200, body = RegistryView),
        (status = 409, body = error::ErrorBody, description = "The new name is another registry's of the tenant"),
        error::Auth, error::PathId, error::JsonBody, error::Common))]
pub async fn patch_registry(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppPath(id): AppPath<String>,
    AppJson(p): AppJson<RegistryPatch>,
) -> Result<Json<RegistryView>, ApiError> {
    let mut r = registry_of(&state, &caller, &id).await?;
    let now = state.clock.now();
    let mut spec = spec_of(&r)?;
    let mut auth = auth_of(&r)?;
    if let Some(name) = p.name {
        spec.name = name;
    }
    if let Some(url) = p.url {
        spec.url = url;
    }
    if let Some(catalog) = p.catalog {
        spec.catalog = catalog;
    }
    if let Some(insecure) = p.insecure {
        spec.insecure = insecure;
    }
    if let Some(ca) = p.ca_bundle {
        spec.ca_bundle = ca;
    }
    if let Some(repos) = p.repositories {
        spec.repositories = repos;
    }
    if let Some(platforms) = p.platforms {
        spec.platforms = platforms;
    }
    let host = validate_spec(&mut spec)?;
    if let Some(a) = p.auth {
        if let Some(a) = &a {
            validate_auth(a)?;
        }
        auth = a;
    }
    // `Some(None)`: remove the schedule; `Some(Some)`: a new cadence; `None`: keep it.
    let new_cadence = match &p.discovery {
        Some(Some(d)) => Some(Some(cadence("discovery", d, now)?)),
        Some(None) => Some(None),
        None => None,
    };
    if let Some(Some(scan)) = &p.scan {
        refuse_scan_schedule(Some(scan), now)?;
    }

    let current = match r.discovery_schedule_id.as_deref() {
        Some(sid) => state.store.schedule(None, sid).await?,
        None => None,
    };
    let discovery = match (new_cadence, current) {
        (Some(None), _) | (None, None) => None,
        (Some(Some((cadence, jitter))), current) => Some(rearmed_discovery_schedule(
            &r, &host, cadence, jitter, current, now,
        )?),
        (None, Some(mut s)) => {
            // Same cadence; the target follows the URL.
            s.targets = vec![format!("registry://{host}")];
            s.updated_at = now;
            Some(s)
        }
    };
    r.name = spec.name.clone();
    r.definition = definition_json(&spec)?;
    r.auth = auth_json(auth.as_ref())?;
    r.discovery_schedule_id = discovery.as_ref().map(|s| s.id.clone());
    // No scan schedule can be created yet; one removed with `scan: null` goes.
    if matches!(p.scan, Some(None)) {
        r.scan_schedule_id = None;
    }
    r.updated_at = now;
    let mut schedules: Vec<Schedule> = discovery.into_iter().collect();
    if let Some(sid) = r.scan_schedule_id.as_deref() {
        // A scan schedule written by a later version stays as it is.
        if let Some(s) = state.store.schedule(None, sid).await? {
            schedules.push(s);
        }
    }
    state.store.update_registry(&r, &schedules).await?;
    tracing::info!(registry_id = %r.id, name = %r.name, "registry updated");
    state.wake_scheduler.notify_one();
    let tenant = tenant_name(&state, &caller, &r.tenant_id).await?;
    Ok(Json(view(&state, r, tenant).await?))
}

/// Deletes a registry with its schedules, images and discoveries; SBOMs of its digests
/// stay (they belong to the digest).
#[utoipa::path(delete, path = "/api/v1/registries/{id}", tag = "registries",
    params(("id" = String, Path, description = "Registry id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), error::Auth, error::PathId, error::Common))]
pub async fn delete_registry(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppPath(id): AppPath<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_registry(caller.scope(), &id).await? {
        tracing::info!(registry_id = %id, "registry deleted");
        state.wake_scheduler.notify_one();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("registry", &id))
    }
}

/// Body of `POST /api/v1/registries/:id/discover`; the body itself is optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverRequest {
    /// Discover only these repositories (empty: as the registry says). A narrower run
    /// marks removed only the tags of these repositories it did not see.
    #[serde(default)]
    pub repositories: Vec<String>,
}

/// A JSON body that may be left out: an empty body is `T::default()`; any other goes
/// through [`AppJson`] (content type, NUL check, typed fields).
async fn optional_json<T: DeserializeOwned + Default>(
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| error::bytes_rejection(&e))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let mut req = Request::new(Body::from(bytes));
    *req.headers_mut() = headers;
    let AppJson(value) = AppJson::<T>::from_request(req, &()).await?;
    Ok(value)
}

/// Queues a discovery of the registry now; answers its run id.
#[utoipa::path(post, path = "/api/v1/registries/{id}/discover", tag = "registries",
    params(("id" = String, Path, description = "Registry id")),
    request_body(content = Option<DiscoverRequest>, description = "Optional: the repositories to narrow the run to"),
    security(("bearer" = [])),
    responses((status = 202, body = ScanAccepted), error::Auth, error::PathId, error::JsonBody, error::Common))]
pub async fn discover(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ScanAccepted>), ApiError> {
    let req: DiscoverRequest = optional_json(headers, body).await?;
    let r = registry_of(&state, &caller, &id).await?;
    let spec = spec_of(&r)?;
    // The stored URL was checked when written; its host is the target.
    let (_, host) = parse_url(&spec.url)
        .map_err(|e| ApiError::internal(format!("registry {} url: {}", r.id, e.message)))?;
    if req.repositories.len() > MAX_REPOSITORIES {
        return Err(ApiError::invalid(
            "repositories",
            format!(
                "{} repositories; at most {MAX_REPOSITORIES}",
                req.repositories.len()
            ),
        ));
    }
    for (i, name) in req.repositories.iter().enumerate() {
        if let Some(problem) = repository_problem(name) {
            return Err(ApiError::invalid(&format!("repositories[{i}]"), problem));
        }
        // Without a catalog, the registry's list is all the unit can know about.
        if spec.catalog == CatalogKind::None && !spec.repositories.iter().any(|s| &s.name == name) {
            return Err(ApiError::invalid(
                &format!("repositories[{i}]"),
                format!("{name:?} is not one of the registry's repositories (catalog: none)"),
            ));
        }
    }
    // Sorted and deduplicated: the same narrowing is the same scope however it was written.
    let repositories: Vec<String> = req
        .repositories
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let options = discovery_options(&r.id, repositories);
    let scan = state
        .store
        .create_scan(
            NewScan {
                tenant_id: r.tenant_id.clone(),
                project_id: None,
                schedule_id: None,
                fire_time: None,
                trigger: Trigger::OnDemand,
                scanner: DISCOVERY_SCANNER.to_string(),
                provider: Some(provider(&host)),
                targets: vec![format!("registry://{host}")],
                billing: false,
                // The registry and the narrowing are the run's scope: a narrower run is not
                // comparable with a full one, nor one registry's with another's on the same
                // host.
                scope_options: options.clone(),
                options,
                on_maintenance: WindowAction::Hold,
            },
            state.clock.now(),
        )
        .await?;
    tracing::info!(scan_run_id = %scan.id, registry_id = %r.id, "discovery queued");
    state.wake_dispatcher.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(ScanAccepted {
            scan_run_id: scan.id,
            status: scan.status.to_string(),
        }),
    ))
}

/// Query of `GET /api/v1/registries/:id/discoveries`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DiscoveriesQuery {
    /// How many, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// The latest discoveries of a registry that finished, newest first.
#[utoipa::path(get, path = "/api/v1/registries/{id}/discoveries", tag = "registries",
    params(("id" = String, Path, description = "Registry id"), DiscoveriesQuery),
    security(("bearer" = [])),
    responses((status = 200, body = [DiscoveryView]), error::Auth, error::PathId, error::QueryParams, error::Common))]
pub async fn list_discoveries(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    AppPath(id): AppPath<String>,
    AppQuery(q): AppQuery<DiscoveriesQuery>,
) -> Result<Json<Vec<DiscoveryView>>, ApiError> {
    let limit = page_limit(q.limit)?;
    let r = registry_of(&state, &caller, &id).await?;
    let list = state.store.discoveries(&r.id, limit).await?;
    Ok(Json(list.into_iter().map(DiscoveryView::from).collect()))
}

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_registries, create_registry))
        .routes(routes!(get_registry, patch_registry, delete_registry))
        .routes(routes!(discover))
        .routes(routes!(list_discoveries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalised_or_refused() {
        assert_eq!(
            parse_url("HTTPS://Registry.Example:5000/").unwrap(),
            (
                "https://registry.example:5000".to_string(),
                "registry.example:5000".to_string()
            )
        );
        assert_eq!(
            parse_url("http://127.0.0.1:5000").unwrap().1,
            "127.0.0.1:5000"
        );
        assert_eq!(parse_url("https://[::1]:5000").unwrap().1, "[::1]:5000");
        for bad in [
            "ftp://r.example",
            "r.example",
            "https://",
            "https://r.example/v2",
            "https://r.example?x=1",
            "https://r.example#f",
            "https://u:p@r.example",
            "https://r.example:0",
            "https://r.example:70000",
            "https://r.example:",
            "https://r_x.example",
            "https://r.example//",
            "https:// r.example",
            "ééééé",
            "httpsé://r.example",
            "https://ré.example",
        ] {
            let e = parse_url(bad).unwrap_err();
            assert!(e.message.starts_with("url: "), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn repository_names_follow_the_distribution_spec() {
        for ok in ["app", "library/nginx", "a.b_c-d/e__f", "0"] {
            assert_eq!(repository_problem(ok), None, "{ok}");
        }
        for bad in ["", "App", "a//b", "/a", "a/", "-a", "a-", "a b", "a:b"] {
            assert!(repository_problem(bad).is_some(), "{bad:?}");
        }
        assert!(repository_problem(&"a".repeat(256)).is_some());
    }
}
