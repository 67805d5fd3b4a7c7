//! Benchmark of registry discovery against a real `docker-registry` on loopback: throughput of
//! [`Discoverer`] over 50 repositories × 20 tags at concurrency 1, 4 and 8, side by side in the
//! same run with the `skopeo list-tags` + `skopeo inspect --raw` shell loop a script would use,
//! and the peak RSS growth of discovering one repository of 500 vs 5,000 tags (each size in a
//! fresh child process). Run with `cargo bench -p scanplane-oci --bench discovery`; the numbers
//! go to BENCHMARKS.md. Nothing here asserts a timing: failures are setup or correctness errors.

// A bench binary: a failed setup step or a wrong count must stop it with its message, as in tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use scanplane_oci::testing::{FixtureImage, RegistryOptions, TestRegistry};
use scanplane_oci::{
    Access, AllTags, Auth, Catalog, DiscoveredImage, Discoverer, DiscoveryStats, Selection,
};
use tokio::sync::mpsc;

const REPOSITORIES: usize = 50;
const TAGS_PER_REPOSITORY: usize = 20;
const CONCURRENCIES: [usize; 3] = [1, 4, 8];
/// xargs -P of the parallel skopeo baseline: the same number in flight as the Discoverer's 8.
const SKOPEO_PARALLEL: usize = 8;
/// Every measurement is repeated, interleaved, so that a slow moment of the machine hits every
/// variant alike; the tables give median, min and max.
const REPEATS: usize = 3;
const MEMORY_SIZES: [usize; 2] = [500, 5_000];
const MEMORY_CONCURRENCY: usize = 8;
/// First argument of the re-invoked binary: one memory measurement in a fresh process.
const CHILD: &str = "__memory-child";
const CHILD_RESULT: &str = "memory-child-result";

/// The baseline: what a script does, one `skopeo` process per repository and per tag. Tags are
/// `[A-Za-z0-9_.-]`, so stripping the JSON punctuation and dropping the `"Repository": ...` and
/// `"Tags":` lines (the only ones with a colon) leaves one tag a line, without needing jq.
/// Prints the number of manifests inspected, which the caller checks.
const SKOPEO_SERIAL: &str = r#"set -eu
host=$1; shift
n=0
for repo in "$@"; do
  tags=$(skopeo list-tags --tls-verify=false "docker://$host/$repo" | tr -d ' ",[]{}' | grep -v -e ':' -e '^$')
  for tag in $tags; do
    skopeo inspect --raw --tls-verify=false "docker://$host/$repo:$tag" > /dev/null
    n=$((n + 1))
  done
done
echo "$n"
"#;

/// The same with the inspections fanned out by `xargs -P` ($1), as a script tuned for speed
/// would do; xargs exits non-zero if any inspection failed.
const SKOPEO_PARALLEL_SCRIPT: &str = r#"set -eu
parallel=$1; host=$2; shift 2
refs=$(mktemp)
for repo in "$@"; do
  skopeo list-tags --tls-verify=false "docker://$host/$repo" | tr -d ' ",[]{}' | grep -v -e ':' -e '^$' | sed "s|^|docker://$host/$repo:|" >> "$refs"
