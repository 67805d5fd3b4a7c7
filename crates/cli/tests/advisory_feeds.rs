//! Advisory feeds of the configuration, synced by `serve`: a real HTTP server on loopback
//! serves an OSV `all.zip` with an `ETag`, a local directory holds `.json` records, and a
//! third source answers 404. Each changed source is imported once; an unchanged one costs
//! one conditional request answered `304 Not Modified` and imports nothing; a changed zip
//! (new ETag) is imported again with its modification counted; the failing source is
//! reported as failed without stopping the others. `GET /api/v1/advisories/feeds` shows it
//! all. The mirror's URL carries credentials: sent to it, never shown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::*;
use scanplane_store::Backend;
use serde_json::Value;

const ADVISORIES: &str = "../vuln/tests/data/advisories";

/// The mirror's password.
const SECRET: &str = "mirror-pw-7f3a";

#[derive(Default)]
struct Feed {
    zip: Vec<u8>,
    etag: String,
    /// The `If-None-Match` of every request, in order.
    requests: Vec<Option<String>>,
    /// The `Authorization` of every request, in order.
    auth: Vec<Option<String>>,
}

async fn serve_zip(State(feed): State<Arc<Mutex<Feed>>>, headers: HeaderMap) -> Response {
    let mut feed = feed.lock().unwrap();
    let sent = headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    feed.requests.push(sent.clone());
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    feed.auth.push(auth);
    if sent.as_deref() == Some(feed.etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    (
        [
            ("etag", feed.etag.clone()),
            ("content-type", "application/zip".into()),
        ],
        feed.zip.clone(),
    )
        .into_response()
}

/// A zip of the `.json` files of `dir`, built with python's zipfile.
fn zip_of(dir: &Path, out: &Path) -> Vec<u8> {
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile, pathlib\nwith zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n  [z.write(p, p.name) for p in sorted(pathlib.Path(sys.argv[2]).glob('*.json'))]",
        ])
        .arg(out)
        .arg(dir)
        .status()
        .expect("python3 builds the zip");
    assert!(status.success());
    std::fs::read(out).unwrap()
}

async fn imports(s: &Server) -> Vec<Value> {
    let (code, list) = s.get("/api/v1/advisories/imports", ADMIN).await;
    assert_eq!(code, 200, "{list}");
    list.as_array().unwrap().clone()
}

async fn feeds(s: &Server) -> Vec<Value> {
    let (code, list) = s.get("/api/v1/advisories/feeds", ADMIN).await;
    assert_eq!(code, 200, "{list}");
    list.as_array().unwrap().clone()
}

async fn wait_for<F: Fn(&[Value], &[Value]) -> bool>(s: &Server, what: &str, ok: F) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (i, f) = (imports(s).await, feeds(s).await);
        if ok(&i, &f) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: imports {i:#?}\nfeeds {f:#?}\nlog:\n{}",
            s.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn feed_of<'a>(feeds: &'a [Value], source: &str) -> &'a Value {
    feeds
        .iter()
        .find(|f| f["source"] == source)
        .unwrap_or_else(|| panic!("no feed {source} in {feeds:#?}"))
}

