//! The notification handler end to end: a real gateway takes payments for
//! the shop's orders and sends the IPNs to the real merchant server, in one
//! dialect or the other; the order's state, payments, downloads and emails
//! are read back from the shop's API, as a client would.

mod common;

use std::time::Duration;

use common::stack::{DAY, Stack, VISA, card, download_states, email_kinds};
use common::{Account, WAIT};
use reqwest::StatusCode;
use serde_json::{Value, json};

const DECLINED: &str = "4000000000000002";
const PENDING: &str = "4000000000000077";

fn mug_and_ebook() -> Value {
    json!([{"sku": "mug", "quantity": 2}, {"sku": "ebook", "quantity": 1}])
}

#[tokio::test]
async fn paid_then_refunded_in_part_then_in_full_in_both_dialects() {
    for dialect in ["standard", "paypal"] {
        let stack = Stack::start(dialect, None, |_| {}).await;
        let (order, total) = stack.order(mug_and_ebook()).await;
        let payment = stack.pay(&order, total, card(VISA)).await;
        let pay_id = payment["id"].as_str().unwrap();

        let paid = stack.settled(&order, "paid", 2).await;
        assert_eq!(
            email_kinds(&paid),
            ["order_paid", "download_link"],
            "{dialect}"
        );
        assert_eq!(
            download_states(&paid),
            [("active".to_owned(), None)],
            "{dialect}"
        );
        assert!(paid["paid_at"].is_string(), "{dialect}");
        let payments = paid["payments"].as_array().unwrap();
        assert_eq!(payments.len(), 1, "{dialect}: {paid:#}");
        assert_eq!(payments[0]["id"], pay_id);
        assert_eq!(payments[0]["status"], "completed");
        assert_eq!(payments[0]["amount"], total);
        assert_eq!(payments[0]["valid"], true);
        assert_eq!(paid["flags"], json!([]), "{dialect}");

        stack
            .operate(pay_id, "refunds", json!({"amount": 500}))
            .await;
        let part = stack.settled(&order, "partially_refunded", 3).await;
        assert_eq!(
            email_kinds(&part),
            ["order_paid", "download_link", "refunded"],
            "{dialect}"
        );
        assert_eq!(
            download_states(&part),
            [("active".to_owned(), None)],
            "{dialect}: a partial refund keeps the download"
        );

        stack.operate(pay_id, "refunds", json!({})).await;
        let all = stack.settled(&order, "refunded", 4).await;
        assert_eq!(
            email_kinds(&all),
            ["order_paid", "download_link", "refunded", "refunded"],
            "{dialect}"
        );
        assert_eq!(all["payments"].as_array().unwrap().len(), 3, "{dialect}");
        assert_eq!(
            download_states(&all),
            [("revoked".to_owned(), Some("refunded".to_owned()))],
            "{dialect}: refunded in full, the download is revoked"
        );
        // Every message applied once: nothing waits, nothing failed.
        let outcomes: Vec<_> = stack
            .shop
            .inbox()
            .iter()
            .map(|row| row.status.clone())
            .collect();
        assert_eq!(outcomes, ["processed"; 3], "{dialect}");
        stack.shop.merchant.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_chargeback_and_its_cancellation_in_both_dialects() {
    for dialect in ["standard", "paypal"] {
        let stack = Stack::start(dialect, None, |_| {}).await;
        let (order, total) = stack.order(mug_and_ebook()).await;
        let payment = stack.pay(&order, total, card(VISA)).await;
        let pay_id = payment["id"].as_str().unwrap();
        stack.settled(&order, "paid", 2).await;

        stack.operate(pay_id, "reverse", json!({})).await;
        let reversed = stack.settled(&order, "reversed", 3).await;
        assert_eq!(email_kinds(&reversed)[2], "reversed", "{dialect}");
        assert_eq!(
            download_states(&reversed),
            [("revoked".to_owned(), Some("reversed".to_owned()))],
            "{dialect}"
        );

        stack.operate(pay_id, "cancel-reversal", json!({})).await;
        let back = stack.settled(&order, "paid", 4).await;
        assert_eq!(
            email_kinds(&back),
            [
                "order_paid",
                "download_link",
                "reversed",
                "reversal_canceled"
            ],
            "{dialect}"
        );
        assert_eq!(
            download_states(&back),
            [("active".to_owned(), None)],
            "{dialect}: the chargeback's revocation is lifted"
        );
    }
}

#[tokio::test]
async fn pending_then_completed_or_failed_and_a_declined_card_in_both_dialects() {
    for dialect in ["standard", "paypal"] {
        let stack = Stack::start(dialect, None, |_| {}).await;
        let items = json!([{"sku": "mug", "quantity": 1}]);

        let (order, total) = stack.order(items.clone()).await;
        let payment = stack.pay(&order, total, card(PENDING)).await;
        let pay_id = payment["id"].as_str().unwrap();
        let pending = stack.settled(&order, "pending", 1).await;
        assert_eq!(email_kinds(&pending), ["payment_pending"], "{dialect}");
        stack.operate(pay_id, "complete", json!({})).await;
        let paid = stack.settled(&order, "paid", 2).await;
        assert_eq!(
            email_kinds(&paid),
            ["payment_pending", "order_paid"],
            "{dialect}"
        );

        let (order, total) = stack.order(items.clone()).await;
        let payment = stack
            .pay(&order, total, json!({"type": "bank_transfer"}))
            .await;
        stack.settled(&order, "pending", 1).await;
        stack
            .operate(payment["id"].as_str().unwrap(), "fail", json!({}))
            .await;
        let failed = stack.settled(&order, "failed", 2).await;
        assert_eq!(
            email_kinds(&failed),
            ["payment_pending", "payment_failed"],
            "{dialect}"
        );

        let (order, total) = stack.order(items).await;
        stack.pay(&order, total, card(DECLINED)).await;
        let declined = stack.settled(&order, "failed", 1).await;
        assert_eq!(email_kinds(&declined), ["payment_failed"], "{dialect}");
        assert_eq!(declined["paid_at"], Value::Null);
    }
}

#[tokio::test]
async fn the_same_ipn_delivered_three_times_has_one_effect_in_both_dialects() {
    for dialect in ["standard", "paypal"] {
        let stack = Stack::start(dialect, None, |_| {}).await;
        let (order, total) = stack.order(json!([{"sku": "ebook", "quantity": 1}])).await;
        stack.pay(&order, total, card(VISA)).await;
        stack.settled(&order, "paid", 2).await;
        let event = stack.events().await[0]["id"].as_str().unwrap().to_owned();
        for _ in 0..2 {
            let (status, body) = stack
                .gw
                .post(
                    &stack.account.key,
                    &format!("/v1/events/{event}/resend"),
                    json!({}),
                )
                .await;
            assert!(status.is_success(), "{body}");
        }
        stack.gw.wait_delivered(&stack.account, &event, 3).await;
        let inbox = stack.quiet(1).await;
        let outcomes: Vec<_> = inbox
            .iter()
            .map(|row| row.outcome.clone().unwrap())
            .collect();
        if dialect == "standard" {
            // The same webhook-id is stored once: the receiver already
            // answered the two resends with the first row.
            assert_eq!(outcomes, ["applied"]);
        } else {
            // A PayPal resend is a new message (`resend=true`): the handler
            // knows it by txn_id + payment_status.
            assert_eq!(outcomes, ["applied", "duplicate", "duplicate"]);
        }
        let again = stack.settled(&order, "paid", 2).await;
        assert_eq!(
            email_kinds(&again),
            ["order_paid", "download_link"],
            "{dialect}"
        );
        assert_eq!(again["downloads"].as_array().unwrap().len(), 1, "{dialect}");
    }
}

/// A gateway whose endpoint delivers to a recorder instead of the shop, so
/// the test can hand the shop the very same messages in any order.
struct Replay {
    stack: Stack,
    recorder: ipn_testkit::Receiver,
    path: &'static str,
}

impl Replay {
    async fn start(dialect: &str) -> Self {
        let recorder = ipn_testkit::Receiver::start().await.unwrap();
        let stack = Stack::start(dialect, Some(recorder.url("/hook")), |_| {}).await;
        let path = if dialect == "paypal" {
            "/ipn"
        } else {
            "/webhooks"
        };
        Self {
            stack,
            recorder,
            path,
        }
    }

    /// Hands the shop one recorded message, with its signature headers.
    async fn deliver(&self, message: &ipn_testkit::Recorded) {
        let (status, answer) = self.send(message).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    /// Hands the shop one recorded message; returns its answer.
    async fn send(&self, message: &ipn_testkit::Recorded) -> (StatusCode, String) {
        self.stack.hand(self.path, message).await
    }

    /// Makes a payment at the gateway with `body` (as `account`); returns the
    /// message the gateway sent for it.
    async fn payment_message(&self, account: &Account, body: Value) -> ipn_testkit::Recorded {
        let before = self.recorder.requests().len();
        let (status, payment) = self.stack.gw.post(&account.key, "/v1/payments", body).await;
        assert_eq!(status, StatusCode::CREATED, "{payment}");
        let all = self.recorder.wait_for(before + 1, WAIT).await;
        assert_eq!(all.len(), before + 1);
        all[before].clone()
    }
}

/// `message` with its body replaced and signed again with `secret`, at
/// `timestamp` (unix seconds).
fn resigned(
    message: &ipn_testkit::Recorded,
    body: Vec<u8>,
    secret: &str,
    timestamp: i64,
) -> ipn_testkit::Recorded {
    use ipn_core::standard::{Signer, WebhookSecret};
    let id = message.header("webhook-id").unwrap().to_owned();
    let signer = Signer::Secret(WebhookSecret::parse(secret).unwrap());
    let mut copy = message.clone();
    let signature = signer.sign(&id, timestamp, &body);
    copy.headers
        .insert("webhook-signature", signature.parse().unwrap());
    copy.headers
        .insert("webhook-timestamp", timestamp.to_string().parse().unwrap());
    copy.body = body.into();
    copy
}

/// What kind of change a recorded message is, in either dialect.
fn change_of(message: &ipn_testkit::Recorded) -> (String, String) {
    if let Ok(event) = serde_json::from_slice::<Value>(&message.body) {
        let data = &event["data"];
        let invoice = data["invoice"].as_str().unwrap().to_owned();
        return (invoice, event["type"].as_str().unwrap().to_owned());
    }
    let form = ipn_core::paypal::Form::parse(&message.body).unwrap();
    let status = match form.get("payment_status").unwrap() {
        "Completed" => "payment.completed",
        "Refunded" => "payment.refunded",
        "Reversed" => "payment.reversed",
        "Canceled_Reversal" => "payment.reversal_canceled",
        other => panic!("unexpected payment_status {other}"),
    };
    (form.get("invoice").unwrap().to_owned(), status.to_owned())
}

fn permutations(items: &[usize]) -> Vec<Vec<usize>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut all = Vec::new();
    for (i, &first) in items.iter().enumerate() {
        let mut rest = items.to_vec();
        rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first);
            all.push(tail);
        }
    }
    all
}

