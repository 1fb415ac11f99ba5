//! Customer emails end to end: the real gateway pays the shop's orders and
//! notifies the real merchant server, whose mail worker sends to a real SMTP
//! server (MailDev) started by the test. What arrives there is what a
//! customer would read.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::WAIT;
use common::stack::{Stack, VISA, card};
use ipn_testkit::maildev::{MailDev, ReceivedEmail};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A name with every character HTML must escape.
const SHOP_NAME: &str = "Ann's <Mugs> & \"Books\"";
const SHOP_NAME_IN_HTML: &str = "Ann&#39;s &lt;Mugs&gt; &amp; &quot;Books&quot;";
const EBOOK_FILE: &str = "webhooks-exactly-once.pdf";

/// The shop's stack, sending its emails to `maildev`.
async fn start(maildev: &MailDev) -> Stack {
    let smtp_url = maildev.smtp_url();
    Stack::start("standard", None, |config| {
        config.smtp_url = Some(smtp_url);
        config.shop_name = SHOP_NAME.to_owned();
    })
    .await
}

impl Stack {
    /// The order's emails as stored: kind, status, attempts, last error.
    fn outbox(&self, order: &str) -> Vec<(String, String, i64, Option<String>)> {
        self.shop
            .data
            .rows(
                "SELECT kind, status, attempts, last_error FROM emails
                 WHERE order_id = $1 ORDER BY id",
                &[order.into()],
            )
            .into_iter()
            .map(|row| {
                (
                    row[0].text(),
                    row[1].text(),
                    row[2].int(),
                    row[3].opt_text(),
                )
            })
            .collect()
    }
}

fn mug_and_ebook() -> Value {
    json!([{"sku": "mug", "quantity": 2}, {"sku": "ebook", "quantity": 1}])
}

fn subjects(emails: &[ReceivedEmail]) -> Vec<&str> {
    emails.iter().map(|m| m.subject.as_str()).collect()
}

/// Every email arrived once: as many distinct Message-IDs as emails, each
/// one the merchant's own.
fn assert_each_once(emails: &[ReceivedEmail]) {
    let ids: BTreeSet<&str> = emails
        .iter()
        .map(|m| m.message_id.as_deref().unwrap())
        .collect();
    assert_eq!(ids.len(), emails.len(), "a Message-ID twice: {emails:#?}");
    for id in ids {
        assert!(
            id.starts_with("<email-") && id.ends_with("@ipn-merchant>"),
            "{id}"
        );
    }
}

