//! Durability across a clean restart, and secret rotation with its 24 h
//! overlap.

mod common;

use std::time::Duration;

use common::{TestGateway, expected_v1, v1_signatures, verify_signed};
use ipn_core::standard::{Verifier, WebhookHeaders, WebhookSecret};
use ipn_testkit::{Receiver, Recorded, Reply};
use reqwest::StatusCode;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_retry_pending_at_shutdown_is_delivered_after_a_restart() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    receiver.respond_with(Reply::status(500).body("down"));
    let ep = gw
        .endpoint(&shop, json!({"url": receiver.url("/hook")}))
        .await;
    let event = gw
        .ingest(&shop, "invoice.paid", json!({"id": "inv_1"}))
        .await;
    let id = event["id"].as_str().unwrap();
    gw.wait_attempts(&shop, id, "the failed first attempt", |a| a.len() == 1)
        .await;

    let gw = gw.restart(|_| {}).await;
    receiver.respond_with(Reply::ok());
    // The merchant, its key and its endpoint survived.
    let (status, endpoint) = gw.get(&shop.key, &format!("/v1/endpoints/{}", ep.id)).await;
    assert_eq!(status, StatusCode::OK, "{endpoint}");
    assert_eq!(endpoint["status"], "enabled");

    gw.advance(7).await; // past the 5 s (+20 %) retry
    let attempts = gw
        .wait_attempts(&shop, id, "the retry after the restart", |a| a.len() == 2)
        .await;
    assert_eq!(attempts[0]["status"], "failed");
    assert_eq!(attempts[0]["response_status"], 500);
    assert_eq!(attempts[1]["status"], "succeeded");
    assert_eq!(attempts[1]["response_status"], 200);

    let got = receiver.requests();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| r.header("webhook-id") == Some(id)));
    assert_eq!(got[1].body, got[0].body, "the same event, byte for byte");
    verify_signed(&got[1], &ep.secret);
    let (_, stored) = gw.get(&shop.key, &format!("/v1/events/{id}")).await;
    assert_eq!(stored, event);

    // Nothing more follows a delivered event.
    gw.advance(24 * 3600).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.requests().len(), 2);
}

#[tokio::test]
async fn an_event_accepted_before_shutdown_is_delivered_after_it() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    // Shut down at once: some deliveries may be in flight, some not yet
    // started, one failed (503) and waiting for its retry; all arrive.
    receiver.respond_next([Reply::status(503)]);
    gw.endpoint(&shop, json!({"url": receiver.url("/hook")}))
        .await;
    let ids = gw.ingest_invoices(&shop, "inv_", 5).await;
    let gw = gw.restart(|_| {}).await;
    gw.advance(7).await;
    for id in &ids {
        gw.wait_attempts(&shop, id, "delivered", |a| {
            a.iter().any(|x| x["status"] == "succeeded")
        })
        .await;
    }
    let delivered: std::collections::HashSet<String> = receiver
        .requests()
        .iter()
        .filter_map(|r| r.header("webhook-id").map(str::to_owned))
        .collect();
    for id in &ids {
        assert!(delivered.contains(id), "{id} was delivered");
    }
}

/// Whether `secret` alone verifies a received request.
fn verifies_with(request: &Recorded, secret: &str) -> bool {
    let headers =
        WebhookHeaders::from_lookup(|name| request.headers.get(name).map(|v| v.as_bytes()))
            .unwrap();
    Verifier::with_secret(WebhookSecret::parse(secret).unwrap())
        .verify_signature(&headers, &request.body)
        .is_ok()
}

#[tokio::test]
async fn a_rotated_secret_signs_alongside_the_old_one_for_24_hours() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    let ep = gw
        .endpoint(&shop, json!({"url": receiver.url("/hook")}))
        .await;
    let old = ep.secret.clone();

    gw.ingest(&shop, "invoice.paid", json!({"id": "before"}))
        .await;
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(v1_signatures(&got[0]), vec![expected_v1(&got[0], &old)]);

    let new = gw.rotate_secret(&shop, &ep).await;
    assert!(new.starts_with("whsec_"), "{new}");
    assert_ne!(new, old);

    // During the overlap: one v1 signature per secret.
    gw.ingest(&shop, "invoice.paid", json!({"id": "during"}))
        .await;
    let got = receiver.wait_for(2, WAIT).await;
    let during = &got[1];
    let mut signatures = v1_signatures(during);
    signatures.sort();
    let mut expected = vec![expected_v1(during, &new), expected_v1(during, &old)];
    expected.sort();
    assert_eq!(signatures, expected);
    assert!(verifies_with(during, &new));
    assert!(verifies_with(during, &old));

    // After 24 h, the new secret only.
    gw.advance(25 * 3600).await;
    gw.ingest(&shop, "invoice.paid", json!({"id": "after"}))
        .await;
    let got = receiver.wait_for(3, WAIT).await;
    let after = &got[2];
    assert_eq!(v1_signatures(after), vec![expected_v1(after, &new)]);
    assert!(verifies_with(after, &new));
    assert!(!verifies_with(after, &old));
}

#[tokio::test]
async fn a_rotation_overlap_survives_a_restart() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    let ep = gw
        .endpoint(&shop, json!({"url": receiver.url("/hook")}))
        .await;
    let new = gw.rotate_secret(&shop, &ep).await;

    let gw = gw.restart(|_| {}).await;
    gw.ingest(&shop, "invoice.paid", json!({"id": "x"})).await;
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    assert_eq!(v1_signatures(&got[0]).len(), 2);
    assert!(verifies_with(&got[0], &new));
    assert!(verifies_with(&got[0], &ep.secret));
}
