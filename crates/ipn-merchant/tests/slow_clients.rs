//! Slow and idle clients (issue 12, defect 3): the shop closes each on time
//! and keeps serving its pages, its API and its receivers meanwhile.

mod common;

use std::time::Duration;

use common::{TestGateway, TestMerchant};
use ipn_testkit::slow::{Crowd, Slow, assert_timed_out};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_on_time_while_others_are_served() {
    let timeout = Duration::from_secs(2);
    let gateway = TestGateway::start().await;
    let account = gateway.account("shop").await;
    let shop = TestMerchant::shop_with(&gateway.url, &account, |config| {
        config.http_limits = ipn_web::Limits {
            header_read: timeout,
            idle: timeout,
            body: timeout,
            max_connections: 512,
        };
    })
    .await;

    let mut crowd = Crowd::new(
        shop.merchant.addr(),
        Duration::from_millis(100),
        Duration::from_secs(30),
    );
    crowd.add(Slow::Head, 50, "/");
    crowd.add(Slow::Body, 50, "/ipn");
    crowd.add(Slow::Idle, 50, "/api/products");
    crowd.connected().await;

    // With all 150 open, customers are served and IPNs received.
    let client = reqwest::Client::new();
    for path in ["/", "/api/products", "/healthz"] {
        let response = client
            .get(format!("{}{path}", shop.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let (status, text) = shop
        .post(
            "/ipn",
            &[("content-type", "application/x-www-form-urlencoded")],
            "txn_id=1&payment_status=Completed&verify_sign=AtkOfCXbDm2hu0ZELryHFjY",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");

    for (slow, outcome) in crowd.outcomes().await {
        assert_timed_out(slow, &outcome, timeout);
    }
    shop.merchant.shutdown().await.unwrap();
}
