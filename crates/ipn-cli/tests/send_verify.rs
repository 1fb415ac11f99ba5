//! `ipn send` to a real local receiver, then `ipn verify` on what arrived:
//! the two commands as a user runs them, in both dialects.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ipn_core::event::{Event, EventType};
use ipn_core::paypal::IpnMessage;
use ipn_testkit::{Receiver, Recorded, Reply};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Runs `ipn` with these arguments and `stdin`, off the async runtime so the
/// receiver keeps serving meanwhile.
async fn ipn(args: Vec<String>, stdin: Vec<u8>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ipn"))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ipn binary runs");
        child.stdin.take().unwrap().write_all(&stdin).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn send(receiver: &Receiver, extra: &[&str]) -> (Output, Recorded) {
    let before = receiver.requests().len();
    let url = receiver.url("/hooks");
    let mut list = vec!["send", "--to", &url, "--secret", SECRET];
    list.extend_from_slice(extra);
    let out = ipn(args(&list), vec![]).await;
    let got = receiver.wait_for(before + 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), before + 1, "stderr: {}", text(&out.stderr));
    (out, got[before].clone())
}

async fn verify(request: &Recorded, key: &[&str], body: &[u8]) -> Output {
    let mut list = vec!["verify"];
    list.extend_from_slice(key);
    let header = |name| request.header(name).expect("signed header present");
    list.extend_from_slice(&[
        "--id",
        header("webhook-id"),
        "--timestamp",
        header("webhook-timestamp"),
        "--signature",
        header("webhook-signature"),
    ]);
    ipn(args(&list), body.to_vec()).await
}

#[tokio::test]
async fn every_event_type_in_both_dialects_arrives_signed_and_verifies() {
    let receiver = Receiver::start().await.unwrap();
    for event_type in EventType::KNOWN.iter().filter(|t| t.has_paypal_form()) {
        for dialect in ["standard", "paypal"] {
            let (out, request) = send(
                &receiver,
                &["--type", event_type.as_str(), "--dialect", dialect],
            )
            .await;
            let context = format!("{event_type} {dialect}: {}", text(&out.stderr));
            assert!(out.status.success(), "{context}");
            assert!(text(&out.stdout).starts_with("200 OK"), "{context}");
            assert_eq!(request.path, "/hooks");

            let verified = verify(&request, &["--secret", SECRET], &request.body).await;
            assert_eq!(
                verified.status.code(),
                Some(0),
                "{context}: {}",
                text(&verified.stdout)
            );
            assert!(text(&verified.stdout).starts_with("valid"));

            let received_type = match dialect {
                "standard" => {
                    assert_eq!(request.header("content-type"), Some("application/json"));
                    let event: Event = serde_json::from_slice(&request.body).unwrap();
                    assert_eq!(event.id.to_string(), request.header("webhook-id").unwrap());
                    event.event_type
                }
                _ => {
                    assert_eq!(
                        request.header("content-type"),
                        Some("application/x-www-form-urlencoded")
                    );
                    let msg = IpnMessage::parse(&request.body).unwrap();
                    assert_eq!(msg.ipn_track_id(), request.header("webhook-id"));
                    msg.event_type().unwrap()
                }
            };
            assert_eq!(&received_type, event_type, "{context}");
        }
    }
}

#[tokio::test]
async fn the_callers_amount_currency_and_invoice_are_sent_exactly() {
    let receiver = Receiver::start().await.unwrap();
    let common = [
        "--amount",
        "1234",
        "--currency",
        "KWD",
        "--invoice",
        "ORD-7",
    ];
    let mut refund = vec!["--type", "payment.refunded", "--dialect", "paypal"];
    refund.extend_from_slice(&common);
    let (_, request) = send(&receiver, &refund).await;
    let msg = IpnMessage::parse(&request.body).unwrap();
    assert_eq!(msg.get("mc_gross"), Some("-1.234"), "refunds are negative");
    assert_eq!(msg.get("mc_currency"), Some("KWD"));
    assert_eq!(msg.invoice(), Some("ORD-7"));
    assert!(msg.parent_txn_id().unwrap().starts_with("pay_"));

    let (_, request) = send(&receiver, &common).await;
    let event: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(event["data"]["amount"], 1234);
    assert_eq!(event["data"]["currency"], "KWD");
    assert_eq!(event["data"]["invoice"], "ORD-7");
}

