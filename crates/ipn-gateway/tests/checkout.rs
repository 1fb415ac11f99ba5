//! Hosted checkout: a session is created through the API, its page is
//! fetched and its form posted as a browser would (no redirects followed),
//! and the shop's endpoint gets the payment's (or, in subscription mode, the
//! subscription's) events.

mod common;

use std::time::Duration;

use common::{TestGateway, TestMerchant, verify_signed};
use ipn_testkit::Receiver;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Longest wait for deliveries that should come at once.
const WAIT: Duration = Duration::from_secs(10);

const VISA: &str = "4242 4242 4242 4242";
const DECLINED: &str = "4000 0000 0000 0002";
const STAYS_PENDING: &str = "4000 0000 0000 0077";
const SUCCESS_URL: &str = "https://shop.example/orders/42/paid";
const CANCEL_URL: &str = "https://shop.example/cart?step=pay";

/// A merchant with one standard endpoint, and a browser that does not
/// follow redirects (the test reads where it would go).
struct Shop {
    gw: TestGateway,
    merchant: TestMerchant,
    endpoint: Receiver,
    secret: String,
    browser: reqwest::Client,
}

/// A page as the browser got it.
struct Page {
    status: StatusCode,
    location: Option<String>,
    content_type: String,
    html: String,
}

