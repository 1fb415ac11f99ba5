//! Refunds checked against their order whichever way they come: one that
//! arrives before its payment is held and then checked exactly as it would
//! have been after it, and an order paid twice stays paid until both
//! payments are given back. A real gateway and a real merchant server; the
//! state is read back from the shop's API, as a client would.

mod common;

use common::WAIT;
use common::stack::{Stack, VISA, card};
use ipn_testkit::{Receiver, Recorded};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "correct horse";

/// The shop's stack, with /admin on. The account's one standard endpoint
/// goes to the shop, or to a recorder so that the test hands the shop the
/// messages itself, in the order it wants.
async fn start(recorder: Option<&Receiver>) -> Stack {
    Stack::start("standard", recorder.map(|r| r.url("/hook")), |config| {
        config.admin_password = Some(ipn_merchant::Hidden::new(ADMIN_PASSWORD));
    })
    .await
}

/// Two mugs and the e-book.
fn items() -> Value {
    json!([{"sku": "mug", "quantity": 2}, {"sku": "ebook", "quantity": 1}])
}

impl Stack {
    /// Pays `amount` USD for `invoice` by card; returns the payment's id.
    async fn pay_card(&self, invoice: &str, amount: i64) -> String {
        let payment = self.pay(invoice, amount, card(VISA)).await;
        payment["id"].as_str().unwrap().to_owned()
    }

    /// Refunds `payment` at the gateway (`{}`: all that is left).
    async fn refund(&self, payment: &str, body: Value) {
        self.operate(payment, "refunds", body).await;
    }

