//! Orders: reading a cart, pricing it against the catalog, creating it
//! with its checkout session, and the JSON shape clients see.
//!
//! An order is stored only AFTER the gateway created its checkout session:
//! if the gateway cannot be reached or refuses, the answer is 502 and
//! nothing is stored, so there is never a half order to clean up or retry.
//! The reverse failure (session made, then the store fails) leaves a session
//! at the gateway no order refers to; it expires unpaid after 24 h, and a
//! payment for it would come in as an unknown invoice, which the handler
//! flags rather than applies.

use ipn_core::billing::Plan;
use ipn_core::money::Money;
use ipn_core::payment::Item;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::gateway::NewSession;
use super::{Shop, ShopError};
use crate::catalog::Catalog;
use crate::clock::millis;
use crate::downloads::GrantState;
use crate::handler::subscriptions::has_access;
use crate::storage::views::OrderDetails;
use crate::storage::{EmailRow, Line, Order, SubscriptionRow};

/// The most units of one product in an order.
pub const MAX_QUANTITY: i64 = 100;
/// Where every order starts; the notification handler moves it on.
pub const CREATED: &str = "created";

/// `POST /api/orders`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    pub items: Vec<RequestLine>,
    pub customer_email: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestLine {
    pub sku: String,
    /// Signed and wide so that 0, -1 and 10⁹ get the range message rather
    /// than a serde type error.
    pub quantity: i64,
}

pub fn parse_request(body: &[u8]) -> Result<OrderRequest, ShopError> {
    serde_json::from_slice(body).map_err(|e| ShopError::invalid(format!("request body: {e}")))
}

/// A cart priced from the catalog.
#[derive(Debug)]
pub struct Cart {
    pub lines: Vec<Line>,
    pub total: Money,
    /// The billing terms when the cart is a subscription (its total is then
    /// charged every period).
    pub plan: Option<Plan>,
}

/// The lines of a cart, priced from the catalog, and their total: checked
/// arithmetic in minor units, so an overflow is refused, never wrapped. A
/// subscription is ordered alone and once: one checkout starts one
/// subscription at one price.
pub fn price(catalog: &Catalog, items: &[RequestLine]) -> Result<Cart, ShopError> {
    if items.is_empty() {
        return Err(ShopError::invalid(
            "items: an order needs at least one item",
        ));
    }
    let mut total = Money::new(0, catalog.currency());
    let mut lines: Vec<Line> = Vec::with_capacity(items.len());
    let mut plan = None;
    for (index, item) in items.iter().enumerate() {
        let at = index + 1;
        let product = catalog.product(&item.sku).ok_or_else(|| {
            ShopError::invalid(format!("items[{at}]: no product with sku {:?}", item.sku))
        })?;
        if product.subscription.is_some() && (items.len() > 1 || item.quantity != 1) {
            return Err(ShopError::invalid(format!(
                "items[{at}]: {:?} is a subscription: order it on its own, quantity 1",
                item.sku
            )));
        }
        plan = plan.or(product.subscription);
        if lines.iter().any(|line| line.sku == item.sku) {
            return Err(ShopError::invalid(format!(
                "items[{at}]: sku {:?} is listed twice; give its total quantity once",
                item.sku
            )));
        }
        let quantity = u32::try_from(item.quantity)
            .ok()
            .filter(|q| (1..=MAX_QUANTITY).contains(&i64::from(*q)))
            .ok_or_else(|| {
                ShopError::invalid(format!(
                    "items[{at}]: quantity must be 1 to {MAX_QUANTITY}, not {}",
                    item.quantity
                ))
            })?;
        let too_large = || ShopError::invalid("the order's total is too large");
        let line_total = product
            .price
            .checked_mul(quantity)
            .map_err(|_| too_large())?;
        total = total.checked_add(line_total).map_err(|_| too_large())?;
        lines.push(Line {
            sku: product.sku.clone(),
            name: product.name.clone(),
            kind: product.kind,
            quantity,
            unit_price: product.price,
            total: line_total,
        });
    }
    Ok(Cart { lines, total, plan })
}

/// The rule the gateway and the mailer share (`ipn_core::email::check`),
/// checked here so a typo is a 400 from the shop, not a 502 or a mail that
/// can never be sent.
pub fn check_email(email: &str) -> Result<(), ShopError> {
    ipn_core::email::check(email).map_err(|e| ShopError::invalid(format!("customer_email {e}")))
}

