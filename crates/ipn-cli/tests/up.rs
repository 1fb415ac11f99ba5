//! `ipn up` as a newcomer runs it: one process, one data directory; an
//! order paid at the gateway becomes a paid order with its email in the
//! mail folder; Ctrl-C (SIGTERM) stops it cleanly, and the next run reuses
//! the merchant, its endpoint and its keys.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

fn credentials(data_dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(data_dir.join("credentials.json")).unwrap()).unwrap()
}

#[tokio::test]
async fn ipn_up_runs_the_whole_flow_and_keeps_its_setup() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ipn-data");
    let mut child = common::start_up(&data);
    let first = credentials(&data);
    for field in [
        "gateway_url",
        "shop_url",
        "admin_key",
        "merchant_id",
        "merchant_api_key",
        "endpoint_id",
        "endpoint_secret",
        "admin_password",
    ] {
        assert!(
            first[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field}: {first}"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join("credentials.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the keys are the owner's alone");
    }
    let shop = first["shop_url"].as_str().unwrap().to_owned();
    let gateway = first["gateway_url"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();

    // An order for the e-book, paid at the gateway with the merchant's key.
    let order: Value = client
        .post(format!("{shop}/api/orders"))
        .json(&json!({"items": [{"sku": "ebook", "quantity": 1}], "customer_email": "ann@example.com"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = order["id"].as_str().expect("an order").to_owned();
    let paid = client
        .post(format!("{gateway}/v1/payments"))
        .bearer_auth(first["merchant_api_key"].as_str().unwrap())
        .json(&json!({
            "amount": order["total"]["amount"], "currency": "USD", "invoice": id,
            "payer": {"email": "ann@example.com", "name": "Ann Smith"},
            "payment_method": {"card_number": "4242 4242 4242 4242"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 201);

    // Paid, with the email written to the mail folder and a working link.
    let deadline = Instant::now() + WAIT;
    let order = loop {
        let order: Value = client
            .get(format!("{shop}/api/orders/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let sent = order["emails"].as_array().is_some_and(|emails| {
            emails.len() == 2 && emails.iter().all(|e| e["status"] == "sent")
        });
        if order["status"] == "paid" && sent {
            break order;
        }
        assert!(Instant::now() < deadline, "not paid: {order:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(order["downloads"][0]["state"], "active", "{order:#}");
    let mails: Vec<_> = std::fs::read_dir(data.join("mail"))
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    assert_eq!(mails.len(), 2, "{mails:#?}");
    // (Quoted-printable: long lines are broken with a soft `=` break.)
    let link = mails
        .iter()
        .map(|mail| mail.replace("=\r\n", "").replace("=\n", ""))
        .find_map(|mail| {
            mail.split_whitespace()
                .find(|word| word.starts_with(&format!("{shop}/downloads/")))
                .map(str::to_owned)
        })
        .expect("a download link in an email");
    let file = client.get(&link).send().await.unwrap();
    assert_eq!(file.status(), 200);
    assert!(file.bytes().await.unwrap().starts_with(b"%PDF"));
    assert_eq!(common::terminate(&mut child), Some(0), "a clean stop");

    // The next run reuses the setup; the endpoint follows the shop's port.
    let mut child = common::start_up(&data);
    let second = credentials(&data);
    for field in [
        "merchant_id",
        "merchant_api_key",
        "endpoint_id",
        "endpoint_secret",
        "admin_key",
        "admin_password",
    ] {
        assert_eq!(second[field], first[field], "{field}");
    }
    let shop = second["shop_url"].as_str().unwrap();
    let gateway = second["gateway_url"].as_str().unwrap();
    let endpoint: Value = client
        .get(format!(
            "{gateway}/v1/endpoints/{}",
            second["endpoint_id"].as_str().unwrap()
        ))
        .bearer_auth(second["merchant_api_key"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(endpoint["url"], format!("{shop}/webhooks"), "{endpoint:#}");
    let again: Value = client
        .get(format!("{shop}/api/orders/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["status"], "paid", "the shop's data is kept");
    assert_eq!(common::terminate(&mut child), Some(0));

    // A setup made when 24-character admin keys were the rule: the key is
    // replaced by one the gateway takes, the rest is kept.
    let mut old = second.clone();
    old["admin_key"] = json!("abcdefghijkmnpqrstuvwxyz");
    std::fs::write(
        data.join("credentials.json"),
        serde_json::to_vec_pretty(&old).unwrap(),
    )
    .unwrap();
    let mut child = common::start_up(&data);
    let third = credentials(&data);
    let key = third["admin_key"].as_str().unwrap();
    assert!(key.len() >= 32, "{key}");
    assert_eq!(third["merchant_api_key"], second["merchant_api_key"]);
    let gateway = third["gateway_url"].as_str().unwrap();
    let merchants = client
        .get(format!("{gateway}/v1/merchants"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(merchants.status(), 200, "the new key is the admin's");
    assert_eq!(common::terminate(&mut child), Some(0));
}
