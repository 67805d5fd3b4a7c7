//! `/readyz` reports a stopped background loop: a 503 naming it, while the rest of the API
//! keeps answering; a healthy replica's readiness names the replica.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Api;
use scanplane_store::Backend;
use serde_json::Value;

async fn readyz(api: &Api) -> (u16, Value) {
    let r = api
        .client
        .get(format!("{}/readyz", api.url))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn a_stopped_loop_makes_the_replica_unready_and_says_which() {
    let api = Api::start(Backend::Sqlite, Default::default()).await;
    let (code, body) = readyz(&api).await;
    assert_eq!(code, 200, "{body}");
    api.state
        .replica
        .loop_stopped("dispatcher", "the dispatcher loop panicked: boom");
    let (code, body) = readyz(&api).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["error"], "unavailable");
    assert!(
        body["message"].as_str().unwrap().contains("dispatcher"),
        "{body}"
    );
    // Liveness is unaffected: the process answers; its supervisor restarts it on exit.
    let r = api
        .client
        .get(format!("{}/healthz", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
