//! The shop's API against the real gateway: the catalog, an order priced
//! exactly and paid through the gateway's hosted checkout, bad input and a
//! gateway that is down or refuses (no order stored either way).

mod common;

use common::{Account, TestGateway, TestMerchant};
use ipn_core::money::{Currency, Money};
use ipn_core::payment::ItemKind;
use ipn_merchant::{Catalog, Product};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;

const VISA: &str = "4242 4242 4242 4242";

async fn open() -> (TestGateway, Account, TestMerchant) {
    let gw = TestGateway::start().await;
    let account = gw.account("shop").await;
    let shop = TestMerchant::shop(&gw.url, &account).await;
    (gw, account, shop)
}

fn assert_nothing_stored(shop: &TestMerchant) {
    assert_eq!(shop.count("orders"), 0, "no order");
    assert_eq!(shop.count("order_items"), 0, "no order line");
}

#[tokio::test]
async fn the_catalog_is_listed() {
    let (_gw, _account, shop) = open().await;
    let (status, body) = shop.get_json("/api/products").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let products = body["data"].as_array().unwrap();
    assert!(products.len() >= 3, "{body}");
    let mug = products.iter().find(|p| p["sku"] == "mug").unwrap();
    assert_eq!(mug["kind"], "physical");
    assert_eq!(mug["price"], json!({"amount": 1250, "currency": "USD"}));
    assert!(mug["name"].as_str().is_some_and(|n| !n.is_empty()));
    let ebook = products.iter().find(|p| p["sku"] == "ebook").unwrap();
    assert_eq!(ebook["kind"], "digital");
    assert_eq!(ebook["price"], json!({"amount": 999, "currency": "USD"}));
    assert!(
        products.iter().all(|p| p["price"]["currency"] == "USD"),
        "{body}"
    );
    // Where a file lies on the shop's disk is not the customer's business.
    assert!(ebook.get("download").is_none(), "{ebook}");
}

