//! The rematch benchmark: 10,000 stored SBOMs of about 300 packages (a generated fleet with a
//! realistic mix: Alpine, Debian and Ubuntu bases under npm, PyPI, Go and Maven
//! dependencies, popularity Zipf-distributed), 20,000 stored advisories, then an advisory
//! update touching 50 packages. Measured in one run, on one store: storing the SBOMs, their
//! first match (every package of every SBOM: the full-match throughput), the incremental
//! rematch of the update (only the SBOMs, and only the packages, of the keys it changed), and
//! a full rematch of every SBOM against the same advisories (the baseline: what an engine
//! without an index of affected packages does on every update). Peak memory of this process
//! is measured per phase (VmHWM reset through `/proc/self/clear_refs`); with PostgreSQL the
//! server's memory is not in it.
//!
//! `cargo bench -p scanplane-rematch --bench rematch` runs SQLite and, when
//! `SCANPLANE_TEST_POSTGRES_URL` is set, PostgreSQL. `BENCH_SBOMS` (default 10000),
//! `BENCH_PACKAGES` (300), `BENCH_ADVISORIES` (20000) and `BENCH_UPDATE` (50) size it;
//! `BENCH_BACKEND=sqlite` or `postgres` measures one backend only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scanplane_core::clock::SystemClock;
use scanplane_core::maintenance::WindowAction;
use scanplane_core::scan::{ScanStatus, Trigger};
use scanplane_rematch::Rematcher;
use scanplane_store::{Backend, NewAdvisory, NewSbom, NewScan, SbomPackage, ScanChange, Store};
use serde_json::json;

/// splitmix64: deterministic, so every run (and both backends) measures the same fleet.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Ranks 0..n drawn with probability ∝ 1/(rank+1): a few packages are in most images, most
/// in few.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for i in 0..n {
            sum += 1.0 / (i as f64 + 1.0);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf { cdf }
    }
    fn draw(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Eco {
    Alpine,
    Debian,
    Ubuntu,
    Npm,
    PyPi,
    Go,
    Maven,
}

impl Eco {
    fn pool(self) -> usize {
        match self {
            Eco::Alpine => 300,
            Eco::Debian | Eco::Ubuntu => 600,
            Eco::Npm => 30_000,
            Eco::PyPi => 15_000,
            Eco::Go | Eco::Maven => 8_000,
        }
    }
    /// OSV ecosystem as advisories name it.
    fn osv(self) -> &'static str {
        match self {
            Eco::Alpine => "Alpine:v3.19",
            Eco::Debian => "Debian:12",
            Eco::Ubuntu => "Ubuntu:22.04:LTS",
            Eco::Npm => "npm",
            Eco::PyPi => "PyPI",
            Eco::Go => "Go",
            Eco::Maven => "Maven",
        }
    }
    fn name(self, i: usize) -> String {
        match self {
            Eco::Alpine => format!("apk-src{i}"),
            Eco::Debian => format!("deb-src{i}"),
            Eco::Ubuntu => format!("ubu-src{i}"),
            Eco::Npm => format!("npm-pkg-{i}"),
            // Not in PEP 503 form: matching must normalise it as PyPI does.
            Eco::PyPi => format!("Py_Pkg.{i}"),
            Eco::Go => format!("github.com/org{}/mod{i}", i % 100),
            Eco::Maven => format!("org.example{}:artifact{i}", i % 50),
        }
    }
    /// Minor `k` of the package's versions as installed and as advisories write it.
    fn version(self, k: usize, installed: bool) -> String {
        match self {
            Eco::Alpine => format!("1.{k}.0-r0"),
            Eco::Debian | Eco::Ubuntu => format!("2.{k}.0-1"),
            Eco::Go if installed => format!("v1.{k}.0"),
            _ => format!("1.{k}.0"),
        }
    }
    fn package(self, i: usize, k: usize) -> SbomPackage {
        let name = self.name(i);
        let version = self.version(k, true);
        let (purl, distro, source) = match self {
            Eco::Alpine => (
                format!("pkg:apk/alpine/{name}@{version}?arch=x86_64&distro=3.19.1"),
                Some("alpine-3.19.1"),
                true,
            ),
            Eco::Debian => (
                format!("pkg:deb/debian/{name}@{version}?arch=amd64&distro=debian-12.4"),
                Some("debian-12.4"),
                true,
            ),
            Eco::Ubuntu => (
                format!("pkg:deb/ubuntu/{name}@{version}?arch=amd64&distro=ubuntu-22.04"),
                Some("ubuntu-22.04"),
                true,
            ),
            Eco::Npm => (format!("pkg:npm/{name}@{version}"), None, false),
            Eco::PyPi => (format!("pkg:pypi/{name}@{version}"), None, false),
            Eco::Go => (format!("pkg:golang/{name}@{version}"), None, false),
            Eco::Maven => {
                let (group, artifact) = name.split_once(':').unwrap();
                (
                    format!("pkg:maven/{group}/{artifact}@{version}"),
                    None,
                    false,
                )
            }
        };
        let source_name = source.then(|| name.clone());
        SbomPackage {
            match_key: scanplane_vuln::match_key(&purl, source_name.as_deref(), distro),
            name,
            version: Some(version.clone()),
            purl: Some(purl),
            ecosystem: Some(
                match self {
                    Eco::Alpine => "apk",
                    Eco::Debian | Eco::Ubuntu => "deb",
                    Eco::Npm => "npm",
                    Eco::PyPi => "pypi",
                    Eco::Go => "golang",
                    Eco::Maven => "maven",
                }
                .into(),
            ),
            distro: distro.map(String::from),
            source_name,
            source_version: source.then_some(version),
            layer_diff_id: Some(format!("sha256:{:064x}", (self as u64) + 1)),
        }
    }
}

