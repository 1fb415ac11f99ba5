//! Edge cases found by review, each once a bug: a listener that verifies
//! before answering, a forged `resend=true`, DNS changing under a kept-alive
//! connection, axum's own 413/405 answers, the test clock across a restart.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ADMIN_KEY, TestGateway, TestMerchant};
use ipn_core::paypal::request_body;
use ipn_gateway::delivery::ssrf::NetworkPolicy;
use ipn_testkit::{Receiver, Reply};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

fn payment_data(merchant_id: &str) -> Value {
    json!({
        "object": "payment",
        "id": "pay_01KAZ3NDEKTSV4RRFFQ69G5FAV",
        "status": "completed",
        "amount": 1999,
        "currency": "USD",
        "merchant_id": merchant_id,
        "receiver_email": "shop@example.com",
        "payer": {"email": "joerg@example.com", "name": "Jörg Müller"},
        "invoice": "ORD-1",
        "custom": "gift for Ann & Bob",
        "items": [{"sku": "MUG", "name": "Mug", "quantity": 1, "unit_amount": 1999, "kind": "physical"}],
        "created_at": "2026-11-25T10:00:00Z"
    })
}

/// A PayPal listener written the classic way (PHP's sample, most scripts):
/// it posts the message back and waits for the answer BEFORE it answers the
/// IPN itself. Returns its URL and the answers it got.
async fn verifying_listener(gateway_url: String) -> (String, Arc<Mutex<Vec<String>>>) {
    let answers = Arc::new(Mutex::new(Vec::new()));
    let client = reqwest::Client::new();
    let seen = Arc::clone(&answers);
    let app = axum::Router::new().route(
        "/ipn",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (client, seen, url) = (client.clone(), Arc::clone(&seen), gateway_url.clone());
            async move {
                let answer = client
                    .post(format!("{url}/cgi-bin/webscr"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(request_body(&body))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                seen.lock().unwrap().push(answer);
                "OK"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ipn", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, answers)
}

/// Once a bug: src/storage/sqlite.rs `sent_as_paypal` requires `d.attempts > 0`, and
/// the attempt is counted only when its result is committed (after the
/// listener has answered), so a listener that verifies before answering
/// always hears INVALID for a genuine first message.
#[tokio::test]
async fn a_listener_that_verifies_before_answering_hears_verified() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let (url, answers) = verifying_listener(gw.url.clone()).await;
    gw.endpoint(&shop, json!({"url": url, "dialect": "paypal"}))
        .await;
    let event = gw
        .ingest(&shop, "payment.completed", payment_data(&shop.id))
        .await;
    gw.wait_attempts(&shop, event["id"].as_str().unwrap(), "the IPN", |a| {
        !a.is_empty()
    })
    .await;
    let answers = answers.lock().unwrap().clone();
    assert_eq!(answers, vec!["VERIFIED".to_owned()]);
}

/// Once a bug: src/api/postback.rs `check` accepts the `Sending::Resend` form of any
/// event sent to a paypal endpoint, so `resend=true` added to a message that
/// was never resent verifies, though no such message was sent.
#[tokio::test]
async fn resend_true_added_to_a_message_never_resent_is_invalid() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let paypal = Receiver::start().await.unwrap();
    gw.endpoint(
        &shop,
        json!({"url": paypal.url("/ipn"), "dialect": "paypal"}),
    )
    .await;
    let event = gw
        .ingest(&shop, "payment.completed", payment_data(&shop.id))
        .await;
    let got = paypal.wait_for(1, WAIT).await;
    gw.wait_attempts(&shop, event["id"].as_str().unwrap(), "sent", |a| {
        !a.is_empty()
    })
    .await;
    let body = request_body(&got[0].body);
    let (_, answer) = gw.postback("/cgi-bin/webscr", body.clone()).await;
    assert_eq!(answer, "VERIFIED", "the message as sent verifies");
    let added = [body.as_slice(), b"&resend=true"].concat();
    let (status, answer) = gw.postback("/cgi-bin/webscr", added).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, "INVALID", "resend=true was never sent");
}

/// Once a gap in the guard: src/delivery/mod.rs builds
/// one pooled keep-alive client, and src/delivery/ssrf.rs checks addresses
/// only in the DNS resolver, which runs only when a new connection is made.
/// A delivery that reuses a pooled connection is not checked again, so after
/// the endpoint's host re-resolves to a refused address the next event is
/// still delivered over the old connection.
#[tokio::test]
async fn a_dns_change_is_honoured_even_over_a_kept_alive_connection() {
    let receiver = Receiver::start().await.unwrap(); // keeps connections open
    let gw = TestGateway::start_with(|c| {
        c.network = NetworkPolicy::with_allow_list(&["127.0.0.1/32"]).unwrap();
    })
    .await;
    let shop = gw.merchant("shop").await;
    gw.resolver
        .set("hooks.example.test", vec!["127.0.0.1".parse().unwrap()]);
    let url = format!("http://hooks.example.test:{}/hook", receiver.addr().port());
    gw.endpoint(&shop, json!({"url": url})).await;
    gw.ingest(&shop, "invoice.paid", json!({"id": "inv_1"}))
        .await;
    assert_eq!(receiver.wait_for(1, WAIT).await.len(), 1);

    gw.resolver
        .set("hooks.example.test", vec!["10.0.0.5".parse().unwrap()]);
    let second = gw
        .ingest(&shop, "invoice.paid", json!({"id": "inv_2"}))
        .await;
    let attempts = gw
        .wait_attempts(&shop, second["id"].as_str().unwrap(), "an attempt", |a| {
            !a.is_empty()
        })
        .await;
    assert_eq!(attempts[0]["status"], "failed", "{attempts:#?}");
    assert!(
        attempts[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("refused")),
        "{attempts:#?}"
    );
    assert_eq!(
        receiver.requests().len(),
        1,
        "the receiver got nothing more"
    );
}

/// Once a bug: src/api/mod.rs `DefaultBodyLimit::max(MAX_BODY)` makes axum's `Bytes`
/// extractor reject a body over 260 KiB with its own plain-text 413
/// ("Failed to buffer the request body: length limit exceeded"), not the
/// API's JSON error.
#[tokio::test]
async fn a_far_too_large_body_gets_a_json_413() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let body = format!(
        r#"{{"type":"invoice.paid","data":{{"blob":"{}"}}}}"#,
        "x".repeat(1024 * 1024)
    );
    let response = gw
        .unauthenticated(Method::POST, "/v1/events")
        .bearer_auth(&shop.key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let text = response.text().await.unwrap();
    let answer: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not the JSON error shape ({e}): {text:?}"));
    assert_eq!(answer["error"]["code"], "payload_too_large", "{answer}");
}

/// Once a bug: src/api/mod.rs `router` has a JSON fallback for unknown paths but
/// none for a known path with the wrong method: axum answers 405 with an
/// empty body, not `{"error": {"code", "message"}}`.
#[tokio::test]
async fn a_wrong_method_gets_a_json_405() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    for (method, path) in [
        (Method::DELETE, "/v1/events"),
        (Method::GET, "/cgi-bin/webscr"),
        (Method::PUT, "/v1/merchants"),
    ] {
        let (status, body) = gw
            .request(method.clone(), &shop.key, path, None, None)
            .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            body["error"]["code"].as_str().is_some(),
            "{method} {path}: {body:?}"
        );
    }
}

