//! `kill -9` of `ipn merchant` while IPNs pour in loses nothing and doubles
//! nothing: once it is started again, every paid order is paid, with its
//! one email, and every message was applied once.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipn_gateway::delivery::ssrf::NetworkPolicy;
use ipn_gateway::{Database, EncryptionKey, Gateway};
use serde_json::{Value, json};

const ADMIN_KEY: &str = "merchant-crash-admin-key-0123456789";
const ORDERS: usize = 120;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Shop<'a> {
    port: u16,
    database: &'a Path,
    gateway: &'a str,
    key: &'a str,
    secret: &'a str,
    merchant_id: &'a str,
}

impl Shop<'_> {
    /// `ipn merchant` as a child process; returns once it listens.
    fn start(&self) -> Child {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ipn"))
            .args(["merchant", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--database-url")
            .arg(format!("sqlite://{}", self.database.display()))
            .args(["--gateway-url", self.gateway, "--gateway-key", self.key])
            .args([
                "--webhook-secret",
                self.secret,
                "--merchant-id",
                self.merchant_id,
            ])
            .args(["--reconcile-every", "0"])
            .env("IPN_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ipn merchant starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("the merchant says it listens").unwrap();
            if line.starts_with("ipn merchant listening on ") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        child
    }
}

async fn call(client: &reqwest::Client, url: &str, key: Option<&str>, body: Value) -> Value {
    let mut request = client.post(url).json(&body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_killed_mid_stream_applies_everything_once_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ipn_gateway::Config::new(
        Database::Sqlite(dir.path().join("gateway.db")),
        ADMIN_KEY,
        EncryptionKey::generate().unwrap(),
    );
    config.network = NetworkPolicy::allow_private();
    // Retries and probes come quickly, so the restarted shop is reached soon.
    config.delivery.retry.delays = vec![Duration::from_millis(200); 30];
    config.delivery.breaker_cooldown = Duration::from_millis(200);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = Gateway::start(config, listener).await.unwrap();
    let gateway_url = gateway.url();
    let client = reqwest::Client::new();

    let merchant = call(
        &client,
        &format!("{gateway_url}/v1/merchants"),
        Some(ADMIN_KEY),
        json!({"name": "shop", "receiver_email": "shop@example.com"}),
    )
    .await;
    let key = merchant["api_key"].as_str().unwrap().to_owned();
    let port = free_port();
    let endpoint = call(
        &client,
        &format!("{gateway_url}/v1/endpoints"),
        Some(&key),
        json!({"url": format!("http://127.0.0.1:{port}/webhooks"), "dialect": "standard", "events": ["payment.*"]}),
    )
    .await;
    let database = dir.path().join("shop.db");
    let shop = Shop {
        port,
        database: &database,
        gateway: &gateway_url,
        key: &key,
        secret: endpoint["secret"].as_str().unwrap(),
        merchant_id: merchant["id"].as_str().unwrap(),
    };
    let shop_url = format!("http://127.0.0.1:{port}");
    let mut child = shop.start();

    let mut orders = Vec::with_capacity(ORDERS);
    for _ in 0..ORDERS {
        let order = call(
            &client,
            &format!("{shop_url}/api/orders"),
            None,
            json!({"items": [{"sku": "mug", "quantity": 1}], "customer_email": "ann@example.com"}),
        )
        .await;
        orders.push(order["id"].as_str().unwrap().to_owned());
    }
    // Pay them all; half way, the shop dies without warning.
    let pay = |order: String| {
        let client = client.clone();
        let url = format!("{gateway_url}/v1/payments");
        let key = key.clone();
        async move {
            call(
                &client,
                &url,
                Some(&key),
                json!({
                    "amount": 1250, "currency": "USD", "invoice": order,
                    "payer": {"email": "ann@example.com"},
                    "payment_method": {"card_number": "4242424242424242"},
                }),
            )
            .await
        }
    };
    let (first, second) = orders.split_at(ORDERS / 2);
    for order in first {
        pay(order.clone()).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for order in second {
        pay(order.clone()).await;
    }
    let mut child = shop.start();

    let conn = rusqlite::Connection::open(&database).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (paid, sent): (usize, usize) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM orders WHERE status = 'paid'),
                        (SELECT count(*) FROM emails WHERE status = 'sent')",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        if paid == ORDERS && sent == ORDERS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the restart: {paid} of {ORDERS} orders paid, {sent} emails sent"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Exactly once: one applied message and one email per order.
    let per_order: Vec<(String, i64, i64)> = conn
        .prepare(
            "SELECT o.id,
                 (SELECT count(*) FROM inbox i WHERE i.order_id = o.id AND i.outcome = 'applied'),
                 (SELECT count(*) FROM emails e WHERE e.order_id = o.id)
             FROM orders o",
        )
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(per_order.len(), ORDERS);
    for (order, applied, emails) in per_order {
        assert_eq!((applied, emails), (1, 1), "order {order}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    gateway.shutdown().await.unwrap();
}