/// The first `{shop}/downloads/…` link in `text`.
fn download_link(text: &str, shop: &str) -> String {
    let start = format!("{shop}/downloads/");
    let at = text
        .find(&start)
        .unwrap_or_else(|| panic!("no {start} link in {text}"));
    text[at..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn emails_reach_a_real_smtp_server_once_each() {
    let maildev = MailDev::start().await.unwrap();
    let stack = start(&maildev).await;
    let downloads = stack.shop.data.dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    std::fs::write(downloads.join(EBOOK_FILE), b"%PDF the book").unwrap();

    let (order, total) = stack.order(mug_and_ebook()).await;
    assert_eq!(total, 3499);
    let payment = stack.pay(&order, total, card(VISA)).await;
    let payment = payment["id"].as_str().unwrap();
    stack.settled(&order, "paid", 2).await;
    let paid = maildev.wait_for(2, WAIT).await.unwrap();
    assert_eq!(
        subjects(&paid),
        [
            format!("Thank you! Order {order} is paid"),
            "Your download: Webhooks, exactly once (e-book)".to_owned(),
        ]
    );

    // The link in the download email works.
    let link = download_link(paid[1].text.as_deref().unwrap(), &stack.shop.url);
    let response = reqwest::get(&link).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{link}");
    assert_eq!(&response.bytes().await.unwrap()[..], b"%PDF the book");

    stack
        .operate(payment, "refunds", json!({"amount": 500}))
        .await;
    stack.settled(&order, "partially_refunded", 3).await;
    let all = maildev.wait_for(3, WAIT).await.unwrap();
    assert_eq!(
        subjects(&all),
        [
            format!("Thank you! Order {order} is paid"),
            "Your download: Webhooks, exactly once (e-book)".to_owned(),
            format!("Order {order}: 5.00 USD refunded"),
        ]
    );
    for email in &all {
        assert_eq!(email.to, ["ann@example.com"], "{email:#?}");
        assert_eq!(email.from, ["shop@localhost"], "{email:#?}");
        let text = email.text.as_deref().unwrap();
        let html = email.html.as_deref().unwrap();
        assert!(text.contains(&order), "{text}");
        assert!(html.contains(&order), "{html}");
        // Values are escaped in the HTML part, and only there.
        assert!(html.contains(SHOP_NAME_IN_HTML), "{html}");
        assert!(!html.contains("<Mugs>"), "{html}");
        assert!(text.contains(SHOP_NAME), "{text}");
    }
    let order_paid = all[0].text.as_deref().unwrap();
    assert!(
        order_paid.contains("2 × Enamel mug: 25.00 USD"),
        "{order_paid}"
    );
    assert!(order_paid.contains("34.99 USD"), "{order_paid}");
    assert!(
        all[2].text.as_deref().unwrap().contains("5.00 USD"),
        "{:?}",
        all[2].text
    );

    // The same link is in both parts of the download email.
    assert!(
        all[1].html.as_deref().unwrap().contains(&link),
        "{link} not in {:?}",
        all[1].html
    );
    // A partial refund leaves it working.
    let response = reqwest::get(&link).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{link}");

    // Nothing more comes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = maildev.emails().await.unwrap();
    assert_eq!(later.len(), 3, "{later:#?}");
    assert_each_once(&later);
    let order = stack.get_order(&order).await;
    let kinds: Vec<&str> = order["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["order_paid", "download_link", "refunded"]);
}

#[tokio::test]
async fn mails_wait_while_the_smtp_server_is_down_and_go_once_when_it_is_back() {
    let mut maildev = MailDev::start().await.unwrap();
    let stack = start(&maildev).await;

    // One order while the server is up: its email is in MailDev's folder
    // when it stops, and must still be there once, not twice, after.
    let (first, total) = stack.order(json!([{"sku": "mug", "quantity": 1}])).await;
    stack.pay(&first, total, card(VISA)).await;
    stack.settled(&first, "paid", 1).await;
    assert_eq!(maildev.wait_for(1, WAIT).await.unwrap().len(), 1);

    maildev.stop();
    let (second, total) = stack.order(mug_and_ebook()).await;
    stack.pay(&second, total, card(VISA)).await;
    // The order is paid at once; its emails wait, each tried and failed.
    let deadline = tokio::time::Instant::now() + WAIT;
    let outbox = loop {
        let outbox = stack.outbox(&second);
        if outbox.len() == 2 && outbox.iter().all(|(_, _, attempts, _)| *attempts >= 1) {
            break outbox;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for failed attempts: {outbox:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for (kind, status, _, error) in &outbox {
        assert_eq!(status, "queued", "{kind}: {outbox:#?}");
        assert!(
            error.as_deref().is_some_and(|e| !e.is_empty()),
            "{kind}: {outbox:#?}"
        );
    }
    let waiting = stack.get_order(&second).await;
    assert_eq!(waiting["status"], "paid", "{waiting:#}");
    let emails = waiting["emails"].as_array().unwrap();
    let kinds: Vec<&str> = emails.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["order_paid", "download_link"]);
    for email in emails {
        assert_eq!(email["status"], "queued", "{waiting:#}");
        assert!(email["attempts"].as_u64().unwrap() >= 1, "{waiting:#}");
        assert_eq!(email["sent_at"], Value::Null, "{waiting:#}");
    }

    // Back: the worker's next retry (1 s, 2 s, 4 s … after the failures)
    // delivers them.
    maildev.restart().await.unwrap();
    let arrived = maildev.wait_for(3, Duration::from_secs(20)).await.unwrap();
    assert_eq!(
        subjects(&arrived),
        [
            format!("Thank you! Order {first} is paid"),
            format!("Thank you! Order {second} is paid"),
            "Your download: Webhooks, exactly once (e-book)".to_owned(),
        ]
    );
    let sent = stack.settled(&second, "paid", 2).await;
    for email in sent["emails"].as_array().unwrap() {
        assert!(email["sent_at"].is_string(), "{sent:#}");
    }
    for (kind, status, attempts, error) in stack.outbox(&second) {
        assert_eq!(status, "sent", "{kind}");
        assert!(attempts >= 2, "{kind}: {attempts}");
        assert_eq!(error, None, "{kind}");
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = maildev.emails().await.unwrap();
    assert_eq!(later.len(), 3, "{later:#?}");
    assert_each_once(&later);
}