    /// Hands the shop one standard message, with its signature headers.
    async fn deliver(&self, message: &Recorded) {
        let (status, answer) = self.hand("/webhooks", message).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    /// Waits until the message with `webhook_id` is handled with `outcome`.
    async fn outcome(&self, webhook_id: &str, outcome: &str) -> common::InboxRow {
        let rows = self
            .shop
            .wait_until(&format!("{webhook_id} {outcome}"), WAIT, |rows| {
                rows.iter().any(|row| {
                    row.webhook_id.as_deref() == Some(webhook_id)
                        && row.outcome.as_deref() == Some(outcome)
                })
            })
            .await;
        rows.into_iter()
            .find(|row| row.webhook_id.as_deref() == Some(webhook_id))
            .unwrap()
    }

    /// The ids of the order's open flags, as the admin page links them.
    fn open_flags(&self, order: &str) -> Vec<i64> {
        self.shop
            .data
            .rows(
                "SELECT id FROM flags WHERE order_id = $1 AND resolved_at IS NULL",
                &[order.into()],
            )
            .iter()
            .map(|row| row[0].int())
            .collect()
    }

    /// Resolves a flag from /admin, as the operator's browser would.
    async fn resolve(&self, flag: i64) {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let answer = client
            .post(format!("{}/admin/flags/{flag}/resolve", self.shop.url))
            .header("origin", self.shop.url.clone())
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    }
}

fn email_kinds(order: &Value) -> Vec<&str> {
    order["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect()
}

fn download_states(order: &Value) -> Vec<(&str, Option<&str>)> {
    order["downloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["state"].as_str().unwrap(), d["revoked_reason"].as_str()))
        .collect()
}

/// kind, status, amount, currency and validity of each payment, in the
/// API's order, and of each flag its reason and whether it is resolved.
fn payments_and_flags(order: &Value) -> (Vec<Value>, Vec<Value>) {
    let payments = order["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            json!([
                p["kind"],
                p["status"],
                p["amount"],
                p["currency"],
                p["valid"]
            ])
        })
        .collect();
    let flags = order["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| json!([f["reason"], f["resolved_at"].is_string()]))
        .collect();
    (payments, flags)
}

/// The recorded message of `event_type` for `order`.
fn message_of(recorded: &[Recorded], order: &str, event_type: &str) -> Recorded {
    let mine: Vec<&Recorded> = recorded
        .iter()
        .filter(|message| {
            let event: Value = serde_json::from_slice(&message.body).unwrap();
            event["type"] == event_type && event["data"]["invoice"] == order
        })
        .collect();
    assert_eq!(mine.len(), 1, "{event_type} for {order}: {recorded:#?}");
    mine[0].clone()
}

/// A copy of the refund `message` that says EUR instead of USD, as a new
/// event (its own id, so it is not taken for the original), signed with
/// `secret` now.
fn in_euros(message: &Recorded, secret: &str) -> Recorded {
    altered(
        message,
        secret,
        &[("\"currency\":\"USD\"", "\"currency\":\"EUR\"")],
    )
}

/// A copy of `message` with each `(from, to)` replaced once (each must be
/// there exactly once), as a new event with its own id, signed with
/// `secret` now.
fn altered(message: &Recorded, secret: &str, changes: &[(&str, &str)]) -> Recorded {
    use ipn_core::standard::{Signer, WebhookSecret};
    let old_id = message.header("webhook-id").unwrap();
    let new_id = ipn_core::id::EventId::generate(time::OffsetDateTime::now_utc()).to_string();
    let mut text = message.body_text();
    let old_field = format!("\"id\":\"{old_id}\"");
    for (from, to) in changes
        .iter()
        .copied()
        .chain([(old_field.as_str(), format!("\"id\":\"{new_id}\"").as_str())])
    {
        assert_eq!(text.matches(from).count(), 1, "{from} in {text}");
        text = text.replacen(from, to, 1);
    }
    let body = text.into_bytes();
    let timestamp = common::unix_now();
    let signer = Signer::Secret(WebhookSecret::parse(secret).unwrap());
    let mut copy = message.clone();
    copy.headers
        .insert("webhook-id", new_id.as_str().parse().unwrap());
    copy.headers.insert(
        "webhook-signature",
        signer.sign(&new_id, timestamp, &body).parse().unwrap(),
    );
    copy.headers
        .insert("webhook-timestamp", timestamp.to_string().parse().unwrap());
    copy.body = body.into();
    copy
}

#[tokio::test]
async fn a_refund_in_another_currency_is_flagged_whether_it_comes_before_or_after_its_payment() {
    let recorder = Receiver::start().await.unwrap();
    let stack = start(Some(&recorder)).await;
    // Two orders, each paid and refunded in part at the gateway.
    let mut orders = Vec::new();
    for _ in 0..2 {
        let (order, total) = stack.order(items()).await;
        let payment = stack.pay_card(&order, total).await;
        stack.refund(&payment, json!({"amount": 500})).await;
        orders.push((order, total));
    }
    let recorded = recorder.wait_for(4, WAIT).await;
    assert_eq!(recorded.len(), 4, "{recorded:#?}");

    // Order A: the payment, then the refund in euros. Order B: the refund
    // in euros first (held: its payment is unknown), then the payment.
    let mut refund_ids = Vec::new();
    for (i, (order, _)) in orders.iter().enumerate() {
        let payment = message_of(&recorded, order, "payment.completed");
        let refund = in_euros(
            &message_of(&recorded, order, "payment.refunded"),
            &stack.secret,
        );
        let refund_id = refund.header("webhook-id").unwrap().to_owned();
        if i == 0 {
            stack.deliver(&payment).await;
            stack.deliver(&refund).await;
        } else {
            stack.deliver(&refund).await;
            let held = stack.outcome(&refund_id, "held").await;
            assert!(
                held.outcome_detail
                    .as_deref()
                    .is_some_and(|d| d.contains("waits for its payment")),
                "{held:#?}"
            );
            stack.deliver(&payment).await;
        }
        refund_ids.push(refund_id);
    }

    let mut finals = Vec::new();
    for ((order, total), refund_id) in orders.iter().zip(&refund_ids) {
        let refund = stack.outcome(refund_id, "flagged").await;
        let detail = refund.outcome_detail.as_deref().unwrap_or_default();
        assert!(detail.contains("EUR"), "{order}: {refund:#?}");
        let body = stack.settled(order, "flagged", 2).await;
        assert_eq!(
            email_kinds(&body),
            ["order_paid", "download_link"],
            "{order}"
        );
        assert_eq!(download_states(&body), [("active", None)], "{order}");
        assert!(body["paid_at"].is_string(), "{order}: {body:#}");
        let (payments, flags) = payments_and_flags(&body);
        assert_eq!(
            payments,
            [
                json!(["charge", "completed", total, "USD", true]),
                json!(["refund", "completed", -500, "EUR", false]),
            ],
            "{order}: {body:#}"
        );
        assert_eq!(
            flags,
            [json!(["paid in EUR, but the order is in USD", false])],
            "{order}: {body:#}"
        );
        finals.push((payments, flags, email_kinds(&body).join(" ")));
    }
    assert_eq!(finals[0], finals[1], "both arrival orders end alike");

    let outcomes: Vec<(Option<String>, Option<String>)> = stack
        .shop
        .inbox()
        .into_iter()
        .map(|row| (row.webhook_id, row.outcome))
        .collect();
    assert_eq!(outcomes.len(), 4, "{outcomes:#?}");
    let flagged: Vec<_> = outcomes
        .iter()
        .filter(|(_, outcome)| outcome.as_deref() == Some("flagged"))
        .map(|(id, _)| id.clone().unwrap())
        .collect();
    assert_eq!(flagged, refund_ids, "only the refunds are flagged");
    assert!(
        outcomes
            .iter()
            .filter(|(id, _)| !refund_ids.contains(id.as_ref().unwrap()))
            .all(|(_, outcome)| outcome.as_deref() == Some("applied")),
        "{outcomes:#?}"
    );
}

#[tokio::test]
async fn paid_twice_then_one_refunded_stays_paid() {
    let stack = start(None).await;
    let (order, total) = stack.order(items()).await;
    let first = stack.pay_card(&order, total).await;
    stack.settled(&order, "paid", 2).await;

    let second = stack.pay_card(&order, total).await;
    let twice = stack.settled(&order, "flagged", 2).await;
    assert_eq!(email_kinds(&twice), ["order_paid", "download_link"]);
    assert_eq!(download_states(&twice), [("active", None)]);
    let (payments, flags) = payments_and_flags(&twice);
    let charge = json!(["charge", "completed", total, "USD", true]);
    assert_eq!(payments, [charge.clone(), charge.clone()], "{twice:#}");
    assert_eq!(flags.len(), 1, "{twice:#}");
    let reason = flags[0][0].as_str().unwrap();
    assert!(reason.starts_with("paid twice"), "{reason}");
    assert!(
        reason.contains(&first) && reason.contains(&second),
        "{reason}"
    );

    // The first payment given back: the second still pays for the order.
    stack.refund(&first, json!({})).await;
    let one_back = stack.settled(&order, "flagged", 3).await;
    assert_eq!(
        email_kinds(&one_back),
        ["order_paid", "download_link", "refunded"]
    );
    assert_eq!(download_states(&one_back), [("active", None)]);
    let refund = one_back["payments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "refund")
        .unwrap();
    assert_eq!(refund["parent_id"], first.as_str(), "{one_back:#}");
    assert_eq!(refund["amount"], -total, "{one_back:#}");
    assert_eq!(refund["valid"], true, "{one_back:#}");
    let charges = one_back["payments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "charge" && p["valid"] == true)
        .count();
    assert_eq!(charges, 2, "{one_back:#}");

    // The operator resolves the flag: paid.
    let open = stack.open_flags(&order);
    assert_eq!(open.len(), 1);
    stack.resolve(open[0]).await;
    let resolved = stack.settled(&order, "paid", 3).await;
    assert_eq!(payments_and_flags(&resolved).1, [json!([reason, true])]);
    assert_eq!(download_states(&resolved), [("active", None)]);
    assert!(stack.open_flags(&order).is_empty());

    // The second given back too: refunded, the download revoked.
    stack.refund(&second, json!({})).await;
    let all_back = stack.settled(&order, "refunded", 4).await;
    assert_eq!(
        email_kinds(&all_back),
        ["order_paid", "download_link", "refunded", "refunded"]
    );
    assert_eq!(download_states(&all_back), [("revoked", Some("refunded"))]);
    assert_eq!(all_back["payments"].as_array().unwrap().len(), 4);
    let outcomes: Vec<String> = stack
        .shop
        .inbox()
        .into_iter()
        .map(|row| row.outcome.unwrap_or_default())
        .collect();
    assert_eq!(outcomes, ["applied", "flagged", "applied", "applied"]);
}

#[tokio::test]
async fn paid_again_after_a_full_refund_is_paid_with_its_download_back() {
    let stack = start(None).await;
    let (order, total) = stack.order(items()).await;
    let first = stack.pay_card(&order, total).await;
    stack.settled(&order, "paid", 2).await;
    stack.refund(&first, json!({})).await;
    stack.settled(&order, "refunded", 3).await;
    // The customer pays again: only one payment stands, so nothing to flag.
    stack.pay_card(&order, total).await;
    let again = stack.settled(&order, "paid", 3).await;
    let (_, flags) = payments_and_flags(&again);
    assert_eq!(flags, Vec::<Value>::new(), "{again:#}");
    assert_eq!(
        download_states(&again),
        [("active", None)],
        "the download is back: {again:#}"
    );
}

#[tokio::test]
async fn a_bad_copy_of_a_refund_does_not_spoil_the_real_one() {
    let recorder = Receiver::start().await.unwrap();
    let stack = start(Some(&recorder)).await;
    let (order, total) = stack.order(items()).await;
    let payment = stack.pay_card(&order, total).await;
    stack.refund(&payment, json!({"amount": 500})).await;
    let recorded = recorder.wait_for(2, WAIT).await;
    let genuine_payment = message_of(&recorded, &order, "payment.completed");
    let genuine_refund = message_of(&recorded, &order, "payment.refunded");
    // The euro copy (same transaction, new event id) first, then the real
    // messages.
    stack
        .deliver(&in_euros(&genuine_refund, &stack.secret))
        .await;
    stack.deliver(&genuine_payment).await;
    stack.deliver(&genuine_refund).await;
    let after = stack.settled(&order, "flagged", 3).await;
    let (payments, flags) = payments_and_flags(&after);
    assert_eq!(flags.len(), 1, "the euro copy's flag: {after:#}");
    // [kind, status, amount, currency, valid]
    let refund = payments
        .iter()
        .find(|p| p[0] == "refund")
        .expect("the refund");
    assert_eq!(
        refund,
        &json!(["refund", "completed", -500, "USD", true]),
        "{after:#}"
    );
    assert_eq!(
        email_kinds(&after),
        ["order_paid", "download_link", "refunded"],
        "{after:#}"
    );
}

#[tokio::test]
async fn a_bad_completed_copy_never_completes_a_pending_payment_in_either_order() {
    const PENDING: &str = "4000000000000077";
    let recorder = Receiver::start().await.unwrap();
    let stack = start(Some(&recorder)).await;
    let mut orders = Vec::new();
    for _ in 0..2 {
        let (order, total) = stack.order(items()).await;
        stack.pay(&order, total, card(PENDING)).await;
        orders.push(order);
    }
    let recorded = recorder.wait_for(2, WAIT).await;
    for (i, order) in orders.iter().enumerate() {
        let pending = message_of(&recorded, order, "payment.pending");
        // The pending payment claimed completed, in euros.
        let bad = altered(
            &pending,
            &stack.secret,
            &[
                (
                    "\"type\":\"payment.pending\"",
                    "\"type\":\"payment.completed\"",
                ),
                ("\"status\":\"pending\"", "\"status\":\"completed\""),
                ("\"currency\":\"USD\"", "\"currency\":\"EUR\""),
            ],
        );
        if i == 0 {
            stack.deliver(&pending).await;
            stack.deliver(&bad).await;
        } else {
            stack.deliver(&bad).await;
            stack.deliver(&pending).await;
        }
    }
    stack.quiet(4).await;
    for order in &orders {
        let body = stack.get_order(order).await;
        assert_eq!(body["status"], "flagged", "{body:#}");
        assert_eq!(body["paid_at"], Value::Null, "never paid: {body:#}");
        assert_eq!(body["downloads"], json!([]), "{body:#}");
        let kinds = email_kinds(&body);
        assert!(!kinds.contains(&"order_paid"), "{kinds:?}");
        let (payments, _) = payments_and_flags(&body);
        assert_eq!(
            payments,
            [json!(["charge", "pending", 3499, "USD", true])],
            "{body:#}"
        );
    }
}

#[tokio::test]
async fn of_two_held_copies_of_a_refund_the_real_one_counts() {
    let recorder = Receiver::start().await.unwrap();
    let stack = start(Some(&recorder)).await;
    let (order, total) = stack.order(items()).await;
    let payment = stack.pay_card(&order, total).await;
    stack.refund(&payment, json!({"amount": 500})).await;
    let recorded = recorder.wait_for(2, WAIT).await;
    let genuine_payment = message_of(&recorded, &order, "payment.completed");
    let genuine_refund = message_of(&recorded, &order, "payment.refunded");
    // Both copies arrive before the payment: both are held.
    let bad = in_euros(&genuine_refund, &stack.secret);
    stack.deliver(&bad).await;
    stack.deliver(&genuine_refund).await;
    stack.deliver(&genuine_payment).await;
    // Refunded in part before it was ever paid up: no download was granted.
    let after = stack.settled(&order, "flagged", 2).await;
    let (payments, flags) = payments_and_flags(&after);
    assert!(
        payments.contains(&json!(["refund", "completed", -500, "USD", true])),
        "{after:#}"
    );
    assert_eq!(flags.len(), 1, "the euro copy's flag: {after:#}");
    assert_eq!(email_kinds(&after), ["order_paid", "refunded"], "{after:#}");
    let bad_id = bad.header("webhook-id").unwrap();
    let real_id = genuine_refund.header("webhook-id").unwrap();
    stack.outcome(bad_id, "flagged").await;
    stack.outcome(real_id, "applied").await;
}
