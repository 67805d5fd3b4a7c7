//! Leader election against a scripted API server (kube-rs's `tower_test` "API server
//! verifier" pattern): each request the elector makes is checked (method, path, body) and
//! answered as the real API server would, including 404, 409 Conflict and 5xx answers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::sync::{Arc, Mutex};
use std::time::Duration;

mod support;

use chrono::{DateTime, TimeDelta, Utc};
use http::{Method, Response, StatusCode};
use kube::Client;
use scanplane_operator::lease::{LeaderElector, LeaseConfig, LeaseError};
use serde_json::{json, Value};
use support::{full, internal_error, recv, status, Body, Handle, Responder, Seen, WAIT};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

const NS: &str = "ns";
const ME: &str = "replica-a";
const OTHER: &str = "replica-b";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/ns/leases";
const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/scanplane-operator";

fn mock() -> (Client, Handle) {
    support::mock(NS)
}

fn not_found() -> Response<Body> {
    full(
        StatusCode::NOT_FOUND,
        &status(
            404,
            "NotFound",
            "leases.coordination.k8s.io \"scanplane-operator\" not found",
        ),
    )
}

fn conflict() -> Response<Body> {
    full(
        StatusCode::CONFLICT,
        &status(
            409,
            "Conflict",
            "Operation cannot be fulfilled on leases.coordination.k8s.io \"scanplane-operator\": \
             the object has been modified; please apply your changes to the latest version and try again",
        ),
    )
}

async fn next(handle: &mut Handle) -> (Seen, Responder) {
    tokio::time::timeout(WAIT, recv(handle))
        .await
        .expect("the elector sent no request in time")
        .expect("the elector went away")
}

fn micro(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn parse_micro(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// The Lease as the API server returns it.
fn lease(rv: u64, spec: Value) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "scanplane-operator", "namespace": NS, "uid": "lease-uid",
                     "resourceVersion": rv.to_string(),
                     "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": spec,
    })
}

fn held_by(holder: &str, renewed: DateTime<Utc>, secs: i32, transitions: i32) -> Value {
    json!({
        "holderIdentity": holder,
        "leaseDurationSeconds": secs,
        "acquireTime": micro(renewed - TimeDelta::seconds(600)),
        "renewTime": micro(renewed),
        "leaseTransitions": transitions,
    })
}

