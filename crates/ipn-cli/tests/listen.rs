//! `ipn listen` forwards a merchant's events to a local receiver, signed
//! with the secret it prints, survives the gateway restarting, and misses
//! nothing: every event arrives once, in order.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ipn_core::standard::{Verifier, WebhookHeaders, WebhookSecret};
use ipn_testkit::Receiver;
use serde_json::{Value, json};

const ADMIN_KEY: &str = "listen-test-admin-key-0123456789";
/// The same on every start of the one database (base64 of 32 bytes).
const ENCRYPTION_KEY: &str = "kGajcXEXq0GQY0SmYvu6ozhvUSmAezH4RUFq/xOWvgs=";
const WAIT: Duration = Duration::from_secs(20);

/// A free port on loopback (bound, then let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `ipn gateway` on `port`; returns once it listens.
fn gateway(database: &Path, port: u16) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ipn"))
        .args([
            "gateway",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-key",
            ADMIN_KEY,
            "--encryption-key",
            ENCRYPTION_KEY,
        ])
        .arg("--database-url")
        .arg(format!("sqlite://{}", database.display()))
        .env("IPN_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ipn gateway starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("the gateway says it listens").unwrap();
        if line.starts_with("ipn gateway listening on ") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    child
}

fn stop(mut child: Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
}

async fn post(url: &str, key: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

#[tokio::test]
async fn listen_forwards_every_event_once_across_a_gateway_restart() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("gateway.db");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let gateway_process = gateway(&database, port);
    let merchant = post(
        &format!("{base}/v1/merchants"),
        ADMIN_KEY,
        json!({"name": "shop", "receiver_email": "shop@example.com"}),
    )
    .await;
    let key = merchant["api_key"].as_str().unwrap().to_owned();
    let ingest = |n: u32| {
        let key = key.clone();
        let base = base.clone();
        async move {
            post(
                &format!("{base}/v1/events"),
                &key,
                json!({"type": "demo.ping", "data": {"n": n}}),
            )
            .await["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    // An event from before: `listen` starts after the newest one.
    ingest(0).await;

    let receiver = Receiver::start().await.unwrap();
    let mut listen = Command::new(env!("CARGO_BIN_EXE_ipn"))
        .args([
            "listen",
            "--gateway",
            &base,
            "--key",
            &key,
            "--poll-ms",
            "100",
        ])
        .args(["--forward-to", &receiver.url("/hooks")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ipn listen starts");
    let (lines_tx, lines_rx) = mpsc::channel();
    let stdout = listen.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = lines_tx.send(line.unwrap());
        }
    });
    let secret = loop {
        let line = lines_rx
            .recv_timeout(WAIT)
            .expect("listen prints its secret");
        if let Some(secret) = line.strip_prefix("signing with ") {
            break WebhookSecret::parse(secret.trim()).unwrap();
        }
    };

    let mut sent = Vec::new();
    for n in 1..=3 {
        sent.push(ingest(n).await);
    }
    receiver.wait_for(3, WAIT).await;
    // The gateway goes away and comes back on the same port and database.
    stop(gateway_process);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let gateway_process = gateway(&database, port);
    for n in 4..=6 {
        sent.push(ingest(n).await);
    }
    let got = receiver.wait_for(6, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_after = receiver.requests();
    assert_eq!(got_after.len(), 6, "nothing twice: {got:#?}");

    let verifier = Verifier::with_secret(secret);
    let mut ids = Vec::new();
    for request in &got_after {
        let headers =
            WebhookHeaders::from_lookup(|name| request.headers.get(name).map(|v| v.as_bytes()))
                .unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        verifier
            .verify(&headers, &request.body, now)
            .expect("signed with the printed secret");
        let event: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(event["id"], headers.id, "webhook-id is the event id");
        ids.push(event["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids, sent, "every event after the start, once, in order");

    stop(gateway_process);
    let _ = listen.kill();
    let _ = listen.wait();
}