async fn feeds_sync_on_their_schedule(backend: Backend) {
    let work = tempfile::tempdir().unwrap();
    let records = Path::new(env!("CARGO_MANIFEST_DIR")).join(ADVISORIES);
    let zip_dir = work.path().join("zip-records");
    std::fs::create_dir(&zip_dir).unwrap();
    let local_dir = work.path().join("local-records");
    std::fs::create_dir(&local_dir).unwrap();
    for entry in std::fs::read_dir(&records).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        std::fs::copy(&path, zip_dir.join(&name)).unwrap();
        if name.to_string_lossy().contains("DEBIAN") {
            std::fs::copy(&path, local_dir.join(&name)).unwrap();
        }
    }
    let record_count = std::fs::read_dir(&zip_dir).unwrap().count() as u64;
    let feed = Arc::new(Mutex::new(Feed {
        zip: zip_of(&zip_dir, &work.path().join("v1.zip")),
        etag: "\"v1\"".into(),
        requests: Vec::new(),
        auth: Vec::new(),
    }));
    let app = axum::Router::new()
        .route("/osv/all.zip", axum::routing::get(serve_zip))
        .with_state(feed.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // The mirror wants credentials, written in the URL as users do; they go to the mirror
    // and nowhere else: the feed is listed, its import named and the log written with them
    // masked.
    let authority = base.trim_start_matches("http://");
    let real_url = format!("http://mirror:{SECRET}@{authority}/osv/all.zip");
    let url = format!("http://mirror:*****@{authority}/osv/all.zip");
    let missing = format!("{base}/osv/missing.zip");
    let local = local_dir.display().to_string();
    let cfg = work.path().join("scanplane.yaml");
    std::fs::write(
        &cfg,
        format!(
            "advisories:\n  every: 1s\n  sources:\n    - {local}\n    - {real_url}\n    - {missing}\n"
        ),
    )
    .unwrap();

    let db = fresh_db(backend).await;
    let s = Server::start(&db, &[("SCANPLANE_CONFIG", cfg.to_str().unwrap())]).await;

    // Both good sources imported once; the missing one failed with its reason.
    wait_for(&s, "first imports", |i, f| {
        i.len() == 2 && f.len() == 3 && f.iter().all(|f| !f["checked_at"].is_null())
    })
    .await;
    let list = imports(&s).await;
    let from_url = list
        .iter()
        .find(|i| i["source"] == format!("feed {url}"))
        .expect("the URL's import");
    // The directory's records (checked first: sources go in the file's order) are in the
    // zip too.
    assert_eq!(from_url["records"], record_count, "{from_url}");
    assert_eq!(
        from_url["added"].as_u64().unwrap() + from_url["unchanged"].as_u64().unwrap(),
        record_count,
        "{from_url}"
    );
    assert!(!from_url["finished_at"].is_null());
    let from_dir = list
        .iter()
        .find(|i| i["source"] == format!("feed {local}"))
        .expect("the directory's import");
    assert_eq!(
        from_dir["records"], 4,
        "the four Debian records: {from_dir}"
    );
    assert_eq!(from_dir["added"], 4, "{from_dir}");
    let listed = feeds(&s).await;
    assert_eq!(feed_of(&listed, &url)["etag"], "\"v1\"");
    assert_eq!(
        feed_of(&listed, &url)["import_id"],
        from_url["id"],
        "{listed:#?}"
    );
    let failed = feed_of(&listed, &missing)["status"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        failed.starts_with("failed:") && failed.contains("404"),
        "{failed}"
    );

    // Checked again (every 1s): one conditional request, 304, nothing imported.
    let deadline = Instant::now() + Duration::from_secs(30);
    while feed.lock().unwrap().requests.len() < 3 {
        assert!(Instant::now() < deadline, "no re-check:\n{}", s.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let requests = feed.lock().unwrap().requests.clone();
    assert_eq!(requests[0], None, "the first request is unconditional");
    assert!(
        requests[1..].iter().all(|r| r.as_deref() == Some("\"v1\"")),
        "{requests:?}"
    );
    wait_for(&s, "not modified", |_, f| {
        feed_of(f, &url)["status"] == "not modified"
            && feed_of(f, &local)["status"] == "not modified"
    })
    .await;
    assert_eq!(imports(&s).await.len(), 2, "a 304 imports nothing");

    // The feed changes: one record corrected, a new ETag; imported again, counted modified.
    let left_pad = zip_dir.join("TEST-GHSA-left-pad.json");
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&left_pad).unwrap()).unwrap();
    doc["modified"] = "2026-12-01T00:00:00Z".into();
    doc["summary"] = "corrected".into();
    std::fs::write(&left_pad, doc.to_string()).unwrap();
    {
        let mut f = feed.lock().unwrap();
        f.zip = zip_of(&zip_dir, &work.path().join("v2.zip"));
        f.etag = "\"v2\"".into();
    }
    wait_for(&s, "the changed feed imported", |i, _| i.len() == 3).await;
    let newest = imports(&s).await[0].clone();
    assert_eq!(newest["source"], format!("feed {url}"));
    assert_eq!(newest["modified"], 1, "{newest}");
    assert_eq!(newest["unchanged"], record_count - 1, "{newest}");
    wait_for(&s, "the new validator kept", |_, f| {
        feed_of(f, &url)["etag"] == "\"v2\""
    })
    .await;
    assert!(
        s.log_text().contains("advisory feed not modified"),
        "progress is in the log"
    );
    // `mirror:{SECRET}` in base64, as RFC 7617 writes basic credentials.
    let basic = "Basic bWlycm9yOm1pcnJvci1wdy03ZjNh";
    let auth = feed.lock().unwrap().auth.clone();
    assert!(
        auth.iter().all(|a| a.as_deref() == Some(basic)),
        "every request to the mirror carries its credentials: {auth:?}"
    );
    let (_, listed) = s.get("/api/v1/advisories/feeds", ADMIN).await;
    let (_, imported) = s.get("/api/v1/advisories/imports", ADMIN).await;
    for (what, text) in [
        ("the log", s.log_text()),
        ("the feeds", listed.to_string()),
        ("the imports", imported.to_string()),
    ] {
        assert!(
            !text.contains(SECRET),
            "{what} show the mirror's password:\n{text}"
        );
    }
}

macro_rules! both {
    ($($t:ident),*) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $t() { super::$t(super::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $t() { super::$t(super::Backend::Postgres).await } )* }
    };
}

both!(feeds_sync_on_their_schedule);
