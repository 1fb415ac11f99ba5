//! Secrets at rest: the database holds endpoint secrets and the gateway's own
//! keys only encrypted, so a copy of it alone cannot sign a message; another
//! key is refused at start; a database whose secrets an earlier release
//! stored in plain text is encrypted on its first start with a key, and its
//! endpoints keep the secrets their receivers know.

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{ADMIN_KEY, Data, SqlValue, TestGateway, encryption_key, verify_signed};
use ipn_core::id::{EndpointId, MerchantId};
use ipn_gateway::{Config, EncryptionKey, Gateway};
use ipn_testkit::Receiver;
use serde_json::json;
use time::OffsetDateTime;

const WAIT: Duration = Duration::from_secs(10);

/// Starts a gateway on `data` with `key`; the error if it refuses.
async fn start_with_key(data: &Data, key: EncryptionKey) -> anyhow::Result<Gateway> {
    let mut config = Config::new(data.database(), ADMIN_KEY, key);
    config.test_clock = true;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Gateway::start(config, listener).await
}

fn assert_sealed(value: &str) {
    assert!(value.starts_with("enc1:"), "not encrypted: {value}");
    assert!(!value.contains("whsec_"), "{value}");
}

#[tokio::test]
async fn endpoint_secrets_are_stored_encrypted_and_still_sign_after_a_restart() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    let endpoint = gw
        .endpoint(&shop, json!({"url": receiver.url("/hook")}))
        .await;
    let first = endpoint.secret.clone();
    let second = gw.rotate_secret(&shop, &endpoint).await;

    let (secret, previous) = gw.data.endpoint_secrets(&endpoint.id);
    assert_sealed(&secret);
    assert_sealed(previous.as_deref().expect("the rotated-out secret is kept"));
    let own = gw.data.own_secrets();
    assert!(!own.is_empty());
    for (name, value) in &own {
        assert!(
            value.starts_with(b"enc1:"),
            "secrets.{name} is not encrypted"
        );
    }

    // Read back after a restart, both secrets still sign (the overlap).
    let gw = gw.restart(|_| {}).await;
    let event = gw
        .ingest(&shop, "invoice.paid", json!({"id": "inv_1"}))
        .await;
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("webhook-id"), event["id"].as_str());
    verify_signed(&got[0], &second);
    verify_signed(&got[0], &first);

    let TestGateway { gateway, data, .. } = gw;
    gateway.shutdown().await.unwrap();
    for plain in [&first, &second] {
        assert!(
            !data.contains(plain.as_bytes()),
            "a secret lies in plain text in the database's files"
        );
    }
}

#[tokio::test]
async fn another_key_is_refused_at_start_even_on_an_empty_database() {
    let data = Data::new();
    let gateway = start_with_key(&data, encryption_key()).await.unwrap();
    gateway.shutdown().await.unwrap();

    let other = EncryptionKey::generate().unwrap();
    let error = start_with_key(&data, other).await.unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("the encryption key does not match this database"),
        "{message}"
    );

    // With an endpoint stored, too; and the right key still opens it.
    let gw = TestGateway::start_in(data, |_| {}).await;
    let shop = gw.merchant("shop").await;
    let endpoint = gw
        .endpoint(&shop, json!({"url": "http://127.0.0.1:9/hook"}))
        .await;
    let TestGateway { gateway, data, .. } = gw;
    gateway.shutdown().await.unwrap();
    let other = EncryptionKey::generate().unwrap();
    let error = start_with_key(&data, other).await.unwrap_err();
    assert!(
        format!("{error:#}").contains("the encryption key does not match this database"),
        "{error:#}"
    );
    let gw = TestGateway::start_in(data, |_| {}).await;
    let (status, body) = gw
        .get(&shop.key, &format!("/v1/endpoints/{}", endpoint.id))
        .await;
    assert_eq!(status, 200, "{body}");
}

/// A database as the release before encryption left it: its schema, a
/// merchant, and an endpoint whose current and rotated-out secrets are
/// stored in plain text, the previous one still in its 24 h overlap.
struct PlainDatabase {
    merchant_key: String,
    endpoint_id: String,
    secret: String,
    previous: String,
}

