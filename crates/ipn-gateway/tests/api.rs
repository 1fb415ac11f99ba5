//! The HTTP API as a client sees it: Idempotency-Key, validation, auth,
//! cursor listing, operations routes and the test clock switch.

mod common;

use std::time::Duration;

use common::{ADMIN_KEY, TestGateway, TestMerchant};
use ipn_testkit::{Receiver, Reply};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

fn payment_data(merchant_id: &str, amount: Value) -> Value {
    json!({
        "object": "payment",
        "id": "pay_01KAZ3NDEKTSV4RRFFQ69G5FAV",
        "status": "completed",
        "amount": amount,
        "currency": "USD",
        "merchant_id": merchant_id,
        "receiver_email": "shop@example.com",
        "payer": {"email": "buyer@example.com", "name": "Ada Lovelace"},
        "invoice": "ORD-1",
        "items": [{"sku": "MUG", "name": "Mug", "quantity": 1, "unit_amount": 1999, "kind": "physical"}],
        "created_at": "2026-11-25T10:00:00Z"
    })
}

/// A raw POST with an optional Idempotency-Key; the answer's status, the
/// `idempotent-replayed` header and the JSON body.
async fn post_keyed(
    gw: &TestGateway,
    key: &str,
    path: &str,
    body: &Value,
    idempotency_key: &str,
) -> (StatusCode, Option<String>, Value) {
    let response = gw
        .unauthenticated(Method::POST, path)
        .bearer_auth(key)
        .header("idempotency-key", idempotency_key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap();
    (status, replayed, body)
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_error_shape(what: &str, status: StatusCode, body: &Value) {
    assert!(status.is_client_error(), "{what}: {status} {body}");
    assert!(
        body["error"]["code"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{what}: {body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
}

#[tokio::test]
async fn an_ingest_retried_with_its_idempotency_key_is_replayed_not_redelivered() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    gw.endpoint(&shop, json!({"url": receiver.url("/hook")}))
        .await;
    let request = json!({"type": "invoice.paid", "data": {"id": "inv_1"}});

    let (status, replayed, first) = post_keyed(&gw, &shop.key, "/v1/events", &request, "k-1").await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(replayed, None);
    let (status, replayed, second) =
        post_keyed(&gw, &shop.key, "/v1/events", &request, "k-1").await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(second, first, "the same answer, the same event id");

    // The same key with another body is a conflict, and creates nothing.
    let other = json!({"type": "invoice.paid", "data": {"id": "inv_2"}});
    let (status, _, body) = post_keyed(&gw, &shop.key, "/v1/events", &other, "k-1").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "idempotency_key_reused");

    // Keys belong to their merchant: another merchant's k-1 is a new request.
    let other_shop = gw.merchant("other").await;
    let (status, replayed, theirs) =
        post_keyed(&gw, &other_shop.key, "/v1/events", &request, "k-1").await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    assert_eq!(replayed, None);
    assert_ne!(theirs["id"], first["id"]);

    let id = first["id"].as_str().unwrap();
    gw.wait_attempts(&shop, id, "the delivery", |a| a.len() == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.requests().len(), 1, "delivered once");
    assert_eq!(ids(&gw.list_events(&shop, "").await), vec![id.to_owned()]);
}

#[tokio::test]
async fn an_endpoint_create_retried_with_its_key_is_replayed() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    let request = json!({"url": receiver.url("/hook"), "events": ["payment.*"]});

    let (status, replayed, first) =
        post_keyed(&gw, &shop.key, "/v1/endpoints", &request, "ep-1").await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(replayed, None);
    let (status, replayed, second) =
        post_keyed(&gw, &shop.key, "/v1/endpoints", &request, "ep-1").await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(second, first);
    assert!(first["secret"].as_str().unwrap().starts_with("whsec_"));

    let changed = json!({"url": receiver.url("/other")});
    let (status, _, body) = post_keyed(&gw, &shop.key, "/v1/endpoints", &changed, "ep-1").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "idempotency_key_reused");

    let (_, list) = gw.get(&shop.key, "/v1/endpoints").await;
    assert_eq!(ids(&list), vec![first["id"].as_str().unwrap().to_owned()]);
}

#[tokio::test]
async fn a_merchant_create_retried_with_its_key_is_replayed() {
    let gw = TestGateway::start().await;
    let request = json!({"name": "shop", "receiver_email": "shop@example.com"});

    let (status, replayed, first) =
        post_keyed(&gw, ADMIN_KEY, "/v1/merchants", &request, "m-1").await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(replayed, None);
    let (status, replayed, second) =
        post_keyed(&gw, ADMIN_KEY, "/v1/merchants", &request, "m-1").await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(second["id"], first["id"]);
    // The API key is stored hashed only, so a replay cannot show it again;
    // everything else is the same answer.
    let without_key = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("api_key");
        v
    };
    assert_eq!(without_key(&second), without_key(&first));

    let changed = json!({"name": "shop 2", "receiver_email": "shop@example.com"});
    let (status, _, body) = post_keyed(&gw, ADMIN_KEY, "/v1/merchants", &changed, "m-1").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "idempotency_key_reused");

    let (_, list) = gw.get(ADMIN_KEY, "/v1/merchants").await;
    assert_eq!(ids(&list), vec![first["id"].as_str().unwrap().to_owned()]);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_one_event() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    gw.endpoint(&shop, json!({"url": receiver.url("/hook")}))
        .await;
    let request = json!({"type": "invoice.paid", "data": {"id": "inv_1"}});

    // Ten clients send the same request with the same key at once.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let request = gw
            .unauthenticated(Method::POST, "/v1/events")
            .bearer_auth(&shop.key)
            .header("idempotency-key", "same-key")
            .json(&request);
        tasks.spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let replayed = response
                .headers()
                .get("idempotent-replayed")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = response.json().await.unwrap();
            (status, replayed, body)
        });
    }
    let answers = tasks.join_all().await;
    let first_id = answers[0].2["id"].clone();
    assert!(first_id.as_str().unwrap().starts_with("evt_"));
    for (status, _, body) in &answers {
        assert_eq!(*status, StatusCode::CREATED, "{body}");
        assert_eq!(body["id"], first_id);
    }
    let fresh = answers.iter().filter(|(_, r, _)| r.is_none()).count();
    assert_eq!(fresh, 1, "exactly one answer is not a replay");
    let list = gw.list_events(&shop, "").await;
    assert_eq!(ids(&list), vec![first_id.as_str().unwrap().to_owned()]);
    assert_eq!(receiver.wait_for(1, WAIT).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.requests().len(), 1, "delivered once");
}