done
xargs -P "$parallel" -n 1 skopeo inspect --raw --tls-verify=false < "$refs" > /dev/null
wc -l < "$refs"
rm -f "$refs"
"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(CHILD) {
        memory_child(&args[2..]);
        return;
    }
    let started = Instant::now();
    print_machine();

    eprintln!("setting up the registry ...");
    let registry = TestRegistry::start(RegistryOptions::default());
    let setup = Instant::now();
    let repositories: Vec<String> = (0..REPOSITORIES)
        .map(|r| format!("bench/r{r:02}"))
        .collect();
    let more_tags: Vec<String> = (1..TAGS_PER_REPOSITORY)
        .map(|t| format!("t{t:02}"))
        .collect();
    for repository in &repositories {
        // One real push per repository, then cheap manifest re-PUTs for the other 19 tags.
        registry.build_image(repository, "t00", FixtureImage::alpine());
        registry.tag_many(repository, "t00", &more_tags);
    }
    let throughput_setup = setup.elapsed();
    let setup = Instant::now();
    for size in MEMORY_SIZES {
        let repository = memory_repository(size);
        registry.build_image(&repository, "t0", FixtureImage::alpine());
        let tags: Vec<String> = (1..size).map(|t| format!("t{t}")).collect();
        registry.tag_many(&repository, "t0", &tags);
    }
    let memory_setup = setup.elapsed();
    eprintln!(
        "set up {} tags in {:.1}s and {} tags in {:.1}s",
        REPOSITORIES * TAGS_PER_REPOSITORY,
        throughput_setup.as_secs_f64(),
        MEMORY_SIZES.iter().sum::<usize>(),
        memory_setup.as_secs_f64()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let total = REPOSITORIES * TAGS_PER_REPOSITORY;
    let mut discoverer_times: Vec<Vec<Duration>> = vec![Vec::new(); CONCURRENCIES.len()];
    let mut skopeo_serial_times = Vec::new();
    let mut skopeo_parallel_times = Vec::new();
    for round in 1..=REPEATS {
        for (i, concurrency) in CONCURRENCIES.into_iter().enumerate() {
            let elapsed = runtime.block_on(discover_throughput(
                &registry,
                &repositories,
                concurrency,
                total,
            ));
            eprintln!(
                "round {round}: Discoverer concurrency {concurrency}: {:.2}s",
                elapsed.as_secs_f64()
            );
            discoverer_times[i].push(elapsed);
        }
        let elapsed = skopeo(&registry, &repositories, None, total);
        eprintln!("round {round}: skopeo loop: {:.2}s", elapsed.as_secs_f64());
        skopeo_serial_times.push(elapsed);
        let elapsed = skopeo(&registry, &repositories, Some(SKOPEO_PARALLEL), total);
        eprintln!(
            "round {round}: skopeo xargs -P {SKOPEO_PARALLEL}: {:.2}s",
            elapsed.as_secs_f64()
        );
        skopeo_parallel_times.push(elapsed);
    }

    // Fresh processes, one per measurement, so one run's peak cannot hide another's.
    let mut memory_rows = Vec::new();
    for (size, keep) in [
        (MEMORY_SIZES[0], false),
        (MEMORY_SIZES[1], false),
        (MEMORY_SIZES[1], true),
    ] {
        let mut samples = Vec::new();
        for round in 1..=REPEATS {
            let sample = memory_in_child(&registry, size, keep);
            eprintln!(
                "round {round}: memory {size} tags{}: +{} KiB (peak {} KiB) in {:.2}s",
                if keep { " (kept)" } else { "" },
                sample.growth_kib(),
                sample.peak_kib,
                sample.seconds
            );
            samples.push(sample);
        }
        memory_rows.push((size, keep, samples));
    }

    println!();
    println!(
        "Throughput: {REPOSITORIES} repositories x {TAGS_PER_REPOSITORY} tags = {total} \
         single-platform image tags, explicit repository list, {REPEATS} interleaved rounds"
    );
    println!();
    println!("| client | in flight | wall median | min | max | tags/s (median) | vs skopeo loop |");
    println!("|---|---|---|---|---|---|---|");
    let baseline = median(&skopeo_serial_times);
    for (i, concurrency) in CONCURRENCIES.into_iter().enumerate() {
        throughput_row(
            "Discoverer",
            concurrency,
            &discoverer_times[i],
            total,
            baseline,
        );
    }
    throughput_row(
        "skopeo shell loop",
        1,
        &skopeo_serial_times,
        total,
        baseline,
    );
    throughput_row(
        &format!("skopeo, xargs -P {SKOPEO_PARALLEL}"),
        SKOPEO_PARALLEL,
        &skopeo_parallel_times,
        total,
        baseline,
    );

    println!();
    println!(
        "Memory: one repository, Discoverer concurrency {MEMORY_CONCURRENCY}, a fresh process \
         per measurement; growth = VmHWM after discovery - VmRSS before it (VmHWM reset first)"
    );
    println!();
    println!(
        "| tags | consumer | RSS before | peak RSS median | growth median | growth min | growth max | wall median |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (size, keep, samples) in &memory_rows {
        let mut growth: Vec<u64> = samples.iter().map(MemorySample::growth_kib).collect();
        growth.sort_unstable();
        let mut peak: Vec<u64> = samples.iter().map(|s| s.peak_kib).collect();
        peak.sort_unstable();
        let mut before: Vec<u64> = samples.iter().map(|s| s.before_kib).collect();
        before.sort_unstable();
        let mut seconds: Vec<f64> = samples.iter().map(|s| s.seconds).collect();
        seconds.sort_by(f64::total_cmp);
        println!(
            "| {size} | {} | {} | {} | {} | {} | {} | {:.2}s |",
            if *keep {
                "keeps every image (control)"
            } else {
                "counts, keeps nothing"
            },
            mib(before[before.len() / 2]),
            mib(peak[peak.len() / 2]),
            mib(growth[growth.len() / 2]),
            mib(growth[0]),
            mib(growth[growth.len() - 1]),
            seconds[seconds.len() / 2]
        );
    }
    println!();
    println!(
        "registry set-up (not measured): {total} tags in {:.1}s, {} tags in {:.1}s; whole bench {:.0}s",
        throughput_setup.as_secs_f64(),
        MEMORY_SIZES.iter().sum::<usize>(),
        memory_setup.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

fn memory_repository(size: usize) -> String {
    format!("mem/t{size}")
}

fn selection(repositories: &[String]) -> Selection {
    Selection {
        catalog: Catalog::None,
        repositories: repositories.to_vec(),
        platforms: vec![],
    }
}

/// One timed discovery, client construction included (a scan run builds its own), consuming
/// the images as a streaming consumer does; panics unless every tag became one image.
async fn discover_throughput(
    registry: &TestRegistry,
    repositories: &[String],
    concurrency: usize,
    expected: usize,
) -> Duration {
    let start = Instant::now();
    let discoverer = Discoverer::new(registry.access(), concurrency).expect("discoverer");
    let (stats, images) = discover_counting(&discoverer, &selection(repositories)).await;
    let elapsed = start.elapsed();
    check_stats(&stats, images, expected);
    elapsed
}

async fn discover_counting(
    discoverer: &Discoverer,
    selection: &Selection,
) -> (DiscoveryStats, usize) {
    let (tx, mut rx) = mpsc::channel::<DiscoveredImage>(64);
    let count = async move {
        let mut n = 0usize;
        while rx.recv().await.is_some() {
            n += 1;
        }
        n
    };
    let (result, images) = tokio::join!(discoverer.run(selection, &AllTags, tx), count);
    let stats = result.unwrap_or_else(|e| panic!("discovery failed: {e}"));
    (stats, images)
}

fn check_stats(stats: &DiscoveryStats, images: usize, expected: usize) {
    let expected = expected as u64;
    assert!(
        images as u64 == expected
            && stats.images == expected
            && stats.tags_listed == expected
            && stats.manifests_fetched == expected
            && stats.skipped == 0,
        "expected {expected} images from {expected} tags, got {images} images and {stats:?}"
    );
}

/// One timed run of a skopeo script; panics unless it inspected every tag.
fn skopeo(
    registry: &TestRegistry,
    repositories: &[String],
    parallel: Option<usize>,
    expected: usize,
) -> Duration {
    let mut command = Command::new("sh");
    match parallel {
        None => {
            command.args(["-c", SKOPEO_SERIAL, "sh"]);
        }
        Some(p) => {
            command.args(["-c", SKOPEO_PARALLEL_SCRIPT, "sh", &p.to_string()]);
        }
    }
    command.arg(registry.host()).args(repositories);
    let start = Instant::now();
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run sh for the skopeo baseline: {e}"));
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let inspected: Option<usize> = stdout.trim().parse().ok();
    if !output.status.success() || inspected != Some(expected) {
        panic!(
            "skopeo baseline ({}) failed: {}, inspected {:?} of {expected} tags\nstdout:\n{stdout}\nstderr:\n{}",
            match parallel {
                None => "serial loop".to_string(),
                Some(p) => format!("xargs -P {p}"),
            },
            output.status,
            inspected,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    elapsed
}

struct MemorySample {
    before_kib: u64,
    peak_kib: u64,
    seconds: f64,
}

impl MemorySample {
    fn growth_kib(&self) -> u64 {
        self.peak_kib.saturating_sub(self.before_kib)
    }
}

/// Re-invokes this binary to measure one discovery of `size` tags in a process of its own.
fn memory_in_child(registry: &TestRegistry, size: usize, keep: bool) -> MemorySample {
    let exe = std::env::current_exe().expect("path of the bench binary");
    let output = Command::new(&exe)
        .arg(CHILD)
        .arg(registry.url())
        .arg(memory_repository(size))
        .arg(size.to_string())
        .arg(if keep { "keep" } else { "count" })
        .output()
        .unwrap_or_else(|e| panic!("cannot re-run {} for the memory child: {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix(CHILD_RESULT));
    let (Some(line), true) = (line, output.status.success()) else {
        panic!(
            "memory child for {size} tags failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [before_kib, peak_kib, seconds] = fields[..] else {
        panic!("memory child printed {line:?}, expected three numbers");
    };
    MemorySample {
        before_kib: before_kib.parse().expect("before KiB"),
        peak_kib: peak_kib.parse().expect("peak KiB"),
        seconds: seconds.parse().expect("seconds"),
    }
}

/// The child: `URL REPOSITORY EXPECTED count|keep`; prints `memory-child-result BEFORE PEAK SECS`.
fn memory_child(args: &[String]) {
    let [url, repository, expected, mode] = args else {
        panic!("{CHILD} takes URL REPOSITORY EXPECTED count|keep, got {args:?}");
    };
    let expected: usize = expected.parse().expect("EXPECTED is a number");
    let keep = match mode.as_str() {
        "keep" => true,
        "count" => false,
        other => panic!("{CHILD}: mode {other:?}, expected count or keep"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let access = Access {
            url: url.clone(),
            insecure: false,
            ca_bundle: None,
            auth: Auth::Anonymous,
        };
        let discoverer = Discoverer::new(access, MEMORY_CONCURRENCY).expect("discoverer");
        let selection = selection(std::slice::from_ref(repository));
        // The peak of start-up (runtime, TLS roots) must not count as the peak of discovery.
        std::fs::write("/proc/self/clear_refs", "5").unwrap_or_else(|e| {
            panic!("cannot reset VmHWM through /proc/self/clear_refs (Linux >= 4.0): {e}")
        });
        let before = status_kib("VmRSS:");
        let start = Instant::now();
        let (stats, images, peak) = if keep {
            // The control: a consumer that holds every image, to show what growth with the
            // number of tags looks like in this measurement.
            let (tx, mut rx) = mpsc::channel::<DiscoveredImage>(64);
            let keep_all = async move {
                let mut all = Vec::new();
                while let Some(image) = rx.recv().await {
                    all.push(image);
                }
                all
            };
            let (result, all) = tokio::join!(discoverer.run(&selection, &AllTags, tx), keep_all);
            let stats = result.unwrap_or_else(|e| panic!("discovery failed: {e}"));
            let n = all.len();
            // Read the peak while the images are still held.
            let peak = status_kib("VmHWM:");
            drop(all);
            (stats, n, peak)
        } else {
            let (stats, n) = discover_counting(&discoverer, &selection).await;
            (stats, n, status_kib("VmHWM:"))
        };
        let seconds = start.elapsed().as_secs_f64();
        check_stats(&stats, images, expected);
        println!("{CHILD_RESULT} {before} {peak} {seconds:.3}");
    });
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2]
}

fn throughput_row(
    client: &str,
    in_flight: usize,
    times: &[Duration],
    tags: usize,
    baseline: Duration,
) {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let med = sorted[sorted.len() / 2];
    println!(
        "| {client} | {in_flight} | {:.2}s | {:.2}s | {:.2}s | {:.0} | {:.1}x |",
        med.as_secs_f64(),
        sorted[0].as_secs_f64(),
        sorted[sorted.len() - 1].as_secs_f64(),
        tags as f64 / med.as_secs_f64(),
        baseline.as_secs_f64() / med.as_secs_f64()
    );
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Machine, tools and command, so the table can be compared with another run.
fn print_machine() {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".to_string());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| {
            v.split_whitespace()
                .next()
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map(|kib| format!("{:.0} GiB", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let version = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|e| format!("{tool}: {e}"))
    };
    println!("command: cargo bench -p scanplane-oci --bench discovery");
    println!(
        "machine: nproc {nproc}, CPU {model:?}, {memory} RAM, Linux {}",
        kernel.trim()
    );
    println!(
        "tools: {}; {}",
        version("skopeo"),
        version("docker-registry")
    );
}
