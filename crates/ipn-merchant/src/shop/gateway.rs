//! The gateway's checkout API, as the shop calls it: `POST
//! /v1/checkout/sessions` with the merchant's key.
//!
//! Only a 201 carrying an `id` and a `url` is a session. Anything else
//! (refused connection, timeout, a 4xx or 5xx, a body that is not a
//! session) is a [`CheckoutError`], which the shop answers with 502.

use std::time::Duration;

use anyhow::Context as _;
use ipn_core::billing::Plan;
use ipn_core::payment::Item;
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use crate::config::GatewayKey;

/// Longest wait for the gateway, connecting included: the customer is
/// waiting on the other side of this call.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an error answer that is read and quoted.
const MAX_ERROR_BODY: usize = 4096;

/// What the gateway is asked for. The amount goes with the items so the
/// gateway checks that it is their total: the shop and the gateway can
/// never disagree on what the customer pays.
#[derive(Debug, Serialize)]
pub struct NewSession<'a> {
    pub invoice: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub items: Vec<Item>,
    pub customer_email: &'a str,
    /// Billing terms: the session starts a subscription charging `amount`
    /// every period instead of taking one payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription: Option<Plan>,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
}

/// A session the gateway created.
#[derive(Debug, Clone, Deserialize)]
pub struct Session {
    pub id: String,
    /// The customer's payment page.
    pub url: String,
    /// The gateway's id of this shop's merchant: payments for the order
    /// must be made to it.
    pub merchant_id: String,
}

/// Why no session was had.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("the gateway could not be reached: {0}")]
    Unreachable(String),
    #[error("the gateway did not answer within {} s", TIMEOUT.as_secs())]
    Timeout,
    #[error("the gateway refused the checkout session (HTTP {status}): {message}")]
    Refused { status: StatusCode, message: String },
    #[error("the gateway's answer is not a checkout session: {0}")]
    Malformed(String),
}

impl From<reqwest::Error> for CheckoutError {
    fn from(error: reqwest::Error) -> Self {
        if error.is_timeout() {
            Self::Timeout
        } else {
            Self::Unreachable(describe(&error))
        }
    }
}

/// A client of one gateway's checkout API; cheap to clone.
#[derive(Debug, Clone)]
pub struct Checkout {
    client: reqwest::Client,
    url: Url,
    key: GatewayKey,
}

impl Checkout {
    pub fn new(gateway_url: &str, key: GatewayKey) -> anyhow::Result<Self> {
        let base = format!("{}/", gateway_url.trim_end_matches('/'));
        let url = Url::parse(&base)
            .and_then(|base| base.join("v1/checkout/sessions"))
            .with_context(|| format!("gateway_url {gateway_url:?}"))?;
        let client = reqwest::Client::builder()
            // The API answers directly; a redirect could carry the key to a
            // host nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .user_agent(concat!("ipn-merchant/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the checkout HTTP client")?;
        Ok(Self { client, url, key })
    }

    /// Creates a session. The order id (the invoice) doubles as the
    /// `Idempotency-Key`, so a request sent twice on its way (a proxy's
    /// retry) still makes one session for the order.
    pub async fn create(&self, session: &NewSession<'_>) -> Result<Session, CheckoutError> {
        let body = serde_json::to_vec(session)
            .map_err(|e| CheckoutError::Malformed(format!("encoding the request: {e}")))?;
        let response = self
            .client
            .post(self.url.clone())
            .bearer_auth(self.key.reveal())
            .header("content-type", "application/json")
            .header("idempotency-key", session.invoice)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if status != StatusCode::CREATED {
            return Err(CheckoutError::Refused {
                status,
                message: error_message(&bytes),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| CheckoutError::Malformed(e.to_string()))
    }
}

/// The gateway's `{"error": {"message"}}`, or the start of whatever it sent.
fn error_message(body: &[u8]) -> String {
    let parsed: Option<String> = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned));
    parsed.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&body[..body.len().min(MAX_ERROR_BODY)]);
        let text = text.trim();
        if text.is_empty() {
            "no explanation given".to_owned()
        } else {
            text.to_owned()
        }
    })
}

/// The whole chain of causes: reqwest's top-level message alone ("error
/// sending request") does not say what went wrong.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