const LANGUAGES: [Eco; 4] = [Eco::Npm, Eco::PyPi, Eco::Go, Eco::Maven];
const ALL: [Eco; 7] = [
    Eco::Alpine,
    Eco::Debian,
    Eco::Ubuntu,
    Eco::Npm,
    Eco::PyPi,
    Eco::Go,
    Eco::Maven,
];

struct Fleet {
    zipf: BTreeMap<Eco, Zipf>,
}

impl Fleet {
    fn new() -> Fleet {
        Fleet {
            zipf: ALL.iter().map(|&e| (e, Zipf::new(e.pool()))).collect(),
        }
    }

    /// One image's packages: a distribution base (its first packages always, then more by
    /// popularity) and language dependencies, mostly of one language.
    fn image(&self, rng: &mut Rng, size: usize) -> Vec<(Eco, usize, SbomPackage)> {
        let (base, always, os_total) = match rng.below(3) {
            0 => (Eco::Alpine, 15, 40),
            1 => (Eco::Debian, 80, 120),
            _ => (Eco::Ubuntu, 80, 110),
        };
        let os_total = os_total.min(size);
        let mut seen = BTreeSet::new();
        let mut out = Vec::with_capacity(size);
        let mut add = |eco: Eco, i: usize, rng: &mut Rng, out: &mut Vec<_>| {
            if seen.insert((eco, i)) {
                let k = rng.below(10);
                out.push((eco, i, eco.package(i, k)));
            }
        };
        for i in 0..always.min(os_total) {
            add(base, i, rng, &mut out);
        }
        let mut tries = 0;
        while out.len() < os_total && tries < 10 * size {
            let i = self.zipf[&base].draw(rng);
            add(base, i, rng, &mut out);
            tries += 1;
        }
        let primary = LANGUAGES[rng.below(LANGUAGES.len())];
        while out.len() < size && tries < 100 * size {
            let eco = if rng.unit() < 0.8 {
                primary
            } else {
                LANGUAGES[rng.below(LANGUAGES.len())]
            };
            let i = self.zipf[&eco].draw(rng);
            add(eco, i, rng, &mut out);
            tries += 1;
        }
        out
    }
}