/// What the server stores after a successful write of `body`: the body, with the server's
/// metadata fields filled in as the real one would.
fn stored(mut body: Value, rv: u64) -> Value {
    body["metadata"]["resourceVersion"] = json!(rv.to_string());
    body["metadata"]["uid"] = json!("lease-uid");
    body["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
    body
}

fn config(lease_secs: u64, renew_ms: u64) -> LeaseConfig {
    LeaseConfig {
        lease_duration: Duration::from_secs(lease_secs),
        renew_every: Duration::from_millis(renew_ms),
        ..LeaseConfig::new(NS, ME)
    }
}

/// A running elector: its leadership receiver, the sequence of leadership values it
/// published, the shutdown switch, and its result.
struct Running {
    leader: watch::Receiver<bool>,
    history: JoinHandle<Vec<bool>>,
    stop: watch::Sender<bool>,
    run: JoinHandle<Result<(), LeaseError>>,
}

fn start(client: Client, config: LeaseConfig) -> Running {
    let elector = LeaderElector::new(client, config).unwrap();
    let leader = elector.subscribe();
    let mut watcher = elector.subscribe();
    // Every published change, until the elector (the sender) is dropped.
    let history = tokio::spawn(async move {
        let mut seen = Vec::new();
        while watcher.changed().await.is_ok() {
            seen.push(*watcher.borrow_and_update());
        }
        seen
    });
    let (stop, mut stopped) = watch::channel(false);
    // The elector lives in the task and is dropped with it, which closes the mock service.
    let run = tokio::spawn(async move {
        elector
            .run(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
    });
    Running {
        leader,
        history,
        stop,
        run,
    }
}

impl Running {
    async fn wait_leader(&mut self, want: bool) {
        tokio::time::timeout(WAIT, self.leader.wait_for(|l| *l == want))
            .await
            .expect("leadership did not change in time")
            .unwrap();
    }

    /// Signals shutdown and waits for the elector to finish: its result and leadership history.
    async fn stop(self) -> (Result<(), LeaseError>, Vec<bool>) {
        self.stop.send(true).unwrap();
        let result = tokio::time::timeout(WAIT, self.run)
            .await
            .expect("the elector did not stop in time")
            .unwrap();
        let history = tokio::time::timeout(WAIT, self.history)
            .await
            .unwrap()
            .unwrap();
        (result, history)
    }
}

/// One write the fake server saw, with the writer's leadership at that moment.
#[derive(Debug, Clone)]
struct Write {
    method: Method,
    body: Value,
    accepted: bool,
    writer_leading: bool,
}

/// An API server holding one Lease, enforcing `resourceVersion` like the real one.
#[derive(Default)]
struct Server {
    lease: Option<Value>,
    rv: u64,
    gets: usize,
    writes: Vec<Write>,
}

impl Server {
    fn with(lease: Value) -> Arc<Mutex<Self>> {
        let rv = lease["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        Arc::new(Mutex::new(Server {
            lease: Some(lease),
            rv,
            ..Server::default()
        }))
    }

    fn answer(&mut self, seen: &Seen, writer_leading: bool) -> Response<Body> {
        let (accepted, response) = match (seen.method.clone(), seen.path.as_str()) {
            (Method::GET, LEASE) => {
                self.gets += 1;
                return match &self.lease {
                    Some(lease) => full(StatusCode::OK, lease),
                    None => not_found(),
                };
            }
            (Method::POST, LEASES) if self.lease.is_some() => (
                false,
                full(
                    StatusCode::CONFLICT,
                    &status(
                        409,
                        "AlreadyExists",
                        "leases.coordination.k8s.io \"scanplane-operator\" already exists",
                    ),
                ),
            ),
            (Method::POST, LEASES) => {
                self.rv += 1;
                let lease = stored(seen.body.clone(), self.rv);
                self.lease = Some(lease.clone());
                (true, full(StatusCode::CREATED, &lease))
            }
            (Method::PUT, LEASE) => {
                let current = self
                    .lease
                    .as_ref()
                    .map(|l| l["metadata"]["resourceVersion"].clone());
                if current.as_ref() != Some(&seen.body["metadata"]["resourceVersion"]) {
                    (false, conflict())
                } else {
                    self.rv += 1;
                    let lease = stored(seen.body.clone(), self.rv);
                    self.lease = Some(lease.clone());
                    (true, full(StatusCode::OK, &lease))
                }
            }
            (method, path) => panic!("unexpected request {method} {path}"),
        };
        self.writes.push(Write {
            method: seen.method.clone(),
            body: seen.body.clone(),
            accepted,
            writer_leading,
        });
        response
    }
}

/// Serves one elector's requests from `server` until that elector is gone; `events` gets a
/// tick per request so tests can wait for rounds without sleeping.
fn serve(
    mut handle: Handle,
    server: Arc<Mutex<Server>>,
    leader: watch::Receiver<bool>,
    events: Option<mpsc::UnboundedSender<Method>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some((seen, send)) = recv(&mut handle).await {
            let response = server.lock().unwrap().answer(&seen, *leader.borrow());
            send.send_response(response);
            if let Some(events) = &events {
                let _ = events.send(seen.method);
            }
        }
    })
}

/// The last accepted write must be the release: holder cleared, written after stepping down.
fn assert_released(server: &Server) {
    let last = server.writes.iter().rev().find(|w| w.accepted).unwrap();
    assert_eq!(last.method, Method::PUT);
    assert!(
        last.body["spec"]["holderIdentity"].is_null(),
        "{:?}",
        last.body
    );
    assert!(
        !last.writer_leading,
        "released while still reporting leadership"
    );
    let lease = server.lease.as_ref().unwrap();
    assert!(lease["spec"]["holderIdentity"].is_null());
}

