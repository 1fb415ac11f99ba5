//! Receiving: what reaches the inbox, exactly once and byte for byte, and
//! what is refused without leaving a trace.

mod common;

use common::{Bound, TestGateway, TestMerchant, WAIT, unix_now};
use ipn_core::paypal::Form;
use ipn_core::standard::{Signer, WebhookSecret};
use ipn_testkit::Receiver;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BODY: &[u8] = br#"{"id":"evt_1","type":"payment.completed","data":{"id":"pay_1"}}"#;

/// The three Standard Webhooks headers of `body` signed by `secret`.
fn signed(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    let signer = Signer::Secret(WebhookSecret::parse(secret).unwrap());
    vec![
        ("content-type".into(), "application/json".into()),
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        ("webhook-signature".into(), signer.sign(id, timestamp, body)),
    ]
}

fn refs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

/// The `error` object of a JSON error answer.
fn error(text: &str) -> Value {
    let answer: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
    answer["error"].clone()
}

const FORM: &str = "application/x-www-form-urlencoded";

#[tokio::test]
async fn gateway_messages_reach_the_inbox_once_and_unchanged_in_both_dialects() {
    let gw = TestGateway::start().await;
    let account = gw.account("shop").await;
    let bound = Bound::new().await;
    // Control endpoints: what a plain receiver gets is what was sent.
    let standard_copy = Receiver::start().await.unwrap();
    let paypal_copy = Receiver::start().await.unwrap();
    let (_, secret) = gw
        .endpoint(&account, json!({"url": format!("{}/webhooks", bound.url)}))
        .await;
    gw.endpoint(
        &account,
        json!({"url": format!("{}/ipn", bound.url), "dialect": "paypal"}),
    )
    .await;
    gw.endpoint(&account, json!({"url": standard_copy.url("/copy")}))
        .await;
    gw.endpoint(
        &account,
        json!({"url": paypal_copy.url("/copy"), "dialect": "paypal"}),
    )
    .await;
    let shop = TestMerchant::start(bound, &gw.url, &secret).await;

    let (status, payment) = gw
        .post(
            &account.key,
            "/v1/payments",
            json!({
                "amount": 1999,
                "currency": "USD",
                "invoice": "order-1",
                "payer": {"email": "ann@example.com", "name": "Ann Smith"},
                "payment_method": {"card_number": "4242 4242 4242 4242"},
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["status"], "completed");
    let payment_id = payment["id"].as_str().unwrap();
    let (status, refund) = gw
        .post(
            &account.key,
            &format!("/v1/payments/{payment_id}/refunds"),
            json!({"amount": 500}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");

    let standard_sent = standard_copy.wait_for(2, WAIT).await;
    let paypal_sent = paypal_copy.wait_for(2, WAIT).await;
    for request in &standard_sent {
        let event: Value = serde_json::from_slice(&request.body).unwrap();
        gw.wait_delivered(&account, event["id"].as_str().unwrap(), 4)
            .await;
    }
    let inbox = shop.wait_inbox(4).await;
    assert_eq!(inbox.len(), 4, "each message once: {inbox:#?}");

    for sent in &standard_sent {
        let id = sent.header("webhook-id").unwrap();
        let rows: Vec<_> = inbox
            .iter()
            .filter(|r| r.webhook_id.as_deref() == Some(id))
            .collect();
        assert_eq!(rows.len(), 1, "{id}: {inbox:#?}");
        let row = rows[0];
        assert_eq!(row.dialect, "standard");
        // The handler may already have applied it (tests/handler.rs).
        assert!(
            ["received", "processed"].contains(&row.status.as_str()),
            "{row:#?}"
        );
        assert_eq!(row.body, sent.body, "the standard body, byte for byte");
        assert_eq!(row.headers["webhook-id"], id);
        assert!(
            row.headers["webhook-signature"]
                .as_str()
                .is_some_and(|s| s.starts_with("v1,"))
        );
        assert_eq!(row.headers["content-type"], "application/json");
    }

    let paypal_rows: Vec<_> = inbox.iter().filter(|r| r.dialect == "paypal").collect();
    assert_eq!(paypal_rows.len(), 2, "{inbox:#?}");
    for row in &paypal_rows {
        // The postback worker may already have asked the gateway
        // (tests/verification.rs follows that part), and the handler applied
        // it.
        assert!(
            ["unverified", "verified", "processed"].contains(&row.status.as_str()),
            "{row:#?}"
        );
        assert_eq!(row.webhook_id, None, "an unverified id is not trusted");
        assert_eq!(row.headers["content-type"], FORM);
        assert!(
            paypal_sent.iter().any(|sent| sent.body == row.body),
            "the PayPal body, byte for byte, as a plain receiver got it: {:?}",
            String::from_utf8_lossy(&row.body)
        );
    }
    let statuses: Vec<(String, String)> = paypal_rows
        .iter()
        .map(|row| {
            let form = Form::parse(&row.body).unwrap();
            (
                form.get("txn_id").unwrap().to_owned(),
                form.get("payment_status").unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        statuses.contains(&(payment_id.to_owned(), "Completed".to_owned())),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().any(|(_, status)| status == "Refunded"),
        "{statuses:?}"
    );

    shop.merchant.shutdown().await.unwrap();
    gw.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_forged_tampered_or_unsigned_message_is_refused_and_nothing_stored() {
    let shop = TestMerchant::alone(SECRET).await;
    let now = unix_now();
    let other = WebhookSecret::generate().reveal();
    let forged = signed(&other, "evt_1", now, BODY);
    let (status, text) = shop.post("/webhooks", &refs(&forged), BODY).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let answer = error(&text);
    assert_eq!(answer["code"], "invalid_signature", "{text}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("no signature in webhook-signature matches"),
        "{text}"
    );

    let genuine = signed(SECRET, "evt_1", now, BODY);
    let tampered = BODY
        .to_vec()
        .into_iter()
        .map(|b| if b == b'1' { b'2' } else { b })
        .collect::<Vec<u8>>();
    let (status, text) = shop.post("/webhooks", &refs(&genuine), tampered).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert_eq!(error(&text)["code"], "invalid_signature");

    let other_id = signed(SECRET, "evt_1", now, BODY)
        .into_iter()
        .map(|(n, v)| {
            if n == "webhook-id" {
                (n, "evt_2".to_owned())
            } else {
                (n, v)
            }
        })
        .collect::<Vec<_>>();
    let (status, text) = shop.post("/webhooks", &refs(&other_id), BODY).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the id is signed too: {text}"
    );

    let unsigned: Vec<_> = genuine
        .iter()
        .filter(|(n, _)| n != "webhook-signature")
        .cloned()
        .collect();
    let (status, text) = shop.post("/webhooks", &refs(&unsigned), BODY).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let answer = error(&text);
    assert_eq!(answer["code"], "invalid_headers");
    assert_eq!(answer["message"], "missing webhook-signature header");

    assert!(shop.inbox().is_empty(), "{:#?}", shop.inbox());
    // The genuine message is still welcome afterwards.
    let (status, text) = shop.post("/webhooks", &refs(&genuine), BODY).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(shop.inbox().len(), 1);
}

#[tokio::test]
async fn a_stale_or_future_timestamp_is_refused() {
    let shop = TestMerchant::alone(SECRET).await;
    let now = unix_now();
    for (timestamp, says) in [(now - 600, "old"), (now + 600, "in the future")] {
        let headers = signed(SECRET, "evt_1", timestamp, BODY);
        let (status, text) = shop.post("/webhooks", &refs(&headers), BODY).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        let answer = error(&text);
        assert_eq!(answer["code"], "invalid_timestamp");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
        assert!(message.contains(&timestamp.to_string()), "{message}");
    }
    assert!(shop.inbox().is_empty());
}

#[tokio::test]
async fn the_same_message_delivered_again_is_stored_once() {
    let shop = TestMerchant::alone(SECRET).await;
    let now = unix_now();
    let first = signed(SECRET, "evt_dup", now, BODY);
    // A gateway retry: the same id and body, signed again at a later time.
    let retry = signed(SECRET, "evt_dup", now + 5, BODY);
    for headers in [&first, &first, &retry] {
        let (status, text) = shop.post("/webhooks", &refs(headers), BODY).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(text, "");
    }
    let inbox = shop.inbox();
    assert_eq!(inbox.len(), 1, "{inbox:#?}");
    assert_eq!(inbox[0].webhook_id.as_deref(), Some("evt_dup"));
    assert_eq!(inbox[0].body, BODY);
    assert_eq!(inbox[0].headers["webhook-timestamp"], now.to_string());

    // Many at once, as a busy gateway's retries may come: still one row.
    let id = "evt_concurrent";
    let headers = signed(SECRET, id, now, BODY);
    let client = reqwest::Client::new();
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let mut request = client.post(format!("{}/webhooks", shop.url)).body(BODY);
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        sends.spawn(request.send());
    }
    while let Some(sent) = sends.join_next().await {
        assert_eq!(sent.unwrap().unwrap().status(), StatusCode::OK);
    }
    let rows = shop.inbox();
    assert_eq!(
        rows.iter()
            .filter(|r| r.webhook_id.as_deref() == Some(id))
            .count(),
        1
    );
}

#[tokio::test]
async fn paypal_bodies_are_kept_byte_for_byte_and_every_arrival_is_kept() {
    let shop = TestMerchant::alone(SECRET).await;
    // Escapes as other senders write them: `+` and `%20`, lower-case hex.
    let body = "txn_id=61E67681CH3238416&payment_status=Completed&mc_gross=19.99\
                &first_name=J%c3%b6rg&last_name=M+%C3%BCller%20Jr&charset=UTF-8\
                &verify_sign=AFcWxV21C7fd0v3bYYYRCpSSRl31A";
    for _ in 0..2 {
        let (status, text) = shop.post("/ipn", &[("content-type", FORM)], body).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(text, "", "PayPal listeners answer with an empty body");
    }
    let inbox = shop.inbox();
    assert_eq!(inbox.len(), 2, "settled after the postback, not before");
    for row in &inbox {
        assert_eq!(row.body, body.as_bytes());
        assert_eq!(row.status, "unverified");
        assert_eq!(row.dialect, "paypal");
    }

    for (what, bad) in [
        ("empty", ""),
        ("bad escape", "txn_id=%zz"),
        ("charset", "a=1&charset=nope"),
    ] {
        let (status, text) = shop.post("/ipn", &[("content-type", FORM)], bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {text}");
        assert_eq!(error(&text)["code"], "invalid_body", "{what}");
    }
    assert_eq!(shop.inbox().len(), 2);
}

#[tokio::test]
async fn oversized_bodies_get_a_json_413_and_nothing_stored() {
    let shop = TestMerchant::alone(SECRET).await;
    let limit = ipn_merchant::config::DEFAULT_BODY_LIMIT;

    let big = format!("{{\"blob\":\"{}\"}}", "x".repeat(limit));
    let headers = signed(SECRET, "evt_big", unix_now(), big.as_bytes());
    let (status, text) = shop.post("/webhooks", &refs(&headers), big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    let answer = error(&text);
    assert_eq!(answer["code"], "payload_too_large");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains(&limit.to_string())
    );

    // The fields every IPN has, then padding to the size wanted.
    const FIELDS: &str = "txn_id=1&verify_sign=x&a=";
    let over = format!("{FIELDS}{}", "x".repeat(limit + 1 - FIELDS.len()));
    let (status, text) = shop.post("/ipn", &[("content-type", FORM)], over).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert_eq!(error(&text)["code"], "payload_too_large");
    assert!(shop.inbox().is_empty());

    // Exactly the limit is accepted.
    let full = format!("{FIELDS}{}", "x".repeat(limit - FIELDS.len()));
    let (status, text) = shop.post("/ipn", &[("content-type", FORM)], full).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(shop.inbox().len(), 1);
}

#[tokio::test]
async fn health_and_unknown_routes_answer_in_json() {
    let shop = TestMerchant::alone(SECRET).await;
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{}/healthz", shop.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");

    let (status, text) = shop.post("/nowhere", &[], "x").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error(&text)["code"], "not_found");
    let wrong = client
        .get(format!("{}/webhooks", shop.url))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        error(&wrong.text().await.unwrap())["code"],
        "method_not_allowed"
    );
}

#[tokio::test]
async fn stored_messages_survive_a_restart() {
    let shop = TestMerchant::alone(SECRET).await;
    let headers = signed(SECRET, "evt_kept", unix_now(), BODY);
    let (status, _) = shop.post("/webhooks", &refs(&headers), BODY).await;
    assert_eq!(status, StatusCode::OK);
    let TestMerchant { merchant, data, .. } = shop;
    merchant.shutdown().await.unwrap();

    let config = ipn_merchant::Config::new(
        data.shop_database(),
        "http://127.0.0.1:9",
        ipn_merchant::GatewayKey::new("k"),
        WebhookSecret::parse(SECRET).unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let again = ipn_merchant::Merchant::start(config, listener)
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let mut request = client.post(format!("{}/webhooks", again.url()));
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    let response = request.body(BODY).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "still a duplicate after the restart"
    );
    again.shutdown().await.unwrap();

    let ids: Vec<String> = data
        .rows("SELECT webhook_id FROM inbox", &[])
        .iter()
        .map(|row| row[0].text())
        .collect();
    assert_eq!(ids, ["evt_kept"]);
    drop(data);
}

#[tokio::test]
async fn ipn_takes_only_form_bodies_that_are_ipns_and_stores_nothing_else() {
    let shop = TestMerchant::alone(SECRET).await;
    let ipn = "txn_type=web_accept&txn_id=61E67681CH3238416&payment_status=Completed\
               &verify_sign=AFcWxV21C7fd0v3bYYYRCpSSRl31A&charset=UTF-8";
    for (what, content_type, body, code, named) in [
        (
            "text",
            Some("text/plain"),
            "hello world",
            "invalid_content_type",
            "application/x-www-form-urlencoded",
        ),
        (
            "JSON",
            Some("application/json"),
            r#"{"txn_id":"1"}"#,
            "invalid_content_type",
            "application/x-www-form-urlencoded",
        ),
        ("no type", None, ipn, "invalid_content_type", "Content-Type"),
        (
            "an IPN as text",
            Some("text/plain"),
            ipn,
            "invalid_content_type",
            "Content-Type",
        ),
        (
            "words as a form",
            Some(FORM),
            "hello world",
            "invalid_body",
            "no txn_type or txn_id",
        ),
        (
            "JSON as a form",
            Some(FORM),
            r#"{"txn_id":"1"}"#,
            "invalid_body",
            "no txn_type or txn_id",
        ),
        (
            "no PayPal mark",
            Some(FORM),
            "txn_id=1&payment_status=Completed",
            "invalid_body",
            "no verify_sign or ipn_track_id",
        ),
        (
            "empty values",
            Some(FORM),
            "txn_type=&txn_id=&verify_sign=x",
            "invalid_body",
            "no txn_type or txn_id",
        ),
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|t| ("content-type", t))
            .into_iter()
            .collect();
        let (status, text) = shop.post("/ipn", &headers, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {text}");
        let answer = error(&text);
        assert_eq!(answer["code"], code, "{what}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(named), "{what}: {message}");
    }
    assert!(shop.inbox().is_empty(), "nothing stored");

    // PayPal's own sample, a refund as our gateway sends it (no txn_type),
    // a subscription message (no txn_id), with the content types senders use.
    let sample: Value =
        serde_json::from_str(include_str!("../../ipn-core/tests/data/paypal-ipn.json")).unwrap();
    let express = sample["samples"][0]["body"].as_str().unwrap();
    for (content_type, body) in [
        (
            "application/x-www-form-urlencoded; charset=windows-1252",
            express,
        ),
        (
            FORM,
            "txn_type=&txn_id=pay_1&parent_txn_id=pay_0&payment_status=Refunded&ipn_track_id=evt_1",
        ),
        (
            "Application/X-WWW-Form-Urlencoded",
            "txn_type=subscr_signup&subscr_id=sub_1&ipn_track_id=evt_2",
        ),
    ] {
        let (status, text) = shop
            .post("/ipn", &[("content-type", content_type)], body)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}: {text}");
    }
    assert_eq!(shop.inbox().len(), 3);
}
