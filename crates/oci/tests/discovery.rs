//! Discovery against the real registry (docker-registry) and tiny fake servers for failures.
// Test helpers outside #[test] functions fail loudly on setup errors, as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use scanplane_oci::testing::{FixtureImage, RegistryOptions, TestRegistry};
use scanplane_oci::{
    Access, AllTags, Auth, Catalog, DiscoveredImage, Discoverer, DiscoveryError, DiscoveryStats,
    Platform, Selection, TagSelector,
};
use tokio::sync::mpsc;

fn all() -> Selection {
    Selection {
        catalog: Catalog::Oci,
        repositories: vec![],
        platforms: vec![],
    }
}

fn repos(names: &[&str]) -> Selection {
    Selection {
        catalog: Catalog::None,
        repositories: names.iter().map(|s| s.to_string()).collect(),
        platforms: vec![],
    }
}

async fn discover(
    discoverer: &Discoverer,
    selection: &Selection,
    tags: &dyn TagSelector,
) -> (Result<DiscoveryStats, DiscoveryError>, Vec<DiscoveredImage>) {
    let (tx, mut rx) = mpsc::channel(8);
    let collect = async move {
        let mut images = Vec::new();
        while let Some(image) = rx.recv().await {
            images.push(image);
        }
        images
    };
    let (result, images) = tokio::join!(discoverer.run(selection, tags, tx), collect);
    (result, images)
}

async fn discover_ok(
    discoverer: &Discoverer,
    selection: &Selection,
    tags: &dyn TagSelector,
) -> (DiscoveryStats, Vec<DiscoveredImage>) {
    let (result, images) = discover(discoverer, selection, tags).await;
    (result.expect("discovery succeeds"), images)
}

