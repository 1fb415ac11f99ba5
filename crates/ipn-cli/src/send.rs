//! `ipn send`: posts one signed sample IPN to a URL, in either dialect, and
//! prints what the receiver answered.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ipn_core::Dialect;
use ipn_core::event::EventType;
use ipn_core::id::{MerchantId, PaymentId, SubscriptionId};
use ipn_core::money::Currency;
use ipn_core::payment::{Custom, ItemKind};
use ipn_core::paypal::{Sending, encode_event};
use ipn_core::standard::{Signer, SigningKey, WebhookHeaders, WebhookSecret, signature_header};
use time::OffsetDateTime;

use crate::Fatal;
use crate::sample::Sample;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Receiver URL (http or https)
    #[arg(long, value_name = "URL")]
    to: String,
    /// Event type, e.g. payment.completed, payment.refunded, subscription.payment
    #[arg(long = "type", value_name = "TYPE", default_value = "payment.completed", value_parser = parse_event_type)]
    event_type: EventType,
    /// Wire format: standard (Standard Webhooks JSON) or paypal (classic IPN form, with the same signed headers)
    #[arg(long, default_value = "standard")]
    dialect: Dialect,
    /// Shared secret (whsec_…); a new one is made and printed when absent
    #[arg(long, env = "IPN_WEBHOOK_SECRET", value_name = "whsec_…")]
    secret: Option<WebhookSecret>,
    /// Also sign with this ed25519 key (whsk_…), as a v1a signature
    #[arg(long, value_name = "whsk_…")]
    signing_key: Option<SigningKey>,
    /// Amount in minor units (1999 is 19.99 USD); refunds and reversals are sent negative
    #[arg(long, default_value_t = 1999, value_parser = clap::value_parser!(i64).range(1..))]
    amount: i64,
    /// ISO 4217 currency code
    #[arg(long, default_value = "USD")]
    currency: Currency,
    /// The merchant's order reference (a fresh one when absent)
    #[arg(long)]
    invoice: Option<String>,
    /// Opaque pass-through value, at most 255 characters
    #[arg(long)]
    custom: Option<Custom>,
    /// The merchant's account email (PayPal's receiver_email)
    #[arg(long, default_value = "merchant@example.com")]
    receiver_email: String,
    /// The merchant id the event belongs to (a fresh one when absent)
    #[arg(long)]
    merchant_id: Option<MerchantId>,
    /// The customer's email
    #[arg(long, default_value = "buyer@example.com")]
    payer_email: String,
    /// The customer's name
    #[arg(long, default_value = "Ada Lovelace")]
    payer_name: String,
    /// The payment the event is about; for a refund or reversal, the original payment
    #[arg(long)]
    payment_id: Option<PaymentId>,
    /// The subscription the event is about (a fresh one when absent)
    #[arg(long)]
    subscription_id: Option<SubscriptionId>,
    /// The event's sequence within its payment or subscription
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    sequence: Option<u64>,
    /// Sell a digital item rather than a physical one
    #[arg(long)]
    digital: bool,
    /// Send this webhook-timestamp instead of now (to test a receiver's tolerance)
    #[arg(long, value_name = "UNIX_SECONDS")]
    timestamp: Option<i64>,
    /// Give up waiting for the receiver after this many seconds
    #[arg(long, default_value_t = 15)]
    timeout: u64,
}

/// Any valid type, as long as it exists in both dialects (the sample is sent
/// in either).
fn parse_event_type(s: &str) -> Result<EventType, String> {
    let t = EventType::parse(s).map_err(|e| e.to_string())?;
    if !t.has_paypal_form() {
        let known: Vec<&str> = EventType::KNOWN
            .iter()
            .filter(|t| t.has_paypal_form())
            .map(EventType::as_str)
            .collect();
        return Err(format!(
            "ipn send makes sample data only for: {}",
            known.join(", ")
        ));
    }
    Ok(t)
}

pub async fn run(args: Args) -> Result<ExitCode, Fatal> {
    let url = reqwest::Url::parse(&args.to).with_context(|| format!("--to {:?}", args.to))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("--to must be an http or https URL, not {}", url.scheme());
    }
    let now = OffsetDateTime::now_utc().replace_nanosecond(0)?;
    let sample = Sample {
        event_type: args.event_type.clone(),
        amount: args.amount,
        currency: args.currency,
        invoice: args
            .invoice
            .clone()
            .unwrap_or_else(|| format!("INV-{}", now.unix_timestamp())),
        custom: args.custom.clone(),
        receiver_email: args.receiver_email.clone(),
        merchant_id: args
            .merchant_id
            .unwrap_or_else(|| MerchantId::generate(now)),
        payer_email: args.payer_email.clone(),
        payer_name: args.payer_name.clone(),
        payment_id: args.payment_id,
        subscription_id: args.subscription_id,
        sequence: args.sequence,
        item_kind: if args.digital {
            ItemKind::Digital
        } else {
            ItemKind::Physical
        },
        now,
    };
    let event = sample.event();
    let body = match args.dialect {
        Dialect::Standard => serde_json::to_vec(&event)?,
        Dialect::Paypal => encode_event(&event, Sending::First)?,
    };

    let secret = match args.secret {
        Some(secret) => secret,
        None => {
            let secret = WebhookSecret::generate();
            eprintln!("secret:    {} (generated)", secret.reveal());
            secret
        }
    };
    let mut signers = vec![Signer::Secret(secret)];
    signers.extend(args.signing_key.map(Signer::Ed25519));
    let id = event.id.to_string();
    let timestamp = args.timestamp.unwrap_or(now.unix_timestamp());
    let signature = signature_header(&signers, &id, timestamp, &body);

    eprintln!(
        "sending:   {} ({} dialect) to {url}",
        event.event_type, args.dialect
    );
    eprintln!("{}: {id}", WebhookHeaders::ID);
    eprintln!("{}: {timestamp}", WebhookHeaders::TIMESTAMP);
    eprintln!("{}: {signature}", WebhookHeaders::SIGNATURE);

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(args.timeout))
        .user_agent(concat!("ipn-send/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let started = Instant::now();
    let response = client
        .post(url)
        .header("content-type", args.dialect.content_type())
        .header(WebhookHeaders::ID, &id)
        .header(WebhookHeaders::TIMESTAMP, timestamp.to_string())
        .header(WebhookHeaders::SIGNATURE, &signature)
        .body(body)
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            eprintln!("not delivered: {}", describe(&error));
            return Ok(ExitCode::FAILURE);
        }
    };
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    eprintln!("answered:  in {} ms", started.elapsed().as_millis());
    println!("{status}");
    if !text.is_empty() {
        println!("{text}");
    }
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The whole chain of causes: reqwest's top-level message alone ("error
/// sending request") does not say what went wrong.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
