//! The shop's JSON API: the catalog, orders and subscriptions. Its routes
//! and fields are public: scripts rely on them.
//!
//! - `GET /api/products`: the catalog.
//! - `POST /api/orders` (`Content-Type: application/json`, else 415, so a
//!   page elsewhere cannot post one as a "simple" `text/plain` form):
//!   checks and prices the cart, asks the gateway for a hosted checkout
//!   session, stores the order with it, answers 201 with the
//!   `checkout_url` the customer pays at. Orders are limited per client
//!   address (`Config::order_limit`; 429 with `Retry-After` beyond it),
//!   the Buy form's included: each costs a session at the gateway.
//! - `GET /api/orders/{id}`: the order as stored.
//!
//! Handlers are thin: `orders.rs` holds the rules (pricing, validation, the
//! order's JSON shape), `gateway.rs` the call to the gateway.

mod error;
pub mod gateway;
pub mod orders;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ipn_web::throttle::Client;
use serde_json::Value;

pub use error::ShopError;

use self::gateway::Checkout;
use crate::catalog::Catalog;
use crate::storage::{Reader, views};
use crate::writer::Writer;

/// What the shop's routes share.
#[derive(Debug, Clone)]
pub struct Shop {
    pub catalog: Arc<Catalog>,
    pub checkout: Checkout,
    pub writer: Writer,
    pub reader: Reader,
    /// This shop's base URL as customers reach it, without a trailing `/`:
    /// the gateway sends them back to `{public_url}/orders/{id}`.
    pub public_url: String,
    /// The body limit the router applies, to name it in a 413.
    pub body_limit: usize,
    /// What "now" is for access and expiry shown to clients.
    pub clock: crate::clock::Clock,
    /// Orders per client address (`Config::order_limit`).
    pub order_limit: Arc<ipn_web::throttle::Throttle<IpAddr>>,
}

impl Shop {
    /// Counts an order attempt from `client`; `Err` when it is over the
    /// limit. A client without an address (a router served without
    /// `ConnectInfo`) is not limited.
    pub fn admit_order(&self, client: Client) -> Result<(), ShopError> {
        match client.0 {
            Some(ip) => {
                self.order_limit
                    .take(ip, Instant::now())
                    .map_err(|wait| ShopError::TooManyOrders {
                        retry_after: ipn_web::throttle::retry_after(wait),
                    })
            }
            None => Ok(()),
        }
    }
}

pub fn router(state: Shop) -> Router {
    Router::new()
        .route("/api/products", get(products))
        .route("/api/orders", post(create_order))
        .route("/api/orders/{id}", get(order))
        .route("/api/subscriptions/{id}", get(subscription))
        .with_state(state)
}

async fn products(State(shop): State<Shop>) -> Response {
    json(StatusCode::OK, &orders::catalog_view(&shop.catalog))
}

async fn create_order(
    State(shop): State<Shop>,
    client: Client,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ShopError> {
    if !is_json(&headers) {
        return Err(ShopError::NotJson);
    }
    shop.admit_order(client)?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ShopError::TooLarge {
                limit: shop.body_limit,
            }
        } else {
            ShopError::invalid(rejection.body_text())
        }
    })?;
    let request = orders::parse_request(&body)?;
    let order = orders::create(&shop, request).await?;
    Ok(json(StatusCode::CREATED, &orders::view(&order)))
}

async fn order(State(shop): State<Shop>, Path(id): Path<String>) -> Result<Response, ShopError> {
    let details = shop
        .reader
        .read({
            let id = id.clone();
            move |r| views::order_details(r, &id)
        })
        .await
        .map_err(ShopError::Read)?
        .ok_or(ShopError::OrderNotFound(id))?;
    Ok(json(
        StatusCode::OK,
        &orders::details_view(&details, shop.clock.now()),
    ))
}

async fn subscription(
    State(shop): State<Shop>,
    Path(id): Path<String>,
) -> Result<Response, ShopError> {
    let (row, emails) = shop
        .reader
        .read({
            let id = id.clone();
            move |r| views::subscription(r, &id)
        })
        .await
        .map_err(ShopError::Read)?
        .ok_or(ShopError::SubscriptionNotFound(id))?;
    Ok(json(
        StatusCode::OK,
        &orders::subscription_view(&row, &emails, shop.clock.now_ms()),
    ))
}

/// Whether the request's `Content-Type` is `application/json` (with any
/// parameters, in any case).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

fn json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}