/// Checks and prices the request, creates the checkout session, then
/// stores the order (see the module's note on why in that order).
pub async fn create(shop: &Shop, request: OrderRequest) -> Result<Order, ShopError> {
    let Cart { lines, total, plan } = price(&shop.catalog, &request.items)?;
    check_email(&request.customer_email)?;
    let now = OffsetDateTime::now_utc();
    let id = format!("ord_{}", ulid::Ulid::new());
    let page = format!("{}/orders/{id}", shop.public_url);
    let session = shop
        .checkout
        .create(&NewSession {
            invoice: &id,
            amount: total.minor(),
            currency: total.currency().code(),
            items: lines
                .iter()
                .map(|line| Item {
                    sku: line.sku.clone(),
                    name: line.name.clone(),
                    quantity: line.quantity,
                    unit_amount: line.unit_price.minor(),
                    kind: line.kind,
                })
                .collect(),
            customer_email: &request.customer_email,
            subscription: plan,
            // Paid or not, the customer comes back to the order's page,
            // which shows where it stands.
            success_url: &page,
            cancel_url: &page,
        })
        .await?;
    let order = Order {
        id,
        status: CREATED.to_owned(),
        customer_email: request.customer_email,
        total,
        lines,
        checkout_session_id: session.id,
        checkout_url: session.url,
        merchant_id: Some(session.merchant_id),
        created_at: millis(now),
        paid_at: None,
        fulfilled_at: None,
        plan,
        subscription_id: None,
    };
    shop.writer.create_order(order.clone()).await?;
    tracing::info!(order.id = order.id, total = %order.total, "order created");
    Ok(order)
}

/// `{"data": [product…]}`.
pub fn catalog_view(catalog: &Catalog) -> Value {
    let data: Vec<Value> = catalog
        .products()
        .iter()
        .map(|p| {
            json!({
                "sku": p.sku,
                "name": p.name,
                "kind": p.kind,
                "price": p.price,
                "description": p.description,
                "subscription": p.subscription,
            })
        })
        .collect();
    json!({ "data": data })
}

/// An order as the API shows it: `payments`, `flags`, `emails` and
/// `downloads` are always present (empty before the first notice).
pub fn view(order: &Order) -> Value {
    details_view(
        &OrderDetails {
            order: order.clone(),
            payments: Vec::new(),
            flags: Vec::new(),
            emails: Vec::new(),
            downloads: Vec::new(),
            subscription: None,
        },
        OffsetDateTime::UNIX_EPOCH,
    )
}

/// An order with what happened to it, as `GET /api/orders/{id}` shows it.
pub fn details_view(details: &OrderDetails, now: OffsetDateTime) -> Value {
    let order = &details.order;
    let items: Vec<Value> = order
        .lines
        .iter()
        .map(|line| {
            json!({
                "sku": line.sku,
                "name": line.name,
                "kind": line.kind,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "total": line.total,
            })
        })
        .collect();
    let payments: Vec<Value> = details
        .payments
        .iter()
        .map(|p| {
            json!({
                "id": p.txn_id,
                "parent_id": p.parent_id,
                "kind": p.kind,
                "status": p.status,
                "amount": p.amount,
                "currency": p.currency,
                "valid": p.valid,
                "updated_at": rfc3339(p.updated_at),
            })
        })
        .collect();
    let flags: Vec<Value> = details
        .flags
        .iter()
        .map(|f| {
            json!({
                "reason": f.reason,
                "created_at": rfc3339(f.created_at),
                "resolved_at": f.resolved_at.map(rfc3339),
            })
        })
        .collect();
    let emails: Vec<Value> = details
        .emails
        .iter()
        .map(|e| {
            json!({
                "kind": e.kind,
                "to": e.to,
                "subject": e.subject,
                "status": e.status.as_str(),
                "attempts": e.attempts,
                "created_at": rfc3339(e.created_at),
                "sent_at": e.sent_at.map(rfc3339),
            })
        })
        .collect();
    let downloads: Vec<Value> = details
        .downloads
        .iter()
        .map(|g| {
            let (state, reason) = match g.state(now) {
                GrantState::Active => ("active", None),
                GrantState::Expired => ("expired", None),
                GrantState::UsedUp => ("used_up", None),
                GrantState::Revoked { reason } => ("revoked", Some(reason)),
            };
            json!({
                "id": g.id,
                "sku": g.sku,
                "name": g.name,
                "state": state,
                "revoked_reason": reason,
                "uses": g.uses,
                "max_uses": g.max_uses,
                "expires_at": g.expires_at.format(&Rfc3339).ok(),
            })
        })
        .collect();
    json!({
        "id": order.id,
        "status": order.status,
        "total": order.total,
        "items": items,
        "customer_email": order.customer_email,
        "checkout_session_id": order.checkout_session_id,
        "checkout_url": order.checkout_url,
        "created_at": rfc3339(order.created_at),
        "paid_at": order.paid_at.map(rfc3339),
        "fulfilled_at": order.fulfilled_at.map(rfc3339),
        "payments": payments,
        "flags": flags,
        "emails": emails,
        "downloads": downloads,
        "plan": order.plan,
        "subscription": details
            .subscription
            .as_ref()
            .map(|row| subscription_summary(row, millis(now))),
    })
}