#[tokio::test]
async fn all_24_arrival_orders_end_in_the_same_state_in_both_dialects() {
    const CHANGES: [&str; 4] = [
        "payment.completed",
        "payment.refunded",
        "payment.reversed",
        "payment.reversal_canceled",
    ];
    let orders_of_arrival = permutations(&[0, 1, 2, 3]);
    assert_eq!(orders_of_arrival.len(), 24);
    for dialect in ["standard", "paypal"] {
        let replay = Replay::start(dialect).await;
        let stack = &replay.stack;
        // One order per arrival order, each paid, refunded in part,
        // reversed and the reversal canceled at the gateway.
        let mut orders = Vec::new();
        for _ in &orders_of_arrival {
            let (order, total) = stack.order(mug_and_ebook()).await;
            let payment = stack.pay(&order, total, card(VISA)).await;
            let pay_id = payment["id"].as_str().unwrap();
            stack
                .operate(pay_id, "refunds", json!({"amount": 500}))
                .await;
            stack.operate(pay_id, "reverse", json!({})).await;
            stack.operate(pay_id, "cancel-reversal", json!({})).await;
            orders.push(order);
        }
        let recorded = replay.recorder.wait_for(4 * orders.len(), WAIT).await;
        assert_eq!(recorded.len(), 4 * orders.len());
        for (order, arrival) in orders.iter().zip(&orders_of_arrival) {
            let mine: Vec<_> = recorded
                .iter()
                .filter(|message| change_of(message).0 == *order)
                .collect();
            for &index in arrival {
                let message = mine
                    .iter()
                    .find(|message| change_of(message).1 == CHANGES[index])
                    .unwrap();
                replay.deliver(message).await;
            }
        }
        stack.quiet(4 * orders.len()).await;

        let mut finals = Vec::new();
        for (order, arrival) in orders.iter().zip(&orders_of_arrival) {
            let (_, body) = stack.shop.get_json(&format!("/api/orders/{order}")).await;
            let mut payments: Vec<(String, String, i64, bool)> = body["payments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p["kind"].as_str().unwrap().to_owned(),
                        p["status"].as_str().unwrap().to_owned(),
                        p["amount"].as_i64().unwrap(),
                        p["valid"].as_bool().unwrap(),
                    )
                })
                .collect();
            payments.sort();
            let live_downloads = download_states(&body)
                .iter()
                .filter(|(state, _)| state == "active")
                .count();
            let kinds = email_kinds(&body);
            let once = |kind: &str| kinds.iter().filter(|k| *k == kind).count();
            assert_eq!(once("order_paid"), 1, "{dialect} {arrival:?}: {kinds:?}");
            assert_eq!(once("refunded"), 1, "{dialect} {arrival:?}: {kinds:?}");
            // The customer hears of the chargeback's end only if they heard
            // of the chargeback.
            assert_eq!(
                once("reversed"),
                once("reversal_canceled"),
                "{dialect} {arrival:?}: {kinds:?}"
            );
            assert!(once("reversed") <= 1, "{dialect} {arrival:?}: {kinds:?}");
            finals.push((
                arrival.clone(),
                (
                    body["status"].as_str().unwrap().to_owned(),
                    payments,
                    body["flags"].clone(),
                    live_downloads,
                ),
            ));
        }
        let (_, first) = &finals[0];
        assert_eq!(first.0, "partially_refunded", "{dialect}");
        assert_eq!(first.1.len(), 4, "{dialect}");
        for (arrival, state) in &finals {
            assert_eq!(state, first, "{dialect}: arrival order {arrival:?}");
        }
    }
}