#[tokio::test]
async fn catalog_and_tags_are_discovered_across_pages() {
    let registry = TestRegistry::start(RegistryOptions::default());
    let names = ["a/alpine", "b/debian", "c", "d", "e"];
    let mut digests = Vec::new();
    for (i, repo) in names.iter().enumerate() {
        let image = if i == 1 {
            FixtureImage::debian()
        } else {
            FixtureImage::alpine()
        };
        digests.push(registry.build_image(repo, "t0", image));
        let more: Vec<String> = (1..5).map(|t| format!("t{t}")).collect();
        registry.tag_many(repo, "t0", &more);
    }
    // Page size 2 < 5 repositories: the catalog is followed through its Link headers.
    let discoverer = Discoverer::new(registry.access(), 4)
        .expect("discoverer")
        .with_page_size(2);
    let (stats, images) = discover_ok(&discoverer, &all(), &AllTags).await;
    assert_eq!(stats.repositories, 5, "{stats:?}");
    assert_eq!(stats.tags_listed, 25, "{stats:?}");
    assert_eq!(stats.tags_selected, 25);
    assert_eq!(stats.manifests_fetched, 25);
    assert_eq!(stats.images, 25);
    assert_eq!(stats.skipped, 0);
    let found: BTreeSet<(String, String)> = images
        .iter()
        .map(|i| (i.repository.clone(), i.tag.clone()))
        .collect();
    assert_eq!(found.len(), 25);
    let debian = images
        .iter()
        .find(|i| i.repository == "b/debian" && i.tag == "t3")
        .expect("b/debian:t3");
    assert_eq!(debian.digest, digests[1]);
    assert_eq!(debian.index_digest, None);
    assert_eq!(debian.platform, Some(Platform::new("linux", "amd64", None)));
    assert_eq!(
        debian.media_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(debian.created.as_deref(), Some("2024-01-15T10:00:00Z"));
    assert!(!debian.layers.is_empty());
    assert!(debian.layers.iter().all(|l| l.diff_id.is_some()));
    assert_eq!(
        debian.size,
        debian.layers.iter().map(|l| l.size).sum::<u64>()
    );
    assert_eq!(
        discoverer.reference("b/debian", &debian.digest),
        format!("{}/b/debian@{}", registry.host(), digests[1])
    );
    // Explicit repositories with a tiny page size find the same tags.
    let (stats, _) = discover_ok(&discoverer, &repos(&["c", "d"]), &AllTags).await;
    assert_eq!(
        (stats.repositories, stats.tags_listed, stats.images),
        (2, 10, 10)
    );
}

#[tokio::test]
async fn index_expands_to_the_selected_platforms_only() {
    let registry = TestRegistry::start(RegistryOptions::default());
    let platforms = [
        Platform::new("linux", "amd64", None),
        Platform::new("linux", "arm64", None),
        Platform::new("linux", "arm", Some("v7")),
    ];
    let index = registry.push_index("multi", "1.0", &platforms);
    let discoverer = Discoverer::new(registry.access(), 4).expect("discoverer");
    let selection = Selection {
        platforms: vec![
            Platform::new("linux", "arm64", None),
            Platform::new("linux", "arm", None),
        ],
        ..repos(&["multi"])
    };
    let (stats, images) = discover_ok(&discoverer, &selection, &AllTags).await;
    let mut found: Vec<Platform> = images.iter().filter_map(|i| i.platform.clone()).collect();
    found.sort_by_key(|p| p.to_string());
    assert_eq!(found, vec![platforms[2].clone(), platforms[1].clone()]);
    assert!(images
        .iter()
        .all(|i| i.index_digest.as_deref() == Some(index.as_str())));
    assert!(images.iter().all(|i| i.digest != index));
    // One fetch for the tag's index, one per selected platform manifest.
    assert_eq!(stats.manifests_fetched, 1 + 2, "{stats:?}");
    assert_eq!(stats.images, 2);
    // The unknown/unknown attestation entry is skipped and counted.
    assert_eq!(stats.skipped, 1, "{stats:?}");
    assert!(stats.skipped_examples[0].contains("unknown/unknown"));

    let (stats, images) = discover_ok(&discoverer, &repos(&["multi"]), &AllTags).await;
    assert_eq!(
        (stats.images, images.len(), stats.manifests_fetched),
        (3, 3, 4)
    );
}

#[tokio::test]
async fn helm_charts_signatures_and_attestations_are_skipped_and_counted() {
    let registry = TestRegistry::start(RegistryOptions::default());
    let app = registry.build_image("app", "1", FixtureImage::alpine());
    registry.push_helm_chart("charts/demo", "0.1.0");
    registry.push_signature("app", &app);
    // The same signature under an ordinary tag: caught by its layer media type, not its tag.
    registry.tag(
        "app",
        &format!("{}.sig", app.replace(':', "-")),
        "signature-copy",
    );
    registry.push_index("multi", "1", &[Platform::new("linux", "amd64", None)]);
    let discoverer = Discoverer::new(registry.access(), 4).expect("discoverer");
    let (stats, images) = discover_ok(&discoverer, &all(), &AllTags).await;
    let tags: BTreeSet<String> = images
        .iter()
        .map(|i| format!("{}:{}", i.repository, i.tag))
        .collect();
    assert_eq!(
        tags,
        BTreeSet::from(["app:1".to_string(), "multi:1".to_string()])
    );
    assert_eq!(stats.skipped, 4, "{stats:?}");
    let examples = stats.skipped_examples.join("\n");
    assert!(
        examples.contains("charts/demo:0.1.0: helm chart"),
        "{examples}"
    );
    assert!(
        examples.contains("app:signature-copy: cosign signature"),
        "{examples}"
    );
    assert!(
        examples.contains(".sig: cosign signature (tag)"),
        "{examples}"
    );
    assert!(
        examples.contains("multi:1: attestation manifest"),
        "{examples}"
    );
}

/// Selects tags ending in "1" or "index", fails on "bad-*", counts its calls.
struct Picky(AtomicUsize);

impl TagSelector for Picky {
    fn select(&self, _repository: &str, tag: &str) -> Result<bool, String> {
        self.0.fetch_add(1, Ordering::SeqCst);
        if tag.starts_with("bad") {
            return Err(format!("cannot compare {tag:?}"));
        }
        Ok(tag.ends_with('1') || tag == "index")
    }
}

#[tokio::test]
async fn tag_selector_runs_before_manifests_and_its_errors_are_counted() {
    let registry = TestRegistry::start(RegistryOptions::default());
    registry.build_image("sel", "v1", FixtureImage::alpine());
    for tag in ["v2", "v3", "v11", "bad-a", "bad-b"] {
        registry.tag("sel", "v1", tag);
    }
    registry.push_index(
        "sel",
        "index",
        &[
            Platform::new("linux", "amd64", None),
            Platform::new("linux", "arm64", None),
        ],
    );
    let discoverer = Discoverer::new(registry.access(), 2).expect("discoverer");
    let selector = Picky(AtomicUsize::new(0));
    let (stats, images) = discover_ok(&discoverer, &repos(&["sel"]), &selector).await;
    assert_eq!(selector.0.load(Ordering::SeqCst), 7);
    assert_eq!(stats.tags_listed, 7);
    assert_eq!(stats.tags_selected, 3, "{stats:?}"); // v1, v11, index
    assert_eq!(stats.tag_filter_errors, 2);
    assert_eq!(
        stats.first_tag_filter_error.as_deref(),
        Some("sel:bad-a: cannot compare \"bad-a\"")
    );
    // Only selected tags were fetched: 3 tag manifests + 2 platform manifests of the index.
    assert_eq!(stats.manifests_fetched, 3 + 2, "{stats:?}");
    assert_eq!(stats.images, 4);
    assert_eq!(images.len(), 4);
}

#[tokio::test]
async fn htpasswd_with_basic_and_docker_config_and_a_wrong_password() {
    let registry = TestRegistry::start(RegistryOptions {
        htpasswd: Some(("scan".into(), "s3cret".into())),
        tls: false,
    });
    registry.build_image("private/app", "1", FixtureImage::alpine());
    let (stats, _) = discover_ok(
        &Discoverer::new(registry.access(), 4).expect("discoverer"),
        &all(),
        &AllTags,
    )
    .await;
    assert_eq!(stats.images, 1);

    for key in [registry.host(), format!("https://{}", registry.host())] {
        let auth = base64::engine::general_purpose::STANDARD.encode("scan:s3cret");
        let config_json = format!(r#"{{"auths": {{"{key}": {{"auth": "{auth}"}}}}}}"#);
        let access = Access {
            auth: Auth::DockerConfig { config_json },
            ..registry.access()
        };
        let (stats, _) = discover_ok(
            &Discoverer::new(access, 4).expect("discoverer"),
            &repos(&["private/app"]),
            &AllTags,
        )
        .await;
        assert_eq!(stats.images, 1, "docker config key {key}");
    }

    let access = Access {
        auth: Auth::Basic {
            username: "scan".into(),
            password: "wrong".into(),
        },
        ..registry.access()
    };
    let (result, images) = discover(
        &Discoverer::new(access, 4).expect("discoverer"),
        &all(),
        &AllTags,
    )
    .await;
    let err = result.expect_err("wrong password fails");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("registry {}: authenticating: 401", registry.url())),
        "{text}"
    );
    assert!(err.is_permanent());
    assert!(images.is_empty());

    let anonymous = Access {
        auth: Auth::Anonymous,
        ..registry.access()
    };
    let (result, _) = discover(
        &Discoverer::new(anonymous, 4).expect("discoverer"),
        &all(),
        &AllTags,
    )
    .await;
    assert!(result
        .expect_err("anonymous fails")
        .to_string()
        .contains("authenticating"));
}

