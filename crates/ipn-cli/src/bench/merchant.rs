//! `ipn bench merchant`: signed IPNs posted to a merchant server's
//! `/webhooks`, each verified, stored durably before its 200, then applied
//! by the notification handler to an order of the shop. The bar: 10,000
//! verified IPNs/s stored and applied.
//!
//! The shop runs in this process on a fresh SQLite file (fsync at every
//! commit, as always), with one order per IPN made beforehand. Each IPN is
//! a `payment.completed` for its order, signed with the endpoint's secret:
//! the merchant verifies the signature and timestamp, stores it, answers,
//! and its handler validates it against the order, marks the order paid and
//! queues the customer's email (written to a folder by the mail worker, as
//! with no SMTP server). The run ends when every order is paid.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::HeaderValue;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use ipn_core::event::{Event, EventData, EventType};
use ipn_core::id::{EventId, MerchantId, PaymentId};
use ipn_core::money::{Currency, Money};
use ipn_core::payment::{Payer, Payment, PaymentStatus};
use ipn_core::standard::{Signer, WebhookSecret};
use ipn_merchant::storage::{Line, Order, Reader};
use ipn_merchant::{Config, GatewayKey, Merchant};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::load::{self, Plan, Timing, Work};
use super::meter::Meter;
use super::stats::{Sorted, round};

/// The price of every bench order, in cents.
const PRICE: i64 = 1250;

#[derive(Debug, Clone)]
pub struct Settings {
    pub messages: u64,
    pub concurrency: usize,
    /// Longest wait for the handler once the last IPN is stored.
    pub timeout: Duration,
    pub show_progress: bool,
}

#[derive(Debug)]
pub struct Figures {
    pub messages: u64,
    /// Orders not paid when the run gave up.
    pub lost: u64,
    pub errors: u64,
    /// IPNs answered 200 per second (verified and stored).
    pub stored_per_s: f64,
    /// IPNs applied per second, from the first request to the last order
    /// paid.
    pub applied_per_s: f64,
    pub answer_p50_ms: Option<f64>,
    pub answer_p99_ms: Option<f64>,
}

impl Figures {
    pub fn json(&self, elapsed: Duration) -> Value {
        json!({
            "scenario": "merchant",
            "messages": self.messages,
            "stored_per_s": round(self.stored_per_s, 0),
            "applied_per_s": round(self.applied_per_s, 0),
            "answer_p50_ms": self.answer_p50_ms.map(|v| round(v, 3)),
            "answer_p99_ms": self.answer_p99_ms.map(|v| round(v, 3)),
            "lost": self.lost,
            "errors": self.errors,
            "elapsed_s": round(elapsed.as_secs_f64(), 1),
        })
    }
}

pub async fn run(settings: &Settings) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir().context("a temporary directory for the shop")?;
    let database = dir.path().join("shop.db");
    let merchant_id = MerchantId::generate(OffsetDateTime::now_utc());
    let secret = WebhookSecret::generate();
    let invoices = make_orders(&database, &merchant_id, settings.messages)?;
    println!(
        "merchant: {} orders made; posting one signed payment.completed for each \
         over {} connections",
        settings.messages, settings.concurrency
    );

    let mut config = Config::new(
        ipn_merchant::Database::Sqlite(database.clone()),
        // Never called: no PayPal message to post back, reconciliation off.
        "http://127.0.0.1:9",
        GatewayKey::new("unused"),
        secret.clone(),
    );
    config.merchant_id = Some(merchant_id.to_string());
    config.reconcile_every = None;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let merchant = Merchant::start(config, listener).await?;
    let addr = merchant.addr();

    let work = Arc::new(Ipns {
        host: HeaderValue::from_str(&addr.to_string())?,
        signer: Signer::Secret(secret),
        merchant_id,
        invoices,
    });
    let answered = Arc::new(AtomicU64::new(0));
    let meter = {
        let answered = Arc::clone(&answered);
        Meter::start(
            settings.show_progress,
            "merchant",
            settings.messages,
            move || (answered.load(Ordering::Relaxed), "IPNs stored".to_owned()),
        )
    };
    let run = load::run(
        addr,
        settings.concurrency,
        Plan::Count(settings.messages),
        work,
        answered,
    )
    .await;
    meter.finish();
    let run = run?;
    let stored_s = (run.finished - run.started).as_secs_f64();
    let stored_per_s = run.outputs.len() as f64 / stored_s;
    let answers = Sorted::new(run.outputs);
    println!(
        "stored: {stored_per_s:.0} IPNs/s verified and stored ({} in {stored_s:.2} s; \
         answer p50 {:.2} ms, p99 {:.2} ms)",
        answers.len(),
        answers.percentile_ms(50.0).unwrap_or(f64::NAN),
        answers.percentile_ms(99.0).unwrap_or(f64::NAN),
    );

    // The wall-clock time of the first request, to compare with the
    // handler's `processed_at`.
    let first_request_ms = wall_ms() - run.started.elapsed().as_millis() as i64;
    let applied = wait_applied(&merchant.reader(), settings.timeout).await?;
    let applied_s = (applied.last_processed_ms - first_request_ms) as f64 / 1000.0;
    let applied_per_s = applied.paid as f64 / applied_s;
    let paid = applied.paid;
    println!(
        "applied: {applied_per_s:.0} IPNs/s stored and applied ({paid} orders paid, the last \
         {applied_s:.2} s after the first request)"
    );
    merchant.shutdown().await?;
    if run.errors > 0 {
        println!(
            "errors: {} request(s) failed: {}",
            run.errors,
            run.first_error.as_deref().unwrap_or_default()
        );
    }
    Ok(Figures {
        messages: settings.messages,
        lost: settings.messages.saturating_sub(paid),
        errors: run.errors,
        stored_per_s,
        applied_per_s,
        answer_p50_ms: answers.percentile_ms(50.0),
        answer_p99_ms: answers.percentile_ms(99.0),
    })
}