fn plain_database(data: &Data, url: &str) -> PlainDatabase {
    ipn_gateway::migrate(&data.database()).unwrap();
    let now = OffsetDateTime::now_utc();
    let now_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap();
    let merchant_id = MerchantId::generate(now).to_string();
    let merchant_key = "plain-era-merchant-key-0123456789".to_owned();
    let endpoint_id = EndpointId::generate(now).to_string();
    let secret = format!("whsec_{}", STANDARD.encode([0x5a; 32]));
    let previous = format!("whsec_{}", STANDARD.encode([0xa5; 32]));
    data.execute(
        "INSERT INTO merchants (id, name, receiver_email, api_key_hash, created_at)
         VALUES ($1, 'shop', 'shop@example.com', $2, $3)",
        &[
            SqlValue::Text(&merchant_id),
            SqlValue::Text(&ipn_gateway::api::hash_key(&merchant_key)),
            SqlValue::Int(now_ms),
        ],
    );
    data.execute(
        "INSERT INTO endpoints
           (id, merchant_id, url, dialect, events, ordered, description, secret,
            previous_secret, previous_secret_expires, disabled_reason, disabled_at,
            failing_since, created_at)
         VALUES ($1, $2, $3, 'standard', '[]', false, '', $4, $5, $6, NULL, NULL, NULL, $7)",
        &[
            SqlValue::Text(&endpoint_id),
            SqlValue::Text(&merchant_id),
            SqlValue::Text(url),
            SqlValue::Text(&secret),
            SqlValue::Text(&previous),
            SqlValue::Int(now_ms + 12 * 3600 * 1000),
            SqlValue::Int(now_ms),
        ],
    );
    PlainDatabase {
        merchant_key,
        endpoint_id,
        secret,
        previous,
    }
}

#[tokio::test]
async fn plain_secrets_are_encrypted_on_the_first_start_with_a_key_and_still_sign() {
    let receiver = Receiver::start().await.unwrap();
    let data = Data::new();
    let plain = plain_database(&data, &receiver.url("/hook"));
    let (secret, previous) = data.endpoint_secrets(&plain.endpoint_id);
    assert_eq!(
        (secret, previous),
        (plain.secret.clone(), Some(plain.previous.clone()))
    );
    // SQLite's migration makes the idempotency hash key, in plain text
    // until the first start; on PostgreSQL the first start makes it sealed.
    let own_before: Vec<Vec<u8>> = data.own_secrets().into_iter().map(|(_, v)| v).collect();
    let made_by_migration = usize::from(!data.is_postgres());
    assert_eq!(
        own_before.len(),
        made_by_migration,
        "the idempotency hash key"
    );
    assert!(data.contains(plain.secret.as_bytes()));

    let gw = TestGateway::start_in(data, |_| {}).await;
    let (secret, previous) = gw.data.endpoint_secrets(&plain.endpoint_id);
    assert_sealed(&secret);
    assert_sealed(previous.as_deref().unwrap());
    let own = gw.data.own_secrets();
    assert!(!own.is_empty(), "the idempotency hash key");
    for (name, value) in &own {
        assert!(
            value.starts_with(b"enc1:"),
            "secrets.{name} is not encrypted"
        );
    }

    // Its receiver verifies what is signed now with the secrets it had.
    let shop = common::TestMerchant {
        id: String::new(),
        key: plain.merchant_key.clone(),
    };
    let event = gw
        .ingest(&shop, "invoice.paid", json!({"id": "inv_1"}))
        .await;
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("webhook-id"), event["id"].as_str());
    verify_signed(&got[0], &plain.secret);
    verify_signed(&got[0], &plain.previous);

    // A second start does nothing more: the stored values stay as they are.
    let gw = gw.restart(|_| {}).await;
    assert_eq!(
        gw.data.endpoint_secrets(&plain.endpoint_id),
        (secret, previous)
    );
    assert_eq!(gw.data.own_secrets(), own);

    let TestGateway { gateway, data, .. } = gw;
    gateway.shutdown().await.unwrap();
    let needles = [plain.secret.as_bytes(), plain.previous.as_bytes()];
    for needle in needles
        .into_iter()
        .chain(own_before.iter().map(Vec::as_slice))
    {
        assert!(
            !data.contains(needle),
            "a secret stayed in plain text in the database's files"
        );
    }
}
