//! Test-mode payments: each flow's exact events, in order with their
//! sequences, at a standard endpoint and a PayPal endpoint.

mod common;

use std::time::Duration;

use common::{Shop, verify_signed};
use ipn_core::paypal::Form;
use ipn_testkit::Recorded;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Longest wait for deliveries that should come at once.
const WAIT: Duration = Duration::from_secs(10);

const VISA: &str = "4242 4242 4242 4242";
const DECLINED: &str = "4000000000000002";
const PENDING: &str = "4000000000000077";
const DISPUTED: &str = "4000000000000259";

impl Shop {
    async fn pay(&self, body: Value) -> Value {
        let (status, payment) = self.post("/v1/payments", body).await;
        assert_eq!(status, StatusCode::CREATED, "{payment}");
        payment
    }

    /// Waits for `count` messages at both endpoints; returns the standard
    /// events and the PayPal forms, in sequence order.
    async fn received(&self, count: usize) -> (Vec<Value>, Vec<Form>) {
        let standard = self.standard.wait_for(count, WAIT).await;
        let paypal = self.paypal.wait_for(count, WAIT).await;
        assert_eq!(standard.len(), count, "standard endpoint");
        assert_eq!(paypal.len(), count, "paypal endpoint");
        let mut events: Vec<Value> = standard
            .iter()
            .map(|r| {
                verify_signed(r, &self.secret);
                serde_json::from_slice(&r.body).unwrap()
            })
            .collect();
        events.sort_by_key(|e| e["sequence"].as_u64());
        // A PayPal message has no sequence: it is put in order by its
        // webhook-id, the id of the event it was made from.
        let position = |id: &str| events.iter().position(|e| e["id"] == id);
        let mut forms: Vec<(Option<usize>, Form)> = paypal
            .iter()
            .map(|r| (position(r.header("webhook-id").unwrap()), form(r)))
            .collect();
        assert!(
            forms.iter().all(|(p, _)| p.is_some()),
            "an unknown webhook-id"
        );
        forms.sort_by_key(|(p, _)| *p);
        (events, forms.into_iter().map(|(_, f)| f).collect())
    }
}

fn form(request: &Recorded) -> Form {
    Form::parse(&request.body).unwrap()
}

fn card(number: &str) -> Value {
    json!({"card_number": number})
}

fn order(amount: i64, currency: &str, method: Value) -> Value {
    json!({
        "amount": amount,
        "currency": currency,
        "invoice": "order-1",
        "custom": "cart=7",
        "payer": {"email": "ann@example.com", "name": "Ann Smith"},
        "payment_method": method,
    })
}

fn types(events: &[Value]) -> Vec<(&str, u64)> {
    events
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["sequence"].as_u64().unwrap()))
        .collect()
}

fn field<'a>(form: &'a Form, name: &str) -> &'a str {
    form.get(name)
        .unwrap_or_else(|| panic!("no {name} in the PayPal message"))
}

