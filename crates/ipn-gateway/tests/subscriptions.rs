//! Subscriptions on the virtual clock: the exact events of each life, in
//! order with their sequences, at a standard and a PayPal endpoint.

mod common;

use std::time::Duration;

use common::{ADMIN_KEY, Shop, verify_signed};
use ipn_core::paypal::Form;
use reqwest::StatusCode;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
const DAY: u64 = 24 * 3600;

const VISA: &str = "4242 4242 4242 4242";
const DECLINES_RENEWALS: &str = "4000 0000 0000 0341";
const DECLINED: &str = "4000 0000 0000 0002";

impl Shop {
    async fn subscribe(&self, body: Value) -> Value {
        let (status, sub) = self.post("/v1/subscriptions", body).await;
        assert_eq!(status, StatusCode::CREATED, "{sub}");
        sub
    }

    /// Waits until `count` events arrived at both endpoints; returns the
    /// standard ones as (type, sequence) in sequence order, and the PayPal
    /// `txn_type`s in the same order.
    async fn events(&self, count: usize) -> (Vec<(String, u64)>, Vec<String>) {
        let standard = self.standard.wait_for(count, WAIT).await;
        let paypal = self.paypal.wait_for(count, WAIT).await;
        let mut events: Vec<Value> = standard
            .iter()
            .map(|r| {
                verify_signed(r, &self.secret);
                serde_json::from_slice(&r.body).unwrap()
            })
            .collect();
        events.sort_by_key(|e| e["sequence"].as_u64());
        let mut forms: Vec<(usize, String)> = paypal
            .iter()
            .map(|r| {
                let id = r.header("webhook-id").unwrap();
                let at = events.iter().position(|e| e["id"] == id).unwrap();
                let form = Form::parse(&r.body).unwrap();
                (at, form.get("txn_type").unwrap_or("").to_owned())
            })
            .collect();
        forms.sort();
        let types = events
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap().to_owned(),
                    e["sequence"].as_u64().unwrap(),
                )
            })
            .collect();
        (types, forms.into_iter().map(|(_, t)| t).collect())
    }

    /// Advances the clock to the subscription's next billing step, just
    /// past it, and waits until `events_by_then` events arrived; returns
    /// the days it took.
    async fn advance_to_next_step(&self, id: &str, events_by_then: usize) -> f64 {
        let (_, sub) = self
            .gw
            .get(&self.merchant.key, &format!("/v1/subscriptions/{id}"))
            .await;
        let next = parse(sub["next_billing_at"].as_str().expect("a next step"));
        let (_, clock) = self
            .gw
            .post(ADMIN_KEY, "/v1/test/clock/advance", json!({"seconds": 0}))
            .await;
        let now = parse(clock["now"].as_str().unwrap());
        let seconds = (next - now).whole_seconds().max(0) as u64 + 1;
        self.gw.advance(seconds).await;
        let arrived = self.standard.wait_for(events_by_then, WAIT).await.len();
        assert_eq!(arrived, events_by_then, "after the step due at {next}");
        seconds as f64 / DAY as f64
    }

    /// Advances the clock, then waits for the events that brings.
    async fn advance_days(&self, days: u64, events_by_then: usize) {
        self.gw.advance(days * DAY).await;
        let arrived = self.standard.wait_for(events_by_then, WAIT).await.len();
        assert_eq!(arrived, events_by_then, "after {days} more days");
    }
}

fn parse(text: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
}

fn plan(card: &str) -> Value {
    json!({
        "amount": 999,
        "currency": "USD",
        "interval": "month",
        "invoice": "member-1",
        "payer": {"email": "ann@example.com", "name": "Ann Smith"},
        "payment_method": {"card_number": card},
    })
}

fn expected(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(t, s)| ((*t).to_owned(), *s)).collect()
}

