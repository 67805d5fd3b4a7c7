//! `scanplane vuln match`: the built-in matcher offline, for pipelines. Reads OSV advisories
//! (a directory of `.json` records and/or ecosystem `all.zip` exports, or one zip) and an
//! SPDX or CycloneDX JSON SBOM, prints every match (JSON or SARIF 2.1.0), and exits 1 when a
//! match reaches `--fail-on`, 2 on bad input with one line naming the file and the problem.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use scanplane_core::finding::{Finding, Severity as FindingSeverity};
use scanplane_osv::{Advisory, Severity};
use scanplane_store::StoredFinding;
use scanplane_vuln::{EcosystemOrder, Matcher, VulnMatch};

#[derive(Debug, Subcommand)]
pub enum VulnCommand {
    /// Match an SBOM against OSV advisories, offline.
    Match(MatchArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Json,
    Sarif,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FailOn {
    Low,
    Medium,
    High,
    Critical,
}

impl FailOn {
    fn severity(self) -> Severity {
        match self {
            FailOn::Low => Severity::Low,
            FailOn::Medium => Severity::Medium,
            FailOn::High => Severity::High,
            FailOn::Critical => Severity::Critical,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct MatchArgs {
    /// OSV advisories: a directory of `.json` records and/or `*.zip` exports, or one zip.
    #[arg(long)]
    pub advisories: PathBuf,
    /// The SBOM: SPDX 2.3 or CycloneDX 1.4-1.6 JSON.
    #[arg(long)]
    pub sbom: PathBuf,
    #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
    pub format: OutputFormat,
    /// Exit 1 when a match is at least this severe.
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOn>,
}

/// Bad input: the file and the problem, printed as one line.
struct InputError(String);

fn bad(path: &Path, problem: impl std::fmt::Display) -> InputError {
    let one_line: String = problem
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    InputError(format!("{}: {one_line}", path.display()))
}

/// Loads every advisory under `path`; refused records are counted on stderr, not fatal.
fn load(path: &Path) -> Result<Vec<Advisory>, InputError> {
    let meta = std::fs::metadata(path).map_err(|e| bad(path, e))?;
    let mut zips = Vec::new();
    let mut advisories = Vec::new();
    let mut rejected = Vec::new();
    if meta.is_dir() {
        let report = scanplane_osv::load_dir(path).map_err(|e| bad(path, e))?;
        advisories.extend(report.advisories);
        rejected.extend(report.rejected);
        let entries = std::fs::read_dir(path).map_err(|e| bad(path, e))?;
        for entry in entries {
            let p = entry.map_err(|e| bad(path, e))?.path();
            if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("zip")) {
                zips.push(p);
            }
        }
        zips.sort();
    } else {
        zips.push(path.to_path_buf());
    }
    for zip in zips {
        let file = std::fs::File::open(&zip).map_err(|e| bad(&zip, e))?;
        let report =
            scanplane_osv::load_zip(std::io::BufReader::new(file)).map_err(|e| bad(&zip, e))?;
        advisories.extend(report.advisories);
        rejected.extend(report.rejected);
    }
    if !rejected.is_empty() {
        let first = &rejected[0];
        eprintln!(
            "warning: {} advisory records skipped; first: {}: {}",
            rejected.len(),
            first.source,
            first.reason
        );
    }
    Ok(advisories)
}

fn finding_severity(m: &VulnMatch) -> FindingSeverity {
    match m.severity_rank() {
        Severity::Critical => FindingSeverity::Critical,
        Severity::High => FindingSeverity::High,
        Severity::Medium => FindingSeverity::Medium,
        Severity::Low => FindingSeverity::Low,
        Severity::Unknown => FindingSeverity::Info,
    }
}

/// The matches as findings, for the SARIF writer the API's exports use.
fn findings(sbom: &Path, matches: &[VulnMatch]) -> Vec<StoredFinding> {
    let target = sbom.display().to_string();
    let now = scanplane_core::clock::Clock::now(&scanplane_core::clock::SystemClock);
    matches
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let location = m.purl.clone().unwrap_or_else(|| m.package.clone());
            let mut detail = format!("{} {} is affected", m.package, m.installed_version);
            if !m.fixed_versions.is_empty() {
                detail.push_str(&format!("; fixed in {}", m.fixed_versions.join(", ")));
            }
            if !m.aliases.is_empty() {
                detail.push_str(&format!("; aliases: {}", m.aliases.join(", ")));
            }
            if let Some(score) = m.cvss_score {
                detail.push_str(&format!("; CVSS {score:.1}"));
            }
            StoredFinding {
                id: i.to_string(),
                tenant_id: String::new(),
                scan_id: String::new(),
                scanner: "scanplane-vuln".into(),
                created_at: now,
                finding: Finding {
                    target: target.clone(),
                    rule_id: m.id.clone(),
                    severity: finding_severity(m),
                    title: format!("{} in {} {}", m.id, m.package, m.installed_version),
                    fingerprint: scanplane_core::finding::fingerprint(
                        "scanplane-vuln",
                        &[&target, &location, &m.id],
                    ),
                    location,
                    detail,
                },
                triage: scanplane_core::identity::Triage::None,
                triage_comment: None,
            }
        })
        .collect()
}

/// Runs `vuln match`; returns the exit code.
pub fn run(command: VulnCommand) -> i32 {
    let VulnCommand::Match(args) = command;
    match run_match(&args) {
        Ok(code) => code,
        Err(InputError(line)) => {
            eprintln!("error: {line}");
            2
        }
    }
}

fn run_match(args: &MatchArgs) -> Result<i32, InputError> {
    let advisories = load(&args.advisories)?;
    let document = std::fs::read(&args.sbom).map_err(|e| bad(&args.sbom, e))?;
    let index = scanplane_sbom::index_any(&document).map_err(|e| bad(&args.sbom, e))?;
    let matcher = Matcher::new(advisories);
    let matches = matcher.match_index(&index, &EcosystemOrder);
    let out = match args.format {
        OutputFormat::Json => {
            let mut v = serde_json::to_vec_pretty(&matches)
                .map_err(|e| InputError(format!("encoding the matches: {e}")))?;
            v.push(b'\n');
            v
        }
        OutputFormat::Sarif => {
            let invocation = scanplane_api::export::invocation(
                true,
                &format!(
                    "{} packages matched against {} advisories",
                    index.packages.len(),
                    matcher.len()
                ),
                None,
                None,
            );
            let mut v = scanplane_api::export::sarif_bytes(
                "scanplane-vuln",
                &invocation,
                &findings(&args.sbom, &matches),
            );
            v.push(b'\n');
            v
        }
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(&out).and_then(|()| stdout.flush()) {
        // A closed pipe (`| head`) is the reader's choice; anything else is reported.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: writing the matches: {e}");
            return Ok(2);
        }
    }
    let failed = args.fail_on.is_some_and(|threshold| {
        matches
            .iter()
            .any(|m| m.severity_rank() >= threshold.severity())
    });
    Ok(i32::from(failed))
}
