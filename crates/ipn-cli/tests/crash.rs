//! `kill -9` of `ipn gateway` while it delivers loses nothing: every event
//! the API accepted reaches the endpoint once the gateway is started again.

use std::collections::HashSet;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipn_testkit::{Receiver, Reply};
use serde_json::{Value, json};

const ADMIN_KEY: &str = "crash-test-admin-key-0123456789abcdef";
/// The same on every start of the one database (base64 of 32 bytes).
const ENCRYPTION_KEY: &str = "kGajcXEXq0GQY0SmYvu6ozhvUSmAezH4RUFq/xOWvgs=";

/// Starts `ipn gateway` on a free port; returns the process and its URL.
fn start_gateway(database: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ipn"))
        .args([
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &format!("sqlite://{}", database.display()),
            "--admin-key",
            ADMIN_KEY,
            "--encryption-key",
            ENCRYPTION_KEY,
            "--allow-private-networks",
            "--retry-schedule",
            "1s,1s,1s,1s,1s,1s,1s,1s,1s,1s",
        ])
        .env("IPN_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ipn gateway starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the gateway says where it listens")
            .unwrap();
        if let Some(url) = line.strip_prefix("ipn gateway listening on ") {
            break url.trim().to_owned();
        }
    };
    // Keep draining stderr so the gateway never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

async fn post(client: &reqwest::Client, url: &str, key: &str, body: Value) -> (u16, Value) {
    let response = client
        .post(url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_delivery_loses_no_accepted_event() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("gateway.db");
    let receiver = Receiver::start().await.unwrap();
    // Slow enough answers that attempts are in flight when the kill lands.
    receiver.respond_with(Reply::ok().after(Duration::from_millis(20)));

    let (mut gateway, url) = start_gateway(&database);
    let client = reqwest::Client::new();
    let (status, merchant) = post(
        &client,
        &format!("{url}/v1/merchants"),
        ADMIN_KEY,
        json!({"name": "shop", "receiver_email": "shop@example.com"}),
    )
    .await;
    assert_eq!(status, 201, "{merchant}");
    let key = merchant["api_key"].as_str().unwrap().to_owned();
    let (status, endpoint) = post(
        &client,
        &format!("{url}/v1/endpoints"),
        &key,
        json!({"url": receiver.url("/hook")}),
    )
    .await;
    assert_eq!(status, 201, "{endpoint}");

    // Ingest from 8 tasks; the kill lands once 150 events are accepted.
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut senders = Vec::new();
    for task in 0..8 {
        let (client, url, key, accepted) = (
            client.clone(),
            url.clone(),
            key.clone(),
            Arc::clone(&accepted),
        );
        senders.push(tokio::spawn(async move {
            for n in 0..50 {
                let body = json!({"type": "crash.test", "data": {"id": format!("t{task}_{n}")}});
                let sent = client
                    .post(format!("{url}/v1/events"))
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await;
                let Ok(response) = sent else { return };
                if response.status().as_u16() != 201 {
                    return;
                }
                let Ok(text) = response.text().await else {
                    return;
                };
                let Ok(event) = serde_json::from_str::<Value>(&text) else {
                    return;
                };
                accepted
                    .lock()
                    .unwrap()
                    .push(event["id"].as_str().unwrap().to_owned());
            }
        }));
    }
    while accepted.lock().unwrap().len() < 150 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    gateway.kill().unwrap(); // SIGKILL
    gateway.wait().unwrap();
    for sender in senders {
        let _ = sender.await;
    }
    let accepted: HashSet<String> = accepted.lock().unwrap().iter().cloned().collect();
    assert!(accepted.len() >= 150);
    let before_restart: HashSet<String> = receiver
        .requests()
        .iter()
        .filter_map(|r| r.header("webhook-id").map(str::to_owned))
        .collect();

    eprintln!(
        "accepted {}, arrived before the restart {}",
        accepted.len(),
        before_restart.len()
    );
    let (mut gateway, _url) = start_gateway(&database);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let missing = loop {
        let received: HashSet<String> = receiver
            .requests()
            .iter()
            .filter_map(|r| r.header("webhook-id").map(str::to_owned))
            .collect();
        let missing: Vec<&String> = accepted.difference(&received).collect();
        if missing.is_empty() || tokio::time::Instant::now() > deadline {
            break missing.into_iter().cloned().collect::<Vec<_>>();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    gateway.kill().unwrap();
    gateway.wait().unwrap();
    assert!(
        missing.is_empty(),
        "{} of {} accepted events never arrived ({} had arrived before the restart): {missing:?}",
        missing.len(),
        accepted.len(),
        before_restart.len()
    );
}
