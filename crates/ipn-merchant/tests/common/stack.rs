//! A whole stack for a test: a real gateway on its test clock, the shop's
//! account there with one endpoint, and the real merchant server following
//! the gateway's clock; with the calls tests make on them.

use std::time::Duration;

use ipn_merchant::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Account, Bound, InboxRow, TestGateway, TestMerchant, WAIT};

pub const VISA: &str = "4242 4242 4242 4242";
pub const DAY: u64 = 24 * 3600;

pub fn card(number: &str) -> Value {
    json!({"card_number": number})
}

pub struct Stack {
    pub gw: TestGateway,
    pub account: Account,
    pub shop: TestMerchant,
    /// The shop's endpoint at the gateway.
    pub endpoint_id: String,
    /// The endpoint's signing secret, which the shop accepts.
    pub secret: String,
}

impl Stack {
    /// A stack whose endpoint (of `dialect`, for `payment.*` and
    /// `subscription.*`) goes to the shop's receiver, or to `target` when
    /// given (a recorder, so the test hands the shop the messages itself);
    /// `adjust` then tunes the shop's configuration.
    pub async fn start(
        dialect: &str,
        target: Option<String>,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let gw = TestGateway::start().await;
        let account = gw.account("shop").await;
        let bound = Bound::new().await;
        let path = if dialect == "paypal" {
            "/ipn"
        } else {
            "/webhooks"
        };
        let url = target.unwrap_or_else(|| format!("{}{path}", bound.url));
        let (endpoint_id, secret) = gw
            .endpoint(
                &account,
                json!({"url": url, "dialect": dialect, "events": ["payment.*", "subscription.*"]}),
            )
            .await;
        let merchant_id = account.id.clone();
        let clock = gw.gateway.clock();
        let shop_endpoint = endpoint_id.clone();
        let shop = TestMerchant::configured(bound, &gw.url, &account.key, &secret, |config| {
            config.merchant_id = Some(merchant_id);
            config.endpoint_id = Some(shop_endpoint);
            // The shop follows the gateway's test clock.
            config.clock = ipn_merchant::clock::Clock::from_fn(move || clock.now());
            adjust(config);
        })
        .await;
        Self {
            gw,
            account,
            shop,
            endpoint_id,
            secret,
        }
    }

    /// Disables or enables the shop's endpoint at the gateway (`action` is
    /// `disable` or `enable`).
    pub async fn endpoint_action(&self, action: &str) {
        let (status, body) = self
            .gw
            .post(
                &self.account.key,
                &format!("/v1/endpoints/{}/{action}", self.endpoint_id),
                json!({}),
            )
            .await;
        assert!(status.is_success(), "{action}: {body}");
    }

    /// Creates an order for ann@example.com; returns its id and total.
    pub async fn order(&self, items: Value) -> (String, i64) {
        let (status, order) = self
            .shop
            .post_json(
                "/api/orders",
                &json!({"items": items, "customer_email": "ann@example.com"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
        (
            order["id"].as_str().unwrap().to_owned(),
            order["total"]["amount"].as_i64().unwrap(),
        )
    }

    /// Pays `amount` USD for `invoice` at the gateway with `method`;
    /// returns the payment.
    pub async fn pay(&self, invoice: &str, amount: i64, method: Value) -> Value {
        let (status, payment) = self
            .gw
            .post(
                &self.account.key,
                "/v1/payments",
                json!({
                    "amount": amount,
                    "currency": "USD",
                    "invoice": invoice,
                    "payer": {"email": "ann@example.com", "name": "Ann Smith"},
                    "payment_method": method,
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{payment}");
        payment
    }

    /// An operation on a payment (`refunds`, `reverse`, …) at the gateway.
    pub async fn operate(&self, payment: &str, operation: &str, body: Value) -> Value {
        let (status, answer) = self
            .gw
            .post(
                &self.account.key,
                &format!("/v1/payments/{payment}/{operation}"),
                body,
            )
            .await;
        assert!(status.is_success(), "{operation}: {status} {answer}");
        answer
    }

    /// Moves the gateway's test clock (which the shop follows) on.
    pub async fn advance(&self, seconds: u64) {
        let (status, body) = self
            .gw
            .post(
                super::ADMIN_KEY,
                "/v1/test/clock/advance",
                json!({"seconds": seconds}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Waits until the subscription is `status` with `emails` emails sent;
    /// returns it.
    pub async fn subscription(&self, id: &str, status: &str, emails: usize) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (code, body) = self
                .shop
                .get_json(&format!("/api/subscriptions/{id}"))
                .await;
            let sent = body["emails"].as_array().map_or(0, |emails| {
                emails.iter().filter(|e| e["status"] == "sent").count()
            });
            if code == StatusCode::OK && body["status"] == status && sent == emails {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for subscription {id} to be {status} with {emails} emails: {code} {body:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `GET /api/orders/{order}`.
    pub async fn get_order(&self, order: &str) -> Value {
        let (status, body) = self.shop.get_json(&format!("/api/orders/{order}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Waits up to [`WAIT`] until the order passes `check`; returns it.
    pub async fn wait_order(
        &self,
        order: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let body = self.get_order(order).await;
            if check(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for order {order} to be {what}: {body:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits up to [`WAIT`] until the order is `status` with `emails`
    /// emails, all sent; returns it.
    pub async fn settled(&self, order: &str, status: &str, emails: usize) -> Value {
        self.settled_within(order, status, emails, WAIT).await
    }

    /// [`Stack::settled`], waiting up to `wait`.
    pub async fn settled_within(
        &self,
        order: &str,
        status: &str,
        emails: usize,
        wait: Duration,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let body = self.get_order(order).await;
            let all = body["emails"].as_array().unwrap();
            if body["status"] == status
                && all.len() == emails
                && all.iter().all(|e| e["status"] == "sent")
            {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for order {order} to be {status} with {emails} emails sent: {body:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The events the gateway made for this account, oldest first.
    pub async fn events(&self) -> Vec<Value> {
        let (status, body) = self.gw.get(&self.account.key, "/v1/events?limit=100").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].as_array().unwrap().clone()
    }

    /// Waits until at least `messages` are in the inbox and none waits for
    /// the handler; returns the inbox.
    pub async fn quiet(&self, messages: usize) -> Vec<InboxRow> {
        self.shop
            .wait_until("every message handled", WAIT, |rows| {
                rows.len() >= messages && rows.iter().all(|row| row.outcome.is_some())
            })
            .await
    }
}

/// The kinds of an order's emails, oldest first.
pub fn email_kinds(order: &Value) -> Vec<String> {
    order["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// Each download's state and, when revoked, why.
pub fn download_states(order: &Value) -> Vec<(String, Option<String>)> {
    order["downloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["state"].as_str().unwrap().to_owned(),
                d["revoked_reason"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

impl Stack {
    /// Hands the shop a message recorded on its way (at a recorder the
    /// endpoint pointed to) on `path`, with its signature headers; returns
    /// the shop's answer.
    pub async fn hand(&self, path: &str, message: &ipn_testkit::Recorded) -> (StatusCode, String) {
        let headers: Vec<(&str, &str)> = [
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "content-type",
        ]
        .into_iter()
        .filter_map(|name| message.header(name).map(|value| (name, value)))
        .collect();
        self.shop.post(path, &headers, message.body.to_vec()).await
    }
}