#[tokio::test]
async fn tls_registry_with_ca_bundle_or_insecure_and_refused_without() {
    let registry = TestRegistry::start(RegistryOptions {
        htpasswd: None,
        tls: true,
    });
    assert!(registry.url().starts_with("https://"));
    registry.build_image("secure", "1", FixtureImage::alpine());
    let with_ca = Discoverer::new(registry.access(), 4).expect("discoverer");
    assert_eq!(discover_ok(&with_ca, &all(), &AllTags).await.0.images, 1);

    let insecure = Access {
        insecure: true,
        ca_bundle: None,
        ..registry.access()
    };
    let insecure = Discoverer::new(insecure, 4).expect("discoverer");
    assert_eq!(discover_ok(&insecure, &all(), &AllTags).await.0.images, 1);

    let neither = Access {
        ca_bundle: None,
        ..registry.access()
    };
    let neither = Discoverer::new(neither, 4).expect("discoverer");
    let err = discover(&neither, &all(), &AllTags)
        .await
        .0
        .expect_err("unknown CA is refused");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("registry {}: connecting: ", registry.url())),
        "{text}"
    );
    assert!(text.to_lowercase().contains("certificate"), "{text}");

    let bad_pem = Access {
        ca_bundle: Some("not a certificate".into()),
        ..registry.access()
    };
    let err = Discoverer::new(bad_pem, 4).expect_err("bad PEM");
    assert!(
        matches!(err, DiscoveryError::Config { .. }) && err.is_permanent(),
        "{err}"
    );
    let bad_der = Access {
        ca_bundle: Some("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into()),
        ..registry.access()
    };
    let err = Discoverer::new(bad_der, 4).expect_err("bad certificate");
    assert!(matches!(err, DiscoveryError::Config { .. }), "{err}");
}

#[tokio::test]
async fn connection_refused_names_connecting() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let access = Access {
        url: url.clone(),
        insecure: false,
        ca_bundle: None,
        auth: Auth::Anonymous,
    };
    let discoverer = Discoverer::new(access, 4).expect("discoverer");
    let err = discover(&discoverer, &all(), &AllTags)
        .await
        .0
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("registry {url}: connecting: ")),
        "{text}"
    );
    assert!(text.to_lowercase().contains("refused"), "{text}");
    assert!(!err.is_permanent());
}

