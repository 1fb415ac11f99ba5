//! A real gateway for each test: port 0, a fresh database, the test clock.
//! The database is a SQLite file, or with `IPN_TEST_DATABASE=postgres` a
//! fresh PostgreSQL database on the machine's server (`data.rs`): the same
//! tests run on both.
#![allow(dead_code)] // each test file uses a different part

mod data;

use std::sync::Arc;
use std::time::Duration;

use ipn_core::standard::{Signer, Verifier, WebhookHeaders, WebhookSecret};
use ipn_gateway::delivery::ssrf::{NetworkPolicy, StaticResolver};
use ipn_gateway::{Config, EncryptionKey, Gateway};
use ipn_testkit::Recorded;

#[allow(unused_imports)] // secrets_at_rest.rs writes through it
pub use data::{Data, SqlValue};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub const ADMIN_KEY: &str = "admin-key-for-tests-0123456789abcdef";
/// The encryption key of every test gateway (base64 of 32 bytes): the same
/// across a restart of one data directory.
pub const ENCRYPTION_KEY: &str = "kGajcXEXq0GQY0SmYvu6ozhvUSmAezH4RUFq/xOWvgs=";

pub fn encryption_key() -> EncryptionKey {
    EncryptionKey::parse(ENCRYPTION_KEY).unwrap()
}

pub struct TestGateway {
    pub gateway: Gateway,
    pub url: String,
    pub resolver: Arc<StaticResolver>,
    /// Where its data is, kept across a restart.
    pub data: Data,
    client: reqwest::Client,
}

pub struct TestMerchant {
    pub id: String,
    pub key: String,
}

pub struct TestEndpoint {
    pub id: String,
    pub secret: String,
}