#[tokio::test]
async fn bad_events_get_a_json_error_and_create_nothing() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    gw.endpoint(&shop, json!({"url": receiver.url("/hook")}))
        .await;
    let other = gw.merchant("other").await;

    let json_cases: Vec<(&str, Value)> = vec![
        (
            "unknown reserved type",
            json!({"type": "payment.complete", "data": payment_data(&shop.id, json!(1999))}),
        ),
        (
            "malformed type",
            json!({"type": "Payment Completed!", "data": {"id": "x"}}),
        ),
        (
            "type without namespace",
            json!({"type": "paid", "data": {}}),
        ),
        (
            "data is not a payment",
            json!({"type": "payment.completed", "data": {"id": "inv_1", "total": 5}}),
        ),
        (
            "float amount",
            json!({"type": "payment.completed", "data": payment_data(&shop.id, json!(19.99))}),
        ),
        (
            "another merchant's payment",
            json!({"type": "payment.completed", "data": payment_data(&other.id, json!(1999))}),
        ),
        ("no type", json!({"data": {"id": "x"}})),
        ("no data", json!({"type": "invoice.paid"})),
        (
            "the gateway's own type",
            json!({"type": "endpoint.disabled", "data": {"id": "ep_1"}}),
        ),
    ];
    for (what, body) in json_cases {
        let (status, answer) = gw.post(&shop.key, "/v1/events", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
        assert_error_shape(what, status, &answer);
    }

    let big = format!(
        r#"{{"type":"invoice.paid","data":{{"id":"inv_big","blob":"{}"}}}}"#,
        "x".repeat(256 * 1024)
    );
    let raw_cases: Vec<(&str, Vec<u8>, StatusCode)> = vec![
        ("empty body", Vec::new(), StatusCode::BAD_REQUEST),
        (
            "invalid JSON",
            b"{\"type\": \"invoice.paid\", ".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "not an object",
            b"[1, 2, 3]".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "over 256 KiB",
            big.into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (what, body, expected) in raw_cases {
        let response = gw
            .unauthenticated(Method::POST, "/v1/events")
            .bearer_auth(&shop.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let answer: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{what}: {status} not JSON ({e}): {text:?}"));
        assert_eq!(status, expected, "{what}: {answer}");
        assert_error_shape(what, status, &answer);
    }

    let list = gw.list_events(&shop, "").await;
    assert_eq!(ids(&list), Vec::<String>::new(), "nothing was created");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(receiver.requests().is_empty(), "nothing was delivered");

    // A valid event after all that is accepted.
    gw.ingest(
        &shop,
        "payment.completed",
        payment_data(&shop.id, json!(1999)),
    )
    .await;
    assert_eq!(ids(&gw.list_events(&shop, "").await).len(), 1);
}

#[tokio::test]
async fn each_key_opens_only_its_own_routes() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let event = json!({"type": "invoice.paid", "data": {"id": "inv_1"}});
    let endpoint = json!({"url": "http://127.0.0.1:9/hook"});
    let merchant = json!({"name": "m", "receiver_email": "m@example.com"});

    // The admin key on a merchant's routes.
    for (method, path, body) in [
        (Method::GET, "/v1/events", None),
        (Method::POST, "/v1/events", Some(event.clone())),
        (Method::GET, "/v1/endpoints", None),
        (Method::POST, "/v1/endpoints", Some(endpoint.clone())),
    ] {
        let (status, answer) = gw
            .request(method.clone(), ADMIN_KEY, path, body, None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden");
    }
    // A merchant's key on the admin's routes.
    for (method, path, body) in [
        (Method::GET, "/v1/merchants", None),
        (Method::POST, "/v1/merchants", Some(merchant.clone())),
        (
            Method::POST,
            "/v1/test/clock/advance",
            Some(json!({"seconds": 1})),
        ),
    ] {
        let (status, answer) = gw
            .request(method.clone(), &shop.key, path, body, None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden");
    }
    // No key, or a wrong one.
    for (method, path) in [
        (Method::GET, "/v1/events"),
        (Method::POST, "/v1/events"),
        (Method::GET, "/v1/endpoints"),
        (Method::GET, "/v1/merchants"),
        (Method::POST, "/v1/merchants"),
    ] {
        let response = gw
            .unauthenticated(method.clone(), path)
            .json(&merchant)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"]["code"], "unauthorized");
        let response = gw
            .unauthenticated(method.clone(), path)
            .header("authorization", format!("Basic {ADMIN_KEY}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        let (status, _) = gw
            .request(method.clone(), "sk_test_wrong", path, None, None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    // Nothing was created by any of it.
    let (_, merchants) = gw.get(ADMIN_KEY, "/v1/merchants").await;
    assert_eq!(ids(&merchants), vec![shop.id.clone()]);
    assert!(ids(&gw.list_events(&shop, "").await).is_empty());
}

async fn ingest_all(gw: &TestGateway, shop: &TestMerchant, count: usize) -> Vec<(String, String)> {
    let mut ingested = Vec::new();
    for i in 0..count {
        let event_type = if i % 5 == 4 {
            "order.shipped"
        } else {
            "invoice.paid"
        };
        let event = gw
            .ingest(shop, event_type, json!({"id": format!("obj_{i}")}))
            .await;
        ingested.push((
            event["id"].as_str().unwrap().to_owned(),
            event_type.to_owned(),
        ));
    }
    ingested
}

#[tokio::test]
async fn events_are_listed_in_order_page_by_page() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let ingested = ingest_all(&gw, &shop, 25).await;
    let all: Vec<String> = ingested.iter().map(|(id, _)| id.clone()).collect();

    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut query = "?limit=10".to_owned();
    loop {
        let page = gw.list_events(&shop, &query).await;
        let page_ids = ids(&page);
        let has_more = page["has_more"].as_bool().unwrap();
        pages.push((page_ids.len(), has_more));
        seen.extend(page_ids.iter().cloned());
        if !has_more {
            break;
        }
        query = format!("?limit=10&after={}", page_ids.last().unwrap());
        assert!(pages.len() < 5, "paging does not end: {pages:?}");
    }
    assert_eq!(pages, vec![(10, true), (10, true), (5, false)]);
    assert_eq!(seen, all, "every event once, in order");

    // Past the end: nothing more.
    let last = gw
        .list_events(&shop, &format!("?after={}", all.last().unwrap()))
        .await;
    assert_eq!(ids(&last), Vec::<String>::new());
    assert_eq!(last["has_more"], false);

    // Filtered by type, also with a cursor.
    let shipped: Vec<String> = ingested
        .iter()
        .filter(|(_, t)| t == "order.shipped")
        .map(|(id, _)| id.clone())
        .collect();
    let page = gw.list_events(&shop, "?type=order.shipped").await;
    assert_eq!(ids(&page), shipped);
    assert_eq!(page["has_more"], false);
    assert!(
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"] == "order.shipped")
    );
    let page = gw
        .list_events(
            &shop,
            &format!("?type=order.shipped&limit=2&after={}", shipped[1]),
        )
        .await;
    assert_eq!(ids(&page), shipped[2..4].to_vec());
    assert_eq!(page["has_more"], true);

    // A bad cursor or limit is a 400, not an empty page.
    for query in [
        "?limit=0",
        "?limit=abc",
        "?after=evt_nope",
        "?delivery=lost",
    ] {
        let (status, body) = gw.get(&shop.key, &format!("/v1/events{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_error_shape(query, status, &body);
    }
}

#[tokio::test]
async fn health_metrics_and_unknown_routes() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let ok = Receiver::start().await.unwrap();
    let failing = Receiver::start().await.unwrap();
    failing.respond_with(Reply::status(500));
    gw.endpoint(&shop, json!({"url": ok.url("/ok")})).await;
    gw.endpoint(&shop, json!({"url": failing.url("/fail")}))
        .await;

    let response = gw
        .unauthenticated(Method::GET, "/healthz")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let spec: Value = gw
        .unauthenticated(Method::GET, "/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        spec["paths"]["/v1/events"]["post"].is_object(),
        "the API describes itself"
    );

    let events = gw.ingest_invoices(&shop, "inv_", 3).await;
    for id in &events {
        gw.wait_attempts(&shop, id, "both attempts", |a| a.len() == 2)
            .await;
    }
    assert_eq!(ok.requests().len(), 3);
    let response = gw
        .unauthenticated(Method::GET, "/metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let value = |series: &str| -> Option<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    };
    assert_eq!(
        value("ipn_attempts_total{outcome=\"succeeded\"}"),
        Some(3),
        "{text}"
    );
    assert_eq!(
        value("ipn_attempts_total{outcome=\"rejected\"}"),
        Some(3),
        "{text}"
    );

    for (method, path) in [
        (Method::GET, "/nope"),
        (Method::GET, "/v1/nothing-here"),
        (Method::POST, "/v2/events"),
    ] {
        let (status, body) = gw
            .request(method.clone(), &shop.key, path, None, None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
    let (status, body) = gw
        .get(&shop.key, "/v1/events/evt_01KAZ3NDEKTSV4RRFFQ69G5FAV")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn the_test_clock_cannot_be_advanced_when_it_is_off() {
    let gw = TestGateway::start_with(|c| c.test_clock = false).await;
    let (status, body) = gw
        .post(ADMIN_KEY, "/v1/test/clock/advance", json!({"seconds": 60}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "test_clock_off");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--test-clock")
    );

    // With it on, the answer says the new time.
    let gw = TestGateway::start().await;
    let (status, body) = gw
        .post(
            ADMIN_KEY,
            "/v1/test/clock/advance",
            json!({"seconds": 86400}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let now = time::OffsetDateTime::parse(
        body["now"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ahead = now - time::OffsetDateTime::now_utc();
    assert!(
        ahead.whole_hours() >= 23 && ahead.whole_hours() <= 24,
        "{ahead}"
    );
}

#[tokio::test]
async fn an_advance_the_clock_cannot_represent_is_refused_and_breaks_nothing() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let receiver = ipn_testkit::Receiver::start().await.unwrap();
    gw.endpoint(&shop, json!({"url": receiver.url("/hooks")}))
        .await;
    gw.advance(3600).await;
    let first = gw
        .ingest(&shop, "invoice.paid", json!({"id": "inv_1"}))
        .await;
    let before = gw.advance(0).await;

    for seconds in [
        json!(i64::MAX),
        json!(u64::MAX),
        json!(1_000_000_000_000_u64),
        json!(250_000_000_000_u64),
    ] {
        let (status, body) = gw
            .post(
                ADMIN_KEY,
                "/v1/test/clock/advance",
                json!({ "seconds": seconds }),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{seconds}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("9000-01-01"), "{message}");
    }
    for bad in [json!(-1), json!(1e12), json!("60"), json!(null)] {
        let (status, body) = gw
            .post(
                ADMIN_KEY,
                "/v1/test/clock/advance",
                json!({ "seconds": bad }),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let after = gw.advance(0).await;
    assert!(
        after >= before && after - before < time::Duration::minutes(1),
        "the clock stayed where it was: {before} then {after}"
    );

    // Deliveries go on, ids still sort after the ones before, and the
    // timestamps signed are the clock's.
    let second = gw
        .ingest(&shop, "invoice.paid", json!({"id": "inv_2"}))
        .await;
    assert!(
        second["id"].as_str().unwrap() > first["id"].as_str().unwrap(),
        "{second} after {first}"
    );
    let got = receiver
        .wait_for(2, std::time::Duration::from_secs(10))
        .await;
    assert_eq!(got.len(), 2);
    let stamp: i64 = got[1].headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((stamp - after.unix_timestamp()).abs() < 60, "{stamp}");

    // A restart keeps the clock where it was.
    let gw = gw.restart(|_| {}).await;
    let restarted = gw.advance(0).await;
    assert!(
        restarted >= after && restarted - after < time::Duration::minutes(1),
        "{after} then {restarted}"
    );
}

#[tokio::test]
async fn event_data_that_cannot_be_read_back_is_refused_at_ingest() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let post_raw = |data: String| {
        let request = gw
            .unauthenticated(reqwest::Method::POST, "/v1/events")
            .bearer_auth(&shop.key)
            .header("content-type", "application/json")
            .body(format!(r#"{{"type": "invoice.paid", "data": {data}}}"#));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            (status, body)
        }
    };
    let nested = |levels: usize| "[".repeat(levels) + &"]".repeat(levels);
    for (data, says) in [
        (r#"{"note": "\ud800"}"#.to_owned(), "escape"),
        (r#"{"note": "a\udfffb"}"#.to_owned(), "surrogate"),
        ("1e999".to_owned(), "out of range"),
        (r#"{"total": -1e400}"#.to_owned(), "out of range"),
        (nested(65), "deeper than 64"),
        (nested(100_000), "recursion limit"),
    ] {
        let (status, body) = post_raw(data.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{says}: {message}");
    }
    let listed = gw.list_events(&shop, "").await;
    assert_eq!(listed["data"], json!([]), "nothing was stored");

    // What is accepted reads back.
    let (status, body) = post_raw(format!(
        r#"{{"note": "\ud83d\ude00", "deep": {}}}"#,
        nested(60)
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap();
    let (status, event) = gw.get(&shop.key, &format!("/v1/events/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{event}");
    assert_eq!(event["data"]["note"], "😀");
}

#[tokio::test]
async fn an_endpoints_events_are_the_types_it_takes() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let other = gw.merchant("other").await;
    let payments = gw
        .endpoint(
            &shop,
            json!({"url": "http://127.0.0.1:9/hooks", "events": ["payment.*"]}),
        )
        .await;
    let paypal = gw
        .endpoint(
            &shop,
            json!({"url": "http://127.0.0.1:9/ipn", "dialect": "paypal"}),
        )
        .await;
    let theirs = gw
        .endpoint(&other, json!({"url": "http://127.0.0.1:9/hooks"}))
        .await;
    let pay = |n: u32| {
        json!({
            "object": "payment", "id": format!("pay_01KAZ3NDEKTSV4RRFFQ69G5F{n:02}"),
            "status": "completed", "amount": 1999, "currency": "USD",
            "merchant_id": shop.id, "receiver_email": "shop@example.com",
            "payer": {"email": "ann@example.com"}, "created_at": "2026-11-25T10:00:00Z"
        })
    };
    let mut expected_payments = Vec::new();
    let mut all = Vec::new();
    for n in 0..3 {
        let invoice = gw
            .ingest(&shop, "invoice.paid", json!({"id": format!("inv_{n}")}))
            .await;
        all.push(invoice["id"].as_str().unwrap().to_owned());
        let payment = gw.ingest(&shop, "payment.completed", pay(10 + n)).await;
        all.push(payment["id"].as_str().unwrap().to_owned());
        expected_payments.push(payment["id"].as_str().unwrap().to_owned());
    }
    let ids = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    };

    let page = gw
        .list_events(&shop, &format!("?endpoint_id={}", payments.id))
        .await;
    assert_eq!(ids(&page), expected_payments);
    // A PayPal endpoint takes every type PayPal has, none of a platform's.
    let page = gw
        .list_events(&shop, &format!("?endpoint_id={}", paypal.id))
        .await;
    assert_eq!(ids(&page), expected_payments);
    assert_eq!(ids(&gw.list_events(&shop, "").await), all);

    // Paging reads past what the endpoint does not take.
    let first = gw
        .list_events(&shop, &format!("?endpoint_id={}&limit=1", payments.id))
        .await;
    assert_eq!(ids(&first), expected_payments[..1]);
    assert_eq!(first["has_more"], true);
    let rest = gw
        .list_events(
            &shop,
            &format!(
                "?endpoint_id={}&limit=2&after={}",
                payments.id, expected_payments[0]
            ),
        )
        .await;
    assert_eq!(ids(&rest), expected_payments[1..]);
    assert_eq!(rest["has_more"], false);

    for bad in [theirs.id.as_str(), "ep_nope", ""] {
        let (status, body) = gw
            .get(&shop.key, &format!("/v1/events?endpoint_id={bad}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("endpoint_id")
        );
    }
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let gw = TestGateway::start().await;
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let response = gw
            .unauthenticated(Method::GET, "/v1/merchants")
            .header("authorization", format!("{scheme} {ADMIN_KEY}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
}

#[tokio::test]
async fn wrong_keys_lock_their_address_out_for_a_while_and_no_other() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let call = |client: &reqwest::Client, key: &str| {
        client
            .get(format!("{}/v1/endpoints", gw.url))
            .bearer_auth(key)
            .send()
    };
    let guesser = ipn_testkit::client_from("127.0.0.2");
    for n in 0..10 {
        let response = call(&guesser, &format!("sk_test_guess{n}")).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "guess {n}");
    }
    // The eleventh wrong key is told to stop.
    for key in ["sk_test_guess10", "sk_test_guess11"] {
        let response = call(&guesser, key).await.unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"]["code"], "too_many_failures", "{answer}");
    }
    // No key at all is no guess: a plain 401.
    let response = guesser
        .get(format!("{}/v1/endpoints", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // The dashboard's sign-in counts with the API: refused there too.
    let response = guesser
        .post(format!("{}/dashboard/login", gw.url))
        .header("origin", &gw.url)
        .form(&[("api_key", "sk_test_guess11")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    // A valid key is never locked out, even from that address: the shop and
    // a mistyping person share one under `ipn up`, and behind a proxy
    // everyone does.
    let response = call(&guesser, &shop.key).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = guesser
        .post(format!("{}/dashboard/login", gw.url))
        .header("origin", &gw.url)
        .form(&[("api_key", shop.key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "signed in");
    // Other addresses, and callers with valid keys, are not slowed.
    let other = ipn_testkit::client_from("127.0.0.3");
    let response = call(&other, &shop.key).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = call(&other, "sk_test_wrong").await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn wrong_dashboard_sign_ins_are_counted_per_address() {
    let gw = TestGateway::start().await;
    let guesser = ipn_testkit::client_from("127.0.0.4");
    let sign_in = |key: &str| {
        guesser
            .post(format!("{}/dashboard/login", gw.url))
            .header("origin", &gw.url)
            .form(&[("api_key", key)])
            .send()
    };
    for n in 0..10 {
        let response = sign_in(&format!("guess-{n}")).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "guess {n}");
    }
    let response = sign_in("guess-10").await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let text = response.text().await.unwrap();
    assert!(text.contains("Too many wrong keys"), "{text}");
    // And the API refuses that address's wrong keys too.
    let response = guesser
        .get(format!("{}/v1/merchants", gw.url))
        .bearer_auth("sk_test_guess")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    // The right key still signs in.
    let response = sign_in(ADMIN_KEY).await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_short_or_plainly_not_random_admin_key_is_refused_naming_the_flag() {
    for (key, expected) in [
        ("0123456789abcdef", "is 16 characters: at least 32"),
        ("admin-key-for-tests-0123456789a", "is 31 characters"),
        (&"ab".repeat(20), "only 2 different characters"),
        (&"123456789".repeat(4), "only 9 different"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = ipn_gateway::Config::new(
            ipn_gateway::Database::Sqlite(dir.path().join("gateway.db")),
            key,
            common::encryption_key(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let error = ipn_gateway::Gateway::start(config, listener)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("--admin-key, IPN_ADMIN_KEY"),
            "{key}: {error}"
        );
        assert!(error.contains(expected), "{key}: {error}");
    }
}
