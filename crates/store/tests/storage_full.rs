//! The store on a full disk and on a database that refuses writes: a write that is
//! acknowledged is stored, a write that fails says why (`StorageFull`, `Unavailable`) and
//! stores nothing, `check_writable` reports it, and the same store resumes by itself once
//! the fault ends. The faults are real: a small tmpfs filled to the last byte (SQLite's file,
//! a PostgreSQL tablespace) and a PostgreSQL database switched to read-only. Mounting needs
//! root (CAP_SYS_ADMIN); without it these tests fail and say so.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use scanplane_core::admission::{Decision, Limits};
use scanplane_core::finding::{Finding, Severity};
use scanplane_core::maintenance::WindowAction;
use scanplane_core::scan::Trigger;
use scanplane_core::Timestamp;
use scanplane_store::testing::{
    fresh_database_name, fresh_postgres_url, postgres_admin, postgres_database_url,
};
use scanplane_store::{NewScan, ScanFilter, SqlStore, Store, StoreError};

fn now() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
}

fn new_scan(tenant: &str) -> NewScan {
    NewScan {
        tenant_id: tenant.into(),
        project_id: None,
        schedule_id: None,
        fire_time: None,
        trigger: Trigger::OnDemand,
        scanner: "tcp".into(),
        provider: None,
        targets: vec!["127.0.0.1".into()],
        billing: false,
        options: "{}".into(),
        scope_options: "{}".into(),
        on_maintenance: WindowAction::Hold,
    }
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A tmpfs of a few MiB mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir =
            std::env::temp_dir().join(format!("scanplane-full-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let opts = format!("size={size}");
        if let Err(e) = run("mount", &["-t", "tmpfs", "-o", &opts, "tmpfs", path(&dir)]) {
            let _ = std::fs::remove_dir(&dir);
            panic!(
                "the full-disk tests mount a small tmpfs and need root (CAP_SYS_ADMIN): run \
                 them as root, or in a container started with --cap-add SYS_ADMIN ({e})"
            );
        }
        Tmpfs { dir }
    }
}

/// Writes a file in `dir` until its file system has no byte left; the file goes when the
/// returned value is dropped.
fn fill(dir: &Path) -> Filler {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xA5u8; 64 * 1024];
    for size in [64 * 1024, 4096, 512, 1] {
        loop {
            match file.write(&chunk[..size]) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }
    Filler { path }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a database server may still hold a file open for a moment.
        let _ = run("umount", &["-l", path(&self.dir)]);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

struct Filler {
    path: PathBuf,
}

impl Drop for Filler {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

async fn stored_scan_ids(store: &dyn Store, tenant: &str) -> Vec<String> {
    let filter = ScanFilter {
        limit: 1000,
        ..Default::default()
    };
    let mut ids: Vec<String> = store
        .list_scans(Some(tenant), &filter)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    ids.sort();
    ids
}

/// Creates scans until one is refused; returns the ids acknowledged on the way and the
/// error. A write may still fit in space the file system had allocated before it filled;
/// what matters is that none is acknowledged without being stored.
async fn create_until_refused(store: &dyn Store, tenant: &str) -> (Vec<String>, StoreError) {
    let mut acked = Vec::new();
    for _ in 0..200 {
        match store.create_scan(new_scan(tenant), now()).await {
            Ok(scan) => acked.push(scan.id),
            Err(e) => return (acked, e),
        }
    }
    panic!("200 scans were acknowledged on a full file system");
}

fn finding(i: usize) -> Finding {
    Finding::new(
        "tcp",
        "127.0.0.1",
        "open-port",
        Severity::Info,
        format!("port {i}"),
        format!("tcp/{i}"),
    )
    .with_detail("x".repeat(2000))
}

fn assert_full<T: std::fmt::Debug>(what: &str, r: Result<T, StoreError>) {
    assert!(
        matches!(r, Err(StoreError::StorageFull(_))),
        "{what} on a full file system: {r:?}"
    );
}

/// No error anywhere mentions a connection left inside a transaction.
fn assert_no_poisoned_connection<T: std::fmt::Debug>(what: &str, r: &Result<T, StoreError>) {
    if let Err(e) = r {
        panic!("{what} after space returned: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_full_disk_refuses_writes_and_resumes() {
    let fs = Tmpfs::mount("4m");
    let url = format!("sqlite://{}/scanplane.db", path(&fs.dir));
    let store: Arc<dyn Store> = Arc::new(SqlStore::open(&url).await.unwrap());
    let tenant = store.ensure_tenant("full-disk").await.unwrap().id;
    let queued = store.create_scan(new_scan(&tenant), now()).await.unwrap();

    let filler = fill(&fs.dir);
    let (mut acked, refused) = create_until_refused(store.as_ref(), &tenant).await;
    assert!(
        matches!(refused, StoreError::StorageFull(_)),
        "create_scan: {refused:?}"
    );
    acked.push(queued.id.clone());
    acked.sort();
    // Transactions fail the same way, and leave nothing behind.
    let findings: Vec<Finding> = (0..50).map(finding).collect();
    assert_full(
        "insert_findings",
        store
            .insert_findings(&tenant, &queued.id, "tcp", &findings, now())
            .await,
    );
    assert_full(
        "admission_round",
        store
            .admission_round(&Limits::default(), &[], 100, now())
            .await,
    );
    assert_full("check_writable", store.check_writable().await);

    // Another process opening the file sees exactly the acknowledged scans.
    let reopened = SqlStore::open(&url).await.unwrap();
    assert_eq!(stored_scan_ids(&reopened, &tenant).await, acked);
    drop(reopened);

    drop(filler);
    // The same store, without a restart: every pooled connection works again.
    store.check_writable().await.unwrap();
    for _ in 0..10 {
        let created = store.create_scan(new_scan(&tenant), now()).await;
        assert_no_poisoned_connection("create_scan", &created);
        acked.push(created.unwrap().id);
        let round = store
            .admission_round(&Limits::default(), &[], 100, now())
            .await;
        assert_no_poisoned_connection("admission_round", &round);
    }
    let inserted = store
        .insert_findings(&tenant, &queued.id, "tcp", &findings, now())
        .await;
    assert_no_poisoned_connection("insert_findings", &inserted);
    assert_eq!(inserted.unwrap(), 50);
    let queued = store.scan(None, &queued.id).await.unwrap().unwrap();
    assert_eq!(queued.findings_count, 50);
    assert!(queued.status.holds_slot(), "admitted once space returned");
    acked.sort();
    let reopened = SqlStore::open(&url).await.unwrap();
    assert_eq!(stored_scan_ids(&reopened, &tenant).await, acked);
}

/// Runs `body`, then `cleanup` even when `body` panicked, then re-raises the panic.
async fn with_cleanup<B, C>(body: B, cleanup: C)
where
    B: std::future::Future<Output = ()> + Send + 'static,
    C: std::future::Future<Output = ()>,
{
    let outcome = tokio::spawn(body).await;
    cleanup.await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn admin_exec(sql: &str) {
    let mut admin = postgres_admin().await.unwrap();
    sqlx::query(sql)
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_full_tablespace_refuses_writes_and_resumes() {
    let fs = Tmpfs::mount("4m");
    // The server runs as `postgres` and must own a tablespace's directory.
    run("chown", &["postgres:postgres", path(&fs.dir)]).unwrap();
    let name = fresh_database_name();
    let space = format!("{name}_space");
    admin_exec(&format!(
        "CREATE TABLESPACE {space} LOCATION '{}'",
        path(&fs.dir)
    ))
    .await;
    admin_exec(&format!("CREATE DATABASE {name}")).await;
    // The catalogs stay on the server's disk; the store's tables go to the small tmpfs.
    admin_exec(&format!(
        "ALTER DATABASE {name} SET default_tablespace = {space}"
    ))
    .await;
    let url = postgres_database_url(&name).unwrap();
    let dir = fs.dir.clone();
    let body = async move {
        let store: Arc<dyn Store> = Arc::new(SqlStore::open(&url).await.unwrap());
        let tenant = store.ensure_tenant("full-disk").await.unwrap().id;
        let queued = store.create_scan(new_scan(&tenant), now()).await.unwrap();

        let filler = fill(&dir);
        let (mut acked, refused) = create_until_refused(store.as_ref(), &tenant).await;
        assert!(
            matches!(refused, StoreError::StorageFull(_)),
            "create_scan: {refused:?}"
        );
        acked.push(queued.id.clone());
        acked.sort();
        let findings: Vec<Finding> = (0..200).map(finding).collect();
        assert_full(
            "insert_findings",
            store
                .insert_findings(&tenant, &queued.id, "tcp", &findings, now())
                .await,
        );
        assert_eq!(stored_scan_ids(store.as_ref(), &tenant).await, acked);

        drop(filler);
        for _ in 0..5 {
            let created = store.create_scan(new_scan(&tenant), now()).await;
            assert_no_poisoned_connection("create_scan", &created);
            acked.push(created.unwrap().id);
        }
        let inserted = store
            .insert_findings(&tenant, &queued.id, "tcp", &findings, now())
            .await;
        assert_no_poisoned_connection("insert_findings", &inserted);
        assert_eq!(inserted.unwrap(), 200);
        store.check_writable().await.unwrap();
        acked.sort();
        assert_eq!(stored_scan_ids(store.as_ref(), &tenant).await, acked);
    };
    let cleanup = async {
        admin_exec(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        admin_exec(&format!("DROP TABLESPACE IF EXISTS {space}")).await;
    };
    with_cleanup(body, cleanup).await;
    // The tmpfs is unmounted last, once the database and tablespace are gone.
    drop(fs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_read_only_database_is_unavailable_and_resumes() {
    let url = fresh_postgres_url().await.unwrap();
    let name = url
        .rsplit('/')
        .next()
        .and_then(|tail| tail.split('?').next())
        .unwrap()
        .to_string();
    let store: Arc<dyn Store> = Arc::new(SqlStore::open(&url).await.unwrap());
    let tenant = store.ensure_tenant("read-only").await.unwrap().id;
    let before = store.create_scan(new_scan(&tenant), now()).await.unwrap();

    // The database turns read-only, as after a failover to a standby: sessions opened from
    // now on refuse writes. Ending the store's sessions makes its pool open new ones.
    let end_sessions = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    );
    admin_exec(&format!(
        "ALTER DATABASE {name} SET default_transaction_read_only = on"
    ))
    .await;
    admin_exec(&end_sessions).await;
    let refused = store.create_scan(new_scan(&tenant), now()).await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "create_scan on a read-only database: {refused:?}"
    );
    let round = store
        .admission_round(&Limits::default(), &[], 100, now())
        .await;
    assert!(
        matches!(round, Err(StoreError::Unavailable(_))),
        "admission_round on a read-only database: {round:?}"
    );
    let writable = store.check_writable().await;
    assert!(
        matches!(writable, Err(StoreError::Unavailable(_))),
        "check_writable on a read-only database: {writable:?}"
    );
    store.check_ready().await.unwrap();

    // Writable again for new sessions; the store resumes without a restart.
    admin_exec(&format!(
        "ALTER DATABASE {name} RESET default_transaction_read_only"
    ))
    .await;
    admin_exec(&end_sessions).await;
    store.check_writable().await.unwrap();
    let after = store.create_scan(new_scan(&tenant), now()).await.unwrap();
    let round = store
        .admission_round(&Limits::default(), &[], 100, now())
        .await
        .unwrap();
    let admitted: Vec<&String> = round
        .iter()
        .filter(|(_, d)| *d == Decision::Admit)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(admitted.len(), 2, "{round:?}");
    let mut expected = vec![before.id, after.id];
    expected.sort();
    assert_eq!(stored_scan_ids(store.as_ref(), &tenant).await, expected);
}
