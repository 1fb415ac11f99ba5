//! A real gateway and a real merchant server for each test: both on port 0,
//! each with a fresh database of its own (a SQLite file, or with
//! `IPN_TEST_DATABASE=postgres` a PostgreSQL database: `data.rs`). The
//! inbox is read straight from the merchant's database, as an operator
//! would.
#![allow(dead_code)] // each test file uses a different part

pub mod data;
pub mod stack;

use std::time::Duration;

pub use data::Data;
use ipn_core::standard::WebhookSecret;
use ipn_gateway::delivery::ssrf::NetworkPolicy;
use ipn_gateway::{EncryptionKey, Gateway};
use ipn_merchant::{Config, GatewayKey, Merchant};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const ADMIN_KEY: &str = "admin-key-for-tests-0123456789abcdef";

/// Longest wait for something that should happen at once.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestGateway {
    pub gateway: Gateway,
    pub url: String,
    pub data: Data,
    client: reqwest::Client,
}

/// A merchant account at the gateway.
pub struct Account {
    pub id: String,
    pub key: String,
}

impl TestGateway {
    /// A gateway on the test clock (which follows real time until advanced),
    /// with loopback endpoints allowed.
    pub async fn start() -> Self {
        let data = Data::new("gateway.db");
        let mut config = ipn_gateway::Config::new(
            data.gateway_database(),
            ADMIN_KEY,
            EncryptionKey::generate().unwrap(),
        );
        config.test_clock = true;
        config.network = NetworkPolicy::allow_private();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = Gateway::start(config, listener).await.unwrap();
        let url = gateway.url();
        Self {
            gateway,
            url,
            data,
            client: reqwest::Client::new(),
        }
    }

