//! Memory of `scanplane serve` while a registry discovery of 500 and of 5,000 tags is
//! reported to it: a real `docker-registry` on loopback, the real binary on SQLite with its
//! local executor. Reported per size: the discovery's wall time, and the server's resident
//! memory before (`VmRSS`) and at its peak (`VmHWM` of `/proc/<pid>/status`); each size runs
//! on a freshly started server, so one peak cannot hide the other.
//!
//! `cargo bench -p scanplane --bench discovery_memory` uses SQLite and, when
//! `SCANPLANE_TEST_POSTGRES_URL` is set, PostgreSQL too. `BENCH_DISCOVERY_TAGS` (default
//! `500,5000`) lists the sizes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/exports.rs"]
#[allow(dead_code)] // shared with the export tests; only its /proc reader is used here
mod exports;

use std::time::{Duration, Instant};

use common::{terminal, Server, ADMIN};
use scanplane_oci::testing::{FixtureImage, RegistryOptions, TestRegistry};
use scanplane_store::Backend;
use serde_json::json;

async fn one(backend: Backend, tags: usize) {
    let registry = TestRegistry::start(RegistryOptions::default());
    registry.build_image("app", "0", FixtureImage::alpine());
    let more: Vec<String> = (1..tags).map(|i| format!("v{i}")).collect();
    let tagging = Instant::now();
    registry.tag_many("app", "0", &more);
    eprintln!("{tags} tags made in {:.0?}", tagging.elapsed());

    let db = common::fresh_db(backend).await;
    let server = Server::start(&db, &[("SCANPLANE_LOG", "warn")]).await;
    let pid = server.child.id();
    let (code, created) = server
        .post(
            "/api/v1/registries",
            ADMIN,
            json!({"name": "bench", "url": registry.url()}),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let before = exports::status_kib(pid, "VmRSS:");
    let started = Instant::now();
    let (code, accepted) = server
        .post(
            &format!("/api/v1/registries/{id}/discover"),
            ADMIN,
            json!({}),
        )
        .await;
    assert_eq!(code, 202, "{accepted}");
    let scan = server
        .wait_scan(
            accepted["scan_run_id"].as_str().unwrap(),
            Duration::from_secs(600),
            terminal,
        )
        .await;
    let took = started.elapsed();
    assert_eq!(scan["status"], "succeeded", "{scan}");
    let peak = exports::status_kib(pid, "VmHWM:");
    let (_, discoveries) = server
        .get(&format!("/api/v1/registries/{id}/discoveries"), ADMIN)
        .await;
    let seen = discoveries[0]["images_seen"].as_u64().unwrap_or(0);
    assert_eq!(seen, tags as u64, "{discoveries}");
    println!(
        "| {} | {tags} | {seen} | {:.2} s | {:.0} | {} MiB | {} MiB | {:.1} MiB |",
        backend.as_str(),
        took.as_secs_f64(),
        tags as f64 / took.as_secs_f64(),
        before / 1024,
        peak / 1024,
        peak.saturating_sub(before) as f64 / 1024.0
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_DISCOVERY_TAGS")
        .unwrap_or_else(|_| "500,5000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("BENCH_DISCOVERY_TAGS: numbers"))
        .collect();
    let mut backends = vec![Backend::Sqlite];
    if std::env::var("SCANPLANE_TEST_POSTGRES_URL").is_ok() {
        backends.push(Backend::Postgres);
    }
    println!("| backend | tags | images recorded | discovery wall | tags/s | serve RSS before | serve peak RSS | growth |");
    println!("|---|---|---|---|---|---|---|---|");
    for backend in backends {
        for tags in &sizes {
            one(backend, *tags).await;
        }
    }
}