/// Makes `count` orders of one mug each, as the shop would have after its
/// customers went to the checkout; returns their ids.
fn make_orders(
    database: &Path,
    merchant_id: &MerchantId,
    count: u64,
) -> anyhow::Result<Vec<String>> {
    let usd = Currency::USD;
    let now = OffsetDateTime::now_utc();
    let created_at = ipn_merchant::clock::millis(now);
    let mut orders = Vec::with_capacity(usize::try_from(count)?);
    for n in 0..count {
        let id = format!("ord_{}", ulid::Ulid::new());
        let order = Order {
            id: id.clone(),
            status: "created".to_owned(),
            customer_email: format!("customer{n}@example.com"),
            total: Money::new(PRICE, usd),
            lines: vec![Line {
                sku: "mug".to_owned(),
                name: "Enamel mug".to_owned(),
                kind: ipn_core::payment::ItemKind::Physical,
                quantity: 1,
                unit_price: Money::new(PRICE, usd),
                total: Money::new(PRICE, usd),
            }],
            checkout_session_id: format!("cs_bench_{n}"),
            checkout_url: "http://127.0.0.1:9/checkout".to_owned(),
            merchant_id: Some(merchant_id.to_string()),
            created_at,
            plan: None,
            subscription_id: None,
            paid_at: None,
            fulfilled_at: None,
        };
        orders.push(order);
    }
    // Before the merchant starts, so not through its writer: the shop's
    // set-up, as if its customers had gone to the checkout.
    let store = ipn_merchant::storage::open(&ipn_merchant::Database::Sqlite(database.to_owned()))?;
    store.write_with(|tx| {
        for order in &orders {
            tx.insert_order(order)?;
        }
        Ok(())
    })?;
    Ok(orders.into_iter().map(|order| order.id).collect())
}

/// What the handler did, read once it is done.
struct Applied {
    paid: u64,
    /// When the handler finished the last message (ms since the epoch).
    last_processed_ms: i64,
}

/// Waits until no message waits for the handler (a cheap count on the
/// inbox's index of ready messages every 50 ms, so the poll takes little
/// from what it measures), or until `timeout` passes without progress;
/// then reads what was applied.
async fn wait_applied(shop: &Reader, timeout: Duration) -> anyhow::Result<Applied> {
    let mut waiting = u64::MAX;
    let mut last_change = Instant::now();
    loop {
        let now = shop.read(|r| r.waiting_count()).await?;
        if now != waiting {
            waiting = now;
            last_change = Instant::now();
        }
        if waiting == 0 || last_change.elapsed() > timeout {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (paid, last_processed_ms) = shop
        .read(|r| Ok((r.paid_orders()?, r.last_handled_at()?.unwrap_or(0))))
        .await?;
    Ok(Applied {
        paid,
        last_processed_ms,
    })
}

fn wall_ms() -> i64 {
    ipn_merchant::clock::millis(OffsetDateTime::now_utc())
}

/// One signed `payment.completed` per order.
struct Ipns {
    host: HeaderValue,
    signer: Signer,
    merchant_id: MerchantId,
    invoices: Vec<String>,
}

impl Ipns {
    fn event(&self, n: u64) -> anyhow::Result<(String, Vec<u8>)> {
        let invoice = self
            .invoices
            .get(usize::try_from(n)?)
            .context("more requests than orders")?;
        let now = OffsetDateTime::now_utc();
        let payment = Payment {
            id: PaymentId::generate(now),
            parent_id: None,
            status: PaymentStatus::Completed,
            previous_status: Some(PaymentStatus::Pending),
            amount: PRICE,
            fee: 66,
            currency: Currency::USD,
            refunded_amount: 0,
            merchant_id: self.merchant_id,
            receiver_email: "shop@example.com".to_owned(),
            payer: Payer {
                email: format!("customer{n}@example.com"),
                name: Some("Bench Customer".to_owned()),
                id: None,
            },
            invoice: Some(invoice.clone()),
            custom: None,
            items: Vec::new(),
            subscription_id: None,
            pending_reason: None,
            reason_code: None,
            created_at: now,
        };
        let event = Event {
            id: EventId::generate(now),
            event_type: EventType::PaymentCompleted,
            created_at: now,
            livemode: false,
            sequence: 1,
            data: EventData::Payment(Box::new(payment)),
        };
        Ok((event.id.to_string(), serde_json::to_vec(&event)?))
    }
}

impl Work for Ipns {
    /// How long the answer took.
    type Output = Duration;

    fn request(&self, n: u64) -> anyhow::Result<Request<Full<Bytes>>> {
        let (id, body) = self.event(n)?;
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let signature = self.signer.sign(&id, timestamp, &body);
        Ok(Request::post("/webhooks")
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(Full::new(Bytes::from(body)))?)
    }

    fn answer(&self, status: StatusCode, body: &[u8], at: Timing) -> anyhow::Result<Duration> {
        if status != StatusCode::OK {
            bail!(
                "the merchant answered {status}: {}",
                String::from_utf8_lossy(body)
            );
        }
        Ok(at.answered - at.sent)
    }
}