/// Once a bug: src/clock.rs keeps the test clock's offset in memory only
/// (`Clock::test()` starts at 0 in src/app.rs), so after a restart the
/// gateway clock jumps back by every advance made, although DESIGN §4 says
/// the offset never decreases: later events are dated before earlier ones.
#[tokio::test]
async fn the_test_clock_does_not_go_back_across_a_restart() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    gw.advance(2 * 24 * 3600).await;
    let before = gw
        .ingest(&shop, "invoice.paid", json!({"id": "inv_1"}))
        .await;
    let gw = gw.restart(|_| {}).await;
    let after = gw
        .ingest(&shop, "invoice.paid", json!({"id": "inv_2"}))
        .await;
    let at = |e: &Value| {
        time::OffsetDateTime::parse(
            e["created_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert!(
        at(&after) >= at(&before),
        "created_at went back: {} then {}",
        at(&before),
        at(&after)
    );
}

/// The same, as seen by a receiver: a retry that falls due 5 s after a
/// failure, at a time reached by advancing, is two days away after a restart.
#[tokio::test]
async fn a_retry_due_in_advanced_time_runs_after_a_restart() {
    let gw = TestGateway::start().await;
    let shop: TestMerchant = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    receiver.respond_next([Reply::status(500)]);
    gw.endpoint(&shop, json!({"url": receiver.url("/hook")}))
        .await;
    gw.advance(2 * 24 * 3600).await;
    let event = gw
        .ingest(&shop, "invoice.paid", json!({"id": "inv_1"}))
        .await;
    let id = event["id"].as_str().unwrap();
    gw.wait_attempts(&shop, id, "the failed attempt", |a| a.len() == 1)
        .await;
    let gw = gw.restart(|_| {}).await;
    gw.advance(7).await;
    // Due at once; two seconds is plenty (the old bug held it for days).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while gw.attempts(&shop, id).await.len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        gw.attempts(&shop, id).await.len(),
        2,
        "the retry ran after the restart"
    );
}

/// PostgreSQL's text cannot hold U+0000, which SQLite's can: text that
/// holds one is still taken, stored and searched, on either database.
#[tokio::test]
async fn text_holding_a_nul_is_taken_and_searched_like_any_other() {
    let gw = TestGateway::start().await;
    let (status, body) = gw
        .post(
            ADMIN_KEY,
            "/v1/merchants",
            json!({"name": "shop\u{0}", "receiver_email": "shop@example.com"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let shop = gw.merchant("shop").await;
    let (status, body) = gw
        .post(
            &shop.key,
            "/v1/endpoints",
            json!({"url": "http://127.0.0.1:9/", "description": "d\u{0}"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    gw.ingest(&shop, "invoice.paid", json!({"id": "in\u{0}1"}))
        .await;
    let second = gw
        .ingest(&shop, "invoice.paid", json!({"id": "in\u{0}1"}))
        .await;
    assert_eq!(second["sequence"], 2, "one object: {second}");
    let (status, body) = gw.get(&shop.key, "/v1/events?type=invoice.paid%00").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!([]));
}