    pub async fn post(&self, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    pub async fn get(&self, key: &str, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    pub async fn account(&self, name: &str) -> Account {
        let (status, body) = self
            .post(
                ADMIN_KEY,
                "/v1/merchants",
                json!({"name": name, "receiver_email": format!("{name}@example.com")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        Account {
            id: body["id"].as_str().unwrap().to_owned(),
            key: body["api_key"].as_str().unwrap().to_owned(),
        }
    }

    /// Creates an endpoint; returns its id and signing secret.
    pub async fn endpoint(&self, account: &Account, body: Value) -> (String, String) {
        let (status, body) = self.post(&account.key, "/v1/endpoints", body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["id"].as_str().unwrap().to_owned(),
            body["secret"].as_str().unwrap().to_owned(),
        )
    }

    /// Waits until every attempt to deliver `event_id` so far succeeded and
    /// there are `endpoints` of them.
    pub async fn wait_delivered(&self, account: &Account, event_id: &str, endpoints: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (status, body) = self
                .get(&account.key, &format!("/v1/events/{event_id}/attempts"))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let attempts = body["data"].as_array().unwrap();
            let succeeded = attempts
                .iter()
                .filter(|a| a["status"] == "succeeded")
                .count();
            if succeeded >= endpoints {
                assert_eq!(
                    attempts.len(),
                    succeeded,
                    "no failed attempt: {attempts:#?}"
                );
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {endpoints} deliveries of {event_id}: {attempts:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A bound listener whose URL can be given to the gateway before the
/// merchant starts on it (the merchant needs the endpoint's secret first).
pub struct Bound {
    pub listener: TcpListener,
    pub url: String,
}

impl Bound {
    pub async fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        Self { listener, url }
    }
}

pub struct TestMerchant {
    pub merchant: Merchant,
    pub url: String,
    /// Its database, and its folder (mail, downloads).
    pub data: Data,
    client: reqwest::Client,
}

/// One inbox row as stored.
#[derive(Debug, Clone)]
pub struct InboxRow {
    pub id: i64,
    pub dialect: String,
    pub webhook_id: Option<String>,
    pub headers: Value,
    pub body: Vec<u8>,
    pub status: String,
    /// The gateway's postback answer, once had: `VERIFIED` or `INVALID`.
    pub verification: Option<String>,
    pub verified_at: Option<i64>,
    /// Postbacks that got no answer.
    pub postback_attempts: i64,
    pub postback_error: Option<String>,
    /// What the handler made of it: applied, held, duplicate, flagged, …
    pub outcome: Option<String>,
    pub outcome_detail: Option<String>,
}

impl TestMerchant {
    /// A merchant server on `bound`, accepting `secret`'s signatures.
    pub async fn start(bound: Bound, gateway_url: &str, secret: &str) -> Self {
        Self::start_with(bound, gateway_url, "merchant-key-at-the-gateway", secret).await
    }

    /// A shop that sells through `account` at the gateway at `gateway_url`
    /// (the demo catalog; a fresh webhook secret, as no IPN is sent).
    pub async fn shop(gateway_url: &str, account: &Account) -> Self {
        Self::shop_with(gateway_url, account, |_| {}).await
    }

    /// [`TestMerchant::shop`] with `adjust` applied to its configuration.
    pub async fn shop_with(
        gateway_url: &str,
        account: &Account,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let secret = WebhookSecret::generate().reveal();
        let bound = Bound::new().await;
        Self::configured(bound, gateway_url, &account.key, &secret, adjust).await
    }

    /// A merchant server on `bound` with the merchant key `key`.
    pub async fn start_with(bound: Bound, gateway_url: &str, key: &str, secret: &str) -> Self {
        Self::configured(bound, gateway_url, key, secret, |_| {}).await
    }

    pub async fn configured(
        bound: Bound,
        gateway_url: &str,
        key: &str,
        secret: &str,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let data = Data::new("shop.db");
        let mut config = Config::new(
            data.shop_database(),
            gateway_url,
            GatewayKey::new(key),
            WebhookSecret::parse(secret).unwrap(),
        );
        // In its folder on either database.
        config.mail_dir = data.dir.path().join("mail");
        config.downloads_dir = Some(data.dir.path().join("downloads"));
        // Tests that want reconciliation turn it on: it would otherwise
        // hand the shop copies of events the test means to deliver itself.
        config.reconcile_every = None;
        adjust(&mut config);
        let merchant = Merchant::start(config, bound.listener).await.unwrap();
        assert_eq!(merchant.url(), bound.url);
        Self {
            url: merchant.url(),
            merchant,
            data,
            client: reqwest::Client::new(),
        }
    }

    /// A merchant server on a new port, for tests that send it messages
    /// themselves (the gateway URL is never called in this slice).
    pub async fn alone(secret: &str) -> Self {
        Self::start(Bound::new().await, "http://127.0.0.1:9", secret).await
    }

    /// POSTs `body` with `headers`; returns the status and the answer's text.
    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) -> (StatusCode, String) {
        let mut request = self.client.post(format!("{}{path}", self.url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.body(body.into()).send().await.unwrap();
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    /// GETs `path`; returns the status and the JSON answer.
    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    /// POSTs `body` as JSON; returns the status and the JSON answer.
    pub async fn post_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    /// How many rows `table` holds, read from the database.
    pub fn count(&self, table: &str) -> i64 {
        self.data.count(table)
    }

    /// Every inbox row, in arrival order, read from the database.
    pub fn inbox(&self) -> Vec<InboxRow> {
        self.data
            .rows(
                "SELECT id, dialect, webhook_id, headers, body, status, verification,
                     verified_at, postback_attempts, postback_error, outcome, outcome_detail
                 FROM inbox ORDER BY id",
                &[],
            )
            .into_iter()
            .map(|row| InboxRow {
                id: row[0].int(),
                dialect: row[1].text(),
                webhook_id: row[2].opt_text(),
                headers: serde_json::from_str(&row[3].text()).unwrap(),
                body: row[4].bytes(),
                status: row[5].text(),
                verification: row[6].opt_text(),
                verified_at: row[7].opt_int(),
                postback_attempts: row[8].int(),
                postback_error: row[9].opt_text(),
                outcome: row[10].opt_text(),
                outcome_detail: row[11].opt_text(),
            })
            .collect()
    }

    /// Waits up to `wait` until the inbox satisfies `done`; returns it.
    pub async fn wait_until(
        &self,
        what: &str,
        wait: Duration,
        done: impl Fn(&[InboxRow]) -> bool,
    ) -> Vec<InboxRow> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let rows = self.inbox();
            if done(&rows) {
                return rows;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {rows:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the inbox holds at least `count` rows; returns them all.
    pub async fn wait_inbox(&self, count: usize) -> Vec<InboxRow> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let rows = self.inbox();
            if rows.len() >= count {
                return rows;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {count} inbox rows: {rows:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Now in unix seconds, as the merchant reads it.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}