#[tokio::test]
async fn no_lease_is_created_renewed_and_released() {
    let (client, mut handle) = mock();
    let mut elector = start(client, config(2, 300));

    let (seen, send) = next(&mut handle).await;
    assert_eq!(
        (seen.method.clone(), seen.path.as_str()),
        (Method::GET, LEASE)
    );
    send.send_response(not_found());

    let before = Utc::now() - TimeDelta::seconds(1);
    let (seen, send) = next(&mut handle).await;
    assert_eq!(
        (seen.method.clone(), seen.path.as_str()),
        (Method::POST, LEASES)
    );
    let body = &seen.body;
    assert_eq!(body["apiVersion"], "coordination.k8s.io/v1");
    assert_eq!(body["kind"], "Lease");
    assert_eq!(body["metadata"]["name"], "scanplane-operator");
    assert_eq!(body["metadata"]["namespace"], NS);
    assert_eq!(body["spec"]["holderIdentity"], ME);
    assert_eq!(body["spec"]["leaseDurationSeconds"], 2);
    assert_eq!(body["spec"]["leaseTransitions"], 0);
    let acquired = parse_micro(&body["spec"]["acquireTime"]);
    let renewed = parse_micro(&body["spec"]["renewTime"]);
    assert!(acquired >= before);
    assert_eq!(acquired, renewed);
    assert!(
        !*elector.leader.borrow(),
        "leader before the create succeeded"
    );
    let created = stored(seen.body.clone(), 1);
    send.send_response(full(StatusCode::CREATED, &created));
    elector.wait_leader(true).await;

    // The next round renews its own Lease, conditional on the version it read.
    let (seen, send) = next(&mut handle).await;
    assert_eq!(
        (seen.method.clone(), seen.path.as_str()),
        (Method::GET, LEASE)
    );
    send.send_response(full(StatusCode::OK, &created));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(
        (seen.method.clone(), seen.path.as_str()),
        (Method::PUT, LEASE)
    );
    let spec = &seen.body["spec"];
    assert_eq!(seen.body["metadata"]["resourceVersion"], "1");
    assert_eq!(spec["holderIdentity"], ME);
    assert_eq!(spec["leaseTransitions"], 0, "a renewal is no transition");
    assert_eq!(
        parse_micro(&spec["acquireTime"]),
        acquired,
        "the tenure continues"
    );
    assert!(parse_micro(&spec["renewTime"]) >= renewed);
    let renewed_lease = stored(seen.body.clone(), 2);
    send.send_response(full(StatusCode::OK, &renewed_lease));

    // From here on a faithful server answers whatever comes (more renewals, then the release).
    let server = Server::with(renewed_lease);
    let served = serve(handle, server.clone(), elector.leader.clone(), None);
    assert!(*elector.leader.borrow());
    let (result, history) = elector.stop().await;
    result.unwrap();
    served.await.unwrap();
    assert_eq!(history, [true, false]);
    let server = server.lock().unwrap();
    assert_released(&server);
    assert_eq!(
        server.lease.as_ref().unwrap()["spec"]["leaseTransitions"],
        0
    );
}