/// An OSV record: `eco`'s package `i` affected from the start up to minor `fixed`.
fn advisory(id: &str, eco: Eco, i: usize, fixed: usize, modified: &str) -> NewAdvisory {
    let kind = match eco {
        Eco::Npm | Eco::Go => "SEMVER",
        _ => "ECOSYSTEM",
    };
    let doc = json!({
        "schema_version": "1.6.0",
        "id": id,
        "modified": modified,
        "aliases": [format!("CVE-2026-{}", &id[6..])],
        "summary": format!("bench advisory {id}"),
        "affected": [{
            "package": {"ecosystem": eco.osv(), "name": eco.name(i)},
            "ranges": [{"type": kind, "events": [
                {"introduced": "0"}, {"fixed": eco.version(fixed, false)}]}],
        }],
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
    });
    let bytes = doc.to_string().into_bytes();
    let parsed = scanplane_osv::parse(&bytes).unwrap();
    scanplane_rematch::import::new_advisory(bytes, &parsed)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
        })
        .unwrap_or(default)
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn reset_peak() {
    // "5" resets VmHWM to the current RSS (Linux ≥ 4.0).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

struct Phase {
    name: &'static str,
    took: Duration,
    peak_kib: u64,
    note: String,
}

async fn import(store: &dyn Store, source: &str, advisories: &[NewAdvisory]) -> String {
    let now = chrono::Utc::now();
    let id = store.begin_import(source, now).await.unwrap();
    for chunk in advisories.chunks(500) {
        store.import_advisories(&id, chunk, now).await.unwrap();
    }
    store.finish_import(&id, 0, &[], now).await.unwrap();
    id
}

async fn run(backend: Backend) {
    let sboms = env_usize("BENCH_SBOMS", 10_000);
    let size = env_usize("BENCH_PACKAGES", 300);
    let advisories = env_usize("BENCH_ADVISORIES", 20_000);
    let update = env_usize("BENCH_UPDATE", 50);
    let url = scanplane_store::testing::fresh_url(backend).await.unwrap();
    let store: Arc<dyn Store> = Arc::new(scanplane_store::open(&url).await.unwrap());
    let rematcher = Rematcher {
        store: store.clone(),
        clock: Arc::new(SystemClock),
        every: Duration::from_secs(2),
    };
    let mut rng = Rng(0x5CA9_91A7E);
    let fleet = Fleet::new();
    let mut phases = Vec::new();

    // Advisories on packages drawn uniformly over every ecosystem's pool together (an
    // ecosystem gets advisories in proportion to its packages): about a third of packages
    // have one, and an image gets a few dozen vulnerabilities.
    let mut by_key: BTreeMap<(Eco, usize), Vec<usize>> = BTreeMap::new();
    let pools: usize = ALL.iter().map(|e| e.pool()).sum();
    let started = Instant::now();
    let mut base: Vec<NewAdvisory> = Vec::with_capacity(advisories);
    for n in 0..advisories {
        let mut i = rng.below(pools);
        let mut eco = ALL[0];
        for e in ALL {
            if i < e.pool() {
                eco = e;
                break;
            }
            i -= e.pool();
        }
        let fixed = 1 + rng.below(9);
        by_key.entry((eco, i)).or_default().push(base.len());
        base.push(advisory(
            &format!("BENCH-{n:06}"),
            eco,
            i,
            fixed,
            "2026-01-01T00:00:00Z",
        ));
    }
    import(store.as_ref(), "bench advisories", &base).await;
    rematcher.pass().await.unwrap(); // its rematch: no SBOMs yet
    eprintln!(
        "[{backend:?}] {advisories} advisories stored in {:.1?}",
        started.elapsed()
    );

    // The fleet.
    let tenant = store.ensure_tenant("default").await.unwrap();
    let now = chrono::Utc::now();
    let scan = store
        .create_scan(
            NewScan {
                tenant_id: tenant.id.clone(),
                project_id: None,
                schedule_id: None,
                fire_time: None,
                trigger: Trigger::Pipeline,
                scanner: "sbom".into(),
                provider: None,
                targets: vec!["image://127.0.0.1:5000/bench@sha256:00".into()],
                billing: false,
                options: "{}".into(),
                scope_options: "{}".into(),
                on_maintenance: WindowAction::Hold,
            },
            now,
        )
        .await
        .unwrap();
    store
        .transition(
            &scan.id,
            ScanStatus::Cancelled,
            &ScanChange {
                reason: "bench: owns the generated SBOMs".into(),
                ..Default::default()
            },
            now,
        )
        .await
        .unwrap();
    let mut used: BTreeMap<(Eco, usize), u64> = BTreeMap::new();
    let mut package_total = 0u64;
    reset_peak();
    let started = Instant::now();
    for n in 0..sboms {
        let image = fleet.image(&mut rng, size);
        let components: Vec<serde_json::Value> = image
            .iter()
            .map(|(_, _, p)| json!({"type": "library", "name": p.name, "version": p.version, "purl": p.purl}))
            .collect();
        let document =
            json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": components});
        for (eco, i, _) in &image {
            *used.entry((*eco, *i)).or_default() += 1;
        }
        package_total += image.len() as u64;
        let sbom = NewSbom {
            digest: format!("sha256:{n:064x}"),
            format: "cyclonedx-json".into(),
            generator: "bench".into(),
            document: document.to_string().into_bytes(),
            os: None,
            packages: image.into_iter().map(|(_, _, p)| p).collect(),
        };
        assert!(store.store_sbom(&scan, &sbom, now).await.unwrap());
        if (n + 1) % 2000 == 0 {
            eprintln!(
                "[{backend:?}] {} SBOMs stored ({:.1?})",
                n + 1,
                started.elapsed()
            );
        }
    }
    phases.push(Phase {
        name: "store the SBOMs",
        took: started.elapsed(),
        peak_kib: status_kib("VmHWM:"),
        note: format!(
            "{sboms} SBOMs, {package_total} packages ({} distinct)",
            used.len()
        ),
    });

    // First match: every package of every SBOM.
    reset_peak();
    let started = Instant::now();
    let first = rematcher.pass().await.unwrap();
    let took = started.elapsed();
    assert_eq!(first.new_sboms, sboms as u64);
    let open = open_findings(store.as_ref()).await;
    phases.push(Phase {
        name: "first match (full)",
        took,
        peak_kib: status_kib("VmHWM:"),
        note: format!(
            "{:.0} packages/s, {:.0} SBOMs/s; {open} findings",
            package_total as f64 / took.as_secs_f64(),
            sboms as f64 / took.as_secs_f64()
        ),
    });

    // The update: `update` packages drawn uniformly among those in at least one SBOM; a
    // package with advisories gets one of them corrected (fixed later), others a new one.
    let used_keys: Vec<(Eco, usize)> = used.keys().copied().collect();
    let mut picked = BTreeSet::new();
    while picked.len() < update.min(used_keys.len()) {
        picked.insert(used_keys[rng.below(used_keys.len())]);
    }
    let mut changes = Vec::new();
    let mut fleet_share = 0u64;
    for (n, &(eco, i)) in picked.iter().enumerate() {
        fleet_share += used[&(eco, i)];
        match by_key.get(&(eco, i)).and_then(|v| v.first()) {
            Some(&existing) => {
                let id = base[existing].id.clone();
                changes.push(advisory(&id, eco, i, 9, "2026-06-01T00:00:00Z"));
            }
            None => changes.push(advisory(
                &format!("UPDATE-{n:06}"),
                eco,
                i,
                1 + rng.below(9),
                "2026-06-01T00:00:00Z",
            )),
        }
    }
    let import_id = import(store.as_ref(), "bench update", &changes).await;
    reset_peak();
    let started = Instant::now();
    let pass = rematcher.pass().await.unwrap();
    let incremental = started.elapsed();
    let record = store.advisory_import(&import_id).await.unwrap().unwrap();
    assert!(record.rematch.finished_at.is_some());
    assert_eq!(pass.rematched, record.rematch.considered);
    phases.push(Phase {
        name: "incremental rematch",
        took: incremental,
        peak_kib: status_kib("VmHWM:"),
        note: format!(
            "{} packages changed ({} added, {} modified), in {fleet_share} of the stored package entries; \
             {} SBOMs considered, {} with a new report; findings +{} new, {} fixed",
            picked.len(),
            record.counts.added,
            record.counts.modified,
            record.rematch.considered,
            record.rematch.rematched,
            record.rematch.findings_new,
            record.rematch.findings_fixed
        ),
    });

    // Baseline: every SBOM, every package, same advisories.
    reset_peak();
    let started = Instant::now();
    let full = rematcher.rematch_all().await.unwrap();
    let full_took = started.elapsed();
    assert_eq!(full.considered, sboms as u64);
    phases.push(Phase {
        name: "full rematch (baseline)",
        took: full_took,
        peak_kib: status_kib("VmHWM:"),
        note: format!(
            "{:.0} packages/s; {} SBOMs, {} with a changed report (must be 0: the incremental rematch left nothing out)",
            full.packages as f64 / full_took.as_secs_f64(),
            full.considered,
            full.changed
        ),
    });

    println!("\n### {backend:?}: {sboms} SBOMs × {size} packages, {advisories} advisories, update of {update}\n");
    println!("| phase | wall | peak RSS of the process | notes |");
    println!("|---|---|---|---|");
    for p in &phases {
        println!(
            "| {} | {:.2}s | {} | {} |",
            p.name,
            p.took.as_secs_f64(),
            mib(p.peak_kib),
            p.note
        );
    }
    println!(
        "\nincremental vs full: {:.1}x faster\n",
        full_took.as_secs_f64() / incremental.as_secs_f64()
    );
    assert_eq!(
        full.changed, 0,
        "a full rematch after the incremental one changed reports: the incremental rematch missed something"
    );
}

async fn open_findings(store: &dyn Store) -> u64 {
    let mut total = 0;
    let mut after = None;
    loop {
        let page = store
            .list_identities(
                None,
                &scanplane_store::IdentityFilter {
                    status: Some(scanplane_core::identity::FindingStatus::Open),
                    after: after.clone(),
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let Some(last) = page.last() else {
            return total;
        };
        after = Some(last.id.clone());
        total += page.len() as u64;
    }
}

#[tokio::main]
async fn main() {
    // `BENCH_BACKEND=postgres` (or `sqlite`) measures one backend only.
    let only = std::env::var("BENCH_BACKEND").ok();
    if only.as_deref() != Some("postgres") {
        run(Backend::Sqlite).await;
    }
    if only.as_deref() == Some("sqlite") {
        return;
    }
    if std::env::var(scanplane_store::testing::POSTGRES_URL_ENV).is_ok() {
        run(Backend::Postgres).await;
    } else {
        eprintln!(
            "{} not set: PostgreSQL not measured",
            scanplane_store::testing::POSTGRES_URL_ENV
        );
    }
}
