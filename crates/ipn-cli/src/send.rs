//! `ipn send`: posts one signed sample IPN to a URL, in either dialect, and
//! prints what the receiver answered.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::ValueEnum;
use ipn_core::event::EventType;
use ipn_core::id::{MerchantId, PaymentId, SubscriptionId};
use ipn_core::money::Currency;
use ipn_core::payment::{Custom, ItemKind};
use ipn_core::paypal::{Sending, encode_event};
use ipn_core::standard::{Signer, SigningKey, WebhookHeaders, WebhookSecret, signature_header};
use time::OffsetDateTime;

use crate::Fatal;
use crate::sample::Sample;

/// The wire format of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dialect {
    /// Standard Webhooks: JSON body, signed headers
    Standard,
    /// Classic PayPal IPN: form body (and the same signed headers)
    Paypal,
}

impl Dialect {
    fn name(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Paypal => "paypal",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Receiver URL (http or https)
    #[arg(long, value_name = "URL")]
    to: String,
    /// Event type, e.g. payment.completed, payment.refunded, subscription.payment
    #[arg(long = "type", value_name = "TYPE", default_value = "payment.completed", value_parser = parse_event_type)]
    event_type: EventType,
    #[arg(long, value_enum, default_value_t = Dialect::Standard)]
    dialect: Dialect,
    /// Shared secret (whsec_…); a new one is made and printed when absent
    #[arg(long, env = "IPN_WEBHOOK_SECRET", value_name = "whsec_…", value_parser = parse_secret)]
    secret: Option<WebhookSecret>,
    /// Also sign with this ed25519 key (whsk_…), as a v1a signature
    #[arg(long, value_name = "whsk_…", value_parser = parse_signing_key)]
    signing_key: Option<SigningKey>,
    /// Amount in minor units (1999 is 19.99 USD); refunds and reversals are sent negative
    #[arg(long, default_value_t = 1999, value_parser = clap::value_parser!(i64).range(1..))]
    amount: i64,
    /// ISO 4217 currency code
    #[arg(long, default_value = "USD", value_parser = parse_currency)]
    currency: Currency,
    /// The merchant's order reference (a fresh one when absent)
    #[arg(long)]
    invoice: Option<String>,
    /// Opaque pass-through value, at most 255 characters
    #[arg(long, value_parser = parse_custom)]
    custom: Option<Custom>,
    /// The merchant's account email (PayPal's receiver_email)
    #[arg(long, default_value = "merchant@example.com")]
    receiver_email: String,
    /// The merchant id the event belongs to (a fresh one when absent)
    #[arg(long, value_parser = parse_merchant_id)]
    merchant_id: Option<MerchantId>,
    /// The customer's email
    #[arg(long, default_value = "buyer@example.com")]
    payer_email: String,
    /// The customer's name
    #[arg(long, default_value = "Ada Lovelace")]
    payer_name: String,
    /// The payment the event is about; for a refund or reversal, the original payment
    #[arg(long, value_parser = parse_payment_id)]
    payment_id: Option<PaymentId>,
    /// The subscription the event is about (a fresh one when absent)
    #[arg(long, value_parser = parse_subscription_id)]
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

fn parse_event_type(s: &str) -> Result<EventType, String> {
    let t = EventType::parse(s).map_err(|e| e.to_string())?;
    if t.object().is_none() {
        let known: Vec<&str> = EventType::KNOWN.iter().map(EventType::as_str).collect();
        return Err(format!(
            "ipn send makes sample data only for: {}",
            known.join(", ")
        ));
    }
    Ok(t)
}

fn parse_secret(s: &str) -> Result<WebhookSecret, String> {
    WebhookSecret::parse(s).map_err(|e| e.to_string())
}

fn parse_signing_key(s: &str) -> Result<SigningKey, String> {
    SigningKey::parse(s).map_err(|e| e.to_string())
}

fn parse_currency(s: &str) -> Result<Currency, String> {
    Currency::parse(s).map_err(|e| e.to_string())
}

fn parse_custom(s: &str) -> Result<Custom, String> {
    Custom::parse(s).map_err(|e| e.to_string())
}

fn parse_merchant_id(s: &str) -> Result<MerchantId, String> {
    MerchantId::parse(s).map_err(|e| e.to_string())
}

fn parse_payment_id(s: &str) -> Result<PaymentId, String> {
    PaymentId::parse(s).map_err(|e| e.to_string())
}

fn parse_subscription_id(s: &str) -> Result<SubscriptionId, String> {
    SubscriptionId::parse(s).map_err(|e| e.to_string())
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
    let (body, content_type) = match args.dialect {
        Dialect::Standard => (serde_json::to_vec(&event)?, "application/json"),
        Dialect::Paypal => (
            encode_event(&event, Sending::First)?,
            "application/x-www-form-urlencoded",
        ),
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
        event.event_type,
        args.dialect.name()
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
        .header("content-type", content_type)
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