#[tokio::test]
async fn foreign_fresh_lease_is_left_alone() {
    let (client, handle) = mock();
    // The holder promised to renew within 60 s and did so just now: nothing to do but wait.
    let server = Server::with(lease(7, held_by(OTHER, Utc::now(), 60, 2)));
    let elector = start(client, config(1, 200));
    let (events, mut ticks) = mpsc::unbounded_channel();
    let served = serve(handle, server.clone(), elector.leader.clone(), Some(events));

    // Several rounds, each only a read.
    for _ in 0..3 {
        let method = tokio::time::timeout(WAIT, ticks.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(method, Method::GET);
    }
    assert!(!*elector.leader.borrow());
    let (result, history) = elector.stop().await;
    result.unwrap();
    served.await.unwrap();
    assert!(
        history.iter().all(|l| !l),
        "led while another held the lease: {history:?}"
    );
    let server = server.lock().unwrap();
    assert!(server.gets >= 3);
    assert!(
        server.writes.is_empty(),
        "wrote a lease it does not hold: {:?}",
        server.writes
    );
    assert_eq!(
        server.lease.as_ref().unwrap()["spec"]["holderIdentity"],
        OTHER
    );
}

#[tokio::test]
async fn expired_foreign_lease_is_taken_over_with_its_version() {
    let (client, mut handle) = mock();
    let mut elector = start(client, config(2, 300));

    let (seen, send) = next(&mut handle).await;
    assert_eq!(
        (seen.method.clone(), seen.path.as_str()),
        (Method::GET, LEASE)
    );
    let stale = Utc::now() - TimeDelta::seconds(30);
    let mut old = lease(42, held_by(OTHER, stale, 10, 3));
    // Fields the elector does not manage must survive the takeover.
    old["metadata"]["labels"] = json!({"app.kubernetes.io/part-of": "scanplane"});
    send.send_response(full(StatusCode::OK, &old));

    let (seen, send) = next(&mut handle).await;
    assert_eq!(
        (seen.method.clone(), seen.path.as_str()),
        (Method::PUT, LEASE)
    );
    let body = &seen.body;
    assert_eq!(body["metadata"]["resourceVersion"], "42");
    assert_eq!(
        body["metadata"]["labels"]["app.kubernetes.io/part-of"],
        "scanplane"
    );
    assert_eq!(body["spec"]["holderIdentity"], ME);
    assert_eq!(body["spec"]["leaseTransitions"], 4);
    assert_eq!(body["spec"]["leaseDurationSeconds"], 2);
    let acquired = parse_micro(&body["spec"]["acquireTime"]);
    assert!(acquired > stale, "a takeover starts a new tenure");
    assert_eq!(parse_micro(&body["spec"]["renewTime"]), acquired);
    let taken = stored(seen.body.clone(), 43);
    send.send_response(full(StatusCode::OK, &taken));
    elector.wait_leader(true).await;

    let server = Server::with(taken);
    let served = serve(handle, server.clone(), elector.leader.clone(), None);
    let (result, history) = elector.stop().await;
    result.unwrap();
    served.await.unwrap();
    assert_eq!(history, [true, false]);
    let server = server.lock().unwrap();
    assert_released(&server);
    assert_eq!(
        server.lease.as_ref().unwrap()["spec"]["leaseTransitions"],
        4
    );
}

#[tokio::test]
async fn conflict_on_takeover_means_not_leader() {
    let (client, mut handle) = mock();
    let elector = start(client, config(2, 300));

    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.method, Method::GET);
    send.send_response(full(
        StatusCode::OK,
        &lease(
            42,
            held_by(OTHER, Utc::now() - TimeDelta::seconds(30), 10, 3),
        ),
    ));
    let (seen, send) = next(&mut handle).await;
    assert_eq!(
        (seen.method.clone(), seen.path.as_str()),
        (Method::PUT, LEASE)
    );
    assert_eq!(seen.body["metadata"]["resourceVersion"], "42");
    // Another replica took it over between our read and our write.
    send.send_response(conflict());

    // The loser re-reads and finds the winner's fresh Lease.
    let (seen, send) = next(&mut handle).await;
    assert_eq!(
        (seen.method.clone(), seen.path.as_str()),
        (Method::GET, LEASE)
    );
    let winner = lease(43, held_by("replica-c", Utc::now(), 60, 4));
    send.send_response(full(StatusCode::OK, &winner));
    assert!(!*elector.leader.borrow());

    let server = Server::with(winner);
    let served = serve(handle, server.clone(), elector.leader.clone(), None);
    let (result, history) = elector.stop().await;
    result.unwrap();
    served.await.unwrap();
    assert!(
        history.iter().all(|l| !l),
        "led after losing the race: {history:?}"
    );
    let server = server.lock().unwrap();
    assert!(
        server.writes.is_empty(),
        "wrote after losing: {:?}",
        server.writes
    );
    assert_eq!(
        server.lease.as_ref().unwrap()["spec"]["holderIdentity"],
        "replica-c"
    );
}