#[tokio::test]
async fn an_order_is_priced_exactly_and_paid_at_the_gateway() {
    let (gw, account, shop) = open().await;
    let (status, order) = shop
        .post_json(
            "/api/orders",
            &json!({
                "items": [{"sku": "mug", "quantity": 2}, {"sku": "ebook", "quantity": 1}],
                "customer_email": "ann@example.com",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let id = order["id"].as_str().unwrap();
    assert!(id.starts_with("ord_"), "{order}");
    assert_eq!(order["status"], "created");
    assert_eq!(
        order["total"],
        json!({"amount": 2 * 1250 + 999, "currency": "USD"})
    );
    assert_eq!(order["customer_email"], "ann@example.com");
    assert_eq!(order["items"].as_array().unwrap().len(), 2);
    assert_eq!(order["items"][0]["sku"], "mug");
    assert_eq!(order["items"][0]["quantity"], 2);
    assert_eq!(
        order["items"][0]["total"],
        json!({"amount": 2500, "currency": "USD"})
    );
    assert!(order["created_at"].as_str().unwrap().ends_with('Z'));

    // The session at the gateway carries the order as its invoice and total.
    let session_id = order["checkout_session_id"].as_str().unwrap();
    let checkout_url = order["checkout_url"].as_str().unwrap();
    assert_eq!(checkout_url, format!("{}/checkout/{session_id}", gw.url));
    let (status, session) = gw
        .get(&account.key, &format!("/v1/checkout/sessions/{session_id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["invoice"], id);
    assert_eq!(session["amount"], 3499);
    assert_eq!(session["currency"], "USD");
    assert_eq!(session["customer_email"], "ann@example.com");
    let page = format!("{}/orders/{id}", shop.url);
    assert_eq!(session["success_url"], page);
    assert_eq!(session["items"].as_array().unwrap().len(), 2);
    assert_eq!(session["items"][1]["kind"], "digital");

    // The order reads back with the lists later slices fill.
    let (status, stored) = shop.get_json(&format!("/api/orders/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    for field in [
        "id",
        "status",
        "total",
        "items",
        "checkout_url",
        "created_at",
    ] {
        assert_eq!(stored[field], order[field], "{field}");
    }
    for list in ["payments", "flags", "emails", "downloads"] {
        assert_eq!(stored[list], json!([]), "{list}");
    }
    assert_eq!(shop.count("orders"), 1);
    assert_eq!(shop.count("order_items"), 2);

    // Paying on the gateway's page sends the customer back to the order.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = [
        ("name", "Ann Smith"),
        ("email", "ann@example.com"),
        ("card_number", VISA),
    ];
    let paid = browser.post(checkout_url).form(&form).send().await.unwrap();
    assert_eq!(paid.status(), StatusCode::SEE_OTHER);
    let location = paid.headers()["location"].to_str().unwrap();
    assert_eq!(location, format!("{page}?session_id={session_id}"));
}

#[tokio::test]
async fn bad_orders_are_refused_and_nothing_is_stored() {
    let (_gw, _account, shop) = open().await;
    let email = "ann@example.com";
    let cases: [(Value, &str); 8] = [
        (
            json!({"items": [{"sku": "nope", "quantity": 1}], "customer_email": email}),
            "\"nope\"",
        ),
        (
            json!({"items": [{"sku": "mug", "quantity": 0}], "customer_email": email}),
            "quantity",
        ),
        (
            json!({"items": [{"sku": "mug", "quantity": 101}], "customer_email": email}),
            "quantity",
        ),
        (
            json!({"items": [{"sku": "mug", "quantity": 1}], "customer_email": "ann"}),
            "customer_email",
        ),
        (json!({"items": [], "customer_email": email}), "items"),
        (
            json!({"items": [{"sku": "mug", "quantity": 1}, {"sku": "mug", "quantity": 1}],
                   "customer_email": email}),
            "twice",
        ),
        (
            json!({"items": [{"sku": "mug", "quantity": 1}]}),
            "customer_email",
        ),
        (json!("not an order"), "request body"),
    ];
    for (body, named) in cases {
        let (status, answer) = shop.post_json("/api/orders", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_request", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{body}: {message}");
    }
    assert_nothing_stored(&shop);

    let (status, answer) = shop.get_json("/api/orders/ord_nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let huge = json!({"items": [], "customer_email": "a".repeat(300 * 1024)});
    let (status, answer) = shop.post_json("/api/orders", &huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_nothing_stored(&shop);
    let (status, answer) = shop.post_json("/api/products", &json!({})).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{answer}");
    assert_eq!(answer["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn a_file_catalog_and_a_public_url_are_used() {
    let gw = TestGateway::start().await;
    let account = gw.account("shop").await;
    let catalog = Catalog::new(vec![Product {
        sku: "kit".into(),
        name: "Starter kit".into(),
        kind: ItemKind::Digital,
        price: Money::new(1500, Currency::EUR),
        description: "Files to start with.".into(),
        download: Some("kit.zip".into()),
        subscription: None,
    }])
    .unwrap();
    let shop = TestMerchant::shop_with(&gw.url, &account, |config| {
        config.catalog = catalog;
        config.public_url = Some("https://shop.example/store/".into());
    })
    .await;
    let (_, products) = shop.get_json("/api/products").await;
    assert_eq!(products["data"].as_array().unwrap().len(), 1, "{products}");
    let (status, order) = shop
        .post_json(
            "/api/orders",
            &json!({"items": [{"sku": "kit", "quantity": 3}], "customer_email": "bo@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["total"], json!({"amount": 4500, "currency": "EUR"}));
    let (_, session) = gw
        .get(
            &account.key,
            &format!(
                "/v1/checkout/sessions/{}",
                order["checkout_session_id"].as_str().unwrap()
            ),
        )
        .await;
    let page = format!(
        "https://shop.example/store/orders/{}",
        order["id"].as_str().unwrap()
    );
    assert_eq!(session["success_url"], page);
    assert_eq!(session["cancel_url"], page);
    assert_eq!(session["currency"], "EUR");
}

fn an_order() -> Value {
    json!({"items": [{"sku": "mug", "quantity": 1}], "customer_email": "ann@example.com"})
}

#[tokio::test]
async fn a_gateway_that_is_down_gets_502_and_no_order() {
    // A port nothing listens on any more.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let account = Account {
        id: "mer_none".into(),
        key: "merchant-key".into(),
    };
    let shop = TestMerchant::shop(&closed, &account).await;
    let (status, answer) = shop.post_json("/api/orders", &an_order()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
    assert_eq!(answer["error"]["code"], "gateway_error");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("could not be reached"), "{message}");
    assert_nothing_stored(&shop);
}

#[tokio::test]
async fn a_gateway_that_refuses_gets_502_and_no_order() {
    let gw = TestGateway::start().await;
    let wrong = Account {
        id: "mer_none".into(),
        key: "not-a-key-of-this-gateway".into(),
    };
    let shop = TestMerchant::shop(&gw.url, &wrong).await;
    let (status, answer) = shop.post_json("/api/orders", &an_order()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("HTTP 401"), "{message}");
    assert_nothing_stored(&shop);
}

/// The checkout sessions the gateway holds, read from its database.
fn sessions_at(gw: &TestGateway) -> i64 {
    gw.data.count("checkout_sessions")
}

#[tokio::test]
async fn an_order_must_be_sent_as_json() {
    let (gw, _account, shop) = open().await;
    let body = an_order().to_string();
    // What a page elsewhere can post without asking (a "simple" request),
    // and other types that are not JSON.
    for content_type in [
        Some("text/plain"),
        Some("text/plain; charset=utf-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut headers = vec![("origin", "https://evil.example")];
        headers.extend(content_type.map(|value| ("content-type", value)));
        let (status, text) = shop.post("/api/orders", &headers, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}: {text}"
        );
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["error"]["code"], "unsupported_media_type");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("application/json"), "{message}");
    }
    assert_nothing_stored(&shop);
    assert_eq!(sessions_at(&gw), 0, "no checkout session was asked for");

    let json = [("content-type", "Application/JSON; charset=utf-8")];
    let (status, text) = shop.post("/api/orders", &json, body).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
}

#[tokio::test]
async fn orders_are_limited_per_client_address_the_buy_form_included() {
    let gw = TestGateway::start().await;
    let account = gw.account("shop").await;
    let shop = TestMerchant::shop_with(&gw.url, &account, |config| {
        config.order_limit = ipn_merchant::OrderLimit {
            orders: 2,
            window: std::time::Duration::from_secs(600),
        };
    })
    .await;
    let busy = ipn_testkit::client_from("127.0.0.2");
    let order = || {
        busy.post(format!("{}/api/orders", shop.url))
            .json(&an_order())
            .send()
    };
    for n in 0..2 {
        let response = order().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "order {n}");
    }
    let response = order().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&wait), "{wait}");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "too_many_orders", "{answer}");
    // The catalog's Buy form makes orders too: limited alike.
    let form = [
        ("sku", "mug"),
        ("quantity", "1"),
        ("customer_email", "ann@example.com"),
    ];
    let response = busy
        .post(format!("{}/orders", shop.url))
        .header("origin", &shop.url)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(shop.count("orders"), 2);
    assert_eq!(sessions_at(&gw), 2);

    // Another address is not held back.
    let other = ipn_testkit::client_from("127.0.0.3");
    let response = other
        .post(format!("{}/orders", shop.url))
        .header("origin", &shop.url)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(shop.count("orders"), 3);
}
