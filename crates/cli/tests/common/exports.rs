//! Large scans for the export memory test and benchmark: findings written straight into the
//! store (the server under test starts afterwards, so its memory starts clean), and the
//! server process's memory read from `/proc/<pid>/status`.

use scanplane_core::finding::{Finding, Severity};
use scanplane_core::maintenance::WindowAction;
use scanplane_core::scan::{ScanStatus, Trigger};
use scanplane_store::{NewScan, ScanChange, Store};

/// Distinct rule ids among the generated findings: many, as in a real vulnerability scan.
pub const RULES: usize = 20_000;

/// A succeeded scan of the default tenant (the one the admin token sees) holding `n`
/// findings with realistic field sizes.
pub async fn scan_with_findings(store: &dyn Store, n: usize) -> String {
    let tenant = store
        .ensure_tenant(scanplane_core::tenant::DEFAULT_TENANT)
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let scan = store
        .create_scan(
            NewScan {
                tenant_id: tenant.id.clone(),
                project_id: None,
                schedule_id: None,
                fire_time: None,
                trigger: Trigger::OnDemand,
                scanner: "trivy".into(),
                provider: None,
                targets: vec!["image://registry.example/app:1".into()],
                billing: false,
                options: "{}".into(),
                scope_options: "{}".into(),
                on_maintenance: WindowAction::Hold,
            },
            now,
        )
        .await
        .unwrap();
    for st in [
        ScanStatus::Admitted,
        ScanStatus::Dispatched,
        ScanStatus::Running,
    ] {
        store
            .transition(&scan.id, st, &ScanChange::default(), now)
            .await
            .unwrap();
    }
    let sev = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];
    let mut i = 0;
    while i < n {
        let end = (i + 5_000).min(n);
        let batch: Vec<Finding> = (i..end)
            .map(|k| {
                let mut f = Finding::new(
                    "trivy",
                    "image://registry.example/app:1",
                    format!("CVE-2026-{:05}", k % RULES),
                    sev[k % 5],
                    format!("libexample{k}: heap overflow in the parser of package {k}"),
                    format!("libexample{k}@1.{}.{}", k % 13, k % 7),
                );
                f.detail = format!(
                    "Installed version 1.{}.{} of libexample{k} is affected; fixed in 1.{}.{}. \
                     A crafted input makes the parser write past the end of a heap buffer.",
                    k % 13,
                    k % 7,
                    k % 13,
                    k % 7 + 1
                );
                f
            })
            .collect();
        store
            .insert_findings(&tenant.id, &scan.id, "trivy", &batch, now)
            .await
            .unwrap();
        i = end;
    }
    store
        .transition(
            &scan.id,
            ScanStatus::Succeeded,
            &ScanChange {
                reason: "loaded by the test".into(),
                ..Default::default()
            },
            now,
        )
        .await
        .unwrap();
    scan.id
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS:`, `VmHWM:`).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Reads a whole response body as it streams, keeping only its size (and the bytes when
/// `keep`).
pub async fn drain(resp: reqwest::Response, keep: bool) -> (u64, Vec<u8>) {
    use futures::StreamExt;
    let mut size = 0u64;
    let mut kept = Vec::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        size += chunk.len() as u64;
        if keep {
            kept.extend_from_slice(&chunk);
        }
    }
    (size, kept)
}