#[tokio::test]
async fn a_tampered_body_or_a_wrong_key_is_invalid_with_the_reason() {
    let receiver = Receiver::start().await.unwrap();
    let (_, request) = send(&receiver, &["--dialect", "paypal"]).await;

    let mut tampered = request.body.to_vec();
    let at = tampered.windows(5).position(|w| w == b"19.99").unwrap();
    tampered[at] = b'0';
    let out = verify(&request, &["--secret", SECRET], &tampered).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("no signature"),
        "{}",
        text(&out.stdout)
    );

    let other = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let out = verify(&request, &["--secret", other], &request.body).await;
    assert_eq!(out.status.code(), Some(1));

    // During a rotation either secret is enough.
    let out = verify(
        &request,
        &["--secret", other, "--secret", SECRET],
        &request.body,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[tokio::test]
async fn stale_messages_are_refused_unless_told_to_ignore_the_timestamp() {
    let receiver = Receiver::start().await.unwrap();
    let stale = (time::OffsetDateTime::now_utc().unix_timestamp() - 3600).to_string();
    let (_, request) = send(&receiver, &["--timestamp", &stale]).await;
    let out = verify(&request, &["--secret", SECRET], &request.body).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("old"), "{}", text(&out.stdout));
    let out = verify(
        &request,
        &["--secret", SECRET, "--ignore-timestamp"],
        &request.body,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[tokio::test]
async fn ed25519_signed_messages_verify_with_the_public_key() {
    let receiver = Receiver::start().await.unwrap();
    let secret_key = "whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
    let public_key = "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    let (_, request) = send(&receiver, &["--signing-key", secret_key]).await;
    let signature = request.header("webhook-signature").unwrap();
    assert!(signature.starts_with("v1,") && signature.contains(" v1a,"));
    let out = verify(&request, &["--public-key", public_key], &request.body).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("ed25519"));
}

#[tokio::test]
async fn a_refusing_receiver_makes_send_fail_and_shows_its_answer() {
    let receiver = Receiver::start().await.unwrap();
    receiver.respond_with(Reply::status(400).body("bad signature"));
    let (out, _) = send(&receiver, &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("400 Bad Request") && stdout.contains("bad signature"),
        "{stdout}"
    );

    // A redirect is reported, not followed.
    receiver.respond_with(Reply::status(302).header("location", "http://127.0.0.1:1/"));
    let (out, _) = send(&receiver, &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).starts_with("302"));
    assert_eq!(receiver.requests().len(), 2);
}

#[tokio::test]
async fn an_unreachable_receiver_is_a_failure_not_a_crash() {
    // Bind then drop, so nothing listens on the port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let out = ipn(args(&["send", "--to", &url, "--secret", SECRET]), vec![]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not delivered"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn bad_arguments_are_usage_errors_that_name_the_problem() {
    let long_custom = "x".repeat(256);
    let cases: &[(&[&str], &str)] = &[
        (
            &["send", "--to", "ftp://x/", "--secret", SECRET],
            "http or https",
        ),
        (&["send", "--to", "not a url"], "--to"),
        (
            &[
                "send",
                "--to",
                "http://127.0.0.1:1/",
                "--type",
                "payment.complete",
            ],
            "reserved",
        ),
        (
            &[
                "send",
                "--to",
                "http://127.0.0.1:1/",
                "--type",
                "invoice.paid",
            ],
            "sample data only",
        ),
        (
            &["send", "--to", "http://127.0.0.1:1/", "--secret", "whsec_"],
            "empty",
        ),
        (
            &["send", "--to", "http://127.0.0.1:1/", "--secret", "abc"],
            "whsec_",
        ),
        (
            &["send", "--to", "http://127.0.0.1:1/", "--currency", "XYZ"],
            "XYZ",
        ),
        (
            &["send", "--to", "http://127.0.0.1:1/", "--amount", "0"],
            "amount",
        ),
        (
            &["send", "--to", "http://127.0.0.1:1/", "--amount", "19.99"],
            "amount",
        ),
        (
            &[
                "send",
                "--to",
                "http://127.0.0.1:1/",
                "--custom",
                long_custom.as_str(),
            ],
            "at most 255",
        ),
        (
            &[
                "send",
                "--to",
                "http://127.0.0.1:1/",
                "--payment-id",
                "evt_01ARZ3NDEKTSV4RRFFQ69G5FAV",
            ],
            "pay_",
        ),
        (
            &[
                "verify",
                "--id",
                "a",
                "--timestamp",
                "1",
                "--signature",
                "v1,x",
            ],
            "--secret",
        ),
        (
            &[
                "verify",
                "--secret",
                "whsec_!!",
                "--id",
                "a",
                "--timestamp",
                "1",
                "--signature",
                "v1,x",
            ],
            "base64",
        ),
        (
            &[
                "verify",
                "--public-key",
                "whpk_AAAA",
                "--id",
                "a",
                "--timestamp",
                "1",
                "--signature",
                "v1,x",
            ],
            "3 bytes",
        ),
        (
            &[
                "verify",
                "--secret",
                SECRET,
                "--id",
                "a",
                "--timestamp",
                "1",
                "--signature",
                "v1,x",
                "--body",
                "/nonexistent/body",
            ],
            "/nonexistent/body",
        ),
    ];
    for (list, expected) in cases {
        let out = ipn(args(list), vec![]).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{list:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{list:?}: expected {expected:?} in {stderr}"
        );
    }
}

#[tokio::test]
async fn malformed_captured_headers_are_invalid_not_a_crash() {
    let cases: &[(&str, &str, &str)] = &[
        ("12abc", "v1,AAAA", "not a whole number"),
        ("1", "", "holds no v1"),
        ("1", "v2,abcd", "holds no v1"),
        ("99999999999999999999999", "v1,AAAA", "not a whole number"),
    ];
    for (timestamp, signature, expected) in cases {
        let out = ipn(
            args(&[
                "verify",
                "--secret",
                SECRET,
                "--ignore-timestamp",
                "--id",
                "evt_1",
                "--timestamp",
                timestamp,
                "--signature",
                signature,
            ]),
            b"\xff\xfe not utf-8".to_vec(),
        )
        .await;
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{timestamp} {signature}: {stdout}"
        );
        assert!(stdout.contains(expected), "{stdout}");
    }
}