fn payment_body(invoice: &str, amount: i64, currency: &str) -> Value {
    json!({
        "amount": amount,
        "currency": currency,
        "invoice": invoice,
        "payer": {"email": "ann@example.com", "name": "Ann Smith"},
        "payment_method": {"card_number": VISA},
    })
}

#[tokio::test]
async fn forged_tampered_and_mismatched_notices_never_mark_an_order_paid() {
    for dialect in ["standard", "paypal"] {
        let replay = Replay::start(dialect).await;
        let stack = &replay.stack;
        let thief = stack.gw.account("thief").await;
        let _ = stack
            .gw
            .endpoint(
                &thief,
                json!({"url": replay.recorder.url("/hook"), "dialect": dialect, "events": ["payment.*"]}),
            )
            .await;
        let ebook = json!([{"sku": "ebook", "quantity": 1}]);
        let (short, total) = stack.order(ebook.clone()).await;
        let (euros, _) = stack.order(ebook.clone()).await;
        let (stolen, _) = stack.order(ebook.clone()).await;
        let (tampered, _) = stack.order(ebook.clone()).await;

        let underpaid = replay
            .payment_message(&stack.account, payment_body(&short, total - 1, "USD"))
            .await;
        let in_euros = replay
            .payment_message(&stack.account, payment_body(&euros, total, "EUR"))
            .await;
        let unknown = replay
            .payment_message(
                &stack.account,
                payment_body("ord_nosuchorder", total, "USD"),
            )
            .await;
        // Another merchant of the same gateway pays our invoice to itself
        // and points its notifications at our shop.
        let to_thief = replay
            .payment_message(&thief, payment_body(&stolen, total, "USD"))
            .await;
        let genuine = replay
            .payment_message(&stack.account, payment_body(&tampered, total, "USD"))
            .await;

        let mut expected_inbox = 0;
        for message in [&underpaid, &in_euros, &unknown] {
            replay.deliver(message).await;
            expected_inbox += 1;
        }
        if dialect == "standard" {
            // Signed by the thief's endpoint secret, not ours: refused.
            let (status, answer) = replay.send(&to_thief).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
            // Even signed with ours (a sender misconfigured), the receiver
            // is checked against the order.
            let now = common::unix_now();
            replay
                .deliver(&resigned(
                    &to_thief,
                    to_thief.body.to_vec(),
                    &replay.stack.secret,
                    now,
                ))
                .await;
            expected_inbox += 1;
            // Forged: another secret. Stale: our secret, 10 minutes old.
            // Tampered: the amount changed after signing.
            let other = ipn_core::standard::WebhookSecret::generate().reveal();
            let forged = resigned(&genuine, genuine.body.to_vec(), &other, now);
            let stale = resigned(
                &genuine,
                genuine.body.to_vec(),
                &replay.stack.secret,
                now - 600,
            );
            let mut altered = genuine.clone();
            let text = String::from_utf8(genuine.body.to_vec()).unwrap();
            let total_field = format!("\"amount\":{total}");
            assert!(text.contains(&total_field), "{text}");
            altered.body = text
                .replacen(&total_field, "\"amount\":1", 1)
                .into_bytes()
                .into();
            for bad in [forged, stale, altered] {
                let (status, answer) = replay.send(&bad).await;
                assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
            }
        } else {
            // PayPal: verified by postback; the thief's message is genuine.
            replay.deliver(&to_thief).await;
            expected_inbox += 1;
            // An altered copy of a genuine message comes back INVALID.
            let text = String::from_utf8(genuine.body.to_vec()).unwrap();
            assert!(text.contains("mc_gross=9.99"), "{text}");
            let mut altered = genuine.clone();
            altered.body = text
                .replacen("mc_gross=9.99", "mc_gross=0.01", 1)
                .into_bytes()
                .into();
            replay.deliver(&altered).await;
            expected_inbox += 1;
        }
        let inbox = stack
            .shop
            .wait_until("every message settled", WAIT, |rows| {
                rows.len() == expected_inbox
                    && rows
                        .iter()
                        .all(|row| row.outcome.is_some() || row.status == "invalid")
            })
            .await;
        let outcomes: Vec<_> = inbox
            .iter()
            .map(|row| row.outcome.clone().unwrap_or_else(|| row.status.clone()))
            .collect();
        let mut expected = vec!["flagged"; 4];
        if dialect == "paypal" {
            expected.push("invalid");
        }
        assert_eq!(outcomes, expected, "{dialect}: {inbox:#?}");
        assert!(
            inbox[2]
                .outcome_detail
                .as_deref()
                .unwrap()
                .contains("ord_nosuchorder"),
            "{:?}",
            inbox[2].outcome_detail
        );

        for (order, reason) in [
            (&short, "the order's total is 9.99 USD"),
            (&euros, "paid in EUR"),
            (&stolen, &format!("paid to merchant {}", thief.id)),
            (&tampered, ""),
        ] {
            let (_, body) = stack.shop.get_json(&format!("/api/orders/{order}")).await;
            assert_eq!(body["paid_at"], Value::Null, "{dialect} {order}: {body:#}");
            assert_eq!(body["emails"], json!([]), "{dialect}: {body:#}");
            assert_eq!(body["downloads"], json!([]), "{dialect}: {body:#}");
            if reason.is_empty() {
                assert_eq!(body["status"], "created", "{dialect}: {body:#}");
                assert_eq!(body["flags"], json!([]), "{dialect}: {body:#}");
                continue;
            }
            assert_eq!(body["status"], "flagged", "{dialect}: {body:#}");
            let flags = body["flags"].as_array().unwrap();
            assert_eq!(flags.len(), 1, "{dialect}: {body:#}");
            let said = flags[0]["reason"].as_str().unwrap();
            assert!(
                said.contains(reason),
                "{dialect}: {said:?} lacks {reason:?}"
            );
            assert_eq!(body["payments"][0]["valid"], false, "{dialect}: {body:#}");
        }
        // Let the real notice through: the one honest order is paid.
        replay.deliver(&genuine).await;
        stack.settled(&tampered, "paid", 2).await;
    }
}