#[tokio::test]
async fn failing_renewals_end_leadership() {
    let (client, mut handle) = mock();
    let mut elector = start(client, config(1, 200));

    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.method, Method::GET);
    send.send_response(not_found());
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.method, Method::POST);
    send.send_response(full(StatusCode::CREATED, &stored(seen.body.clone(), 1)));
    elector.wait_leader(true).await;

    // From now on the API server fails every request, the release included.
    let failing = tokio::spawn(async move {
        let mut requests = 0;
        while let Some((_, send)) = recv(&mut handle).await {
            requests += 1;
            send.send_response(internal_error());
        }
        requests
    });
    elector.wait_leader(false).await;
    let (result, history) = elector.stop().await;
    assert!(matches!(result, Err(LeaseError::Kube(_))), "{result:?}");
    assert_eq!(history, [true, false]);
    assert!(failing.await.unwrap() >= 2, "no renewal was even tried");
}

#[tokio::test]
async fn hung_api_server_ends_leadership() {
    let (client, mut handle) = mock();
    let mut elector = start(client, config(1, 200));

    let (_, send) = next(&mut handle).await;
    send.send_response(not_found());
    let (seen, send) = next(&mut handle).await;
    send.send_response(full(StatusCode::CREATED, &stored(seen.body.clone(), 1)));
    elector.wait_leader(true).await;

    // Requests arrive but are never answered (held, so they neither fail nor complete).
    let hung = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some((_, send)) = recv(&mut handle).await {
            held.push(send);
        }
        held.len()
    });
    elector.wait_leader(false).await;
    let (result, history) = elector.stop().await;
    assert!(
        matches!(result, Err(LeaseError::Timeout { .. })),
        "{result:?}"
    );
    assert_eq!(history, [true, false]);
    assert!(hung.await.unwrap() >= 1);
}

#[tokio::test]
async fn two_replicas_one_leader_and_release_hands_over() {
    let server = Arc::new(Mutex::new(Server::default()));
    let (client_a, handle_a) = mock();
    let (client_b, handle_b) = mock();
    // A long lease: the successor can only take over quickly because the leader releases it.
    let a = start(client_a, config(60, 200));
    let b = start(
        client_b,
        LeaseConfig {
            identity: OTHER.into(),
            ..config(60, 200)
        },
    );
    let (events, mut ticks) = mpsc::unbounded_channel();
    let served_a = serve(
        handle_a,
        server.clone(),
        a.leader.clone(),
        Some(events.clone()),
    );
    let served_b = serve(handle_b, server.clone(), b.leader.clone(), Some(events));

    tokio::time::timeout(WAIT, async {
        loop {
            if *a.leader.borrow() || *b.leader.borrow() {
                break;
            }
            ticks.recv().await.unwrap();
        }
    })
    .await
    .expect("nobody became leader");
    // Let a few more rounds happen: still exactly one leader, and it is the Lease's holder.
    for _ in 0..6 {
        tokio::time::timeout(WAIT, ticks.recv())
            .await
            .unwrap()
            .unwrap();
    }
    let (a_leads, b_leads) = (*a.leader.borrow(), *b.leader.borrow());
    assert!(a_leads != b_leads, "leaders: a={a_leads} b={b_leads}");
    let holder = server.lock().unwrap().lease.as_ref().unwrap()["spec"]["holderIdentity"].clone();
    assert_eq!(holder, if a_leads { ME } else { OTHER });
    {
        let server = server.lock().unwrap();
        assert!(server
            .writes
            .iter()
            .all(|w| w.accepted || w.method == Method::POST));
    }

    let (leader, mut follower) = if a_leads { (a, b) } else { (b, a) };
    let (result, history) = leader.stop().await;
    result.unwrap();
    assert_eq!(history, [true, false]);
    follower.wait_leader(true).await;
    let transitions =
        server.lock().unwrap().lease.as_ref().unwrap()["spec"]["leaseTransitions"].clone();
    assert_eq!(transitions, 1, "the handover is one transition");

    let (result, history) = follower.stop().await;
    result.unwrap();
    assert_eq!(history, [true, false]);
    served_a.await.unwrap();
    served_b.await.unwrap();
    assert_released(&server.lock().unwrap());
}
