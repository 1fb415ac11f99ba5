//! Selling a subscription: the shop's catalog product with billing terms
//! becomes an order, the gateway's hosted checkout starts the subscription
//! for it, and the notices tie the subscription to that order, whose page
//! then follows the subscription through renewals and cancellation.

mod common;

use common::stack::{DAY, Stack, VISA};
use ipn_core::billing::Plan;
use ipn_core::money::{Currency, Money};
use ipn_core::payment::ItemKind;
use ipn_core::subscription::Interval;
use ipn_merchant::{Catalog, Product};
use ipn_testkit::Receiver;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Pays the order's checkout page as a customer's browser does; returns
/// where it sends the customer.
async fn pay_checkout(order: &Value, card: &str) -> (StatusCode, String) {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = [
        ("name", "Ann Smith"),
        ("email", "ann@example.com"),
        ("card_number", card),
    ];
    let url = order["checkout_url"].as_str().unwrap();
    let answer = browser.post(url).form(&form).send().await.unwrap();
    let location = answer
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (answer.status(), location)
}

async fn order_membership(stack: &Stack) -> Value {
    order_one(stack, "membership").await
}

async fn order_one(stack: &Stack, sku: &str) -> Value {
    let (status, order) = stack
        .shop
        .post_json(
            "/api/orders",
            &json!({"items": [{"sku": sku, "quantity": 1}],
                    "customer_email": "ann@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    order
}

/// Waits until the order is `status`; returns it.
async fn order_is(stack: &Stack, order: &str, status: &str) -> Value {
    stack
        .wait_order(order, status, |body| body["status"] == status)
        .await
}

/// How many flags the order has, resolved or not.
fn flags(stack: &Stack, order: &str) -> i64 {
    stack
        .shop
        .data
        .value(
            "SELECT COUNT(*) FROM flags WHERE order_id = $1",
            &[order.into()],
        )
        .int()
}

/// Waits until the order's subscription is `status` with `emails` emails.
async fn subscribed(stack: &Stack, order: &str, status: &str, emails: usize) -> Value {
    let what = format!("subscription {status} with {emails} emails sent");
    stack
        .wait_order(order, &what, |body| {
            let sent = body["emails"].as_array().map_or(0, |list| {
                list.iter().filter(|e| e["status"] == "sent").count()
            });
            body["subscription"]["status"] == status && sent == emails
        })
        .await
}

fn kinds(order: &Value) -> Vec<String> {
    order["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_subscription_bought_at_checkout_follows_its_order_in_both_dialects() {
    for dialect in ["standard", "paypal"] {
        let stack = Stack::start(dialect, None, |_| {}).await;
        let order = order_membership(&stack).await;
        let id = order["id"].as_str().unwrap();
        assert_eq!(order["plan"]["interval"], "month", "{order:#}");
        assert_eq!(order["total"]["amount"], 499);
        assert_eq!(order["subscription"], Value::Null);
        // The gateway's session starts a subscription for the order.
        let session = order["checkout_session_id"].as_str().unwrap();
        let (status, body) = stack
            .gw
            .get(
                &stack.account.key,
                &format!("/v1/checkout/sessions/{session}"),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["mode"], "subscription", "{body:#}");
        assert_eq!(body["invoice"], id);

        let (status, location) = pay_checkout(&order, VISA).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{dialect}");
        assert!(location.contains(&format!("/orders/{id}")), "{location}");

        // Signup and the first month paid: the order is paid, one email.
        let paid = subscribed(&stack, id, "active", 1).await;
        assert_eq!(paid["status"], "paid", "{dialect}: {paid:#}");
        assert!(paid["paid_at"].is_string());
        assert_eq!(paid["subscription"]["access"], true);
        assert_eq!(paid["subscription"]["cycles_paid"], 1, "{dialect}");
        assert_eq!(kinds(&paid), ["subscription_started"], "{dialect}");
        let sub_id = paid["subscription"]["id"].as_str().unwrap().to_owned();
        let (_, sub) = stack
            .shop
            .get_json(&format!("/api/subscriptions/{sub_id}"))
            .await;
        assert_eq!(sub["order_id"], id, "{sub:#}");
        // The order's page says so.
        let page = reqwest::get(format!("{}/orders/{id}", stack.shop.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("Subscribed — thank you!"), "{page}");
        assert!(page.contains("4.99 USD / month"), "{page}");
        assert!(page.contains("data-status=\"active\""), "{page}");

        // A month on: renewed, on the same order.
        stack.advance(31 * DAY).await;
        let renewed = subscribed(&stack, id, "active", 2).await;
        assert_eq!(renewed["subscription"]["cycles_paid"], 2, "{dialect}");
        assert_eq!(
            kinds(&renewed),
            ["subscription_started", "subscription_renewed"],
            "{dialect}"
        );

        // Canceled at the period's end: access to then; the order stays paid.
        let (status, body) = stack
            .gw
            .post(
                &stack.account.key,
                &format!("/v1/subscriptions/{sub_id}/cancel"),
                json!({"at_period_end": true}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let canceled = subscribed(&stack, id, "canceled", 3).await;
        assert_eq!(canceled["subscription"]["access"], true, "{dialect}");
        assert_eq!(canceled["status"], "paid");
        assert_eq!(canceled["flags"], json!([]), "{dialect}");
        // Mark fulfilled has nothing to ship.
        assert_eq!(stack.shop.count("flags"), 0);
    }
}

#[tokio::test]
async fn a_declined_card_starts_nothing_and_the_order_waits() {
    let stack = Stack::start("standard", None, |_| {}).await;
    let order = order_membership(&stack).await;
    let id = order["id"].as_str().unwrap();
    let (status, _) = pay_checkout(&order, "4000 0000 0000 0002").await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    // A good card then: the session was still open.
    let (status, _) = pay_checkout(&order, VISA).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let paid = subscribed(&stack, id, "active", 1).await;
    assert_eq!(paid["status"], "paid");
}

#[tokio::test]
async fn a_subscription_that_does_not_match_its_order_flags_it() {
    let stack = Stack::start("standard", None, |_| {}).await;
    let (mug, _) = stack.order(json!([{"sku": "mug", "quantity": 1}])).await;
    let membership = order_membership(&stack).await;
    let membership = membership["id"].as_str().unwrap();
    let subscribe = |invoice: String, amount: i64| {
        let stack = &stack;
        async move {
            let (status, body) = stack
                .gw
                .post(
                    &stack.account.key,
                    "/v1/subscriptions",
                    json!({
                        "amount": amount, "currency": "USD", "interval": "month",
                        "invoice": invoice,
                        "payer": {"email": "ann@example.com", "name": "Ann Smith"},
                        "payment_method": {"card_number": VISA},
                    }),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            body["id"].as_str().unwrap().to_owned()
        }
    };
    // Made through the API for an order that is not a subscription.
    let first = subscribe(mug.clone(), 1250).await;
    let flagged = stack.settled(&mug, "flagged", 0).await;
    let reason = flagged["flags"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("not for a subscription"), "{reason}");
    assert!(reason.contains(&first), "{reason}");
    // For the subscription order, at another price.
    subscribe(membership.to_owned(), 100).await;
    let flagged = stack.settled(membership, "flagged", 0).await;
    let reason = flagged["flags"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("charges 1.00 USD a period"), "{reason}");
    assert_eq!(flagged["subscription"], Value::Null, "nothing tied");
    // A one-time payment for the subscription order.
    stack
        .pay(membership, 499, json!({"card_number": VISA}))
        .await;
    let one_time = "a one-time payment for an order that is a subscription";
    stack
        .wait_order(membership, "flagged for a one-time payment", |body| {
            body["flags"].to_string().contains(one_time)
        })
        .await;
    // Decided once: the signup and the first payment flagged the mug order
    // once, and a renewal does not flag it again.
    stack.quiet(5).await;
    assert_eq!(flags(&stack, &mug), 1);
    stack.advance(31 * DAY).await;
    stack.subscription(&first, "active", 2).await;
    stack.quiet(7).await;
    assert_eq!(flags(&stack, &mug), 1);
    // The message that raised it says so, tied to the order.
    let flagged_messages = stack
        .shop
        .inbox()
        .into_iter()
        .filter(|row| row.outcome.as_deref() == Some("flagged"))
        .count();
    assert!(flagged_messages >= 2, "{flagged_messages}");
    // A subscription naming no order of this shop is simply a subscription.
    let other = subscribe("elsewhere-42".to_owned(), 700).await;
    let sub = stack.subscription(&other, "active", 1).await;
    assert_eq!(sub["order_id"], Value::Null);
    let flagged_other = stack
        .shop
        .data
        .value(
            "SELECT COUNT(*) FROM flags WHERE reason LIKE '%' || $1 || '%'",
            &[other.as_str().into()],
        )
        .int();
    assert_eq!(flagged_other, 0);
}

#[tokio::test]
async fn the_first_payment_heard_before_the_signup_is_not_a_renewal_in_both_dialects() {
    for dialect in ["standard", "paypal"] {
        let recorder = Receiver::start().await.unwrap();
        let stack = Stack::start(dialect, Some(recorder.url("/hook")), |_| {}).await;
        let order = order_membership(&stack).await;
        let id = order["id"].as_str().unwrap();
        let (status, _) = pay_checkout(&order, VISA).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let mut messages = recorder.wait_for(2, common::WAIT).await;
        // The period's payment first, then the signup.
        messages.sort_by_key(|m| {
            let body = m.body_text();
            !(body.contains("subscription.payment") || body.contains("txn_type=subscr_payment"))
        });
        let path = if dialect == "paypal" {
            "/ipn"
        } else {
            "/webhooks"
        };
        for message in &messages {
            let (status, answer) = stack.hand(path, message).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
        }
        subscribed(&stack, id, "active", 1).await;
        stack.quiet(2).await;
        let paid = stack.get_order(id).await;
        assert_eq!(kinds(&paid), ["subscription_started"], "{dialect}");
        assert_eq!(paid["status"], "paid", "{dialect}");
        assert_eq!(paid["subscription"]["cycles_paid"], 1, "{dialect}");
    }
}

#[tokio::test]
async fn a_trial_is_subscribed_its_first_charge_paid_and_a_refund_shows_on_the_order() {
    let club = Product {
        sku: "club".into(),
        name: "Club".into(),
        kind: ItemKind::Digital,
        price: Money::new(700, Currency::USD),
        description: "Monthly, first week free.".into(),
        download: None,
        subscription: Some(Plan::new(Interval::Month, 1, 7, None).unwrap()),
    };
    let stack = Stack::start("standard", None, |config| {
        config.catalog = Catalog::new(vec![club]).unwrap();
    })
    .await;
    let order = order_one(&stack, "club").await;
    let id = order["id"].as_str().unwrap();
    let (status, _) = pay_checkout(&order, VISA).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // Started, nothing charged: subscribed, not paid.
    let trial = order_is(&stack, id, "subscribed").await;
    assert_eq!(trial["paid_at"], Value::Null, "{trial:#}");
    assert_eq!(trial["subscription"]["status"], "active");
    assert_eq!(trial["subscription"]["cycles_paid"], 0);
    assert_eq!(trial["payments"], json!([]));
    // The trial ends and the first period is charged: paid.
    stack.advance(8 * DAY).await;
    let paid = order_is(&stack, id, "paid").await;
    assert!(paid["paid_at"].is_string(), "{paid:#}");
    let payments = paid["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 1, "{paid:#}");
    let charge = payments[0]["id"].as_str().unwrap();
    // The merchant refunds it: the order says so.
    stack.operate(charge, "refunds", json!({})).await;
    let refunded = order_is(&stack, id, "refunded").await;
    assert!(
        refunded["paid_at"].is_string(),
        "paid once, and that stays known"
    );
}

#[tokio::test]
async fn a_declined_renewal_shows_on_the_order_page_and_access_continues() {
    let stack = Stack::start("standard", None, |_| {}).await;
    let order = order_membership(&stack).await;
    let id = order["id"].as_str().unwrap();
    // This card pays the first period and declines every renewal.
    let (status, _) = pay_checkout(&order, "4000 0000 0000 0341").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    subscribed(&stack, id, "active", 1).await;
    stack.advance(31 * DAY).await;
    let past_due = subscribed(&stack, id, "past_due", 2).await;
    assert_eq!(past_due["status"], "paid", "the first period stands");
    assert_eq!(past_due["subscription"]["access"], true);
    let page = reqwest::get(format!("{}/orders/{id}", stack.shop.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<strong>Payment failed</strong>"), "{page}");
    assert!(page.contains("your access continues"), "{page}");
}