/// What an order shows of the subscription it started.
fn subscription_summary(row: &SubscriptionRow, now: i64) -> Value {
    json!({
        "id": row.id,
        "status": row.status.as_str(),
        "access": has_access(row.status, row.paid_through, now),
        "paid_through": row.paid_through.map(rfc3339),
        "cycles_paid": row.cycles_paid,
    })
}

/// A subscription as `GET /api/subscriptions/{id}` shows it, with whether
/// the subscriber has access now.
pub fn subscription_view(row: &SubscriptionRow, emails: &[EmailRow], now: i64) -> Value {
    let emails: Vec<Value> = emails
        .iter()
        .map(|e| json!({"kind": e.kind, "to": e.to, "status": e.status.as_str(), "subject": e.subject}))
        .collect();
    let mut view = subscription_summary(row, now);
    view["customer_email"] = json!(row.customer_email);
    view["order_id"] = json!(row.order_id);
    view["emails"] = json!(emails);
    view
}

/// Milliseconds since the epoch as RFC 3339 in UTC; a stored value out of
/// `time`'s range (never written by this code) shows as the raw number.
fn rfc3339(ms: i64) -> Value {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|at| at.format(&Rfc3339).ok())
        .map_or_else(|| Value::from(ms), Value::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: i64) -> RequestLine {
        RequestLine {
            sku: sku.into(),
            quantity,
        }
    }

    #[test]
    fn a_cart_is_priced_exactly() {
        let catalog = Catalog::demo();
        let Cart { lines, total, plan } =
            price(&catalog, &[line("mug", 3), line("ebook", 1)]).unwrap();
        assert_eq!(plan, None);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].total.minor(), 3 * 1250);
        assert_eq!(total.minor(), 3 * 1250 + 999);
        assert_eq!(total.currency().code(), "USD");
    }

    #[test]
    fn bad_carts_name_the_line() {
        let catalog = Catalog::demo();
        for (items, expected) in [
            (vec![], "at least one"),
            (vec![line("nope", 1)], "items[1]: no product"),
            (vec![line("mug", 1), line("mug", 2)], "items[2]"),
            (vec![line("mug", 0)], "quantity must be 1 to 100, not 0"),
            (vec![line("mug", 101)], "not 101"),
            (vec![line("mug", -1)], "not -1"),
            (vec![line("mug", i64::MAX)], "quantity"),
            (
                vec![line("mug", 1), line("membership", 1)],
                "items[2]: \"membership\" is a subscription: order it on its own, quantity 1",
            ),
            (vec![line("membership", 2)], "on its own, quantity 1"),
        ] {
            let error = price(&catalog, &items).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn a_subscription_is_priced_per_period() {
        let cart = price(&Catalog::demo(), &[line("membership", 1)]).unwrap();
        assert_eq!(cart.total.minor(), 499);
        assert_eq!(cart.plan.unwrap().period(), "month");
    }

    #[test]
    fn emails_are_checked() {
        assert!(check_email("ann@example.com").is_ok());
        for bad in ["", "ann", "@example.com", "ann@example", "a b@example.com"] {
            assert!(check_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
