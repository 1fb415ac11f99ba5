//! `ipn up` as a newcomer runs it: one process, one data directory; an
//! order paid at the gateway becomes a paid order with its email in the
//! mail folder; Ctrl-C (SIGTERM) stops it cleanly, and the next run reuses
//! the merchant, its endpoint and its keys.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The endpoint secrets as stored in the data directory's gateway database.
fn stored_endpoint_secrets(data_dir: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open_with_flags(
        data_dir.join("gateway.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn.prepare("SELECT secret FROM endpoints").unwrap();
    stmt.query_map([], |row| row.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// Polls `check` on the merchant's answer to `GET path` at the gateway.
async fn wait_gateway(
    gateway: &str,
    key: &str,
    path: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let answer: Value = client
            .get(format!("{gateway}{path}"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if check(&answer) {
            return answer;
        }
        assert!(Instant::now() < deadline, "{what}: {answer:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const WAIT: Duration = Duration::from_secs(20);

fn credentials(data_dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(data_dir.join("credentials.json")).unwrap()).unwrap()
}

/// An order for the e-book at the shop, paid at the gateway with the
/// merchant's key; its id.
async fn buy_the_ebook(credentials: &Value) -> String {
    let shop = credentials["shop_url"].as_str().unwrap();
    let gateway = credentials["gateway_url"].as_str().unwrap();
    let client = reqwest::Client::new();
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
        .bearer_auth(credentials["merchant_api_key"].as_str().unwrap())
        .json(&json!({
            "amount": order["total"]["amount"], "currency": "USD", "invoice": id,
            "payer": {"email": "ann@example.com", "name": "Ann Smith"},
            "payment_method": {"card_number": "4242 4242 4242 4242"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 201);
    id
}

/// Waits until the order is paid with its two emails sent; returns it.
async fn paid_with_emails_sent(shop: &str, id: &str) -> Value {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + WAIT;
    loop {
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
            return order;
        }
        assert!(Instant::now() < deadline, "not paid: {order:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    let client = reqwest::Client::new();
    let id = buy_the_ebook(&first).await;
    // Paid, with the email written to the mail folder and a working link.
    let order = paid_with_emails_sent(&shop, &id).await;
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

#[tokio::test]
async fn ipn_up_keeps_its_encryption_key_in_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ipn-data");
    let mut child = common::start_up(&data);
    let key_file = data.join("encryption.key");
    let key = std::fs::read_to_string(&key_file).expect("ipn up writes encryption.key");
    assert!(
        ipn_gateway::EncryptionKey::parse(&key).is_ok(),
        "32 bytes of base64: {key:?}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key is the owner's alone");
    }
    let secret = credentials(&data)["endpoint_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let stored = stored_endpoint_secrets(&data);
    assert_eq!(stored.len(), 1);
    assert!(stored[0].starts_with("enc1:"), "{stored:?}");
    assert!(!stored[0].contains(&secret));
    assert_eq!(common::terminate(&mut child), Some(0));

    // The next run reuses the key, and the database opens with it (the
    // endpoint, moved to the shop's new port, is saved sealed again).
    let mut child = common::start_up(&data);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
    let again = stored_endpoint_secrets(&data);
    assert!(again[0].starts_with("enc1:"), "{again:?}");
    assert_eq!(common::terminate(&mut child), Some(0));
}

/// A data directory as the release before encryption left it: secrets in
/// plain text in gateway.db, no key file.
#[tokio::test]
async fn ipn_up_starts_on_a_data_directory_from_before_encryption_and_encrypts_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ipn-data");
    std::fs::create_dir_all(&data).unwrap();
    let database = ipn_gateway::Database::Sqlite(data.join("gateway.db"));
    ipn_gateway::migrate(&database).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let now_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap();
    let merchant_id = ipn_core::id::MerchantId::generate(now).to_string();
    let endpoint_id = ipn_core::id::EndpointId::generate(now).to_string();
    let merchant_key = "earlier-release-merchant-key-0123456789";
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    {
        let conn = rusqlite::Connection::open(data.join("gateway.db")).unwrap();
        conn.execute(
            "INSERT INTO merchants (id, name, receiver_email, api_key_hash, created_at)
             VALUES (?1, 'ipn demo shop', 'shop@example.com', ?2, ?3)",
            rusqlite::params![
                merchant_id,
                ipn_gateway::api::hash_key(merchant_key),
                now_ms
            ],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO endpoints
               (id, merchant_id, url, dialect, events, ordered, description, secret,
                previous_secret, previous_secret_expires, disabled_reason, disabled_at,
                failing_since, created_at)
             VALUES (?1, ?2, 'http://127.0.0.1:9/webhooks', 'standard',
                     '[\"payment.*\",\"subscription.*\"]', 0, '', ?3, NULL, NULL, NULL, NULL,
                     NULL, ?4)",
            rusqlite::params![endpoint_id, merchant_id, secret, now_ms],
        )
        .unwrap();
    }
    let credentials_json = json!({
        "gateway_url": "http://127.0.0.1:7700",
        "shop_url": "http://127.0.0.1:7701",
        "admin_key": "earlier-release-admin-key-0123456789abcdef",
        "merchant_id": merchant_id,
        "merchant_api_key": merchant_key,
        "endpoint_id": endpoint_id,
        "endpoint_secret": secret,
        "admin_password": "earlier-password",
    });
    std::fs::write(
        data.join("credentials.json"),
        serde_json::to_vec_pretty(&credentials_json).unwrap(),
    )
    .unwrap();
    assert_eq!(stored_endpoint_secrets(&data), [secret]);

    let mut child = common::start_up(&data);
    assert!(data.join("encryption.key").exists());
    let stored = stored_endpoint_secrets(&data);
    assert!(stored[0].starts_with("enc1:"), "{stored:?}");

    // The shop still verifies what the gateway signs with the secret it had.
    let gateway = credentials(&data)["gateway_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let paid = reqwest::Client::new()
        .post(format!("{gateway}/v1/payments"))
        .bearer_auth(merchant_key)
        .json(&json!({
            "amount": 500, "currency": "USD", "invoice": "earlier-order",
            "payer": {"email": "ann@example.com", "name": "Ann Smith"},
            "payment_method": {"card_number": "4242 4242 4242 4242"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 201);
    let events = wait_gateway(&gateway, merchant_key, "/v1/events", "an event", |e| {
        e["data"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    let event_id = events["data"][0]["id"].as_str().unwrap();
    wait_gateway(
        &gateway,
        merchant_key,
        &format!("/v1/events/{event_id}/attempts"),
        "a delivery the shop verified and accepted",
        |a| a["data"][0]["status"] == "succeeded",
    )
    .await;
    assert_eq!(common::terminate(&mut child), Some(0));
}

/// The databases `ipn up --database-url` made beside a test's own, dropped
/// with it.
struct MadeBeside {
    admin: String,
    names: Vec<String>,
}

impl Drop for MadeBeside {
    fn drop(&mut self) {
        use ipn_storage::postgres::{connect, parse_url};
        let conn = connect(&parse_url(&self.admin).unwrap()).unwrap();
        for name in &self.names {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// `ipn up --database-url postgres://…/DB`: the same flow with both
/// services on PostgreSQL, each in a database of its own made on the first
/// run (DB_gateway, DB_shop), and the next run on the same databases.
#[tokio::test]
async fn ipn_up_runs_on_postgres_with_a_database_for_each_service() {
    use ipn_storage::postgres::{connect, parse_url};
    let Some(server) = ipn_storage::postgres::test_database_if_reachable("ipn_up_on_postgres")
    else {
        return;
    };
    let made = MadeBeside {
        admin: ipn_storage::postgres::test_server_url(),
        names: ["gateway", "shop"]
            .map(|service| format!("{}_{service}", server.name()))
            .to_vec(),
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ipn-data");
    let args = ["--database-url", server.url()];
    let mut child = common::start_up_with(&data, &args);
    let first = credentials(&data);
    let shop = first["shop_url"].as_str().unwrap().to_owned();
    let id = buy_the_ebook(&first).await;
    let order = paid_with_emails_sent(&shop, &id).await;
    assert_eq!(order["downloads"][0]["state"], "active", "{order:#}");
    assert_eq!(common::terminate(&mut child), Some(0), "a clean stop");

    assert!(!data.join("gateway.db").exists() && !data.join("shop.db").exists());
    let count = |database: &str, table: &str| -> i64 {
        let url = server.url().replace(server.name(), database);
        connect(&parse_url(&url).unwrap())
            .unwrap()
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .unwrap()
            .get(0)
    };
    assert_eq!(
        count(&made.names[0], "payments"),
        1,
        "the gateway's database"
    );
    assert_eq!(count(&made.names[1], "orders"), 1, "the shop's database");

    // The next run finds both databases and reuses the setup.
    let mut child = common::start_up_with(&data, &args);
    let second = credentials(&data);
    assert_eq!(second["merchant_api_key"], first["merchant_api_key"]);
    let shop = second["shop_url"].as_str().unwrap();
    let again: Value = reqwest::Client::new()
        .get(format!("{shop}/api/orders/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["status"], "paid", "the shop's data is kept");
    assert_eq!(common::terminate(&mut child), Some(0));
}