impl Shop {
    async fn open() -> Self {
        let gw = TestGateway::start().await;
        // A name that needs escaping in HTML.
        let (status, created) = gw
            .post(
                common::ADMIN_KEY,
                "/v1/merchants",
                json!({"name": "Ann's <Shop> & Co", "receiver_email": "shop@example.com"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let merchant = TestMerchant {
            id: created["id"].as_str().unwrap().to_owned(),
            key: created["api_key"].as_str().unwrap().to_owned(),
        };
        let endpoint = Receiver::start().await.unwrap();
        let created = gw
            .endpoint(&merchant, json!({"url": endpoint.url("/webhooks")}))
            .await;
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            gw,
            merchant,
            endpoint,
            secret: created.secret,
            browser,
        }
    }

    async fn create(&self, body: Value) -> (StatusCode, Value) {
        self.gw
            .post(&self.merchant.key, "/v1/checkout/sessions", body)
            .await
    }

    /// Creates a session that must be accepted.
    async fn session(&self, body: Value) -> Value {
        let (status, session) = self.create(body).await;
        assert_eq!(status, StatusCode::CREATED, "{session}");
        session
    }

    async fn fetch(&self, id: &str) -> Value {
        let (status, session) = self
            .gw
            .get(&self.merchant.key, &format!("/v1/checkout/sessions/{id}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{session}");
        session
    }

    async fn read(response: reqwest::Response) -> Page {
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let location = header("location");
        let content_type = header("content-type").unwrap_or_default();
        Page {
            status,
            location,
            content_type,
            html: response.text().await.unwrap(),
        }
    }

    async fn get_page(&self, url: &str) -> Page {
        Self::read(self.browser.get(url).send().await.unwrap()).await
    }

    /// Submits the page's form as a browser does.
    async fn submit(&self, url: &str, name: &str, email: &str, card: &str) -> Page {
        let form = [("name", name), ("email", email), ("card_number", card)];
        Self::read(self.browser.post(url).form(&form).send().await.unwrap()).await
    }

    /// The merchant's events of one type.
    async fn events(&self, event_type: &str) -> Vec<Value> {
        let list = self
            .gw
            .list_events(&self.merchant, &format!("?type={event_type}"))
            .await;
        list["data"].as_array().unwrap().clone()
    }
}

/// A two-line order whose texts need escaping.
fn order() -> Value {
    json!({
        "invoice": "order-42 & <friends>",
        "currency": "USD",
        "items": [
            {"sku": "mug-1", "name": "Mug <script>alert(\"x\")</script>", "quantity": 2,
             "unit_amount": 1250, "kind": "physical"},
            {"sku": "ebook-7", "name": "E-book", "quantity": 1, "unit_amount": 499,
             "kind": "digital"},
        ],
        "customer_email": "ann@example.com",
        "custom": "cart=7",
        "success_url": SUCCESS_URL,
        "cancel_url": CANCEL_URL,
    })
}

fn id(session: &Value) -> &str {
    session["id"].as_str().unwrap()
}

fn url(session: &Value) -> &str {
    session["url"].as_str().unwrap()
}

fn returned_to(base: &str, session: &Value) -> String {
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}session_id={}", id(session))
}

#[tokio::test]
async fn a_session_is_paid_by_posting_its_form_and_the_customer_returns_to_the_shop() {
    let shop = Shop::open().await;
    let session = shop.session(order()).await;
    let session_id = id(&session);
    assert!(session_id.starts_with("cs_"), "{session}");
    assert_eq!(
        session["url"],
        format!("{}/checkout/{session_id}", shop.gw.url)
    );
    assert_eq!(session["status"], "open");
    assert_eq!(session["mode"], "payment");
    assert_eq!(session["subscription"], Value::Null);
    assert_eq!(session["subscription_id"], Value::Null);
    assert_eq!(session["payment_id"], Value::Null);
    assert_eq!(session["amount"], 2999, "the items' total");
    assert_eq!(session["currency"], "USD");
    assert_eq!(session["success_url"], SUCCESS_URL);
    let created = time::OffsetDateTime::parse(
        session["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expires = time::OffsetDateTime::parse(
        session["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expires - created, time::Duration::hours(24));

    let page = shop.get_page(url(&session)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.content_type.starts_with("text/html"),
        "{}",
        page.content_type
    );
    let html = &page.html;
    for expected in [
        "Ann&#39;s &lt;Shop&gt; &amp; Co",
        "order-42 &amp; &lt;friends&gt;",
        "Mug &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;",
        "E-book",
        "12.50 USD",
        "25.00 USD",
        "4.99 USD",
        "29.99 USD",
        // No action: the form posts back to the page's own URL, whatever
        // prefix a public URL puts before it.
        "<form method=\"post\">",
        "name=\"name\"",
        "name=\"email\"",
        "value=\"ann@example.com\"",
        "name=\"card_number\"",
        "4000 0000 0000 0002",
        &format!("href=\"https://shop.example/cart?step=pay&amp;session_id={session_id}\""),
    ] {
        assert!(html.contains(expected), "no {expected:?} in\n{html}");
    }
    assert!(!html.contains("<script"), "unescaped markup in\n{html}");
    assert!(
        !html.contains("<Shop>"),
        "unescaped merchant name in\n{html}"
    );

    let paid = shop
        .submit(url(&session), "Ann Smith", "ann.smith@example.com", VISA)
        .await;
    assert_eq!(paid.status, StatusCode::SEE_OTHER, "{}", paid.html);
    assert_eq!(
        paid.location.as_deref(),
        Some(returned_to(SUCCESS_URL, &session).as_str())
    );

    let session = shop.fetch(session_id).await;
    assert_eq!(session["status"], "paid");
    assert_eq!(session["subscription_id"], Value::Null);
    let payment_id = session["payment_id"].as_str().unwrap();
    assert!(payment_id.starts_with("pay_"), "{session}");
    assert!(session["paid_at"].is_string());
    let (status, payment) = shop
        .gw
        .get(&shop.merchant.key, &format!("/v1/payments/{payment_id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{payment}");
    assert_eq!(payment["status"], "completed");
    assert_eq!(payment["amount"], 2999);
    assert_eq!(payment["invoice"], "order-42 & <friends>");
    assert_eq!(payment["custom"], "cart=7");
    assert_eq!(payment["items"].as_array().unwrap().len(), 2);
    assert_eq!(payment["payer"]["email"], "ann.smith@example.com");
    assert_eq!(payment["payer"]["name"], "Ann Smith");
    assert_eq!(payment["payment_method"]["last4"], "4242");

    let received = shop.endpoint.wait_for(1, WAIT).await;
    assert_eq!(received.len(), 1);
    verify_signed(&received[0], &shop.secret);
    let event: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(event["type"], "payment.completed");
    assert_eq!(event["data"]["id"], payment_id);
    assert_eq!(event["data"]["invoice"], "order-42 & <friends>");

    let page = shop.get_page(url(&session)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("data-status=\"paid\""), "{}", page.html);
    assert!(page.html.contains(payment_id));
    assert!(!page.html.contains("<form"), "a paid session takes no card");
}

#[tokio::test]
async fn a_paid_session_is_never_paid_twice_even_when_submits_race() {
    let shop = Shop::open().await;
    let session = shop.session(order()).await;
    let first = shop
        .submit(url(&session), "Ann Smith", "ann@example.com", VISA)
        .await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.html);
    let again = shop
        .submit(url(&session), "Ann Smith", "ann@example.com", VISA)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.html.contains("already paid"), "{}", again.html);
    let paid = shop.fetch(id(&session)).await;

    // Five submits at once for another session: one pays, the others see it paid.
    let raced = shop.session(order()).await;
    let submit = || shop.submit(url(&raced), "Bob", "bob@example.com", VISA);
    let pages = tokio::join!(submit(), submit(), submit(), submit(), submit());
    let pages = [pages.0, pages.1, pages.2, pages.3, pages.4];
    let mut statuses: Vec<StatusCode> = pages.iter().map(|p| p.status).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            StatusCode::SEE_OTHER,
            StatusCode::CONFLICT,
            StatusCode::CONFLICT,
            StatusCode::CONFLICT,
            StatusCode::CONFLICT
        ]
    );

    let events = shop.events("payment.completed").await;
    assert_eq!(events.len(), 2, "one payment per session: {events:#?}");
    assert_eq!(
        shop.fetch(id(&session)).await["payment_id"],
        paid["payment_id"],
        "the first payment stays the session's"
    );
    let received = shop.endpoint.wait_for(2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(received.len(), 2);
    assert_eq!(shop.endpoint.requests().len(), 2, "no third event");
}

#[tokio::test]
async fn an_expired_session_is_gone_and_takes_no_payment() {
    let shop = Shop::open().await;
    let session = shop.session(order()).await;
    shop.gw.advance(24 * 3600 + 1).await;

    let page = shop.get_page(url(&session)).await;
    assert_eq!(page.status, StatusCode::GONE);
    assert!(
        page.html.contains("data-status=\"expired\""),
        "{}",
        page.html
    );
    assert!(!page.html.contains("<form"));
    let submitted = shop
        .submit(url(&session), "Ann Smith", "ann@example.com", VISA)
        .await;
    assert_eq!(submitted.status, StatusCode::GONE);
    assert_eq!(submitted.location, None);

    let fetched = shop.fetch(id(&session)).await;
    assert_eq!(fetched["status"], "expired");
    assert_eq!(fetched["payment_id"], Value::Null);
    let all = shop.gw.list_events(&shop.merchant, "").await;
    assert_eq!(all["data"], json!([]), "no payment, no event");
}

#[tokio::test]
async fn a_declined_card_shows_the_form_again_and_the_session_stays_open() {
    let shop = Shop::open().await;
    let session = shop.session(order()).await;
    let declined = shop
        .submit(url(&session), "Ann <Smith>", "ann@example.com", DECLINED)
        .await;
    assert_eq!(declined.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(declined.location, None);
    let html = &declined.html;
    assert!(html.contains("declined"), "{html}");
    assert!(html.contains("<form"), "the form again: {html}");
    assert!(html.contains("value=\"Ann &lt;Smith&gt;\""), "{html}");
    let card_input = html
        .lines()
        .find(|line| line.contains("name=\"card_number\""))
        .unwrap();
    assert!(
        !card_input.contains("value="),
        "the card number is never shown back: {card_input}"
    );
    let fetched = shop.fetch(id(&session)).await;
    assert_eq!(fetched["status"], "open");
    assert_eq!(fetched["payment_id"], Value::Null);

    // The declined charge is a payment of its own (`payment.denied`); the
    // customer then pays with another card.
    let paid = shop
        .submit(url(&session), "Ann Smith", "ann@example.com", VISA)
        .await;
    assert_eq!(paid.status, StatusCode::SEE_OTHER, "{}", paid.html);
    let received = shop.endpoint.wait_for(2, WAIT).await;
    let mut types: Vec<String> = received
        .iter()
        .map(|r| {
            let event: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(event["data"]["invoice"], "order-42 & <friends>");
            event["type"].as_str().unwrap().to_owned()
        })
        .collect();
    types.sort();
    assert_eq!(types, ["payment.completed", "payment.denied"]);
    assert_eq!(shop.fetch(id(&session)).await["status"], "paid");
}

#[tokio::test]
async fn a_mistyped_card_or_missing_field_shows_the_form_again_with_400() {
    let shop = Shop::open().await;
    let session = shop.session(order()).await;
    let luhn = shop
        .submit(
            url(&session),
            "Ann Smith",
            "ann@example.com",
            "4242 4242 4242 4241",
        )
        .await;
    assert_eq!(luhn.status, StatusCode::BAD_REQUEST);
    assert!(luhn.html.contains("Luhn"), "{}", luhn.html);
    assert!(luhn.html.contains("<form"));
    let no_name = shop
        .submit(url(&session), "", "ann@example.com", VISA)
        .await;
    assert_eq!(no_name.status, StatusCode::BAD_REQUEST);
    let no_email = shop.submit(url(&session), "Ann", "ann", VISA).await;
    assert_eq!(no_email.status, StatusCode::BAD_REQUEST);

    assert_eq!(shop.fetch(id(&session)).await["status"], "open");
    let all = shop.gw.list_events(&shop.merchant, "").await;
    assert_eq!(all["data"], json!([]), "no payment, no event");
}

#[tokio::test]
async fn unknown_sessions_are_404_pages_and_other_merchants_cannot_read_one() {
    let shop = Shop::open().await;
    let session = shop.session(order()).await;
    let unknown = format!("{}/checkout/cs_01JAAAAAAAAAAAAAAAAAAAAAAA", shop.gw.url);
    for url in [unknown, format!("{}/checkout/not-an-id", shop.gw.url)] {
        let page = shop.get_page(&url).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{url}");
        assert!(page.content_type.starts_with("text/html"));
        let submitted = shop.submit(&url, "Ann", "ann@example.com", VISA).await;
        assert_eq!(submitted.status, StatusCode::NOT_FOUND, "{url}");
    }
    let other = shop.gw.merchant("other").await;
    let (status, body) = shop
        .gw
        .get(
            &other.key,
            &format!("/v1/checkout/sessions/{}", id(&session)),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn bad_input_on_create_is_a_400_and_creates_nothing() {
    let shop = Shop::open().await;
    let with = |field: &str, value: Value| {
        let mut body = order();
        body[field] = value;
        body
    };
    let zero = json!({"amount": 0, "currency": "USD", "success_url": SUCCESS_URL,
                      "cancel_url": CANCEL_URL});
    let unknown_currency = json!({"amount": 100, "currency": "XYZ",
                                  "success_url": SUCCESS_URL, "cancel_url": CANCEL_URL});
    let cases = [
        (
            "relative success_url",
            with("success_url", json!("/orders/42/paid")),
        ),
        (
            "javascript cancel_url",
            with("cancel_url", json!("javascript:alert(1)")),
        ),
        (
            "ftp success_url",
            with("success_url", json!("ftp://shop.example/")),
        ),
        ("zero amount", zero),
        ("unknown currency", unknown_currency),
        ("amount not the items' total", with("amount", json!(3000))),
        ("bad customer_email", with("customer_email", json!("ann"))),
        ("unknown field", with("colour", json!("red"))),
    ];
    for (what, body) in cases {
        let (status, answer) = shop.create(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_request", "{what}");
    }
    let (status, _) = shop
        .gw
        .post("wrong-key", "/v1/checkout/sessions", order())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn creating_a_session_honours_the_idempotency_key() {
    let shop = Shop::open().await;
    let key = &shop.merchant.key;
    let path = "/v1/checkout/sessions";
    let (status, first) = shop
        .gw
        .request(reqwest::Method::POST, key, path, Some(order()), Some("k-1"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = shop
        .gw
        .request(reqwest::Method::POST, key, path, Some(order()), Some("k-1"))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["id"], first["id"], "the same session");
    let mut changed = order();
    changed["invoice"] = json!("order-43");
    let (status, answer) = shop
        .gw
        .request(reqwest::Method::POST, key, path, Some(changed), Some("k-1"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
}

#[tokio::test]
async fn amounts_show_exactly_in_each_currency_exponent() {
    let shop = Shop::open().await;
    for (amount, currency, shown) in [
        (1000, "JPY", "1000 JPY"),
        (10500, "KWD", "10.500 KWD"),
        (5, "USD", "0.05 USD"),
    ] {
        let session = shop
            .session(
                json!({"amount": amount, "currency": currency, "invoice": "o-1",
                            "success_url": SUCCESS_URL, "cancel_url": CANCEL_URL}),
            )
            .await;
        let page = shop.get_page(url(&session)).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.html
                .contains(&format!("<strong id=\"total\">{shown}</strong>")),
            "{shown} in\n{}",
            page.html
        );
    }
}

#[tokio::test]
async fn a_session_survives_a_restart_and_is_paid_after_it() {
    let shop = Shop::open().await;
    let session = shop.session(order()).await;
    let Shop {
        gw,
        merchant,
        browser,
        ..
    } = shop;
    let gw = gw.restart(|_| {}).await;
    let (status, fetched) = gw
        .get(
            &merchant.key,
            &format!("/v1/checkout/sessions/{}", id(&session)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{fetched}");
    assert_eq!(fetched["status"], "open");
    assert_eq!(fetched["items"], session["items"]);
    assert_eq!(fetched["custom"], "cart=7");
    assert_eq!(fetched["expires_at"], session["expires_at"]);
    // The page lives at the restarted gateway's address.
    assert_eq!(
        fetched["url"],
        format!("{}/checkout/{}", gw.url, id(&session))
    );
    let form = [
        ("name", "Ann Smith"),
        ("email", "ann@example.com"),
        ("card_number", VISA),
    ];
    let response = browser
        .post(url(&fetched))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

/// A monthly plan of 9.99 USD for 12 payments, with `trial_days` free.
fn subscription_order(trial_days: u32) -> Value {
    json!({
        "invoice": "sub-order-7",
        "amount": 999,
        "currency": "USD",
        "custom": "plan=gold",
        "customer_email": "ann@example.com",
        "success_url": SUCCESS_URL,
        "cancel_url": CANCEL_URL,
        "subscription": {"interval": "month", "trial_days": trial_days, "total_cycles": 12},
    })
}

impl Shop {
    async fn subscription(&self, id: &str) -> Value {
        let (status, sub) = self
            .gw
            .get(&self.merchant.key, &format!("/v1/subscriptions/{id}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{sub}");
        sub
    }

    /// The events that reached the endpoint, as (type, invoice) in sequence
    /// order, once `count` arrived and nothing more came.
    async fn received(&self, count: usize) -> Vec<(String, Value)> {
        self.endpoint.wait_for(count, WAIT).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut events: Vec<Value> = self
            .endpoint
            .requests()
            .iter()
            .map(|r| {
                verify_signed(r, &self.secret);
                serde_json::from_slice(&r.body).unwrap()
            })
            .collect();
        events.sort_by_key(|e| e["sequence"].as_u64());
        events
            .iter()
            .map(|e| {
                let kind = e["type"].as_str().unwrap().to_owned();
                (kind, e["data"]["invoice"].clone())
            })
            .collect()
    }
}

#[tokio::test]
async fn a_subscription_session_shows_its_terms_and_paying_it_starts_the_subscription() {
    let shop = Shop::open().await;
    let session = shop.session(subscription_order(0)).await;
    assert_eq!(session["mode"], "subscription");
    assert_eq!(
        session["subscription"],
        json!({"interval": "month", "interval_count": 1, "trial_days": 0, "total_cycles": 12})
    );
    assert_eq!(session["subscription_id"], Value::Null);
    assert_eq!(session["amount"], 999);

    let page = shop.get_page(url(&session)).await;
    assert_eq!(page.status, StatusCode::OK);
    for expected in [
        "Subscribe to Ann&#39;s &lt;Shop&gt; &amp; Co",
        "<strong id=\"total\">9.99 USD</strong>",
        "every month",
        "for 12 payments",
        ">Subscribe</button>",
        "<form method=\"post\">",
        "value=\"ann@example.com\"",
    ] {
        assert!(
            page.html.contains(expected),
            "no {expected:?} in\n{}",
            page.html
        );
    }
    assert!(!page.html.contains("days free"), "no trial: {}", page.html);
    assert!(!page.html.contains(">Pay "), "{}", page.html);

    let paid = shop
        .submit(
            url(&session),
            "Ann Smith",
            "ann.smith@example.com",
            "4242424242424242",
        )
        .await;
    assert_eq!(paid.status, StatusCode::SEE_OTHER, "{}", paid.html);
    assert_eq!(
        paid.location.as_deref(),
        Some(returned_to(SUCCESS_URL, &session).as_str())
    );

    let fetched = shop.fetch(id(&session)).await;
    assert_eq!(fetched["status"], "paid");
    assert_eq!(fetched["payment_id"], Value::Null);
    assert!(fetched["paid_at"].is_string());
    let subscription_id = fetched["subscription_id"].as_str().unwrap();
    assert!(subscription_id.starts_with("sub_"), "{fetched}");
    let sub = shop.subscription(subscription_id).await;
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["invoice"], "sub-order-7");
    assert_eq!(sub["custom"], "plan=gold");
    assert_eq!(sub["amount"], 999);
    assert_eq!(sub["currency"], "USD");
    assert_eq!(sub["interval"], "month");
    assert_eq!(sub["total_cycles"], 12);
    assert_eq!(sub["cycles_paid"], 1);
    assert_eq!(sub["payer"]["email"], "ann.smith@example.com");
    assert_eq!(sub["payer"]["name"], "Ann Smith");
    assert_eq!(sub["receiver_email"], "shop@example.com");
    assert_eq!(sub["payment_method"]["last4"], "4242");

    let invoice = json!("sub-order-7");
    assert_eq!(
        shop.received(2).await,
        [
            ("subscription.created".to_owned(), invoice.clone()),
            ("subscription.payment".to_owned(), invoice),
        ]
    );

    let page = shop.get_page(url(&session)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("data-status=\"paid\""), "{}", page.html);
    assert!(page.html.contains(subscription_id), "{}", page.html);
    assert!(!page.html.contains("<form"), "a paid session takes no card");
}

#[tokio::test]
async fn a_trial_session_starts_a_trialing_subscription_and_charges_nothing() {
    let shop = Shop::open().await;
    let session = shop.session(subscription_order(14)).await;
    let page = shop.get_page(url(&session)).await;
    assert!(
        page.html
            .contains("every month, first 14 days free, for 12 payments"),
        "{}",
        page.html
    );
    let paid = shop
        .submit(url(&session), "Ann Smith", "ann@example.com", VISA)
        .await;
    assert_eq!(paid.status, StatusCode::SEE_OTHER, "{}", paid.html);
    let fetched = shop.fetch(id(&session)).await;
    assert_eq!(fetched["status"], "paid");
    let sub = shop
        .subscription(fetched["subscription_id"].as_str().unwrap())
        .await;
    assert_eq!(sub["status"], "trialing");
    assert_eq!(sub["cycles_paid"], 0);
    assert_eq!(
        shop.received(1).await,
        [("subscription.created".to_owned(), json!("sub-order-7"))]
    );
    assert_eq!(
        shop.events("subscription.payment").await,
        Vec::<Value>::new()
    );
    assert_eq!(shop.events("payment.completed").await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_card_a_subscription_cannot_use_shows_the_form_again_and_the_session_stays_open() {
    let shop = Shop::open().await;
    let session = shop.session(subscription_order(0)).await;
    let declined = shop
        .submit(
            url(&session),
            "Ann Smith",
            "ann@example.com",
            "4000000000000002",
        )
        .await;
    assert_eq!(
        declined.status,
        StatusCode::PAYMENT_REQUIRED,
        "{}",
        declined.html
    );
    assert_eq!(declined.location, None);
    assert!(declined.html.contains("declined"), "{}", declined.html);
    assert!(
        declined.html.contains(">Subscribe</button>"),
        "{}",
        declined.html
    );
    assert!(
        declined.html.contains("value=\"Ann Smith\""),
        "{}",
        declined.html
    );

    let pending = shop
        .submit(url(&session), "Ann Smith", "ann@example.com", STAYS_PENDING)
        .await;
    assert_eq!(pending.status, StatusCode::BAD_REQUEST, "{}", pending.html);
    assert!(
        pending
            .html
            .contains("subscriptions need a card that charges at once"),
        "{}",
        pending.html
    );
    assert!(pending.html.contains("<form"), "{}", pending.html);

    let fetched = shop.fetch(id(&session)).await;
    assert_eq!(fetched["status"], "open");
    assert_eq!(fetched["subscription_id"], Value::Null);
    assert_eq!(shop.gw.count_rows("subscriptions"), 0, "no subscription");
    let all = shop.gw.list_events(&shop.merchant, "").await;
    assert_eq!(all["data"], json!([]), "no subscription, no event");

    // Another card then starts it.
    let paid = shop
        .submit(url(&session), "Ann Smith", "ann@example.com", VISA)
        .await;
    assert_eq!(paid.status, StatusCode::SEE_OTHER, "{}", paid.html);
    assert_eq!(shop.fetch(id(&session)).await["status"], "paid");
}

#[tokio::test]
async fn a_subscription_session_starts_one_subscription_however_often_it_is_submitted() {
    let shop = Shop::open().await;
    let session = shop.session(subscription_order(0)).await;
    let first = shop
        .submit(url(&session), "Ann Smith", "ann@example.com", VISA)
        .await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.html);
    let again = shop
        .submit(url(&session), "Ann Smith", "ann@example.com", VISA)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.html);
    assert!(again.html.contains("already paid"), "{}", again.html);
    let paid = shop.fetch(id(&session)).await;

    // Submits at once for another session: one starts it.
    let raced = shop.session(subscription_order(0)).await;
    let submit = || shop.submit(url(&raced), "Bob", "bob@example.com", VISA);
    let pages = tokio::join!(submit(), submit(), submit());
    let mut statuses = [pages.0.status, pages.1.status, pages.2.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [
            StatusCode::SEE_OTHER,
            StatusCode::CONFLICT,
            StatusCode::CONFLICT
        ]
    );

    assert_eq!(shop.gw.count_rows("subscriptions"), 2, "one per session");
    assert_eq!(shop.events("subscription.created").await.len(), 2);
    assert_eq!(shop.events("subscription.payment").await.len(), 2);
    assert_eq!(
        shop.fetch(id(&session)).await["subscription_id"],
        paid["subscription_id"],
        "the first subscription stays the session's"
    );
}

#[tokio::test]
async fn a_bad_plan_is_a_400_and_stores_nothing() {
    let shop = Shop::open().await;
    let with = |terms: Value| {
        let mut body = subscription_order(0);
        body["subscription"] = terms;
        body
    };
    let cases = [
        ("unknown interval", with(json!({"interval": "fortnight"}))),
        (
            "trial too long",
            with(json!({"interval": "month", "trial_days": 91})),
        ),
        (
            "no intervals",
            with(json!({"interval": "week", "interval_count": 0})),
        ),
        (
            "zero cycles",
            with(json!({"interval": "year", "total_cycles": 0})),
        ),
        (
            "unknown term",
            with(json!({"interval": "month", "colour": "red"})),
        ),
        ("not an object", with(json!("monthly"))),
    ];
    for (what, body) in cases {
        let (status, answer) = shop.create(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_request", "{what}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("subscription: "), "{what}: {message}");
    }
    assert_eq!(shop.gw.count_rows("checkout_sessions"), 0);
    // A plan that is valid is taken, and `null` is payment mode.
    shop.session(with(json!({"interval": "day", "interval_count": 90})))
        .await;
    let session = shop.session(with(Value::Null)).await;
    assert_eq!(session["mode"], "payment");
    assert_eq!(shop.gw.count_rows("checkout_sessions"), 2);
}

#[tokio::test]
async fn an_expired_subscription_session_starts_nothing() {
    let shop = Shop::open().await;
    let session = shop.session(subscription_order(0)).await;
    shop.gw.advance(24 * 3600 + 1).await;
    let submitted = shop
        .submit(url(&session), "Ann Smith", "ann@example.com", VISA)
        .await;
    assert_eq!(submitted.status, StatusCode::GONE, "{}", submitted.html);
    let fetched = shop.fetch(id(&session)).await;
    assert_eq!(fetched["status"], "expired");
    assert_eq!(fetched["subscription_id"], Value::Null);
    assert_eq!(shop.gw.count_rows("subscriptions"), 0);
}

#[tokio::test]
async fn a_card_that_stays_pending_is_never_called_paid() {
    let shop = Shop::open().await;
    let session = shop.session(order()).await;
    let submitted = shop
        .submit(url(&session), "Ann Smith", "ann@example.com", STAYS_PENDING)
        .await;
    // The session is settled (the money is on its way): back to the shop,
    // whose order page says it waits for the payment to clear.
    assert_eq!(
        submitted.status,
        StatusCode::SEE_OTHER,
        "{}",
        submitted.html
    );
    let page = shop.get_page(url(&session)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.html.contains("data-status=\"pending\""),
        "{}",
        page.html
    );
    assert!(
        page.html.contains("<h1>Payment pending</h1>"),
        "{}",
        page.html
    );
    assert!(!page.html.contains(">Paid<"), "{}", page.html);
    assert!(!page.html.contains("Paid at"), "{}", page.html);
    let again = shop
        .submit(url(&session), "Ann Smith", "ann@example.com", VISA)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(
        again.html.contains("data-status=\"pending\""),
        "{}",
        again.html
    );
    assert!(
        again.html.contains("Nothing more was charged"),
        "{}",
        again.html
    );

    // It fails to clear: the page says so.
    let payment = shop.fetch(id(&session)).await["payment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = shop
        .gw
        .post(
            &shop.merchant.key,
            &format!("/v1/payments/{payment}/fail"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page = shop.get_page(url(&session)).await;
    assert!(
        page.html.contains("data-status=\"failed\""),
        "{}",
        page.html
    );
    assert!(page.html.contains("nothing was charged"), "{}", page.html);

    // A card that completes is paid, as before.
    let session = shop.session(order()).await;
    shop.submit(url(&session), "Ann Smith", "ann@example.com", VISA)
        .await;
    let page = shop.get_page(url(&session)).await;
    assert!(page.html.contains("data-status=\"paid\""), "{}", page.html);
    assert!(page.html.contains("<h1>Paid</h1>"), "{}", page.html);
}

#[tokio::test]
async fn every_checkout_page_carries_the_security_headers_of_every_page() {
    let shop = Shop::open().await;
    let session = shop.session(order()).await;
    let unknown = format!("{}/checkout/cs_01JZZZZZZZZZZZZZZZZZZZZZZZ", shop.gw.url);
    for (what, request) in [
        ("open", shop.browser.get(url(&session))),
        ("unknown", shop.browser.get(&unknown)),
        (
            "refused form",
            shop.browser.post(url(&session)).form(&[("name", "Ann")]),
        ),
    ] {
        let response = request.send().await.unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
        // The page's address holds the session id: other sites never get it.
        assert_eq!(headers["referrer-policy"], "same-origin", "{what}");
        assert_eq!(headers["x-frame-options"], "DENY", "{what}");
        assert_eq!(headers["cache-control"], "no-store", "{what}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'none';"), "{what}: {csp}");
    }
}

#[tokio::test]
async fn control_characters_in_text_fields_are_a_400_naming_the_field() {
    let shop = Shop::open().await;
    let with = |path: &[&str], value: &str| {
        let mut body = order();
        let mut at = &mut body;
        for key in path {
            at = match key.parse::<usize>() {
                Ok(index) => &mut at[index],
                Err(_) => &mut at[*key],
            };
        }
        *at = json!(value);
        body
    };
    for (field, body) in [
        ("invoice", with(&["invoice"], "order-42\0")),
        ("custom", with(&["custom"], "cart=7\u{1b}[31m")),
        ("items[1].name", with(&["items", "0", "name"], "Mug\u{7f}")),
        ("items[2].sku", with(&["items", "1", "sku"], "ebook\n7")),
    ] {
        let (status, answer) = shop.create(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{field}: {message}");
        assert!(message.contains("control character"), "{message}");
    }
    // Text without controls is fine, whatever its script.
    shop.session(with(&["invoice"], "order-42 « ünïcode »"))
        .await;
}
