//! Slow and idle clients (issue 12, defect 3): the gateway closes each on
//! time, keeps serving everyone else meanwhile, and holds no more
//! connections than its cap.

mod common;

use std::time::Duration;

use common::TestGateway;
use ipn_testkit::slow::{Crowd, Slow, assert_timed_out};
use serde_json::json;

/// How long a client waits for the server to close before the test fails:
/// far beyond every timeout set here, so only a server that never closes
/// the connection reaches it.
const BOUND: Duration = Duration::from_secs(30);
/// A byte every this long: slow, but steady.
const EVERY: Duration = Duration::from_millis(100);

fn limits(timeout: Duration, max_connections: usize) -> ipn_web::Limits {
    ipn_web::Limits {
        header_read: timeout,
        idle: timeout,
        body: timeout,
        max_connections,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_on_time_while_others_are_served() {
    let timeout = Duration::from_secs(2);
    let gateway = TestGateway::start_with(|config| config.http_limits = limits(timeout, 512)).await;
    let merchant = gateway.merchant("shop").await;

    let mut crowd = Crowd::new(gateway.gateway.addr(), EVERY, BOUND);
    crowd.add(Slow::Head, 80, "/healthz");
    crowd.add(Slow::Body, 60, "/cgi-bin/webscr");
    crowd.add(Slow::Idle, 60, "/healthz");
    crowd.connected().await;

    // With all 200 open, the API answers as usual.
    for n in 0..20 {
        let event = gateway
            .ingest(&merchant, "invoice.paid", json!({"id": format!("inv_{n}")}))
            .await;
        assert!(event["id"].as_str().unwrap().starts_with("evt_"), "{event}");
    }

    for (slow, outcome) in crowd.outcomes().await {
        assert_timed_out(slow, &outcome, timeout);
    }
    gateway.gateway.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_and_are_served() {
    let timeout = Duration::from_secs(1);
    let cap = 10;
    let gateway = TestGateway::start_with(|config| config.http_limits = limits(timeout, cap)).await;
    let merchant = gateway.merchant("shop").await;

    // Four times the cap of slow heads: the server holds `cap` of them at a
    // time, each until its head times out; the rest wait to be accepted.
    let mut crowd = Crowd::new(gateway.gateway.addr(), EVERY, BOUND);
    crowd.add(Slow::Head, 4 * cap, "/healthz");
    crowd.connected().await;

    // A new client arriving now waits its turn behind them, and is served.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/events", gateway.url))
        .bearer_auth(&merchant.key)
        .json(&json!({"type": "invoice.paid", "data": {"id": "inv_after_the_crowd"}}))
        .timeout(BOUND)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);

    let mut last = Duration::ZERO;
    for (slow, outcome) in crowd.outcomes().await {
        assert_timed_out(slow, &outcome, timeout);
        last = last.max(outcome.closed_after.unwrap());
    }
    // Had all been accepted at once, all would have closed after one
    // timeout; `cap` at a time, the last waited for three rounds at least.
    assert!(
        last >= 3 * timeout,
        "the last slow connection closed after {last:?}: more than {cap} were served at once"
    );
    gateway.gateway.shutdown().await.unwrap();
}