#[tokio::test]
async fn a_trial_then_thirteen_monthly_cycles_with_a_failed_then_recovered_charge() {
    let shop = Shop::open().await;
    let mut body = plan(VISA);
    body["trial_days"] = json!(14);
    body["total_cycles"] = json!(13);
    let sub = shop.subscribe(body).await;
    assert_eq!(sub["status"], "trialing");
    let id = sub["id"].as_str().unwrap().to_owned();
    shop.advance_days(0, 1).await;

    // The trial ends: the first charge.
    let days = shop.advance_to_next_step(&id, 2).await;
    assert!((13.9..=14.1).contains(&days), "{days} days of trial");
    for n in 3..=6 {
        let days = shop.advance_to_next_step(&id, n).await;
        assert!(
            (27.9..=31.1).contains(&days),
            "a calendar month: {days} days"
        );
    }
    // Cycle 6's charge is declined; the payer's new card pays the retry.
    let (status, _) = shop
        .post(
            &format!("/v1/subscriptions/{id}/payment-method"),
            json!({"card_number": DECLINES_RENEWALS}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    shop.advance_to_next_step(&id, 7).await;
    let (_, past_due) = shop
        .gw
        .get(&shop.merchant.key, &format!("/v1/subscriptions/{id}"))
        .await;
    assert_eq!(past_due["status"], "past_due");
    let (status, _) = shop
        .post(
            &format!("/v1/subscriptions/{id}/payment-method"),
            json!({"card_number": VISA}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let days = shop.advance_to_next_step(&id, 8).await;
    assert!((2.9..=3.1).contains(&days), "retried {days} days later");
    // The rest of the thirteen cycles, then the end of the last period.
    for n in 9..=16 {
        shop.advance_to_next_step(&id, n).await;
    }

    let (events, txn_types) = shop.events(16).await;
    let mut want = vec![("subscription.created", 1)];
    for seq in 2..=6 {
        want.push(("subscription.payment", seq));
    }
    want.push(("subscription.payment_failed", 7));
    for seq in 8..=15 {
        want.push(("subscription.payment", seq));
    }
    want.push(("subscription.expired", 16));
    assert_eq!(events, expected(&want));
    assert_eq!(txn_types[0], "subscr_signup");
    assert_eq!(txn_types[1], "subscr_payment");
    assert_eq!(txn_types[6], "subscr_failed");
    assert_eq!(txn_types[15], "subscr_eot");

    let (_, done) = shop
        .gw
        .get(&shop.merchant.key, &format!("/v1/subscriptions/{id}"))
        .await;
    assert_eq!(done["status"], "expired");
    assert_eq!(done["cycles_paid"], 13);
    assert!(done["next_billing_at"].is_null());
    // Nothing more ever happens.
    shop.gw.advance(62 * DAY).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(shop.standard.requests().len(), 16);
}

#[tokio::test]
async fn a_renewal_that_keeps_failing_cancels_the_subscription() {
    let shop = Shop::open().await;
    let sub = shop.subscribe(plan(DECLINES_RENEWALS)).await;
    assert_eq!(sub["status"], "active", "the first charge completes");
    assert_eq!(sub["cycles_paid"], 1);
    shop.advance_days(0, 2).await;
    shop.advance_days(31, 3).await; // declined
    shop.advance_days(3, 4).await; // first retry
    shop.advance_days(5, 5).await; // second retry
    shop.advance_days(7, 8).await; // last retry: canceled, and over
    let (events, txn_types) = shop.events(8).await;
    assert_eq!(
        events,
        expected(&[
            ("subscription.created", 1),
            ("subscription.payment", 2),
            ("subscription.payment_failed", 3),
            ("subscription.payment_failed", 4),
            ("subscription.payment_failed", 5),
            ("subscription.payment_failed", 6),
            ("subscription.canceled", 7),
            ("subscription.expired", 8),
        ])
    );
    assert_eq!(txn_types[6], "subscr_cancel");
    assert_eq!(txn_types[7], "subscr_eot");
}

#[tokio::test]
async fn cancel_at_period_end_keeps_access_until_then() {
    let shop = Shop::open().await;
    let sub = shop.subscribe(plan(VISA)).await;
    let id = sub["id"].as_str().unwrap();
    shop.advance_days(0, 2).await;
    let (status, canceled) = shop
        .post(
            &format!("/v1/subscriptions/{id}/cancel"),
            json!({"at_period_end": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{canceled}");
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(canceled["cancel_at_period_end"], true);
    assert_eq!(canceled["next_billing_at"], canceled["paid_through"]);
    shop.advance_days(0, 3).await;
    shop.advance_days(31, 4).await;
    let (events, _) = shop.events(4).await;
    assert_eq!(
        events,
        expected(&[
            ("subscription.created", 1),
            ("subscription.payment", 2),
            ("subscription.canceled", 3),
            ("subscription.expired", 4),
        ])
    );
    let (status, _) = shop
        .post(&format!("/v1/subscriptions/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "expired already");
}

#[tokio::test]
async fn cancel_now_after_cancel_at_period_end_ends_access_at_once() {
    let shop = Shop::open().await;
    let sub = shop.subscribe(plan(VISA)).await;
    let id = sub["id"].as_str().unwrap();
    let cancel = format!("/v1/subscriptions/{id}/cancel");
    let (status, _) = shop.post(&cancel, json!({"at_period_end": true})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = shop.post(&cancel, json!({"at_period_end": true})).await;
    assert_eq!(status, StatusCode::CONFLICT, "canceled already");
    let (status, now) = shop.post(&cancel, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{now}");
    assert_eq!(now["status"], "expired");
    let (events, _) = shop.events(4).await;
    assert_eq!(events[3], ("subscription.expired".to_owned(), 4));
}

#[tokio::test]
async fn missed_retries_after_a_long_clock_advance_still_end_in_cancellation() {
    let shop = Shop::open().await;
    shop.subscribe(plan(DECLINES_RENEWALS)).await;
    shop.advance_days(0, 2).await;
    // One jump over the renewal and all three retries (3, 5 and 7 days
    // after each failure): each is taken as it fell due.
    shop.advance_days(61, 8).await;
    let (events, _) = shop.events(8).await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "subscription.created",
            "subscription.payment",
            "subscription.payment_failed",
            "subscription.payment_failed",
            "subscription.payment_failed",
            "subscription.payment_failed",
            "subscription.canceled",
            "subscription.expired",
        ]
    );
    let failures: Vec<Value> = shop
        .standard
        .requests()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .filter(|e| e["type"] == "subscription.payment_failed")
        .collect();
    let days: Vec<i64> = failures
        .iter()
        .map(|e| {
            let at = time::OffsetDateTime::parse(
                e["created_at"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            at.unix_timestamp() / DAY as i64
        })
        .collect();
    let mut days = days;
    days.sort();
    let gaps: Vec<i64> = days.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [3, 5, 7], "retries dated as they fell due");
}

#[tokio::test]
async fn cancel_now_ends_access_at_once() {
    let shop = Shop::open().await;
    let sub = shop.subscribe(plan(VISA)).await;
    let id = sub["id"].as_str().unwrap();
    let (status, over) = shop
        .post(&format!("/v1/subscriptions/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{over}");
    assert_eq!(over["status"], "expired");
    let (events, _) = shop.events(4).await;
    assert_eq!(
        events,
        expected(&[
            ("subscription.created", 1),
            ("subscription.payment", 2),
            ("subscription.canceled", 3),
            ("subscription.expired", 4),
        ])
    );
}

#[tokio::test]
async fn a_limited_plan_expires_after_its_last_cycle() {
    let shop = Shop::open().await;
    let mut body = plan(VISA);
    body["total_cycles"] = json!(2);
    body["interval"] = json!("week");
    shop.subscribe(body).await;
    shop.advance_days(0, 2).await;
    shop.advance_days(7, 3).await;
    shop.advance_days(7, 4).await;
    let (events, _) = shop.events(4).await;
    assert_eq!(
        events,
        expected(&[
            ("subscription.created", 1),
            ("subscription.payment", 2),
            ("subscription.payment", 3),
            ("subscription.expired", 4),
        ])
    );
}

#[tokio::test]
async fn bad_signups_get_a_clear_4xx_and_create_nothing() {
    let shop = Shop::open().await;
    let mut cases = Vec::new();
    for (field, value) in [
        ("amount", json!(0)),
        ("currency", json!("XYZ")),
        ("interval", json!("fortnight")),
        ("trial_days", json!(365)),
        ("total_cycles", json!(0)),
        ("interval_count", json!(0)),
    ] {
        let mut body = plan(VISA);
        body[field] = value;
        cases.push((body, StatusCode::BAD_REQUEST));
    }
    let mut transfer = plan(VISA);
    transfer["payment_method"] = json!({"type": "bank_transfer"});
    cases.push((transfer, StatusCode::BAD_REQUEST));
    cases.push((plan("4000 0000 0000 0077"), StatusCode::BAD_REQUEST));
    cases.push((plan(DECLINED), StatusCode::PAYMENT_REQUIRED));
    for (body, want) in cases {
        let (status, error) = shop.post("/v1/subscriptions", body.clone()).await;
        assert_eq!(status, want, "{body} → {error}");
        assert!(error["error"]["message"].is_string(), "{error}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(shop.standard.requests().is_empty(), "no event at all");
}

#[tokio::test]
async fn an_idempotency_key_replays_a_signup_and_refuses_another_body() {
    let shop = Shop::open().await;
    let send = |body: Value| {
        shop.gw
            .unauthenticated(reqwest::Method::POST, "/v1/subscriptions")
            .bearer_auth(&shop.merchant.key)
            .header("idempotency-key", "signup-1")
            .json(&body)
            .send()
    };
    let first = send(plan(VISA)).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let again = send(plan(VISA)).await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    let mut other = plan(VISA);
    other["amount"] = json!(1999);
    assert_eq!(send(other).await.unwrap().status(), StatusCode::CONFLICT);
    let (events, _) = shop.events(2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(shop.standard.requests().len(), 2, "one signup: {events:?}");
}