#[tokio::test]
async fn an_ipn_dropped_at_the_gateway_is_recovered_by_reconciliation_in_both_dialects() {
    for dialect in ["standard", "paypal"] {
        let stack = Stack::start(dialect, None, |config| {
            config.reconcile_every = Some(Duration::from_millis(100));
        })
        .await;
        let (order, total) = stack.order(mug_and_ebook()).await;
        // The endpoint is disabled: the gateway sends nothing.
        stack.endpoint_action("disable").await;
        let payment = stack.pay(&order, total, card(VISA)).await;
        let event = stack.events().await[0]["id"].as_str().unwrap().to_owned();
        let (_, attempts) = stack
            .gw
            .get(&stack.account.key, &format!("/v1/events/{event}/attempts"))
            .await;
        assert_eq!(attempts["data"], json!([]), "{dialect}: nothing was sent");

        let paid = stack.settled(&order, "paid", 2).await;
        assert_eq!(paid["payments"][0]["id"], payment["id"], "{dialect}");
        let inbox = stack.shop.inbox();
        assert_eq!(inbox.len(), 1, "{dialect}: {inbox:#?}");
        assert_eq!(inbox[0].headers["x-ipn-source"], "reconciliation");
        assert_eq!(inbox[0].webhook_id.as_deref(), Some(event.as_str()));

        // Enabled again, the gateway's own messages are one notice with the
        // reconciled ones: nothing happens twice.
        stack.endpoint_action("enable").await;
        stack
            .operate(
                payment["id"].as_str().unwrap(),
                "refunds",
                json!({"amount": 100}),
            )
            .await;
        stack.settled(&order, "partially_refunded", 3).await;
        let refund = stack.events().await[1]["id"].as_str().unwrap().to_owned();
        stack.gw.wait_delivered(&stack.account, &refund, 1).await;
        let inbox = stack.quiet(if dialect == "paypal" { 3 } else { 2 }).await;
        let mut outcomes: Vec<_> = inbox
            .iter()
            .map(|row| row.outcome.clone().unwrap())
            .collect();
        outcomes.sort();
        if dialect == "standard" {
            // Same webhook-id: whichever came second was never stored.
            assert_eq!(outcomes, ["applied", "applied"], "{dialect}: {inbox:#?}");
        } else {
            assert_eq!(
                outcomes,
                ["applied", "applied", "duplicate"],
                "{dialect}: {inbox:#?}"
            );
        }
        let after = stack.settled(&order, "partially_refunded", 3).await;
        assert_eq!(
            email_kinds(&after),
            ["order_paid", "download_link", "refunded"],
            "{dialect}"
        );
    }
}