#[tokio::test]
async fn configuration_errors_are_permanent() {
    let access = Access {
        url: "http://127.0.0.1:1".into(),
        insecure: false,
        ca_bundle: None,
        auth: Auth::Anonymous,
    };
    let discoverer = Discoverer::new(access.clone(), 4).expect("discoverer");
    let selection = Selection {
        catalog: Catalog::None,
        repositories: vec![],
        platforms: vec![],
    };
    let err = discover(&discoverer, &selection, &AllTags)
        .await
        .0
        .expect_err("catalog none without repositories");
    assert!(
        matches!(err, DiscoveryError::Config { .. }) && err.is_permanent(),
        "{err}"
    );
    let bad = Access {
        url: "ftp://127.0.0.1".into(),
        ..access.clone()
    };
    assert!(Discoverer::new(bad, 4).expect_err("bad url").is_permanent());
    let bad_config = Access {
        auth: Auth::DockerConfig {
            config_json: "{".into(),
        },
        ..access
    };
    let err = Discoverer::new(bad_config, 4).expect_err("bad docker config");
    assert!(err.to_string().contains("docker config"), "{err}");
}

/// A fake registry on 127.0.0.1 from an axum router; its base url.
async fn fake(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fake registry");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

fn fake_access(url: &str) -> Access {
    Access {
        url: url.to_string(),
        insecure: false,
        ca_bundle: None,
        auth: Auth::Anonymous,
    }
}

#[tokio::test]
async fn tags_pages_follow_the_link_header() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let router = Router::new().route("/v2/", get(|| async { "{}" })).route(
        "/v2/repo/tags/list",
        get(move |query: axum::extract::RawQuery| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let query = query.0.unwrap_or_default();
                let mut headers = HeaderMap::new();
                // A cursor of the server's own, not the last tag: only the Link knows it.
                let body = if query.contains("cursor=2") {
                    r#"{"name":"repo","tags":["c"]}"#
                } else {
                    assert!(query.contains("n=2"), "{query}");
                    headers.insert(
                        "link",
                        r#"</v2/repo/tags/list?n=2&cursor=2>; rel="next""#.parse().unwrap(),
                    );
                    r#"{"name":"repo","tags":["a","b"]}"#
                };
                (headers, body)
            }
        }),
    );
    let url = fake(router).await;
    let discoverer = Discoverer::new(fake_access(&url), 2)
        .expect("discoverer")
        .with_page_size(2);
    struct None_;
    impl TagSelector for None_ {
        fn select(&self, _: &str, _: &str) -> Result<bool, String> {
            Ok(false)
        }
    }
    let (stats, images) = discover_ok(&discoverer, &repos(&["repo"]), &None_).await;
    assert_eq!(stats.tags_listed, 3);
    assert_eq!(stats.manifests_fetched, 0);
    assert!(images.is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_500_on_tags_names_the_step() {
    let router = Router::new().route("/v2/", get(|| async { "{}" })).route(
        "/v2/alpine/tags/list",
        get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response() }),
    );
    let url = fake(router).await;
    let discoverer = Discoverer::new(fake_access(&url), 2).expect("discoverer");
    let err = discover(&discoverer, &repos(&["alpine"]), &AllTags)
        .await
        .0
        .expect_err("500");
    assert_eq!(
        err.to_string(),
        format!("registry {url}: listing tags of alpine: 500 Internal Server Error: boom")
    );
    assert!(!err.is_permanent());
}

#[tokio::test]
async fn a_manifest_that_is_not_json_names_the_step() {
    let router = Router::new()
        .route("/v2/", get(|| async { "{}" }))
        .route(
            "/v2/_catalog",
            get(|| async { r#"{"repositories":["web"]}"# }),
        )
        .route(
            "/v2/web/tags/list",
            get(|| async { r#"{"name":"web","tags":["latest"]}"# }),
        )
        .route(
            "/v2/web/manifests/latest",
            get(|| async {
                (
                    [("content-type", "application/vnd.oci.image.manifest.v1+json")],
                    "<html>not a manifest</html>",
                )
            }),
        );
    let url = fake(router).await;
    let discoverer = Discoverer::new(fake_access(&url), 2).expect("discoverer");
    let err = discover(&discoverer, &all(), &AllTags)
        .await
        .0
        .expect_err("not JSON");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "registry {url}: fetching manifest web:latest: not a JSON manifest"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn closing_the_output_channel_cancels_the_run() {
    let registry = TestRegistry::start(RegistryOptions::default());
    registry.build_image("many", "0", FixtureImage::alpine());
    let tags: Vec<String> = (1..40).map(|i| i.to_string()).collect();
    registry.tag_many("many", "0", &tags);
    let discoverer = Discoverer::new(registry.access(), 2).expect("discoverer");
    let (tx, mut rx) = mpsc::channel(1);
    let consumer = tokio::spawn(async move {
        let first = rx.recv().await;
        drop(rx);
        first
    });
    let err = discoverer
        .run(&repos(&["many"]), &AllTags, tx)
        .await
        .expect_err("cancelled");
    assert!(matches!(err, DiscoveryError::Cancelled { .. }), "{err}");
    assert!(err
        .to_string()
        .starts_with(&format!("registry {}: ", registry.url())));
    assert!(consumer.await.expect("consumer").is_some());
}
