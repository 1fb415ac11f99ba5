//! The delivery engine end to end: real gateway, real receivers, test clock.

mod common;

use std::time::Duration;

use common::{TestGateway, verify_signed};
use ipn_core::event::Event;
use ipn_core::paypal::IpnMessage;
use ipn_testkit::{Receiver, Reply, ResettingServer};
use reqwest::StatusCode;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

fn payment_data(merchant_id: &str, id: &str, amount: i64) -> serde_json::Value {
    json!({
        "object": "payment",
        "id": id,
        "status": "completed",
        "amount": amount,
        "currency": "USD",
        "merchant_id": merchant_id,
        "receiver_email": "shop@example.com",
        "payer": {"email": "buyer@example.com", "name": "Ada Lovelace"},
        "invoice": "ORD-1",
        "items": [{"sku": "MUG", "name": "Mug", "quantity": 1, "unit_amount": amount, "kind": "physical"}],
        "created_at": "2026-11-25T10:00:00Z"
    })
}

#[tokio::test]
async fn every_event_reaches_every_subscribed_endpoint_signed_in_its_dialect() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let (all, payments, paypal, invoices) = (
        Receiver::start().await.unwrap(),
        Receiver::start().await.unwrap(),
        Receiver::start().await.unwrap(),
        Receiver::start().await.unwrap(),
    );
    let ep_all = gw.endpoint(&shop, json!({"url": all.url("/all")})).await;
    let ep_payments = gw
        .endpoint(
            &shop,
            json!({"url": payments.url("/p"), "events": ["payment.*"]}),
        )
        .await;
    let ep_paypal = gw
        .endpoint(
            &shop,
            json!({"url": paypal.url("/ipn"), "dialect": "paypal"}),
        )
        .await;
    let ep_invoices = gw
        .endpoint(
            &shop,
            json!({"url": invoices.url("/i"), "events": ["invoice.paid"]}),
        )
        .await;

    let pay = "pay_01KAZ3NDEKTSV4RRFFQ69G5FAV";
    let completed = gw
        .ingest(
            &shop,
            "payment.completed",
            payment_data(&shop.id, pay, 1999),
        )
        .await;
    let invoice = gw
        .ingest(
            &shop,
            "invoice.paid",
            json!({"id": "inv_1", "total": 12345678901234567890u64}),
        )
        .await;

    let got_all = all.wait_for(2, WAIT).await;
    let got_payments = payments.wait_for(1, WAIT).await;
    let got_paypal = paypal.wait_for(1, WAIT).await;
    let got_invoices = invoices.wait_for(1, WAIT).await;
    assert_eq!(got_all.len(), 2);
    assert_eq!(got_payments.len(), 1);
    assert_eq!(
        got_paypal.len(),
        1,
        "a paypal endpoint gets no platform types"
    );
    assert_eq!(got_invoices.len(), 1);

    for request in &got_all {
        verify_signed(request, &ep_all.secret);
    }
    verify_signed(&got_payments[0], &ep_payments.secret);
    verify_signed(&got_paypal[0], &ep_paypal.secret);
    verify_signed(&got_invoices[0], &ep_invoices.secret);

    // The standard dialect delivers exactly the event the API answered with.
    let delivered: Event = serde_json::from_slice(&got_payments[0].body).unwrap();
    assert_eq!(delivered.id.to_string(), completed["id"].as_str().unwrap());
    assert_eq!(serde_json::to_value(&delivered).unwrap(), completed);
    assert_eq!(
        got_payments[0].header("webhook-id"),
        completed["id"].as_str()
    );
    assert_eq!(got_invoices[0].body_text(), invoice.to_string());
    assert!(got_invoices[0].body_text().contains("12345678901234567890"));

    // The paypal dialect delivers the IPN form of the same event.
    let ipn = IpnMessage::parse(&got_paypal[0].body).unwrap();
    assert_eq!(ipn.txn_id(), Some(pay));
    assert_eq!(ipn.get("mc_gross"), Some("19.99"));
    assert_eq!(ipn.get("payment_status"), Some("Completed"));
    assert_eq!(
        got_paypal[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
}

#[tokio::test]
async fn failed_attempts_follow_the_retry_schedule_then_dead_letter() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let down = Receiver::start().await.unwrap();
    down.respond_with(Reply::status(500).body("down for maintenance"));
    gw.endpoint(&shop, json!({"url": down.url("/hook")})).await;
    let event = gw
        .ingest(&shop, "invoice.paid", json!({"id": "inv_1"}))
        .await;
    let event_id = event["id"].as_str().unwrap();

    // Ten attempts: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
    // 14 h, 20 h and 24 h later (each ±20 %).
    let schedule = [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400];
    gw.wait_attempts(&shop, event_id, "first attempt", |a| a.len() == 1)
        .await;
    for (n, delay) in schedule.iter().enumerate() {
        gw.advance(delay * 12 / 10 + 1).await;
        gw.wait_attempts(&shop, event_id, "next attempt", |a| a.len() == n + 2)
            .await;
    }
    let attempts = gw.attempts(&shop, event_id).await;
    let times: Vec<time::OffsetDateTime> = attempts
        .iter()
        .map(|a| {
            time::OffsetDateTime::parse(
                a["attempted_at"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
        })
        .collect();
    for (i, delay) in schedule.iter().enumerate() {
        let gap = (times[i + 1] - times[i]).whole_milliseconds();
        let delay = i128::from(*delay) * 1000;
        assert!(
            gap >= delay * 8 / 10 && gap <= delay * 12 / 10 + 2000,
            "gap {i}: {gap} ms for a {delay} ms step"
        );
    }
    assert!(attempts.iter().all(|a| a["status"] == "failed"));
    assert_eq!(attempts[0]["response_status"], 500);
    assert_eq!(attempts[0]["response_body"], "down for maintenance");
    assert_eq!(attempts.last().unwrap()["number"], 10);

    // Dead letter: no eleventh attempt, and the event is listed as failed.
    gw.advance(7 * 24 * 3600).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(gw.attempts(&shop, event_id).await.len(), 10);
    assert_eq!(down.requests().len(), 10);
    let (_, failed) = gw.get(&shop.key, "/v1/events?delivery=failed").await;
    assert_eq!(failed["data"][0]["id"], event_id);
}

#[tokio::test]
async fn a_receiver_that_fails_then_recovers_gets_the_event_with_the_same_id() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let flaky = Receiver::start().await.unwrap();
    flaky.respond_next([Reply::status(503), Reply::status(502)]);
    let ep = gw.endpoint(&shop, json!({"url": flaky.url("/hook")})).await;
    let event = gw
        .ingest(&shop, "invoice.paid", json!({"id": "inv_7"}))
        .await;
    let event_id = event["id"].as_str().unwrap();
    gw.wait_attempts(&shop, event_id, "first", |a| a.len() == 1)
        .await;
    gw.advance(6).await;
    gw.wait_attempts(&shop, event_id, "second", |a| a.len() == 2)
        .await;
    gw.advance(360).await;
    let attempts = gw
        .wait_attempts(&shop, event_id, "success", |a| a.len() == 3)
        .await;
    assert_eq!(attempts[2]["status"], "succeeded");
    let got = flaky.requests();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.header("webhook-id") == Some(event_id)));
    for r in &got {
        verify_signed(r, &ep.secret);
    }
}

