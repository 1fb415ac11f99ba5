//! PayPal verification by postback: the merchant asks the gateway about
//! each `/ipn` message and records `verified` or `invalid`; while the
//! gateway cannot be reached, the message waits and is retried.

mod common;

use std::time::Duration;

use common::{Account, Bound, InboxRow, TestGateway, TestMerchant, WAIT};
use reqwest::StatusCode;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

const FORM: &str = "application/x-www-form-urlencoded";
/// Longest wait for a retry: the backoff starts at 1 s and doubles, so a
/// few attempts may pass while the test sets the gateway up again.
const RETRY_WAIT: Duration = Duration::from_secs(40);

/// An account with a paypal endpoint at the merchant's `/ipn`, and the
/// merchant, which posts back to `postback_url`.
async fn shop(gw: &TestGateway, postback_url: &str) -> (Account, TestMerchant) {
    let account = gw.account("shop").await;
    let bound = Bound::new().await;
    let (_, secret) = gw
        .endpoint(
            &account,
            json!({"url": format!("{}/ipn", bound.url), "dialect": "paypal"}),
        )
        .await;
    let shop = TestMerchant::start(bound, postback_url, &secret).await;
    (account, shop)
}

/// A card payment of 19.99 USD; returns its id.
async fn pay(gw: &TestGateway, account: &Account) -> String {
    let (status, payment) = gw
        .post(
            &account.key,
            "/v1/payments",
            json!({
                "amount": 1999,
                "currency": "USD",
                "invoice": "order-1",
                "payer": {"email": "ann@example.com", "name": "Ann Smith"},
                "payment_method": {"card_number": "4242 4242 4242 4242"},
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["status"], "completed");
    payment["id"].as_str().unwrap().to_owned()
}

/// Every message verified and handled, or found invalid: a verified one
/// waits a moment for the handler, which the checks below expect done.
fn settled(rows: &[InboxRow], count: usize) -> bool {
    rows.len() >= count
        && rows
            .iter()
            .all(|row| matches!(row.status.as_str(), "processed" | "invalid"))
}

fn assert_verified(row: &InboxRow) {
    assert_eq!(row.dialect, "paypal");
    // Verified, then handed to the handler, which applied it or (when the
    // test's payment names no order of this shop) flagged it.
    assert_eq!(row.status, "processed", "{row:#?}");
    assert_eq!(row.verification.as_deref(), Some("VERIFIED"));
    assert!(row.verified_at.is_some_and(|at| at > 0), "{row:#?}");
    assert_eq!(row.postback_error, None);
}

fn assert_invalid(row: &InboxRow) {
    assert_eq!(row.status, "invalid", "{row:#?}");
    assert_eq!(row.verification.as_deref(), Some("INVALID"));
    assert!(row.verified_at.is_some_and(|at| at > 0), "{row:#?}");
}

#[tokio::test]
async fn a_card_payment_delivered_to_ipn_ends_verified() {
    let gw = TestGateway::start().await;
    let (account, shop) = shop(&gw, &gw.url).await;
    pay(&gw, &account).await;
    let rows = shop
        .wait_until("the payment's IPN verified", WAIT, |rows| settled(rows, 1))
        .await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_verified(&rows[0]);
    assert_eq!(rows[0].postback_attempts, 0, "answered at the first try");

    shop.merchant.shutdown().await.unwrap();
    gw.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_copy_altered_by_one_byte_ends_invalid_and_the_original_stays_verified() {
    let gw = TestGateway::start().await;
    let (account, shop) = shop(&gw, &gw.url).await;
    pay(&gw, &account).await;
    let rows = shop
        .wait_until("the payment's IPN verified", WAIT, |rows| settled(rows, 1))
        .await;
    let original = &rows[0];
    assert_verified(original);

    let text = String::from_utf8(original.body.clone()).unwrap();
    assert_eq!(text.matches("mc_gross=19.99&").count(), 1, "{text}");
    let altered = text.replace("mc_gross=19.99&", "mc_gross=19.98&");
    assert_eq!(altered.len(), text.len());
    let (status, answer) = shop
        .post("/ipn", &[("content-type", FORM)], altered.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let rows = shop
        .wait_until("the altered copy settled", WAIT, |rows| settled(rows, 2))
        .await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(rows[1].body, altered.as_bytes(), "kept for audit as sent");
    assert_invalid(&rows[1]);
    assert_verified(&rows[0]);

    shop.merchant.shutdown().await.unwrap();
    gw.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn messages_the_gateway_never_sent_end_invalid() {
    let gw = TestGateway::start().await;
    let (_account, shop) = shop(&gw, &gw.url).await;
    let forged = [
        // Shaped like the gateway's, with an event id it never issued.
        "mc_gross=19.99&txn_id=pay_01JZZZZZZZZZZZZZZZZZZZZZZZ&payment_status=Completed\
         &mc_currency=USD&ipn_track_id=evt_01JZZZZZZZZZZZZZZZZZZZZZZZ&charset=UTF-8",
        // No event id at all.
        "txn_id=61E67681CH3238416&payment_status=Completed&mc_gross=19.99&charset=UTF-8\
         &verify_sign=AFcWxV21C7fd0v3bYYYRCpSSRl31A",
    ];
    for body in forged {
        let (status, answer) = shop.post("/ipn", &[("content-type", FORM)], body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let rows = shop
        .wait_until("the forged messages settled", WAIT, |rows| settled(rows, 2))
        .await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    for (row, body) in rows.iter().zip(forged) {
        assert_eq!(row.body, body.as_bytes());
        assert_invalid(row);
    }

    shop.merchant.shutdown().await.unwrap();
    gw.gateway.shutdown().await.unwrap();
}

/// Forwards every connection to `addr` to `to`, from the moment it is
/// called: the gateway "coming back" at the address the merchant was given.
async fn forward(listener: TcpListener, to: String) {
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let to = to.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(&to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
}

#[tokio::test]
async fn while_the_gateway_is_unreachable_messages_wait_then_are_verified_once() {
    let gw = TestGateway::start().await;
    // An address nothing listens on (yet): postbacks are refused.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let postback_addr = closed.local_addr().unwrap();
    drop(closed);
    let (account, shop) = shop(&gw, &format!("http://{postback_addr}")).await;

    let payment_id = pay(&gw, &account).await;
    let (status, refund) = gw
        .post(
            &account.key,
            &format!("/v1/payments/{payment_id}/refunds"),
            json!({"amount": 500}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");

    let rows = shop
        .wait_until("both IPNs tried and refused", WAIT, |rows| {
            rows.len() == 2 && rows.iter().all(|row| row.postback_attempts >= 1)
        })
        .await;
    for row in &rows {
        assert_eq!(row.status, "unverified", "{row:#?}");
        assert_eq!(row.verification, None);
        let error = row.postback_error.as_deref().unwrap_or_default();
        assert!(error.contains("could not be reached"), "{error}");
    }

    // The gateway is back at the address the merchant was given.
    let listener = TcpListener::bind(postback_addr).await.unwrap();
    forward(listener, gw.gateway.addr().to_string()).await;
    let rows = shop
        .wait_until("both IPNs verified after retrying", RETRY_WAIT, |rows| {
            settled(rows, 2)
        })
        .await;
    assert_eq!(rows.len(), 2, "no row added by retrying: {rows:#?}");
    for row in &rows {
        assert_verified(row);
        assert!(row.postback_attempts >= 1, "{row:#?}");
    }

    shop.merchant.shutdown().await.unwrap();
    gw.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_5xx_or_an_answer_that_is_neither_word_is_retried_with_the_exact_bytes() {
    // A stand-in gateway: an error page, then a 200 that says neither word,
    // then the real answer.
    let fake = ipn_testkit::Receiver::start().await.unwrap();
    fake.respond_next([
        ipn_testkit::Reply::status(503),
        ipn_testkit::Reply::ok().body("OK"),
    ]);
    fake.respond_with(ipn_testkit::Reply::ok().body("VERIFIED"));
    let secret = ipn_core::standard::WebhookSecret::generate().reveal();
    let shop = TestMerchant::start(Bound::new().await, &fake.url(""), &secret).await;

    // Escapes as other senders write them: what is posted back must be
    // these bytes, not a re-encoding.
    let body = "txn_id=61E67681CH3238416&payment_status=Completed&mc_gross=19.99\
                &first_name=J%c3%b6rg&last_name=M+%C3%BCller%20Jr&charset=UTF-8\
                &verify_sign=AFcWxV21C7fd0v3bYYYRCpSSRl31A";
    let (status, answer) = shop.post("/ipn", &[("content-type", FORM)], body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let rows = shop
        .wait_until("the message verified after retrying", RETRY_WAIT, |rows| {
            settled(rows, 1)
        })
        .await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_verified(&rows[0]);
    assert_eq!(rows[0].postback_attempts, 2, "the 503 and the \"OK\"");

    let posted = fake.requests();
    assert_eq!(posted.len(), 3, "{posted:#?}");
    for request in &posted {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/cgi-bin/webscr");
        assert_eq!(request.header("content-type"), Some(FORM));
        assert_eq!(
            request.body_text(),
            format!("cmd=_notify-validate&{body}"),
            "the stored bytes, byte for byte"
        );
    }

    shop.merchant.shutdown().await.unwrap();
}