#[tokio::test]
async fn a_card_payment_completes_with_one_event_in_each_dialect() {
    let shop = Shop::open().await;
    let payment = shop.pay(order(1999, "USD", card(VISA))).await;
    assert_eq!(payment["status"], "completed");
    assert_eq!(payment["amount"], 1999);
    assert_eq!(payment["fee"], 88);
    assert_eq!(
        payment["payment_method"],
        json!({"type": "card", "brand": "visa", "last4": "4242"})
    );
    assert!(
        !payment.to_string().contains("4242424242424242"),
        "the card number is never shown"
    );

    let (events, forms) = shop.received(1).await;
    assert_eq!(types(&events), [("payment.completed", 1)]);
    assert_eq!(events[0]["data"]["id"], payment["id"]);
    assert_eq!(events[0]["data"]["invoice"], "order-1");
    let ipn = &forms[0];
    assert_eq!(field(ipn, "txn_type"), "web_accept");
    assert_eq!(field(ipn, "payment_status"), "Completed");
    assert_eq!(field(ipn, "txn_id"), payment["id"].as_str().unwrap());
    assert_eq!(field(ipn, "mc_gross"), "19.99");
    assert_eq!(field(ipn, "mc_fee"), "0.88");
    assert_eq!(field(ipn, "mc_currency"), "USD");
    assert_eq!(field(ipn, "invoice"), "order-1");
    assert_eq!(field(ipn, "custom"), "cart=7");
    assert_eq!(field(ipn, "receiver_email"), "shop@example.com");
    assert_eq!(field(ipn, "payer_email"), "ann@example.com");

    let (status, fetched) = shop
        .gw
        .get(
            &shop.merchant.key,
            &format!("/v1/payments/{}", payment["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched["status"], "completed");
    assert_eq!(fetched["history"][0]["type"], "payment.completed");
}

#[tokio::test]
async fn a_declined_card_is_denied() {
    let shop = Shop::open().await;
    let payment = shop.pay(order(500, "USD", card(DECLINED))).await;
    assert_eq!(payment["status"], "denied");
    assert_eq!(payment["fee"], 0);
    let (events, forms) = shop.received(1).await;
    assert_eq!(types(&events), [("payment.denied", 1)]);
    assert_eq!(field(&forms[0], "payment_status"), "Denied");
}

#[tokio::test]
async fn a_bank_transfer_stays_pending_until_completed() {
    let shop = Shop::open().await;
    let payment = shop
        .pay(order(2500, "EUR", json!({"type": "bank_transfer"})))
        .await;
    assert_eq!(payment["status"], "pending");
    assert_eq!(payment["pending_reason"], "echeck");
    let id = payment["id"].as_str().unwrap();
    let (status, completed) = shop
        .post(&format!("/v1/payments/{id}/complete"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{completed}");
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["previous_status"], "pending");

    let (events, forms) = shop.received(2).await;
    assert_eq!(
        types(&events),
        [("payment.pending", 1), ("payment.completed", 2)]
    );
    assert_eq!(field(&forms[0], "payment_status"), "Pending");
    assert_eq!(field(&forms[0], "pending_reason"), "echeck");
    assert_eq!(field(&forms[1], "payment_status"), "Completed");
    assert_eq!(
        field(&forms[1], "txn_id"),
        id,
        "one txn_id goes Pending → Completed"
    );

    // Completed is not pending: completing again changes nothing.
    let (status, error) = shop
        .post(&format!("/v1/payments/{id}/complete"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
}

#[tokio::test]
async fn a_pending_card_payment_can_fail() {
    let shop = Shop::open().await;
    let payment = shop.pay(order(700, "USD", card(PENDING))).await;
    assert_eq!(payment["status"], "pending");
    let id = payment["id"].as_str().unwrap();
    let (status, failed) = shop
        .post(&format!("/v1/payments/{id}/fail"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{failed}");
    assert_eq!(failed["status"], "failed");
    let (events, forms) = shop.received(2).await;
    assert_eq!(
        types(&events),
        [("payment.pending", 1), ("payment.failed", 2)]
    );
    assert_eq!(field(&forms[1], "payment_status"), "Failed");
}

#[tokio::test]
async fn a_cart_of_several_items_including_a_digital_one() {
    let shop = Shop::open().await;
    let mut body = order(0, "USD", card(VISA));
    body.as_object_mut().unwrap().remove("amount");
    body["items"] = json!([
        {"sku": "mug", "name": "Mug", "quantity": 2, "unit_amount": 1250, "kind": "physical"},
        {"sku": "ebook", "name": "The Book", "quantity": 1, "unit_amount": 999, "kind": "digital"},
    ]);
    let payment = shop.pay(body).await;
    assert_eq!(payment["amount"], 3499, "the items' total");
    assert_eq!(payment["items"][1]["kind"], "digital");
    let (events, forms) = shop.received(1).await;
    assert_eq!(events[0]["data"]["items"][1]["kind"], "digital");
    let ipn = &forms[0];
    assert_eq!(field(ipn, "txn_type"), "cart");
    assert_eq!(field(ipn, "num_cart_items"), "2");
    assert_eq!(field(ipn, "item_number1"), "mug");
    assert_eq!(field(ipn, "quantity1"), "2");
    assert_eq!(field(ipn, "mc_gross_1"), "25.00");
    assert_eq!(field(ipn, "item_name2"), "The Book");
    assert_eq!(field(ipn, "mc_gross"), "34.99");

    // An amount that disagrees with the items is refused.
    let mut wrong = order(3000, "USD", card(VISA));
    wrong["items"] = json!([{"sku": "mug", "name": "Mug", "quantity": 2, "unit_amount": 1250, "kind": "physical"}]);
    let (status, error) = shop.post("/v1/payments", wrong).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
}

#[tokio::test]
async fn partial_refunds_until_fully_refunded_then_a_refund_too_many_is_refused() {
    let shop = Shop::open().await;
    let payment = shop.pay(order(10000, "USD", card(VISA))).await;
    let id = payment["id"].as_str().unwrap();
    let refunds = format!("/v1/payments/{id}/refunds");

    let (status, first) = shop.post(&refunds, json!({"amount": 3000})).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["amount"], -3000);
    assert_eq!(first["parent_id"], id);
    assert_eq!(first["reason_code"], "refund");
    assert_ne!(
        first["id"], payment["id"],
        "a refund is a payment of its own"
    );

    let (status, error) = shop.post(&refunds, json!({"amount": 7001})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("70.00"),
        "{error}"
    );

    let (status, rest) = shop.post(&refunds, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{rest}");
    assert_eq!(rest["amount"], -7000, "no amount refunds all that is left");
    assert_eq!(rest["refunded_amount"], 10000);

    let (status, error) = shop.post(&refunds, json!({"amount": 1})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");

    let (events, forms) = shop.received(3).await;
    assert_eq!(
        types(&events),
        [
            ("payment.completed", 1),
            ("payment.refunded", 2),
            ("payment.refunded", 3)
        ]
    );
    assert_eq!(events[1]["data"]["amount"], -3000);
    assert_eq!(events[2]["data"]["refunded_amount"], 10000);
    for ipn in &forms[1..] {
        assert_eq!(field(ipn, "payment_status"), "Refunded");
        assert_eq!(field(ipn, "reason_code"), "refund");
        assert_eq!(field(ipn, "parent_txn_id"), id);
        assert_ne!(field(ipn, "txn_id"), id, "a refund has a new txn_id");
    }
    assert_eq!(field(&forms[1], "mc_gross"), "-30.00");
    assert_eq!(field(&forms[2], "mc_gross"), "-70.00");

    let (_, after) = shop
        .gw
        .get(&shop.merchant.key, &format!("/v1/payments/{id}"))
        .await;
    assert_eq!(after["status"], "refunded");
    assert_eq!(after["history"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_chargeback_and_its_cancellation() {
    let shop = Shop::open().await;
    let payment = shop.pay(order(4000, "GBP", card(VISA))).await;
    let id = payment["id"].as_str().unwrap();
    let (status, reversed) = shop
        .post(&format!("/v1/payments/{id}/reverse"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{reversed}");
    assert_eq!(reversed["status"], "reversed");
    // A reversed payment cannot be refunded.
    let (status, _) = shop
        .post(&format!("/v1/payments/{id}/refunds"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, canceled) = shop
        .post(&format!("/v1/payments/{id}/cancel-reversal"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{canceled}");
    assert_eq!(canceled["status"], "reversal_canceled");

    let (events, forms) = shop.received(3).await;
    assert_eq!(
        types(&events),
        [
            ("payment.completed", 1),
            ("payment.reversed", 2),
            ("payment.reversal_canceled", 3)
        ]
    );
    assert_eq!(events[1]["data"]["amount"], -4000);
    assert_eq!(field(&forms[1], "payment_status"), "Reversed");
    assert_eq!(field(&forms[1], "reason_code"), "chargeback");
    assert_eq!(field(&forms[1], "parent_txn_id"), id);
    assert_eq!(field(&forms[2], "payment_status"), "Canceled_Reversal");
}

#[tokio::test]
async fn the_disputed_test_card_completes_then_is_reversed() {
    let shop = Shop::open().await;
    let payment = shop.pay(order(1500, "USD", card(DISPUTED))).await;
    assert_eq!(payment["status"], "reversed");
    let (events, _) = shop.received(2).await;
    assert_eq!(
        types(&events),
        [("payment.completed", 1), ("payment.reversed", 2)]
    );
}

#[tokio::test]
async fn money_is_exact_in_every_currency_exponent() {
    let shop = Shop::open().await;
    for (amount, currency) in [(1000, "JPY"), (1999, "USD"), (10500, "KWD")] {
        shop.pay(order(amount, currency, card(VISA))).await;
    }
    let (events, forms) = shop.received(3).await;
    let mut gross: Vec<(String, String)> = forms
        .iter()
        .map(|f| {
            (
                field(f, "mc_currency").to_owned(),
                field(f, "mc_gross").to_owned(),
            )
        })
        .collect();
    gross.sort();
    assert_eq!(
        gross,
        [
            ("JPY".to_owned(), "1000".to_owned()),
            ("KWD".to_owned(), "10.500".to_owned()),
            ("USD".to_owned(), "19.99".to_owned()),
        ]
    );
    let amounts: Vec<i64> = events
        .iter()
        .map(|e| e["data"]["amount"].as_i64().unwrap())
        .collect();
    for amount in [1000, 1999, 10500] {
        assert!(amounts.contains(&amount), "{amounts:?}");
    }
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let shop = Shop::open().await;
    let bad = [
        order(0, "USD", card(VISA)),
        order(-100, "USD", card(VISA)),
        order(100, "XYZ", card(VISA)),
        order(100, "USD", card("4242 4242 4242 4241")),
        order(100, "USD", json!({"type": "cash"})),
        json!({"amount": 100, "currency": "USD", "payer": {"email": "ann@localhost"},
               "payment_method": {"card_number": VISA}}),
        // Amounts are integer minor units: decimals, in any number, are refused.
        json!({"amount": 19.99, "currency": "USD", "payer": {"email": "a@b.c"},
               "payment_method": {"card_number": VISA}}),
        json!({"amount": "19.999", "currency": "USD", "payer": {"email": "a@b.c"},
               "payment_method": {"card_number": VISA}}),
        json!({"amount": 100, "currency": "USD", "payer": {"email": "a@b.c"}}),
    ];
    for body in bad {
        let (status, error) = shop.post("/v1/payments", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {error}");
        assert!(error["error"]["message"].as_str().is_some(), "{error}");
    }

    // Another merchant's payment is not there for this one.
    let payment = shop.pay(order(100, "USD", card(VISA))).await;
    let id = payment["id"].as_str().unwrap();
    let other = shop.gw.merchant("other").await;
    let (status, _) = shop
        .gw
        .post(&other.key, &format!("/v1/payments/{id}/refunds"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = shop.gw.get(&other.key, &format!("/v1/payments/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = shop
        .post(&format!("/v1/payments/{id}/explode"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an unknown operation");

    // Only the one good payment made an event.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(shop.standard.requests().len(), 1);
    let (_, after) = shop
        .gw
        .get(&shop.merchant.key, &format!("/v1/payments/{id}"))
        .await;
    assert_eq!(after["refunded_amount"], 0);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_body() {
    let shop = Shop::open().await;
    let body = order(1200, "USD", card(VISA));
    let send = |body: Value| {
        shop.gw
            .unauthenticated(reqwest::Method::POST, "/v1/payments")
            .bearer_auth(&shop.merchant.key)
            .header("idempotency-key", "pay-once")
            .json(&body)
            .send()
    };
    let first = send(body.clone()).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let again = send(body.clone()).await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);

    let mut other = body;
    other["amount"] = json!(1300);
    let conflict = send(other).await.unwrap();
    assert_eq!(conflict.status(), StatusCode::CONFLICT);

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(shop.standard.requests().len(), 1, "one payment, one event");
}

#[tokio::test]
async fn an_operation_takes_a_json_object_and_nothing_else() {
    let shop = Shop::open().await;
    let paid = shop.pay(order(1999, "USD", card(VISA))).await;
    let pending = shop.pay(order(500, "USD", card(PENDING))).await;
    let (paid, pending) = (
        paid["id"].as_str().unwrap(),
        pending["id"].as_str().unwrap(),
    );
    shop.received(2).await;
    let events_before = shop.gw.count_rows("events");
    let payments_before = shop.gw.count_rows("payments");

    let send = |path: String, body: &'static [u8]| {
        let request = shop
            .gw
            .unauthenticated(reqwest::Method::POST, &path)
            .bearer_auth(&shop.merchant.key)
            .header("content-type", "application/json")
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            (status, body)
        }
    };
    let bodies: [&[u8]; 7] = [
        b"",
        b"  \n",
        b"[]",
        b"[500]",
        b"null",
        b"{",
        b"{\"amount\": 1} x",
    ];
    for body in bodies {
        for (id, operation) in [
            (paid, "refunds"),
            (paid, "reverse"),
            (pending, "complete"),
            (pending, "fail"),
        ] {
            let (status, answer) = send(format!("/v1/payments/{id}/{operation}"), body).await;
            let shown = String::from_utf8_lossy(body);
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{operation} {shown:?}: {answer}"
            );
            assert_eq!(answer["error"]["code"], "invalid_request", "{answer}");
        }
    }
    // Fields a route does not take are refused too.
    let (status, answer) = send(
        format!("/v1/payments/{pending}/complete"),
        b"{\"amount\": 5}",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(shop.gw.count_rows("events"), events_before, "no event");
    assert_eq!(shop.gw.count_rows("payments"), payments_before, "no refund");
    let (_, payment) = shop
        .gw
        .get(&shop.merchant.key, &format!("/v1/payments/{paid}"))
        .await;
    assert_eq!(payment["status"], "completed");
    assert_eq!(payment["refunded_amount"], 0);

    // `{}` is "all that is left" for a refund and "go ahead" elsewhere.
    let (status, refund) = send(format!("/v1/payments/{paid}/refunds"), b"{}").await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    assert_eq!(refund["amount"], -1999);
    let (status, completed) = send(format!("/v1/payments/{pending}/complete"), b" {} ").await;
    assert_eq!(status, StatusCode::OK, "{completed}");
}

#[tokio::test]
async fn an_address_the_mailer_cannot_send_to_is_refused_at_the_door() {
    let shop = Shop::open().await;
    let bad = "<script>alert(1)</script>@example.com";
    let mut payment = order(1999, "USD", card(VISA));
    payment["payer"]["email"] = json!(bad);
    let (status, body) = shop.post("/v1/payments", payment).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("payer.email") && message.contains("not an email address"),
        "{message}"
    );

    let (status, body) = shop
        .post(
            "/v1/checkout/sessions",
            json!({"invoice": "order-1", "amount": 1999, "currency": "USD",
                   "customer_email": bad, "success_url": "http://127.0.0.1:9/ok",
                   "cancel_url": "http://127.0.0.1:9/no"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("customer_email")
    );
    assert_eq!(shop.gw.count_rows("payments"), 0);
    assert_eq!(shop.gw.count_rows("checkout_sessions"), 0);
}