#[tokio::test]
async fn resend_and_recover_deliver_again_with_the_same_webhook_id() {
    let gw = TestGateway::start_with(|c| {
        c.delivery.retry.delays = vec![Duration::from_secs(5)];
    })
    .await;
    let shop = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    receiver.respond_next([Reply::status(500), Reply::status(500)]);
    let ep = gw
        .endpoint(&shop, json!({"url": receiver.url("/hook")}))
        .await;
    let event = gw
        .ingest(&shop, "invoice.paid", json!({"id": "inv_9"}))
        .await;
    let event_id = event["id"].as_str().unwrap();
    gw.wait_attempts(&shop, event_id, "first", |a| a.len() == 1)
        .await;
    gw.advance(10).await;
    gw.wait_attempts(&shop, event_id, "dead letter", |a| a.len() == 2)
        .await;
    let (_, failed) = gw.get(&shop.key, "/v1/events?delivery=failed").await;
    assert_eq!(failed["data"].as_array().unwrap().len(), 1);

    // Recover the endpoint's failed deliveries since an hour ago.
    let (status, body) = gw
        .post(
            &shop.key,
            &format!("/v1/endpoints/{}/recover", ep.id),
            json!({"since": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["recovered"], 1);
    gw.wait_attempts(&shop, event_id, "recovered", |a| a.len() == 3)
        .await;

    // Resend it once more, to all endpoints.
    let (status, body) = gw
        .post(
            &shop.key,
            &format!("/v1/events/{event_id}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    gw.wait_attempts(&shop, event_id, "resent", |a| a.len() == 4)
        .await;
    let got = receiver.requests();
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|r| r.header("webhook-id") == Some(event_id)));
    assert_eq!(got[2].body, got[0].body, "the same bytes each time");
}

#[tokio::test]
async fn a_hanging_endpoint_does_not_delay_a_healthy_one() {
    let gw = TestGateway::start_with(|c| {
        c.delivery.per_endpoint_concurrency = 4;
        c.delivery.timeout = Duration::from_secs(30);
    })
    .await;
    let shop = gw.merchant("shop").await;
    let slow_shop = gw.merchant("slow").await;
    let hanging = Receiver::start().await.unwrap();
    hanging.respond_with(Reply::ok().after(Duration::from_secs(60)));
    let healthy = Receiver::start().await.unwrap();
    gw.endpoint(&slow_shop, json!({"url": hanging.url("/hang")}))
        .await;
    gw.endpoint(&shop, json!({"url": healthy.url("/ok")})).await;
    gw.ingest_invoices(&slow_shop, "slow_", 20).await;
    gw.ingest_invoices(&shop, "ok_", 20).await;
    // The hanging lane holds its attempts for 30 s; the healthy ones must
    // all arrive well inside the wait.
    let got = healthy.wait_for(20, WAIT).await;
    assert_eq!(got.len(), 20);
    assert!(hanging.requests().len() <= 4, "the hanging lane is capped");
}

#[tokio::test]
async fn retry_after_is_honoured_and_410_disables_the_endpoint() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let busy = Receiver::start().await.unwrap();
    busy.respond_next([Reply::status(429).header("retry-after", "3600")]);
    gw.endpoint(&shop, json!({"url": busy.url("/busy")})).await;
    let event = gw.ingest(&shop, "invoice.paid", json!({"id": "a"})).await;
    let id = event["id"].as_str().unwrap();
    gw.wait_attempts(&shop, id, "429", |a| a.len() == 1).await;
    gw.advance(600).await; // past the 5 s step, not past Retry-After
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        gw.attempts(&shop, id).await.len(),
        1,
        "waits for Retry-After"
    );
    gw.advance(3600).await;
    gw.wait_attempts(&shop, id, "after Retry-After", |a| a.len() == 2)
        .await;

    let gone = Receiver::start().await.unwrap();
    gone.respond_with(Reply::status(410));
    let other = Receiver::start().await.unwrap();
    let ep = gw.endpoint(&shop, json!({"url": gone.url("/gone")})).await;
    gw.endpoint(
        &shop,
        json!({"url": other.url("/other"), "events": ["endpoint.*"]}),
    )
    .await;
    let event = gw.ingest(&shop, "invoice.paid", json!({"id": "b"})).await;
    let id = event["id"].as_str().unwrap();
    gw.wait_attempts(&shop, id, "410", |a| {
        a.iter().any(|x| x["response_status"] == 410)
    })
    .await;
    // The attempt is recorded, then the endpoint disabled: two commits.
    let deadline = tokio::time::Instant::now() + WAIT;
    let endpoint = loop {
        let (_, endpoint) = gw.get(&shop.key, &format!("/v1/endpoints/{}", ep.id)).await;
        if endpoint["status"] == "disabled" || tokio::time::Instant::now() > deadline {
            break endpoint;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(endpoint["status"], "disabled");
    assert_eq!(endpoint["disabled_reason"], "gone");
    // The merchant's other endpoint is told.
    let notice = other.wait_for(1, WAIT).await;
    let notice: serde_json::Value = serde_json::from_slice(&notice[0].body).unwrap();
    assert_eq!(notice["type"], "endpoint.disabled");
    assert_eq!(notice["data"]["id"], ep.id.as_str());
    assert_eq!(notice["data"]["disabled_reason"], "gone");
    // And no retry follows.
    gw.advance(3 * 24 * 3600).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(gone.requests().len(), 1);
}

#[tokio::test]
async fn redirects_resets_and_huge_bodies_are_failed_attempts_recorded_briefly() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let target = Receiver::start().await.unwrap();
    let redirecting = Receiver::start().await.unwrap();
    redirecting.respond_with(Reply::status(302).header("location", &target.url("/x")));
    let huge = Receiver::start().await.unwrap();
    huge.respond_with(Reply::status(500).body(vec![b'x'; 1024 * 1024]));
    gw.endpoint(&shop, json!({"url": redirecting.url("/r")}))
        .await;
    gw.endpoint(&shop, json!({"url": huge.url("/h")})).await;
    // Nothing listens on this port: the connection is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    gw.endpoint(&shop, json!({"url": format!("http://{closed}/c")}))
        .await;
    let event = gw.ingest(&shop, "invoice.paid", json!({"id": "c"})).await;
    let id = event["id"].as_str().unwrap();
    let attempts = gw
        .wait_attempts(&shop, id, "three attempts", |a| a.len() == 3)
        .await;
    assert!(attempts.iter().all(|a| a["status"] == "failed"));
    let redirect = attempts
        .iter()
        .find(|a| a["response_status"] == 302)
        .unwrap();
    assert!(redirect["error"].as_str().unwrap().contains("302"));
    assert!(target.requests().is_empty(), "the redirect is not followed");
    let big = attempts
        .iter()
        .find(|a| a["response_status"] == 500)
        .unwrap();
    assert_eq!(big["response_body"].as_str().unwrap().len(), 1024);
    let refused = attempts
        .iter()
        .find(|a| a["response_status"].is_null())
        .unwrap();
    assert!(!refused["error"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn merchants_see_only_their_own_events_and_endpoints() {
    let gw = TestGateway::start().await;
    let a = gw.merchant("a").await;
    let b = gw.merchant("b").await;
    let receiver = Receiver::start().await.unwrap();
    let ep = gw.endpoint(&a, json!({"url": receiver.url("/a")})).await;
    let event = gw.ingest(&a, "invoice.paid", json!({"id": "x"})).await;
    let id = event["id"].as_str().unwrap();
    for path in [
        format!("/v1/events/{id}"),
        format!("/v1/events/{id}/attempts"),
        format!("/v1/endpoints/{}", ep.id),
    ] {
        let (status, body) = gw.get(&b.key, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    let (status, _) = gw
        .post(&b.key, &format!("/v1/events/{id}/resend"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = gw.get(&b.key, "/v1/events").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    let (_, list) = gw.get(&b.key, "/v1/endpoints").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    let (status, _) = gw.get("not-a-key", "/v1/events").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn ordered_endpoints_get_each_objects_events_one_at_a_time_in_order() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    receiver.respond_next([Reply::status(500)]);
    gw.endpoint(&shop, json!({"url": receiver.url("/o"), "ordered": true}))
        .await;
    let pay = "pay_01KAZ3NDEKTSV4RRFFQ69G5FAV";
    let first = gw
        .ingest(
            &shop,
            "payment.completed",
            payment_data(&shop.id, pay, 1999),
        )
        .await;
    gw.wait_attempts(&shop, first["id"].as_str().unwrap(), "first fails", |a| {
        a.len() == 1
    })
    .await;
    let mut refund = payment_data(&shop.id, "pay_01KAZ3NDEKTSV4RRFFQ69G5FAW", -500);
    refund["parent_id"] = json!(pay);
    refund["status"] = json!("refunded");
    let second = gw.ingest(&shop, "payment.refunded", refund).await;
    let mut reversal = payment_data(&shop.id, "pay_01KAZ3NDEKTSV4RRFFQ69G5FAX", -1499);
    reversal["parent_id"] = json!(pay);
    reversal["status"] = json!("reversed");
    let third = gw.ingest(&shop, "payment.reversed", reversal).await;
    assert_eq!(
        [&first["sequence"], &second["sequence"], &third["sequence"]],
        [1, 2, 3]
    );
    // Another object is not held up by the first one's retry.
    let other = gw
        .ingest(
            &shop,
            "payment.completed",
            payment_data(&shop.id, "pay_01KAZ3NDEKTSV4RRFFQ69G5FAY", 100),
        )
        .await;
    let got = receiver.wait_for(2, WAIT).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].header("webhook-id"), other["id"].as_str());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        receiver.requests().len(),
        2,
        "the refund waits behind the payment"
    );

    gw.advance(7).await;
    let got = receiver.wait_for(5, WAIT).await;
    let ids: Vec<Option<&str>> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(
        ids[2..],
        [
            first["id"].as_str(),
            second["id"].as_str(),
            third["id"].as_str()
        ]
    );
}

#[tokio::test]
async fn a_dead_endpoints_breaker_opens_and_its_events_still_arrive_after_recovery() {
    let gw = TestGateway::start_with(|c| c.delivery.per_endpoint_concurrency = 1).await;
    let shop = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    receiver.respond_with(Reply::status(500));
    gw.endpoint(&shop, json!({"url": receiver.url("/dead")}))
        .await;
    let ids = gw.ingest_invoices(&shop, "d", 20).await;
    // Five real attempts open the breaker; the other fifteen deliveries are
    // parked: no attempt is made or recorded, no retry step is used up.
    let deadline = tokio::time::Instant::now() + WAIT;
    // One of them waits in the schedule as the breaker's probe.
    while gw.metric("ipn_deliveries_parked").await < 14.0 {
        assert!(tokio::time::Instant::now() < deadline, "never parked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(receiver.requests().len(), 5);
    let mut never_attempted = 0;
    for id in &ids {
        if gw.attempts(&shop, id).await.is_empty() {
            never_attempted += 1;
        }
    }
    assert_eq!(never_attempted, 15);

    // The endpoint comes back: the probe after the cool-down closes the
    // breaker and releases the parked deliveries; the five attempted ones
    // follow on their retry schedule.
    receiver.respond_with(Reply::ok());
    gw.advance(40).await;
    gw.advance(400).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        // Delivered first: a delivered event never goes back, so once all
        // are, nothing may be pending or failed after.
        let (_, delivered) = gw.get(&shop.key, "/v1/events?delivery=delivered").await;
        let (_, pending) = gw.get(&shop.key, "/v1/events?delivery=pending").await;
        let (_, failed) = gw.get(&shop.key, "/v1/events?delivery=failed").await;
        if delivered["data"].as_array().unwrap().len() == ids.len() {
            assert!(pending["data"].as_array().unwrap().is_empty());
            assert!(failed["data"].as_array().unwrap().is_empty());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all delivered: {pending}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut first_time_lucky = 0;
    for id in &ids {
        let attempts = gw.attempts(&shop, id).await;
        if attempts.len() == 1 {
            assert_eq!(attempts[0]["status"], "succeeded");
            first_time_lucky += 1;
        }
    }
    assert_eq!(first_time_lucky, 15, "parking used up no attempt");
    assert_eq!(gw.metric("ipn_deliveries_parked").await, 0.0);
}

#[tokio::test]
async fn disabling_an_endpoint_drops_its_parked_deliveries_and_frees_its_ordered_streams() {
    let gw = TestGateway::start_with(|c| c.delivery.per_endpoint_concurrency = 1).await;
    let shop = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    receiver.respond_with(Reply::status(500));
    let ep = gw
        .endpoint(
            &shop,
            json!({"url": receiver.url("/ordered"), "ordered": true}),
        )
        .await;
    // Five objects fail five times in all and open the breaker; the sixth
    // object's two events are parked, the first at its stream's head.
    gw.ingest_invoices(&shop, "x", 5).await;
    for _ in 0..2 {
        gw.ingest(&shop, "invoice.paid", json!({"id": "a"})).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while gw.metric("ipn_deliveries_parked").await < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "never parked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = gw
        .post(
            &shop.key,
            &format!("/v1/endpoints/{}/disable", ep.id),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(gw.metric("ipn_deliveries_parked").await, 0.0);

    // Enabled again and healthy: a new event of the same object is not
    // stuck behind the dropped head, and the deliveries the disable failed
    // are not sent again unasked.
    let (status, _) = gw
        .post(
            &shop.key,
            &format!("/v1/endpoints/{}/enable", ep.id),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    receiver.respond_with(Reply::ok());
    gw.advance(60).await; // past the breaker's cool-down
    let before = receiver.requests().len();
    let event = gw.ingest(&shop, "invoice.paid", json!({"id": "a"})).await;
    let got = receiver.wait_for(before + 1, WAIT).await;
    assert_eq!(got.len(), before + 1, "the new event arrived");
    assert_eq!(
        got.last().unwrap().header("webhook-id"),
        event["id"].as_str()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        receiver.requests().len(),
        before + 1,
        "nothing else was sent"
    );
}

#[tokio::test]
async fn an_endpoint_failing_for_five_days_is_disabled_and_the_merchant_told() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let dead = Receiver::start().await.unwrap();
    dead.respond_with(Reply::status(500));
    let watcher = Receiver::start().await.unwrap();
    let ep = gw
        .endpoint(
            &shop,
            json!({"url": dead.url("/dead"), "events": ["invoice.*"]}),
        )
        .await;
    gw.endpoint(
        &shop,
        json!({"url": watcher.url("/w"), "events": ["endpoint.*"]}),
    )
    .await;
    // One event a day; retries, then breaker probes, keep attempts coming
    // while the endpoint stays down.
    for day in 0..5 {
        gw.ingest(&shop, "invoice.paid", json!({"id": format!("day{day}")}))
            .await;
        let (_, endpoint) = gw.get(&shop.key, &format!("/v1/endpoints/{}", ep.id)).await;
        assert_eq!(endpoint["status"], "enabled", "day {day}");
        let tried = dead.requests().len();
        gw.advance(24 * 3600).await;
        let requests = dead.wait_for(tried + 1, WAIT).await;
        assert!(requests.len() > tried, "day {day}: not tried again");
    }
    // Past five days, the next failed attempt disables it.
    let mut endpoint = serde_json::Value::Null;
    for _ in 0..48 {
        gw.advance(3600).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        endpoint = gw
            .get(&shop.key, &format!("/v1/endpoints/{}", ep.id))
            .await
            .1;
        if endpoint["status"] == "disabled" {
            break;
        }
    }
    assert_eq!(endpoint["status"], "disabled", "{endpoint}");
    assert_eq!(endpoint["disabled_reason"], "failing");
    let notices = watcher.wait_for(1, WAIT).await;
    let notice: serde_json::Value = serde_json::from_slice(&notices[0].body).unwrap();
    assert_eq!(notice["type"], "endpoint.disabled");
    assert_eq!(notice["data"]["disabled_reason"], "failing");

    // Disabled: new events are not delivered to it; enabling starts afresh.
    let before = dead.requests().len();
    gw.ingest(&shop, "invoice.paid", json!({"id": "after"}))
        .await;
    gw.advance(3600).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(dead.requests().len(), before);
    let (status, enabled) = gw
        .post(
            &shop.key,
            &format!("/v1/endpoints/{}/enable", ep.id),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{enabled}");
    assert_eq!(enabled["status"], "enabled");
    assert!(enabled["failing_since"].is_null());
}

#[tokio::test]
async fn a_connection_reset_is_a_failed_attempt_that_is_retried() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let resetting = ResettingServer::start().await.unwrap();
    gw.endpoint(&shop, json!({"url": resetting.url("/reset")}))
        .await;
    let event = gw.ingest(&shop, "invoice.paid", json!({"id": "r"})).await;
    let id = event["id"].as_str().unwrap();
    let attempts = gw.wait_attempts(&shop, id, "reset", |a| a.len() == 1).await;
    assert_eq!(attempts[0]["status"], "failed");
    assert!(attempts[0]["response_status"].is_null());
    let error = attempts[0]["error"].as_str().unwrap();
    assert!(!error.is_empty(), "{attempts:#?}");
    gw.advance(7).await;
    gw.wait_attempts(&shop, id, "retry", |a| a.len() == 2).await;
    assert!(resetting.accepted() >= 2);
}