const DECLINES_RENEWALS: &str = "4000 0000 0000 0341";

#[tokio::test]
async fn a_subscription_from_signup_to_expiry_in_both_dialects() {
    for dialect in ["standard", "paypal"] {
        let stack = Stack::start(dialect, None, |_| {}).await;
        let (status, sub) = stack
            .gw
            .post(
                &stack.account.key,
                "/v1/subscriptions",
                json!({
                    "amount": 999,
                    "currency": "USD",
                    "interval": "month",
                    "payer": {"email": "ann@example.com", "name": "Ann Smith"},
                    "payment_method": {"card_number": DECLINES_RENEWALS},
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{sub}");
        let id = sub["id"].as_str().unwrap();

        // Signup and the first period paid: one email says both.
        let active = stack.subscription(id, "active", 1).await;
        assert_eq!(active["access"], true, "{dialect}");
        assert_eq!(active["cycles_paid"], 1, "{dialect}");
        assert_eq!(active["customer_email"], "ann@example.com");
        if dialect == "standard" {
            // The plan is known from the subscription itself.
            assert!(active["paid_through"].is_string(), "{active:#}");
        }
        // The renewal is declined: past due, access kept while retried.
        stack.advance(31 * DAY).await;
        let past_due = stack.subscription(id, "past_due", 2).await;
        assert_eq!(past_due["access"], true, "{dialect}");
        // A new card pays the retry.
        let (status, body) = stack
            .gw
            .post(
                &stack.account.key,
                &format!("/v1/subscriptions/{id}/payment-method"),
                json!({"card_number": VISA}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        stack.advance(3 * DAY + 60).await;
        let renewed = stack.subscription(id, "active", 3).await;
        assert_eq!(renewed["cycles_paid"], 2, "{dialect}");
        // Canceled at the end of the period: access until then.
        let (status, body) = stack
            .gw
            .post(
                &stack.account.key,
                &format!("/v1/subscriptions/{id}/cancel"),
                json!({"at_period_end": true}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let canceled = stack.subscription(id, "canceled", 4).await;
        assert_eq!(
            canceled["access"], true,
            "{dialect}: paid to the period's end"
        );
        stack.advance(40 * DAY).await;
        let expired = stack.subscription(id, "expired", 5).await;
        assert_eq!(expired["access"], false, "{dialect}");
        let kinds: Vec<_> = expired["emails"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "subscription_started",
                "subscription_payment_failed",
                "subscription_renewed",
                "subscription_canceled",
                "subscription_expired",
            ],
            "{dialect}"
        );
        let (status, _) = stack.shop.get_json("/api/subscriptions/sub_nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn a_message_that_fails_waits_is_retried_and_can_be_sent_back_from_admin() {
    let stack = Stack::start("standard", None, |config| {
        config.admin_password = Some(ipn_merchant::Hidden::new("correct horse"));
    })
    .await;
    let (order, total) = stack.order(json!([{"sku": "mug", "quantity": 1}])).await;
    // Something about this shop makes recording a payment fail (here a
    // trigger; in life, a bug or a bad row): not a storage failure.
    let data = &stack.shop.data;
    data.fail_inserts("payments", "boom");
    stack.pay(&order, total, card(VISA)).await;
    let rows = stack
        .shop
        .wait_until("a failed attempt", WAIT, |rows| {
            rows.len() == 1
                && rows[0]
                    .outcome_detail
                    .as_deref()
                    .is_some_and(|d| d.contains("boom"))
        })
        .await;
    // It waits for its retry, untouched by the failure.
    assert_eq!(rows[0].status, "received", "{rows:#?}");
    let (_, body) = stack.shop.get_json(&format!("/api/orders/{order}")).await;
    assert_eq!(body["status"], "created");

    // Fixed: the retry applies it.
    data.allow_inserts("payments");
    stack.settled(&order, "paid", 1).await;

    // A message set aside as failed goes back to the handler from /admin.
    let (second, total) = stack.order(json!([{"sku": "mug", "quantity": 1}])).await;
    data.fail_inserts("payments", "boom");
    stack.pay(&second, total, card(VISA)).await;
    let rows = stack
        .shop
        .wait_until("a failed attempt", WAIT, |rows| {
            rows.len() == 2 && rows[1].outcome_detail.is_some()
        })
        .await;
    let id = rows[1].id;
    data.execute(
        "UPDATE inbox SET status = 'failed' WHERE id = $1",
        &[id.into()],
    );
    data.allow_inserts("payments");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let retry = |password: &'static str| {
        client
            .post(format!("{}/admin/messages/{id}/retry", stack.shop.url))
            .header("origin", stack.shop.url.clone())
            .basic_auth("admin", Some(password))
            .send()
    };
    assert_eq!(
        retry("wrong").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        stack.shop.inbox()[1].status,
        "failed",
        "a refused retry changes nothing"
    );
    let answer = retry("correct horse").await.unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    stack.settled(&second, "paid", 1).await;
    // Only a failed message can be sent back.
    let again = retry("correct horse").await.unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn reconciliation_reads_only_what_the_endpoint_would_have_been_sent() {
    // With the endpoint named, the gateway filters by its types; without,
    // the shop keeps the payment and subscription events it acts on.
    for named in [true, false] {
        let stack = Stack::start("standard", None, |config| {
            config.reconcile_every = Some(Duration::from_millis(100));
            if !named {
                config.endpoint_id = None;
            }
        })
        .await;
        let (order, total) = stack.order(mug_and_ebook()).await;
        stack.endpoint_action("disable").await;
        // A platform's own events, which the endpoint never takes.
        for n in 0..5 {
            let (status, body) = stack
                .gw
                .post(
                    &stack.account.key,
                    "/v1/events",
                    json!({"type": "invoice.paid", "data": {"id": format!("inv_{n}")}}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        let payment = stack.pay(&order, total, card(VISA)).await;
        let paid = stack.settled(&order, "paid", 2).await;
        assert_eq!(paid["payments"][0]["id"], payment["id"]);
        let inbox = stack.quiet(1).await;
        assert_eq!(inbox.len(), 1, "named {named}: {inbox:#?}");
        assert_eq!(inbox[0].headers["x-ipn-source"], "reconciliation");
        assert!(
            inbox
                .iter()
                .all(|row| row.outcome.as_deref() != Some("ignored")),
            "named {named}: {inbox:#?}"
        );
    }
}
