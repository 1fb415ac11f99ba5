//! A data directory made by an earlier release (tests/fixtures/) opens with
//! today's `ipn up`: both databases migrate in place, every old event,
//! payment and order is served as it was, and new work goes through.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

async fn get(client: &reqwest::Client, url: String, key: Option<&str>) -> (u16, Value) {
    let mut request = client.get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_data_directory_of_release_0_1_0_migrates_and_serves_what_it_holds() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/release-0.1.0");
    let expected = read_json(&fixture.join("expected.json"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ipn-data");
    copy_dir(&fixture.join("ipn-data"), &data);
    let before = read_json(&data.join("credentials.json"));

    let mut child = common::start_up(&data);
    let credentials = read_json(&data.join("credentials.json"));
    for kept in [
        "merchant_id",
        "merchant_api_key",
        "endpoint_id",
        "admin_key",
    ] {
        assert_eq!(credentials[kept], before[kept], "{kept}");
    }
    let gateway = credentials["gateway_url"].as_str().unwrap().to_owned();
    let shop = credentials["shop_url"].as_str().unwrap().to_owned();
    let key = credentials["merchant_api_key"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();

    // Every event, in the order it was stored, each readable by id.
    let (status, events) = get(
        &client,
        format!("{gateway}/v1/events?limit=100"),
        Some(&key),
    )
    .await;
    assert_eq!(status, 200, "{events:#}");
    let ids: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let old: Vec<&str> = expected["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(ids, old);
    for id in &old {
        let (status, event) = get(&client, format!("{gateway}/v1/events/{id}"), Some(&key)).await;
        assert_eq!(status, 200, "{id}");
        assert_eq!(event["id"], *id);
        let (status, attempts) = get(
            &client,
            format!("{gateway}/v1/events/{id}/attempts"),
            Some(&key),
        )
        .await;
        assert_eq!(status, 200, "{id}");
        // The shop's endpoint takes payment and subscription events only.
        let delivered = !attempts["data"].as_array().unwrap().is_empty();
        let custom = event["type"] == "invoice.custom";
        assert_eq!(delivered, !custom, "{id}: {attempts:#}");
    }
    // Payments, the subscription and the checkout session, as stored.
    for id in expected["payments"].as_array().unwrap() {
        let id = id.as_str().unwrap();
        let (status, payment) =
            get(&client, format!("{gateway}/v1/payments/{id}"), Some(&key)).await;
        assert_eq!(status, 200, "{id}: {payment:#}");
        assert_eq!(payment["id"], id);
    }
    let sub = expected["subscription"].as_str().unwrap();
    let (status, subscription) = get(
        &client,
        format!("{gateway}/v1/subscriptions/{sub}"),
        Some(&key),
    )
    .await;
    assert_eq!(status, 200, "{subscription:#}");
    assert_eq!(subscription["status"], "active");
    let session = expected["checkout_session"].as_str().unwrap();
    let (status, _) = get(
        &client,
        format!("{gateway}/v1/checkout/sessions/{session}"),
        Some(&key),
    )
    .await;
    assert_eq!(status, 200);
    // The shop's orders, in the states they had.
    for (id, state) in expected["orders"].as_object().unwrap() {
        let (status, order) = get(&client, format!("{shop}/api/orders/{id}"), None).await;
        assert_eq!(status, 200, "{id}");
        assert_eq!(order["status"], *state, "{id}: {order:#}");
    }

    // New work on the old data: a refund of the paid order reaches the shop.
    let (paid, _) = expected["orders"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, state)| *state == "paid")
        .unwrap();
    let payment = expected["payments"][0].as_str().unwrap();
    let refund = client
        .post(format!("{gateway}/v1/payments/{payment}/refunds"))
        .bearer_auth(&key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(refund.status(), 201);
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, order) = get(&client, format!("{shop}/api/orders/{paid}"), None).await;
        if order["status"] == "refunded" {
            break;
        }
        assert!(Instant::now() < deadline, "not refunded: {order:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(common::terminate(&mut child), Some(0));
}