impl TestGateway {
    /// A gateway with the test clock, loopback allowed, default retry schedule.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start_in(Data::new(), adjust).await
    }

    /// Starts on existing data (to restart a gateway).
    pub async fn start_in(data: Data, adjust: impl FnOnce(&mut Config)) -> Self {
        let resolver = Arc::new(StaticResolver::default());
        let mut config = Config::new(data.database(), ADMIN_KEY, encryption_key());
        config.test_clock = true;
        config.network = NetworkPolicy::allow_private();
        config.resolver = resolver.clone();
        adjust(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = Gateway::start(config, listener).await.unwrap();
        let url = gateway.url();
        Self {
            gateway,
            url,
            resolver,
            data,
            client: reqwest::Client::new(),
        }
    }

    /// Shuts this gateway down cleanly and starts a new one on the same data
    /// (a fresh resolver; `adjust` as for [`TestGateway::start_with`]).
    pub async fn restart(self, adjust: impl FnOnce(&mut Config)) -> Self {
        let Self { gateway, data, .. } = self;
        gateway.shutdown().await.expect("clean shutdown");
        Self::start_in(data, adjust).await
    }

    /// A request without any Authorization header, for the caller to finish.
    pub fn unauthenticated(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.url))
    }

    /// POSTs a raw body to a postback route; returns the status and the
    /// answer's text.
    pub async fn postback(&self, path: &str, body: impl Into<Vec<u8>>) -> (StatusCode, String) {
        self.postback_as(path, Some("application/x-www-form-urlencoded"), body)
            .await
    }

    /// A postback with the given `Content-Type`, or none.
    pub async fn postback_as(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Vec<u8>>,
    ) -> (StatusCode, String) {
        let mut request = self.unauthenticated(reqwest::Method::POST, path);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.body(body.into()).send().await.unwrap();
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    /// The merchant's events for a list query such as `?limit=10`.
    pub async fn list_events(&self, merchant: &TestMerchant, query: &str) -> Value {
        let (status, body) = self.get(&merchant.key, &format!("/v1/events{query}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        key: &str,
        path: &str,
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(k) = idempotency_key {
            request = request.header("idempotency-key", k);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn post(&self, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(reqwest::Method::POST, key, path, Some(body), None)
            .await
    }

    pub async fn get(&self, key: &str, path: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::GET, key, path, None, None)
            .await
    }

    pub async fn merchant(&self, name: &str) -> TestMerchant {
        // The name may be markup (escaping tests): the address keeps what
        // an address can hold.
        let local: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
        let (status, body) = self
            .post(
                ADMIN_KEY,
                "/v1/merchants",
                json!({"name": name, "receiver_email": format!("{local}@example.com")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        TestMerchant {
            id: body["id"].as_str().unwrap().to_owned(),
            key: body["api_key"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn endpoint(&self, merchant: &TestMerchant, body: Value) -> TestEndpoint {
        let (status, body) = self.post(&merchant.key, "/v1/endpoints", body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        TestEndpoint {
            id: body["id"].as_str().unwrap().to_owned(),
            secret: body["secret"].as_str().unwrap().to_owned(),
        }
    }

    /// Ingests a platform event; returns the event as the API answered.
    pub async fn ingest(&self, merchant: &TestMerchant, event_type: &str, data: Value) -> Value {
        let (status, body) = self
            .post(
                &merchant.key,
                "/v1/events",
                json!({"type": event_type, "data": data}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Ingests `count` `invoice.paid` events with data ids `{prefix}{n}`;
    /// returns their event ids in order.
    pub async fn ingest_invoices(
        &self,
        merchant: &TestMerchant,
        prefix: &str,
        count: usize,
    ) -> Vec<String> {
        let mut ids = Vec::with_capacity(count);
        for n in 0..count {
            let event = self
                .ingest(
                    merchant,
                    "invoice.paid",
                    json!({"id": format!("{prefix}{n}")}),
                )
                .await;
            ids.push(event["id"].as_str().unwrap().to_owned());
        }
        ids
    }

    /// Rotates an endpoint's secret; returns the new one.
    pub async fn rotate_secret(&self, merchant: &TestMerchant, endpoint: &TestEndpoint) -> String {
        let path = format!("/v1/endpoints/{}/rotate-secret", endpoint.id);
        let (status, body) = self.post(&merchant.key, &path, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["id"], endpoint.id.as_str());
        body["secret"].as_str().unwrap().to_owned()
    }

    /// The value of an unlabelled metric at `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self
            .unauthenticated(reqwest::Method::GET, "/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no metric {name} in {text}"))
            .parse()
            .unwrap()
    }

    /// Advances the test clock; returns the time it then shows.
    pub async fn advance(&self, seconds: u64) -> time::OffsetDateTime {
        let (status, body) = self
            .post(
                ADMIN_KEY,
                "/v1/test/clock/advance",
                json!({"seconds": seconds}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        time::OffsetDateTime::parse(
            body["now"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    }

    pub async fn attempts(&self, merchant: &TestMerchant, event_id: &str) -> Vec<Value> {
        let (status, body) = self
            .get(&merchant.key, &format!("/v1/events/{event_id}/attempts"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].as_array().unwrap().clone()
    }

    /// Waits until `check` holds for the event's attempts (or fails the test).
    pub async fn wait_attempts(
        &self,
        merchant: &TestMerchant,
        event_id: &str,
        what: &str,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let attempts = self.attempts(merchant, event_id).await;
            if check(&attempts) {
                return attempts;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; attempts: {attempts:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Verifies a received request's Standard Webhooks signature with `secret`.
pub fn verify_signed(request: &Recorded, secret: &str) {
    let headers =
        WebhookHeaders::from_lookup(|name| request.headers.get(name).map(|v| v.as_bytes()))
            .expect("signed headers present");
    let verifier = Verifier::with_secret(WebhookSecret::parse(secret).unwrap());
    verifier
        .verify_signature(&headers, &request.body)
        .expect("signature verifies");
}

/// The `v1,…` entries of a received request's `webhook-signature` header.
pub fn v1_signatures(request: &Recorded) -> Vec<String> {
    request
        .header("webhook-signature")
        .expect("webhook-signature header")
        .split_ascii_whitespace()
        .filter(|entry| entry.starts_with("v1,"))
        .map(str::to_owned)
        .collect()
}

/// The `v1,…` signature that `secret` makes for a received request.
pub fn expected_v1(request: &Recorded, secret: &str) -> String {
    let id = request.header("webhook-id").expect("webhook-id header");
    let timestamp: i64 = request
        .header("webhook-timestamp")
        .expect("webhook-timestamp header")
        .parse()
        .expect("numeric webhook-timestamp");
    Signer::Secret(WebhookSecret::parse(secret).unwrap()).sign(id, timestamp, &request.body)
}

/// A merchant with one endpoint in each dialect: where the payment,
/// checkout and subscription flows' events are checked.
pub struct Shop {
    pub gw: TestGateway,
    pub merchant: TestMerchant,
    pub standard: ipn_testkit::Receiver,
    /// The standard endpoint's signing secret.
    pub secret: String,
    pub paypal: ipn_testkit::Receiver,
}

impl Shop {
    pub async fn open() -> Self {
        let gw = TestGateway::start().await;
        let merchant = gw.merchant("shop").await;
        let standard = ipn_testkit::Receiver::start().await.unwrap();
        let paypal = ipn_testkit::Receiver::start().await.unwrap();
        let endpoint = gw
            .endpoint(&merchant, json!({"url": standard.url("/webhooks")}))
            .await;
        gw.endpoint(
            &merchant,
            json!({"url": paypal.url("/ipn"), "dialect": "paypal"}),
        )
        .await;
        Self {
            gw,
            merchant,
            standard,
            secret: endpoint.secret,
            paypal,
        }
    }

    /// A POST with the merchant's key.
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.gw.post(&self.merchant.key, path, body).await
    }
}

impl TestGateway {
    /// Row counts of every table, read beside the running gateway: equal
    /// counts before and after show that refused requests stored nothing.
    pub fn table_counts(&self) -> std::collections::BTreeMap<String, i64> {
        self.data.table_counts()
    }

    /// How many rows a table of the gateway's database holds, read beside
    /// the running gateway: to check that a refused request stored nothing.
    pub fn count_rows(&self, table: &str) -> i64 {
        self.data.count_rows(table)
    }
}
